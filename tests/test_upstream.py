"""The upstream client against a fake PyPI on loopback: real sockets, real files."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3

from mirror.upstream import (
    CHUNK_SIZE,
    DownloadError,
    HashMismatch,
    ProjectNotFound,
    UpstreamClient,
    UpstreamError,
    UpstreamFile,
)
from tests.support.builders import make_sdist, make_wheel
from tests.support.upstream_server import JSON_TYPE, FakeIndex

UPLOADED = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
WHEEL = "alpha-1.0-py3-none-any.whl"
SDIST = "alpha-1.0.tar.gz"
OLD_WHEEL = "alpha-0.9-py3-none-any.whl"

MakeIndex = Callable[..., FakeIndex]


@pytest.fixture
def build(tmp_path: Path) -> Path:
    directory = tmp_path / "build"
    directory.mkdir()
    return directory


@pytest.fixture
def make_index(tmp_path: Path) -> Iterator[MakeIndex]:
    """Start FakeIndexes with any options; all are stopped after the test."""
    started: list[FakeIndex] = []

    def start(**options: Any) -> FakeIndex:
        index = FakeIndex(tmp_path / f"upstream-{len(started)}", **options)
        index.start()
        started.append(index)
        return index

    yield start
    for index in started:
        index.stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., UpstreamClient]]:
    made: list[UpstreamClient] = []

    def client(url: str, **options: Any) -> UpstreamClient:
        settings: dict[str, Any] = {"timeout": 5.0, "retries": 2, "backoff": 0.01}
        settings.update(options)
        made.append(UpstreamClient(url, **settings))
        return made[-1]

    yield client
    for client_ in made:
        client_.close()


def populate(index: FakeIndex, build: Path) -> dict[str, Path]:
    wheel = make_wheel(build, "alpha", "1.0", requires_python="<4,>=3.9")
    sdist = make_sdist(build, "alpha", "1.0")
    old = make_wheel(build, "alpha", "0.9")
    index.add(wheel, upload_time=UPLOADED)
    index.add(sdist, upload_time=UPLOADED, yanked="broken <build> & more")
    index.add(old, yanked="", metadata=False)
    return {WHEEL: wheel, SDIST: sdist, OLD_WHEEL: old}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def metadata_sha256(wheel: Path) -> str:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        data = archive.read("alpha-1.0.dist-info/METADATA")
    return hashlib.sha256(data).hexdigest()


def by_name(files: tuple[UpstreamFile, ...]) -> dict[str, UpstreamFile]:
    return {f.filename: f for f in files}


# ---------------------------------------------------------------- pages


@pytest.mark.parametrize("api", ["json", "html"])
def test_project_page_lists_every_file_with_its_attributes(api, make_index, clients, build):
    index = make_index(api=api)
    paths = populate(index, build)
    page = clients(index.url).project_page("alpha")

    assert page.name == "alpha"
    assert page.api_format == api
    assert not page.not_modified
    assert page.etag and page.last_serial == 3
    files = by_name(page.files)
    assert set(files) == {WHEEL, SDIST, OLD_WHEEL}

    wheel = files[WHEEL]
    assert wheel.url == index.file_url(WHEEL)  # absolute, fragment stripped
    assert wheel.hashes == {"sha256": sha256(paths[WHEEL])}
    assert wheel.requires_python == "<4,>=3.9"  # escaped in HTML, unescaped here
    assert wheel.yanked is None
    assert wheel.core_metadata == {"sha256": metadata_sha256(paths[WHEEL])}
    assert files[SDIST].yanked == "broken <build> & more"
    assert files[SDIST].core_metadata is None
    assert files[OLD_WHEEL].yanked == ""
    assert files[OLD_WHEEL].core_metadata is None
    assert all(f.provenance is None for f in page.files)
    if api == "json":  # PEP 700 is JSON only
        assert wheel.upload_time == UPLOADED
        assert wheel.upload_time.tzinfo is not None
        assert wheel.size == paths[WHEEL].stat().st_size
        assert files[OLD_WHEEL].upload_time is None
    else:
        assert all(f.upload_time is None and f.size is None for f in page.files)


def test_json_and_html_upstreams_agree(make_index, clients, build):
    json_index = make_index(api="json")
    html_index = make_index(api="html")
    populate(json_index, build)
    populate(html_index, build)

    def comparable(index: FakeIndex) -> dict[str, tuple[Any, ...]]:
        page = clients(index.url).project_page("alpha")
        return {
            f.filename: (
                f.url.removeprefix(index.base_url),
                dict(f.hashes),
                f.requires_python,
                f.yanked,
                None if f.core_metadata is None else dict(f.core_metadata),
            )
            for f in page.files
        }

    assert comparable(json_index) == comparable(html_index)
    raw = urllib3.request("GET", html_index.url + "alpha/").data.decode()
    assert 'data-requires-python="&lt;4,&gt;=3.9"' in raw
    assert "&lt;build&gt; &amp; more" in raw


@pytest.mark.parametrize("api", ["json", "html"])
@pytest.mark.parametrize("keys", [("core-metadata",), ("dist-info-metadata",)])
def test_core_metadata_is_read_under_either_spelling(api, keys, make_index, clients, build):
    index = make_index(api=api, metadata_keys=keys)
    wheel = make_wheel(build, "alpha", "1.0")
    index.add(wheel)
    raw = urllib3.request("GET", index.url + "alpha/?format=" + api).data.decode()
    other = ({"core-metadata", "dist-info-metadata"} - set(keys)).pop()
    assert keys[0] in raw and other not in raw

    (file,) = clients(index.url).project_page("alpha").files
    assert file.core_metadata == {"sha256": metadata_sha256(wheel)}
    assert urllib3.request("GET", file.url + ".metadata").status == 200


def test_json_page_details_relative_urls_booleans_and_provenance(make_index, clients):
    index = make_index()
    page = {
        "meta": {"api-version": "1.3"},
        "name": "beta",
        "files": [
            {
                "filename": "beta-1.0.tar.gz",
                "url": "../../packages/beta-1.0.tar.gz#sha256=ignored",
                "hashes": {"SHA256": "ABCDEF"},
                "yanked": True,
                "dist-info-metadata": True,
                "provenance": "/integrity/beta/1.0/beta-1.0.tar.gz/provenance",
                "upload-time": "2025-03-04T05:06:07Z",
            },
            {
                "filename": "beta-1.1.tar.gz",
                "url": "https://files.example/beta-1.1.tar.gz",
                "hashes": {},
                "requires-python": ">=3.11",
                "yanked": False,
                "core-metadata": False,
                "dist-info-metadata": {"sha256": "00"},  # ignored: core-metadata is read first
            },
        ],
    }
    index.serve_raw("/simple/beta/", json.dumps(page).encode(), content_type=JSON_TYPE)
    first, second = clients(index.url).project_page("beta").files

    assert first.url == f"{index.base_url}/packages/beta-1.0.tar.gz"
    assert first.hashes == {"sha256": "abcdef"}
    assert first.yanked == ""
    assert first.core_metadata == {}
    assert first.provenance == f"{index.base_url}/integrity/beta/1.0/beta-1.0.tar.gz/provenance"
    assert first.upload_time == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert second.url == "https://files.example/beta-1.1.tar.gz"
    assert second.hashes == {}
    assert second.requires_python == ">=3.11"
    assert second.yanked is None and second.core_metadata is None


def test_html_page_details_base_href_md5_fragment_and_bare_attributes(make_index, clients):
    index = make_index()
    body = (
        "<!DOCTYPE html><html><head><base href='/mount/'></head><body>"
        '<a href="pkgs/gamma-1.0.tar.gz#md5=ABC123" data-core-metadata="true" '
        'data-requires-python="&gt;=3.8" data-yanked>gamma-1.0.tar.gz</a>'
        '<a href="pkgs/gamma-1.1.tar.gz#egg=gamma" data-provenance="p/1.1">'
        "<b>gamma-1.1.tar.gz</b></a>"
        "<a>no href</a>"
        "</body></html>"
    )
    index.serve_raw("/simple/gamma/", body.encode(), content_type="text/html; charset=utf-8")
    page = clients(index.url).project_page("gamma")
    assert page.api_format == "html"
    first, second = page.files
    assert first.url == f"{index.base_url}/mount/pkgs/gamma-1.0.tar.gz"
    assert first.hashes == {"md5": "abc123"}
    assert first.core_metadata == {}
    assert first.requires_python == ">=3.8"
    assert first.yanked == ""
    assert second.filename == "gamma-1.1.tar.gz"
    assert second.hashes == {}  # "egg=" is not a hash
    assert second.provenance == f"{index.base_url}/mount/p/1.1"


def test_etag_gets_a_304_until_the_page_changes(make_index, clients, build):
    index = make_index()
    populate(index, build)
    client = clients(index.url)
    first = client.project_page("alpha")

    again = client.project_page("alpha", etag=first.etag)
    assert again.not_modified and again.files == () and again.etag == first.etag
    assert again.last_serial == first.last_serial

    index.add(make_wheel(build, "alpha", "2.0"), upload_time=UPLOADED)
    changed = client.project_page("alpha", etag=first.etag)
    assert not changed.not_modified
    assert changed.etag != first.etag
    assert changed.last_serial > first.last_serial
    assert "alpha-2.0-py3-none-any.whl" in by_name(changed.files)
    assert [p for m, p in index.requests] == ["/simple/alpha/"] * 3


@pytest.mark.parametrize("api", ["json", "html"])
def test_html_etag_works_too(api, make_index, clients, build):
    index = make_index(api=api)
    populate(index, build)
    client = clients(index.url)
    etag = client.project_page("alpha").etag
    again = client.project_page("alpha", etag=etag)
    assert again.not_modified and again.api_format == api


def test_non_normalized_names_redirect_and_the_client_follows(make_index, clients, build):
    index = make_index(api="html")
    populate(index, build)
    for path in ("/simple/Alpha/", "/simple/ALPHA", "/simple/alpha"):
        answer = urllib3.request("GET", index.base_url + path, redirect=False)
        assert answer.status == 301
        assert answer.headers["Location"] == "/simple/alpha/"

    # A redirect to another depth: relative links resolve against where we landed.
    index.serve_raw(
        "/mirror/simple/alpha/", b"", content_type="text/plain", status=301,
        headers={"Location": "/simple/Alpha/"},
    )  # fmt: skip
    client = clients(index.base_url + "/mirror/simple")  # no trailing slash either
    files = by_name(client.project_page("Alpha").files)
    assert files[WHEEL].url == index.file_url(WHEEL)
    assert [p for _, p in index.requests[-3:]] == [
        "/mirror/simple/alpha/", "/simple/Alpha/", "/simple/alpha/",
    ]  # fmt: skip
    result = client.download(files[WHEEL], index.root / "got.whl")
    assert result.sha256 == sha256(build / WHEEL)


def test_missing_project_is_project_not_found(make_index, clients):
    index = make_index()
    with pytest.raises(ProjectNotFound) as caught:
        clients(index.url).project_page("no-such-project")
    assert f"{index.url}no-such-project/" in str(caught.value)
    assert "404" in str(caught.value)
    assert len(index.requests) == 1  # a 404 is an answer, not retried


def test_invalid_project_name_is_an_upstream_error(make_index, clients):
    index = make_index()
    with pytest.raises(UpstreamError, match="not a valid project name"):
        clients(index.url).project_page("../etc/passwd")
    assert index.requests == []


@pytest.mark.parametrize(
    ("status", "times"), [(500, 2), (503, 1), (429, 1), (502, 2), (0, 2)]
)  # fmt: skip
def test_transient_page_failures_are_retried(status, times, make_index, clients, build):
    index = make_index()
    populate(index, build)
    index.fail_next("/simple/alpha/", status=status, times=times)
    page = clients(index.url, retries=2).project_page("alpha")
    assert len(page.files) == 3
    assert len(index.requests) == times + 1


def test_persistent_5xx_gives_up_naming_the_url(make_index, clients, build):
    index = make_index()
    populate(index, build)
    index.fail_next("/simple/alpha/", status=500, times=10)
    with pytest.raises(UpstreamError) as caught:
        clients(index.url, retries=2).project_page("alpha")
    message = str(caught.value)
    assert f"{index.url}alpha/" in message
    assert "HTTP 500" in message and "3 attempts" in message
    assert "\n" not in message
    assert not isinstance(caught.value, ProjectNotFound)
    assert len(index.requests) == 3


def test_other_4xx_is_not_retried(make_index, clients):
    index = make_index()
    index.serve_raw("/simple/alpha/", b"no", content_type="text/plain", status=403)
    with pytest.raises(UpstreamError, match="HTTP 403"):
        clients(index.url).project_page("alpha")
    assert len(index.requests) == 1


def test_upstream_down_fails_fast(make_index, clients):
    index = make_index()
    url = index.url
    index.stop()  # the port now refuses
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        clients(url, retries=2, backoff=0.01).project_page("alpha")
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert url in message and "cannot connect" in message and "\n" not in message
    assert "object at 0x" not in message


def test_a_silent_upstream_times_out(clients):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/simple/"
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="timed out"):
            clients(url, timeout=0.2, retries=1, backoff=0.01).project_page("alpha")
        assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"{not json", JSON_TYPE, "not JSON"),
        (b"[]", JSON_TYPE, "not a JSON object"),
        (b'{"files": {}}', JSON_TYPE, '"files" is not a list'),
        (b'{"files": [{"filename": "a-1.tar.gz"}]}', JSON_TYPE, "files[0].url"),
        (b'{"files": [{"filename": "a-1.tar.gz", "url": "a", "hashes": []}]}', JSON_TYPE,
         "files[0].hashes"),
        (b'{"files": [{"filename": "a-1.tar.gz", "url": "a", "hashes": {}, "size": "1"}]}',
         JSON_TYPE, "files[0].size"),
        (b'{"files": [{"filename": "a-1.tar.gz", "url": "a", "hashes": {},'
         b' "upload-time": "yesterday"}]}', JSON_TYPE, "upload-time"),
        (b'{"files": [{"filename": "a-1.tar.gz", "url": "a", "hashes": {}, "yanked": 1}]}',
         JSON_TYPE, "yanked"),
        (b'{"meta": {"api-version": "2.0"}, "files": []}', JSON_TYPE, "api-version 2.0"),
        (b"\xff\xfe<a href='x'>", "text/html; charset=utf-8", "not utf-8 text"),
        (b'<meta name="pypi:repository-version" content="3.0">', "text/html", "api-version"),
        (b"{}", "application/json", "unknown content type 'application/json'"),
        (b"hello", "", "unknown content type '(none)'"),
    ],
)  # fmt: skip
def test_malformed_pages_are_upstream_errors(body, content_type, expected, make_index, clients):
    index = make_index()
    index.serve_raw("/simple/alpha/", body, content_type=content_type)
    with pytest.raises(UpstreamError) as caught:
        clients(index.url).project_page("alpha")
    assert type(caught.value) is UpstreamError
    assert expected in str(caught.value)
    assert "/simple/alpha/" in str(caught.value)
    assert len(index.requests) == 1


def test_root_page_and_negotiation_of_the_fake(make_index, build):
    index = make_index()
    populate(index, build)
    index.add(make_sdist(build, "Beta.Two", "1.0"))
    accept_json = {"Accept": "application/vnd.pypi.simple.latest+json"}
    root = urllib3.request("GET", index.url, headers=accept_json)
    assert root.headers["Content-Type"] == JSON_TYPE
    assert [p["name"] for p in json.loads(root.data)["projects"]] == ["alpha", "beta-two"]
    page = json.loads(urllib3.request("GET", index.url + "alpha/", headers=accept_json).data)
    assert page["meta"]["api-version"] == "1.1"
    assert page["versions"] == ["0.9", "1.0"]
    plain = urllib3.request("GET", index.url + "alpha/")  # no Accept: HTML, like PyPI
    assert plain.headers["Content-Type"].startswith("text/html")
    pip_like = urllib3.request(
        "GET",
        index.url,
        headers={"Accept": "application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"},
    )
    assert pip_like.headers["Content-Type"].startswith("application/vnd.pypi.simple.v1+html")
    refused = urllib3.request("GET", index.url, headers={"Accept": "image/png"})
    assert refused.status == 406
    head = urllib3.request("HEAD", index.file_url(WHEEL))
    assert head.status == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) == (build / WHEEL).stat().st_size


# ---------------------------------------------------------------- downloads


def test_download_writes_the_file_and_returns_its_hash(make_index, clients, build, tmp_path):
    index = make_index()
    paths = populate(index, build)
    client = clients(index.url)
    files = by_name(client.project_page("alpha").files)
    dest = tmp_path / "out"
    result = client.download(files[WHEEL], dest)
    assert result.sha256 == sha256(paths[WHEEL])
    assert result.size == paths[WHEEL].stat().st_size
    assert dest.read_bytes() == paths[WHEEL].read_bytes()


def test_download_recovers_from_transient_failures(make_index, clients, build, tmp_path):
    index = make_index()
    paths = populate(index, build)
    client = clients(index.url, retries=3)
    files = by_name(client.project_page("alpha").files)
    index.fail_next(WHEEL, status=503, times=1)
    index.fail_next(WHEEL, status=0, times=1)
    dest = tmp_path / "out"
    assert client.download(files[WHEEL], dest).sha256 == sha256(paths[WHEEL])
    assert [p for _, p in index.requests].count(f"/files/{WHEEL}") == 3


def test_hash_mismatch_removes_the_file_and_is_not_retried(make_index, clients, build, tmp_path):
    index = make_index()
    paths = populate(index, build)
    client = clients(index.url)
    files = by_name(client.project_page("alpha").files)
    index.corrupt(WHEEL)
    dest = tmp_path / "out"
    dest.write_bytes(b"stale")
    with pytest.raises(HashMismatch) as caught:
        client.download(files[WHEEL], dest)
    assert isinstance(caught.value, DownloadError)
    assert caught.value.expected == sha256(paths[WHEEL])
    assert caught.value.actual != caught.value.expected and len(caught.value.actual) == 64
    assert files[WHEEL].url in str(caught.value) and "hash mismatch" in str(caught.value)
    assert not dest.exists()
    assert [p for _, p in index.requests].count(f"/files/{WHEEL}") == 1


def test_truncated_body_is_retried_then_a_download_error(make_index, clients, build, tmp_path):
    index = make_index()
    big = make_sdist(build, "alpha", "1.0", files={"alpha/blob.bin": os.urandom(300_000)})
    index.add(big)
    index.truncate(big.name)
    client = clients(index.url, retries=2)
    (file,) = client.project_page("alpha").files
    dest = tmp_path / "out"
    with pytest.raises(DownloadError) as caught:
        client.download(file, dest)
    assert not isinstance(caught.value, HashMismatch)
    message = str(caught.value)
    assert "truncated" in message and file.url in message and "3 attempts" in message
    assert not dest.exists()
    assert [p for _, p in index.requests].count(f"/files/{big.name}") == 3

    # The upstream mends: the same client succeeds.
    index.add(big)
    assert client.download(file, dest).sha256 == sha256(big)


def test_missing_file_is_a_download_error(make_index, clients, build, tmp_path):
    index = make_index()
    populate(index, build)
    client = clients(index.url)
    files = by_name(client.project_page("alpha").files)
    index.remove(WHEEL)
    with pytest.raises(DownloadError, match="HTTP 404"):
        client.download(files[WHEEL], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_old_index_md5_is_verified(make_index, clients, build, tmp_path):
    index = make_index(api="html", hash_name="md5")
    paths = populate(index, build)
    client = clients(index.url)
    files = by_name(client.project_page("alpha").files)
    expected_md5 = hashlib.md5(paths[WHEEL].read_bytes()).hexdigest()
    assert files[WHEEL].hashes == {"md5": expected_md5}
    result = client.download(files[WHEEL], tmp_path / "ok")
    assert result.sha256 == sha256(paths[WHEEL])  # sha256 is always ours to compute

    index.corrupt(WHEEL)
    with pytest.raises(HashMismatch) as caught:
        client.download(files[WHEEL], tmp_path / "bad")
    assert caught.value.algorithm == "md5" and caught.value.expected == expected_md5
    assert not (tmp_path / "bad").exists()


def test_a_body_longer_than_the_listed_size_is_cut_off(make_index, clients, build, tmp_path):
    index = make_index()
    populate(index, build)
    client = clients(index.url)
    file = by_name(client.project_page("alpha").files)[WHEEL]
    lying = dataclasses.replace(file, size=10)
    assert hash(lying) != hash(file)  # hashable, though its hashes are a dict
    with pytest.raises(DownloadError, match="more than the 10 bytes"):
        client.download(lying, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_download_memory_is_bounded_by_the_chunk_size(make_index, clients, build, tmp_path):
    size = 12 * 1024 * 1024
    index = make_index()
    big = make_sdist(build, "alpha", "1.0", files={"alpha/blob.bin": os.urandom(size)})
    index.add(big)
    client = clients(index.url)
    (file,) = client.project_page("alpha").files
    assert file.size is not None and file.size > size

    tracemalloc.start()
    try:
        result = client.download(file, tmp_path / "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == file.size
    assert peak < 4 * CHUNK_SIZE, f"peak {peak} bytes for a {file.size}-byte download"


def test_concurrent_downloads_share_one_client(make_index, clients, build, tmp_path):
    index = make_index()
    paths = [make_wheel(build, "alpha", f"1.{n}") for n in range(12)]
    for path in paths:
        index.add(path)
    index.fail_next("alpha-1.3-py3-none-any.whl", status=500)
    client = clients(index.url, pool_size=4)
    files = client.project_page("alpha").files

    def fetch(file: UpstreamFile) -> tuple[str, str]:
        return file.filename, client.download(file, tmp_path / file.filename).sha256

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = dict(pool.map(fetch, files))
    assert results == {path.name: sha256(path) for path in paths}


def test_closed_client_refuses(make_index, build, tmp_path):
    index = make_index()
    populate(index, build)
    with UpstreamClient(index.url) as client:
        file = by_name(client.project_page("alpha").files)[WHEEL]
    with pytest.raises(DownloadError, match="closed"):
        client.download(file, tmp_path / "out")


class _NoLengthHandler(http.server.BaseHTTPRequestHandler):
    """A body with no Content-Length (HTTP/1.0, ends when the connection closes)."""

    body = b"x" * 300_000

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_file_listed_without_a_size_is_bounded_by_max_bytes(make_index, clients, build, tmp_path):
    index = make_index(api="html")  # PEP 503: no sizes
    big = make_sdist(build, "alpha", "1.0", files={"alpha/blob.bin": os.urandom(300_000)})
    index.add(big)
    client = clients(index.url)
    (file,) = client.project_page("alpha").files
    assert file.size is None
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match="100000-byte limit"):
        client.download(file, dest, max_bytes=100_000)  # refused by its Content-Length
    assert not dest.exists()
    assert client.download(file, dest, max_bytes=10_000_000).sha256 == sha256(big)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoLengthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/files/alpha-1.0.tar.gz"
        streamed = dataclasses.replace(file, url=url, hashes={})
        with pytest.raises(DownloadError, match="more than the 100000-byte limit"):
            client.download(streamed, dest, max_bytes=100_000)
        assert not dest.exists()
    finally:
        server.shutdown()
        server.server_close()
