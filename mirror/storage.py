"""Blob stores: an object-store-shaped interface (put, open, exists, delete) keyed by
opaque strings (a file's sha256, or ``<sha256>.metadata``).

The mirror has two areas, each its own store: ``quarantine`` (every fetched file; no
pip-facing route reads it) and ``published`` (approved files only). Keeping them as two
separate objects means a route can only serve what it was handed: the index is handed
the published store and nothing else.

Backends: ``LocalStore`` here, ``S3Store`` in ``mirror.s3`` (imported only when the
config asks for it). ``build_storage(settings)`` picks one; it is the only constructor
production code calls. Capabilities only some backends have are small protocols of their
own (``Presigner``, ``ServerSideCopy``), checked with ``isinstance``, so ``BlobStore``
stays the four verbs every backend can honour.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mirror.config import Settings

COPY_CHUNK = 1024 * 1024


class StorageError(Exception):
    """A backend failure, translated at the boundary; the message names the key."""


class BlobNotFound(StorageError):
    pass


class BlobStore(Protocol):
    name: str

    def put_file(self, key: str, source: Path) -> None:
        """Store a finished local file under ``key``, atomically: readers see the whole
        blob or nothing. The source file is consumed (moved or uploaded then removed)."""

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Store a stream's bytes under ``key``, atomically, without reading it whole."""

    def open(self, key: str) -> BinaryIO: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    def local_path(self, key: str) -> Path | None:
        """The blob's path on this machine when it is a plain file (for sendfile), else None."""


@runtime_checkable
class Presigner(Protocol):
    """A store that can hand out a short-lived URL for a blob (S3's presigned GET)."""

    def presigned_url(
        self, key: str, *, expires: int, content_type: str, content_disposition: str
    ) -> str:
        """A GET URL valid for ``expires`` seconds whose response carries these headers."""


@runtime_checkable
class ServerSideCopy(Protocol):
    def copy_from(self, source: BlobStore, key: str) -> bool:
        """Copy ``key`` from ``source`` without the bytes passing through this process;
        False when this backend cannot (another kind of store), so the caller streams."""


def check_key(key: str) -> str:
    # Keys are hex digests with an optional suffix; anything else is a caller bug that
    # must never become a path outside the store.
    stem = key.split(".", 1)[0]
    if len(stem) < 8 or not all(c in "0123456789abcdef" for c in stem) or "/" in key:
        raise StorageError(f"invalid blob key {key!r}")
    return key


class LocalStore:
    """Blobs as files under ``root/ab/cd/<key>``; writes go through a temp file + rename.

    ``file_mode``: quarantined blobs are the owner's alone (0600, what mkstemp gives);
    published ones are 0644 so a web server in the mirror's group can send them from
    disk (X-Accel-Redirect) while still unable to read a quarantined byte."""

    def __init__(self, root: Path, name: str, file_mode: int = 0o600) -> None:
        self.root = Path(root)
        self.name = name
        self.file_mode = file_mode
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        key = check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def temp_path(self) -> Path:
        """A fresh path on the same filesystem, so put_file() is a rename."""
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="incoming-")
        os.close(fd)
        return Path(name)

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(source, self.file_mode)
            os.replace(source, target)
        except OSError as error:
            if error.errno != 18:  # EXDEV: another filesystem; copy instead
                raise StorageError(f"{self.name}: cannot store {key}: {error.strerror}") from None
            with open(source, "rb") as handle:
                self.put_stream(key, handle)
            Path(source).unlink(missing_ok=True)

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self.temp_path()
        try:
            with open(temp, "wb") as out:
                shutil.copyfileobj(stream, out, COPY_CHUNK)
                out.flush()
                os.fchmod(out.fileno(), self.file_mode)
                os.fsync(out.fileno())
            os.replace(temp, target)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise StorageError(f"{self.name}: cannot store {key}: {error.strerror}") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"{self.name}: no blob {key}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None


@dataclass(frozen=True)
class Storage:
    quarantine: BlobStore
    published: BlobStore


def copy_blob(source: BlobStore, key: str, target: BlobStore) -> None:
    """Copy one blob between stores: server-side when the backend can, else streaming."""
    if isinstance(target, ServerSideCopy) and target.copy_from(source, key):
        return
    with source.open(key) as stream:
        target.put_stream(key, stream)


def local_storage(data_dir: Path) -> Storage:
    return Storage(
        quarantine=LocalStore(data_dir / "quarantine", "quarantine"),
        published=LocalStore(data_dir / "published", "published", file_mode=0o644),
    )


def build_storage(settings: Settings) -> Storage:
    """The stores ``[storage] backend`` names: the one factory production code calls."""
    if settings.storage.backend == "s3":
        from mirror.s3 import s3_storage  # boto3 is imported only by those who use it

        return s3_storage(settings.storage)
    return local_storage(settings.data_dir)
