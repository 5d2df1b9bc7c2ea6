"""The upstream index client: PEP 691 JSON and PEP 503 HTML project pages, and streamed,
hash-verified downloads.

One :class:`UpstreamClient` is shared by every thread of a sync: it holds a urllib3
``PoolManager`` (thread safe) and no other mutable state. Everything that can go wrong
with the upstream ends as an :class:`UpstreamError` whose message is one line naming the
URL and the reason; nothing else escapes (a traceback of an unrelated kind is a bug).

Connection errors, timeouts, a body cut short, HTTP 429 and 5xx are retried with
exponential backoff; a download that fails mid-body starts again from the first byte.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NoReturn, Self, TypeVar
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit

import urllib3
from packaging.utils import InvalidName, NormalizedName, canonicalize_name

log = logging.getLogger("qmirror.upstream")

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
LEGACY_HTML_TYPE = "text/html"
ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, {LEGACY_HTML_TYPE};q=0.01"
_JSON_TYPES = frozenset({JSON_TYPE, "application/vnd.pypi.simple.latest+json"})
_HTML_TYPES = frozenset({HTML_TYPE, "application/vnd.pypi.simple.latest+html", LEGACY_HTML_TYPE})

SUPPORTED_API_MAJOR = 1  # PEP 629: refuse a page whose major api-version is newer
CHUNK_SIZE = 1024 * 1024  # downloads are written and hashed this much at a time
MAX_PAGE_BYTES = 256 * 1024 * 1024  # the largest PyPI pages are tens of MB
MAX_PROVENANCE_BYTES = 4 * 1024 * 1024  # a PEP 740 provenance object is a few KB per bundle
PROVENANCE_ACCEPT = "application/vnd.pypi.integrity.v1+json, application/json;q=0.5"
MAX_REDIRECTS = 10
MAX_RETRY_AFTER = 60.0  # seconds: an upstream's Retry-After is honoured up to this
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_T = TypeVar("_T")


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class UpstreamFile:
    """One file listed on an upstream project page."""

    filename: str
    url: str  # absolute URL, fragment stripped
    hashes: Mapping[str, str] = field(hash=False)  # algorithm -> lowercase hex
    requires_python: str | None
    yanked: str | None  # None: not yanked; "": yanked with no reason; else the reason
    upload_time: datetime | None  # tz-aware UTC (PEP 700, JSON only)
    size: int | None  # PEP 700
    # PEP 658/714: None = not offered; {} = offered without a hash; else its hashes
    core_metadata: Mapping[str, str] | None = field(hash=False)
    provenance: str | None  # PEP 740 provenance URL (absolute)


@dataclass(frozen=True)
class ProjectPage:
    name: NormalizedName
    files: tuple[UpstreamFile, ...]  # empty when not_modified
    etag: str | None
    last_serial: int | None  # X-PyPI-Last-Serial
    not_modified: bool  # the caller's etag got a 304
    api_format: str  # "json" or "html"; for a 304 without Content-Type, "json"


@dataclass(frozen=True)
class DownloadResult:
    sha256: str
    size: int


# ---------------------------------------------------------------- errors


class UpstreamError(Exception):
    """Something went wrong talking to the upstream. ``str(e)`` is one line."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(_one_line(message))
        self.url = url


class ProjectNotFound(UpstreamError):
    """The upstream answered 404 for a project page."""


class DownloadError(UpstreamError):
    """A file could not be downloaded intact (nothing is left at the destination)."""


