"""The pip-facing routes in-process (Flask test client): PEP 503/691 pages, negotiation,
files, and that nothing quarantined is reachable."""

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mirror.config import settings_from_mapping
from mirror.db import Database, NewFile, State
from mirror.publish import Publisher, metadata_key
from mirror.simple import HTML_TYPE, JSON_TYPE
from mirror.storage import local_storage
from mirror.web import create_app
from tests.support.builders import make_sdist, make_wheel

UPLOADED = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


class Mirror:
    def __init__(self, tmp_path: Path):
        self.settings = settings_from_mapping({"data_dir": str(tmp_path / "data")})
        self.db = Database(self.settings.database_path)
        self.db.migrate()
        self.storage = local_storage(self.settings.data_dir)
        self.publisher = Publisher(self.db, self.storage)
        self.build_dir = tmp_path / "build"
        self.build_dir.mkdir()

    def add(
        self,
        path: Path,
        project: str,
        version: str,
        *,
        requires_python=None,
        yanked=None,
        metadata: bytes | None = None,
    ):
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        self.storage.quarantine.put_stream(sha256, io.BytesIO(data))
        metadata_sha = None
        if metadata is not None:
            metadata_sha = hashlib.sha256(metadata).hexdigest()
            self.storage.quarantine.put_stream(metadata_key(sha256), io.BytesIO(metadata))
        self.db.ensure_project(project, project, "configured")
        file_id = self.db.add_file(
            NewFile(
                project=project,
                version=version,
                filename=path.name,
                kind="wheel" if path.name.endswith(".whl") else "sdist",
                sha256=sha256,
                size=len(data),
                upstream_url=f"https://up.example/{path.name}",
                upload_time=UPLOADED,
                requires_python=requires_python,
                yanked=yanked,
                upstream_core_metadata=None,
                metadata_sha256=metadata_sha,
                requires_dist=[],
            ),
            [],
            now=datetime.now(UTC),
        )
        return self.db.file_by_id(file_id)


@pytest.fixture
def mirror(tmp_path):
    return Mirror(tmp_path)


@pytest.fixture
def client(mirror):
    app = create_app(mirror.settings, db=mirror.db, storage=mirror.storage)
    return app.test_client()


def approved_wheel(mirror, name="demo", version="1.0", **kwargs):
    path = make_wheel(mirror.build_dir, name, version)
    row = mirror.add(path, name, version, metadata=b"Metadata-Version: 2.1\nName: demo\n", **kwargs)
    mirror.publisher.approve([row], actor="test", reason="ok")
    return row, path


