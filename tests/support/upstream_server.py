"""A fake upstream index (PyPI or pypiserver) on a loopback port, for tests.

``FakeIndex`` serves real files from disk over real sockets, the way PyPI does:

- ``/simple/`` and ``/simple/<project>/``: PEP 691 JSON (``api-version`` 1.1, with PEP 700
  ``versions``, ``size``, ``upload-time``) or PEP 503 HTML, chosen by ``Accept`` (or
  ``?format=json|html``) when ``api="json"``; always HTML (``text/html``) when
  ``api="html"``, like pypiserver. Pages carry an ETag (``If-None-Match`` gets a 304) and
  ``X-PyPI-Last-Serial``; a non-normalized name (``/simple/Foo_Bar/``) or a missing
  trailing slash gets a 301 to ``/simple/foo-bar/``.
- ``/files/<filename>``: the bytes, streamed; ``/files/<filename>.metadata``: the wheel's
  METADATA (PEP 658), announced as ``core-metadata`` / ``data-core-metadata``.
  JSON pages link files with absolute URLs (like PyPI), HTML pages with relative ones.

Usage::

    from tests.support.upstream_server import FakeIndex

    with FakeIndex(tmp_path / "upstream") as index:        # or index.start() ... index.stop()
        index.add(make_wheel(build, "alpha", "1.0"), upload_time=datetime(2025, 1, 1, tzinfo=UTC))
        client = UpstreamClient(index.url)                 # "http://127.0.0.1:PORT/simple/"
        index.fail_next("/simple/alpha/", status=500)      # the next request there gets a 500
        index.corrupt("alpha-1.0-py3-none-any.whl")        # bytes no longer match the hash
        assert ("GET", "/files/alpha-1.0-py3-none-any.whl") in index.requests

As a pytest fixture (``tests/conftest.py`` wires ``fake_index`` this way)::

    @pytest.fixture
    def fake_index(tmp_path):
        started = []
        def start(api="json", **options):
            index = FakeIndex(tmp_path / f"upstream-{len(started)}", api=api, **options)
            index.start()
            started.append(index)
            return index
        yield start
        for index in started:
            index.stop()

Fault injection: ``fail_next`` (an HTTP status, or 0 to drop the connection without an
answer), ``corrupt``, ``truncate``, ``remove``, ``yank``, and ``serve_raw`` for a page of
any bytes and content type. ``requests`` logs every ``(method, path)`` received, faults
included. Adding a file again (after ``remove``) clears its faults.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import socket
import threading
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
LEGACY_HTML_TYPE = "text/html"
_LATEST = {
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
}
# Offered in this order: on a tie (e.g. "*/*", or no Accept at all) HTML wins, like PyPI.
_OFFERS = (LEGACY_HTML_TYPE, HTML_TYPE, JSON_TYPE)
_SEND_CHUNK = 64 * 1024


@dataclass
class _Entry:
    filename: str
    project: NormalizedName
    version: str
    path: Path
    digest: str
    size: int
    upload_time: datetime | None
    yanked: str | None
    requires_python: str | None
    metadata: bytes | None
    provenance: bytes | None = None
    corrupt: bool = False
    truncate: bool = False


@dataclass
class _Failure:
    suffix: str
    status: int
    remaining: int


@dataclass(frozen=True)
class _Raw:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


class FakeIndex:
    """A fake upstream simple index on ``127.0.0.1`` (see the module docstring).

    ``api``: ``"json"`` (PEP 691 and PEP 503 by content negotiation, like PyPI) or
    ``"html"`` (PEP 503 ``text/html`` only, like pypiserver). ``hash_name``: the hash the
    pages declare (``"md5"`` for an old-style index). ``metadata_keys``: how PEP 658
    metadata is announced: ``core-metadata`` (PEP 714) and/or ``dist-info-metadata``
    (the older spelling), as JSON keys and as ``data-`` attributes.
    """

    def __init__(
        self,
        root: Path,
        *,
        api: str = "json",
        hash_name: str = "sha256",
        metadata_keys: Iterable[str] = ("core-metadata", "dist-info-metadata"),
    ) -> None:
        if api not in ("json", "html"):
            raise ValueError(f"api must be 'json' or 'html', not {api!r}")
        self.root = Path(root)
        self.files_dir = self.root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.api = api
        self.hash_name = hash_name
        self.metadata_keys = tuple(metadata_keys)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._serial = 0
        self._project_serials: dict[NormalizedName, int] = {}
        self._failures: list[_Failure] = []
        self._raw: dict[str, _Raw] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Listen on a free loopback port; return the index URL ``http://127.0.0.1:P/simple/``."""
        if self._server is not None:
            raise RuntimeError("this FakeIndex is already started")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.index = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening and cut every open connection (the port then refuses)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeIndex:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the FakeIndex is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The index URL, ``http://127.0.0.1:PORT/simple/``."""
        return f"{self.base_url}/simple/"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the FakeIndex is not started")
        return int(self._server.server_address[1])

    def file_url(self, filename: str) -> str:
        return f"{self.base_url}/files/{quote(filename)}"

    # ------------------------------------------------------------ content

    def add(
        self,
        path: Path,
        *,
        upload_time: datetime | None = None,
        yanked: str | None = None,
        requires_python: str | None = None,
        metadata: bool | bytes = True,
        provenance: bytes | None = None,
    ) -> None:
        """Serve the wheel or sdist at ``path`` (copied in) under its project.

        ``provenance``: a PEP 740 provenance object to announce (JSON ``provenance`` key,
        HTML ``data-provenance``) and serve at ``/files/<filename>.provenance``.

        ``requires_python`` defaults to the file's own Requires-Python (best effort: a
        file that is not a readable archive is served all the same). ``metadata=True``
        serves a wheel's METADATA as PEP 658 metadata; ``bytes`` serves those bytes
        instead (metadata that lies about the wheel); ``False`` offers none.
        ``yanked``: ``""`` yanked without a reason, or the reason.
        """
        path = Path(path)
        filename = path.name
        project, version, is_wheel = _parse_filename(filename)
        stored = self.files_dir / filename
        if path.resolve() != stored.resolve():
            shutil.copyfile(path, stored)
        served_metadata: bytes | None
        if isinstance(metadata, bytes):
            served_metadata = metadata
        elif metadata and is_wheel:
            served_metadata = _wheel_metadata(stored)
        else:
            served_metadata = None
        if requires_python is None:
            own = _wheel_metadata(stored) if is_wheel else _sdist_metadata(stored)
            requires_python = _header(own, "Requires-Python")
        if upload_time is not None and upload_time.tzinfo is None:
            raise ValueError("upload_time must be timezone-aware")
        digest, size = _file_digest(stored, self.hash_name)
        entry = _Entry(
            filename=filename,
            project=project,
            version=version,
            path=stored,
            digest=digest,
            size=size,
            upload_time=upload_time,
            yanked=yanked,
            requires_python=requires_python,
            metadata=served_metadata,
            provenance=provenance,
        )
        with self._lock:
            self._entries[filename] = entry
            self._touch(project)

    def remove(self, filename: str) -> None:
        """Stop listing and serving ``filename`` (its faults are forgotten too)."""
        with self._lock:
            entry = self._entries.pop(filename)
            self._touch(entry.project)

    def yank(self, filename: str, reason: str | None = "") -> None:
        """Mark ``filename`` yanked (``""``: no reason); ``reason=None`` un-yanks it."""
        with self._lock:
            self._entries[filename].yanked = reason
            self._touch(self._entries[filename].project)

    def projects(self) -> list[NormalizedName]:
        with self._lock:
            return sorted({entry.project for entry in self._entries.values()})

    def digest(self, filename: str) -> str:
        """The hash the pages declare for ``filename`` (``hash_name``, hex)."""
        with self._lock:
            return self._entries[filename].digest

    # ------------------------------------------------------------ faults

    def fail_next(self, path_suffix: str, status: int = 500, times: int = 1) -> None:
        """The next ``times`` requests whose path ends with ``path_suffix`` answer
        ``status``; status 0 drops the connection without any answer."""
        with self._lock:
            self._failures.append(_Failure(path_suffix, status, times))

    def corrupt(self, filename: str) -> None:
        """Serve ``filename`` with one byte changed: same length, a different hash."""
        with self._lock:
            self._entries[filename].corrupt = True

    def truncate(self, filename: str) -> None:
        """Send ``filename`` with its full Content-Length but only half the body, then close."""
        with self._lock:
            self._entries[filename].truncate = True

    def serve_raw(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer GETs of exactly ``path`` with these bytes, whatever else is registered."""
        with self._lock:
            self._raw[path] = _Raw(status, content_type, body, tuple((headers or {}).items()))

    # ------------------------------------------------------------ internals

    def _touch(self, project: NormalizedName) -> None:
        self._serial += 1
        self._project_serials[project] = self._serial

    def _take_failure(self, path: str) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure.remaining > 0 and path.endswith(failure.suffix):
                    failure.remaining -= 1
                    return failure.status
        return None

    def _render(self, project: NormalizedName | None, media_type: str) -> tuple[bytes, int]:
        with self._lock:
            if project is None:
                names = sorted({entry.project for entry in self._entries.values()})
                return _render_root(names, media_type, self.api), self._serial
            entries = sorted(
                (e for e in self._entries.values() if e.project == project),
                key=lambda e: e.filename,
            )
            serial = self._project_serials.get(project, 0)
            files = [self._file_context(entry) for entry in entries]
        return _render_project(project, files, media_type, self.api), serial

    def _file_context(self, entry: _Entry) -> dict[str, Any]:
        metadata_hash = (
            None if entry.metadata is None else hashlib.sha256(entry.metadata).hexdigest()
        )
        return {
            "entry": entry,
            "url": self.file_url(entry.filename),
            "relative": f"../../files/{quote(entry.filename)}",
            "hash_name": self.hash_name,
            "metadata_hash": metadata_hash,
            "metadata_keys": self.metadata_keys,
        }


# ---------------------------------------------------------------- rendering


def _render_root(names: list[NormalizedName], media_type: str, api: str) -> bytes:
    if media_type == JSON_TYPE:
        return json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": name} for name in names]}
        ).encode()
    links = "\n".join(f'    <a href="{quote(name)}/">{html.escape(name)}</a>' for name in names)
    version = "1.1" if api == "json" else "1.0"
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{version}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        f"{links}\n  </body>\n</html>\n"
    ).encode()


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _render_project(
    project: NormalizedName, files: list[dict[str, Any]], media_type: str, api: str
) -> bytes:
    if media_type == JSON_TYPE:
        versions = sorted({f["entry"].version for f in files}, key=_version_key)
        return json.dumps(
            {
                "meta": {"api-version": "1.1"},
                "name": project,
                "versions": versions,
                "files": [_json_file(f) for f in files],
            },
            indent=1,
        ).encode()
    version = "1.1" if api == "json" else "1.0"
    anchors = "\n".join(_html_anchor(f) for f in files)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{version}">\n'
        f"    <title>Links for {html.escape(project)}</title>\n  </head>\n  <body>\n"
        f"    <h1>Links for {html.escape(project)}</h1>\n{anchors}\n  </body>\n</html>\n"
    ).encode()


def _json_file(context: dict[str, Any]) -> dict[str, Any]:
    entry: _Entry = context["entry"]
    item: dict[str, Any] = {
        "filename": entry.filename,
        "url": context["url"],
        "hashes": {context["hash_name"]: entry.digest},
        "requires-python": entry.requires_python,
        "yanked": False if entry.yanked is None else (entry.yanked or True),
        "size": entry.size,
    }
    if entry.upload_time is not None:
        item["upload-time"] = entry.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    metadata = False if context["metadata_hash"] is None else {"sha256": context["metadata_hash"]}
    for key in context["metadata_keys"]:
        item[key] = metadata
    if entry.provenance is not None:
        item["provenance"] = context["url"] + ".provenance"
    return item


def _html_anchor(context: dict[str, Any]) -> str:
    entry: _Entry = context["entry"]
    href = f"{context['relative']}#{context['hash_name']}={entry.digest}"
    attributes = [f'href="{html.escape(href)}"']
    if entry.requires_python:
        attributes.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
    if entry.yanked is not None:
        attributes.append(f'data-yanked="{html.escape(entry.yanked)}"')
    if context["metadata_hash"] is not None:
        for key in context["metadata_keys"]:
            attributes.append(f'data-{key}="sha256={context["metadata_hash"]}"')
    if entry.provenance is not None:
        attributes.append(f'data-provenance="{html.escape(context["relative"])}.provenance"')
    return f"    <a {' '.join(attributes)}>{html.escape(entry.filename)}</a><br />"


def _negotiate(accept: str | None, format_param: str | None) -> str | None:
    """The media type to answer with, PyPI style; None when nothing acceptable is offered."""
    if format_param:
        return {"json": JSON_TYPE, "html": HTML_TYPE}.get(format_param.lower())
    ranges: list[tuple[str, float]] = []
    for part in (accept or "*/*").split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((_LATEST.get(media, media), q))
    best: tuple[float, int] = (0.0, -1)
    chosen: str | None = None
    for offer in _OFFERS:
        kind = offer.split("/", 1)[0]
        for media, q in ranges:
            if media == offer:
                specificity = 2
            elif media == f"{kind}/*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            if q > 0 and (q, specificity) > best:
                best, chosen = (q, specificity), offer
    return chosen


# ---------------------------------------------------------------- files


def _parse_filename(filename: str) -> tuple[NormalizedName, str, bool]:
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            return name, str(version), True
        name, version = parse_sdist_filename(filename)
        return name, str(version), False
    except (InvalidWheelFilename, InvalidSdistFilename) as error:
        raise ValueError(f"not a wheel or sdist filename: {filename!r} ({error})") from None


def _file_digest(path: Path, hash_name: str) -> tuple[str, int]:
    digest = hashlib.new(hash_name)
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_SEND_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _wheel_metadata(path: Path) -> bytes | None:
    """The wheel's ``<name>-<version>.dist-info/METADATA``, or None when unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                parts = member.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return archive.read(member)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return None
    return None


def _sdist_metadata(path: Path) -> bytes | None:
    import tarfile

    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.count("/") == 1 and member.endswith("/PKG-INFO"):
                        return archive.read(member)
            return None
        with tarfile.open(path) as archive:
            for info in archive:
                if info.isfile() and info.name.count("/") == 1 and info.name.endswith("/PKG-INFO"):
                    stream = archive.extractfile(info)
                    return stream.read() if stream is not None else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile, KeyError, ValueError, EOFError):
        return None
    return None


