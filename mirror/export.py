"""``qmirror export``: the published index as static files, so any static web server, CDN
or S3 website serves pip while one small writer runs sync and the admin UI.

The tree has the URLs the running mirror serves, so pip's ``--index-url`` just changes
host::

    simple/index.html                     root, PEP 503 HTML (every client, browsers)
    simple/index.json                     root, PEP 691 JSON (picked by Accept, see README)
    simple/<project>/index.html|json      project pages
    simple/  simple/<project>/            on S3 only: the HTML page again (see S3Target)
    files/<sha256>/<filename>             the files (unless linked elsewhere: files_url)
    files/<sha256>/<filename>.metadata    PEP 658/714 core metadata
    .qmirror-export.json                  the manifest: what this tree holds

Pages come from the precomputed ``pages`` table, files from the servable view and the
published store: nothing here can reach the quarantine store. Everything is read in one
database snapshot, so the pages written and the files copied describe the same moment.

Incremental and crash-safe: the manifest records each page's ETag and, per project,
what its pages list (a digest) and which of its files are present, so a re-export
writes only what changed and never looks at the files of an unchanged project.
Every object is written whole (temp + rename on a directory, one PUT on S3). Files are
written before the pages that list them (several at once where the target is
latency-bound), the root after the project pages it links, and pages are deleted before
the files they listed; the manifest only ever claims what is present, and says when an
export did not finish, so the next one compares every project's files.
An export killed at any point leaves a tree pip can use, and the next one completes it.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from mirror.config import Settings, parse_s3_url
from mirror.db import Database
from mirror.publish import metadata_key, provenance_key
from mirror.simple import (
    FORMATS,
    HTML,
    JSON,
    JSON_TYPE,
    LEGACY_HTML_TYPE,
    page_key,
    refresh_pages,
    render_project,
)
from mirror.storage import BlobNotFound, BlobStore, StorageError
from mirror.web.index import ONE_YEAR
from mirror.web.pages import PAGE_MAX_AGE

if TYPE_CHECKING:
    from mirror.s3 import ObjectHeaders

log = logging.getLogger("qmirror.export")

MANIFEST_KEY = ".qmirror-export.json"
MANIFEST_FORMAT = 1
# Content types for targets that store one per object (an S3 website has no Accept
# negotiation and no extension map): the HTML every client and browser understands.
PAGE_TYPES = {HTML: f"{LEGACY_HTML_TYPE}; charset=utf-8", JSON: JSON_TYPE}
FILE_TYPE = "application/octet-stream"
METADATA_TYPE = "text/plain; charset=utf-8"
PROVENANCE_TYPE = "application/vnd.pypi.integrity.v1+json"
MANIFEST_TYPE = "application/json"
# For targets that store caching per object: pages as long as the app lets them be cached
# (a revocation reaches pip within a minute), files for ever (the URL names the bytes),
# the manifest never (only the next export reads it).
PAGE_CACHE = f"max-age={PAGE_MAX_AGE}, public"
FILE_CACHE = f"public, max-age={ONE_YEAR}, immutable"
MANIFEST_CACHE = "no-store"
# A listed file: (sha256, filename, has core metadata, has provenance).
Entry = tuple[str, str, bool, bool]
CHECKPOINT_SECONDS = 30.0  # a long copy records its progress this often
SNAPSHOT_ATTEMPTS = 3  # a revoke racing the export: start again from a fresh snapshot


class ExportError(Exception):
    """The export cannot go on; the message names the target and what is wrong."""


# ---------------------------------------------------------------- targets


class ExportTarget(Protocol):
    """Where an export goes: a small object-store-shaped interface (keys are relative
    POSIX paths such as ``simple/flask/index.json``). Every put is atomic: a reader sees
    the old object or the new one, never part of one. Puts may be called from
    ``copy_concurrency`` threads at once."""

    copy_concurrency: int  # files copied at once

    def describe(self) -> str:
        """For messages: the directory, or ``s3://bucket/prefix``."""

    def is_empty(self) -> bool:
        """Whether the target holds nothing at all (a first export must not mix with
        someone else's files)."""

    def read_manifest(self) -> bytes | None: ...

    def write_manifest(self, data: bytes) -> None: ...

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None: ...

    def put_stream(self, key: str, stream: BinaryIO, content_type: str) -> None:
        """Store a stream's bytes without reading it whole."""

    def put_path(self, key: str, path: Path, content_type: str) -> None:
        """Store a local file (the published store's own, when it is on this machine)."""

    def copy_blob(self, source: BlobStore, blob: str, key: str, content_type: str) -> int | None:
        """Copy a published blob without its bytes passing through this process; the
        size copied, or None when this target cannot (the caller streams it). A missing
        blob raises ``BlobNotFound``."""

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""


