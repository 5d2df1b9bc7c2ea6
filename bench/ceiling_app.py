"""The ceiling of the process model: the least a WSGI app under gunicorn can do per page.

Loads the static tree's pages into a dict at import and answers each request with one
dict lookup and the bytes — no framework, no database, no logging. Whatever gunicorn
(gthread, the workers ``qmirror serve`` uses) can deliver with this app bounds what any
gunicorn-served index can reach on this machine. Run by servers.start_ceiling:

    gunicorn ... 'ceiling_app:make(root="bench/work/data/upstream-base")'
"""

from __future__ import annotations

from pathlib import Path

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def make(root: str, mode: str = "bytes"):
    """``mode="bytes"``: pages held in memory, returned as one bytes object (what an app
    with an in-memory page cache does). ``mode="file"``: pages stay files on disk and go
    out through ``wsgi.file_wrapper``, which gunicorn turns into ``os.sendfile`` (zero
    copy, as nginx does)."""
    pages: dict[tuple[str, bool], bytes | tuple[str, int]] = {}
    simple = Path(root) / "simple"
    for path in simple.rglob("index.*"):
        rel = path.parent.relative_to(simple).as_posix()
        url = "/simple/" if rel == "." else f"/simple/{rel}/"
        key = (url, path.suffix == ".json")
        pages[key] = path.read_bytes() if mode == "bytes" else (str(path), path.stat().st_size)

    def app(environ, start_response):
        is_json = JSON_TYPE in environ.get("HTTP_ACCEPT", "")
        page = pages.get((environ.get("PATH_INFO", ""), is_json))
        if page is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return []
        size = len(page) if isinstance(page, bytes) else page[1]
        start_response("200 OK", [
            ("Content-Type", JSON_TYPE if is_json else "text/html"),
            ("Content-Length", str(size)),
        ])  # fmt: skip
        if isinstance(page, bytes):
            return [page]
        return environ["wsgi.file_wrapper"](open(page[0], "rb"), 1 << 20)

    return app
