"""The whole slice over real sockets: a fake upstream on loopback, ``qmirror sync`` as a
subprocess, the mirror under gunicorn, and real pip installing through it."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mirror.db import Database, State
from tests.support.builders import make_sdist, make_wheel
from tests.support.live import (
    REPO,
    free_port,
    gunicorn_mirror,
    make_venv,
    pip,
    pip_install,
    qmirror,
    write_config,
)

pytestmark = pytest.mark.live

LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
FLASK_CLOSURE = ("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker")


def corpus_files(corpus: Path, projects) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.name.split("-")[0].lower() in projects)


def installed(python: Path) -> set[str]:
    result = pip(python, "list", "--format=json")
    return {item["name"].lower() for item in json.loads(result.stdout)}


def fetch(url: str, accept: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_pip_installs_flask_and_its_dependencies_through_the_mirror(tmp_path, fake_index, corpus):
    """Only flask is configured; its dependencies follow. Real corpus wheels."""
    index = fake_index("json")
    for path in corpus_files(corpus, FLASK_CLOSURE):
        index.add(path, upload_time=LONG_AGO)
    config = write_config(
        tmp_path / "qmirror.toml", tmp_path / "data", index.url, sync={"projects": ["flask"]}
    )

    result = qmirror(config, "sync")
    assert "0 failed" in result.stdout, result.stdout + result.stderr

    db = Database(tmp_path / "data" / "qmirror.sqlite3")
    werkzeug = db.project("werkzeug")
    assert werkzeug is not None and werkzeug.reason == "dependency"
    assert werkzeug.required_by == "flask"
    assert db.project("flask").reason == "configured"

    with gunicorn_mirror(config, tmp_path) as server:
        python = make_venv(tmp_path / "venv")
        install = pip_install(python, server.index_url, ["flask"])
        assert install.returncode == 0, install.stdout + install.stderr
        assert set(FLASK_CLOSURE) <= installed(python)
        check = subprocess.run(
            [str(python), "-c", "import flask, markupsafe; print(flask.__name__)"],
            capture_output=True,
            text=True,
        )
        assert check.stdout.strip() == "flask"

    # A second sync with nothing new downloads nothing.
    index.requests.clear()
    again = qmirror(config, "sync")
    assert "0 new files" in again.stdout
    assert not [path for method, path in index.requests if "/files/" in path]


def test_held_files_are_not_installable_until_approved_html_upstream(tmp_path, fake_index, corpus):
    """A PEP 503 HTML upstream (pypiserver style) gives no upload time, so the cooldown
    counts from first sight: everything is held, and pip cannot see it."""
    index = fake_index("html")
    # The sdist's build backend comes through the mirror too (pip's build isolation).
    index.add(corpus / "setuptools-80.9.0-py3-none-any.whl")
    build = tmp_path / "build"
    build.mkdir()
    index.add(make_wheel(build, "alpha", "1.0", requires_dist=["beta>=1"]))
    index.add(make_wheel(build, "beta", "1.2"))
    index.add(make_sdist(build, "beta", "1.2"))
    index.add(make_wheel(build, "beta", "0.9"))  # outside alpha's specifier: not mirrored
    config = write_config(
        tmp_path / "qmirror.toml",
        tmp_path / "data",
        index.url,
        sync={"projects": ["alpha", "setuptools==80.9.0"]},
        policy={"cooldown": "3d"},
    )
    result = qmirror(config, "sync")
    assert "4 new files" in result.stdout and "4 held" in result.stdout, result.stdout

    status = json.loads(qmirror(config, "status", "--json").stdout)
    assert status["counts"]["quarantined"] == 4
    assert status["oldest_held"]["reasons"][0].startswith("cooldown")

    with gunicorn_mirror(config, tmp_path) as server:
        python = make_venv(tmp_path / "venv")
        refused = pip_install(python, server.index_url, ["alpha"])
        assert refused.returncode != 0
        assert "No matching distribution found for alpha" in refused.stdout + refused.stderr

        qmirror(config, "approve", "alpha==1.0", "--reason", "reviewed")
        qmirror(config, "approve", "beta", "--reason", "reviewed")
        qmirror(config, "approve", "setuptools", "--reason", "reviewed")
        install = pip_install(python, server.index_url, ["alpha"])
        assert install.returncode == 0, install.stdout + install.stderr
        assert {"alpha", "beta"} <= installed(python)

        download = pip(
            python,
            "download",
            "--index-url",
            server.index_url,
            "--no-deps",
            "--no-binary",
            "beta",
            "-d",
            str(tmp_path / "dl"),
            "beta==1.2",
        )
        assert download.returncode == 0, download.stdout + download.stderr
        assert (tmp_path / "dl" / "beta-1.2.tar.gz").exists()

        qmirror(config, "revoke", "alpha", "--reason", "maintainer account hijacked")
        status_code, _ = fetch(f"{server.url}/simple/alpha/")
        assert status_code == 404
        fresh = make_venv(tmp_path / "venv2")
        assert pip_install(fresh, server.index_url, ["alpha"]).returncode != 0

    decisions = Database(tmp_path / "data" / "qmirror.sqlite3").decisions()
    assert [d["to_state"] for d in decisions if d["file_id"] == 1] == [
        "quarantined",
        "approved",
        "revoked",
    ]
    assert decisions[-1]["reason"] == "maintainer account hijacked"


def test_cooldown_uses_the_upstream_upload_time_json_upstream(tmp_path, fake_index):
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    now = datetime.now(UTC)
    index.add(make_wheel(build, "gamma", "1.0"), upload_time=now - timedelta(days=10))
    index.add(make_wheel(build, "gamma", "2.0"), upload_time=now - timedelta(hours=2))
    config = write_config(
        tmp_path / "qmirror.toml",
        tmp_path / "data",
        index.url,
        sync={"projects": ["gamma"]},
        policy={"cooldown": "3d"},
    )
    result = qmirror(config, "sync")
    assert "1 approved" in result.stdout and "1 held" in result.stdout, result.stdout

    with gunicorn_mirror(config, tmp_path) as server:
        status_code, body = fetch(
            f"{server.index_url}gamma/", "application/vnd.pypi.simple.v1+json"
        )
        assert status_code == 200
        page = json.loads(body)
        assert [f["filename"] for f in page["files"]] == ["gamma-1.0-py3-none-any.whl"]
        # PEP 700 upload-time is the upstream's, to the second.
        uploaded = datetime.fromisoformat(page["files"][0]["upload-time"].replace("Z", "+00:00"))
        assert abs(uploaded - (now - timedelta(days=10))) < timedelta(seconds=1)
        python = make_venv(tmp_path / "venv")
        refused = pip_install(python, server.index_url, ["gamma==2.0"])
        assert refused.returncode != 0
        assert pip_install(python, server.index_url, ["gamma"]).returncode == 0
        assert "gamma" in installed(python)

    # Once the cooldown has passed (shortened here by config), the next sync approves it.
    qmirror(config, "sync", env={"QMIRROR_POLICY_COOLDOWN": "1h"})
    db = Database(tmp_path / "data" / "qmirror.sqlite3")
    assert db.file_by_filename("gamma-2.0-py3-none-any.whl").state is State.APPROVED


def test_bad_downloads_publish_nothing_and_the_next_sync_completes(tmp_path, fake_index):
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    good = make_wheel(build, "delta", "1.0")
    corrupt = make_wheel(build, "delta", "1.1")
    truncated = make_sdist(build, "delta", "1.1", files={"delta/blob.bin": os.urandom(200_000)})
    for path in (good, corrupt, truncated):
        index.add(path, upload_time=LONG_AGO)
    index.corrupt(corrupt.name)
    index.truncate(truncated.name)
    index.fail_next("/simple/delta/", status=500, times=1)  # recovered by a retry
    config = write_config(
        tmp_path / "qmirror.toml", tmp_path / "data", index.url, sync={"projects": ["delta"]}
    )

    first = qmirror(config, "sync", check=False)
    assert first.returncode == 1
    assert "1 approved" in first.stdout and "2 failed" in first.stdout, first.stdout
    assert "hash" in first.stderr.lower()

    db = Database(tmp_path / "data" / "qmirror.sqlite3")
    assert db.file_by_filename(corrupt.name) is None
    assert db.file_by_filename(truncated.name) is None
    assert {e["filename"] for e in db.fetch_errors()} == {corrupt.name, truncated.name}
    blobs = [p for p in (tmp_path / "data" / "quarantine").rglob("*") if p.is_file()]
    assert len(blobs) == 2  # the good wheel and its metadata, nothing half-written
    assert not list((tmp_path / "data" / "tmp").iterdir())

    with gunicorn_mirror(config, tmp_path) as server:
        _, page = fetch(f"{server.index_url}delta/")
        assert good.name.encode() in page
        assert corrupt.name.encode() not in page and truncated.name.encode() not in page

        # The upstream mends; the next sync completes, and the server picks it up live.
        index.remove(corrupt.name)
        index.add(corrupt, upload_time=LONG_AGO)
        index.remove(truncated.name)
        index.add(truncated, upload_time=LONG_AGO)
        second = qmirror(config, "sync")
        assert "2 new files" in second.stdout and "2 approved" in second.stdout
        _, page = fetch(f"{server.index_url}delta/")
        assert corrupt.name.encode() in page and truncated.name.encode() in page
    assert db.fetch_errors() == []


def test_upstream_down_keeps_serving_what_was_approved(tmp_path, fake_index):
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    index.add(make_wheel(build, "epsilon", "1.0"), upload_time=LONG_AGO)
    config = write_config(
        tmp_path / "qmirror.toml", tmp_path / "data", index.url, sync={"projects": ["epsilon"]}
    )
    qmirror(config, "sync")

    dead = f"http://127.0.0.1:{free_port()}/simple/"
    down = qmirror(config, "sync", check=False, env={"QMIRROR_UPSTREAM_URL": dead})
    assert down.returncode == 1
    assert "epsilon" in down.stderr and "127.0.0.1" in down.stderr
    assert "Traceback" not in down.stderr

    with gunicorn_mirror(config, tmp_path) as server:
        status_code, page = fetch(f"{server.index_url}epsilon/")
        assert status_code == 200 and b"epsilon-1.0-py3-none-any.whl" in page
    index.add(make_wheel(build, "epsilon", "1.1"), upload_time=LONG_AGO)
    back = qmirror(config, "sync")
    assert "1 new files" in back.stdout and "1 approved" in back.stdout


class _SilentUpstream:
    """A listening socket that accepts and never answers: a sync against it waits."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/simple/"

    def close(self) -> None:
        self.sock.close()


