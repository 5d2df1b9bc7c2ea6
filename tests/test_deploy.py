"""deploy/: the gunicorn config, systemd units, nginx in front of the mirror (X-Accel-Redirect,
cached pages, a static export), the Dockerfile and compose file; and the app's side of them
(``[server] accel_redirect``, ``trusted_proxies``).

systemd units are checked with ``systemd-analyze`` (no systemd runs here as PID 1); nginx
configs with ``nginx -t`` and then for real, in front of gunicorn, with pip installing
through them. Docker has no engine here: the Dockerfile and compose file are read, and
their healthcheck commands run against a real server.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from flask import request

from mirror.config import ConfigError, load_settings, settings_from_mapping
from mirror.web import create_app
from tests.support.builders import make_wheel
from tests.support.deploy import (
    DEPLOY,
    access_log_lines,
    make_certificate,
    nginx_test,
    render_nginx,
    render_units,
    running_nginx,
    tool,
)
from tests.support.live import (
    PIP_ENV,
    REPO,
    free_port,
    gunicorn_mirror,
    make_venv,
    pip,
    qmirror,
    wait_for_http,
    write_config,
)
from tests.test_index import Mirror, approved_wheel

LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def mirror(tmp_path):
    return Mirror(tmp_path)


PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "value", ["_published/", "/_published", "/", "/a b/", "/../published/", "//x/", "/x/./y/"]
)
def test_accel_redirect_must_be_an_internal_url_path(value):
    with pytest.raises(ConfigError, match=r"server\.accel_redirect: .* is not a URL path"):
        settings_from_mapping({"server": {"accel_redirect": value}}, "qmirror.toml")


def test_accel_redirect_and_trusted_proxies_are_off_by_default_and_set_from_the_environment():
    default = load_settings(environ={})
    assert default.server.accel_redirect == "" and default.server.trusted_proxies == 0
    settings = load_settings(
        environ={
            "QMIRROR_SERVER_ACCEL_REDIRECT": "/_published/",
            "QMIRROR_SERVER_TRUSTED_PROXIES": "1",
        }
    )
    assert settings.server.accel_redirect == "/_published/"
    assert settings.server.trusted_proxies == 1


# ---------------------------------------------------------------- the app's side, in-process


def accel_app(mirror: Mirror, **server):
    settings = settings_from_mapping(
        {
            "data_dir": str(mirror.settings.data_dir),
            "server": {"accel_redirect": "/_published/", **server},
        }
    )
    return create_app(settings, db=mirror.db, storage=mirror.storage)


def test_file_route_hands_the_bytes_to_nginx_with_x_accel_redirect(mirror):
    row, path = approved_wheel(mirror)
    client = accel_app(mirror).test_client()
    sha = row.sha256
    response = client.get(f"/files/{sha}/{row.filename}")
    assert response.status_code == 200
    assert response.headers["X-Accel-Redirect"] == f"/_published/{sha[:2]}/{sha[2:4]}/{sha}"
    assert response.data == b""  # nginx sends the bytes
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == f"attachment; filename={row.filename}"
    assert response.headers["ETag"] == f'"{sha}"'
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # The path it names is the published blob, under the directory nginx aliases.
    published = mirror.settings.data_dir / "published"
    blob = published / response.headers["X-Accel-Redirect"].removeprefix("/_published/")
    assert blob.read_bytes() == path.read_bytes()

    metadata = client.get(f"/files/{sha}/{row.filename}.metadata")
    assert metadata.headers["X-Accel-Redirect"].endswith(f"/{sha}.metadata")
    assert metadata.headers["Content-Type"].startswith("text/plain")
    assert metadata.headers["Content-Disposition"] == f"inline; filename={row.filename}.metadata"
    assert metadata.headers["ETag"] == f'"{row.metadata_sha256}"'


def test_x_accel_redirect_comes_after_the_servable_check(mirror):
    held = mirror.add(make_wheel(mirror.build_dir, "demo", "2.0"), "demo", "2.0")
    row, path = approved_wheel(mirror)
    # The same bytes under a second name: revoking the first keeps the blob for the twin.
    twin_path = mirror.build_dir / "demo-1.0-py2.py3-none-any.whl"
    twin_path.write_bytes(path.read_bytes())
    twin = mirror.add(twin_path, "demo", "1.0")
    mirror.publisher.approve([twin], actor="test", reason="ok")
    mirror.publisher.revoke([row], actor="test", reason="advisory")
    assert mirror.storage.published.exists(row.sha256)
    client = accel_app(mirror).test_client()
    for url in (
        f"/files/{held.sha256}/{held.filename}",  # quarantined
        f"/files/{row.sha256}/{row.filename}",  # revoked, its bytes still published
        f"/files/{row.sha256}/{row.filename}.metadata",
        f"/files/{row.sha256}/other-1.0-py3-none-any.whl",  # never a file of the mirror
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "X-Accel-Redirect" not in response.headers, url
    assert client.get(f"/files/{twin.sha256}/{twin.filename}").headers["X-Accel-Redirect"]


def test_x_accel_redirect_answers_conditional_requests_itself(mirror):
    row, _ = approved_wheel(mirror)
    client = accel_app(mirror).test_client()
    url = f"/files/{row.sha256}/{row.filename}"
    again = client.get(url, headers={"If-None-Match": f'"{row.sha256}"'})
    assert again.status_code == 304
    assert "X-Accel-Redirect" not in again.headers
    assert again.headers["ETag"] == f'"{row.sha256}"'
    other = client.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.headers["X-Accel-Redirect"]


def test_published_blobs_are_readable_by_the_web_server_and_quarantined_ones_are_not(mirror):
    row, _ = approved_wheel(mirror)
    published = mirror.storage.published.local_path(row.sha256)
    quarantined = mirror.storage.quarantine.local_path(row.sha256)
    assert stat.S_IMODE(published.stat().st_mode) == 0o644
    assert stat.S_IMODE(quarantined.stat().st_mode) == 0o600
    metadata = mirror.storage.quarantine.local_path(f"{row.sha256}.metadata")
    assert stat.S_IMODE(metadata.stat().st_mode) == 0o600
    # put_file (how sync stores a download) sets the mode too, whatever the source had.
    source = mirror.build_dir / "download"
    source.write_bytes(b"x")
    source.chmod(0o666)
    mirror.storage.quarantine.put_file("ab" * 32, source)
    stored = mirror.storage.quarantine.local_path("ab" * 32)
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_client_address_and_scheme_come_from_the_proxy_only_when_trusted(mirror):
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    for trusted, expected in ((0, ("127.0.0.1", "http")), (1, ("203.0.113.7", "https"))):
        app = accel_app(mirror, trusted_proxies=trusted)
        seen = []

        @app.before_request
        def look(seen=seen):
            seen.append((request.remote_addr, request.scheme))

        response = app.test_client().get(
            "/healthz", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}
        )
        assert response.status_code == 200
        assert seen == [expected]


# ---------------------------------------------------------------- gunicorn


def clean_environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMIRROR_")}
    env.pop("FORWARDED_ALLOW_IPS", None)
    env.pop("GUNICORN_CMD_ARGS", None)
    env.update(values)
    return env


def gunicorn_settings(env: dict[str, str]) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"),
         "--print-config"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=True,
    )  # fmt: skip
    settings = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


def test_gunicorn_conf_takes_bind_and_workers_from_the_environment(tmp_path):
    config = tmp_path / "qmirror.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[server]\nthreads = 8\n')
    env = clean_environment(
        QMIRROR_CONFIG=str(config),
        QMIRROR_SERVER_BIND="127.0.0.1:9123",
        QMIRROR_SERVER_WORKERS="3",
        FORWARDED_ALLOW_IPS="10.0.0.2",
    )
    settings = gunicorn_settings(env)
    assert settings["bind"] == "['127.0.0.1:9123']"
    assert settings["workers"] == "3"
    assert settings["threads"] == "8"  # from the file
    assert settings["worker_class"] == "gthread"
    assert settings["wsgi_app"] == "mirror.web:create_app()"
    assert settings["forwarded_allow_ips"] == "['10.0.0.2']"
    assert int(settings["keepalive"]) > 60  # outlasts nginx's upstream keepalive_timeout
    assert int(settings["graceful_timeout"]) > 0 and int(settings["timeout"]) >= 30
    assert "%({x-request-id}i)s" in settings["access_log_format"]

    defaults = gunicorn_settings(clean_environment(QMIRROR_DATA_DIR=str(tmp_path / "data")))
    assert defaults["bind"] == "['127.0.0.1:8080']"
    assert defaults["forwarded_allow_ips"] == "['127.0.0.1', '::1']"
    assert int(defaults["workers"]) == len(os.sched_getaffinity(0)) * 2 + 1


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def healthcheck_command() -> list[str]:
    (check,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    return json.loads(check[check.index("CMD") + 3 :].strip())


@pytest.mark.live
def test_gunicorn_starts_from_the_deploy_conf_and_answers_healthz(tmp_path):
    port = free_port()
    access_log = tmp_path / "access.log"
    env = clean_environment(
        QMIRROR_DATA_DIR=str(tmp_path / "data"),
        QMIRROR_SERVER_BIND=f"127.0.0.1:{port}",
        QMIRROR_SERVER_WORKERS="1",
        QMIRROR_SERVER_ACCESS_LOG=str(access_log),
    )
    with open(tmp_path / "gunicorn.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    # The Dockerfile's (and compose's) HEALTHCHECK, run as Docker would, with this python.
    command = healthcheck_command()
    assert command[0] == "python"
    check = [sys.executable, *command[1:]]
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "deploy-check-1"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.read() == b"ok\n"
        assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode != 0
    lines = [line for line in access_log.read_text().splitlines() if "deploy-check-1" in line]
    assert len(lines) == 1 and '"GET /healthz HTTP/1.1" 200' in lines[0]
    assert "Using worker: gthread" in (tmp_path / "gunicorn.log").read_text()


# ---------------------------------------------------------------- systemd


def qmirror_executable() -> Path:
    path = Path(sys.executable).with_name("qmirror")
    assert path.is_file(), f"{path} is missing: pip install -e . creates it"
    return path


def systemd_analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No systemd as PID 1 here (a container): no man pages to look up, no generators to run.
    return subprocess.run(
        [tool("systemd-analyze"), *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_systemd_units_verify(tmp_path):
    units = render_units(tmp_path / "units", qmirror_executable())
    assert {unit.name for unit in units} == {
        "qmirror.service", "qmirror-sync.service", "qmirror-sync.timer",
        "qmirror-advisories.service", "qmirror-advisories.timer",
    }  # fmt: skip
    result = systemd_analyze(
        "verify", "--man=no", "--generators=no", "--recursive-errors=no",
        *(str(unit) for unit in units), cwd=tmp_path / "units",
    )  # fmt: skip
    # verify reports unknown keys and bad values as warnings with exit 0: none may appear.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


def test_systemd_verify_catches_what_it_is_trusted_to_catch(tmp_path):
    units = render_units(tmp_path / "units", Path("/nonexistent/bin/qmirror"))
    service = units[[u.name for u in units].index("qmirror.service")]
    service.write_text(
        service.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly")
    )
    result = systemd_analyze(
        "verify", "--man=no", "--generators=no", "--recursive-errors=no", str(service),
        cwd=service.parent,
    )  # fmt: skip
    assert result.returncode != 0
    assert "/nonexistent/bin/qmirror" in result.stderr and "strictly" in result.stderr


@pytest.mark.parametrize(
    "unit", ["qmirror.service", "qmirror-sync.service", "qmirror-advisories.service"]
)
def test_systemd_services_are_hardened(tmp_path, unit):
    render_units(tmp_path / "units", qmirror_executable())
    text = (tmp_path / "units" / unit).read_text()
    for setting in (
        "User=qmirror", "NoNewPrivileges=yes", "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/qmirror", "PrivateTmp=yes",
        "Environment=QMIRROR_DATA_DIR=/var/lib/qmirror",
    ):  # fmt: skip
        assert f"\n{setting}\n" in text, setting
    # systemd's own exposure score, 0 (locked down) to 10 (unprotected): at most 2.
    result = systemd_analyze(
        "security", "--offline=yes", "--threshold=20", "--no-pager",
        str(tmp_path / "units" / unit), cwd=tmp_path / "units",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


def test_timer_compose_loop_and_readme_cron_line_sync_at_the_same_interval():
    timer = (DEPLOY / "systemd" / "qmirror-sync.timer").read_text()
    assert "\nPersistent=true\n" in timer and "\nUnit=qmirror-sync.service\n" in timer
    (calendar,) = re.findall(r"^OnCalendar=\*:0/(\d+)$", timer, re.MULTILINE)
    readme = (REPO / "README.md").read_text()
    (cron,) = re.findall(r"^\*/(\d+) \* \* \* \* .*qmirror .*sync", readme, re.MULTILINE)
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    interval = compose["services"]["sync"]["environment"]["SYNC_INTERVAL"]
    assert re.fullmatch(r"\$\{SYNC_INTERVAL:-(\d+)\}", interval)
    seconds = int(re.fullmatch(r"\$\{SYNC_INTERVAL:-(\d+)\}", interval).group(1))
    assert int(calendar) == int(cron) == seconds // 60


# ---------------------------------------------------------------- nginx


@pytest.fixture
def served():
    """A directory nginx's workers (nobody, when the tests run as root) can reach, for the
    mirror's data and nginx's own files: pytest's tmp_path is private to its owner, as a
    home directory would be."""
    base = Path(tempfile.mkdtemp(prefix="qmirror-deploy-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("index", ["index-from-app.conf", "index-from-export.conf"])
def test_nginx_accepts_the_config(tmp_path, served, index):
    site = render_nginx(
        served / "nginx", app_port=free_port(), data_dir=served / "data",
        certificate=make_certificate(tmp_path / "tls"), index=index,
    )  # fmt: skip
    result = nginx_test(site)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr


def tls_context(site_ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(site_ca))


def fetch(site, path: str, headers: dict[str, str] | None = None, ca: Path | None = None):
    """One HTTPS request to the site (no redirects followed): status, headers, body."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", site.https_port, context=tls_context(ca), timeout=15
    )
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def sync_demo(tmp_path: Path, fake_index, data_dir: Path, projects=("demo",)) -> tuple[Path, dict]:
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    wheels = {}
    for name in projects:
        wheel = make_wheel(build, name, "1.0", files={f"{name}/__init__.py": b"VALUE = 1\n"})
        index.add(wheel, upload_time=LONG_AGO)
        wheels[name] = wheel
    config = write_config(
        tmp_path / "qmirror.toml", data_dir, index.url,
        sync={"projects": list(projects)},
        server={
            "accel_redirect": "/_published/",
            "trusted_proxies": 1,
            "access_log": str(tmp_path / "gunicorn-access.log"),
        },
    )  # fmt: skip
    result = qmirror(config, "sync")
    assert "0 failed" in result.stdout, result.stdout + result.stderr
    return config, wheels


