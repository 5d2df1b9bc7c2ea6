"""The command line in-process (click's CliRunner): scan verdicts and exit codes,
decisions and status on a real database."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from mirror.cli import main
from mirror.config import load_settings
from mirror.db import Database, NewFile, State
from mirror.storage import local_storage
from tests.support.builders import make_wheel


def scan(*args: str):
    return CliRunner().invoke(main, ["--config", "/dev/null", "scan", *args])


def test_scan_clean_file_exits_0(tmp_path):
    wheel = make_wheel(tmp_path, "clean", "1.0")
    result = scan(str(wheel))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("clean-1.0-py3-none-any.whl: APPROVE")


def test_scan_held_file_exits_1_and_says_why(tmp_path):
    wheel = make_wheel(
        tmp_path, "hooky", "1.0",
        files={"hooky/__init__.py": b"", "hooky.pth": b"import os; os.system('echo hi')\n"},
    )  # fmt: skip
    result = scan(str(wheel))
    assert result.exit_code == 1, result.output
    assert "HOLD" in result.output and "pth-import" in result.output


def test_scan_rejected_file_exits_2_and_json_has_one_object_per_file(tmp_path):
    garbage = tmp_path / "broken-1.0-py3-none-any.whl"
    garbage.write_bytes(b"this is not a zip file")
    clean = make_wheel(tmp_path, "clean", "1.0")
    result = scan("--json", str(clean), str(garbage))
    assert result.exit_code == 2  # the worst verdict wins
    objects = [json.loads(line) for line in result.output.splitlines()]
    assert [o["verdict"] for o in objects] == ["approve", "reject"]
    finding = objects[1]["findings"][0]
    assert set(finding) == {"check", "severity", "message", "evidence", "path"}
    assert finding["check"] == "archive-unreadable" and finding["severity"] == "critical"


def test_scan_escapes_control_characters_in_the_terminal_report(tmp_path):
    wheel = make_wheel(
        tmp_path, "evil", "1.0",
        metadata="Metadata-Version: 2.1\nName: evil\nVersion: 1.0\nSummary: a\x1b[2Jb\n\n",
    )  # fmt: skip
    result = scan(str(wheel))
    assert "\x1b" not in result.output


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "qmirror.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    settings = load_settings(path, environ={})
    db = Database(settings.database_path)
    db.migrate()
    storage = local_storage(settings.data_dir)
    for version in ("1.0", "2.0"):
        wheel = make_wheel(tmp_path, "demo", version)
        data = wheel.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        storage.quarantine.put_stream(sha, io.BytesIO(data))
        db.ensure_project("demo", "demo", "configured")
        db.add_file(
            NewFile("demo", version, wheel.name, "wheel", sha, len(data), "https://x/", None,
                    None, None, None, None, []),
            [], now=datetime.now(UTC),
        )  # fmt: skip
    return path


def run(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args])


def test_approve_reject_revoke_and_status(config):
    status = run(config, "status")
    assert status.exit_code == 0
    assert "quarantined: 2" in status.output and "oldest held: demo-1.0" in status.output

    approved = run(config, "approve", "demo==1.0", "--reason", "looked at it")
    assert (
        approved.exit_code == 0 and approved.output.strip() == "approved demo-1.0-py3-none-any.whl"
    )
    rejected = run(config, "reject", "Demo==2.0", "--reason", "typosquat")
    assert rejected.exit_code == 0, rejected.output
    revoked = run(config, "revoke", "demo", "--reason", "advisory")
    assert revoked.exit_code == 0 and "revoked demo-1.0" in revoked.output

    db = Database(load_settings(config, environ={}).database_path)
    assert [r.state for r in db.files()] == [State.REVOKED, State.REJECTED]
    last = db.decisions()[-1]
    assert last["actor"].startswith("cli") and last["reason"] == "advisory"


def test_decisions_need_a_reason_and_a_matching_file(config):
    assert run(config, "reject", "demo==1.0").exit_code == 2  # --reason is required
    nothing = run(config, "revoke", "demo==1.0", "--reason", "x")
    assert nothing.exit_code == 1
    assert "no approved files match demo==1.0" in nothing.output
    bad = run(config, "approve", "demo>=1", "--reason", "x")
    assert "only PROJECT==VERSION" in bad.output


def test_checks_lists_every_id_a_finding_can_carry():
    from quarantine.checks import CATALOGUE, known_check_ids
    from quarantine.drift import DRIFT_CHECKS

    result = CliRunner().invoke(main, ["checks"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.splitlines()]
    catalogue_first = [check.id for check in CATALOGUE] + [check_id for check_id, _ in DRIFT_CHECKS]
    assert listed[: len(catalogue_first)] == catalogue_first
    assert set(listed) == known_check_ids()  # advisories and sync-reported ids too
    assert len(set(listed)) == len(listed)  # ids are unique
    assert all(len(line.split(None, 1)) == 2 for line in result.output.splitlines())


def test_scan_against_an_earlier_release_reports_drift(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = make_wheel(tmp_path / "old", "widget", "1.0")
    same = make_wheel(tmp_path / "new", "widget", "1.1")
    hooked = make_wheel(
        tmp_path / "new", "widget", "1.2",
        files={"widget/__init__.py": b"", "stealer/__init__.py": b""},
    )  # fmt: skip
    clean = scan("--against", str(old), str(same))
    assert clean.exit_code == 0 and "drift" not in clean.output
    drifted = scan("--json", "--against", str(old), str(hooked))
    report = json.loads(drifted.output)
    assert "drift-new-top-level" in {f["check"] for f in report["findings"]}
    assert report["verdict"] == "hold" and drifted.exit_code == 1


def test_status_says_how_many_files_wait_on_the_cooldown(config):
    db = Database(load_settings(config, environ={}).database_path)
    due = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    for row in db.files():
        db.set_hold(row.id, ["cooldown: uploaded recently"], due)
    text = run(config, "status")
    assert "waiting on cooldown: 2; next due 2030-01-02T03:04:00+00:00" in text.output
    data = json.loads(run(config, "status", "--json").output)
    assert data["cooldown"] == {"waiting": 2, "next_due": "2030-01-02T03:04:00+00:00"}


def test_approving_a_release_does_not_overturn_rejections(config):
    assert run(config, "reject", "demo==2.0", "--reason", "malware").exit_code == 0
    result = run(config, "approve", "demo", "--reason", "release looks fine")
    assert result.output.strip() == "approved demo-1.0-py3-none-any.whl"
    db = Database(load_settings(config, environ={}).database_path)
    assert db.file_by_filename("demo-2.0-py3-none-any.whl").state is State.REJECTED
    # Overturning is a decision about one named file.
    named = run(config, "approve", "demo", "--file", "demo-2.0-py3-none-any.whl", "--reason", "fp")
    assert named.exit_code == 0
    assert db.file_by_filename("demo-2.0-py3-none-any.whl").state is State.APPROVED
