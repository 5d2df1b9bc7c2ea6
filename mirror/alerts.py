"""Alerts to a webhook (``[alerts] webhook_url``) in a Slack-compatible body.

Two halves, so that nothing waits on the receiver:

- :func:`queue_alert` writes the alert into the outbox table, in the caller's transaction
  (``Publisher`` queues one for every rejection and revocation, whoever decided it; sync
  for files held for review and for a failed run; advisories and sync for approved files
  flagged for review).
- :func:`deliver_pending` posts what is due, after the work is done (the end of a sync,
  a CLI decision, an advisories update; for a decision in the web or the API,
  :class:`BackgroundDelivery`, off the request thread), with a short timeout. A failure
  is logged and the alert waits ``retry_backoff`` (doubling each time) before it is
  tried again; after ``max_attempts`` it is dropped with a log line. The first failure
  ends a delivery run, so a receiver that is down costs one timeout, not one per alert.

Alert text quotes attacker-written names and reasons: :func:`slack_text` neutralises them
(Slack's ``&``/``<``/``>`` escapes, no control or bidi characters, bounded lengths).
"""

from __future__ import annotations

import logging
import os
import threading
import unicodedata
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import urllib3

from mirror.config import AlertsSettings
from mirror.db import Database, FileRow, iso

log = logging.getLogger("qmirror.alerts")

MAX_FIELD_CHARS: Final = 300  # a filename, project or actor
MAX_REASON_CHARS: Final = 1500  # Slack cuts a section's text at 3000
MAX_PER_DELIVERY: Final = 100  # alerts posted in one run; the rest wait for the next
MAX_BACKOFF: Final = timedelta(hours=6)
IDLE_SECONDS: Final = 60.0  # an idle background deliverer ends; the next wake starts one


class Event(StrEnum):
    HELD = "held"  # a file is held for review (not merely for the cooldown)
    REJECTED = "rejected"
    REVOKED = "revoked"
    FLAGGED = "flagged"  # an approved file has something new a person should look at
    SYNC_FAILED = "sync-failed"


_TITLES: Final = {
    Event.HELD: "held for review",
    Event.REJECTED: "rejected",
    Event.REVOKED: "revoked (removed from the index)",
    Event.FLAGGED: "flagged for review (still served)",
    Event.SYNC_FAILED: "sync failed",
}


# ---------------------------------------------------------------- neutralising text


