"""Start and stop the index servers the benchmarks compare, all on 127.0.0.1.

Each server is fed the same data (see dataset.py):

* ``nginx``       the static PEP 503/691/658 tree, Accept-negotiated (the baseline);
* ``pypiserver``  a flat directory of the same wheels, under gunicorn;
* ``devpi``       devpi-server with a mirror index whose upstream is the nginx tree
                  (its pages are cached in its own database: measured warm);
* ``proxpi``      the caching proxy in front of the nginx tree, under gunicorn (warm);
* ``mirror``      ``qmirror serve`` over a data dir filled by ``qmirror sync`` from the
                  nginx tree (see prepare_mirror).

gunicorn peers get the same worker settings ``qmirror serve`` uses by default
(2 x CPUs + 1 workers, gthread, 4 threads) so the comparison is the app, not the
process model. Only processes started here are ever stopped (by process group id).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"
DATA = WORK / "data"
VENVS = WORK / "venvs"
RUN = WORK / "run"

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
HTML_ACCEPT = "text/html"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)

GUNICORN_WORKERS = 2 * (os.cpu_count() or 1) + 1
GUNICORN_THREADS = 4


def stop_on_sigterm() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so ``finally`` blocks stop the servers."""

    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


def manifest() -> dict:
    return json.loads((DATA / "manifest.json").read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str, accept: str | None = None, timeout: float = 60) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}) before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class Server:
    name: str
    base: str  # http://127.0.0.1:PORT
    index: str  # path of the project list, e.g. /simple/
    processes: list[subprocess.Popen] = field(default_factory=list)
    notes: str = ""
    json: bool = True  # speaks PEP 691 JSON

    @property
    def index_url(self) -> str:
        return self.base + self.index

    def page(self, project: str | None) -> str:
        return self.index + (f"{project}/" if project else "")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    def rss_mb(self) -> float:
        """Resident memory of the whole server (all its processes), MiB."""
        total = 0
        for process in self.processes:
            for pid in _tree(process.pid):
                total += _rss_kb(pid)
        return total / 1024


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids.extend(int(x) for x in handle.read().split())
    except OSError:
        pass
    return kids


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """(sum of RSS over the process tree, largest single RSS), KiB."""
    values = [_rss_kb(p) for p in _tree(pid)]
    return sum(values), max(values, default=0)


# ---------------------------------------------------------------- a quiet machine

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def proc_cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def tree_cpu_ticks(pids: list[int]) -> int:
    return sum(proc_cpu_ticks(p) for root in pids for p in _tree(root))


def busy_fraction(seconds: float = 2.0) -> float:
    """Share of all CPUs busy over ``seconds`` (0..1)."""
    b0, t0 = cpu_busy_ticks()
    time.sleep(seconds)
    b1, t1 = cpu_busy_ticks()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit: float = 0.10, timeout: float = 60, log=None) -> float:
    """Wait (bounded) until other work on the machine uses under ``limit`` of the CPUs:
    other sessions share this machine, and wrk figures mean nothing under their load."""
    deadline = time.monotonic() + timeout
    busy = busy_fraction()
    while busy > limit and time.monotonic() < deadline:
        if log:
            log(f"    machine busy ({busy:.0%} of CPUs used by others), waiting ...")
        time.sleep(5)
        busy = busy_fraction()
    return busy


def _popen(argv: list[str], log: Path, env: dict | None = None, cwd: Path | None = None):
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log, "ab")
    return subprocess.Popen(
        argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
    )  # fmt: skip


