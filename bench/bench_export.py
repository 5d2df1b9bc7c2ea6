#!/usr/bin/env python3
"""``qmirror export`` at scale: 10,000 projects / 100,000 files (each with PEP 658
metadata, so 200,000 objects), synthetic tiny files.

The mirror state is built in bulk straight through the db layer (rows inserted in one
transaction, blobs renamed into the published store, then one ``refresh_pages`` over
every project, as ``qmirror serve`` does at start). Then, each as a child process under
``/usr/bin/time -v`` (its own peak RSS and CPU time):

* baseline ``cp -r`` of the published store: writing the same 200,000 files with no
  database and no pages, the floor for a full export on this filesystem;
* baseline ``qmirror status``: the interpreter + imports + database, the RSS floor;
* full export (``qmirror export --to DIR``), then the same with ``--hardlink``;
* a no-change export (reads the manifest and the servable view, writes nothing);
* after one approval (a new version of one project, through the Publisher): the
  incremental export, which must write that project's 2 pages and 2 files only;
* after the first file of a new project: its 2 pages + the root's 2;
* after one revoke;
* a full ``--files-url`` export (every project page rendered again with absolute links);
* to S3 (moto's server on loopback, ``tests/support/s3_server.py``), at a smaller scale
  (``--s3-projects``, default 1,000: moto takes ~110 PUTs a second, one Python process):
  the full export, a no-change one, and the incremental ones after an approval and a
  revoke, counting the objects each sends.

    python3 bench/bench_export.py [--projects 10000] [--files-per-project 10] [--s3-projects N]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import servers as S
from bench_index import machine

from mirror.db import Database, NewFile
from mirror.publish import Publisher, metadata_key
from mirror.simple import refresh_pages
from mirror.storage import local_storage

WORK = S.WORK / "export"
RESULTS = S.WORK / "results"
NOW = datetime(2026, 1, 1, tzinfo=UTC).isoformat(timespec="seconds")


def build(data_dir: Path, projects: int, per_project: int) -> Database:
    db = Database(data_dir / "qmirror.sqlite3")
    db.migrate()
    published = local_storage(data_dir).published
    project_rows, file_rows = [], []
    for p in range(projects):
        name = f"proj-{p:05d}"
        project_rows.append((name, name, "configured", NOW))
        for v in range(per_project):
            version = f"1.{v}"
            filename = f"proj_{p:05d}-{version}-py3-none-any.whl"
            body = f"{filename}\n".encode() * 4
            meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
            sha, meta_sha = hashlib.sha256(body).hexdigest(), hashlib.sha256(meta).hexdigest()
            for key, data in ((sha, body), (metadata_key(sha), meta)):
                temp = published.temp_path()  # rename into place: no fsync per blob
                temp.write_bytes(data)
                published.put_file(key, temp)
            file_rows.append((name, version, filename, "wheel", sha, len(body),
                              f"https://up.example/{filename}", NOW, NOW, None, None, None,
                              meta_sha, "[]", "approved", "[]", None, NOW))  # fmt: skip
    with db.write() as conn:
        conn.conn.executemany(
            "INSERT INTO projects (name, display_name, reason, first_seen) VALUES (?, ?, ?, ?)",
            project_rows,
        )
        conn.conn.executemany(
            """INSERT INTO files (project, version, filename, kind, sha256, size, upstream_url,
                upload_time, first_seen, requires_python, yanked, upstream_core_metadata,
                metadata_sha256, requires_dist, state, held_reasons, cooldown_until, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            file_rows,
        )
    refresh_pages(db, [row[0] for row in project_rows])
    return db


def add_approved(db: Database, data_dir: Path, name: str, version: str) -> object:
    """One more file, the way sync + an admin would: quarantine, then Publisher.approve."""
    storage = local_storage(data_dir)
    filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    body = f"{filename} new\n".encode() * 4
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    sha = hashlib.sha256(body).hexdigest()
    storage.quarantine.put_stream(sha, io.BytesIO(body))
    storage.quarantine.put_stream(metadata_key(sha), io.BytesIO(meta))
    db.ensure_project(name, name, "configured")
    file_id = db.add_file(
        NewFile(name, version, filename, "wheel", sha, len(body), "https://up.example/x", None,
                None, None, None, hashlib.sha256(meta).hexdigest(), []),
        [], now=datetime.now(UTC),
    )  # fmt: skip
    row = db.file_by_id(file_id)
    Publisher(db, storage).approve([row], actor="bench", reason="bench")
    return row