def _check_key(key: str) -> PurePosixPath:
    # Filenames come from the upstream: never let one name a path outside the target.
    path = PurePosixPath(key)
    if (
        not key
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in key.split("/"))
        or "\\" in key
        or "\x00" in key
    ):
        raise ExportError(f"refusing to export to the unsafe path {key!r}")
    return path


class DirectoryTarget:
    """A local directory, served as is by nginx, ``python -m http.server`` or any static
    server (which picks content types by extension, so they are not stored)."""

    TEMP_DIR = ".qmirror-tmp"
    copy_concurrency = 1  # a local copy waits on no network; temp names are a plain counter

    def __init__(self, root: Path, *, hardlink: bool = False) -> None:
        self.root = Path(root)
        self.hardlink = hardlink
        try:
            if self.root.exists() and not self.root.is_dir():
                raise ExportError(f"{self.root}: not a directory")
            self.root.mkdir(parents=True, exist_ok=True)
            self._tmp = self.root / self.TEMP_DIR
            # Leftovers of a killed export: never visible under their final names.
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp.mkdir()
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise ExportError(f"{self.root}: not writable")
        except OSError as error:
            raise ExportError(f"{self.root}: {error.strerror or error}") from None
        self._counter = 0

    def describe(self) -> str:
        return str(self.root)

    def is_empty(self) -> bool:
        with os.scandir(self.root) as entries:
            return not any(entry.name != self.TEMP_DIR for entry in entries)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).parts)

    def _temp(self) -> Path:
        self._counter += 1
        return self._tmp / f"{os.getpid()}-{self._counter}"

    @contextmanager
    def _atomic(self, key: str) -> Iterator[Path]:
        """Yield a temp path to fill; on success it replaces ``key`` in one rename."""
        final = self._path(key)
        temp = self._temp()
        try:
            yield temp
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, final)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise ExportError(f"{self.root}: cannot write {key}: {error.strerror}") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def read_manifest(self) -> bytes | None:
        try:
            return (self.root / MANIFEST_KEY).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise ExportError(f"{self.root / MANIFEST_KEY}: {error.strerror}") from None

    def write_manifest(self, data: bytes) -> None:
        with self._atomic(MANIFEST_KEY) as temp, open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        with self._atomic(key) as temp:
            temp.write_bytes(body)

    def put_stream(self, key: str, stream: BinaryIO, content_type: str) -> None:
        with self._atomic(key) as temp, open(temp, "wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)

    def put_path(self, key: str, path: Path, content_type: str) -> None:
        with self._atomic(key) as temp:
            if self.hardlink:
                try:
                    os.link(path, temp)
                    return
                except OSError as error:
                    if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
            shutil.copyfile(path, temp)  # sendfile/copy_file_range: in the kernel, streamed

    def copy_blob(self, source: BlobStore, blob: str, key: str, content_type: str) -> int | None:
        return None  # put_path is the local copy (or hardlink)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            # An empty project directory would list as an empty page on some servers.
            parent = path.parent
            while parent != self.root:
                parent.rmdir()
                parent = parent.parent
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise ExportError(f"{self.root}: cannot delete {key}: {error.strerror}") from None


class S3Target:
    """``s3://bucket/prefix``: objects under the prefix, for an S3 website, a CDN in front
    of the bucket, or pip reading the bucket's REST endpoint itself.

    Each object carries its Content-Type and Cache-Control (an S3 website has no Accept
    negotiation and no extension map). Every PUT is atomic in S3 itself, so a reader sees
    an old object or the new one. Big files are multipart, streamed, through the same
    ``TRANSFER`` config as the S3 store, and copied server-side from a published S3 store
    on the same client.

    Each HTML page is also written at its directory key (``simple/flask/`` next to
    ``simple/flask/index.html``): the REST endpoint and a CDN without website hosting do
    not map a trailing slash to ``index.html``, and pip asks for ``simple/flask/``. It is
    one more PUT per changed project, derived from the page's key (the manifest needs no
    entry of its own), and it lets a private bucket behind a CDN serve pip over HTTPS.
    """

    # Requests in flight at once: S3 answers in tens of milliseconds, each PUT alone. Below
    # the client's connection pool (POOL_CONNECTIONS), which big files' parts share.
    copy_concurrency = 8

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        from mirror.s3 import S3ObjectTree  # boto3 is imported only by those who use it

        self.bucket = bucket
        self.prefix = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
        self.tree = S3ObjectTree(client, bucket, self.prefix, "export")

    @property
    def client(self) -> Any:
        return self.tree.client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".removesuffix("/")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StorageError as error:
            raise ExportError(str(error)) from None

    @staticmethod
    def _headers(key: str, content_type: str) -> ObjectHeaders:
        from mirror.s3 import ObjectHeaders

        cache = PAGE_CACHE if key.startswith("simple/") else FILE_CACHE
        return ObjectHeaders(content_type, cache)

    @staticmethod
    def _directory_key(key: str) -> str | None:
        """``simple/flask/index.html`` -> ``simple/flask/`` (and the root's, ``simple/``)."""
        if key.startswith("simple/") and key.endswith("/index.html"):
            return key.removesuffix("index.html")
        return None

    def is_empty(self) -> bool:
        with self._errors():
            return self.tree.is_empty()

    def read_manifest(self) -> bytes | None:
        with self._errors():
            return self.tree.read_bytes(MANIFEST_KEY)

    def write_manifest(self, data: bytes) -> None:
        from mirror.s3 import ObjectHeaders

        with self._errors():
            self.tree.put_bytes(MANIFEST_KEY, data, ObjectHeaders(MANIFEST_TYPE, MANIFEST_CACHE))

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        _check_key(key)
        headers = self._headers(key, content_type)
        with self._errors():
            self.tree.put_bytes(key, body, headers)
            directory = self._directory_key(key)
            if directory is not None:
                self.tree.put_bytes(directory, body, headers)

    def put_stream(self, key: str, stream: BinaryIO, content_type: str) -> None:
        _check_key(key)
        with self._errors():
            self.tree.put_stream_with(key, stream, self._headers(key, content_type))

    def put_path(self, key: str, path: Path, content_type: str) -> None:
        _check_key(key)
        with self._errors():
            self.tree.put_path(key, path, self._headers(key, content_type))

    def copy_blob(self, source: BlobStore, blob: str, key: str, content_type: str) -> int | None:
        _check_key(key)
        try:
            return self.tree.copy_blob(source, blob, key, self._headers(key, content_type))
        except BlobNotFound:
            raise  # the published blob is gone: the exporter takes a fresh snapshot
        except StorageError as error:
            raise ExportError(str(error)) from None

    def delete(self, key: str) -> None:
        _check_key(key)
        with self._errors():
            # The directory key first: while the page is in the manifest, a killed export
            # deletes both again next time.
            directory = self._directory_key(key)
            if directory is not None:
                self.tree.delete(directory)
            self.tree.delete(key)


def open_target(
    spec: str,
    *,
    base: Path,
    hardlink: bool = False,
    s3_client: Callable[[], Any] | None = None,
) -> ExportTarget:
    """``--to``: a directory (relative to ``base`` unless absolute) or ``s3://bucket/prefix``
    (through the client ``s3_client`` makes). Other schemes are named here, so a typo is an
    error rather than a directory called ``ftp:``."""
    scheme = urlsplit(spec).scheme if "://" in spec else ""
    if scheme == "s3":
        try:
            bucket, prefix = parse_s3_url(spec)
        except ValueError as error:
            raise ExportError(f"--to {spec}: {error}") from None
        if s3_client is None:
            raise ExportError(f"--to {spec}: no S3 client configured for an s3:// target")
        return S3Target(s3_client(), bucket, prefix)
    if scheme:
        raise ExportError(
            f"--to {spec}: unknown target {scheme}://; give a directory or s3://bucket/prefix"
        )
    if not spec.strip():
        raise ExportError("--to: empty; give a directory or s3://bucket/prefix")
    path = Path(spec).expanduser()
    return DirectoryTarget(path if path.is_absolute() else base / path, hardlink=hardlink)


def open_configured_target(
    spec: str, settings: Settings, published: BlobStore, *, base: Path, hardlink: bool = False
) -> ExportTarget:
    """``open_target`` for the command: an s3:// target reaches the endpoint and region of
    ``[storage]`` unless ``[export]`` names others, and shares the published store's
    client when it can (so files are copied server-side). An export is meant to be
    public: it may not be a prefix that holds the quarantine."""
    target = open_target(
        spec, base=base, hardlink=hardlink, s3_client=lambda: _export_s3_client(settings, published)
    )
    if isinstance(target, S3Target):
        _refuse_quarantine_overlap(target, settings)
    return target


def _export_s3_client(settings: Settings, published: BlobStore) -> Any:
    from mirror.s3 import S3Store, s3_client

    storage = settings.storage
    endpoint_url = settings.export.endpoint_url or storage.endpoint_url
    region = settings.export.region or storage.region
    same_service = (endpoint_url, region) == (storage.endpoint_url, storage.region)
    if same_service and isinstance(published, S3Store):
        return published.client
    return s3_client(dataclasses.replace(storage, endpoint_url=endpoint_url, region=region))


def _refuse_quarantine_overlap(target: S3Target, settings: Settings) -> None:
    storage = settings.storage
    if storage.backend != "s3" or (settings.export.endpoint_url not in ("", storage.endpoint_url)):
        return
    bucket = storage.quarantine_bucket or storage.bucket
    prefix = f"{storage.prefix}quarantine/"
    if target.bucket == bucket and prefix.startswith(target.prefix):
        raise ExportError(
            f"{target.describe()}: holds the quarantine (s3://{bucket}/{prefix}), which must"
            " never be readable where the export is; give another bucket or prefix"
        )


def normalize_files_url(url: str) -> str:
    """``--files-url``: an http(s) URL under which ``<sha256>/<filename>`` is served."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ExportError(f"--files-url {url!r}: not an http(s) URL")
    return url if url.endswith("/") else url + "/"


@contextmanager
def export_lock(data_dir: Path) -> Iterator[None]:
    """One export at a time per mirror (an flock the kernel releases if we are killed)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "export.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportError("another export is running; try again later") from None
        yield


# ---------------------------------------------------------------- manifest


@dataclass
class ProjectEntry:
    """One project in the target: what its pages list, and which of its files are there."""

    listing: str = ""  # listing digest of the project's pages in the target ("" unknown)
    files: dict[str, None] = field(default_factory=dict)  # keys present (an ordered set)


@dataclass
class Manifest:
    """What a target holds, as of the last completed step of an export.

    Files are kept per project: a project whose listing is unchanged since a complete
    export has exactly its files in place, so an incremental export never looks at them.
    """

    files_url: str | None = None  # None: pages link the copied files relatively
    complete: bool = True  # False while an export is under way (or was killed)
    pages: dict[str, str] = field(default_factory=dict)  # key -> ETag of the db page
    projects: dict[str, ProjectEntry] = field(default_factory=dict)

    def dumps(self) -> bytes:
        data = {
            "format": MANIFEST_FORMAT,
            "files_url": self.files_url,
            "complete": self.complete,
            "pages": dict(sorted(self.pages.items())),
            "projects": {
                name: {"listing": entry.listing, "files": list(entry.files)}
                for name, entry in sorted(self.projects.items())
            },
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def loads(cls, data: bytes, where: str) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {MANIFEST_FORMAT}")
            manifest = cls(
                files_url=raw["files_url"],
                complete=raw["complete"] is True,
                pages=dict(raw["pages"]),
                projects={
                    name: ProjectEntry(entry["listing"], dict.fromkeys(entry["files"]))
                    for name, entry in raw["projects"].items()
                },
            )
            keys = [*manifest.pages, *(k for e in manifest.projects.values() for k in e.files)]
            if not all(isinstance(v, str) for v in (*keys, *manifest.pages.values())):
                raise ValueError("entries must be strings")
            # Every key is one this module wrote: a tampered manifest must not be able
            # to make an export delete anything else in the target.
            if not all(key.startswith(("simple/", "files/")) for key in keys):
                raise ValueError("a key outside simple/ and files/")
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            why = f"no {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
            raise ExportError(
                f"{where}: not a valid export manifest ({why}); remove the directory"
                " and export again"
            ) from None
        return manifest


# ---------------------------------------------------------------- the export


@dataclass
class ExportReport:
    target: str
    pages_written: list[str] = field(default_factory=list)
    pages_deleted: list[str] = field(default_factory=list)
    files_copied: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    bytes_written: int = 0
    pages_total: int = 0
    files_total: int = 0
    refreshed: list[str] = field(default_factory=list)  # projects whose pages were stale
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"exported to {self.target}: pages {len(self.pages_written)} written,"
            f" {len(self.pages_deleted)} deleted ({self.pages_total} in all); files"
            f" {len(self.files_copied)} copied, {len(self.files_deleted)} deleted"
            f" ({self.files_total} in all); {_size(self.bytes_written)} written"
            f" in {self.seconds:.1f}s"
        )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def file_key(sha256: str, filename: str) -> str:
    return f"files/{sha256}/{filename}"


def listing_digest(entries: Iterable[Entry]) -> str:
    """What a project page lists, as one digest: (sha256, filename, has metadata, has
    provenance) by filename. The same whether read from the servable view or from a
    page's JSON."""
    digest = hashlib.sha256()
    for sha256, filename, has_metadata, has_provenance in sorted(entries, key=lambda e: e[1]):
        digest.update(f"{sha256} {filename} {int(has_metadata)} {int(has_provenance)}\n".encode())
    return digest.hexdigest()


def _page_listing(body: bytes) -> list[Entry]:
    data = json.loads(body)
    return [
        (
            entry["hashes"]["sha256"],
            entry["filename"],
            "core-metadata" in entry,
            entry.get("provenance") is not None,
        )
        for entry in data["files"]
    ]


def _project_of(key: str) -> str | None:
    """``simple/<project>/index.json`` -> project; the root -> None."""
    parts = key.split("/")
    return parts[1] if len(parts) == 3 else None


class _Stale(Exception):
    """The snapshot no longer matches the published store: take a new one."""


Listing = list[Entry]  # by filename


def _servable_listings(db: Database) -> dict[str, Listing]:
    """The servable view, as much of it as an export needs: each project's files."""
    listings: dict[str, Listing] = {}
    for project, sha256, filename, metadata_sha256, provenance_sha256 in db.servable_listing():
        listings.setdefault(project, []).append(
            (sha256, filename, bool(metadata_sha256), bool(provenance_sha256))
        )
    return listings


def _file_keys(listing: Listing) -> Iterator[tuple[str, str]]:
    """(target key, published blob key) of every file a listing links."""
    for sha256, filename, has_metadata, has_provenance in listing:
        yield file_key(sha256, filename), sha256
        if has_metadata:
            yield file_key(sha256, filename) + ".metadata", metadata_key(sha256)
        if has_provenance:
            yield file_key(sha256, filename) + ".provenance", provenance_key(sha256)


@dataclass
class _Snapshot:
    """What one database snapshot says the target should hold."""

    etags: dict[str, str]  # every stored page
    listings: dict[str, Listing]  # every servable project's files
    digests: dict[str, str]  # project -> listing digest, for every servable project
    stale: set[str] | None  # projects whose pages disagree with the servable view

    def wanted_pages(self) -> dict[str, str]:
        wanted = {key: etag for key, etag in self.etags.items() if _project_of(key) in self.digests}
        for fmt in FORMATS:
            wanted[page_key(None, fmt)] = self.etags[page_key(None, fmt)]
        return wanted


class _CountingReader:
    """Counts the bytes a target reads from a stream (for the report)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data


class Exporter:
    def __init__(
        self,
        db: Database,
        published: BlobStore,
        target: ExportTarget,
        *,
        files_url: str | None = None,
        full: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.published = published
        self.target = target
        self.files_url = files_url
        self.full = full
        self.clock = clock

    def run(self) -> ExportReport:
        started = self.clock()
        report = ExportReport(self.target.describe())
        manifest = self._read_manifest()
        for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
            last = attempt == SNAPSHOT_ATTEMPTS
            try:
                with self.db.snapshot():
                    snapshot = self._read_snapshot(manifest)
                    if snapshot.stale is None:
                        self._apply(snapshot, manifest, report)
                        break
            except _Stale as why:
                if last:
                    raise ExportError(f"{self.target.describe()}: {why}; try again") from None
                log.info("export: %s; starting again from a fresh snapshot", why)
                continue
            if last:
                names = ", ".join(sorted(snapshot.stale)[:5]) or "the root"
                raise ExportError(f"pages of {names} keep changing; try again")
            # A transition committed but its pages not yet rendered (or a writer died
            # between the two): render them now, as the writer would, and look again.
            log.info("export: refreshing out-of-date pages: %s", sorted(snapshot.stale))
            report.refreshed.extend(sorted(snapshot.stale))
            refresh_pages(self.db, snapshot.stale)
        report.seconds = self.clock() - started
        return report

    def _read_manifest(self) -> Manifest:
        data = self.target.read_manifest()
        if data is None:
            if not self.target.is_empty():
                raise ExportError(
                    f"{self.target.describe()}: not empty and not an export (no {MANIFEST_KEY});"
                    " give a new or empty directory"
                )
            return Manifest()
        return Manifest.loads(data, f"{self.target.describe()}/{MANIFEST_KEY}")

    def _read_snapshot(self, manifest: Manifest) -> _Snapshot:
        """The stored pages and the servable view, and whether they agree: a project
        page must list exactly its servable files (the manifest remembers what an
        unchanged page lists, so only changed pages are read)."""
        etags = self.db.page_etags()
        listings = _servable_listings(self.db)
        stale = {p for p in map(_project_of, etags) if p is not None and p not in listings}
        root_missing = any(page_key(None, fmt) not in etags for fmt in FORMATS)
        digests: dict[str, str] = {}
        for project, entries in listings.items():
            json_key = page_key(project, JSON)
            etag = etags.get(json_key)
            if etag is None or page_key(project, HTML) not in etags:
                stale.add(project)
                continue
            digests[project] = listing_digest(entries)
            entry = manifest.projects.get(project)
            if entry is not None and entry.listing and manifest.pages.get(json_key) == etag:
                listed = entry.listing
            else:
                page = self.db.page(json_key)
                listed = listing_digest(_page_listing(page.body)) if page else ""
            if listed != digests[project]:
                stale.add(project)
        consistent = not stale and not root_missing
        return _Snapshot(etags, listings, digests, None if consistent else stale)

    # ------------------------------------------------------------ writing

    def _apply(self, snapshot: _Snapshot, manifest: Manifest, report: ExportReport) -> None:
        target = self.target
        wanted_pages = snapshot.wanted_pages()
        copying = self.files_url is None
        report.pages_total = len(wanted_pages)
        report.files_total = copying * sum(
            1 + has_metadata + has_provenance
            for listing in snapshot.listings.values()
            for *_, has_metadata, has_provenance in listing
        )
        # After a complete export with the same file links, a project whose listing is
        # unchanged has exactly its files in place; every other one is compared file by file.
        trusted = not self.full and manifest.complete and manifest.files_url == self.files_url
        diffed = [
            project
            for project in snapshot.listings
            if not trusted
            or project not in manifest.projects
            or manifest.projects[project].listing != snapshot.digests[project]
        ]
        gone = [project for project in manifest.projects if project not in snapshot.listings]
        if diffed or gone or not manifest.complete:
            manifest.complete = False
            target.write_manifest(manifest.dumps())

        # 1. Files first: a page is only ever written after everything it lists.
        pending: list[tuple[ProjectEntry, str, str]] = []
        for project in diffed if copying else ():
            entry = manifest.projects.setdefault(project, ProjectEntry())
            pending.extend(
                (entry, key, blob)
                for key, blob in _file_keys(snapshot.listings[project])
                if self.full or key not in entry.files
            )
        self._copy_files(pending, manifest, report)

        # 2. Project pages, then the root that links them.
        reuse = not self.full and manifest.files_url == self.files_url
        changed = [
            k for k, etag in wanted_pages.items() if not reuse or manifest.pages.get(k) != etag
        ]
        for key in sorted(changed, key=lambda k: (_project_of(k) is None, k)):
            report.bytes_written += self._write_page(key)
            report.pages_written.append(key)
            manifest.pages[key] = wanted_pages[key]
        for project in {p for key in changed if (p := _project_of(key)) is not None}:
            manifest.projects.setdefault(project, ProjectEntry()).listing = snapshot.digests[
                project
            ]
        manifest.files_url = self.files_url  # the pages now link files this way

        # 3. Pages of projects with nothing servable left: the root stopped linking them.
        for key in sorted(set(manifest.pages) - set(wanted_pages)):
            target.delete(key)
            report.pages_deleted.append(key)
            del manifest.pages[key]
        if report.pages_written or report.pages_deleted:
            target.write_manifest(manifest.dumps())

        # 4. Files no page lists any more (revoked; or all, when now linked elsewhere).
        for project in [*diffed, *gone]:
            entry = manifest.projects.get(project, ProjectEntry())
            listing = snapshot.listings.get(project, []) if copying else []
            keep = {key for key, _ in _file_keys(listing)}
            for key in [key for key in entry.files if key not in keep]:
                target.delete(key)
                report.files_deleted.append(key)
                del entry.files[key]
            if project in gone:
                manifest.projects.pop(project, None)
        if not manifest.complete:
            manifest.complete = True
            target.write_manifest(manifest.dumps())

    def _copy_files(
        self, pending: list[tuple[ProjectEntry, str, str]], manifest: Manifest, report: ExportReport
    ) -> None:
        """Copy ``pending`` files, ``target.copy_concurrency`` at a time (an object store
        is latency-bound: one PUT after another would take hours for a big mirror). Each
        file enters the manifest once it is whole in the target; the manifest is written
        every CHECKPOINT_SECONDS, and at the end even when a copy failed, so the next
        export goes on from there."""
        target = self.target
        workers = max(1, target.copy_concurrency)
        queue = iter(pending)
        running: dict[Future[int], tuple[ProjectEntry, str]] = {}
        failure: BaseException | None = None
        checkpoint, unrecorded = self.clock(), 0
        pool = ThreadPoolExecutor(workers, thread_name_prefix="qmirror-export")
        try:
            while True:
                while failure is None and len(running) < workers:
                    item = next(queue, None)
                    if item is None:
                        break
                    entry, key, blob = item
                    running[pool.submit(self._copy, key, blob)] = (entry, key)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    entry, key = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        failure = failure or error  # the first; the others in flight finish
                        continue
                    report.bytes_written += future.result()
                    report.files_copied.append(key)
                    entry.files[key] = None
                    unrecorded += 1
                if (
                    unrecorded
                    and failure is None
                    and self.clock() - checkpoint > CHECKPOINT_SECONDS
                ):
                    target.write_manifest(manifest.dumps())
                    checkpoint, unrecorded = self.clock(), 0
            if failure is not None:
                raise failure
        except BaseException:
            # An interrupt: let the copies under way finish (unrecorded: the next export
            # writes them again). Keep what was recorded; when the target cannot take even
            # that (its endpoint is gone), the copy's error is the one to report.
            pool.shutdown(wait=True, cancel_futures=True)
            if unrecorded:
                with suppress(ExportError):
                    target.write_manifest(manifest.dumps())
            raise
        finally:
            pool.shutdown(wait=True)
        if unrecorded:
            target.write_manifest(manifest.dumps())

    def _copy(self, key: str, blob: str) -> int:
        content_type = (
            METADATA_TYPE
            if key.endswith(".metadata")
            else PROVENANCE_TYPE
            if key.endswith(".provenance")
            else FILE_TYPE
        )
        try:
            copied = self.target.copy_blob(self.published, blob, key, content_type)
            if copied is not None:
                return copied
            local = self.published.local_path(blob)
            if local is not None:
                self.target.put_path(key, local, content_type)
                return local.stat().st_size
            with self.published.open(blob) as stream:
                counting = _CountingReader(stream)
                self.target.put_stream(key, counting, content_type)  # type: ignore[arg-type]
                return counting.count
        except (BlobNotFound, FileNotFoundError):
            # Revoked after the snapshot was taken (a revoke deletes the bytes last).
            raise _Stale(f"{key} is no longer in the published store") from None
        except StorageError as error:
            raise ExportError(str(error)) from None

    def _write_page(self, key: str) -> int:
        project = _project_of(key)
        fmt = JSON if key.endswith(".json") else HTML
        if self.files_url is not None and project is not None:
            # The stored page's renderer and data, with absolute file links.
            rendered = render_project(project, self.db.servable_files(project), self.files_url)
            body = rendered[key].body
        else:
            page = self.db.page(key)
            if page is None:  # cannot happen inside the snapshot that listed it
                raise _Stale(f"page {key} vanished")
            body = page.body
        self.target.put_bytes(key, body, PAGE_TYPES[fmt])
        return len(body)


def export(
    db: Database,
    published: BlobStore,
    target: ExportTarget,
    *,
    files_url: str | None = None,
    full: bool = False,
) -> ExportReport:
    """Bring ``target`` up to date with the published index; see the module docstring."""
    return Exporter(db, published, target, files_url=files_url, full=full).run()


__all__ = [
    "DirectoryTarget",
    "ExportError",
    "ExportReport",
    "ExportTarget",
    "Manifest",
    "S3Target",
    "export",
    "export_lock",
    "open_configured_target",
    "open_target",
]
