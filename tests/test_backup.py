"""``qmirror backup`` / ``qmirror restore`` live: a backup taken while gunicorn serves,
restored into a fresh data dir that a new server then serves to real pip; and restores
that must refuse (a tampered blob, a tampered database, a non-empty data dir)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.builders import make_wheel
from tests.support.live import (
    gunicorn_mirror,
    make_venv,
    pip,
    pip_install,
    qmirror,
    write_config,
)

pytestmark = pytest.mark.live


@pytest.fixture
def mirror(tmp_path, fake_index):
    """alpha approved by hand, beta still held (cooldown)."""
    build = tmp_path / "build"
    build.mkdir()
    index = fake_index("json")
    index.add(make_wheel(build, "alpha", "1.0", files={"alpha/__init__.py": b"VALUE = 42\n"}))
    index.add(make_wheel(build, "beta", "1.0"))
    config = write_config(
        tmp_path / "qmirror.toml",
        tmp_path / "data",
        index.url,
        sync={"projects": ["alpha", "beta"]},
        policy={"cooldown": "3d"},
    )
    qmirror(config, "sync")
    qmirror(config, "approve", "alpha", "--reason", "reviewed")
    return config, index


def manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def test_backup_while_serving_then_restore_and_serve_to_pip(tmp_path, mirror):
    config, index = mirror
    backup_dir = tmp_path / "backup"
    with gunicorn_mirror(config, tmp_path) as server:
        result = qmirror(config, "backup", str(backup_dir))
        assert server.process.poll() is None
    # Two wheels and their core metadata; each key once, whichever stores hold it.
    assert result.stdout.startswith("backed up the database (2 files) and 4 blobs")
    blobs = manifest(backup_dir)["blobs"]
    alpha = next(b for b in blobs if b["key"] == index.digest("alpha-1.0-py3-none-any.whl"))
    assert alpha["stores"] == ["quarantine", "published"] and alpha["copied"]
    upstream_file = tmp_path / "upstream-0" / "files" / "alpha-1.0-py3-none-any.whl"
    assert alpha["size"] == upstream_file.stat().st_size
    beta = next(b for b in blobs if b["key"] == index.digest("beta-1.0-py3-none-any.whl"))
    assert beta["stores"] == ["quarantine"]
    metadata = next(b for b in blobs if b["key"] == alpha["key"] + ".metadata")
    assert metadata["stores"] == ["quarantine", "published"] and metadata["copied"]

    fresh = tmp_path / "restored"
    restored = qmirror(config, "restore", str(backup_dir), "--into", str(fresh))
    assert restored.stdout.startswith("restored the database and 4 blobs"), restored.stdout
    assert "before serving: run `qmirror advisories update`" in restored.stdout
    restored_config = write_config(tmp_path / "restored.toml", fresh, index.url)
    status = json.loads(qmirror(restored_config, "status", "--json").stdout)
    assert status["counts"]["approved"] == 1 and status["counts"]["quarantined"] == 1

    index.stop()  # the restored mirror serves on its own
    with gunicorn_mirror(restored_config, tmp_path) as server:
        python = make_venv(tmp_path / "venv")
        install = pip_install(python, server.index_url, ["alpha"])
        assert install.returncode == 0, install.stdout + install.stderr
        held = pip_install(python, server.index_url, ["beta"])
        assert held.returncode != 0
    listed = pip(python, "show", "alpha")
    assert "Version: 1.0" in listed.stdout


def test_restore_refuses_a_tampered_blob(tmp_path, mirror):
    config, index = mirror
    backup_dir = tmp_path / "backup"
    qmirror(config, "backup", str(backup_dir))
    key = index.digest("alpha-1.0-py3-none-any.whl")
    blob = backup_dir / "blobs" / key[:2] / key
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF  # same size, other bytes
    os.unlink(blob)  # a hardlink: edit the backup's copy, not the live store's
    blob.write_bytes(bytes(data))

    fresh = tmp_path / "restored"
    result = qmirror(config, "restore", str(backup_dir), "--into", str(fresh), check=False)
    assert result.returncode == 1
    assert f"restore refused: 1 problem(s) in the backup {backup_dir}" in result.stderr
    assert f"nothing was written to {fresh}" in result.stderr
    assert f"blobs/{key[:2]}/{key} (quarantine, published): sha256" in result.stderr
    assert "(tampered or corrupt)" in result.stderr
    assert not (fresh / "qmirror.sqlite3").exists()
    assert not [p for p in fresh.rglob("*") if p.is_file() and p.name != "sync.lock"]


def test_restore_refuses_a_tampered_database(tmp_path, mirror):
    config, _ = mirror
    backup_dir = tmp_path / "backup"
    qmirror(config, "backup", str(backup_dir))
    with open(backup_dir / "qmirror.sqlite3", "ab") as handle:
        handle.write(b"\0")
    result = qmirror(
        config, "restore", str(backup_dir), "--into", str(tmp_path / "fresh"), check=False
    )
    assert result.returncode == 1
    assert "qmirror.sqlite3: sha256 differs from the manifest (tampered or corrupt)" in (
        result.stderr
    )


def test_restore_refuses_a_non_empty_data_dir_without_force(tmp_path, mirror):
    config, _ = mirror
    backup_dir = tmp_path / "backup"
    qmirror(config, "backup", str(backup_dir))
    qmirror(config, "revoke", "alpha", "--reason", "oops")

    refused = qmirror(config, "restore", str(backup_dir), check=False)
    assert refused.returncode == 1
    assert f"{tmp_path / 'data'} is not empty" in refused.stderr and "--force" in refused.stderr

    qmirror(config, "restore", str(backup_dir), "--force")
    status = json.loads(qmirror(config, "status", "--json").stdout)
    assert status["counts"]["approved"] == 1 and status["counts"]["revoked"] == 0


def test_backup_refuses_a_non_empty_directory(tmp_path, mirror):
    config, _ = mirror
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("x")
    result = qmirror(config, "backup", str(target), check=False)
    assert result.returncode == 1
    assert f"{target} is not empty" in result.stderr
