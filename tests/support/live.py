"""The live tier: the mirror under gunicorn on a free loopback port, the real ``qmirror``
command, and real ``pip`` in fresh virtual environments. Nothing here reaches past 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_config(
    path: Path, data_dir: Path, upstream_url: str, **sections: Mapping[str, Any]
) -> Path:
    """A qmirror.toml for a test: cooldown off and one Python/platform unless overridden."""
    defaults: dict[str, dict[str, Any]] = {
        "upstream": {"url": upstream_url, "timeout": 5, "retries": 2},
        "sync": {"python_versions": ["3.11"], "platforms": ["linux-x86_64"]},
        "policy": {"cooldown": "0"},
    }
    for name, values in sections.items():
        defaults.setdefault(name, {}).update(values)
    lines = [f"data_dir = {toml_value(str(data_dir))}"]
    for name, values in defaults.items():
        lines.append(f"\n[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def qmirror(
    config: Path,
    *args: str,
    check: bool = True,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as cron would: a subprocess, no terminal."""
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"qmirror {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def wait_for_http(
    url: str, timeout: float = 20, process: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


class MirrorServer:
    def __init__(self, config: Path, port: int, process: subprocess.Popen[str], log: Path) -> None:
        self.config = config
        self.port = port
        self.process = process
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.index_url = f"{self.url}/simple/"


@contextmanager
def gunicorn_mirror(config: Path, log_dir: Path, workers: int = 2) -> Iterator[MirrorServer]:
    """``qmirror serve`` (gunicorn) on a free port, stopped at the end of the block."""
    port = free_port()
    log = log_dir / f"gunicorn-{port}.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mirror",
                "--config",
                str(config),
                "serve",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = MirrorServer(config, port, process, log)
    try:
        wait_for_http(f"{server.url}/healthz", process=process)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# pip must see only the index a test gives it: no user/global config (this machine's
# pip.conf adds local extra indexes and find-links), no cache, no prompts.
PIP_ENV = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_CACHE_DIR": "1",
}


def make_venv(path: Path) -> Path:
    """A fresh virtual environment with pip; returns its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def pip(python: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_ENV)
    return subprocess.run(
        [str(python), "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def pip_install(
    python: Path, index_url: str, requirements: Sequence[str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return pip(python, "install", "--index-url", index_url, "--no-cache-dir", *extra, *requirements)