@pytest.mark.live
def test_pip_installs_through_nginx_and_nginx_sends_the_file(tmp_path, fake_index, served):
    data_dir = served / "data"
    config, wheels = sync_demo(tmp_path, fake_index, data_dir)
    wheel = wheels["demo"]
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    certificate = make_certificate(tmp_path / "tls")
    with gunicorn_mirror(config, tmp_path) as app:
        site = render_nginx(
            served / "nginx", app_port=app.port, data_dir=data_dir, certificate=certificate
        )
        with running_nginx(site):
            python = make_venv(tmp_path / "venv")
            install = pip_through_tls(python, f"{site.url}/simple/", "demo", certificate.ca)
            assert install.returncode == 0, install.stdout + install.stderr
            check = pip(python, "show", "demo")
            assert "Version: 1.0" in check.stdout

            # nginx sent the wheel's bytes from disk; the app sent only the header.
            (line,) = [
                line
                for line in access_log_lines(site, f"/files/{sha}/{wheel.name} ")
                if "pip/" in line
            ]
            assert f'" 200 {wheel.stat().st_size} ' in line
            assert line.endswith(f" accel=/_published/{sha[:2]}/{sha[2:4]}/{sha}")
            assert "upstream_bytes=0 " in line
            # The same request in gunicorn's log, by the request id nginx made: 0 bytes.
            rid = re.search(r"rid=(\S+)", line).group(1)
            (app_line,) = [
                entry
                for entry in (tmp_path / "gunicorn-access.log").read_text().splitlines()
                if f"rid={rid}" in entry
            ]
            assert f'GET /files/{sha}/{wheel.name} HTTP/1.1" 200 0 ' in app_line

            # Pages are cached by nginx as the app says (max-age=60), one entry per Accept.
            first = fetch(site, "/simple/demo/", {"Accept": JSON_TYPE}, certificate.ca)
            second = fetch(site, "/simple/demo/", {"Accept": JSON_TYPE}, certificate.ca)
            assert first[0] == second[0] == 200 and first[2] == second[2]
            assert second[1]["X-Cache-Status"] == "HIT"
            assert second[1]["Vary"] == "Accept" and second[1]["ETag"]
            assert first[1]["Content-Type"].startswith(JSON_TYPE)
            html = fetch(site, "/simple/demo/", {"Accept": "text/html"}, certificate.ca)
            assert html[1]["Content-Type"].startswith("text/html")
            assert html[1]["X-Cache-Status"] == "MISS"  # a different Accept: its own entry
            # Credentials (index_auth) are the app's to check, every time.
            authorized = {"Accept": JSON_TYPE, "Authorization": "Basic dXNlcjp0b2tlbg=="}
            bypass = fetch(site, "/simple/demo/", authorized, certificate.ca)
            assert bypass[1]["X-Cache-Status"] == "BYPASS"

            # The store is reachable only through the app's redirect.
            direct = fetch(site, f"/_published/{sha[:2]}/{sha[2:4]}/{sha}", ca=certificate.ca)
            assert direct[0] == 404
            # Plain HTTP only redirects to HTTPS.
            plain = http.client.HTTPConnection("127.0.0.1", site.http_port, timeout=15)
            plain.request("GET", "/simple/demo/")
            redirect = plain.getresponse()
            assert redirect.status == 301
            assert redirect.getheader("Location") == "https://127.0.0.1/simple/demo/"
            plain.close()


