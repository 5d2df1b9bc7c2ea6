"""The pip-facing file routes: ``/files/<sha256>/<filename>`` (and its ``.metadata``).

(``/simple/`` is served by ``mirror.web.pages`` in front of Flask.) These routes are
handed only the published store and look files up in the servable view: there is no
code path from here to a quarantined byte.

With ``[storage] downloads = "redirect"`` and a store that can presign (S3's published
store), a download is a 302 to a short-lived URL, so the bytes never pass through a
gunicorn worker. The servable-view check comes first either way: a revoked or held file
gets a 404, never a URL.
"""

from __future__ import annotations

import logging
from typing import BinaryIO, cast

from flask import Blueprint, abort, current_app, redirect, request, send_file
from werkzeug.http import dump_options_header
from werkzeug.wrappers import Response

from mirror.config import Settings, StorageSettings
from mirror.db import Database, FileRow
from mirror.publish import metadata_key, provenance_key
from mirror.storage import BlobNotFound, BlobStore, LocalStore, Presigner, StorageError
from mirror.web.index_auth import REFUSAL_HEADERS, UNAUTHORIZED

bp = Blueprint("index", __name__)
log = logging.getLogger("qmirror.web")

ONE_YEAR = 365 * 24 * 3600


def _db() -> Database:
    return cast(Database, current_app.extensions["qmirror"].db)


def _published() -> BlobStore:
    return cast(BlobStore, current_app.extensions["qmirror"].storage.published)


@bp.before_request
def _index_auth() -> Response | None:
    """index_auth covers the files as well as the pages; /healthz stays open."""
    auth = current_app.extensions.get("qmirror_index_auth")
    if auth is None or request.endpoint == "index.healthz" or auth.allows(request.environ):
        return None
    return Response(UNAUTHORIZED, 401, REFUSAL_HEADERS)


def _storage_settings() -> StorageSettings:
    return cast(StorageSettings, current_app.extensions["qmirror"].settings.storage)


def _settings() -> Settings:
    return cast(Settings, current_app.extensions["qmirror"].settings)


@bp.get("/files/<sha256>/<filename>")
def file(sha256: str, filename: str) -> Response:
    if filename.endswith(".provenance"):
        return _provenance(sha256, filename.removesuffix(".provenance"))
    metadata = filename.endswith(".metadata")
    dist_filename = filename.removesuffix(".metadata") if metadata else filename
    row = _db().servable_file(sha256, dist_filename)
    if row is None or (metadata and not row.metadata_sha256):
        abort(404)
    key = metadata_key(row.sha256) if metadata else row.sha256
    mimetype = "text/plain" if metadata else "application/octet-stream"
    store = _published()
    config = _storage_settings()
    if config.downloads == "redirect" and isinstance(store, Presigner):
        return _redirect_to(store, key, filename, mimetype, attachment=not metadata)
    accel = _settings().server.accel_redirect
    if accel and isinstance(store, LocalStore):
        return _accel_redirect(accel, store, key, row, filename)
    local = store.local_path(key)
    source = local or _open_blob(store, key, filename)
    response = send_file(
        source,
        mimetype=mimetype,
        as_attachment=not metadata,
        download_name=filename,
        conditional=True,
        etag=(row.metadata_sha256 or row.sha256) if metadata else row.sha256,
        max_age=ONE_YEAR,
    )
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    if local is None and not metadata and response.status_code == 200:
        # A stream has no size werkzeug can see; the servable row knows it (the bytes are
        # content-addressed), so pip gets a Content-Length rather than chunks.
        response.content_length = row.size
    return response


def _open_blob(store: BlobStore, key: str, filename: str) -> BinaryIO:
    """A stream of a servable file's blob from a store that has no local path for it."""
    try:
        return store.open(key)
    except BlobNotFound:
        # Listed but without its bytes: the published store lost a blob. Say so, since a
        # 404 alone looks like a client's mistake.
        log.warning("servable file %s has no blob %s in the published store", filename, key)
        abort(404)
    except StorageError as error:
        # The store is down or refuses us: say so (pip retries a 503), details in the log.
        log.error("servable file %s, blob %s: %s", filename, key, error)
        abort(503)


def _redirect_to(
    store: Presigner, key: str, filename: str, mimetype: str, *, attachment: bool
) -> Response:
    disposition = dump_options_header(
        "attachment" if attachment else "inline", {"filename": filename}
    )
    url = store.presigned_url(
        key,
        expires=_storage_settings().presign_expiry,
        content_type=mimetype,
        content_disposition=disposition,
    )
    response = redirect(url, code=302)
    # The URL expires: no cache may keep it longer than it works (the file's own URL,
    # /files/<sha256>/<name>, stays the cacheable, immutable one).
    response.headers["Cache-Control"] = "no-store"
    return response


def _provenance(sha256: str, dist_filename: str) -> Response:
    """The PEP 740 provenance object of a servable file, exactly as the upstream sent it."""
    row = _db().servable_file(sha256, dist_filename)
    if row is None or not row.provenance_sha256:
        abort(404)
    # Small JSON: sent by the app in every mode (no redirect, no X-Accel-Redirect).
    store = _published()
    key = provenance_key(row.sha256)
    response = send_file(
        store.local_path(key) or _open_blob(store, key, f"{dist_filename}.provenance"),
        mimetype="application/vnd.pypi.integrity.v1+json",
        download_name=f"{dist_filename}.provenance",
        etag=row.provenance_sha256,
        conditional=True,
        max_age=ONE_YEAR,
    )
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response


def _accel_redirect(
    prefix: str, store: LocalStore, key: str, row: FileRow, filename: str
) -> Response:
    """The headers send_file would write, and no body: nginx's ``internal`` location at
    ``prefix`` sends the blob's bytes from disk (Range too), keeping these headers.
    Conditional requests are answered here, against the sha256 ETag."""
    path = store.local_path(key)
    if path is None:
        abort(404)
    metadata = filename.endswith(".metadata")
    response = Response(mimetype="text/plain" if metadata else "application/octet-stream")
    # Filenames are ASCII (packaging validated them at sync), as send_file writes them.
    response.headers.set(
        "Content-Disposition", "inline" if metadata else "attachment", filename=filename
    )
    response.set_etag((row.metadata_sha256 or row.sha256) if metadata else row.sha256)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.make_conditional(request)
    if response.status_code != 304:
        response.headers["X-Accel-Redirect"] = prefix + path.relative_to(store.root).as_posix()
    return response


@bp.get("/healthz")
def healthz() -> Response:
    _db().db.execute("SELECT 1").fetchone()
    return Response("ok\n", mimetype="text/plain")