def run_child(argv: list[str]) -> dict:
    """Run a command under ``/usr/bin/time -v``: wall time, and the command's own peak RSS
    and CPU time (not inherited from this process, which holds the whole data set)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True,
                            cwd=S.REPO)  # fmt: skip
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{result.stdout}\n{result.stderr}")

    def field(label: str) -> float:
        match = re.search(rf"{re.escape(label)}: ([\d.]+)", result.stderr)
        assert match, (label, result.stderr)
        return float(match.group(1))

    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(field("User time (seconds)") + field("System time (seconds)"), 3),
        "peak_rss_mib": round(field("Maximum resident set size (kbytes)") / 1024, 1),
        "load_before": round(load, 2),
        "stdout": result.stdout.strip(),
    }


def summary_counts(line: str) -> dict:
    m = re.search(r"pages (\d+) written, (\d+) deleted.*files (\d+) copied, (\d+) deleted", line)
    assert m, line
    return dict(zip(("pages_written", "pages_deleted", "files_copied", "files_deleted"),
                    map(int, m.groups()), strict=True))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--files-per-project", type=int, default=10)
    parser.add_argument("--s3-projects", type=int, default=1_000, help="0: no S3 run")
    parser.add_argument("--only-s3", action="store_true", help="skip the directory runs")
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    data_dir = WORK / "data"
    config = WORK / "qmirror.toml"
    WORK.mkdir(parents=True)
    config.write_text(f'data_dir = "{data_dir}"\n')
    qm = [sys.executable, "-m", "mirror", "--config", str(config)]

    runs: dict[str, dict] = {}

    def measure(label: str, argv: list[str]) -> dict:
        result = run_child(argv)
        if "exported" in result["stdout"]:
            result.update(summary_counts(result["stdout"]))
        runs[label] = result
        print(f"{label:<40} {result['wall_s']:>8.2f}s wall {result['cpu_s']:>7.2f}s cpu"
              f" {result['peak_rss_mib']:>7.1f} MiB  load {result['load_before']:.1f}"
              f"  {result['stdout'][:150]}", flush=True)  # fmt: skip
        return result

    if args.only_s3:
        s3_runs = run_s3(args.s3_projects, args.files_per_project, measure)
        write_results({"s3": s3_runs}, "export-s3.json")  # the directory runs' file stays
        return
    print(f"building {args.projects} projects x {args.files_per_project} files ...", flush=True)
    t0 = time.perf_counter()
    db = build(data_dir, args.projects, args.files_per_project)
    build_s = time.perf_counter() - t0
    files = args.projects * args.files_per_project
    print(f"  built in {build_s:.1f}s", flush=True)

    out = WORK / "out"
    measure("baseline: cp -r published store", ["cp", "-r", str(data_dir / "published"),
                                                 str(WORK / "cp-copy")])  # fmt: skip
    measure("baseline: qmirror status", [*qm, "status"])
    measure("full export", [*qm, "export", "--to", str(out)])
    measure("full export --hardlink", [*qm, "export", "--to", str(WORK / "out-link"),
                                       "--hardlink"])  # fmt: skip
    measure("no-change export", [*qm, "export", "--to", str(out)])
    add_approved(db, data_dir, "proj-00042", "9.0")
    measure("after 1 approval (existing project)", [*qm, "export", "--to", str(out)])
    add_approved(db, data_dir, "brand-new", "1.0")
    measure("after 1 approval (new project)", [*qm, "export", "--to", str(out)])
    row = db.file_by_filename("proj_00007-1.3-py3-none-any.whl")
    Publisher(db, local_storage(data_dir)).revoke([row], actor="bench", reason="bench")
    measure("after 1 revoke", [*qm, "export", "--to", str(out)])
    measure("full export --files-url", [*qm, "export", "--to", str(WORK / "out-url"),
                                        "--files-url", "https://files.example/files/"])  # fmt: skip

    full, cp = runs["full export"], runs["baseline: cp -r published store"]
    inc = runs["after 1 approval (existing project)"]
    ratios = {
        "full_export_over_cp": round(full["wall_s"] / cp["wall_s"], 2),
        "incremental_over_full": round(inc["wall_s"] / full["wall_s"], 4),
        "full_rss_over_status_rss": round(
            full["peak_rss_mib"] / runs["baseline: qmirror status"]["peak_rss_mib"], 2
        ),
    }
    manifest = (out / ".qmirror-export.json").stat().st_size
    print(json.dumps(ratios), f"manifest {manifest / 1e6:.1f} MB", flush=True)
    s3_runs = run_s3(args.s3_projects, args.files_per_project, measure) if args.s3_projects else {}
    write_results({
        "projects": args.projects, "files": files,
        "objects": 2 * files, "build_s": round(build_s, 1), "runs": runs, "ratios": ratios,
        "manifest_bytes": manifest, "s3": s3_runs,
    })  # fmt: skip


def write_results(data: dict, name: str = "export.json") -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), **data, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    (RESULTS / name).write_text(json.dumps(data, indent=2))


def run_s3(projects: int, per_project: int, measure) -> dict:
    """The same export to s3://bucket/mirror on moto's server: a data set of its own at
    ``projects``, the files copied from the local published store (streamed PUTs)."""
    from tests.support.s3_server import S3Server

    data_dir = WORK / "s3-data"
    config = WORK / "qmirror-s3.toml"
    print(f"S3: building {projects} projects x {per_project} files ...", flush=True)
    db = build(data_dir, projects, per_project)
    os.environ.update(S3Server.ENV)  # boto3's chain, in the children too
    with S3Server(WORK / "s3-server") as server:
        bucket = server.create_bucket("qmirror-bench")
        target = f"s3://{bucket}/mirror"
        config.write_text(
            f'data_dir = "{data_dir}"\n[storage]\naddressing_style = "path"\n'
            f'[export]\nto = "{target}"\nendpoint_url = "{server.endpoint_url}"\n'
        )
        qm = [sys.executable, "-m", "mirror", "--config", str(config), "export"]
        runs = {"projects": projects, "files": projects * per_project}
        runs["full export to S3"] = measure("S3: full export", qm)
        runs["objects"] = len(server.keys(bucket, "mirror/"))
        runs["no-change export to S3"] = measure("S3: no-change export", qm)
        add_approved(db, data_dir, "proj-00042", "9.0")
        runs["after 1 approval to S3"] = measure("S3: after 1 approval (existing project)", qm)
        add_approved(db, data_dir, "brand-new", "1.0")
        runs["after new project to S3"] = measure("S3: after 1 approval (new project)", qm)
        row = db.file_by_filename("proj_00007-1.3-py3-none-any.whl")
        Publisher(db, local_storage(data_dir)).revoke([row], actor="bench", reason="bench")
        runs["after 1 revoke to S3"] = measure("S3: after 1 revoke", qm)
        manifest = server.client().head_object(Bucket=bucket, Key="mirror/.qmirror-export.json")
        runs["manifest_bytes"] = manifest["ContentLength"]
    return runs


if __name__ == "__main__":
    main()