def pip_through_tls(python: Path, index_url: str, requirement: str, ca: Path):
    """pip trusting ``ca`` by --cert alone. Requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
    (set on some machines) override --cert, so they go, with pip's own settings."""
    dropped = ("PIP_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(PIP_ENV)
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--index-url", index_url, "--cert", str(ca),
         requirement],
        capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def write_export(export: Path, app_url: str, project: str, wheel: Path) -> None:
    """The layout `qmirror export` writes, from the app's own pages and files."""

    def get(path: str, accept: str) -> bytes:
        request = urllib.request.Request(app_url + path, headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    for page, directory in (("/simple/", export / "simple"),
                            (f"/simple/{project}/", export / "simple" / project)):  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "index.json").write_bytes(get(page, JSON_TYPE))
        (directory / "index.html").write_bytes(get(page, "text/html"))
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (export / "files" / sha).mkdir(parents=True)
    shutil.copyfile(wheel, export / "files" / sha / wheel.name)
    (export / "simple" / ".tmp-half-written").write_text("not for clients")


@pytest.mark.live
def test_nginx_serves_an_export_by_accept_and_falls_back_to_the_app(tmp_path, fake_index, served):
    data_dir = served / "data"
    config, wheels = sync_demo(tmp_path, fake_index, data_dir, projects=("demo", "later"))
    certificate = make_certificate(tmp_path / "tls")
    with gunicorn_mirror(config, tmp_path) as app:
        export = data_dir / "export"
        write_export(export, app.url, "demo", wheels["demo"])
        site = render_nginx(
            served / "nginx", app_port=app.port, data_dir=data_dir,
            certificate=certificate, index="index-from-export.conf",
        )  # fmt: skip
        ca = certificate.ca
        with running_nginx(site):
            status, headers, body = fetch(site, "/simple/demo/", {"Accept": PIP_ACCEPT}, ca)
            assert status == 200 and body == (export / "simple/demo/index.json").read_bytes()
            assert headers["Content-Type"] == JSON_TYPE
            assert headers["Vary"] == "Accept" and "X-Cache-Status" not in headers  # disk
            status, headers, body = fetch(site, "/simple/demo/", {}, ca)
            assert body == (export / "simple/demo/index.html").read_bytes()
            assert headers["Content-Type"].startswith("text/html")
            assert (
                fetch(site, "/simple/demo/?format=json", {}, ca)[2]
                == (export / "simple/demo/index.json").read_bytes()
            )
            assert (
                fetch(site, "/simple/", {"Accept": PIP_ACCEPT}, ca)[2]
                == (export / "simple/index.json").read_bytes()
            )

            # Not in the export yet: the app answers (and nginx caches its page).
            status, headers, body = fetch(site, "/simple/later/", {"Accept": PIP_ACCEPT}, ca)
            assert status == 200 and json.loads(body)["name"] == "later"
            assert headers["X-Cache-Status"] == "MISS"
            # A name the export cannot have: the app's redirect to the normalized one.
            status, headers, _ = fetch(site, "/simple/Demo/", {}, ca)
            assert status == 301 and headers["Location"] == "/simple/demo/"

            wheel = wheels["demo"]
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            status, headers, body = fetch(site, f"/files/{sha}/{wheel.name}", {}, ca)
            assert status == 200 and body == wheel.read_bytes()
            assert "immutable" in headers["Cache-Control"]
            (line,) = access_log_lines(site, f"/files/{sha}/{wheel.name} ")
            assert "upstream_bytes=- " in line  # from the export, the app not asked
            later = wheels["later"]
            later_sha = hashlib.sha256(later.read_bytes()).hexdigest()
            status, _, body = fetch(site, f"/files/{later_sha}/{later.name}", {}, ca)
            assert status == 200 and body == later.read_bytes()  # the app, via X-Accel
            (line,) = access_log_lines(site, f"/files/{later_sha}/{later.name} ")
            assert "accel=/_published/" in line

            assert fetch(site, "/simple/.tmp-half-written", {}, ca)[0] == 404

            # nginx keeps the export's files open (open_file_cache), yet a page the export
            # replaces (a new file renamed over it) is served within about a second.
            page = export / "simple/demo/index.html"
            fresh = page.read_bytes() + b"<!-- exported again -->\n"
            temp = export / ".qmirror-tmp-page"
            temp.write_bytes(fresh)
            os.replace(temp, page)
            deadline = time.monotonic() + 3
            while fetch(site, "/simple/demo/", {}, ca)[2] != fresh:
                assert time.monotonic() < deadline, "nginx still serves the replaced page"
                time.sleep(0.1)