def _wait_for_lock_holder(data_dir: Path, pid: int, timeout: float = 20) -> None:
    lock = data_dir / "sync.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.05)
    raise AssertionError("the first sync never took the lock")


def test_a_second_sync_refuses_while_one_runs(tmp_path):
    silent = _SilentUpstream()
    config = write_config(
        tmp_path / "qmirror.toml",
        tmp_path / "data",
        silent.url,
        sync={"projects": ["zeta"]},
        upstream={"timeout": 30, "retries": 0},
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "mirror", "--config", str(config), "sync"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_lock_holder(tmp_path / "data", first.pid)
        second = qmirror(config, "sync", check=False)
        assert second.returncode != 0
        assert f"another sync is running (pid {first.pid})" in second.stderr
    finally:
        first.kill()
        first.wait()
        silent.close()


class _StallingUpstream:
    """Serves one project whose file stalls half-way: long enough to kill a sync mid-download."""

    def __init__(self, wheel: Path) -> None:
        data = wheel.read_bytes()
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        stop = threading.Event()
        self.stop_event = stop

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/simple/"):
                    body = json.dumps(
                        {
                            "meta": {"api-version": "1.1"},
                            "name": "eta",
                            "files": [
                                {
                                    "filename": wheel.name,
                                    "url": f"/files/{wheel.name}",
                                    "hashes": {"sha256": digest},
                                }
                            ],
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                stop.wait(60)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def close(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_killed_sync_leaves_nothing_visible_and_the_next_run_completes(tmp_path, fake_index):
    build = tmp_path / "build"
    build.mkdir()
    wheel = make_wheel(
        build, "eta", "1.0", files={"eta/__init__.py": b"", "eta/data.bin": os.urandom(3_000_000)}
    )
    stalling = _StallingUpstream(wheel)
    data_dir = tmp_path / "data"
    config = write_config(
        tmp_path / "qmirror.toml",
        data_dir,
        stalling.url,
        sync={"projects": ["eta"]},
        upstream={"timeout": 60, "retries": 0},
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror", "--config", str(config), "sync"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            partial = (
                [p for p in (data_dir / "tmp").glob("*") if p.stat().st_size > 0]
                if (data_dir / "tmp").exists()
                else []
            )
            if partial:
                break
            time.sleep(0.05)
        assert partial, "the download never started"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        stalling.close()

    # Nothing half-written is a blob, a row, or a page.
    assert not [
        p for p in (data_dir / "quarantine").rglob("*") if p.is_file() and ".tmp" not in p.parts
    ]
    db = Database(data_dir / "qmirror.sqlite3")
    assert db.file_by_filename(wheel.name) is None
    # The lock died with the process: the next sync runs and completes.
    with open(data_dir / "sync.lock") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)

    index = fake_index("json")
    index.add(wheel, upload_time=LONG_AGO)
    result = qmirror(config, "sync", env={"QMIRROR_UPSTREAM_URL": index.url})
    assert "1 approved" in result.stdout
    assert not list((data_dir / "tmp").iterdir())  # the killed run's temp file is gone
    assert db.file_by_filename(wheel.name).state is State.APPROVED
