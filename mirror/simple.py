"""PEP 503 / PEP 691 pages for servable files: one context, two renderers.

Pages are rendered when a file changes state and stored as bytes with an ETag
(``db.pages``); requests only look a page up. Nothing here scans storage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any
from urllib.parse import quote

import jinja2
from packaging.version import InvalidVersion, Version

from mirror.db import Database, FileRow, Page

API_VERSION = "1.3"  # PEP 700: versions, size, upload-time; PEP 740: provenance

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
LEGACY_HTML_TYPE = "text/html"

HTML = "html"
JSON = "json"
FORMATS = (HTML, JSON)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("mirror", "web/templates"),
    autoescape=True,
    trim_blocks=False,
    undefined=jinja2.StrictUndefined,
)


def page_key(project: str | None, fmt: str) -> str:
    """Where a page is stored: ``simple/index.json``, ``simple/<project>/index.html``."""
    return f"simple/index.{fmt}" if project is None else f"simple/{project}/index.{fmt}"


RELATIVE_FILES_URL = "../../files/"  # from /simple/<project>/ to /files/


def file_url(row: FileRow, files_url: str = RELATIVE_FILES_URL) -> str:
    """Content-addressed and immutable: ``<files_url><sha256>/<filename>``. Relative to
    ``/simple/<project>/`` by default; a static export may link files elsewhere."""
    return f"{files_url}{row.sha256}/{quote(row.filename)}"


def provenance_url(row: FileRow) -> str | None:
    """PEP 740: where the file's provenance object is served, when it came with one."""
    return f"{file_url(row)}.provenance" if row.provenance_sha256 else None


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _upload_time(row: FileRow) -> str | None:
    if row.upload_time is None:
        return None
    return row.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def project_context(
    name: str, files: Sequence[FileRow], files_url: str = RELATIVE_FILES_URL
) -> dict[str, Any]:
    """The data both renderers read: a PEP 691 project dict plus the rows for HTML."""
    rows = sorted(files, key=lambda r: r.filename)
    json_files = []
    for row in rows:
        entry: dict[str, Any] = {
            "filename": row.filename,
            "url": file_url(row, files_url),
            "hashes": {"sha256": row.sha256},
            "size": row.size,
        }
        if row.requires_python:
            entry["requires-python"] = row.requires_python
        entry["yanked"] = (row.yanked or True) if row.yanked is not None else False
        if row.metadata_sha256:
            metadata = {"sha256": row.metadata_sha256}
            entry["core-metadata"] = metadata
            entry["dist-info-metadata"] = metadata
        upload_time = _upload_time(row)
        if upload_time:
            entry["upload-time"] = upload_time
        entry["provenance"] = provenance_url(row)
        json_files.append(entry)
    versions = sorted({row.version for row in rows}, key=_version_key)
    return {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "files": json_files,
        "versions": versions,
        "_rows": rows,
    }


def _page(body: bytes, content_type: str) -> Page:
    return Page(
        body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"', content_type=content_type
    )


def render_project(
    name: str, files: Sequence[FileRow], files_url: str = RELATIVE_FILES_URL
) -> dict[str, Page]:
    context = project_context(name, files, files_url)
    rows = context.pop("_rows")
    html = _templates.get_template("simple/project.html").render(
        api_version=API_VERSION,
        name=name,
        files=[
            {
                "url": file_url(row, files_url),
                "filename": row.filename,
                "sha256": row.sha256,
                "requires_python": row.requires_python,
                "yanked": row.yanked,
                "metadata_sha256": row.metadata_sha256,
                "provenance": provenance_url(row),
            }
            for row in rows
        ],
    )
    return {
        page_key(name, HTML): _page(html.encode(), HTML_TYPE),
        page_key(name, JSON): _page(_dumps(context), JSON_TYPE),
    }


def render_root(projects: Iterable[tuple[str, str]]) -> dict[str, Page]:
    listed = [{"name": name, "display_name": display} for name, display in projects]
    html = _templates.get_template("simple/root.html").render(
        api_version=API_VERSION, projects=listed
    )
    data = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": p["display_name"]} for p in listed],
    }
    return {
        page_key(None, HTML): _page(html.encode(), HTML_TYPE),
        page_key(None, JSON): _page(_dumps(data), JSON_TYPE),
    }


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def refresh_pages(db: Database, projects: Iterable[str]) -> None:
    """Re-render the pages of ``projects`` and the root, from the servable view only."""
    # Read and write in one immediate transaction: a refresh that read the servable view
    # before a concurrent revoke must not commit its (stale) pages after it.
    with db.write():
        pages: dict[str, Page] = {}
        gone: list[str] = []
        for name in set(projects):
            files = db.servable_files(name)
            if files:
                pages.update(render_project(name, files))
            else:
                gone.extend(page_key(name, fmt) for fmt in FORMATS)
        pages.update(render_root(db.servable_project_names()))
        db.put_pages(pages, delete=gone)