# ---------------------------------------------------------------- Docker


def test_dockerfile_runs_as_a_user_with_a_healthcheck_and_a_data_volume():
    instructions = dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"} and not users[-1].startswith("0:")
    final_stage = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    assert any(keyword == "USER" for keyword, _ in instructions[final_stage:])
    assert instructions[final_stage][1].startswith("python:3.11-slim")
    command = healthcheck_command()
    assert "/healthz" in " ".join(command)
    volumes = [json.loads(rest) for keyword, rest in instructions if keyword == "VOLUME"]
    assert volumes == [["/data"]]
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "QMIRROR_DATA_DIR=/data" in env
    (cmd,) = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmd == ["qmirror", "serve"]
    # Everything COPY'd from the context exists (the context is the repository root).
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (REPO / source).exists(), source


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} and ${VAR:?error}, with nothing set: the default, or a
    stand-in for what the operator must supply."""
    value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{(\w+):\?[^}]*\}", r"<\1>", value)


def test_compose_runs_the_mirror_the_sync_loop_and_an_s3_store():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"mirror", "sync", "s3"} <= set(services)
    for name in ("mirror", "sync"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        uid = str(service["user"]).split(":")[0]
        assert uid not in {"0", "root"}
        assert "data:/data" in service["volumes"]
    # The mirror is health-checked as in the Dockerfile; the sync loop serves nothing.
    assert services["mirror"]["healthcheck"]["test"] == ["CMD", *healthcheck_command()]
    assert services["sync"]["healthcheck"] == {"disable": True}
    assert "qmirror sync" in " ".join(services["sync"]["command"])
    assert services["s3"]["healthcheck"]["test"]

    env = {k: interpolate(str(v)) for k, v in services["mirror"]["environment"].items()}
    assert env["QMIRROR_STORAGE_BACKEND"] == "s3"
    storage_keys = {k.removeprefix("QMIRROR_STORAGE_") for k in env if "_STORAGE_" in k}
    assert storage_keys == {"BACKEND", "BUCKET", "PREFIX", "ENDPOINT_URL", "REGION"}
    assert env["QMIRROR_STORAGE_ENDPOINT_URL"] == "http://s3:9000"
    # Credentials for boto3's chain come from the operator, never from the file.
    assert env["AWS_SECRET_ACCESS_KEY"] == "<S3_SECRET_KEY>"
    assert "AWS_ACCESS_KEY_ID" in env
    # Every other QMIRROR_ variable is a real config key with a valid value.
    others = {k: v for k, v in env.items() if k.startswith("QMIRROR_") and "_STORAGE_" not in k}
    settings = load_settings(environ=others)
    assert settings.server.bind == "0.0.0.0:8080" and settings.server.trusted_proxies == 1
    assert str(settings.data_dir) == "/data"
