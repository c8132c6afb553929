"""Object storage for the lake: one interface, a local-folder and an S3 implementation.

Asset code only ever sees `ObjectStore`; which implementation runs is chosen from
`TELEMETRY_LAKE_URL` (see `object_store_from_url`). Keys are always '/'-separated and relative to
the store's root (a folder, or a bucket prefix).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from abc import abstractmethod
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import boto3
import dagster as dg
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError, ReadTimeoutError, ResponseStreamingError
from pydantic import Field


@dataclass(frozen=True)
class ListedObject:
    """An object as a listing saw it. `version` changes whenever the object is written again: its
    ETag on S3, its size and modification time in a local folder."""

    key: str
    version: str


class LakeUnreadableError(ValueError):
    """The store cannot be listed at all; the message says where and why."""


class ObjectStore(dg.ConfigurableResource):
    """Read, list and write objects by key under one root."""

    @abstractmethod
    def check_readable(self) -> None:
        """Raise LakeUnreadableError when the store cannot be listed at all. `telemetry run` checks
        before its first day, and each ingest step before it lists the day, so a lake that is not
        there fails saying which and why."""

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under `prefix`, in lexicographic order of key."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, in lexicographic order."""
        return (listed.key for listed in self.list_objects(prefix))

    @abstractmethod
    def list_folders(self, prefix: str) -> list[str]:
        """The immediate sub-folders of `prefix` (each ending in '/'), like `ls -d prefix*/`."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A streaming binary reader for one object; the caller closes it."""

    @abstractmethod
    def local_files(self, keys: list[str]) -> AbstractContextManager[list[str]]:
        """Paths on local disk holding these objects, in order, valid inside the `with` block: for
        readers that take file names, like DuckDB's `read_json` (httpfs is not available offline)."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write (or replace) one object."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under `prefix` (used to replace a partition's exports)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store points, for logs and metadata."""


