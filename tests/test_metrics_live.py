"""``/metrics`` from ``qmirror serve`` under gunicorn with two workers: request counts
recorded by different worker processes add up in one scrape, whichever worker answers,
and the database gauges match the state a real sync left."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.builders import make_wheel
from tests.support.live import gunicorn_mirror, qmirror, write_config

pytestmark = pytest.mark.live

BATCH = 12  # requests per route per batch, 8 at a time
MAX_BATCHES = 20  # until both workers have answered some (checked, not assumed)


def get(url: str) -> int:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def request_count(samples, route: str, status: str) -> float:
    return samples["qmirror_http_requests_total"].get((("route", route), ("status", status)), 0)


def test_counts_from_two_workers_add_up(tmp_path, fake_index):
    build = tmp_path / "build"
    build.mkdir()
    index = fake_index("json")
    index.add(make_wheel(build, "alpha", "1.0"))
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
    multiproc = tmp_path / "data" / "prometheus"
    (multiproc / "counter_99999999.db").parent.mkdir(parents=True, exist_ok=True)
    (multiproc / "counter_99999999.db").write_bytes(b"left over from a dead server")

    with gunicorn_mirror(config, tmp_path, workers=2) as server:
        assert not (multiproc / "counter_99999999.db").exists()  # emptied at startup
        urls = {
            "/simple/": f"{server.url}/simple/",
            "/simple/<project>/": f"{server.url}/simple/alpha/",
            "unmatched": f"{server.url}/no/such/page",
        }
        expected = {"/simple/": 0, "/simple/<project>/": 0, "unmatched": 0}
        with ThreadPoolExecutor(8) as pool:
            for _ in range(MAX_BATCHES):
                jobs = [url for url in urls.values() for _ in range(BATCH)]
                statuses = list(pool.map(get, jobs))
                for route, url in urls.items():
                    expected[route] += sum(
                        1 for job, status in zip(jobs, statuses, strict=True) if job == url
                    )
                workers = {p.name for p in multiproc.glob("counter_*.db")}
                if len(workers) >= 2:
                    break
        assert len(workers) >= 2, f"every request went to one worker: {workers}"
        assert set(statuses) == {200, 404}

        samples = scrape(server.url)
        assert request_count(samples, "/simple/", "2xx") == expected["/simple/"]
        assert request_count(samples, "/simple/<project>/", "2xx") == expected["/simple/<project>/"]
        assert request_count(samples, "unmatched", "4xx") == expected["unmatched"]
        assert request_count(samples, "index.healthz", "2xx") >= 1  # the readiness probe
        durations = samples["qmirror_http_request_duration_seconds_count"]
        assert durations[(("route", "/simple/"), ("status", "2xx"))] == expected["/simple/"]

        files = {dict(k)["state"]: v for k, v in samples["qmirror_files"].items()}
        assert files == {"approved": 1, "quarantined": 1, "rejected": 0, "revoked": 0}
        assert samples["qmirror_held_files"][()] == 1
        assert samples["qmirror_held_oldest_age_seconds"][()] > 0
        assert samples["qmirror_sync_runs_total"][()] == 1
        assert samples["qmirror_sync_failures_total"][()] == 0
        downloaded = sum(
            (tmp_path / "upstream-0" / "files" / name).stat().st_size
            for name in ("alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl")
        )
        assert samples["qmirror_sync_downloaded_bytes_total"][()] == downloaded

        # The same totals whichever worker answers the next scrape (plus that scrape).
        again = scrape(server.url)
        assert request_count(again, "/simple/", "2xx") == expected["/simple/"]
        assert request_count(again, "ops.metrics", "2xx") >= 1

        # A worker killed outright: gunicorn replaces it (child_exit marks it dead) and
        # what it had counted still adds up.
        victim = int(sorted(workers)[0].removeprefix("counter_").removesuffix(".db"))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                after = scrape(server.url)
                break
            except OSError:
                time.sleep(0.2)
        assert request_count(after, "/simple/", "2xx") == expected["/simple/"]
