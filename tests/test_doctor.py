"""``qmirror doctor`` as cron or an admin runs it: the real command line over a data dir
filled by a real sync from a loopback upstream, then broken in the ways it must name."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builders import make_wheel
from tests.support.live import REPO, free_port, qmirror, write_config

pytestmark = pytest.mark.live


def lines_by_check(output: str) -> dict[str, str]:
    checks = {}
    for line in output.splitlines():
        level, rest = line.split(maxsplit=1)
        name, _, message = rest.partition(": ")
        checks[name] = f"{level} {message}"
    return checks


@pytest.fixture
def healthy(tmp_path, fake_index):
    build = tmp_path / "build"
    build.mkdir()
    index = fake_index("json")
    index.add(make_wheel(build, "alpha", "1.0"))
    config = write_config(
        tmp_path / "qmirror.toml", tmp_path / "data", index.url, sync={"projects": ["alpha"]}
    )
    qmirror(config, "sync")
    return config, tmp_path / "data"


def test_a_healthy_setup_is_all_ok(healthy):
    config, data = healthy
    result = qmirror(config, "doctor")
    checks = lines_by_check(result.stdout)
    assert list(checks) == [
        "config", "database", "storage quarantine", "storage published", "upstream", "disk",
        "last sync",
    ]  # fmt: skip
    assert all(line.startswith("ok ") for line in checks.values()), result.stdout
    assert str(config) in checks["config"]
    assert "quick_check ok, WAL" in checks["database"]
    assert "HTTP 200" in checks["upstream"]
    # The probes leave nothing behind.
    assert not [p for p in data.rglob("*doctor-probe*")]


def test_an_unreachable_upstream_fails(tmp_path, healthy):
    _, data = healthy
    closed = f"http://127.0.0.1:{free_port()}/simple/"
    config = write_config(tmp_path / "closed.toml", data, closed)
    result = qmirror(config, "doctor", check=False)
    assert result.returncode == 1
    upstream = lines_by_check(result.stdout)["upstream"]
    assert upstream.startswith("FAIL cannot connect to " + closed)
    assert "connection refused" in upstream and "fix: check [upstream] url" in upstream
    assert lines_by_check(result.stdout)["database"].startswith("ok ")


def test_an_http_error_from_the_upstream_fails(tmp_path, healthy, fake_index):
    _, data = healthy
    index = fake_index("json")
    index.fail_next("/simple/", status=503, times=5)
    config = write_config(tmp_path / "503.toml", data, index.url)
    result = qmirror(config, "doctor", check=False)
    assert result.returncode == 1
    assert lines_by_check(result.stdout)["upstream"].startswith(
        f"FAIL GET {index.url} answered HTTP 503"
    )


def _without_permission_override() -> list[str]:
    """Root ignores file modes; drop that capability so the command sees them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_an_unwritable_data_dir_fails(healthy):
    config, data = healthy
    directories = [data, *(p for p in data.rglob("*") if p.is_dir())]
    for directory in directories:
        directory.chmod(0o555)
    try:
        result = subprocess.run(
            [*_without_permission_override(), sys.executable, "-m", "mirror",
             "--config", str(config), "doctor"],
            capture_output=True, text=True, cwd=REPO, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        for directory in directories:
            directory.chmod(0o755)
    assert result.returncode == 1, result.stdout + result.stderr
    checks = lines_by_check(result.stdout)
    for store in ("storage quarantine", "storage published"):
        assert checks[store].startswith("FAIL cannot write a probe blob: Permission denied")
        assert "fix: make the data dir writable" in checks[store]
    assert checks["upstream"].startswith("ok ")


def test_a_corrupt_database_fails(healthy):
    config, data = healthy
    database = data / "qmirror.sqlite3"
    database.write_bytes(b"this was a database once" * 100)
    result = qmirror(config, "doctor", check=False)
    assert result.returncode == 1
    line = lines_by_check(result.stdout)["database"]
    assert line.startswith(f"FAIL {database} is corrupt (file is not a database)")
    assert "qmirror restore" in line
    assert "last sync" not in lines_by_check(result.stdout)


def test_a_damaged_page_fails_the_quick_check(healthy):
    config, data = healthy
    database = data / "qmirror.sqlite3"
    with sqlite3.connect(database) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'files_state'"
        ).fetchone()
    conn.close()
    with open(database, "r+b") as handle:  # scribble over an index page's cells
        handle.seek((root - 1) * page_size + 8)
        handle.write(b"\xff" * (page_size - 8))
    result = qmirror(config, "doctor", check=False)
    assert result.returncode == 1
    line = lines_by_check(result.stdout)["database"]
    assert line.startswith(
        f"FAIL {database} failed PRAGMA quick_check (1 problem(s), the first: On tree page"
    ), line
    assert "qmirror restore" in line


def test_a_bad_config_fails_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[upstream]\ntimeout = -1\n")
    result = qmirror(config, "doctor", check=False)
    assert result.returncode == 1
    assert result.stdout.startswith(f"FAIL  config: {config}: upstream.timeout")


def test_no_sync_yet_is_a_warning(tmp_path, fake_index):
    index = fake_index("json")
    config = write_config(tmp_path / "qmirror.toml", tmp_path / "data", index.url)
    qmirror(config, "init")
    result = qmirror(config, "doctor")
    assert lines_by_check(result.stdout)["last sync"] == (
        "warn no sync has run yet -- fix: run `qmirror sync` (and schedule it, see Cron)"
    )
    assert Path(tmp_path / "data" / "qmirror.sqlite3").is_file()
