import gzip
import io
import threading
import time

import pytest

from telemetry_assets.ingest.lines import prefetched, read_line_batches, read_lines
from telemetry_assets.stage_clock import StageClock


def lines_of(data: bytes, **options):
    return [(line.line_number, line.text, line.read_error) for line in read_lines(io.BytesIO(data), **options)]


def test_plain_ndjson_keeps_blank_lines_and_strips_crlf():
    assert lines_of(b'{"a":1}\r\n\n{"b":2}') == [(1, '{"a":1}', None), (2, "", None), (3, '{"b":2}', None)]


def test_gzip_with_several_members_reads_as_one_stream():
    data = gzip.compress(b'{"a":1}\n{"b":') + gzip.compress(b'2}\n{"c":3}\n')
    assert [text for _, text, _ in lines_of(data)] == ['{"a":1}', '{"b":2}', '{"c":3}']


def test_truncated_gzip_member_reports_the_cut_line_and_keeps_earlier_lines():
    body = b"".join(b'{"n":%d}\n' % i for i in range(20_000))
    data = gzip.compress(b'{"first":true}\n') + gzip.compress(body)[:-2_000]
    lines = lines_of(data)
    assert lines[0] == (1, '{"first":true}', None)
    assert all(error is None for _, _, error in lines[:-1])
    number, text, error = lines[-1]
    assert text is None and "truncated" in error and number == len(lines)


def test_corrupt_gzip_data_is_reported_not_raised():
    data = bytearray(gzip.compress(b'{"a":1}\n' * 1000))
    data[30:40] = b"\x00" * 10
    *_, (_, text, error) = lines_of(bytes(data))
    assert text is None and "gzip" in error


def test_invalid_utf8_is_reported_per_line():
    assert lines_of(b'{"a":1}\n\xff\xfe{"b":2}\n{"c":3}\n')[1] == (2, None, "invalid UTF-8 at byte 0")


def test_oversized_line_is_reported_with_its_size_and_the_next_line_survives():
    huge = b'{"prompt_text":"' + b"x" * (5 * 1024 * 1024) + b'"}'
    lines = lines_of(huge + b'\n{"ok":1}\n', max_line_bytes=1024 * 1024)
    assert lines[0][1] is None and f"line of {len(huge)} bytes exceeds" in lines[0][2]
    assert lines[1] == (2, '{"ok":1}', None)


def test_empty_object_is_empty():
    assert lines_of(b"") == []
    assert lines_of(gzip.compress(b"")) == []


def test_batches_number_lines_across_their_boundaries_and_lose_none():
    n = 300_000  # about 3.5 MB: several 1 MB read blocks, so lines straddle block and batch ends
    body = b"".join(b'{"n":%d}\n' % i for i in range(n)) + b"\xff\n" + b"x" * 300 + b"\n" + b'{"last":1}'
    batches = list(read_line_batches(io.BytesIO(gzip.compress(body)), max_line_bytes=200, batch_bytes=4_096))
    assert len(batches) >= 3
    numbers = [n for b in batches for n in b.line_numbers()]
    assert numbers == list(range(1, n + 4))
    texts = [None if t is None else t.rstrip("\n") for b in batches for t in b.lines.to_pylist()]
    assert texts == [f'{{"n":{i}}}' for i in range(n)] + [None, None, '{"last":1}']
    errors = {b.first_line_number + i: e for b in batches for i, e in b.errors.items()}
    assert errors == {n + 1: "invalid UTF-8 at byte 0", n + 2: "line of 300 bytes exceeds the 200-byte limit"}


def test_prefetched_raises_the_readers_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError("object vanished")

    seen = []
    with pytest.raises(OSError, match="object vanished"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_prefetched_stops_and_closes_the_reader_when_the_consumer_gives_up():
    closed = threading.Event()

    def endless():
        try:
            number = 0
            while True:
                number += 1
                yield number
        finally:
            closed.set()

    chunks = prefetched(endless())
    assert next(chunks) == 1
    chunks.close()  # what ingest does when a chunk fails
    assert closed.is_set()
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]


def test_prefetched_begins_the_next_item_only_once_the_consumer_has_taken_the_last():
    begun = []

    def chunks():
        for number in range(1, 6):
            begun.append(number)
            yield number

    read_ahead = prefetched(chunks())
    assert next(read_ahead) == 1
    deadline = time.monotonic() + 10
    while len(begun) < 2 and time.monotonic() < deadline:  # the next one is begun, however busy the machine
        time.sleep(0.01)
    time.sleep(0.3)  # the reader's time to run further ahead, were it allowed to
    assert begun == [1, 2]  # the one the consumer is on, and one more: not a third held for the queue
    assert list(read_ahead) == [2, 3, 4, 5]
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]


def test_a_byte_order_mark_opening_the_object_is_dropped_and_one_inside_it_is_kept():
    body = '\ufeff{"a":1}\n\ufeff{"b":2}\n'.encode()
    for data in (body, gzip.compress(body)):
        assert lines_of(data) == [(1, '{"a":1}', None), (2, '\ufeff{"b":2}', None)]


class Trickle(io.RawIOBase):
    """A stream whose reads return at most `size` bytes, as network bodies may."""

    def __init__(self, data: bytes, size: int):
        self.data, self.size = memoryview(data), size

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.size, len(self.data))
        buffer[:count], self.data = self.data[:count], self.data[count:]
        return count


# Over-long lines where they are hardest to see: first, spanning many reads, right after a
# partial line, and last without a newline.
AWKWARD = (b"w" * 230 + b'\n{"a":1}\n' + b"x" * 900 + b'\n{"b":2}\n' + b"y" * 150 + b"\n" + b"v" * 120 + b"u" * 120
           + b'\n{"c":3}\n' + b"z" * 250)
AWKWARD_LINES = [
    (1, None, "line of 230 bytes exceeds the 200-byte limit"), (2, '{"a":1}', None),
    (3, None, "line of 900 bytes exceeds the 200-byte limit"), (4, '{"b":2}', None), (5, "y" * 150, None),
    (6, None, "line of 240 bytes exceeds the 200-byte limit"), (7, '{"c":3}', None),
    (8, None, "line of 250 bytes exceeds the 200-byte limit"),
]


@pytest.mark.parametrize("read_size", [1, 2, 7, 64, 199, 200, 201, 4096])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_lines_do_not_depend_on_how_the_stream_is_cut_into_reads(read_size, compress):
    data = gzip.compress(AWKWARD) if compress else AWKWARD
    stream = Trickle(data, read_size)
    assert [(line.line_number, line.text, line.read_error)
            for line in read_lines(stream, max_line_bytes=200)] == AWKWARD_LINES


def test_reading_timed_on_the_reading_thread_is_counted_there_and_closed_with_it():
    """As ingest reads: the clock times each chunk where it is read, and giving up closes the source."""
    clock, closed, readers = StageClock(), threading.Event(), set()

    def slow_reads():
        try:
            for number in range(1, 100):
                readers.add(threading.current_thread().name)
                time.sleep(0.02)
                yield number
        finally:
            closed.set()

    chunks = prefetched(clock.timed("list+read", slow_reads()))
    assert next(chunks) == 1
    chunks.close()
    assert closed.is_set() and readers == {"prefetch"}
    assert clock.seconds["list+read"] >= 0.02
