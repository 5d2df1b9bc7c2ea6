#!/usr/bin/env python3
"""Sync of one large real wheel: peak RSS of ``qmirror sync`` and its throughput vs curl.

nginx serves a static tree holding one 200-550 MB wheel from the second local store
(default: nvidia_cudnn_cu13, 553 MB; see dataset.py --big-wheel). Then, each --runs
times, after one untimed warm-up so the file sits in the page cache for everyone:

* ``curl -o FILE``            the reference: the same bytes from the same upstream to disk;
* ``curl | tee FILE | sha256sum``  download + hash with stock tools (context only);
* ``qmirror sync``            into a fresh data dir (cooldown 0, that one project), under
                              /usr/bin/time -v (peak RSS of the sync process) while the
                              whole process tree's RSS is sampled every 20 ms.

Throughput is file size / wall time of the whole command (sync includes start-up, the
page fetch, hashing, the quarantine checks and the publish copy: it is what cron pays).
The sync log's timestamps split download from judging where the log says so.

    python3 bench/bench_sync.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers as S
from bench_index import machine

WORK = S.WORK / "sync"


def timed(argv: list[str] | str, *, shell: bool = False) -> float:
    started = time.monotonic()
    subprocess.run(argv, shell=shell, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.monotonic() - started


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_tree_kb = 0
        self.peak_single_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            tree, single = S.tree_rss_kb(self.pid)
            self.peak_tree_kb = max(self.peak_tree_kb, tree)
            self.peak_single_kb = max(self.peak_single_kb, single)
            time.sleep(self.interval)


def sync_once(upstream: S.Server, project: str, run_dir: Path) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    config = S.mirror_config(run_dir / "qmirror.toml", run_dir / "data", upstream.index_url,
                             [project])  # fmt: skip
    log = run_dir / "sync.log"
    started = time.monotonic()
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", S.qmirror_bin(), "--config", str(config), "sync"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        sampler = RssSampler(proc.pid)
        sampler.start()
        proc.wait(timeout=1800)
        sampler.done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    published = list((run_dir / "data").rglob("*"))
    return {
        "exit": proc.returncode,
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "peak_tree_rss_mb_sampled": round(sampler.peak_tree_kb / 1024, 1),
        "summary": next(
            (
                ln.strip()
                for ln in reversed(text.splitlines())
                if re.search(r"\bnew\b|approved", ln)
            ),
            "",
        ),
        "files_in_data_dir": sum(1 for p in published if p.is_file()),
        "log": str(log),
    }


def main() -> None:
    S.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(S.WORK / "results" / "sync.json"))
    args = parser.parse_args()

    big = S.manifest()["big"]
    wheel = Path(big["wheel"])
    size = wheel.stat().st_size
    WORK.mkdir(parents=True, exist_ok=True)
    upstream = S.start_nginx(big["root"], name="nginx-big")
    url = f"{upstream.base}/files/{wheel.name}"
    target = WORK / "curl.whl"
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "wheel": wheel.name, "bytes": size, "runs": args.runs,
    }  # fmt: skip
    try:
        timed(["curl", "-sf", "-o", str(target), url])  # warm the page cache
        curl = []
        pipe = []
        for _ in range(args.runs):
            target.unlink(missing_ok=True)
            curl.append(timed(["curl", "-sf", "-o", str(target), url]))
            target.unlink(missing_ok=True)
            pipe.append(timed(f"curl -sf '{url}' | tee '{target}' | sha256sum", shell=True))
        target.unlink(missing_ok=True)
        syncs = []
        for i in range(args.runs):
            row = sync_once(upstream, big["project"], WORK / f"run-{i}")
            syncs.append(row)
            print(f"  sync run {i}: {row}", file=sys.stderr, flush=True)
    finally:
        upstream.stop()
    mib = size / 2**20
    curl_s = statistics.median(curl)
    ok = [r["seconds"] for r in syncs if r["exit"] == 0]
    results.update({
        "curl_s": [round(t, 2) for t in curl],
        "curl_median_s": round(curl_s, 2),
        "curl_mib_s": round(mib / curl_s, 1),
        "curl_sha256_s": [round(t, 2) for t in pipe],
        "curl_sha256_mib_s": round(mib / statistics.median(pipe), 1),
        "sync": syncs,
    })  # fmt: skip
    if ok:
        sync_s = statistics.median(ok)
        results.update({
            "sync_median_s": round(sync_s, 2),
            "sync_mib_s": round(mib / sync_s, 1),
            "sync_vs_curl": round(sync_s / curl_s, 2),
            "peak_rss_mb_max": max(r["peak_rss_mb"] or 0 for r in syncs),
        })  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "sync"}, indent=2))


if __name__ == "__main__":
    main()