class HashMismatch(DownloadError):
    def __init__(self, url: str, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(
            f"GET {url}: {algorithm} hash mismatch: the upstream declared {expected}, "
            f"the bytes received hash to {actual}",
            url=url,
        )
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class _Retryable(Exception):
    """One attempt failed in a way another attempt may not (raised and caught here only)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# ---------------------------------------------------------------- the client


class UpstreamClient:
    """A client for one upstream simple index, e.g. ``https://pypi.org/simple/``.

    ``retries`` is how many times a failed request is tried again (0: once only);
    the n-th retry waits ``backoff * 2 ** (n - 1)`` seconds. ``timeout`` applies to
    connecting and to each read. ``pool_size`` is the connections kept per host.
    """

    def __init__(
        self,
        index_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        pool_size: int = 8,
        user_agent: str = "quarantine-mirror",
    ) -> None:
        if urlsplit(index_url).scheme not in ("http", "https"):
            raise ValueError(f"upstream index URL {index_url!r} is not an http(s) URL")
        if retries < 0 or timeout <= 0 or backoff < 0 or pool_size < 1:
            raise ValueError("timeout and pool_size must be positive, retries and backoff >= 0")
        self.index_url = index_url if index_url.endswith("/") else index_url + "/"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=pool_size,
            block=False,
            headers={"User-Agent": user_agent},
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
        )
        self._closed = threading.Event()

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._closed.set()
        self._pool.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ project pages

    def project_page(self, name: str, *, etag: str | None = None) -> ProjectPage:
        """Fetch ``<index>/<normalized name>/``; a 304 for ``etag`` gives ``not_modified``."""
        try:
            normalized = canonicalize_name(name, validate=True)
        except InvalidName:
            raise UpstreamError(f"{name!r} is not a valid project name") from None
        url = self.index_url + quote(normalized, safe="") + "/"
        headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        if etag:
            headers["If-None-Match"] = etag
        return self._retrying(
            url, UpstreamError, lambda: self._page_attempt(url, normalized, headers)
        )

    def _page_attempt(
        self, url: str, name: NormalizedName, headers: Mapping[str, str]
    ) -> ProjectPage:
        final_url, response = self._open(url, headers)
        complete = False
        try:
            content_type = _media_type(response.headers.get("Content-Type"))
            etag = response.headers.get("ETag")
            serial = _int_or_none(response.headers.get("X-PyPI-Last-Serial"))
            if response.status == 304:
                complete = True
                return ProjectPage(
                    name=name,
                    files=(),
                    etag=etag or headers.get("If-None-Match"),
                    last_serial=serial,
                    not_modified=True,
                    api_format="html" if content_type in _HTML_TYPES else "json",
                )
            if response.status == 404:
                raise ProjectNotFound(f"GET {url}: no such project (HTTP 404)", url=url)
            _check_status(url, response)
            if content_type in _JSON_TYPES:
                api_format = "json"
            elif content_type in _HTML_TYPES:
                api_format = "html"
            else:
                raise UpstreamError(
                    f"GET {final_url}: unknown content type {content_type or '(none)'!r}, "
                    "expected a PEP 691 JSON or PEP 503 HTML page",
                    url=url,
                )
            body = _read_page(final_url, response)
            complete = True
        finally:
            _done(response, complete)
        if api_format == "json":
            files = _parse_json_page(final_url, body)
        else:
            files = _parse_html_page(final_url, body, _charset(response.headers))
        return ProjectPage(
            name=name,
            files=files,
            etag=etag,
            last_serial=serial,
            not_modified=False,
            api_format=api_format,
        )

    # ------------------------------------------------------------ provenance

    def provenance(self, file: UpstreamFile) -> bytes | None:
        """The PEP 740 provenance object the upstream offers for ``file`` (its bytes,
        unparsed), or None when it offers none or answers 404 for it."""
        url = file.provenance
        if url is None:
            return None
        if urlsplit(url).scheme not in ("http", "https"):
            raise UpstreamError(f"GET {url}: not an http(s) URL", url=url)
        return self._retrying(url, UpstreamError, lambda: self._provenance_attempt(url))

    def _provenance_attempt(self, url: str) -> bytes | None:
        final_url, response = self._open(url, {"Accept": PROVENANCE_ACCEPT})
        complete = False
        try:
            if response.status == 404:
                complete = True
                return None
            _check_status(url, response)
            body = _read_page(final_url, response, limit=MAX_PROVENANCE_BYTES)
            complete = True
            return body
        finally:
            _done(response, complete)

    # ------------------------------------------------------------ downloads

    def download(
        self, file: UpstreamFile, dest: Path, *, max_bytes: int | None = None
    ) -> DownloadResult:
        """Stream ``file`` to ``dest`` verifying its declared hash; ``dest`` is removed on
        any failure, so it holds either the whole verified file or nothing. ``max_bytes``
        bounds a file whose listing gave no size (PEP 503 HTML never does)."""
        url = file.url
        if urlsplit(url).scheme not in ("http", "https"):
            raise DownloadError(f"GET {url}: not an http(s) URL", url=url)
        try:
            return self._retrying(
                url, DownloadError, lambda: self._download_attempt(file, dest, max_bytes)
            )
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def _download_attempt(
        self, file: UpstreamFile, dest: Path, max_bytes: int | None
    ) -> DownloadResult:
        url = file.url
        algorithm, expected = _declared_hash(file.hashes)
        final_url, response = self._open(url, {"Accept-Encoding": "identity"}, DownloadError)
        complete = False
        try:
            _check_status(url, response, error=DownloadError)
            declared_length = _int_or_none(response.headers.get("Content-Length"))
            if file.size is None and max_bytes and (declared_length or 0) > max_bytes:
                raise DownloadError(
                    f"GET {url}: {declared_length} bytes is over the {max_bytes}-byte limit",
                    url=url,
                )
            sha256 = hashlib.sha256()
            other = hashlib.new(algorithm) if algorithm not in (None, "sha256") else None
            received = 0
            try:
                out: BinaryIO = dest.open("wb")
            except OSError as error:
                raise DownloadError(f"GET {url}: cannot write {dest}: {error}", url=url) from None
            with out, _truncation_reported(lambda: received, declared_length):
                for chunk in _chunks(response):
                    received += len(chunk)
                    if file.size is not None and received > file.size:
                        raise DownloadError(
                            f"GET {url}: more than the {file.size} bytes the upstream listed",
                            url=url,
                        )
                    if file.size is None and max_bytes and received > max_bytes:
                        raise DownloadError(
                            f"GET {url}: more than the {max_bytes}-byte limit", url=url
                        )
                    sha256.update(chunk)
                    if other is not None:
                        other.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as error:
                        raise DownloadError(
                            f"GET {url}: cannot write {dest}: {error}", url=url
                        ) from None
            complete = True
        finally:
            _done(response, complete)
        if declared_length is not None and received != declared_length:
            raise _Retryable(f"truncated body: {received} of {declared_length} bytes received")
        actual = sha256.hexdigest()
        if algorithm is not None and expected is not None:
            got = actual if other is None else other.hexdigest()
            if got != expected:
                raise HashMismatch(url, algorithm, expected, got)
        if final_url != url:
            log.debug("%s: downloaded from %s", file.filename, final_url)
        return DownloadResult(sha256=actual, size=received)

    # ------------------------------------------------------------ plumbing

    def _retrying(self, url: str, error: type[UpstreamError], attempt: Callable[[], _T]) -> _T:
        """Run ``attempt`` until it succeeds, raises a final error, or retries run out."""
        attempts = self.retries + 1
        for number in range(1, attempts + 1):
            if self._closed.is_set():
                raise error(f"GET {url}: the upstream client is closed", url=url)
            try:
                return attempt()
            except _Retryable as failure:
                if number == attempts:
                    tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
                    raise error(
                        f"GET {url}: {failure.reason} (gave up after {tries})", url=url
                    ) from None
                delay = self.backoff * 2 ** (number - 1)
                if failure.retry_after is not None:
                    delay = max(delay, min(failure.retry_after, MAX_RETRY_AFTER))
                log.warning(
                    "GET %s: %s; retrying in %.2fs (%d/%d)",
                    url, failure.reason, delay, number, self.retries,
                )  # fmt: skip
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _open(
        self,
        url: str,
        headers: Mapping[str, str],
        error: type[UpstreamError] = UpstreamError,
    ) -> tuple[str, urllib3.BaseHTTPResponse]:
        """Send a GET, following redirects; return the final URL and the unread response."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._pool.request(
                    "GET",
                    current,
                    headers=dict(headers),
                    preload_content=False,
                    redirect=False,
                    retries=False,
                )
            except urllib3.exceptions.LocationValueError as failure:
                raise error(f"GET {current}: bad URL: {failure}", url=url) from None
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as failure:
                raise _Retryable(_describe(failure, self.timeout)) from None
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return current, response
            _done(response, complete=False)
            target = urljoin(current, location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise error(f"GET {current}: redirected to a non-http URL {target}", url=url)
            log.debug("GET %s: redirected (%d) to %s", current, response.status, target)
            current = target
        raise error(f"GET {url}: more than {MAX_REDIRECTS} redirects", url=url)


# ---------------------------------------------------------------- responses


def _check_status(
    url: str, response: urllib3.BaseHTTPResponse, *, error: type[UpstreamError] = UpstreamError
) -> None:
    status = response.status
    if status == 200:
        return
    reason = f"HTTP {status} {response.reason or ''}".rstrip()
    if status == 429 or status >= 500:
        raise _Retryable(reason, _retry_after(response.headers.get("Retry-After")))
    raise error(f"GET {url}: {reason}", url=url)


@contextmanager
def _truncation_reported(received: Callable[[], int], expected: int | None) -> Iterator[None]:
    """Say "truncated" (and how much arrived) when a body with a known length breaks off."""
    try:
        yield
    except _Retryable as failure:
        got = received()
        if expected is None or got >= expected:
            raise
        raise _Retryable(
            f"truncated body: {got} of {expected} bytes received ({failure.reason})"
        ) from None


def _done(response: urllib3.BaseHTTPResponse, complete: bool) -> None:
    """Give the connection back to the pool; one with an unread body is closed first."""
    if not complete:
        response.close()
    response.release_conn()


def _chunks(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The raw body (no content decoding) in chunks; a broken read is retryable."""
    while True:
        try:
            chunk = response.read(CHUNK_SIZE, decode_content=False)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as failure:
            raise _Retryable(_describe(failure, None)) from None
        if not chunk:
            return
        yield chunk


def _read_page(
    url: str, response: urllib3.BaseHTTPResponse, *, limit: int = MAX_PAGE_BYTES
) -> bytes:
    parts: list[bytes] = []
    total = 0
    try:
        for chunk in response.stream(CHUNK_SIZE, decode_content=True):
            total += len(chunk)
            if total > limit:
                raise UpstreamError(f"GET {url}: larger than {limit} bytes", url=url)
            parts.append(chunk)
    except urllib3.exceptions.DecodeError as failure:
        raise _Retryable(f"cannot decode the body ({_clean(str(failure))})") from None
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as failure:
        raise _Retryable(_describe(failure, None)) from None
    return b"".join(parts)


def _describe(failure: BaseException, timeout: float | None) -> str:
    """A short reason for a failed request, without urllib3's object reprs."""
    if isinstance(failure, urllib3.exceptions.NewConnectionError):
        text = _clean(str(failure)).removeprefix("Failed to establish a new connection: ")
        return f"cannot connect: {text}"
    if isinstance(failure, urllib3.exceptions.TimeoutError):
        after = f" after {timeout:g}s" if timeout is not None else ""
        return f"timed out{after}"
    if isinstance(failure, urllib3.exceptions.ProtocolError):
        # args: ("Connection aborted.", RemoteDisconnected("Remote end closed ..."))
        detail = failure.args[-1] if failure.args else failure
        return f"connection broken: {_clean(str(detail))}"
    return f"{type(failure).__name__}: {_clean(str(failure))}"


_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*")
_CONNECTION_REPR = re.compile(r"HTTPS?Connection(?:Pool)?\([^)]*\):\s*")


def _clean(text: str) -> str:
    return _one_line(_CONNECTION_REPR.sub("", _OBJECT_REPR.sub("", text))) or "unknown error"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _media_type(header: str | None) -> str:
    if not header:
        return ""
    return header.split(";", 1)[0].strip().lower()


def _charset(headers: Mapping[str, str]) -> str:
    message = Message()
    message["Content-Type"] = headers.get("Content-Type", "text/html")
    charset = message.get_content_charset() or "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP-date: our own backoff will do
    return seconds if seconds >= 0 else None


def _declared_hash(hashes: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The hash to verify: sha256 when declared, else the strongest other one we know."""
    if "sha256" in hashes:
        return "sha256", hashes["sha256"].lower()
    known = [name for name in _HASH_PREFERENCE if name in hashes]
    if known:
        return known[0], hashes[known[0]].lower()
    return None, None


_HASH_PREFERENCE = (
    "sha512",
    "sha384",
    "sha3_512",
    "sha3_384",
    "sha3_256",
    "blake2b",
    "blake2s",
    "sha224",
    "sha3_224",
    "sha1",
    "md5",
)


# ---------------------------------------------------------------- PEP 691 JSON


def _parse_json_page(url: str, body: bytes) -> tuple[UpstreamFile, ...]:
    def bad(what: str) -> NoReturn:
        raise UpstreamError(f"GET {url}: malformed PEP 691 page: {what}", url=url)

    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError
        bad(f"not JSON ({_one_line(str(error))})")
    if not isinstance(data, dict):
        bad("the page is not a JSON object")
    meta = data.get("meta")
    if isinstance(meta, dict):
        _check_api_version(url, meta.get("api-version"))
    files = data.get("files")
    if not isinstance(files, list):
        bad('"files" is not a list')
    parsed: list[UpstreamFile] = []
    for index, item in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(item, dict):
            bad(f"{where} is not an object")
        filename = item.get("filename")
        file_url = item.get("url")
        if not isinstance(filename, str) or not filename:
            bad(f"{where}.filename is not a string")
        if not isinstance(file_url, str) or not file_url:
            bad(f"{where}.url is not a string")
        hashes = _json_hashes(item.get("hashes"))
        if hashes is None:
            bad(f"{where}.hashes is not an object of strings")
        requires_python = item.get("requires-python")
        if requires_python is not None and not isinstance(requires_python, str):
            bad(f"{where}.requires-python is not a string")
        yanked = item.get("yanked", False)
        if isinstance(yanked, bool):
            yanked_reason = "" if yanked else None
        elif isinstance(yanked, str):
            yanked_reason = yanked
        else:
            bad(f"{where}.yanked is neither a boolean nor a string")
        upload_time = item.get("upload-time")
        uploaded: datetime | None = None
        if upload_time is not None:
            uploaded = _parse_upload_time(upload_time)
            if uploaded is None:
                bad(f"{where}.upload-time {upload_time!r} is not an ISO 8601 time")
        size = item.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            bad(f"{where}.size is not a non-negative integer")
        metadata: Any = item.get("core-metadata")
        if metadata is None:
            metadata = item.get("dist-info-metadata")
        if metadata is None or metadata is False:
            core_metadata: dict[str, str] | None = None
        elif metadata is True:
            core_metadata = {}
        else:
            core_metadata = _json_hashes(metadata)
            if core_metadata is None:
                bad(f"{where}.core-metadata is neither a boolean nor an object of strings")
        provenance = item.get("provenance")
        if provenance is not None and not isinstance(provenance, str):
            bad(f"{where}.provenance is not a string")
        parsed.append(
            UpstreamFile(
                filename=filename,
                url=urldefrag(urljoin(url, file_url)).url,
                hashes=hashes,
                requires_python=requires_python or None,
                yanked=yanked_reason,
                upload_time=uploaded,
                size=size,
                core_metadata=core_metadata,
                provenance=urljoin(url, provenance) if provenance else None,
            )
        )
    return tuple(parsed)


def _json_hashes(value: object) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    hashes: dict[str, str] = {}
    for key, digest in value.items():
        if not isinstance(key, str) or not isinstance(digest, str):
            return None
        hashes[key.lower()] = digest.lower()
    return hashes


def _parse_upload_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # PEP 700 says UTC ("Z"); a bare time is read as UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _check_api_version(url: str, version: object) -> None:
    if version is None:
        return
    major = str(version).split(".", 1)[0].strip()
    if not major.isdigit():
        raise UpstreamError(f"GET {url}: malformed api-version {version!r}", url=url)
    if int(major) > SUPPORTED_API_MAJOR:
        raise UpstreamError(
            f"GET {url}: unsupported repository api-version {version} "
            f"(this client reads {SUPPORTED_API_MAJOR}.x)",
            url=url,
        )


# ---------------------------------------------------------------- PEP 503 HTML


class _AnchorParser(HTMLParser):
    """Collects ``<a>`` tags (attributes arrive HTML-unescaped), ``<base href>`` and the
    PEP 629 ``pypi:repository-version`` meta tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.base: str | None = None
        self.api_version: str | None = None
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._finish_anchor()
            self._current = dict(attrs)
            self._text = []
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "meta":
            values = dict(attrs)
            if values.get("name") == "pypi:repository-version":
                self.api_version = values.get("content")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._finish_anchor()

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._finish_anchor()

    def _finish_anchor(self) -> None:
        if self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None
            self._text = []


def _parse_html_page(url: str, body: bytes, charset: str) -> tuple[UpstreamFile, ...]:
    try:
        text = body.decode(charset)
    except (UnicodeDecodeError, LookupError) as error:
        raise UpstreamError(
            f"GET {url}: malformed PEP 503 page: not {charset} text ({error})", url=url
        ) from None
    parser = _AnchorParser()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError, IndexError) as error:  # html.parser's own failures
        raise UpstreamError(
            f"GET {url}: malformed PEP 503 page: {_one_line(str(error))}", url=url
        ) from None
    _check_api_version(url, parser.api_version)
    base = urljoin(url, parser.base) if parser.base else url
    files: list[UpstreamFile] = []
    for attrs, text_name in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        absolute, fragment = urldefrag(urljoin(base, href.strip()))
        filename = text_name or unquote(urlsplit(absolute).path.rsplit("/", 1)[-1])
        if not filename:
            continue
        hashes: dict[str, str] = {}
        if "=" in fragment:
            algorithm, digest = fragment.split("=", 1)
            if algorithm.lower() in hashlib.algorithms_guaranteed and digest:
                hashes[algorithm.lower()] = digest.lower()
        metadata = attrs.get("data-core-metadata")
        if metadata is None:
            metadata = attrs.get("data-dist-info-metadata")
        provenance = attrs.get("data-provenance")
        files.append(
            UpstreamFile(
                filename=filename,
                url=absolute,
                hashes=hashes,
                requires_python=attrs.get("data-requires-python") or None,
                yanked=(attrs["data-yanked"] or "") if "data-yanked" in attrs else None,
                upload_time=None,
                size=None,
                core_metadata=_html_metadata(metadata),
                provenance=urljoin(base, provenance) if provenance else None,
            )
        )
    return tuple(files)


def _html_metadata(value: str | None) -> dict[str, str] | None:
    """``data-core-metadata``: "true" (no hash) or "<alg>=<hex>"; anything else: not offered."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() == "true":
        return {}
    if "=" in value:
        algorithm, digest = value.split("=", 1)
        if algorithm and digest:
            return {algorithm.lower(): digest.lower()}
    return None