# ---------------------------------------------------------------- nginx

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
{user}
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=20000 inactive=120s;
    open_file_cache_valid 120s;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    types {{
        text/html html;
        application/vnd.pypi.simple.v1+json json;
        application/octet-stream whl;
        text/plain metadata;
    }}
    default_type application/octet-stream;
    # PEP 691 by Accept: any request that names the JSON type gets index.json
    # (pip, uv and our wrk runs list JSON first when they want it).
    map $http_accept $simple_index {{
        default index.html;
        "~application/vnd\\.pypi\\.simple\\.v1\\+json" index.json;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location /simple/ {{
            index $simple_index;
            add_header Vary Accept;
        }}
        location /files/ {{ }}
    }}
}}
"""


def start_nginx(root: str | Path, name: str = "nginx", workers: int | str = "auto") -> Server:
    port = free_port()
    run = RUN / f"{name}-{port}"
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    conf = run / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            workers=workers, port=port, root=root, run=run,
            user="user root;" if os.geteuid() == 0 else "",
        )
    )  # fmt: skip
    process = _popen(["nginx", "-p", str(run), "-c", str(conf)], run / "stdout.log")
    server = Server(
        name,
        f"http://127.0.0.1:{port}",
        "/simple/",
        [process],
        notes=f"nginx {workers} workers, static files, sendfile",
    )
    wait_http(server.index_url, process)
    return server


# ---------------------------------------------------------------- gunicorn peers


def _gunicorn(
    venv: str, app: str, name: str, env: dict | None = None, health: str = "/"
) -> tuple[subprocess.Popen, int]:
    return _gunicorn_in(venv, app, name, env=env, health=health)


def _gunicorn_in(
    venv: str,
    app: str,
    name: str,
    env: dict | None = None,
    health: str = "/",
    cwd: Path | None = None,
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [
        str(VENVS / venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
        "--workers", str(GUNICORN_WORKERS), "--worker-class", "gthread",
        "--threads", str(GUNICORN_THREADS), "--backlog", "2048", app,
    ]  # fmt: skip
    process = _popen(argv, RUN / f"{name}-{port}.log", env=env, cwd=cwd)
    wait_http(f"http://127.0.0.1:{port}{health}", process)
    return process, port


def start_pypiserver(flat: str | Path) -> Server:
    app = f"pypiserver:app(roots=[{str(flat)!r}], hash_algo='sha256', backend_arg='cached-dir')"
    process, port = _gunicorn("pypiserver", app, "pypiserver", health="/simple/")
    return Server(
        "pypiserver",
        f"http://127.0.0.1:{port}",
        "/simple/",
        [process],
        json=False,
        notes=f"gunicorn {GUNICORN_WORKERS}x{GUNICORN_THREADS} gthread, "
        "cached-dir backend (watchdog), sha256",
    )


def start_proxpi(upstream: Server) -> Server:
    cache = RUN / "proxpi-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {
        "PROXPI_INDEX_URL": upstream.index_url,
        "PROXPI_EXTRA_INDEX_URLS": "",
        "PROXPI_CACHE_DIR": str(cache),
        "PROXPI_LOGGING_LEVEL": "WARNING",
        "PROXPI_INDEX_TTL": "3600",
    }
    process, port = _gunicorn("proxpi", "proxpi.server:app", "proxpi", env=env, health="/health")
    return Server(
        "proxpi",
        f"http://127.0.0.1:{port}",
        "/index/",
        [process],
        notes=f"gunicorn {GUNICORN_WORKERS}x{GUNICORN_THREADS} gthread, "
        "upstream = nginx tree, measured warm",
    )


def start_devpi(upstream: Server) -> Server:
    serverdir = RUN / "devpi-server"
    clientdir = RUN / "devpi-client"
    shutil.rmtree(serverdir, ignore_errors=True)
    shutil.rmtree(clientdir, ignore_errors=True)
    bindir = VENVS / "devpi" / "bin"
    subprocess.run(
        [str(bindir / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi",
         "--root-passwd", "bench"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    process = _popen(
        [str(bindir / "devpi-server"), "--serverdir", str(serverdir), "--host", "127.0.0.1",
         "--port", str(port), "--mirror-cache-expiry", "3600", "--request-timeout", "30"],
        RUN / f"devpi-{port}.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/+api", process)
    devpi = [str(bindir / "devpi"), "--clientdir", str(clientdir)]
    for args in (
        ["use", base],
        ["login", "root", "--password", "bench"],
        ["index", "-c", "root/bench", "type=mirror", f"mirror_url={upstream.index_url}"],
    ):
        subprocess.run(devpi + args, check=True, capture_output=True)
    return Server(
        "devpi",
        base,
        "/root/bench/+simple/",
        [process],
        notes="devpi-server (waitress, 50 threads), mirror index of the nginx tree, measured warm",
    )


CEILINGS = {
    # name: (venv, gunicorn worker args, ceiling_app mode)
    "ceiling": (
        "mirror",
        ["--worker-class", "gthread", "--threads", str(GUNICORN_THREADS)],
        "bytes",
    ),
    "ceiling-sendfile": (
        "mirror",
        ["--worker-class", "gthread", "--threads", str(GUNICORN_THREADS)],
        "file",
    ),
    "ceiling-gevent": (
        "ceiling",
        ["--worker-class", "gevent", "--worker-connections", "1000"],
        "bytes",
    ),
}


def start_ceiling(root: str | Path, name: str = "ceiling") -> Server:
    """gunicorn + a dict-lookup WSGI app (ceiling_app.py): the process model's ceiling.
    Not a product: what any gunicorn-served index could reach here at best."""
    venv, worker_args, mode = CEILINGS[name]
    port = free_port()
    argv = [
        str(VENVS / venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
        "--workers", str(GUNICORN_WORKERS), *worker_args, "--backlog", "2048",
        f"ceiling_app:make(root={str(root)!r}, mode={mode!r})",
    ]  # fmt: skip
    process = _popen(argv, RUN / f"{name}-{port}.log", cwd=BENCH)
    wait_http(f"http://127.0.0.1:{port}/simple/", process)
    return Server(
        name,
        f"http://127.0.0.1:{port}",
        "/simple/",
        [process],
        notes=f"gunicorn {GUNICORN_WORKERS} workers {' '.join(worker_args)}, "
        f"dict-lookup WSGI app, pages as {mode}",
    )


# ---------------------------------------------------------------- the mirror


def mirror_config(
    path: Path, data_dir: Path, upstream_url: str, projects: list[str], **sync: object
) -> Path:
    def value(v: object) -> str:
        return json.dumps(v)  # TOML strings, lists of strings, ints, bools are JSON-shaped

    sync_keys = {
        "projects": projects,
        "dependencies": False,
        "python_versions": ["3.11"],
        "platforms": ["linux-x86_64"],
        "max_file_size": "0",
        **sync,
    }
    lines = [
        f"data_dir = {value(str(data_dir))}",
        "", "[server]", f"bind = {value('127.0.0.1:8080')}",
        "", "[upstream]", f"url = {value(upstream_url)}",
        "", "[sync]", *(f"{k} = {value(v) if not isinstance(v, bool) else str(v).lower()}"
                        for k, v in sync_keys.items()),
        "", "[policy]", 'cooldown = "0"', "",
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def qmirror_bin() -> str:
    return str(VENVS / "mirror" / "bin" / "qmirror")


def start_mirror_variant(config: Path, name: str, extra: list[str]) -> Server:
    """Diagnostics only: the mirror's own WSGI app under gunicorn with the argv of
    `qmirror serve` changed (e.g. no access log, gevent workers), to split its cost."""
    port = free_port()
    data_dir = config.parent / "data"
    argv = [
        str(VENVS / "mirror" / "bin" / "python"), "-m", "gunicorn", "--bind",
        f"127.0.0.1:{port}", "--workers", str(GUNICORN_WORKERS), *extra,
        "mirror.web:create_app()",
    ]  # fmt: skip
    env = {"QMIRROR_CONFIG": str(config), "QMIRROR_DATA_DIR": str(data_dir)}
    process = _popen(argv, RUN / f"{name}-{port}.log", env=env)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", process, timeout=120)
    return Server(
        name, base, "/simple/", [process], notes="diagnostic: gunicorn " + " ".join(extra)
    )


MIRROR_VARIANTS = {
    "mirror-nolog": ["--worker-class", "gthread", "--threads", str(GUNICORN_THREADS)],
    "mirror-gevent": ["--worker-class", "gevent", "--worker-connections", "1000"],
}


def start_mirror(config: Path, name: str = "mirror") -> Server:
    port = free_port()
    process = _popen(
        [qmirror_bin(), "--config", str(config), "serve", "--bind", f"127.0.0.1:{port}"],
        RUN / f"{name}-{port}.log",
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", process, timeout=120)
    return Server(
        name,
        base,
        "/simple/",
        [process],
        notes="`qmirror serve` with its own defaults (gunicorn gthread, 2 x CPUs + 1 workers)",
    )
