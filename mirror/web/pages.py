"""``/simple/``: the pip-facing index pages, served as a plain WSGI app in front of Flask.

This is the hottest path of the product (every ``pip install`` of every developer and CI
runner), so it does the least work possible: one ``PRAGMA data_version`` to learn whether
any page changed, then bytes from an in-memory cache of precomputed pages. Everything it
serves was rendered from the servable view when a file changed state; it cannot reach a
blob store at all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from packaging.utils import canonicalize_name, is_normalized_name
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from mirror.db import Page, PageReader
from mirror.simple import HTML, HTML_TYPE, JSON, JSON_TYPE, LEGACY_HTML_TYPE, page_key
from mirror.web.index_auth import IndexAuth

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PAGE_MAX_AGE = 60  # seconds; pages change on approval, and a revocation must spread fast
PAGE_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
CACHE_BYTES = 64 * 1024 * 1024  # per worker process
OFFERED = (JSON_TYPE, HTML_TYPE, LEGACY_HTML_TYPE)
FORMAT_ALIASES = {
    "json": JSON_TYPE,
    "html": HTML_TYPE,
    # PEP 691: "latest" means the newest version this server speaks, which is v1.
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
}
LATEST_JSON = "application/vnd.pypi.simple.latest+json"
LATEST_HTML = "application/vnd.pypi.simple.latest+html"
_ACCEPT_MEMO_SIZE = 256
NOT_ACCEPTABLE = "Not Acceptable: this index serves " + ", ".join(OFFERED) + "\n"


class PageCache:
    """Pages by key, dropped whole when the database's data_version moves."""

    def __init__(self, reader: PageReader, max_bytes: int = CACHE_BYTES) -> None:
        self.reader = reader
        self.max_bytes = max_bytes
        self._pages: OrderedDict[str, Page | None] = OrderedDict()
        self._bytes = 0
        self._version: int | None = None
        self._lock = threading.Lock()

    def get(self, key: str) -> Page | None:
        version = self.reader.version()
        with self._lock:
            if version != self._version:
                self._pages.clear()
                self._bytes = 0
                self._version = version
            elif key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
        page = self.reader.page(key)
        with self._lock:
            if self._version == version and key not in self._pages:
                self._pages[key] = page
                self._bytes += len(page.body) if page else 0
                while self._bytes > self.max_bytes and self._pages:
                    _, evicted = self._pages.popitem(last=False)
                    self._bytes -= len(evicted.body) if evicted else 0
        return page


def negotiate(accept: str | None, format_param: str | None) -> str | None:
    """PEP 691 content negotiation: ``?format=`` first, then Accept with its q-values.
    No Accept header means the legacy HTML every client understands; None means 406."""
    if format_param:
        wanted = FORMAT_ALIASES.get(format_param, format_param)
        return wanted if wanted in OFFERED else None
    if not accept:
        return LEGACY_HTML_TYPE
    return _negotiate_accept(accept)


_accept_memo: dict[str, str | None] = {}


def _negotiate_accept(accept: str) -> str | None:
    # Clients send the same few Accept headers over and over: remember the answers.
    try:
        return _accept_memo[accept]
    except KeyError:
        pass
    result = parse_accept_header(accept, MIMEAccept).best_match(
        (*OFFERED, LATEST_JSON, LATEST_HTML)
    )
    result = FORMAT_ALIASES.get(result, result) if result else None
    if len(_accept_memo) < _ACCEPT_MEMO_SIZE:
        _accept_memo[accept] = result
    return result


class SimpleIndex:
    """WSGI middleware: answers ``/simple/...`` itself, passes everything else on."""

    def __init__(
        self,
        cache: PageCache,
        fallback: WSGIApplication,
        auth: IndexAuth | None = None,
        on_miss: Callable[[str], None] | None = None,
    ) -> None:
        self.cache = cache
        self.fallback = fallback
        self.auth = auth  # index_auth: every /simple/ request needs a token
        # [sync] on_demand: told of each project page that does not exist. Called on the
        # 404 path only, and it must not block (RequestCounter.hit touches no database).
        self.on_miss = on_miss

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if not path.startswith("/simple/"):
            return self.fallback(environ, start_response)
        if self.auth is not None and not self.auth.allows(environ):
            return self.auth.refuse(start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "Method not allowed\n",
                          [("Allow", "GET, HEAD")])  # fmt: skip
        query = environ.get("QUERY_STRING", "")
        name = path[len("/simple/") :]
        project: str | None = None
        if name:
            if "/" in name.rstrip("/"):
                return _plain(start_response, "404 Not Found", "Not Found\n")
            project = name.removesuffix("/")
            normalized = canonicalize_name(project)
            if normalized != project or not name.endswith("/"):
                # Only a name that could be a project is sent on: the path is decoded, so
                # it may hold CR/LF, which must never reach a Location header.
                if not is_normalized_name(normalized):
                    return _plain(start_response, "404 Not Found", "Not Found\n")
                return _redirect(start_response, _project_url(normalized, query))
        format_param = parse_qs(query).get("format", [None])[0] if query else None
        content_type = negotiate(environ.get("HTTP_ACCEPT"), format_param)
        if content_type is None:
            return _plain(start_response, "406 Not Acceptable", NOT_ACCEPTABLE)
        page = self.cache.get(page_key(project, JSON if content_type == JSON_TYPE else HTML))
        if page is None:
            if project is not None and self.on_miss is not None:
                self.on_miss(project)
            return _plain(start_response, "404 Not Found", "Not Found\n")
        headers = [
            ("Content-Type", f"{content_type}; charset=utf-8"),
            ("ETag", page.etag),
            ("Vary", "Accept"),
            ("Cache-Control", f"max-age={PAGE_MAX_AGE}, public"),
            # Attacker-influenced text (escaped) in a page a browser may open: never
            # sniffed as something else, never run, never framed.
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", PAGE_CSP),
        ]
        if page.etag in environ.get("HTTP_IF_NONE_MATCH", ""):
            start_response("304 Not Modified", headers)
            return []
        headers.append(("Content-Length", str(len(page.body))))
        start_response("200 OK", headers)
        return [] if method == "HEAD" else [page.body]


def _project_url(normalized: str, query: str) -> str:
    return f"/simple/{normalized}/" + (f"?{query}" if query else "")


def _redirect(start_response: StartResponse, location: str) -> list[bytes]:
    body = f"Moved to {location}\n".encode()
    start_response("301 Moved Permanently", [
        ("Location", location), ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])  # fmt: skip
    return [body]


def _plain(
    start_response: StartResponse,
    status: str,
    text: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = text.encode()
    start_response(status, [
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
        *(extra or []),
    ])  # fmt: skip
    return [body]


def install(
    app: Any,
    reader: PageReader,
    auth: IndexAuth | None = None,
    on_miss: Callable[[str], None] | None = None,
) -> None:
    """Put the index in front of a Flask app's WSGI callable."""
    app.wsgi_app = SimpleIndex(PageCache(reader), app.wsgi_app, auth, on_miss)


__all__ = ["PageCache", "SimpleIndex", "install", "negotiate"]
