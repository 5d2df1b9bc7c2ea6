#!/usr/bin/env python3
"""Index page throughput: req/s and p99 of /simple/ and /simple/<project>/ under wrk.

Starts every server on a free 127.0.0.1 port over the same data set (dataset.py),
probes each page (status, content type, entry count: the pages compared must list the
same files), warms it, runs ``wrk -t2 -c32 -d10s --latency`` per page and format, prints
a table with ratios, writes bench/work/results/index-<set>.json, and stops everything.

    python3 bench/bench_index.py                      # base set, all servers
    python3 bench/bench_index.py --set scale          # 10,000 projects
    python3 bench/bench_index.py --servers nginx,mirror --duration 5
    python3 bench/bench_index.py --compare base scale # page cost as projects grow

The mirror is filled once per set by ``qmirror sync`` from the nginx tree (cooldown 0,
every project of the set listed, dependencies off since all are listed); pass --resync
to redo it. Load goes to 127.0.0.1 only, each wrk run bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers as S

RESULTS = S.WORK / "results"
ALL = [
    "nginx",
    "pypiserver",
    "devpi",
    "proxpi",
    "ceiling",
    "ceiling-sendfile",
    "ceiling-gevent",
    "mirror",
]
PEERS = ["pypiserver", "devpi", "proxpi"]
PAGES = ["root", "small", "large"]
FORMATS = ["html", "json"]
ACCEPT = {"html": S.HTML_ACCEPT, "json": S.JSON_ACCEPT}


# ---------------------------------------------------------------- wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str,
    accept: str,
    *,
    duration: int,
    connections: int,
    threads: int,
    server: S.Server | None = None,
) -> dict:
    """One wrk run. With ``server``, also the share of the CPUs that *other* processes
    used meanwhile (total busy minus the server's process tree minus wrk)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", "10s", "-H", f"Accept: {accept}", url]  # fmt: skip
    pids = [p.pid for p in server.processes] if server else []
    busy0, total0 = S.cpu_busy_ticks()
    mine0 = S.tree_cpu_ticks(pids)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = S.cpu_busy_ticks()
    mine1 = S.tree_cpu_ticks(pids)
    wrk_ticks = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) * S.CLK_TCK
    result: dict = {"cmd": " ".join(argv[:-3]) + f" -H 'Accept: {accept}' {url}", "raw": out}
    if server is not None:
        total = max(1, total1 - total0)
        result["server_cpu"] = round((mine1 - mine0) / total, 3)
        result["wrk_cpu"] = round(wrk_ticks / total, 3)
        result["foreign_cpu"] = round(
            max(0.0, (busy1 - busy0) - (mine1 - mine0) - wrk_ticks) / total, 3
        )
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        result["p99_ms"] = _ms(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        result["p50_ms"] = _ms(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: (.*)", out):
        result["socket_errors"] = m.group(1).strip()
    if m := re.search(r"Transfer/sec:\s+(\S+)", out):
        result["transfer"] = m.group(1)
    return result


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- probing


def count_entries(body: bytes, content_type: str) -> int:
    if "json" in content_type:
        data = json.loads(body)
        return len(data.get("files", data.get("projects", [])))
    return len(re.findall(rb"<a\s", body))


def probe(server: S.Server, path: str, fmt: str) -> dict:
    status, content_type, body = S.fetch(server.base + path, ACCEPT[fmt])
    info = {"status": status, "content_type": content_type.split(";")[0], "bytes": len(body)}
    if status == 200:
        info["entries"] = count_entries(body, content_type)
    info["json"] = "json" in content_type
    return info


# ---------------------------------------------------------------- the mirror


def prepare_mirror(set_name: str, upstream: S.Server, resync: bool) -> Path:
    """A data dir for the mirror filled by `qmirror sync` from the nginx tree."""
    info = S.manifest()[set_name]
    home = S.WORK / f"mirror-{set_name}"
    config = home / "qmirror.toml"
    marker = home / "synced.json"
    if marker.exists() and not resync:
        # the upstream port changes per run; the synced data does not
        S.mirror_config(config, home / "data", upstream.index_url, _projects(info))
        return config
    shutil.rmtree(home, ignore_errors=True)
    S.mirror_config(config, home / "data", upstream.index_url, _projects(info))
    print(
        f"[mirror] qmirror sync of {info['projects']} projects / {info['files']} files "
        f"from {upstream.index_url} ...",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    log = home / "sync.log"
    with open(log, "w") as handle:
        proc = subprocess.run(
            ["/usr/bin/time", "-v", S.qmirror_bin(), "--config", str(config), "sync"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            timeout=4 * 3600,
        )  # fmt: skip
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    summary = {
        "exit": proc.returncode,
        "seconds": round(elapsed, 1),
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "summary_line": next((ln for ln in text.splitlines()[::-1] if "new" in ln.lower()), ""),
    }
    summary["overridden"] = approve_the_rest(config, home / "data")
    print(f"[mirror] sync: {summary}", file=sys.stderr, flush=True)
    marker.write_text(json.dumps(summary, indent=2))
    return config


def approve_the_rest(config: Path, data_dir: Path) -> list[dict]:
    """Same data for every server: an admin approves whatever the policy held or rejected
    (``qmirror approve``, the product's own override), and the list is reported."""
    import sqlite3

    db = sqlite3.connect(f"file:{data_dir / 'qmirror.sqlite3'}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT f.project, f.version, f.filename, f.state, "
        "(SELECT group_concat(DISTINCT x.check_id) FROM findings x WHERE x.file_id = f.id "
        "AND x.severity IN ('critical', 'high', 'medium')) "
        "FROM files f WHERE f.state != 'approved' ORDER BY f.filename"
    ).fetchall()
    db.close()
    done = []
    for project, version, filename, state, checks in rows:
        proc = subprocess.run(
            [S.qmirror_bin(), "--config", str(config), "approve", f"{project}=={version}",
             "--file", filename, "--reason", "benchmark: serve the same files as the peers"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        done.append({"filename": filename, "was": state, "checks": checks,
                     "approved": proc.returncode == 0})  # fmt: skip
    if done:
        print(
            f"[mirror] approved {sum(d['approved'] for d in done)}/{len(done)} held or "
            "rejected files by hand (see synced.json)",
            file=sys.stderr,
            flush=True,
        )
    return done


def _projects(info: dict) -> list[str]:
    return Path(info["project_names_file"]).read_text().split()


# ---------------------------------------------------------------- run


def start(name: str, set_name: str, upstream: S.Server, resync: bool) -> S.Server:
    info = S.manifest()[set_name]
    if name == "pypiserver":
        return S.start_pypiserver(info["flat"])
    if name == "proxpi":
        return S.start_proxpi(upstream)
    if name == "devpi":
        return S.start_devpi(upstream)
    if name.startswith("ceiling"):
        return S.start_ceiling(info["root"], name)
    if name == "mirror":
        return S.start_mirror(prepare_mirror(set_name, upstream, resync))
    if name in S.MIRROR_VARIANTS:
        config = prepare_mirror(set_name, upstream, resync)
        return S.start_mirror_variant(config, name, S.MIRROR_VARIANTS[name])
    raise ValueError(name)


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    git = ["git", "-C", str(S.REPO)]
    head = subprocess.run([*git, "log", "-1", "--format=%h %s"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "mirror", "quarantine"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "app_commit": head + (" + uncommitted changes in mirror/ quarantine/" if dirty else ""),
    }


def run(args: argparse.Namespace) -> dict:
    man = S.manifest()
    pages = {"root": None, "small": man["pages"]["small"], "large": man["pages"]["large"]}
    names = args.servers
    results: dict = {
        "set": args.set,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "data": {k: v for k, v in man[args.set].items() if k in ("projects", "files", "bytes")},
        "wrk": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency"
        + (f" (median of {args.repeat})" if args.repeat > 1 else ""),
        "servers": {},
        "runs": [],
    }
    upstream = S.start_nginx(man[args.set]["root"])
    started = [upstream]
    try:
        for name in names:
            server = upstream if name == "nginx" else start(name, args.set, upstream, args.resync)
            if server is not upstream:
                started.append(server)
            results["servers"][name] = {"notes": server.notes, "json": server.json}
            if name.startswith("mirror"):
                results["servers"][name]["app_commit"] = machine()["app_commit"]
            for page in args.pages:
                for fmt in args.formats:
                    path = server.page(pages[page])
                    # warm: the first request fills proxpi/devpi caches; then a short wrk
                    # run reaches every worker process
                    info = probe(server, path, fmt)
                    if info["status"] == 200:
                        info = probe(server, path, fmt)
                    row = {"server": name, "page": page, "format": fmt, "path": path, **info}
                    if info["status"] != 200 or (fmt == "json" and not info["json"]):
                        row["skipped"] = (
                            f"HTTP {info['status']}"
                            if info["status"] != 200
                            else f"no PEP 691 JSON (answers {info['content_type']})"
                        )
                        print(f"  {name:10} {page:5} {fmt:4} skipped: {row['skipped']}",
                              file=sys.stderr, flush=True)  # fmt: skip
                        results["runs"].append(row)
                        continue
                    if args.warmup:
                        wrk(
                            server.base + path,
                            ACCEPT[fmt],
                            duration=args.warmup,
                            connections=args.connections,
                            threads=args.threads,
                        )
                    tries = []
                    for _ in range(args.repeat):
                        quiet = S.wait_quiet(args.quiet, log=_log) if args.quiet < 1 else None
                        one = wrk(server.base + path, ACCEPT[fmt], duration=args.duration,
                                  connections=args.connections, threads=args.threads,
                                  server=server)  # fmt: skip
                        one["busy_before"] = quiet
                        tries.append(one)
                    tries.sort(key=lambda t: t.get("rps", 0))
                    row.update(tries[len(tries) // 2])  # the median run by req/s
                    if args.repeat > 1:
                        row["rps_all"] = [t.get("rps") for t in tries]
                        row["foreign_cpu_all"] = [t.get("foreign_cpu") for t in tries]
                    row.pop("raw", None) if not args.keep_raw else None
                    results["runs"].append(row)
                    print(f"  {name:10} {page:5} {fmt:4} {row.get('rps', 0):>10.0f} req/s  "
                          f"p99 {row.get('p99_ms', 0):8.2f} ms  {info['bytes']:>8} B  "
                          f"{info.get('entries')} entries  cpu: server "
                          f"{row.get('server_cpu', 0):.0%} wrk {row.get('wrk_cpu', 0):.0%} "
                          f"others {row.get('foreign_cpu', 0):.0%}"
                          + (f"  NON-2xx {row['non2xx']}" if row.get("non2xx") else ""),
                          file=sys.stderr, flush=True)  # fmt: skip
            results["servers"][name]["rss_mb_after"] = round(server.rss_mb(), 1)
            if server is not upstream:
                server.stop()
                started.remove(server)
    finally:
        for server in reversed(started):
            server.stop()
    if "mirror" in names:
        marker = S.WORK / f"mirror-{args.set}" / "synced.json"
        if marker.exists():
            results["mirror_sync"] = json.loads(marker.read_text())
    return results


# ---------------------------------------------------------------- report


def _cell(row: dict | None) -> str:
    if row is None:
        return "—"
    if "skipped" in row:
        return "n/a"
    rps = row.get("rps")
    if rps is None:
        return "error"
    bad = " ⚠" if row.get("non2xx") or row.get("socket_errors") else ""
    if (row.get("foreign_cpu") or 0) > 0.25:
        bad += f" (others {row['foreign_cpu']:.0%} CPU)"
    return f"{rps:,.0f} ({row.get('p99_ms', 0):.1f} ms){bad}"


def table(results: dict) -> str:
    names = list(results["servers"])
    by = {(r["server"], r["page"], r["format"]): r for r in results["runs"]}
    man = S.manifest()
    label = {
        "root": f"/simple/ ({results['data']['projects']} projects)",
        "small": f"/simple/{man['pages']['small']}/ ({man['pages']['small_files']} file)",
        "large": f"/simple/{man['pages']['large']}/ ({man['pages']['large_files']} files)",
    }
    peers = [n for n in names if n in PEERS]
    head = ["page", "fmt", *names]
    if "mirror" in names:
        head += ["best peer", "mirror ÷ best peer", "mirror ÷ nginx"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pages = sorted({r["page"] for r in results["runs"]}, key=PAGES.index)
    fmts = sorted({r["format"] for r in results["runs"]}, key=FORMATS.index)
    for page in pages:
        for fmt in fmts:
            cells = [label[page], fmt] + [_cell(by.get((n, page, fmt))) for n in names]
            if "mirror" in names:
                mine = by.get(("mirror", page, fmt), {}).get("rps")
                best = max(
                    ((by.get((p, page, fmt), {}).get("rps") or 0, p) for p in peers),
                    default=(0, "—"),
                )
                nginx = by.get(("nginx", page, fmt), {}).get("rps")
                cells.append(f"{best[1]} {best[0]:,.0f}" if best[0] else "—")
                cells.append(f"{mine / best[0]:.2f}x" if mine and best[0] else "—")
                cells.append(f"{mine / nginx:.2f}" if mine and nginx else "—")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(a: dict, b: dict) -> str:
    """Page cost as the project count grows: req/s of set b relative to set a."""
    names = [n for n in a["servers"] if n in b["servers"]]
    ra = {(r["server"], r["page"], r["format"]): r for r in a["runs"]}
    rb = {(r["server"], r["page"], r["format"]): r for r in b["runs"]}
    head = ["page", "fmt"] + [f"{n}: {a['data']['projects']}→{b['data']['projects']} projects"
                              for n in names]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for page in PAGES:
        for fmt in FORMATS:
            cells = [page, fmt]
            for n in names:
                x, y = ra.get((n, page, fmt), {}), rb.get((n, page, fmt), {})
                if x.get("rps") and y.get("rps"):
                    cells.append(f"{x['rps']:,.0f} → {y['rps']:,.0f} ({y['rps'] / x['rps']:.2f}x)")
                else:
                    cells.append("—")
            if len(cells) > 2:
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    S.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="base", choices=["base", "scale"])
    parser.add_argument("--servers", default=",".join(ALL), type=lambda s: s.split(","))
    parser.add_argument("--pages", default=",".join(PAGES), type=lambda s: s.split(","))
    parser.add_argument("--formats", default=",".join(FORMATS), type=lambda s: s.split(","))
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="wrk runs per cell; the median is kept"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resync", action="store_true", help="redo the mirror's sync")
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.10,
        help="before each run wait (≤1 min) until others use under this share "
        "of the CPUs (1 = never wait)",
    )
    parser.add_argument("--keep-raw", action="store_true", help="keep wrk's output in the JSON")
    parser.add_argument("--out", help="results file (default results/index-<set>.json)")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="compare two results files (or set names) and exit",
    )
    parser.add_argument("--table", metavar="RESULTS", help="print the table of a results file")
    args = parser.parse_args()

    def load(name: str) -> dict:
        path = Path(name) if name.endswith(".json") else RESULTS / f"index-{name}.json"
        return json.loads(path.read_text())

    if args.compare:
        print(compare(load(args.compare[0]), load(args.compare[1])))
        return
    if args.table:
        print(table(load(args.table)))
        return
    if "nginx" not in args.servers:
        args.servers.insert(0, "nginx")
    results = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"index-{args.set}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['wrk']}, set {args.set}: {results['data']}, {results['date']}\n")
    print(table(results))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
