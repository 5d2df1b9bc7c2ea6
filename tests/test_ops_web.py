"""Operations in-process (Flask test client over a mirror filled by a real sync from a
loopback upstream): ``/metrics`` against known state, bounded route labels, request ids
in and out and in the log records of a request, and the sync summary as a record."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mirror.config import settings_from_mapping
from mirror.db import Database, State
from mirror.logs import TextFormatter, setup_logging
from mirror.publish import Publisher
from mirror.storage import local_storage
from mirror.sync import Syncer
from mirror.upstream import UpstreamClient
from mirror.web import create_app
from tests.support.builders import make_wheel

SYNCED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SCRAPED = SYNCED + timedelta(hours=1)
OLD = SYNCED - timedelta(days=30)
HOOKY_PTH = b"import os; os.system('echo hi')\n"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def synced(tmp_path, fake_index):
    """alpha and beta approved by policy, hooky held (a .pth that runs code)."""
    build = tmp_path / "build"
    build.mkdir()
    index = fake_index("json")
    index.add(make_wheel(build, "alpha", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "beta", "2.0"), upload_time=OLD)
    hooky = make_wheel(
        build, "hooky", "1.0", files={"hooky/__init__.py": b"", "hooky.pth": HOOKY_PTH}
    )
    index.add(hooky, upload_time=OLD)
    settings = settings_from_mapping({
        "data_dir": str(tmp_path / "data"),
        "upstream": {"url": index.url, "timeout": 5, "retries": 1},
        "sync": {"projects": ["alpha", "beta", "hooky"], "python_versions": ["3.11"],
                 "platforms": ["linux-x86_64"]},
        "policy": {"cooldown": "0"},
    })  # fmt: skip
    db = Database(settings.database_path)
    db.migrate()
    storage = local_storage(settings.data_dir)
    with UpstreamClient(index.url, timeout=5, retries=1) as upstream:
        summary = Syncer(
            settings, db, storage, upstream, settings.policy.build(), clock=Clock(SYNCED)
        ).run()
    assert (summary.approved, summary.held) == (2, 1)
    return settings, db, storage, summary


@pytest.fixture
def app(synced):
    settings, db, storage, _ = synced
    return create_app(settings, db=db, storage=storage, clock=Clock(SCRAPED))


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_metrics_report_the_database_state(app, synced):
    _, db, _, summary = synced
    samples = scrape(app.test_client())

    files = {dict(k)["state"]: v for k, v in samples["qmirror_files"].items()}
    assert files == {"quarantined": 1, "approved": 2, "rejected": 0, "revoked": 0}
    assert samples["qmirror_held_files"][()] == 1
    assert samples["qmirror_held_oldest_age_seconds"][()] == 3600
    assert samples["qmirror_sync_runs_total"][()] == 1
    assert samples["qmirror_sync_failures_total"][()] == 0
    assert samples["qmirror_sync_downloaded_bytes_total"][()] == summary.bytes > 0
    assert samples["qmirror_sync_last_downloaded_bytes"][()] == summary.bytes
    assert samples["qmirror_sync_last_duration_seconds"][()] == 0  # a fixed clock
    assert samples["qmirror_sync_last_finished_timestamp_seconds"][()] == SYNCED.timestamp()
    assert samples["qmirror_sync_last_success_timestamp_seconds"][()] == SYNCED.timestamp()
    assert samples["qmirror_database_up"][()] == 1

    expected: dict[tuple, float] = {}
    for row in db.files(states=[State.QUARANTINED, State.APPROVED]):
        for finding in db.findings(row.id):
            key = (("check", finding["check_id"]), ("state", row.state.value))
            expected[key] = expected.get(key, 0) + 1
    assert expected[(("check", "pth-import"), ("state", "quarantined"))] == 1
    assert samples["qmirror_findings"] == expected


def test_findings_follow_decisions(app, synced):
    """Findings by check are recounted when the audit log moves: a rejected file's go."""
    _, db, storage, _ = synced
    client = app.test_client()
    pth = (("check", "pth-import"), ("state", "quarantined"))
    assert scrape(client)["qmirror_findings"][pth] == 1
    hooky = db.files(project="hooky")
    Publisher(db, storage).reject(hooky, actor="test", reason="runs code at startup")
    samples = scrape(client)
    assert pth not in samples.get("qmirror_findings", {})
    assert samples["qmirror_held_files"][()] == 0


def test_metrics_show_the_cooldown_queue(app, synced):
    _, db, _, _ = synced
    client = app.test_client()
    assert scrape(client)["qmirror_cooldown_waiting_files"][()] == 0
    assert "qmirror_cooldown_next_due_timestamp_seconds" not in scrape(client)
    (held,) = db.files(states=[State.QUARANTINED])
    due = SCRAPED + timedelta(days=2)
    db.set_hold(held.id, ["cooldown: uploaded recently"], due)
    samples = scrape(client)
    assert samples["qmirror_cooldown_waiting_files"][()] == 1
    assert samples["qmirror_cooldown_next_due_timestamp_seconds"][()] == due.timestamp()


