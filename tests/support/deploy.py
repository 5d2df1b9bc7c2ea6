"""The deploy/ files, rendered for a test: nginx on free loopback ports with a certificate made
here, systemd units pointing at real executables. Rendering replaces the placeholders the
files ship with (each must be present, so a changed file fails loudly rather than silently
testing something else)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.live import REPO, free_port

DEPLOY = REPO / "deploy"


def tool(name: str) -> str:
    """A system command the deploy tests drive; .ci/run installs each of them."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise AssertionError(f"{name} is not installed: run .ci/run (it installs it)")
    return found


def render(text: str, replacements: Mapping[str, str], what: str) -> str:
    for placeholder, value in replacements.items():
        if placeholder not in text:
            raise AssertionError(f"{what} no longer contains {placeholder!r}")
        text = text.replace(placeholder, value)
    return text


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Certificate:
    ca: Path  # what pip is given with --cert
    cert: Path
    key: Path


def make_certificate(directory: Path) -> Certificate:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed (openssl)."""
    openssl = tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "cert.pem", directory / "key.pem", directory / "cert.csr"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=qmirror test CA",
         "-addext", "basicConstraints = critical, CA:TRUE",
         "-addext", "keyUsage = critical, keyCertSign, cRLSign"],
        [openssl, "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "2", "-extfile", ext, "-out", cert],
    ]  # fmt: skip
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True)
    return Certificate(ca=ca, cert=cert, key=key)


# ---------------------------------------------------------------- nginx


@dataclass(frozen=True)
class NginxSite:
    root: Path  # nginx's prefix: config, logs, temp files, cache
    config: Path  # the main nginx.conf that includes the rendered deploy config
    http_port: int
    https_port: int
    access_log: Path
    error_log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


def render_nginx(
    root: Path,
    *,
    app_port: int,
    data_dir: Path,
    certificate: Certificate,
    index: str = "index-from-app.conf",
    workers: int = 1,
) -> NginxSite:
    """deploy/nginx/qmirror.conf with ``index`` as its index snippet, inside a minimal
    nginx.conf whose paths are all under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    (root / "temp").mkdir(exist_ok=True)
    http_port, https_port = free_port(), free_port()
    snippet = root / index
    shutil.copyfile(DEPLOY / "nginx" / index, snippet)
    site = root / "qmirror.conf"
    access_log = root / "logs" / "qmirror.access.log"
    site.write_text(
        render(
            (DEPLOY / "nginx" / "qmirror.conf").read_text(),
            {
                "server 127.0.0.1:8080;": f"server 127.0.0.1:{app_port};",
                "listen 80;": f"listen 127.0.0.1:{http_port};",
                "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
                "/etc/ssl/qmirror/fullchain.pem": str(certificate.cert),
                "/etc/ssl/qmirror/privkey.pem": str(certificate.key),
                "/var/lib/qmirror/": f"{data_dir}/",
                "/var/cache/nginx/qmirror": str(root / "cache"),
                "/var/log/nginx/qmirror.access.log": str(access_log),
                "/etc/nginx/qmirror/index-from-app.conf": str(snippet),
            },
            "deploy/nginx/qmirror.conf",
        )
    )
    if index != "index-from-app.conf":
        snippet.write_text(
            render(snippet.read_text(), {"/var/lib/qmirror/": f"{data_dir}/"}, index)
        )
    config, error_log = write_main_config(root, site, workers=workers)
    return NginxSite(root, config, http_port, https_port, access_log, error_log)


def write_main_config(root: Path, site: Path, *, workers: int = 1) -> tuple[Path, Path]:
    """The nginx.conf around a site file (an http-context include, as Debian's conf.d/):
    every path under ``root``; returns (config, error log). Whatever the site is, the
    context it lands in is the same, so two sites rendered with it compare like for like."""
    error_log = root / "logs" / "error.log"
    temp = root / "temp"
    for directory in (root / "logs", temp):
        directory.mkdir(parents=True, exist_ok=True)
    # As root (CI), workers run as nobody, as www-data would: they must be able to read
    # published files, and only those.
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    config = root / "nginx.conf"
    config.write_text(
        f"{user}worker_processes {workers};\npid {root / 'nginx.pid'};\n"
        f"error_log {error_log} info;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        f"    client_body_temp_path {temp / 'body'};\n"
        f"    proxy_temp_path {temp / 'proxy'};\n"
        f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
        f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
        f"    scgi_temp_path {temp / 'scgi'};\n"
        f"    include {site};\n"
        "}\n"
    )
    return config, error_log


def nginx_command(site: NginxSite, *args: str) -> list[str]:
    return [tool("nginx"), "-p", str(site.root), "-c", str(site.config),
            "-e", str(site.error_log), *args]  # fmt: skip


def nginx_test(site: NginxSite) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nginx_command(site, "-t"), capture_output=True, text=True, timeout=30)


@contextmanager
def running_nginx(site: NginxSite) -> Iterator[NginxSite]:
    process = subprocess.Popen(
        nginx_command(site, "-g", "daemon off;"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(site.https_port, process, site)
        yield site
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_for_port(port: int, process: subprocess.Popen[str], site: NginxSite) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = site.error_log.read_text() if site.error_log.exists() else ""
            raise AssertionError(f"nginx exited with {process.returncode}:\n{errors}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx did not listen on {port} within 15s")


def access_log_lines(site: NginxSite, needle: str) -> list[str]:
    """The access log lines mentioning ``needle``; nginx writes each when a response ends."""
    deadline = time.monotonic() + 5
    while True:
        text = site.access_log.read_text() if site.access_log.exists() else ""
        lines = [line for line in text.splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# ---------------------------------------------------------------- systemd


def render_units(directory: Path, qmirror: Path) -> list[Path]:
    """deploy/systemd/* with ExecStart= at a real ``qmirror`` (verify resolves executables)."""
    directory.mkdir(parents=True, exist_ok=True)
    units = []
    for source in sorted((DEPLOY / "systemd").iterdir()):
        text = source.read_text()
        if "ExecStart=" in text:
            text = render(text, {"/opt/qmirror/venv/bin/qmirror": str(qmirror)}, source.name)
        target = directory / source.name
        target.write_text(text)
        units.append(target)
    return units
