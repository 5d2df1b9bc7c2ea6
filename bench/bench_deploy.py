#!/usr/bin/env python3
"""deploy/nginx in front of the mirror: what X-Accel-Redirect and the page cache buy.

One real wheel (default: the first in /opt/pypi/files between 20 and 60 MB) is approved into
a fresh mirror; two gunicorn servers run over the same data (``qmirror serve``, the shipped
gunicorn settings), one with ``[server] accel_redirect = "/_published/"``, one without;
each gets nginx from deploy/nginx/qmirror.conf (HTTPS, rendered as tests/test_deploy.py
renders it). wrk then measures, all on 127.0.0.1:

- the wheel through nginx, accel on (nginx reads the file) vs off (gunicorn sends it
  through nginx): MB/s, and the CPU seconds gunicorn's processes spent;
- a project page through nginx (its cache) vs gunicorn directly.

    python3 bench/bench_deploy.py [--wheel PATH] [--duration 10] [--connections 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import servers as S  # noqa: E402

from mirror.config import settings_from_mapping  # noqa: E402
from mirror.db import Database, NewFile  # noqa: E402
from mirror.publish import Publisher  # noqa: E402
from mirror.storage import local_storage  # noqa: E402
from tests.support.deploy import make_certificate, render_nginx, running_nginx  # noqa: E402
from tests.support.live import gunicorn_mirror, write_config  # noqa: E402

WORKERS = 2


def pick_wheel() -> Path:
    for path in sorted(Path("/opt/pypi/files").glob("*.whl")):
        if 20_000_000 <= path.stat().st_size <= 60_000_000:
            return path
    raise SystemExit("no wheel between 20 and 60 MB in /opt/pypi/files; pass --wheel")


@dataclass(frozen=True)
class Approved:
    sha256: str
    project: str
    filename: str
    size: int

    @property
    def url_path(self) -> str:
        return f"/files/{self.sha256}/{self.filename}"


def approve_into(data_dir: Path, wheels: list[Path]) -> list[Approved]:
    """The wheels, quarantined then approved, as sync + review would leave them."""
    from packaging.utils import parse_wheel_filename

    settings = settings_from_mapping({"data_dir": str(data_dir)})
    db = Database(settings.database_path)
    db.migrate()
    storage = local_storage(data_dir)
    approved, rows = [], []
    for wheel in wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        digest = hashlib.sha256()
        with open(wheel, "rb") as handle:
            for chunk in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(chunk)
        sha256 = digest.hexdigest()
        with open(wheel, "rb") as handle:
            storage.quarantine.put_stream(sha256, handle)
        db.ensure_project(name, name, "configured")
        file_id = db.add_file(
            NewFile(
                project=name, version=str(version), filename=wheel.name, kind="wheel",
                sha256=sha256, size=wheel.stat().st_size, upstream_url=f"file://{wheel}",
                upload_time=datetime(2025, 1, 1, tzinfo=UTC), requires_python=None,
                yanked=None, upstream_core_metadata=None, metadata_sha256=None,
                requires_dist=[],
            ),
            [], now=datetime.now(UTC),
        )  # fmt: skip
        rows.append(db.file_by_id(file_id))
        approved.append(Approved(sha256, name, wheel.name, wheel.stat().st_size))
    Publisher(db, storage).approve(rows, actor="bench", reason="bench")
    db.close()
    return approved


# wrk prints byte counts in binary units (1024-based) whatever it calls them.
_WRK_BYTES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    accept: str = "*/*",
    threads: int = 2,
    pids: list[int] | None = None,
) -> dict:
    """One wrk run: req/s, MB/s (10^6 bytes), non-2xx/3xx and socket errors. With ``pids``
    (the servers under test), also the CPU share they, wrk and everything else used, and
    their CPU seconds."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s",
            "-H", f"Accept: {accept}", url]  # fmt: skip
    busy0, total0 = S.cpu_busy_ticks()
    ours0 = S.tree_cpu_ticks(pids or [])
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = S.cpu_busy_ticks()
    ours = S.tree_cpu_ticks(pids or []) - ours0
    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    result = {
        "req_s": requests,
        "mb_s": float(transfer.group(1)) * _WRK_BYTES[transfer.group(2)] / 1e6,
        "bad": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
        "load1": os.getloadavg()[0],
        "duration": duration,
    }
    if pids is not None:
        total = max(1, total1 - total0)
        wrk_ticks = (
            children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime
        ) * S.CLK_TCK
        result["server_cpu"] = ours / total
        result["server_cpu_s"] = ours / S.CLK_TCK
        result["wrk_cpu"] = wrk_ticks / total
        result["foreign_cpu"] = max(0.0, (busy1 - busy0) - ours - wrk_ticks) / total
    return result


