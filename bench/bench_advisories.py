#!/usr/bin/env python3
"""Advisories at the scale of OSV's PyPI export: load, reload and re-check costs.

Builds a synthetic zip export (default 30,000 records over 12,000 projects, one in three
a MAL- record naming one version, the rest vulnerabilities with ECOSYSTEM ranges; the
200 "popular" projects carry 40 records each, as django or urllib3 do) and a mirror
database of 4,000 files (20 releases of each popular project). Then, in one run:

* baseline: open every zip member and ``json.loads`` it (what any reader pays);
* ``load_advisories`` into a fresh database (parse, classify, store);
* the same load again (every record unchanged: the daily steady state);
* ``AdvisoryChecker.check()`` over every file, twice: the first records what matches,
  the second (nothing new) is what each sync pays.

    python3 bench/bench_advisories.py [--records 30000] [--files 4000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mirror.advisories import AdvisoryChecker, load_advisories  # noqa: E402
from mirror.db import Database, NewFile  # noqa: E402
from mirror.publish import Publisher  # noqa: E402
from mirror.storage import local_storage  # noqa: E402
from quarantine.policy import Policy  # noqa: E402

WORK = REPO / "bench" / "work" / "advisories"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
POPULAR = 200
RECORDS_PER_POPULAR = 40
RELEASES = 20


def record(rng: random.Random, number: int, project: str) -> dict[str, object]:
    if number % 3 == 0:
        return {
            "id": f"MAL-2026-{number}", "modified": "2026-05-01T00:00:00Z",
            "summary": f"Malicious code in {project} (PyPI)",
            "affected": [{"package": {"ecosystem": "PyPI", "name": project},
                          "versions": [f"{rng.randint(50, 99)}.0"]}],
        }  # fmt: skip
    low = rng.randint(0, 15)
    return {
        "id": f"PYSEC-2026-{number}", "modified": "2026-05-01T00:00:00Z",
        "summary": "Denial of service in header parsing",
        "details": "A crafted header makes parsing quadratic.",
        "severity": [{"type": "CVSS_V3",
                      "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": project},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": f"{low}.0"}, {"fixed": f"{low}.{rng.randint(1, 9)}"},
                      ]}]}],
    }  # fmt: skip


def build_export(path: Path, records: int) -> None:
    rng = random.Random(7)
    others = max(1, (records - POPULAR * RECORDS_PER_POPULAR) // 2)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number in range(records):
            if number < POPULAR * RECORDS_PER_POPULAR:
                project = f"popular-{number % POPULAR}"
            else:
                project = f"other-{rng.randrange(others)}"
            item = record(rng, number, project)
            archive.writestr(f"{item['id']}.json", json.dumps(item))


def build_files(db: Database, files: int) -> None:
    for index in range(files):
        project = f"popular-{index % POPULAR}"
        version = f"{(index // POPULAR) % RELEASES}.{index // (POPULAR * RELEASES)}"
        db.ensure_project(project, project, "configured")
        db.add_file(
            NewFile(
                project=project, version=version,
                filename=f"{project.replace('-', '_')}-{version}-py3-none-any.whl",
                kind="wheel", sha256=f"{index:064x}", size=1000,
                upstream_url="http://127.0.0.1/x", upload_time=NOW, requires_python=None,
                yanked=None, upstream_core_metadata=None, metadata_sha256=None,
                requires_dist=(),
            ),
            [], now=NOW,
        )  # fmt: skip


def timed(label: str, action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    print(f"  {label:<44} {elapsed:8.2f} s")
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--files", type=int, default=4_000)
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    export = WORK / "all.zip"
    build_export(export, args.records)
    db = Database(WORK / "data" / "qmirror.sqlite3")
    db.migrate()
    build_files(db, args.files)
    size = export.stat().st_size / 1e6
    print(f"{args.records} records ({size:.1f} MB zip), {args.files} files")

    def baseline() -> int:
        count = 0
        with zipfile.ZipFile(export) as archive:
            for name in archive.namelist():
                json.loads(archive.read(name))
                count += 1
        return count

    base, _ = timed("baseline: read + json.loads every member", baseline)

    def load():  # type: ignore[no-untyped-def]
        return load_advisories(db, export, now=NOW)

    first, report = timed("load into a fresh database", load)
    again, _ = timed("load again (all unchanged)", load)
    checker = AdvisoryChecker(
        db, Publisher(db, local_storage(WORK / "data"), lambda: NOW), Policy(), lambda: NOW
    )
    _, found = timed("check every file (first: records matches)", checker.check)
    check2, _ = timed("check every file again (nothing new)", checker.check)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  loaded: {report.line()}")
    print(f"  first check: {found.line()}")
    print(f"  load / baseline: {first / base:.1f}x; reload / baseline: {again / base:.1f}x")
    print(f"  steady-state check: {check2 / args.files * 1e6:.0f} µs per file")
    print(f"  peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
