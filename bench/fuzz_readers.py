#!/usr/bin/env python3
"""Fuzz the archive and metadata readers: no crash, no hang, every failure a finding.

Hypothesis drives mutations (bit flips, truncation, splices, inserted bytes) of real
seed archives built here (a wheel, an sdist) and the corpus wheels, plus raw METADATA
text, through `inspect_file` — the same entry point sync and `qmirror scan` use. A
Python exception escaping `inspect_file`, or one file taking over PER_FILE_SECONDS, fails.

Usage: python bench/fuzz_readers.py [--minutes 3] [--examples N]
(`pip install hypothesis` first; it is a benchmark tool, not a project dependency.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quarantine.findings import CheckContext
from quarantine.inspection import inspect_file
from tests.support.builders import make_sdist, make_wheel

PER_FILE_SECONDS = 5.0
BATCH = 200
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "benign"


def seeds(workdir: Path) -> list[tuple[str, bytes]]:
    found = [
        make_wheel(
            workdir,
            "seed",
            "1.0",
            requires_dist=["six>=1"],
            entry_points="[console_scripts]\nseed = seed:main\n",
        ),
        make_sdist(workdir, "seed", "1.0", requires_dist=["six>=1"]),
    ]
    if CORPUS.is_dir():
        found += sorted(p for p in CORPUS.iterdir() if p.stat().st_size < 300_000)[:8]
    return [(p.name, p.read_bytes()) for p in found]


@st.composite
def mutated(draw: st.DrawFn, pool: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    name, data = draw(st.sampled_from(pool))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "splice", "zero"]))
        if not buf:
            break
        at = draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del buf[at:]
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "splice":
            other = draw(st.sampled_from(pool))[1]
            start = draw(st.integers(0, max(0, len(other) - 1)))
            buf[at : at + 512] = other[start : start + 512]
        else:
            buf[at : at + draw(st.integers(1, 64))] = b"\0" * 4
    return name, bytes(buf)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--examples", type=int, default=1_000_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qmirror-fuzz-"))
    pool = seeds(workdir)
    target = workdir / "candidate"
    deadline = time.monotonic() + args.minutes * 60
    stats = {"runs": 0, "with_findings": 0, "slowest": 0.0}

    def run(name: str, data: bytes) -> None:
        target.write_bytes(data)
        start = time.perf_counter()
        inspection = inspect_file(target, CheckContext(filename=name))
        elapsed = time.perf_counter() - start
        stats["runs"] += 1
        stats["with_findings"] += bool(inspection.findings)
        stats["slowest"] = max(stats["slowest"], elapsed)
        assert elapsed < PER_FILE_SECONDS, f"{name}: {elapsed:.1f}s"

    @settings(
        max_examples=BATCH, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(mutated(pool))
    def archives(case: tuple[str, bytes]) -> None:
        run(*case)

    @settings(
        max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.text(max_size=2000))
    def metadata_text(text: str) -> None:
        wheel = make_wheel(workdir, "seed", "1.0", metadata=text)
        run(wheel.name, wheel.read_bytes())

    started = time.monotonic()
    metadata_text()
    # Hypothesis runs a fixed number of examples per call: call it until time is up.
    while time.monotonic() < deadline and stats["runs"] < args.examples:
        archives()
    minutes = (time.monotonic() - started) / 60
    print(
        f"fuzzed {stats['runs']} inputs in {minutes:.1f} min: no exception escaped "
        f"inspect_file; {stats['with_findings']} produced findings; slowest "
        f"{stats['slowest'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
