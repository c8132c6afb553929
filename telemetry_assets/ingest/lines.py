"""Stream the lines of one raw object, plain NDJSON or gzip (several members allowed).

Memory is bounded by the read block plus `max_line_bytes`: a line longer than that is not kept, only
counted and reported, however long it is. Each line comes out as `RawLine`; a line that cannot be
an event (invalid UTF-8, too long, cut off by a truncated gzip member) carries `read_error` instead
of text, so it is quarantined as `Malformed-Line` with its line number rather than lost.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

READ_BLOCK_BYTES = 1 << 20
DEFAULT_MAX_LINE_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RawLine:
    line_number: int  # 1-based, counted on the decompressed text
    text: str | None
    read_error: str | None = None


def read_lines(stream: BinaryIO, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[RawLine]:
    """Every line of the object, blank ones included (the caller counts them apart)."""
    splitter = _LineSplitter(max_line_bytes)
    try:
        for block in _decompressed_blocks(stream):
            yield from splitter.feed(block)
    except _TruncatedStream as truncated:
        yield from splitter.finish(cut_off=str(truncated))
        return
    yield from splitter.finish(cut_off=None)


class _TruncatedStream(Exception):
    pass


def _decompressed_blocks(stream: BinaryIO) -> Iterator[bytes]:
    first = stream.read(READ_BLOCK_BYTES)
    if not first.startswith(GZIP_MAGIC):
        while first:
            yield first
            first = stream.read(READ_BLOCK_BYTES)
        return
    yield from _gunzip_members(first, stream)


def _gunzip_members(first: bytes, stream: BinaryIO) -> Iterator[bytes]:
    """Decompress concatenated gzip members; a member that ends early raises `_TruncatedStream`.

    Output per call is capped so a highly compressed member cannot balloon memory.
    """
    decompressor = zlib.decompressobj(wbits=31)
    member_open = False
    pending = first
    while True:
        if not pending:
            pending = stream.read(READ_BLOCK_BYTES)
            if not pending:
                if member_open:
                    raise _TruncatedStream("gzip member truncated: the object ends inside compressed data")
                return
        member_open = True
        try:
            out = decompressor.decompress(pending, READ_BLOCK_BYTES)
        except zlib.error as error:
            raise _TruncatedStream(f"gzip data corrupt: {error}") from None
        if out:
            yield out
        if decompressor.eof:
            pending = decompressor.unused_data
            decompressor = zlib.decompressobj(wbits=31)
            member_open = False
        else:
            pending = decompressor.unconsumed_tail


class _LineSplitter:
    """Splits decompressed blocks into lines without ever holding more than one long line."""

    def __init__(self, max_line_bytes: int):
        self.max_line_bytes = max_line_bytes
        self.line_number = 0
        self.partial = bytearray()
        self.oversized_bytes = 0  # >0 while skipping the rest of an over-long line

    def feed(self, block: bytes) -> Iterator[RawLine]:
        start = 0
        while (newline := block.find(b"\n", start)) != -1:
            yield self._complete(block[start:newline])
            start = newline + 1
        self._keep(block[start:])

    def finish(self, cut_off: str | None) -> Iterator[RawLine]:
        if not self.partial and not self.oversized_bytes:
            if cut_off:  # the cut fell exactly on a line boundary: report it on the next line
                self.line_number += 1
                yield RawLine(self.line_number, None, cut_off)
            return
        line = self._complete(b"")
        if cut_off:
            line = RawLine(line.line_number, None, cut_off)
        yield line

    def _keep(self, tail: bytes) -> None:
        if self.oversized_bytes:
            self.oversized_bytes += len(tail)
        elif len(self.partial) + len(tail) > self.max_line_bytes:
            self.oversized_bytes = len(self.partial) + len(tail)
            self.partial.clear()
        else:
            self.partial += tail

    def _complete(self, rest: bytes) -> RawLine:
        self.line_number += 1
        if self.oversized_bytes or len(self.partial) + len(rest) > self.max_line_bytes:
            size = self.oversized_bytes + len(self.partial) + len(rest)
            self.partial.clear()
            self.oversized_bytes = 0
            return RawLine(self.line_number, None, f"line of {size} bytes exceeds the {self.max_line_bytes}-byte limit")
        raw = bytes(self.partial) + rest if self.partial else rest
        self.partial.clear()
        try:
            return RawLine(self.line_number, raw.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError as error:
            return RawLine(self.line_number, None, f"invalid UTF-8 at byte {error.start}")
