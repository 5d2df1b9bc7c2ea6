"""The core flow with S3 storage, live: a fake upstream on loopback, ``qmirror sync`` and
``qmirror approve`` as subprocesses writing to a real S3-compatible server (moto's, on
loopback), the mirror under gunicorn reading from it, and real pip installing through
it, with downloads streamed by the app or redirected to presigned URLs."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from mirror.db import Database, State
from tests.support.builders import make_wheel
from tests.support.live import gunicorn_mirror, make_venv, pip, pip_install, qmirror, write_config

pytestmark = pytest.mark.live


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def get(url: str, follow: bool = True) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("downloads", ["stream", "redirect"])
def test_pip_installs_approved_files_from_s3_and_never_a_held_one(
    tmp_path, fake_index, s3, downloads
):
    bucket = s3.create_bucket()
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    recent = datetime.now(UTC) - timedelta(hours=1)  # inside the cooldown: everything is held
    index.add(make_wheel(build, "alpha", "1.0", requires_dist=["beta>=1"]), upload_time=recent)
    index.add(make_wheel(build, "alpha", "2.0", requires_dist=["beta>=1"]), upload_time=recent)
    index.add(make_wheel(build, "beta", "1.1"), upload_time=recent)
    config = write_config(
        tmp_path / "qmirror.toml",
        tmp_path / "data",
        index.url,
        sync={"projects": ["alpha"]},
        policy={"cooldown": "3d"},
        storage={
            "backend": "s3",
            "bucket": bucket,
            "prefix": "pypi",
            "endpoint_url": s3.endpoint_url,
            "addressing_style": "path",
            "downloads": downloads,
        },
    )

    result = qmirror(config, "sync")
    assert "3 new files" in result.stdout and "3 held" in result.stdout, result.stdout
    assert not (tmp_path / "data" / "quarantine").exists()  # the blobs went to S3
    assert len(s3.keys(bucket, "pypi/quarantine/")) == 6  # three wheels and their METADATA
    assert s3.keys(bucket, "pypi/published/") == []

    qmirror(config, "approve", "alpha==1.0", "--reason", "reviewed")
    qmirror(config, "approve", "beta", "--reason", "reviewed")
    db = Database(tmp_path / "data" / "qmirror.sqlite3")
    held = db.file_by_filename("alpha-2.0-py3-none-any.whl")
    approved = db.file_by_filename("alpha-1.0-py3-none-any.whl")
    assert held.state is State.QUARANTINED and approved.state is State.APPROVED
    published = s3.keys(bucket, "pypi/published/")
    assert f"pypi/published/{approved.sha256}" in published
    assert not [key for key in published if held.sha256 in key]

    with gunicorn_mirror(config, tmp_path) as server:
        python = make_venv(tmp_path / "venv")
        install = pip_install(python, server.index_url, ["alpha"])
        assert install.returncode == 0, install.stdout + install.stderr
        listed = json.loads(pip(python, "list", "--format=json").stdout)
        versions = {item["name"].lower(): item["version"] for item in listed}
        assert versions["alpha"] == "1.0" and versions["beta"] == "1.1"

        file_url = f"{server.url}/files/{approved.sha256}/{approved.filename}"
        status, headers, body = get(file_url, follow=False)
        if downloads == "redirect":
            assert status == 302
            assert headers["Location"].startswith(f"{s3.endpoint_url}/{bucket}/pypi/published/")
        else:
            assert status == 200
            assert hashlib.sha256(body).hexdigest() == approved.sha256
        status, _, body = get(file_url)
        assert status == 200 and hashlib.sha256(body).hexdigest() == approved.sha256

        # The held file: no page lists it, its URL is a 404 (never a redirect), pip can't have it.
        status, _, _ = get(f"{server.url}/files/{held.sha256}/{held.filename}", follow=False)
        assert status == 404
        status, _, _ = get(f"{server.url}/files/{held.sha256}/{held.filename}.metadata")
        assert status == 404
        refused = pip_install(python, server.index_url, ["alpha==2.0"])
        assert refused.returncode != 0
        assert "No matching distribution found for alpha==2.0" in refused.stdout + refused.stderr

        # Revoked: gone from the index and from the published prefix at once.
        qmirror(config, "revoke", "alpha", "--reason", "hijacked")
        status, _, _ = get(file_url, follow=False)
        assert status == 404
        assert f"pypi/published/{approved.sha256}" not in s3.keys(bucket, "pypi/published/")
