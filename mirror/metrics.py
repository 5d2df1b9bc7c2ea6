"""Prometheus metrics: request figures recorded as requests are served, and the mirror's
state read from the database when ``/metrics`` is scraped.

gunicorn runs several worker processes, each answering some of the requests, so the
request counters use prometheus_client's multiprocess mode: each worker writes its
values to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (which ``qmirror serve``
sets up and empties before gunicorn starts, see ``prepare_multiprocess_dir``) and a
scrape, whichever worker answers it, sums them all. gunicorn's ``child_exit`` hook
(``mirror.gunicorn_hooks``) marks a dead worker's files. Without that variable (tests,
``flask run``) the figures live in the app's own registry.

Database figures are not counted by anyone: ``MirrorCollector`` reads them at scrape
time with a handful of cheap queries, so every worker reports the same truth and no
counter can drift from the database.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from mirror.db import Database

log = logging.getLogger("qmirror.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROC_SUBDIR = "prometheus"  # under the data dir

# Route labels: a fixed set, never the raw path (attacker-chosen and unbounded).
ROUTE_SIMPLE_ROOT = "/simple/"
ROUTE_SIMPLE_PROJECT = "/simple/<project>/"
ROUTE_FILES = "/files/"
ROUTE_UNMATCHED = "unmatched"  # no Flask endpoint matched (404, 405)

# Index pages are answered in well under a millisecond from memory; files and the
# admin take longer. Buckets span both.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """An empty directory for the workers' metric files: ``<data_dir>/prometheus``, or a
    temporary directory when the data dir cannot hold it. Emptied here, before any worker
    starts, so counters start from zero with the server rather than from a dead run."""
    candidate = data_dir / MULTIPROC_SUBDIR
    try:
        reset_multiprocess_dir(candidate)
        return candidate
    except OSError as error:
        fallback = Path(tempfile.mkdtemp(prefix="qmirror-prometheus-"))
        log.warning("cannot use %s for metrics (%s); using %s", candidate, error, fallback)
        return fallback


def reset_multiprocess_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.iterdir():
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()


class _Child:
    """The counter and histogram children of one (route, status class), resolved once so a
    request pays for two increments and no label lookup."""

    __slots__ = ("count", "observe")

    def __init__(self, counter: Counter, histogram: Histogram, route: str, status: str) -> None:
        self.count: Callable[[], None] = counter.labels(route, status).inc
        self.observe: Callable[[float], None] = histogram.labels(route, status).observe


class HttpMetrics:
    """Request counts and latencies by route and status class."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "qmirror_http_requests",
            "HTTP requests answered, by route and status class.",
            ("route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "qmirror_http_request_duration_seconds",
            "Time to produce the response (file bodies go out by sendfile afterwards).",
            ("route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, int], _Child] = {}

    def record(self, route: str, status_code: int, seconds: float) -> None:
        key = (route, status_code // 100)
        child = self._children.get(key)
        if child is None:
            status = STATUS_CLASSES.get(key[1], "other")
            child = self._children[key] = _Child(self.requests, self.latency, route, status)
        child.count()
        child.observe(seconds)


class MirrorCollector(Collector):
    """The mirror's state, read from the database at scrape time."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        # Findings by check are the one costly aggregate: recounted only when the audit
        # log has moved (a file added or decided), which is exactly when they can change.
        self._findings: tuple[int, list[tuple[str, str, int]]] = (-1, [])

    def _findings_by_check(self, audit_head: int) -> list[tuple[str, str, int]]:
        head, findings = self._findings
        if head != audit_head:
            findings = self.db.findings_by_check()
            self._findings = (audit_head, findings)
        return findings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "qmirror_database_up", "1 when the database answered this scrape, else 0."
        )
        try:
            figures = self.db.ops_figures()
            findings_by_check = self._findings_by_check(figures.audit_head)
        except sqlite3.Error as error:
            log.error("metrics: cannot read the database: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        files = GaugeMetricFamily("qmirror_files", "Files by lifecycle state.", labels=["state"])
        for state, count in figures.files_by_state.items():
            files.add_metric([state], count)
        yield files

        held = figures.files_by_state.get("quarantined", 0)
        yield GaugeMetricFamily(
            "qmirror_held_files", "Files waiting in quarantine for a decision.", value=held
        )
        age = 0.0
        if figures.oldest_held_first_seen is not None:
            age = max(0.0, (self.clock() - figures.oldest_held_first_seen).total_seconds())
        yield GaugeMetricFamily(
            "qmirror_held_oldest_age_seconds",
            "How long the oldest held file has waited (0 when none is held).",
            value=age,
        )

        waiting, next_due = self.db.cooldown_waiting()
        yield GaugeMetricFamily(
            "qmirror_cooldown_waiting_files",
            "Held files that wait only on the release-age cooldown.",
            value=waiting,
        )
        if next_due is not None:
            yield GaugeMetricFamily(
                "qmirror_cooldown_next_due_timestamp_seconds",
                "When the first cooldown-held file becomes approvable (Unix time).",
                value=next_due.timestamp(),
            )

        runs = CounterMetricFamily("qmirror_sync_runs", "Finished sync runs.")
        runs.add_metric([], sum(figures.sync_runs.values()))
        yield runs
        failures = CounterMetricFamily(
            "qmirror_sync_failures", "Finished sync runs that reported failures."
        )
        failures.add_metric([], figures.sync_runs.get("failed", 0))
        yield failures
        downloaded = CounterMetricFamily(
            "qmirror_sync_downloaded_bytes", "Bytes downloaded from the upstream by all syncs."
        )
        downloaded.add_metric([], figures.downloaded_bytes)
        yield downloaded
        last = figures.last_sync
        if last is not None and last.finished is not None:
            yield GaugeMetricFamily(
                "qmirror_sync_last_duration_seconds",
                "Duration of the last finished sync.",
                value=(last.finished - last.started).total_seconds(),
            )
            yield GaugeMetricFamily(
                "qmirror_sync_last_finished_timestamp_seconds",
                "When the last sync finished (Unix time).",
                value=last.finished.timestamp(),
            )
            yield GaugeMetricFamily(
                "qmirror_sync_last_downloaded_bytes",
                "Bytes the last finished sync downloaded.",
                value=last.bytes,
            )
            yield GaugeMetricFamily(
                "qmirror_sync_last_failed",
                "1 when the last finished sync reported failures.",
                value=1 if last.status == "failed" else 0,
            )
        if figures.last_success_finished is not None:
            yield GaugeMetricFamily(
                "qmirror_sync_last_success_timestamp_seconds",
                "When the last sync without failures finished (Unix time).",
                value=figures.last_success_finished.timestamp(),
            )
        yield GaugeMetricFamily(
            "qmirror_fetch_errors",
            "Files whose download failed and is retried next sync.",
            value=figures.fetch_errors,
        )

        findings = GaugeMetricFamily(
            "qmirror_findings",
            "Check findings on files currently held or approved, by check id.",
            labels=["check", "state"],
        )
        for check, state, count in findings_by_check:
            findings.add_metric([check, state], count)
        yield findings


class Metrics:
    """What the app owns: request metrics to record into, and the scrape."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.multiprocess = multiprocess_enabled()
        self.registry = CollectorRegistry()
        self.http = HttpMetrics(self.registry)
        self.collector = MirrorCollector(db, clock)
        if not self.multiprocess:
            self.registry.register(self.collector)

    def exposition(self) -> bytes:
        """The Prometheus text of every figure, summed over workers in multiprocess mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self.collector)
        return generate_latest(registry)