def clean_text(value: object, limit: int) -> str:
    """``value`` as one line of at most ``limit`` characters, with control, format (bidi,
    zero-width) and separator characters removed and unpaired surrogates escaped: safe
    for any receiver that shows text."""
    text = str(value)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\t\n\r":
            kept.append(" ")
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            continue
        else:
            kept.append(char)
    text = " ".join("".join(kept).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def slack_text(value: object, limit: int = MAX_FIELD_CHARS) -> str:
    """``clean_text`` escaped as Slack requires (``&``, ``<``, ``>``), so no name or
    reason can open a link, a mention (``<!channel>``) or a user reference."""
    return clean_text(value, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(value: object, limit: int = MAX_FIELD_CHARS) -> str:
    """Inline code: Slack renders no formatting or link inside; a backtick in the value,
    which would end the span, becomes a straight quote."""
    return "`" + slack_text(value, limit).replace("`", "'") + "`"


# ---------------------------------------------------------------- queueing


def alert_payload(
    event: Event,
    *,
    at: datetime,
    reason: str,
    file: FileRow | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """The webhook body: Slack's ``text`` and ``blocks``, and ``qmirror``, the same facts
    as plain fields for receivers that parse JSON rather than read it."""
    event = Event(event)
    if file is not None:
        headline = (
            f"*{_TITLES[event]}*: {slack_code(file.filename)}"
            f" ({slack_text(file.project)} {slack_text(file.version)})"
        )
    else:
        headline = f"*{_TITLES[event]}*"
    by = f" by {slack_code(actor)}" if actor else ""
    text = f"qmirror: {headline}{by}\n{slack_text(reason, MAX_REASON_CHARS)}"
    structured: dict[str, Any] = {
        "event": event.value,
        "at": iso(at),
        "filename": None if file is None else clean_text(file.filename, MAX_FIELD_CHARS),
        "project": None if file is None else clean_text(file.project, MAX_FIELD_CHARS),
        "version": None if file is None else clean_text(file.version, MAX_FIELD_CHARS),
        "sha256": None if file is None else file.sha256,
        "actor": None if actor is None else clean_text(actor, MAX_FIELD_CHARS),
        "reason": clean_text(reason, MAX_REASON_CHARS),
    }
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "qmirror": structured,
    }


def queue_alert(
    db: Database,
    event: Event,
    *,
    now: datetime,
    reason: str,
    file: FileRow | None = None,
    actor: str | None = None,
) -> None:
    """Put an alert in the outbox (within the caller's transaction, if any). Delivery is
    :func:`deliver_pending`'s job; with no webhook configured the outbox is emptied."""
    payload = alert_payload(event, at=now, reason=reason, file=file, actor=actor)
    db.queue_alert(Event(event).value, payload, now)


# ---------------------------------------------------------------- delivery


class DeliveryFailed(Exception):
    """The receiver did not take the alert; ``str()`` is one line (never the URL, whose
    path is the webhook's secret)."""


class Webhook:
    """POSTs JSON bodies to one URL. No redirects, no retries here: the outbox retries."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.host = urlsplit(url).netloc.rpartition("@")[2]
        self._pool = urllib3.PoolManager(
            headers={"User-Agent": "quarantine-mirror", "Content-Type": "application/json"},
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
        )

    def post(self, body: bytes) -> None:
        try:
            response = self._pool.request(
                "POST", self.url, body=body, redirect=False, retries=False, preload_content=True
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise DeliveryFailed(f"{self.host}: {type(error).__name__}") from None
        if not 200 <= response.status < 300:
            raise DeliveryFailed(f"{self.host}: HTTP {response.status}")

    def close(self) -> None:
        self._pool.clear()


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    discarded: int = 0  # queued while no webhook is configured


def backoff(first: timedelta, attempts: int) -> timedelta:
    """The wait after ``attempts`` failures: ``first``, doubling, at most MAX_BACKOFF.
    Doubled only while under the cap, so no ``max_attempts`` overflows a timedelta."""
    wait = first
    for _ in range(attempts - 1):
        if wait >= MAX_BACKOFF:
            break
        wait *= 2
    return min(wait, MAX_BACKOFF)


def deliver_pending(
    db: Database,
    settings: AlertsSettings,
    clock: Callable[[], datetime],
    *,
    webhook: Webhook | None = None,
) -> DeliveryReport:
    """Post the alerts that are due; never raises for the receiver's sake."""
    if not settings.webhook_url:
        discarded = db.discard_alerts()
        return DeliveryReport(discarded=discarded)
    own = webhook is None
    sender = webhook or Webhook(settings.webhook_url, timeout=settings.timeout)
    sent = failed = dropped = 0
    try:
        for alert in db.due_alerts(clock(), limit=MAX_PER_DELIVERY):
            try:
                sender.post(alert.payload.encode())
            except DeliveryFailed as error:
                failed += 1
                attempts = alert.attempts + 1
                if attempts >= settings.max_attempts:
                    db.alert_delivered(alert.id)
                    dropped += 1
                    log.error(
                        "alert %d (%s) dropped after %d attempts: %s",
                        alert.id, alert.event, attempts, error,
                    )  # fmt: skip
                else:
                    wait = backoff(settings.retry_backoff, attempts)
                    db.alert_failed(alert.id, str(error), clock() + wait)
                    log.warning(
                        "alert %d (%s) not delivered (attempt %d of %d, next in %s): %s",
                        alert.id, alert.event, attempts, settings.max_attempts, wait, error,
                    )  # fmt: skip
                break  # the receiver is failing: the rest wait for the next run
            db.alert_delivered(alert.id)
            sent += 1
    finally:
        if own:
            sender.close()
    return DeliveryReport(sent=sent, failed=failed, dropped=dropped)


def deliver_quietly(
    db: Database, settings: AlertsSettings, clock: Callable[[], datetime]
) -> DeliveryReport:
    """:func:`deliver_pending` for the end of a command: whatever goes wrong (even the
    database being busy) is logged, never raised, so alerts cannot fail the work."""
    try:
        return deliver_pending(db, settings, clock)
    except Exception:
        log.exception("delivering alerts failed; they stay queued")
        return DeliveryReport()


class BackgroundDelivery:
    """Delivers the outbox off the request thread, so a slow or hanging webhook never
    delays a decision taken in the web or the API.

    One daemon thread per process, started by the first :meth:`wake` (never at import or
    in the gunicorn master; a forked worker starts its own, as a thread does not survive
    a fork) and ending after ``idle`` seconds without a wake. Each pass opens its own
    connection to ``db_path`` and closes it: a SQLite connection is never shared between
    threads. Wakes that come during a pass coalesce into one more pass. An alert the
    receiver refuses waits its backoff, for the next wake, sync or command.
    """

    def __init__(
        self,
        db_path: Path,
        settings: AlertsSettings,
        clock: Callable[[], datetime],
        *,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self.db_path = Path(db_path)
        self.settings = settings
        self.clock = clock
        self.idle = idle
        self._reset()
        _DELIVERIES.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Ask for a delivery pass soon; returns at once."""
        with self._lock:
            self._wakeup.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="qmirror-alerts", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._wakeup.wait(self.idle):
                with self._lock:
                    # Checked under the lock wake() sets it under: no wake is lost.
                    if not self._wakeup.is_set():
                        self._thread = None
                        return
            self._wakeup.clear()
            try:
                self._deliver_once()
            except Exception:  # the thread must outlive any one pass
                log.exception("alert delivery pass failed; the alerts stay queued")

    def _deliver_once(self) -> None:
        db = Database(self.db_path)
        try:
            deliver_quietly(db, self.settings, self.clock)
        finally:
            db.close()


_DELIVERIES: weakref.WeakSet[BackgroundDelivery] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child has one thread: the parent's deliverer (and a lock it may have held)
    # did not come along, so each starts afresh on its first wake.
    for delivery in list(_DELIVERIES):
        delivery._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
