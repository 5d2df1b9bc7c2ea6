#!/usr/bin/env python3
"""Build the shared benchmark data set under bench/work/data (git-ignored).

Every server in the benchmark is fed from the same files:

* the real wheels of the first local wheel store (``/opt/pypi/files``, ~880 wheels,
  ~840 projects), symlinked, never copied;
* ``synthetic-2000``: one project with 2,000 small but real wheels (distinct versions,
  valid zip with METADATA, WHEEL and RECORD), built with ``tests/support/builders.py``;
* for the scale run, ``filler-NNNNN`` projects (one tiny wheel each) that take the
  project count to 10,000;
* for the sync run, one large real wheel from the second local store
  (``/opt/pypi-more/files``).

For each set it writes a *static* PEP 503 + PEP 691 tree computed from the files —
``simple/index.html|json``, ``simple/<project>/index.html|json`` and ``files/<name>``
(symlink) plus ``files/<name>.metadata`` (PEP 658, extracted from the wheel) — which
nginx serves as the baseline and which the mirror, proxpi and devpi use as their
upstream. It also writes a flat directory of symlinks for pypiserver, and
``manifest.json`` describing what is where.

Usage: python3 bench/dataset.py [--fillers-to 10000] [--big-wheel NAME]
Idempotent: hashes are cached by (path, size, mtime) in bench/work/data/cache.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import shutil
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"
DATA = WORK / "data"

REAL_STORE = Path("/opt/pypi/files")
BIG_STORE = Path("/opt/pypi-more/files")
SYNTHETIC = "synthetic-2000"
SYNTHETIC_FILES = 2000
DEFAULT_BIG = "nvidia_cudnn_cu13-9.24.0.43-py3-none-manylinux_2_27_x86_64.whl"

# 20 real requirements that resolve completely inside /opt/pypi for CPython 3.11 on
# linux-x86_64 (94 distributions in all): the pip resolve benchmark installs these.
REQUIREMENTS = [
    "flask", "requests", "httpx", "pydantic", "rich", "sqlalchemy", "pandas",
    "matplotlib", "scikit-learn", "aiohttp", "fastapi", "boto3", "pytest", "black",
    "sphinx", "jsonschema", "uvicorn", "django", "cryptography", "typer",
]  # fmt: skip


# ------------------------------------------------------------------ wheel facts


def _facts(path_str: str) -> dict:
    """sha256, size, METADATA bytes' sha256 and Requires-Python of one wheel."""
    path = Path(path_str)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    name, version, _, _ = parse_wheel_filename(path.name)
    metadata = _metadata(path, name, str(version))
    requires_python = None
    for line in metadata.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break
        if line.lower().startswith("requires-python:"):
            requires_python = line.split(":", 1)[1].strip()
    stat = path.stat()
    return {
        "sha256": digest.hexdigest(),
        "size": stat.st_size,
        "mtime": stat.st_mtime,
        "metadata_sha256": hashlib.sha256(metadata).hexdigest(),
        "requires_python": requires_python,
    }


def _metadata(path: Path, name: str, version: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        candidates = [
            n for n in archive.namelist()
            if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]  # fmt: skip
        if not candidates:
            raise ValueError(f"{path.name}: no .dist-info/METADATA")
        wanted = [
            n for n in candidates
            if canonicalize_name(n.split("-", 1)[0]) == name
        ]  # fmt: skip
        return archive.read((wanted or candidates)[0])


class FactCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def get_many(self, paths: list[Path]) -> dict[Path, dict]:
        todo = []
        for path in paths:
            stat = path.stat()
            hit = self.data.get(str(path))
            if not hit or hit["size"] != stat.st_size or hit["mtime"] != stat.st_mtime:
                todo.append(path)
        if todo:
            print(f"  hashing {len(todo)} files ...", file=sys.stderr)
            with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                for path, facts in zip(todo, pool.map(_facts, map(str, todo), chunksize=8)):
                    self.data[str(path)] = facts
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data))
            tmp.replace(self.path)
        return {path: self.data[str(path)] for path in paths}


# ------------------------------------------------------------------ synthetic wheels


def _builders():
    sys.path.insert(0, str(REPO))
    from tests.support.builders import make_wheel  # read-only use of the test helper

    return make_wheel


def synthetic_wheels(directory: Path, count: int) -> list[Path]:
    """``synthetic-2000``: ``count`` distinct versions, one small real wheel each."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = [f"{1 + i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(count)]
    paths = [directory / f"synthetic_2000-{v}-py3-none-any.whl" for v in wanted]
    if all(p.exists() for p in paths):
        return paths
    make_wheel = _builders()
    for version, path in zip(wanted, paths):
        if not path.exists():
            make_wheel(
                directory, SYNTHETIC, version,
                requires_python=">=3.8",
                requires_dist=["packaging>=21", 'tomli>=1.1; python_version < "3.11"'],
            )  # fmt: skip
    return paths


def filler_wheels(directory: Path, count: int) -> list[Path]:
    """``filler-00001`` ...: one tiny wheel per project, to grow the project count."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"filler_{i:05d}-1.0-py3-none-any.whl" for i in range(1, count + 1)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        make_wheel = _builders()
        for path in missing:
            make_wheel(directory, path.name.split("-")[0].replace("_", "-"), "1.0")
    return paths


# ------------------------------------------------------------------ static tree


