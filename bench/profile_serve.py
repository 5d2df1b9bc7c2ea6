#!/usr/bin/env python3
"""Where a page request's time goes: py-spy over every `qmirror serve` worker under wrk.

Starts the mirror on an already-synced set (bench_index.py does the sync), runs wrk on
one page for --duration seconds while ``py-spy record --subprocesses --nonblocking``
samples (on-CPU only) the gunicorn master and all workers, then prints the hottest
frames by self time and by inclusive time (collapsed stacks are kept in
bench/work/profile/ for flame graphs).

    python3 bench/profile_serve.py --page large --format html [--set base] [--duration 10]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers as S
from bench_index import ACCEPT, prepare_mirror, wrk

OUT = S.WORK / "profile"


def summarize(collapsed: Path, top: int = 25) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        # py-spy collapsed frames look like "function (file:line)"; drop the line number
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") and ":" in f else f for f in frames]
        total += n
        self_t[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    out = [f"{total} samples", "", "self time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_t.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def main() -> None:
    S.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="base")
    parser.add_argument("--page", default="large", choices=["root", "small", "large"])
    parser.add_argument("--format", default="html", choices=["html", "json"])
    parser.add_argument(
        "--path",
        help="profile this URL path instead of a page, e.g. "
        "'metadata' for the small project's first .metadata file",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    args = parser.parse_args()

    man = S.manifest()
    project = {"root": None, "small": man["pages"]["small"], "large": man["pages"]["large"]}[
        args.page
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    upstream = S.start_nginx(man[args.set]["root"])
    mirror = None
    try:
        mirror = S.start_mirror(prepare_mirror(args.set, upstream, False))
        url = mirror.base + mirror.page(project)
        accept = ACCEPT[args.format]
        stem = OUT / f"{args.set}-{args.page}-{args.format}-c{args.connections}"
        if args.path == "metadata":
            _, _, body = S.fetch(mirror.base + mirror.page(man["pages"]["small"]), S.JSON_ACCEPT)
            first = json.loads(body)["files"][0]["url"] + ".metadata"
            url = urljoin(mirror.base + mirror.page(man["pages"]["small"]), first)
            accept, stem = "*/*", OUT / f"{args.set}-metadata-c{args.connections}"
        elif args.path:
            url, accept = mirror.base + args.path, "*/*"
            stem = OUT / f"{args.set}-path-c{args.connections}"
        wrk(url, accept, duration=2, connections=args.connections, threads=2)  # warm
        collapsed = stem.with_suffix(".txt")
        spy = subprocess.Popen(
            [str(S.VENVS / "mirror" / "bin" / "py-spy"), "record", "--subprocesses",
             "--pid", str(mirror.processes[0].pid), "--nonblocking", "--rate", str(args.rate),
             "--duration", str(args.duration + 1), "--format", "raw", "--output", str(collapsed),
             *(["--native"] if args.native else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1)
        result = wrk(
            url, accept, duration=args.duration, connections=args.connections,
            threads=min(2, args.connections),
        )  # fmt: skip
        _, err = spy.communicate(timeout=120)
        print(f"{url} ({accept}): {result.get('rps')} req/s, p99 {result.get('p99_ms')} ms "
              f"(under py-spy at {args.rate} Hz)")  # fmt: skip
        if not collapsed.exists():
            print(err, file=sys.stderr)
            raise SystemExit(1)
        report = summarize(collapsed)
        stem.with_suffix(".summary.txt").write_text(report + "\n")
        print(report)
    finally:
        if mirror:
            mirror.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