def test_request_metrics_by_route_with_bounded_labels(app, synced):
    client = app.test_client()
    assert client.get("/simple/").status_code == 200
    assert client.get("/simple/alpha/").status_code == 200
    assert client.get("/simple/alpha/").status_code == 200
    assert client.get("/simple/Attacker_Chosen_xyz/").status_code == 301
    assert client.get("/simple/attacker-chosen-xyz/").status_code == 404
    row = synced[1].file_by_filename("alpha-1.0-py3-none-any.whl")
    with client.get(f"/files/{row.sha256}/{row.filename}") as response:
        assert response.status_code == 200
    assert client.get("/files/0000/attacker-chosen-xyz.whl").status_code == 404
    assert client.get("/healthz").status_code == 200
    assert client.get("/attacker-chosen-xyz/../etc").status_code == 404

    samples = scrape(client)
    counts = {
        (dict(k)["route"], dict(k)["status"]): v
        for k, v in samples["qmirror_http_requests_total"].items()
    }
    assert counts == {
        ("/simple/", "2xx"): 1,
        ("/simple/<project>/", "2xx"): 2,
        ("/simple/<project>/", "3xx"): 1,
        ("/simple/<project>/", "4xx"): 1,
        ("/files/", "2xx"): 1,
        ("/files/", "4xx"): 1,
        ("index.healthz", "2xx"): 1,
        ("unmatched", "4xx"): 1,
    }
    histogram_counts = {
        (dict(k)["route"], dict(k)["status"]): v
        for k, v in samples["qmirror_http_request_duration_seconds_count"].items()
    }
    assert histogram_counts == counts
    every_label = {value for name in samples for key in samples[name] for _, value in key}
    assert not [label for label in every_label if "xyz" in label.lower()]

    # The scrape above is counted by the next one, under its endpoint name.
    again = scrape(client)["qmirror_http_requests_total"]
    assert again[(("route", "ops.metrics"), ("status", "2xx"))] == 1


def test_request_ids_in_and_out(app):
    client = app.test_client()
    mine = client.get("/simple/", headers={"X-Request-ID": "lb-1234.abc"})
    assert mine.headers["X-Request-ID"] == "lb-1234.abc"
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert first and second and first != second
    for unsafe in ("a\r\nSet-Cookie: x=1", "x" * 65, "<script>", "-leading-dash"):
        answered = client.get("/healthz", headers={"X-Request-ID": unsafe.replace("\r\n", "")})
        assert answered.headers["X-Request-ID"] != unsafe.replace("\r\n", "")


def test_a_request_log_record_carries_its_request_id(app, synced, caplog):
    """A listed file whose published blob is gone: a 404, and a warning saying so."""
    _, db, storage, _ = synced
    row = db.file_by_filename("beta-2.0-py3-none-any.whl")
    storage.published.delete(row.sha256)
    with caplog.at_level(logging.WARNING, logger="qmirror"):
        response = app.test_client().get(
            f"/files/{row.sha256}/{row.filename}", headers={"X-Request-ID": "req-42"}
        )
    assert response.status_code == 404
    [record] = [r for r in caplog.records if "has no blob" in r.getMessage()]
    assert record.request_id == "req-42"
    assert row.filename in record.getMessage()


def test_json_log_lines_carry_fields_and_escape_what_they_quote(tmp_path):
    path = tmp_path / "log.jsonl"
    with open(path, "w") as stream:
        setup_logging(logging.INFO, as_json=True, stream=stream)
        try:
            logging.getLogger("qmirror.test").warning(
                "file %s\nFAKE", "evil\x1b[2J.whl", extra={"request_id": "r-1", "held": 3}
            )
        finally:
            setup_logging(logging.WARNING, as_json=False)
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["message"] == "file evil\x1b[2J.whl\nFAKE"
    assert record["level"] == "WARNING" and record["logger"] == "qmirror.test"
    assert record["request_id"] == "r-1" and record["held"] == 3 and "time" in record


def test_text_log_lines_stay_one_line():
    formatter = TextFormatter()
    record = logging.LogRecord(
        "qmirror", logging.ERROR, __file__, 1, "bad name %s", ("a\nb\x1b[31m\u202e",), None
    )
    record.request_id = "r-9"
    text = formatter.format(record)
    assert "\n" not in text
    assert text.endswith("ERROR [r-9] bad name a\\nb\\x1b[31m\\u202e")
    try:
        raise ValueError("forged\n2026-01-01 00:00:00,000 INFO all is well")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    lines = formatter.format(record).splitlines()
    assert all(line.startswith("  | ") for line in lines[1:])


def test_the_sync_summary_is_a_structured_record(synced, caplog):
    settings, db, storage, _ = synced
    with (
        caplog.at_level(logging.INFO, logger="qmirror"),
        UpstreamClient(settings.upstream.url, timeout=5, retries=1) as upstream,
    ):
        summary = Syncer(
            settings, db, storage, upstream, settings.policy.build(), clock=Clock(SCRAPED)
        ).run()
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "sync-summary"]
    assert record.getMessage() == summary.line()
    assert (record.projects, record.new, record.approved, record.held, record.failed) == (
        3, 0, 0, 0, 0,
    )  # fmt: skip
    assert record.status == "ok" and record.bytes == 0