def _iso(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_key(text: str):
    try:
        return (1, Version(text))
    except Exception:
        return (0, text)


def build_tree(out: Path, wheels: dict[Path, dict], *, with_metadata: bool = True) -> dict:
    """Write a static PEP 503/691/658/700 tree for ``wheels`` into ``out``."""
    if out.exists():
        shutil.rmtree(out)
    files_dir = out / "files"
    simple = out / "simple"
    files_dir.mkdir(parents=True)
    simple.mkdir()
    projects: dict[str, list[tuple[Path, dict, str]]] = {}
    for path, facts in wheels.items():
        name, version, _, _ = parse_wheel_filename(path.name)
        projects.setdefault(name, []).append((path, facts, str(version)))
    for path, facts in wheels.items():
        (files_dir / path.name).symlink_to(path.resolve())
        if with_metadata:
            name, version, _, _ = parse_wheel_filename(path.name)
            (files_dir / f"{path.name}.metadata").write_bytes(_metadata(path, name, str(version)))

    for name, entries in projects.items():
        entries.sort(key=lambda e: e[0].name)
        page = simple / name
        page.mkdir()
        links = []
        jfiles = []
        for path, facts, _version in entries:
            url = f"../../files/{path.name}"
            attrs = ""
            if facts["requires_python"]:
                attrs += f' data-requires-python="{html.escape(facts["requires_python"])}"'
            entry = {
                "filename": path.name,
                "url": url,
                "hashes": {"sha256": facts["sha256"]},
                "size": facts["size"],
                "upload-time": _iso(facts["mtime"]),
                "yanked": False,
            }
            if facts["requires_python"]:
                entry["requires-python"] = facts["requires_python"]
            if with_metadata:
                meta = f"sha256={facts['metadata_sha256']}"
                attrs += f' data-dist-info-metadata="{meta}" data-core-metadata="{meta}"'
                entry["core-metadata"] = {"sha256": facts["metadata_sha256"]}
                entry["dist-info-metadata"] = {"sha256": facts["metadata_sha256"]}
            links.append(
                f'    <a href="{url}#sha256={facts["sha256"]}"{attrs}>{path.name}</a><br/>'
            )
            jfiles.append(entry)
        (page / "index.html").write_text(
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.1">\n'
            f"    <title>Links for {name}</title>\n  </head>\n  <body>\n"
            f"    <h1>Links for {name}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n"
        )
        versions = sorted({e[2] for e in entries}, key=_version_key)
        (page / "index.json").write_text(
            json.dumps(
                {
                    "meta": {"api-version": "1.1"},
                    "name": name,
                    "files": jfiles,
                    "versions": versions,
                },
                separators=(",", ":"),
            )
        )
    names = sorted(projects)
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        + "\n".join(f'    <a href="{n}/">{n}</a><br/>' for n in names)
        + "\n  </body>\n</html>\n"
    )
    (simple / "index.json").write_text(
        json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]},
            separators=(",", ":"),
        )
    )
    return {
        "root": str(out),
        "projects": len(names),
        "files": len(wheels),
        "bytes": sum(f["size"] for f in wheels.values()),
        "project_names": names,
    }


def flat_dir(out: Path, wheels: list[Path]) -> str:
    """A plain directory of symlinks to the wheels (what pypiserver serves)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for path in wheels:
        (out / path.name).symlink_to(path.resolve())
    return str(out)


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fillers-to",
        type=int,
        default=10000,
        help="total project count of the scale set (0: skip it)",
    )
    parser.add_argument(
        "--big-wheel", default=DEFAULT_BIG, help=f"file name in {BIG_STORE} for the sync run"
    )
    args = parser.parse_args()

    started = time.monotonic()
    cache = FactCache(DATA / "cache" / "facts.json")
    real = sorted(p for p in REAL_STORE.iterdir() if p.name.endswith(".whl"))
    synth = synthetic_wheels(DATA / "wheels" / "synthetic", SYNTHETIC_FILES)
    base = cache.get_many(real + synth)
    manifest: dict = {"created": datetime.now(UTC).isoformat(timespec="seconds")}

    print("base set: real wheels + synthetic-2000", file=sys.stderr)
    manifest["base"] = build_tree(DATA / "upstream-base", base)
    manifest["base"]["flat"] = flat_dir(DATA / "flat-base", list(base))

    if args.fillers_to:
        count = max(0, args.fillers_to - manifest["base"]["projects"])
        print(f"scale set: + {count} filler projects", file=sys.stderr)
        fillers = filler_wheels(DATA / "wheels" / "filler", count)
        scale = {**base, **cache.get_many(fillers)}
        manifest["scale"] = build_tree(DATA / "upstream-scale", scale)
        manifest["scale"]["flat"] = flat_dir(DATA / "flat-scale", list(scale))
        manifest["scale"]["fillers"] = count

    big = BIG_STORE / args.big_wheel
    print(f"big set: {big.name}", file=sys.stderr)
    manifest["big"] = build_tree(DATA / "upstream-big", cache.get_many([big]))
    manifest["big"]["wheel"] = str(big)
    manifest["big"]["project"] = str(parse_wheel_filename(big.name)[0])

    small = "flask"
    manifest["pages"] = {
        "small": small,
        "small_files": sum(1 for p in base if parse_wheel_filename(p.name)[0] == small),
        "large": SYNTHETIC,
        "large_files": SYNTHETIC_FILES,
    }
    manifest["requirements"] = REQUIREMENTS
    for key in ("base", "scale", "big"):
        if key in manifest:
            manifest[key]["project_names_file"] = str(DATA / f"{key}-projects.txt")
            Path(manifest[key]["project_names_file"]).write_text(
                "\n".join(manifest[key].pop("project_names")) + "\n"
            )
    (DATA / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({k: v for k, v in manifest.items()}, indent=2))
    print(f"done in {time.monotonic() - started:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
