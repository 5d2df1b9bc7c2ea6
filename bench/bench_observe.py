#!/usr/bin/env python3
"""What request ids and request metrics cost on the hottest path, ``/simple/``.

Fills a small mirror (a loopback fake upstream, ``qmirror sync``), then serves the same
data dir from two gunicorn servers with the settings ``qmirror serve`` uses (gthread,
2 x CPUs + 1 workers, 4 threads, multiprocess metrics, the gunicorn hooks): ``baseline``
is the app with its outermost layer peeled off (observe_app.py), ``instrumented`` is the
app as shipped. Runs ``wrk -t2 -c32 -d<N>s --latency`` on ``/simple/`` and
``/simple/<project>/``, alternating baseline and instrumented for --rounds rounds so
both see the same background load, and prints req/s, p50, p99 and the ratios.

    python3 bench/bench_observe.py [--duration 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.support.builders import make_wheel  # noqa: E402
from tests.support.live import free_port, qmirror, write_config  # noqa: E402
from tests.support.upstream_server import FakeIndex  # noqa: E402

PROJECTS = 200
WORKERS = 2 * (os.cpu_count() or 1) + 1
PAGES = {"root": "/simple/", "project": "/simple/project-7/"}


def fill(work: Path) -> Path:
    build = work / "build"
    build.mkdir()
    with FakeIndex(work / "upstream") as index:
        names = [f"project-{i}" for i in range(PROJECTS)]
        for name in names:
            for version in ("1.0", "1.1", "2.0"):
                index.add(make_wheel(build, name, version))
        config = write_config(
            work / "qmirror.toml", work / "data", index.url,
            sync={"projects": names, "dependencies": False},
        )  # fmt: skip
        # Look-alike names (project-1, project-2, ...) are held as typosquats: publish all.
        with open(config, "a") as handle:
            handle.write('\n[policy.severity]\nhigh = "warn"\nmedium = "warn"\n')
        print(qmirror(config, "sync", timeout=900).stdout.strip(), file=sys.stderr)
    return config


def start(config: Path, mode: str, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    metrics_dir = work / f"prometheus-{mode}"
    metrics_dir.mkdir()
    env = {
        **os.environ, "QMIRROR_CONFIG": str(config), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PYTHONPATH": f"{BENCH}{os.pathsep}{REPO}",
    }  # fmt: skip
    argv = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", "4",
        "--config", "python:mirror.gunicorn_hooks", f"observe_app:make({mode!r})",
    ]  # fmt: skip
    log = open(work / f"gunicorn-{mode}.log", "w")
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{mode} server did not start; see {work}/gunicorn-{mode}.log")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def wrk(url: str, duration: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, timeout=duration + 60,
    ).stdout  # fmt: skip
    units = {"us": 1e-3, "ms": 1.0, "s": 1000.0}

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)", out, re.M).groups()
        return float(value) * units[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} non-2xx answers")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%")}


def in_process(config: Path, work: Path, calls: int = 50000) -> dict[str, float]:
    """Microseconds per ``/simple/<project>/`` call of the WSGI app itself, no HTTP: the
    layer's own cost, free of gunicorn's and wrk's (and mostly of other load)."""
    metrics_dir = work / "prometheus-in-process"
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # before prometheus_client
    from mirror.config import load_settings
    from mirror.web import create_app

    instrumented = create_app(load_settings(config)).wsgi_app
    apps = {"baseline": instrumented.app, "instrumented": instrumented}

    def start_response(status, headers, exc_info=None):
        return None

    best: dict[str, float] = {}
    for _ in range(3):
        for mode, app in apps.items():
            started = time.perf_counter()
            for _ in range(calls):
                app({"REQUEST_METHOD": "GET", "PATH_INFO": PAGES["project"],
                     "QUERY_STRING": "", "HTTP_ACCEPT": "text/html"}, start_response)  # fmt: skip
            each = (time.perf_counter() - started) / calls * 1e6
            best[mode] = min(best.get(mode, each), each)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-observe-"))
    try:
        run(work, args.duration, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, duration: int, rounds: int) -> None:
    config = fill(work)
    servers = {mode: start(config, mode, work) for mode in ("baseline", "instrumented")}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for page, path in PAGES.items():
            for _, base in servers.values():
                wrk(base + path, 2)  # warm every worker's page cache
            for _ in range(rounds):
                for mode, (_, base) in servers.items():
                    results.setdefault((page, mode), []).append(wrk(base + path, duration))
        with urllib.request.urlopen(servers["instrumented"][1] + "/metrics") as response:
            counted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in response.read().decode().splitlines()
                if line.startswith("qmirror_http_requests_total{")
            )
    finally:
        for process, _ in servers.values():
            stop(process)
    print(f"wrk -t2 -c32 -d{duration}s, {rounds} alternating rounds, "
          f"{WORKERS} gthread workers x 4 threads, {os.cpu_count()} CPUs (shared)")  # fmt: skip
    print(f"{'page':<8} {'server':<13} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}   per round")
    for page in PAGES:
        medians = {}
        for mode in ("baseline", "instrumented"):
            runs = results[(page, mode)]
            rps = statistics.median(r["rps"] for r in runs)
            medians[mode] = rps
            print(
                f"{page:<8} {mode:<13} {rps:>8.0f} "
                f"{statistics.median(r['p50'] for r in runs):>7.2f} "
                f"{statistics.median(r['p99'] for r in runs):>7.2f}   "
                + " ".join(f"{r['rps']:.0f}" for r in runs)
            )
        ratio = medians["instrumented"] / medians["baseline"]
        print(f"{page:<8} instrumented/baseline req/s: {ratio:.3f}")
    print(f"requests counted by the instrumented server's /metrics: {counted:.0f}")
    micro = in_process(config, work)
    print(
        f"in-process, /simple/<project>/ WSGI call (best of 3 x 50,000): baseline "
        f"{micro['baseline']:.1f} us, instrumented {micro['instrumented']:.1f} us, "
        f"+{micro['instrumented'] - micro['baseline']:.1f} us per request"
    )


if __name__ == "__main__":
    main()