class LocalObjectStore(ObjectStore):
    """A folder on disk: the embedded default under `$TELEMETRY_HOME/lake`."""

    root: str = Field(description="Folder holding the lake.")

    def _path(self, key: str) -> Path:
        return Path(self.root) / key

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        root = Path(self.root)
        base = self._path(prefix)
        folder = base if prefix.endswith("/") or base.is_dir() else base.parent
        if not folder.is_dir():
            return
        paths = {p.relative_to(root).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        for key in sorted(k for k in paths if k.startswith(prefix)):
            stat = paths[key].stat()
            yield ListedObject(key, f"{stat.st_size}-{stat.st_mtime_ns}")

    def check_readable(self) -> None:
        """A folder not made yet is an empty lake (each day lands as "no raw objects"); a path that
        is a file, or a folder this user cannot read, is a mistake."""
        root = Path(self.root)
        if root.exists() and not (root.is_dir() and os.access(root, os.R_OK | os.X_OK)):
            raise LakeUnreadableError(f"{self.describe()}: not a folder this user can read")

    def list_folders(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}{p.name}/" for p in folder.iterdir() if p.is_dir())

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    @contextmanager
    def local_files(self, keys: list[str]) -> Iterator[list[str]]:
        yield [str(self._path(key)) for key in keys]

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def delete_prefix(self, prefix: str) -> None:
        folder = self._path(prefix)
        if folder.is_dir():
            shutil.rmtree(folder)

    def describe(self) -> str:
        return str(Path(self.root).resolve())


# boto3 documents its sessions as not thread safe, and `boto3.client` makes its client through the
# one default session. Clients are made on several threads at once here: ingest's reading thread
# opens raw objects while its upload thread puts export parts, and the exports are read back two
# destinations at a time. Older botocore failed there with `KeyError: 'credential_provider'`
# (boto/boto3#2750); 1.44 did not in 200 tries of eight threads, but the documented contract is what
# this goes by. A client, once made, is safe to share; making one takes about 5 ms.
_MAKING_A_CLIENT = threading.Lock()


class S3ObjectStore(ObjectStore):
    """An S3 bucket and prefix through boto3.

    The endpoint comes from the standard `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` variables (boto3
    reads them itself) unless `endpoint_url` is set; credentials come from the usual boto3 chain.
    Listing is paginated and reads stream the body, so neither lists nor objects are held whole; a
    read whose connection drops resumes from where it stopped (`_ResumingBody`).
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region_name: str | None = None
    retry_mode: str = Field(default="standard", description="botocore retry mode: standard or adaptive.")
    max_attempts: int = Field(default=5, description="Attempts per request, and per read of an object's body.")

    def _client(self):
        if self.retry_mode not in ("standard", "adaptive"):
            raise ValueError(f"retry_mode must be 'standard' or 'adaptive', not {self.retry_mode!r}")
        config = Config(retries={"mode": self.retry_mode, "max_attempts": self.max_attempts})
        with _MAKING_A_CLIENT:
            return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region_name, config=config)

    def _full(self, key: str) -> str:
        root = self.prefix.strip("/")
        return f"{root}/{key}" if root else key

    def _url(self, key: str) -> str:
        """Where a key (or prefix) is, in the form errors name it."""
        return f"s3://{self.bucket}/{self._full(key)}"

    def _relative(self, full_key: str) -> str:
        root = self.prefix.strip("/")
        return full_key[len(root) + 1 :] if root else full_key

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        pages = self._client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._full(prefix)
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield ListedObject(self._relative(item["Key"]), item["ETag"].strip('"'))

    def check_readable(self) -> None:
        """Lists one page: enough to meet a missing bucket, missing or refused credentials, or an
        endpoint that does not answer."""
        try:
            next(iter(self.list_objects("")), None)
        except (BotoCoreError, ClientError) as error:
            raise LakeUnreadableError(f"{self.describe()} cannot be listed: {error}") from None

    def list_folders(self, prefix: str) -> list[str]:
        pages = self._client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._full(prefix), Delimiter="/"
        )
        return sorted(
            self._relative(common["Prefix"]) for page in pages for common in page.get("CommonPrefixes", [])
        )

    def open(self, key: str) -> BinaryIO:
        client, full_key, location = self._client(), self._full(key), self._url(key)
        with _as_os_error(location):
            return _ResumingBody(lambda **condition: client.get_object(Bucket=self.bucket, Key=full_key, **condition),
                                 location, self.max_attempts)

    @contextmanager
    def local_files(self, keys: list[str]) -> Iterator[list[str]]:
        """Downloaded into a private temporary folder, removed when the block ends; each file keeps
        its object's name (and so its extension) behind a number that keeps keys apart."""
        client = self._client()
        with tempfile.TemporaryDirectory(prefix="lake-") as folder:
            paths = [str(Path(folder) / f"{number:05d}-{Path(key).name}") for number, key in enumerate(keys)]
            for key, path in zip(keys, paths):
                with _as_os_error(self._url(key)):
                    client.download_file(self.bucket, self._full(key), path)
            yield paths

    def put(self, key: str, data: bytes) -> None:
        with _as_os_error(self._url(key)):
            self._client().put_object(Bucket=self.bucket, Key=self._full(key), Body=data)

    def delete_prefix(self, prefix: str) -> None:
        """S3 answers a batch delete with the keys it did not delete rather than an error: left
        unchecked, a re-run's exports would sit beside the stale parts of the run before."""
        client, location = self._client(), self._url(prefix)
        keys = [self._full(k) for k in self.list_keys(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            with _as_os_error(location):
                response = client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
            if errors := response.get("Errors"):
                examples = "; ".join(f"{e['Key']}: {e['Code']} ({e.get('Message', '')})" for e in errors[:3])
                raise OSError(f"{location}: {len(errors)} object(s) not deleted, e.g. {examples}")

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"


@contextmanager
def _as_os_error(location: str) -> Iterator[None]:
    """S3's refusals as the errors a local folder raises, naming the object: a key that is not there
    (removed or renamed after it was listed) is a FileNotFoundError, a request the credentials may
    not make a PermissionError. botocore's own errors name neither the bucket nor the key."""
    try:
        yield
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("NoSuchKey", "404"):
            raise FileNotFoundError(f"{location}: no such object (removed or renamed after it was listed?); "
                                    "run the day again") from error
        if code in ("AccessDenied", "403"):
            raise PermissionError(f"{location}: {error}") from error
        raise


class ObjectChangedError(RuntimeError):
    """An object was replaced or removed while it was being read: what was read of it is not the
    whole of any one version."""


class _ResumingBody:
    """An S3 object's body that survives a connection dropped mid-read (a reset, a read timeout,
    fewer bytes than announced): the read goes on with a ranged GET from the first byte not yet
    returned. botocore retries requests, not bodies: without this, one connection dropped while
    a large object was read failed the day's run. Each resumed GET is pinned to the object's ETag:
    if the object was replaced meanwhile, its new bytes are never spliced onto the old ones."""

    _DROPPED = (ResponseStreamingError, ReadTimeoutError, IncompleteReadError)

    def __init__(self, get, location: str, attempts: int):
        self._get, self._location, self._attempts = get, location, attempts
        response = get()
        self._body, self._etag, self._size = response["Body"], response["ETag"], response["ContentLength"]
        self._returned = 0

    def read(self, size: int = -1) -> bytes:
        for attempt in range(1, self._attempts + 1):
            try:
                data = self._body.read() if size < 0 else self._body.read(size)
            except self._DROPPED:
                if attempt == self._attempts:
                    raise
                if self._returned >= self._size:  # dropped after the last byte: the object was read whole
                    return b""
                self._resume()
                continue
            self._returned += len(data)
            return data

    def _resume(self) -> None:
        self._body.close()
        try:
            self._body = self._get(Range=f"bytes={self._returned}-", IfMatch=self._etag)["Body"]
        except ClientError as error:
            happened = {"PreconditionFailed": "replaced", "NoSuchKey": "removed"}.get(error.response["Error"]["Code"])
            if happened is None:
                raise
            raise ObjectChangedError(f"{self._location} was {happened} while it was read "
                                     f"(after {self._returned:,} bytes); run the day again") from error

    def close(self) -> None:
        self._body.close()


def object_store_from_url(url: str) -> ObjectStore:
    """`s3://bucket/prefix` gives an S3 store; anything else is a local folder (the URL's form is
    checked where it is read: `settings.checked_lake_url`)."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        retry_mode = os.environ.get("TELEMETRY_S3_RETRY_MODE", "standard")
        return S3ObjectStore(bucket=bucket, prefix=prefix.strip("/"), retry_mode=retry_mode)
    return LocalObjectStore(root=url)
