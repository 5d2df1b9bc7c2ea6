"""Alerts: a real HTTP receiver on loopback records what the mirror posts. Slack-safe text,
the events (held, rejected, revoked, flagged, sync failed), and delivery that never blocks
sync: a receiver that fails or is down gets the alert on a later attempt, with backoff
on a fixed clock, and a bounded number of tries. Decisions in the web form and the API
alert at once, from a background thread, and a receiver that hangs does not slow them."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from mirror.alerts import (
    BackgroundDelivery,
    Event,
    alert_payload,
    clean_text,
    deliver_pending,
    queue_alert,
    slack_code,
    slack_text,
)
from mirror.cli import main
from mirror.config import ConfigError, settings_from_mapping
from mirror.db import Database, Role, State, TokenRole
from mirror.publish import Publisher
from mirror.storage import local_storage
from mirror.sync import Syncer
from mirror.upstream import UpstreamClient
from tests.support.admin import AdminSite, csrf_from
from tests.support.builders import make_wheel
from tests.support.live import free_port
from tests.support.receiver import WebhookReceiver

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=30)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver():
    with WebhookReceiver() as started:
        yield started


@pytest.fixture
def build(tmp_path):
    path = tmp_path / "build"
    path.mkdir()
    return path


def make_syncer(tmp_path, index_url, clock, projects, **alerts):
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "data"),
            "upstream": {"url": index_url, "timeout": 5, "retries": 0},
            "sync": {
                "projects": projects,
                "python_versions": ["3.11"],
                "platforms": ["linux-x86_64"],
            },
            "policy": {"cooldown": "0"},
            "alerts": {"timeout": 2, **alerts},
        }
    )
    db = Database(settings.database_path)
    db.migrate()
    upstream = UpstreamClient(index_url, timeout=5, retries=0)
    syncer = Syncer(
        settings,
        db,
        local_storage(settings.data_dir),
        upstream,
        settings.policy.build(),
        clock=clock,
    )
    return syncer, db, settings


# ---------------------------------------------------------------- neutralising text


def test_slack_text_escapes_and_strips_what_an_attacker_could_use():
    hostile = "<!channel> & <https://evil.example|click me>\x1b[31m\u202egnp.exe\u200b\nnext"
    text = slack_text(hostile)
    assert "<" not in text and ">" not in text
    assert text.startswith("&lt;!channel&gt; &amp; &lt;https://evil.example|click me&gt;")
    assert "\x1b" not in text and "\u202e" not in text and "\u200b" not in text
    assert "\n" not in text and text.endswith("[31mgnp.exe next")
    assert len(slack_text("x" * 10_000, 300)) == 300
    assert slack_code("a`b<c") == "`a'b&lt;c`"  # a backtick cannot end the code span
    assert clean_text("\ud800lone surrogate", 50) == "lone surrogate"


def test_payload_has_slack_text_and_structured_fields(tmp_path, fake_index, build, receiver):
    index = fake_index("json")
    index.add(make_wheel(build, "lib", "1.0"), upload_time=OLD)
    syncer, db, _ = make_syncer(tmp_path, index.url, Clock(NOW), ["lib"])
    syncer.run()
    row = db.file_by_filename("lib-1.0-py3-none-any.whl")
    payload = alert_payload(
        Event.REVOKED, at=NOW, reason="MAL-1 <script> & co", file=row, actor="advisory:MAL-1"
    )
    assert payload["text"].startswith(
        "qmirror: *revoked (removed from the index)*: "
        "`lib-1.0-py3-none-any.whl` (lib 1.0) by `advisory:MAL-1`"
    )
    assert "MAL-1 &lt;script&gt; &amp; co" in payload["text"]
    assert payload["blocks"][0]["text"]["text"] == payload["text"]
    assert payload["qmirror"] == {
        "event": "revoked",
        "at": "2026-06-01T12:00:00+00:00",
        "filename": "lib-1.0-py3-none-any.whl",
        "project": "lib",
        "version": "1.0",
        "sha256": row.sha256,
        "actor": "advisory:MAL-1",
        "reason": "MAL-1 <script> & co",
    }


def test_webhook_url_is_validated_and_kept_exactly():
    settings = settings_from_mapping({"alerts": {"webhook_url": "https://hooks.example/T/B/x"}})
    assert settings.alerts.webhook_url == "https://hooks.example/T/B/x"  # no slash added
    with pytest.raises(ConfigError, match=re.escape("alerts.webhook_url: expected an http")):
        settings_from_mapping({"alerts": {"webhook_url": "ftp://hooks.example/x"}})
    with pytest.raises(ConfigError, match=re.escape("alerts.max_attempts: must be at least 1")):
        settings_from_mapping({"alerts": {"max_attempts": 0}})


# ---------------------------------------------------------------- events


def test_held_rejected_revoked_and_sync_failed_reach_the_receiver(
    tmp_path, fake_index, build, receiver
):
    index = fake_index("json")
    hooky = {"hooky/__init__.py": b"", "hooky.pth": b"import os; os.system('id')\n"}
    index.add(make_wheel(build, "hooky", "1.0", files=hooky), upload_time=OLD)
    index.add(make_wheel(build, "clean", "1.0"), upload_time=OLD)
    broken = build / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    index.add(broken, upload_time=OLD, metadata=False)
    syncer, db, _ = make_syncer(
        tmp_path,
        index.url,
        Clock(NOW),
        ["hooky", "clean", "broken", "nowhere"],
        webhook_url=receiver.url,
    )
    summary = syncer.run()
    assert summary.failed == 1  # "nowhere" is not found upstream

    events = {alert["qmirror"]["event"]: alert for alert in receiver.alerts}
    assert events["held"]["qmirror"]["filename"] == "hooky-1.0-py3-none-any.whl"
    assert "pth-import" in events["held"]["qmirror"]["reason"]
    assert events["rejected"]["qmirror"]["filename"] == "broken-1.0-py3-none-any.whl"
    assert "nowhere: not found upstream" in events["sync-failed"]["qmirror"]["reason"]
    assert receiver.requests[0][2]["Content-Type"] == "application/json"
    assert db.pending_alerts() == []

    # A held file is alerted once, not on every sync that re-judges it.
    syncer.run()
    assert receiver.events().count("held") == 1

    # A decision from the command line alerts the same way (through Publisher).
    config = tmp_path / "cli.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[alerts]\nwebhook_url = "{receiver.url}"\n'
    )
    result = CliRunner().invoke(
        main, ["--config", str(config), "revoke", "clean", "--reason", "<b>bad</b> build"]
    )
    assert result.exit_code == 0, result.output
    revoked = [a for a in receiver.alerts if a["qmirror"]["event"] == "revoked"]
    assert revoked[0]["qmirror"]["filename"] == "clean-1.0-py3-none-any.whl"
    assert "&lt;b&gt;bad&lt;/b&gt; build" in revoked[0]["text"]
    assert revoked[0]["qmirror"]["actor"].startswith("cli")


# ---------------------------------------------------------------- delivery


def test_a_failing_receiver_never_blocks_sync_and_gets_the_alert_later(
    tmp_path, fake_index, build, receiver
):
    index = fake_index("json")
    broken = build / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    index.add(broken, upload_time=OLD, metadata=False)
    index.add(
        make_wheel(build, "other", "1.0", files={"other.pth": b"import os\n"}), upload_time=OLD
    )
    clock = Clock(NOW)
    syncer, db, settings = make_syncer(
        tmp_path,
        index.url,
        clock,
        ["broken", "other"],
        webhook_url=receiver.url,
        retry_backoff="10m",
    )
    receiver.respond_next(500)
    summary = syncer.run()
    assert summary.failed == 0 and summary.rejected == 1 and summary.held == 1
    assert receiver.alerts == [] and len(receiver.requests) == 1  # the first failure ends it
    pending = db.pending_alerts()
    assert len(pending) == 2 and pending[0].attempts == 1
    assert pending[0].next_attempt_at == NOW + timedelta(minutes=10)
    assert pending[0].last_error.endswith("HTTP 500")
    assert receiver.url.split("/hooks/")[1] not in pending[0].last_error  # the secret path

    # Not yet due: the oldest waits out its backoff, and the rest wait behind nothing.
    report = deliver_pending(db, settings.alerts, clock)
    assert report.sent == 1 and receiver.events() == ["held"]
    clock.now = NOW + timedelta(minutes=11)
    assert deliver_pending(db, settings.alerts, clock).sent == 1
    assert sorted(receiver.events()) == ["held", "rejected"] and db.pending_alerts() == []


def test_a_receiver_that_is_down_gets_the_alert_once_it_is_back(tmp_path, caplog):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}/hook"
    settings = settings_from_mapping(
        {"alerts": {"webhook_url": url, "max_attempts": 3, "retry_backoff": "1m"}}
    ).alerts
    clock = Clock(NOW)
    queue_alert(db, Event.SYNC_FAILED, now=NOW, reason="upstream unreachable")
    with caplog.at_level(logging.WARNING, logger="qmirror.alerts"):
        report = deliver_pending(db, settings, clock)
    assert report.failed == 1 and "not delivered (attempt 1 of 3" in caplog.text
    assert url not in caplog.text

    with WebhookReceiver(port) as back:
        clock.now = NOW + timedelta(minutes=2)
        assert deliver_pending(db, settings, clock).sent == 1
        assert back.events() == ["sync-failed"]


def test_backoff_stays_bounded_after_many_attempts(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens
    settings = settings_from_mapping(
        {"alerts": {"webhook_url": url, "max_attempts": 100, "retry_backoff": "1m"}}
    ).alerts
    queue_alert(db, Event.SYNC_FAILED, now=NOW, reason="upstream unreachable")
    with db.write():  # as if it had failed this often already (2**59 minutes overflows)
        db.db.execute("UPDATE alert_outbox SET attempts = 60")
    report = deliver_pending(db, settings, Clock(NOW))
    assert report.failed == 1
    (alert,) = db.pending_alerts()
    assert alert.attempts == 61 and alert.next_attempt_at == NOW + timedelta(hours=6)


def test_an_alert_is_dropped_after_max_attempts_with_a_log_line(tmp_path, receiver, caplog):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    settings = settings_from_mapping(
        {"alerts": {"webhook_url": receiver.url, "max_attempts": 2, "retry_backoff": "1m"}}
    ).alerts
    clock = Clock(NOW)
    queue_alert(db, Event.SYNC_FAILED, now=NOW, reason="first")
    queue_alert(db, Event.SYNC_FAILED, now=NOW, reason="second")
    receiver.respond_next(503, 400)
    deliver_pending(db, settings, clock)
    clock.now = NOW + timedelta(minutes=5)
    with caplog.at_level(logging.ERROR, logger="qmirror.alerts"):
        report = deliver_pending(db, settings, clock)
    assert report.dropped == 1 and "dropped after 2 attempts" in caplog.text
    clock.now = NOW + timedelta(minutes=6)
    deliver_pending(db, settings, clock)
    assert [a["qmirror"]["reason"] for a in receiver.alerts] == ["second"]
    assert db.pending_alerts() == []


def test_without_a_webhook_nothing_piles_up(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "lib", "1.0"), upload_time=OLD)
    syncer, db, settings = make_syncer(tmp_path, index.url, Clock(NOW), ["lib"])
    syncer.run()
    row = db.file_by_filename("lib-1.0-py3-none-any.whl")
    Publisher(db, syncer.storage, Clock(NOW)).revoke([row], actor="test", reason="why")
    assert [a.event for a in db.pending_alerts()] == ["revoked"]
    assert deliver_pending(db, settings.alerts, Clock(NOW)).discarded == 1
    assert db.pending_alerts() == []
    assert db.file_by_id(row.id).state is State.REVOKED


# ---------------------------------------------------------------- decisions in the web and API

HOOK = {"hooky/__init__.py": b"", "hooky.pth": b"import os; os.system('id')\n"}


def review_site(tmp_path, fake_index, build, receiver, **alerts):
    index = fake_index("json")
    for version in ("1.0", "1.1", "1.2"):
        index.add(make_wheel(build, "hooky", version, files=HOOK), upload_time=OLD)
    site = AdminSite(
        tmp_path,
        upstream={"url": index.url},
        sync={"projects": ["hooky"], "python_versions": ["3.11"], "platforms": ["linux-x86_64"]},
        policy={"cooldown": "0"},
        alerts={"webhook_url": receiver.url, "timeout": 10, **alerts},
    )  # fmt: skip
    site.sync_from(index.url)
    assert receiver.events() == ["held", "held", "held"]  # sync delivered its own
    site.user("rev", Role.REVIEWER)
    return site


def web_reject(client, site, filename, reason):
    row = site.db.file_by_filename(filename)
    page = client.get(f"/admin/files/{row.id}").text
    started = time.monotonic()
    response = client.post(
        f"/admin/files/{row.id}/decide",
        data={"action": "reject", "seen_state": "quarantined", "reason": reason,
              "csrf_token": csrf_from(page)},
    )  # fmt: skip
    return response, time.monotonic() - started


def api_decide(client, secret, site, filename, verb, reason):
    row = site.db.file_by_filename(filename)
    started = time.monotonic()
    response = client.post(
        f"/api/v1/files/{row.id}/{verb}",
        json={"reason": reason},
        headers={"Authorization": f"Bearer {secret}"},
    )
    return response, time.monotonic() - started


def test_web_and_api_decisions_reach_the_receiver_without_a_sync(
    tmp_path, fake_index, build, receiver
):
    site = review_site(tmp_path, fake_index, build, receiver)
    response, _ = web_reject(
        site.logged_in("rev"), site, "hooky-1.0-py3-none-any.whl", "<!channel> pth runs id"
    )
    assert response.status_code == 303
    alerts = receiver.wait_for(4)
    assert [a["qmirror"]["event"] for a in alerts[3:]] == ["rejected"]
    assert alerts[3]["qmirror"]["actor"] == "user:rev"
    assert "&lt;!channel&gt; pth runs id" in alerts[3]["text"]

    secret = site.accounts.create_token("chatops", TokenRole.REVIEWER, actor="test").secret
    client = site.client()
    approved, _ = api_decide(client, secret, site, "hooky-1.1-py3-none-any.whl", "approve", "ok")
    assert approved.status_code == 200
    revoked, _ = api_decide(client, secret, site, "hooky-1.1-py3-none-any.whl", "revoke", "MAL")
    assert revoked.status_code == 200
    alerts = receiver.wait_for(5)
    assert alerts[4]["qmirror"]["event"] == "revoked"
    assert alerts[4]["qmirror"]["actor"].startswith("token:") and len(alerts) == 5
    assert site.db.pending_alerts() == []


def test_a_hanging_receiver_does_not_slow_a_decision(tmp_path, fake_index, build, receiver):
    site = review_site(tmp_path, fake_index, build, receiver)
    hang = 3.0
    receiver.hang_next(hang, hang)
    secret = site.accounts.create_token("chatops", TokenRole.REVIEWER, actor="test").secret
    api, api_seconds = api_decide(
        site.client(), secret, site, "hooky-1.0-py3-none-any.whl", "reject", "bad"
    )
    # The second decision comes while delivery of the first still hangs.
    web, web_seconds = web_reject(site.logged_in("rev"), site, "hooky-1.1-py3-none-any.whl", "bad")
    assert api.status_code == 200 and web.status_code == 303
    assert api_seconds < hang / 6 and web_seconds < hang / 6, (api_seconds, web_seconds)
    assert receiver.alerts[3:] == []  # still on its way
    alerts = receiver.wait_for(5, timeout=4 * hang)
    assert [a["qmirror"]["filename"] for a in alerts[3:]] == [
        "hooky-1.0-py3-none-any.whl",
        "hooky-1.1-py3-none-any.whl",
    ]


def test_background_delivery_idles_out_and_starts_again(tmp_path, receiver):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    settings = settings_from_mapping({"alerts": {"webhook_url": receiver.url}}).alerts
    delivery = BackgroundDelivery(db.path, settings, Clock(NOW), idle=0.05)
    queue_alert(db, Event.SYNC_FAILED, now=NOW, reason="one")
    delivery.wake()
    assert len(receiver.wait_for(1)) == 1
    time.sleep(0.3)  # longer than idle: the thread has ended
    queue_alert(db, Event.SYNC_FAILED, now=NOW, reason="two")
    delivery.wake()
    assert [a["qmirror"]["reason"] for a in receiver.wait_for(2)] == ["one", "two"]


@pytest.mark.live
def test_an_api_rejection_under_gunicorn_alerts_from_the_worker(tmp_path, fake_index, build):
    """Forked gunicorn workers each start their own delivery thread on the first wake."""
    import urllib3

    from tests.support.live import gunicorn_mirror, qmirror, write_config

    index = fake_index("json")
    index.add(make_wheel(build, "hooky", "1.0", files=HOOK), upload_time=OLD)
    with WebhookReceiver() as hook:
        config = write_config(
            tmp_path / "qmirror.toml", tmp_path / "data", index.url,
            sync={"projects": ["hooky"]}, alerts={"webhook_url": hook.url, "timeout": 10},
        )  # fmt: skip
        qmirror(config, "sync")
        assert hook.events() == ["held"]
        secret = qmirror(config, "token", "create", "bot", "--role", "reviewer").stdout.strip()
        hook.hang_next(3.0)
        db = Database(tmp_path / "data" / "qmirror.sqlite3")
        row = db.file_by_filename("hooky-1.0-py3-none-any.whl")
        with gunicorn_mirror(config, tmp_path) as server:
            started = time.monotonic()
            response = urllib3.request(
                "POST", f"{server.url}/api/v1/files/{row.id}/reject",
                json={"reason": "pth runs id"},
                headers={"Authorization": f"Bearer {secret}"}, timeout=30,
            )  # fmt: skip
            took = time.monotonic() - started
            assert response.status == 200, response.data
            assert took < 1.0, took
            alerts = hook.wait_for(2, timeout=15)
        assert [a["qmirror"]["event"] for a in alerts] == ["held", "rejected"]
