"""The pip-facing routes: /simple/ (PEP 503 HTML / PEP 691 JSON) and /files/.

These routes are handed only the published store and read only precomputed pages and the
servable view: there is no code path from here to a quarantined byte.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, abort, current_app, redirect, request, send_file
from werkzeug.wrappers import Response
from packaging.utils import canonicalize_name

from mirror.db import Database, Page
from mirror.publish import metadata_key
from mirror.simple import HTML, HTML_TYPE, JSON, JSON_TYPE, LEGACY_HTML_TYPE, page_key
from mirror.storage import BlobStore

bp = Blueprint("index", __name__)

ONE_YEAR = 365 * 24 * 3600
PAGE_MAX_AGE = 60  # pages change on approval; a short cache keeps revocations prompt

_OFFERED = (JSON_TYPE, HTML_TYPE, LEGACY_HTML_TYPE)
_FORMAT_ALIASES = {"json": JSON_TYPE, "html": HTML_TYPE}


def _db() -> Database:
    return cast(Database, current_app.extensions["qmirror"].db)


def _published() -> BlobStore:
    return cast(BlobStore, current_app.extensions["qmirror"].storage.published)


def _negotiate() -> str | None:
    """The response content type: ``?format=`` first, then Accept with its q-values.
    No Accept header means the legacy HTML every client understands."""
    wanted = request.args.get("format")
    if wanted:
        wanted = _FORMAT_ALIASES.get(wanted, wanted)
        return wanted if wanted in _OFFERED else None
    if not request.headers.get("Accept"):
        return LEGACY_HTML_TYPE
    return request.accept_mimetypes.best_match(_OFFERED)


def _serve_page(page_name: str | None) -> Response:
    content_type = _negotiate()
    if content_type is None:
        return Response(
            "Not Acceptable: this index serves " + ", ".join(_OFFERED) + "\n",
            status=406,
            mimetype="text/plain",
        )
    fmt = JSON if content_type == JSON_TYPE else HTML
    page: Page | None = _db().page(page_key(page_name, fmt))
    if page is None:
        abort(404)
    response = Response(page.body, content_type=f"{content_type}; charset=utf-8")
    response.headers["ETag"] = page.etag
    response.headers["Vary"] = "Accept"
    response.headers["Cache-Control"] = f"max-age={PAGE_MAX_AGE}, public"
    if page.etag in request.headers.get("If-None-Match", ""):
        response.status_code = 304
        response.set_data(b"")
    return response


@bp.get("/simple/")
def root() -> Response:
    return _serve_page(None)


@bp.get("/simple/<path:project>/")
def project(project: str) -> Response:
    normalized = canonicalize_name(project)
    if normalized != project:
        query = request.query_string.decode()
        target = f"/simple/{normalized}/" + (f"?{query}" if query else "")
        return redirect(target, code=301)
    return _serve_page(normalized)


@bp.get("/files/<sha256>/<filename>")
def file(sha256: str, filename: str) -> Response:
    metadata = filename.endswith(".metadata")
    dist_filename = filename.removesuffix(".metadata") if metadata else filename
    row = _db().servable_file(sha256, dist_filename)
    if row is None or (metadata and not row.metadata_sha256):
        abort(404)
    key = metadata_key(row.sha256) if metadata else row.sha256
    store = _published()
    path = store.local_path(key)
    if path is None:
        abort(404)
    response = send_file(
        path,
        mimetype="text/plain" if metadata else "application/octet-stream",
        as_attachment=not metadata,
        download_name=filename,
        conditional=True,
        etag=(row.metadata_sha256 or row.sha256) if metadata else row.sha256,
        max_age=ONE_YEAR,
    )
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response


@bp.get("/healthz")
def healthz() -> Response:
    _db().db.execute("SELECT 1").fetchone()
    return Response("ok\n", mimetype="text/plain")
