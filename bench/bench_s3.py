#!/usr/bin/env python3
"""S3 storage vs local storage: index page req/s, file-route req/s and a large file's
download MB/s, measured in the same run on the same files.

One upstream (tests/support/upstream_server.FakeIndex on loopback) holds a project of
``--versions`` small wheels made by tests/support/builders.py and one real ~29 MB wheel
(``--big-wheel``, from /opt/pypi/files). ``qmirror sync`` fills two data dirs from it: one
with the local backend, one with ``[storage] backend = "s3"`` writing to moto's S3 server
(tests/support/s3_server.S3Server, a subprocess on loopback). Anything the policy held is
approved with ``qmirror approve``, so both list the same files. Then three servers, each
``qmirror serve`` with its defaults (gunicorn gthread, 2 x CPUs + 1 workers):

* ``local``        the local backend (the baseline: pages from SQLite, files by sendfile);
* ``s3-stream``    S3, ``downloads = "stream"``: the app reads the object and sends it;
* ``s3-redirect``  S3, ``downloads = "redirect"``: the app answers 302 to a presigned URL.

and, for downloads only, ``s3-direct``: the presigned URL fetched straight from moto, the
ceiling of any S3 mode on this machine.

Measured, one server at a time, after waiting for the shared machine to be quiet:
``wrk -t2 -c32`` on ``/simple/`` and ``/simple/<project>/`` (HTML) and on a small file's
``/files/<sha256>/<name>`` (for s3-redirect those are 302s), and ``curl -L`` of the big
wheel ``--downloads`` times, ``--parallel`` at once, as MB/s of the whole batch, with the
CPU the mirror's workers and moto used for it. Ratios are against ``local``.

moto is a single Python process (werkzeug), far slower than S3 or MinIO: the download
figures for the S3 modes say what the mirror adds on top of its object store, and the
page figures that pages never touch the store. All traffic goes to 127.0.0.1.

    python3 bench/bench_s3.py                       # ~2 minutes
    python3 bench/bench_s3.py --duration 10 --downloads 12

Runs with the interpreter that runs it (the repo's venv with the test extra, for moto).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import servers as S
from bench_index import machine, wrk

from tests.support.builders import make_wheel
from tests.support.s3_server import S3Server
from tests.support.upstream_server import FakeIndex

WORK = S.WORK / "s3"
RESULTS = S.WORK / "results"
BIG_WHEEL = Path("/opt/pypi/files/imageio_ffmpeg-0.6.0-py3-none-manylinux2014_x86_64.whl")
PROJECT = "bench-small"
MODES = ["local", "s3-stream", "s3-redirect"]
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the data


def fill_upstream(index: FakeIndex, build: Path, versions: int, big_wheel: Path) -> None:
    build.mkdir(parents=True, exist_ok=True)
    for minor in range(versions):
        index.add(make_wheel(build, PROJECT, f"1.{minor}"), upload_time=LONG_AGO)
    index.add(big_wheel, upload_time=LONG_AGO)


def write_config(path: Path, upstream: str, big_project: str, storage: dict) -> Path:
    storage_lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in storage.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'data_dir = "data"\n\n[upstream]\nurl = "{upstream}"\n\n'
        f'[sync]\nprojects = ["{PROJECT}", "{big_project}"]\ndependencies = false\n'
        'python_versions = ["3.11"]\nplatforms = ["linux-x86_64"]\n\n'
        f'[policy]\ncooldown = "0"\n\n[storage]\n{storage_lines}\n'
    )
    return path


def qmirror(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(config), *args],
        cwd=S.REPO, env={**os.environ, **S3Server.ENV}, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=1800,
    )  # fmt: skip


def sync_and_approve(config: Path) -> dict:
    started = time.monotonic()
    result = qmirror(config, "sync")
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"sync failed ({config}):\n{result.stdout}\n{result.stderr}")
    db = sqlite3.connect(f"file:{config.parent / 'data' / 'qmirror.sqlite3'}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT project, version, filename FROM files WHERE state != 'approved'"
    ).fetchall()
    db.close()
    for project, version, filename in rows:  # the same files on every server
        qmirror(config, "approve", f"{project}=={version}", "--file", filename,
                "--reason", "benchmark: the same files everywhere")  # fmt: skip
    return {"seconds": round(seconds, 1), "summary": result.stdout.strip(),
            "approved_by_hand": [row[2] for row in rows]}  # fmt: skip


def files(config: Path) -> dict[str, tuple[str, int]]:
    db = sqlite3.connect(f"file:{config.parent / 'data' / 'qmirror.sqlite3'}?mode=ro", uri=True)
    rows = db.execute("SELECT filename, sha256, size FROM files WHERE state = 'approved'")
    found = {filename: (sha256, size) for filename, sha256, size in rows}
    db.close()
    return found


# ---------------------------------------------------------------- servers and clients


def serve(config: Path, name: str, env: dict[str, str] | None = None) -> S.Server:
    port = S.free_port()
    process = S._popen(
        [sys.executable, "-m", "mirror", "--config", str(config), "serve",
         "--bind", f"127.0.0.1:{port}"],
        S.RUN / f"{name}-{port}.log", env={**S3Server.ENV, **(env or {})}, cwd=S.REPO,
    )  # fmt: skip
    server = S.Server(name, f"http://127.0.0.1:{port}", "/simple/", [process])
    S.wait_http(f"{server.base}/healthz", process, timeout=120)
    return server


def curl_batch(urls: list[str], parallel: int, size: int, pids: list[int]) -> dict:
    """Download every URL (following redirects) ``parallel`` at once; MB/s of the batch."""
    argv = ["curl", "-s", "-L", "--parallel", "--parallel-max", str(parallel),
            "-w", "%{http_code} %{size_download}\\n"]  # fmt: skip
    for url in urls:
        argv += ["-o", "/dev/null", url]
    busy0 = {pid: S.tree_cpu_ticks([pid]) for pid in pids}
    started = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True).stdout
    seconds = time.monotonic() - started
    cpu = {pid: (S.tree_cpu_ticks([pid]) - busy0[pid]) / S.CLK_TCK for pid in pids}
    answers = [line.split() for line in out.splitlines() if line.strip()]
    good = [a for a in answers if a[0] == "200" and int(a[1]) == size]
    if len(good) != len(urls):
        raise SystemExit(f"downloads went wrong: {answers}")
    total = size * len(urls)
    return {"seconds": round(seconds, 2), "mb_s": round(total / seconds / 1e6, 1), "cpu_s": cpu}


def presigned(config: Path, sha256: str, filename: str) -> str:
    """A presigned URL for the published object, minted as the app would."""
    code = (
        "import sys; from mirror.config import load_settings; "
        "from mirror.storage import build_storage; "
        "store = build_storage(load_settings(sys.argv[1])).published; "
        "print(store.presigned_url(sys.argv[2], expires=900, "
        "content_type='application/octet-stream', content_disposition='attachment'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(config), sha256], cwd=S.REPO, check=True,
        env={**os.environ, **S3Server.ENV}, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip()


# ---------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "wrk": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s",
        "pages": {}, "file_route": {}, "downloads": {},
    }  # fmt: skip
    servers: list[S.Server] = []
    with S3Server(WORK / "moto") as s3, FakeIndex(WORK / "upstream") as index:
        bucket = s3.create_bucket("qmirror-bench")
        fill_upstream(index, WORK / "build", args.versions, args.big_wheel)
        big_project = args.big_wheel.name.split("-")[0].replace("_", "-")
        local = write_config(WORK / "local" / "qmirror.toml", index.url, big_project,
                             {"backend": "local"})  # fmt: skip
        remote = write_config(WORK / "s3" / "qmirror.toml", index.url, big_project, {
            "backend": "s3", "bucket": bucket, "prefix": "pypi",
            "endpoint_url": s3.endpoint_url, "addressing_style": "path",
        })  # fmt: skip
        for name, config in (("local", local), ("s3", remote)):
            _log(f"[{name}] qmirror sync ...")
            results[f"sync_{name}"] = sync_and_approve(config)
            _log(f"[{name}] {results[f'sync_{name}']['summary']}")
        listed = files(remote)
        assert listed == files(local), "both mirrors must list the same files"
        big_sha, big_size = listed[args.big_wheel.name]
        small_name = next(name for name in sorted(listed) if name.startswith("bench_small"))
        small_sha, _ = listed[small_name]
        results["data"] = {
            "small_wheels": args.versions, "big_wheel": args.big_wheel.name,
            "big_wheel_mb": round(big_size / 1e6, 1),
        }  # fmt: skip
        try:
            for mode in MODES:
                config = local if mode == "local" else remote
                env = {"QMIRROR_STORAGE_DOWNLOADS": "redirect"} if mode == "s3-redirect" else {}
                server = serve(config, mode, env)
                servers.append(server)
                pids = [server.processes[0].pid, s3.process.pid]
                for label, path in (("root", "/simple/"), ("project", f"/simple/{PROJECT}/"),
                                    ("file", f"/files/{small_sha}/{small_name}")):  # fmt: skip
                    url = server.base + path
                    S.wait_quiet(args.quiet, log=_log)
                    wrk(url, S.HTML_ACCEPT, duration=args.warmup, connections=args.connections,
                        threads=args.threads)  # fmt: skip
                    figures = wrk(url, S.HTML_ACCEPT, duration=args.duration,
                                  connections=args.connections, threads=args.threads,
                                  server=server)  # fmt: skip
                    figures.pop("raw", None)
                    table = results["file_route"] if label == "file" else results["pages"]
                    table.setdefault(label, {})[mode] = figures
                    _log(
                        f"  {mode:<12} {label:<8} {figures.get('rps', 0):>9.0f} req/s "
                        f"(others used {figures.get('foreign_cpu', 0):.0%} of the CPUs)"
                    )
                big_url = f"{server.base}/files/{big_sha}/{args.big_wheel.name}"
                S.wait_quiet(args.quiet, log=_log)
                curl_batch([big_url], 1, big_size, pids)  # warm: page cache, connections
                figures = curl_batch([big_url] * args.downloads, args.parallel, big_size, pids)
                figures["cpu_s"] = {"mirror": figures["cpu_s"][pids[0]],
                                    "moto": figures["cpu_s"][pids[1]]}  # fmt: skip
                results["downloads"][mode] = figures
                _log(f"  {mode:<12} download {figures['mb_s']:>9.1f} MB/s")
                server.stop()
            direct = presigned(remote, big_sha, args.big_wheel.name)
            S.wait_quiet(args.quiet, log=_log)
            figures = curl_batch([direct] * args.downloads, args.parallel, big_size,
                                 [s3.process.pid])  # fmt: skip
            figures["cpu_s"] = {"mirror": 0.0, "moto": figures["cpu_s"][s3.process.pid]}
            results["downloads"]["s3-direct"] = figures
            _log(f"  {'s3-direct':<12} download {figures['mb_s']:>9.1f} MB/s")
        finally:
            for server in servers:
                server.stop()
    return results


def report(results: dict, args: argparse.Namespace) -> str:
    lines = [f"{results['wrk']}, HTML; downloads: {args.downloads} x "
             f"{results['data']['big_wheel']} ({results['data']['big_wheel_mb']} MB), "
             f"{args.parallel} at once (curl -L)", ""]  # fmt: skip
    lines.append(
        "| request | " + " | ".join(MODES) + " | s3-stream / local | s3-redirect / local |"
    )
    lines.append("|---" * (len(MODES) + 3) + "|")
    rows = [
        ("`/simple/`", results["pages"]["root"]),
        (f"`/simple/{PROJECT}/` ({args.versions} files)", results["pages"]["project"]),
        ("`/files/…` small wheel (redirect: the 302)", results["file_route"]["file"]),
    ]
    for label, cells in rows:
        base = cells["local"].get("rps", 0) or 1
        values = [f"{cells[m].get('rps', 0):,.0f} req/s" for m in MODES]
        ratios = [f"{cells[m].get('rps', 0) / base:.2f}" for m in ("s3-stream", "s3-redirect")]
        lines.append(f"| {label} | " + " | ".join(values) + " | " + " | ".join(ratios) + " |")
    lines.append("")
    lines.append("| download | MB/s | vs local | mirror CPU s | moto CPU s |")
    lines.append("|---|---|---|---|---|")
    base = results["downloads"]["local"]["mb_s"]
    for mode in [*MODES, "s3-direct"]:
        cell = results["downloads"][mode]
        lines.append(f"| {mode} | {cell['mb_s']:.1f} | {cell['mb_s'] / base:.2f} | "
                     f"{cell['cpu_s']['mirror']:.1f} | {cell['cpu_s']['moto']:.1f} |")  # fmt: skip
    foreign = [cell.get("foreign_cpu", 0) for table in ("pages", "file_route")
               for row in results[table].values() for cell in row.values()]  # fmt: skip
    lines.append("")
    lines.append(f"others' share of the CPUs during the wrk runs: max {max(foreign):.0%}")
    return "\n".join(lines)


def main() -> None:
    S.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--versions", type=int, default=50, help="small wheels in the project")
    parser.add_argument("--big-wheel", type=Path, default=BIG_WHEEL)
    parser.add_argument("--downloads", type=int, default=24)
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.10,
        help="wait (<= 1 min) until others use under this share of the CPUs",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "s3.json")
    args = parser.parse_args()
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results, args))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
