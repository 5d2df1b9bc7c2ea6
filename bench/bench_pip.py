#!/usr/bin/env python3
"""pip resolve time: ``pip install --dry-run --ignore-installed`` of 20 real requirements
(94 distributions) through each index, against nginx serving the same files as static
PEP 503/691 pages with PEP 658 metadata.

Every server gets one untimed warm-up run (fills proxpi's and devpi's caches; its
``pip -v`` output is kept to count wheel downloads vs. ``.metadata`` fetches), then
--runs timed rounds, interleaved across servers, each run after a (bounded) wait for a
quiet machine; the table shows the median and the ratio to nginx. The resolved
set must be identical across servers (checked from ``--report``).

pip is the newest release, in its own venv (bench/work/venvs/client), with this
machine's pip config switched off (PIP_CONFIG_FILE=/dev/null) and --no-cache-dir, so
every page and metadata file is fetched from the index under test.

    python3 bench/bench_pip.py [--servers nginx,pypiserver,devpi,proxpi,mirror] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers as S
from bench_index import machine, start

PIP = S.VENVS / "client" / "bin" / "python"
OUT = S.WORK / "results"


def pip_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update({
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1",
    })  # fmt: skip
    return env


def resolve(index_url: str, requirements: list[str], report: Path, verbose: bool = False):
    argv = [str(PIP), "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--no-cache-dir", "--index-url", index_url, "--report", str(report),
            "-v" if verbose else "-q", *requirements]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=pip_env(), timeout=900, stdin=subprocess.DEVNULL
    )
    elapsed = time.monotonic() - started
    return elapsed, proc


def resolved_set(report: Path) -> list[str]:
    data = json.loads(report.read_text())
    return sorted(f"{i['metadata']['name'].lower()}=={i['metadata']['version']}"
                  for i in data["install"])  # fmt: skip


def main() -> None:
    S.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers", default="nginx,pypiserver,devpi,proxpi,mirror", type=lambda s: s.split(",")
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(OUT / "pip.json"))
    args = parser.parse_args()

    man = S.manifest()
    reqs = man["requirements"]
    work = S.WORK / "pip"
    work.mkdir(parents=True, exist_ok=True)
    pip_version = subprocess.run([str(PIP), "-m", "pip", "--version"], capture_output=True,
                                 text=True).stdout.split()[1]  # fmt: skip
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(), "pip": pip_version, "requirements": reqs,
        "runs_per_server": args.runs, "servers": {},
    }  # fmt: skip
    upstream = S.start_nginx(man["base"]["root"])
    running: dict[str, S.Server] = {}
    reference: list[str] | None = None
    try:
        # all servers up at once (idle ones cost nothing), each warmed by one verbose run
        for name in args.servers:
            server = upstream if name == "nginx" else start(name, "base", upstream, False)
            if server is not upstream:
                running[name] = server
            report = work / f"{name}.json"
            warm, proc = resolve(server.index_url, reqs, report, verbose=True)
            (work / f"{name}-warm.log").write_text(proc.stdout + proc.stderr)
            row: dict = {"url": server.index_url, "warm_s": round(warm, 2),
                         "exit": proc.returncode, "times_s": [], "cpu_busy": []}  # fmt: skip
            results["servers"][name] = row
            if proc.returncode != 0:
                row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
                print(f"  {name:10} FAILED: {row['error']}", file=sys.stderr, flush=True)
                continue
            out = proc.stdout + proc.stderr
            row["wheel_downloads"] = len(re.findall(r"^\s*Downloading \S+\.whl \(", out, re.M))
            row["metadata_fetches"] = len(
                re.findall(r"^\s*Downloading \S+\.whl\.metadata \(", out, re.M)
            )
            got = resolved_set(report)
            row["resolved"] = len(got)
            if reference is None:
                reference = got
            elif got != reference:
                row["differs"] = sorted(set(got) ^ set(reference))
        # timed runs interleaved (nginx, peer, ..., mirror, nginx, ...) so that drift and
        # other sessions' load fall on every server alike; each waits for a quiet machine
        for _ in range(args.runs):
            for name, row in results["servers"].items():
                if "error" in row:
                    continue
                server = upstream if name == "nginx" else running[name]
                S.wait_quiet(0.3)
                busy0, total0 = S.cpu_busy_ticks()
                elapsed, proc = resolve(server.index_url, reqs, work / f"{name}.json")
                busy1, total1 = S.cpu_busy_ticks()
                if proc.returncode != 0:
                    row["error"] = proc.stderr[-300:]
                    continue
                row["times_s"].append(round(elapsed, 3))
                # all CPU busy during the run (pip + server + anything else), share of 2 cores
                row["cpu_busy"].append(round((busy1 - busy0) / max(1, total1 - total0), 2))
        for name, row in results["servers"].items():
            if row["times_s"]:
                row["median_s"] = round(statistics.median(row["times_s"]), 3)
                row["min_s"] = round(min(row["times_s"]), 3)
            print(f"  {name:10} median {row.get('median_s')} s  runs {row['times_s']}  "
                  f"resolved {row.get('resolved')}  wheel downloads {row.get('wheel_downloads')}",
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        for server in running.values():
            server.stop()
        upstream.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(results: dict) -> str:
    base = results["servers"].get("nginx", {}).get("median_s")
    lines = [
        f"pip {results['pip']}, {len(results['requirements'])} requirements, "
        f"median of {results['runs_per_server']} runs",
        "",
        "| index | median s | min s | ÷ nginx | resolved | wheels downloaded | .metadata fetched |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results["servers"].items():
        if "median_s" not in row:
            lines.append(f"| {name} | failed: {row.get('error', '?')[:80]} | | | | | |")
            continue
        ratio = f"{row['median_s'] / base:.2f}x" if base else "—"
        lines.append(
            f"| {name} | {row['median_s']:.2f} | {row['min_s']:.2f} | {ratio} | "
            f"{row['resolved']}{' (differs!)' if row.get('differs') else ''} | "
            f"{row['wheel_downloads']} | {row['metadata_fetches']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(table(json.loads(Path(sys.argv[2]).read_text())))
    else:
        main()