def test_empty_mirror_serves_an_empty_root(client):
    response = client.get("/simple/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"<a " not in response.data


def test_project_page_html_has_hash_requires_python_yanked_and_metadata(mirror, client):
    row, _ = approved_wheel(mirror, requires_python=">=3.8,<4", yanked="broken build")
    html = client.get("/simple/demo/").data.decode()
    assert f'href="../../files/{row.sha256}/{row.filename}#sha256={row.sha256}"' in html
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in html
    assert 'data-yanked="broken build"' in html
    assert f'data-core-metadata="sha256={row.metadata_sha256}"' in html
    assert f'data-dist-info-metadata="sha256={row.metadata_sha256}"' in html
    assert '<meta name="pypi:repository-version" content="1.3">' in html


def test_project_page_json_pep691_and_pep700(mirror, client):
    row, _ = approved_wheel(mirror)
    response = client.get("/simple/demo/", headers={"Accept": JSON_TYPE})
    assert response.headers["Content-Type"].startswith(JSON_TYPE)
    data = response.get_json()
    assert data["meta"]["api-version"] == "1.3"
    assert data["name"] == "demo"
    assert data["versions"] == ["1.0"]
    (entry,) = data["files"]
    assert entry["hashes"] == {"sha256": row.sha256}
    assert entry["size"] == row.size
    assert entry["upload-time"] == "2025-03-04T05:06:07.000000Z"  # upstream's, not ours
    assert entry["yanked"] is False
    assert entry["core-metadata"] == {"sha256": row.metadata_sha256}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", JSON_TYPE),
        ("text/html", "text/html"),
        (f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01", JSON_TYPE),
        (f"{JSON_TYPE};q=0.1, {HTML_TYPE};q=0.9", HTML_TYPE),
        (f"{HTML_TYPE}", HTML_TYPE),
    ],
)
def test_content_negotiation_with_q_values(mirror, client, accept, expected):
    approved_wheel(mirror)
    headers = {"Accept": accept} if accept else {}
    response = client.get("/simple/demo/", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == expected
    assert "Accept" in response.headers["Vary"]


def test_format_query_parameter_and_406(mirror, client):
    approved_wheel(mirror)
    assert client.get("/simple/demo/?format=json").headers["Content-Type"].startswith(JSON_TYPE)
    assert client.get("/simple/", query_string={"format": JSON_TYPE}).get_json()["projects"] == [
        {"name": "demo"}
    ]
    assert client.get("/simple/demo/", headers={"Accept": "application/xml"}).status_code == 406


def test_non_normalized_names_redirect(mirror, client):
    approved_wheel(mirror, name="foo-bar")
    response = client.get("/simple/Foo_Bar/?format=json")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/simple/foo-bar/?format=json")
    assert client.get("/simple/foo-bar").status_code in (301, 308)


def test_etag_and_304(mirror, client):
    approved_wheel(mirror)
    first = client.get("/simple/demo/")
    etag = first.headers["ETag"]
    again = client.get("/simple/demo/", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    json_etag = client.get("/simple/demo/?format=json").headers["ETag"]
    assert json_etag != etag


def test_file_download_with_cache_headers_and_range(mirror, client):
    row, path = approved_wheel(mirror)
    url = f"/files/{row.sha256}/{row.filename}"
    with client.get(url) as response:
        assert response.status_code == 200
        assert response.data == path.read_bytes()
        assert "immutable" in response.headers["Cache-Control"]
    with client.get(url, headers={"Range": "bytes=0-9"}) as partial:
        assert partial.status_code == 206
        assert partial.data == path.read_bytes()[:10]
    with client.get(url + ".metadata") as metadata:
        assert metadata.status_code == 200
        assert metadata.data == b"Metadata-Version: 2.1\nName: demo\n"


def test_held_rejected_and_revoked_files_are_unreachable(mirror, client):
    held = mirror.add(
        make_wheel(mirror.build_dir, "demo", "2.0"),
        "demo",
        "2.0",
        metadata=b"Metadata-Version: 2.1\n",
    )
    rejected = mirror.add(make_sdist(mirror.build_dir, "demo", "3.0"), "demo", "3.0")
    mirror.publisher.reject([rejected], actor="test", reason="bad")
    revoked, _ = approved_wheel(mirror, version="1.0")
    mirror.publisher.revoke([revoked], actor="test", reason="advisory")
    for row in (held, rejected, revoked):
        assert client.get(f"/files/{row.sha256}/{row.filename}").status_code == 404
        assert client.get(f"/files/{row.sha256}/{row.filename}.metadata").status_code == 404
    assert client.get("/simple/demo/").status_code == 404
    assert b"demo" not in client.get("/simple/").data
    assert not mirror.storage.published.exists(revoked.sha256)
    assert mirror.db.file_by_id(revoked.id).state is State.REVOKED


def test_a_file_url_needs_both_hash_and_name(mirror, client):
    row, _ = approved_wheel(mirror)
    assert client.get(f"/files/{row.sha256}/other-1.0-py3-none-any.whl").status_code == 404
    assert client.get(f"/files/{'0' * 64}/{row.filename}").status_code == 404


def test_sdists_get_no_metadata_link(mirror, client):
    path = make_sdist(mirror.build_dir, "demo", "1.0")
    row = mirror.add(path, "demo", "1.0")
    mirror.publisher.approve([row], actor="test", reason="ok")
    html = client.get("/simple/demo/").data.decode()
    assert "data-core-metadata" not in html
    assert client.get(f"/files/{row.sha256}/{row.filename}.metadata").status_code == 404
    entry = client.get("/simple/demo/?format=json").get_json()["files"][0]
    assert "core-metadata" not in entry


def test_audit_log_has_a_row_per_transition(mirror):
    row, _ = approved_wheel(mirror)
    mirror.publisher.revoke([row], actor="alice", reason="compromised")
    trail = [
        (d["actor"], d["from_state"], d["to_state"], d["reason"])
        for d in mirror.db.decisions(row.id)
    ]
    assert trail == [
        ("sync", None, "quarantined", "fetched from upstream"),
        ("test", "quarantined", "approved", "ok"),
        ("alice", "approved", "revoked", "compromised"),
    ]


def test_healthz(client):
    assert client.get("/healthz").data == b"ok\n"


def test_json_root_lists_display_names(mirror, client):
    approved_wheel(mirror, name="zope-interface")
    data = json.loads(client.get("/simple/", headers={"Accept": JSON_TYPE}).data)
    assert data == {"meta": {"api-version": "1.3"}, "projects": [{"name": "zope-interface"}]}


def test_cached_pages_follow_every_state_change_at_once(mirror, client):
    """Pages are cached in the worker; a change committed by any connection shows up on
    the very next request (a revocation must not linger)."""
    first, _ = approved_wheel(mirror, version="1.0")
    assert first.filename.encode() in client.get("/simple/demo/").data
    second, _ = approved_wheel(mirror, version="2.0")
    page = client.get("/simple/demo/").data
    assert second.filename.encode() in page
    mirror.publisher.revoke([second], actor="test", reason="bad")
    page = client.get("/simple/demo/").data
    assert second.filename.encode() not in page and first.filename.encode() in page
    mirror.publisher.revoke([first], actor="test", reason="bad")
    assert client.get("/simple/demo/").status_code == 404


def test_head_and_method_not_allowed(mirror, client):
    approved_wheel(mirror)
    head = client.head("/simple/demo/")
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) > 0
    assert client.post("/simple/demo/").status_code == 405


def test_project_page_without_slash_redirects_to_normalized(mirror, client):
    approved_wheel(mirror, name="foo-bar")
    response = client.get("/simple/Foo.Bar")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/simple/foo-bar/")


def test_names_with_slashes_are_404_not_a_redirect_loop(mirror, client):
    approved_wheel(mirror)
    assert client.get("/simple/demo/x/").status_code == 404
    assert client.get("/simple/demo%2Fx/").status_code == 404


def test_pep691_latest_alias(mirror, client):
    approved_wheel(mirror)
    response = client.get(
        "/simple/demo/", headers={"Accept": "application/vnd.pypi.simple.latest+json"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(JSON_TYPE)


def test_revoking_one_filename_keeps_other_files_with_the_same_bytes(mirror, client):
    row, path = approved_wheel(mirror)
    twin_path = mirror.build_dir / "demo-1.0-py2.py3-none-any.whl"
    twin_path.write_bytes(path.read_bytes())
    twin = mirror.add(twin_path, "demo", "1.0")
    mirror.publisher.approve([twin], actor="test", reason="ok")
    mirror.publisher.revoke([row], actor="test", reason="bad")
    with client.get(f"/files/{twin.sha256}/{twin.filename}") as response:
        assert response.status_code == 200
    assert client.get(f"/files/{row.sha256}/{row.filename}").status_code == 404


def test_pages_are_never_sniffed_run_or_framed(mirror, client):
    approved_wheel(mirror)
    for url in ("/simple/", "/simple/demo/", "/simple/demo/?format=json"):
        headers = client.get(url).headers
        assert headers["X-Content-Type-Options"] == "nosniff", url
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, url