def measured(server, run) -> tuple[dict, float]:
    """A wrk run and the CPU seconds the gunicorn server's processes spent meanwhile."""
    before = S.tree_cpu_ticks([server.process.pid])
    result = run()
    return result, (S.tree_cpu_ticks([server.process.pid]) - before) / S.CLK_TCK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    wheel = args.wheel or pick_wheel()

    base = Path(tempfile.mkdtemp(prefix="qmirror-bench-deploy-"))
    base.chmod(0o755)  # nginx's workers (nobody, as root) read the published store
    try:
        data_dir = base / "data"
        (approved,) = approve_into(data_dir, [wheel])
        project, file_path = approved.project, approved.url_path
        certificate = make_certificate(base / "tls")
        with ExitStack() as stack:
            sites = {}
            for mode, accel in (("accel", "/_published/"), ("proxied", "")):
                config = write_config(
                    base / f"{mode}.toml", data_dir, "http://127.0.0.1:9/simple/",
                    server={"accel_redirect": accel, "trusted_proxies": 1},
                )  # fmt: skip
                app = stack.enter_context(gunicorn_mirror(config, base, workers=WORKERS))
                site = render_nginx(
                    base / f"nginx-{mode}", app_port=app.port, data_dir=data_dir,
                    certificate=certificate,
                )  # fmt: skip
                stack.enter_context(running_nginx(site))
                sites[mode] = (app, site)

            print(
                f"wheel: {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB); "
                f"gunicorn {WORKERS} workers x 4 threads; nginx 1 worker; "
                f"wrk -t2 -c{args.connections} -d{args.duration}s; {os.cpu_count()} CPUs"
            )
            print("\n| file download through nginx | MB/s | req/s | gunicorn CPU s | non-2xx |")
            print("| --- | ---: | ---: | ---: | ---: |")
            rows = {}
            for mode in ("proxied", "accel"):
                app, site = sites[mode]
                S.wait_quiet()
                result, cpu = measured(
                    app,
                    lambda site=site: wrk(
                        site.url + file_path, duration=args.duration, connections=args.connections
                    ),
                )
                rows[mode] = (result, cpu)
                label = (
                    "X-Accel-Redirect (nginx reads the file)"
                    if mode == "accel"
                    else ("accel_redirect off (gunicorn sends, nginx relays)")
                )
                print(f"| {label} | {result['mb_s']:.0f} | {result['req_s']:.1f} | "
                      f"{cpu:.1f} | {result['bad']} |")  # fmt: skip
            (acc, acc_cpu), (prox, prox_cpu) = rows["accel"], rows["proxied"]
            print(
                f"\naccel / proxied: throughput x{acc['mb_s'] / prox['mb_s']:.2f}; gunicorn "
                f"CPU per download x{(acc_cpu / acc['req_s']) / (prox_cpu / prox['req_s']):.3f}"
            )

            app, site = sites["accel"]
            page = f"/simple/{project}/"
            print("\n| project page (PEP 691 JSON) | req/s | gunicorn CPU s |")
            print("| --- | ---: | ---: |")
            results = {}
            for label, url in (
                ("gunicorn directly", app.url + page),
                ("through nginx (cached)", site.url + page),
            ):
                S.wait_quiet()
                result, cpu = measured(
                    app,
                    lambda url=url: wrk(
                        url, duration=args.duration, connections=32, accept=S.JSON_ACCEPT
                    ),
                )
                results[label] = result
                print(f"| {label} | {result['req_s']:.0f} | {cpu:.1f} |")
            ratio = (
                results["through nginx (cached)"]["req_s"] / results["gunicorn directly"]["req_s"]
            )
            print(f"\nnginx cache / gunicorn: x{ratio:.2f} (TLS included on the nginx side)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