def _header(metadata: bytes | None, name: str) -> str | None:
    if metadata is None:
        return None
    value = BytesHeaderParser().parsebytes(metadata).get(name)
    if value is None:
        return None
    return str(value).strip() or None


# ---------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    index: FakeIndex


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeIndex/1.0"
    timeout = 30  # an idle keep-alive connection ends eventually
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.index._lock:
            self.server.index._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.index._lock:
            self.server.index._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    # ------------------------------------------------------------ routing

    def _handle(self, *, send_body: bool) -> None:
        index = self.server.index
        with index._lock:
            index.requests.append((self.command, self.path))
            raw = index._raw.get(self.path)
        parts = urlsplit(self.path)
        path = parts.path
        failure = index._take_failure(path)
        if failure is not None:
            if failure == 0:
                self.close_connection = True
                return
            self._send(failure, "text/plain", f"injected failure {failure}\n".encode(), send_body)
            return
        if raw is not None:
            self._send(raw.status, raw.content_type, raw.body, send_body, dict(raw.headers))
            return
        query = parse_qs(parts.query)
        segments = path.split("/")
        if path == "/simple/":
            self._page(None, query, send_body)
        elif len(segments) in (3, 4) and segments[1] == "simple" and segments[2]:
            name = unquote(segments[2])
            normalized = canonicalize_name(name)
            if name != normalized or len(segments) == 3 or segments[3]:
                location = f"/simple/{quote(normalized)}/"
                if parts.query:
                    location += f"?{parts.query}"
                self._send(301, "text/plain", b"", send_body, {"Location": location})
            else:
                self._page(normalized, query, send_body)
        elif len(segments) == 3 and segments[1] == "files" and segments[2]:
            self._file(unquote(segments[2]), send_body)
        else:
            self._send(404, "text/plain", b"not found\n", send_body)

    def _page(
        self, project: NormalizedName | None, query: dict[str, list[str]], send_body: bool
    ) -> None:
        index = self.server.index
        if index.api == "html":
            media_type = LEGACY_HTML_TYPE
        else:
            formats = query.get("format", [])
            media_type = (
                _negotiate(self.headers.get("Accept"), formats[0] if formats else None) or ""
            )
            if not media_type:
                self._send(406, "text/plain", b"not acceptable\n", send_body)
                return
        if project is not None and project not in index.projects():
            self._send(404, "text/plain", b"no such project\n", send_body)
            return
        body, serial = index._render(project, media_type)
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {"ETag": etag, "Vary": "Accept", "X-PyPI-Last-Serial": str(serial)}
        if _etag_matches(self.headers.get("If-None-Match"), etag):
            self._send(304, media_type, b"", send_body, headers)
            return
        content_type = media_type + ("; charset=utf-8" if "html" in media_type else "")
        self._send(200, content_type, body, send_body, headers)

    def _file(self, filename: str, send_body: bool) -> None:
        index = self.server.index
        with index._lock:
            entry = index._entries.get(filename)
            metadata_of = (
                index._entries.get(filename.removesuffix(".metadata"))
                if filename.endswith(".metadata")
                else None
            )
        if entry is None and metadata_of is not None and metadata_of.metadata is not None:
            self._send(200, "application/octet-stream", metadata_of.metadata, send_body)
            return
        if entry is None and filename.endswith(".provenance"):
            with index._lock:
                attested = index._entries.get(filename.removesuffix(".provenance"))
            if attested is not None and attested.provenance is not None:
                self._send(200, "application/json", attested.provenance, send_body)
                return
        if entry is None:
            self._send(404, "text/plain", b"no such file\n", send_body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(entry.size))
        self.send_header("ETag", f'"{entry.digest}"')
        self.end_headers()
        if not send_body:
            return
        limit = entry.size // 2 if entry.truncate else entry.size
        flip_at = entry.size // 2 if entry.corrupt else -1
        sent = 0
        try:
            with entry.path.open("rb") as stream:
                while sent < limit:
                    chunk = stream.read(min(_SEND_CHUNK, limit - sent))
                    if not chunk:
                        break
                    if sent <= flip_at < sent + len(chunk):
                        position = flip_at - sent
                        chunk = (
                            chunk[:position]
                            + bytes([chunk[position] ^ 0xFF])
                            + chunk[position + 1 :]
                        )
                    self.wfile.write(chunk)
                    sent += len(chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if entry.truncate:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        send_body: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        elif content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if send_body and status != 304 and body:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return etag in candidates
