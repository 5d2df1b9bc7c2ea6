#!/usr/bin/env python3
"""Scan the real wheels of this machine's local wheel stores with the real `qmirror scan`.

Prints, in one run and on the same files:
  * the false-positive rate (every file held or rejected under the default policy, with why);
  * scan throughput against `sha256sum` of the same files (the floor of reading every byte);
  * the peak RSS of the scanning processes.

Usage: python bench/bench_scan.py [--stores DIR ...] [--batch 40] [--limit N] [--json OUT]
Benchmark data only (never used by tests): /opt/pypi/files and /opt/pypi-more/files.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

DEFAULT_STORES = [Path("/opt/pypi/files"), Path("/opt/pypi-more/files")]


def wheels(stores: list[Path], limit: int | None) -> list[Path]:
    files = sorted(p for store in stores if store.is_dir() for p in store.glob("*.whl"))
    return files[:limit] if limit else files


def time_sha256sum(files: list[Path], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(files), batch):
        subprocess.run(
            ["sha256sum", *map(str, files[i : i + batch])], check=True, stdout=subprocess.DEVNULL
        )
    return time.perf_counter() - start


def scan(files: list[Path], batch: int) -> tuple[float, list[dict], int]:
    results: list[dict] = []
    start = time.perf_counter()
    env = dict(os.environ)
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        proc = subprocess.run(
            [sys.executable, "-m", "mirror", "scan", "--json", *map(str, chunk)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode not in (0, 1, 2):
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"qmirror scan crashed on batch starting {chunk[0]}")
        results.extend(json.loads(line) for line in proc.stdout.splitlines() if line.strip())
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, results, peak_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", nargs="*", type=Path, default=DEFAULT_STORES)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args()

    files = wheels(args.stores, args.limit)
    total_bytes = sum(p.stat().st_size for p in files)
    print(f"{len(files)} wheels, {total_bytes / 1e6:,.0f} MB")
    # Warm the page cache for both, so neither pays the first disk read.
    time_sha256sum(files, args.batch)
    hash_time = time_sha256sum(files, args.batch)
    scan_time, results, peak_kb = scan(files, args.batch)

    flagged = [r for r in results if r["verdict"] != "approve"]
    print(f"sha256sum: {hash_time:6.1f} s  {total_bytes / 1e6 / hash_time:8.1f} MB/s")
    print(
        f"scan:      {scan_time:6.1f} s  {total_bytes / 1e6 / scan_time:8.1f} MB/s"
        f"  ({scan_time / hash_time:.2f}x sha256sum; target <= 3x)"
    )
    print(f"peak RSS of a scan process: {peak_kb / 1024:.0f} MB (target < 200 MB)")
    rate = 100 * len(flagged) / max(1, len(results))
    print(f"held or rejected: {len(flagged)} of {len(results)} = {rate:.2f}% (target < 1%)")
    checks = Counter(f["check"] for r in results for f in r["findings"])
    print(
        "findings by check (all severities):",
        ", ".join(f"{c}={n}" for c, n in checks.most_common()),
    )
    for r in flagged:
        print(f"  {r['verdict'].upper():7} {Path(r['file']).name}")
        for reason in r["reasons"][:4]:
            print(f"           {reason[:220]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
