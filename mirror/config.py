"""TOML -> typed, validated settings.

Precedence: command-line flags > ``QMIRROR_*`` environment > the TOML file > defaults.
Every key is documented in ``config.example.toml``; an unknown key or a bad value raises
``ConfigError`` whose one-line message names the file and the key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from quarantine.checks import known_check_ids
from quarantine.findings import Severity
from quarantine.policy import DEFAULT_CHECK_ACTIONS, DEFAULT_SEVERITY_ACTIONS, Action, Policy

ENV_PREFIX = "QMIRROR_"
DEFAULT_CONFIG_NAME = "qmirror.toml"


class ConfigError(Exception):
    """A bad config file, key or value. ``str()`` is the whole one-line message."""


# ---------------------------------------------------------------- value parsers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}  # fmt: skip


def parse_duration(value: Any) -> timedelta:
    """``"3d"``, ``"12h"``, ``"90m"``, ``"1w"``, ``"0"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '3d', '12h' or '0'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as '3d', '12h' or '0'")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


def _positive_duration(value: Any) -> timedelta:
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError("must be longer than 0")
    return duration


def parse_size(value: Any) -> int:
    """``"500MB"``, ``"2GiB"``, or a number of bytes; 0 means no limit."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '500MB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size such as '500MB' or '2GiB'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{value!r} is not true or false")


def _int(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        number = int(value)
        if number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return parse


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # from the environment: a TOML array, or comma-separated
        if value.lstrip().startswith("["):
            try:
                value = tomllib.loads(f"value = {value}")["value"]
            except tomllib.TOMLDecodeError as error:
                raise ValueError(f"not a TOML array: {error}") from None
        else:
            return tuple(item.strip() for item in value.split(",") if item.strip())
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def mirrored_requirement(text: str) -> Requirement:
    """A requirement the sync can mirror (the config's and the admins'): PEP 508, and
    never a direct URL. ValueError says which rule ``text`` broke."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        reason = str(error).splitlines()[0]
        raise ValueError(f"{text!r} is not a requirement: {reason}") from None
    if requirement.url:
        raise ValueError(f"{text!r}: direct URL requirements are not mirrored")
    return requirement


def _requirements(value: Any) -> tuple[Requirement, ...]:
    requirements = []
    for index, text in enumerate(_str_list(value)):
        try:
            requirements.append(mirrored_requirement(text))
        except ValueError as error:
            raise ValueError(f"item {index + 1} {error}") from None
    return tuple(requirements)


def _http_url(value: Any) -> str:
    url = _str(value).strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url if url.endswith("/") else url + "/"


def _public_url(value: Any) -> str:
    return "" if value == "" else _http_url(value)


def _optional_url(value: Any) -> str:
    """An http(s) URL kept exactly as written (a webhook's path is its secret), or ""."""
    url = _str(value).strip()
    if url == "":
        return url
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError('expected an http(s) URL or ""')
    return url


def _bind(value: Any) -> str:
    text = _str(value).strip()
    if text.startswith("unix:"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return text


_URL_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+/)+")


def _accel_prefix(value: Any) -> str:
    """An nginx ``internal`` location such as ``/_published/``, or "" for off."""
    text = _str(value).strip()
    if text and (not _URL_PATH.fullmatch(text) or "/../" in text or "/./" in text):
        raise ValueError(f"{text!r} is not a URL path such as '/_published/' (or '' for off)")
    return text


def _python_versions(value: Any) -> tuple[str, ...]:
    versions = _str_list(value)
    for version in versions:
        if not re.fullmatch(r"3\.\d+", version):
            raise ValueError(f"{version!r} is not a Python version such as '3.12'")
    return versions


PLATFORMS = ("linux-x86_64", "linux-aarch64", "macos-arm64", "macos-x86_64", "windows-amd64")


def _platforms(value: Any) -> tuple[str, ...]:
    platforms = _str_list(value)
    for platform in platforms:
        if platform not in PLATFORMS:
            raise ValueError(f"{platform!r} is not one of {', '.join(PLATFORMS)}")
    return platforms


def _project_patterns(value: Any) -> tuple[str, ...]:
    """Project names or globs (``acme-*``), normalized like the names they match."""
    patterns = []
    for text in _str_list(value):
        stem = text.rstrip("*")
        if not stem or not re.fullmatch(r"[A-Za-z0-9._-]+", stem):
            raise ValueError(f"{text!r} is not a project name or NAME* prefix")
        patterns.append(canonicalize_name(stem) + ("*" if text.endswith("*") else ""))
    return tuple(patterns)


def is_internal(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a (normalized) project name is one of ours, never to be pulled from upstream."""
    for pattern in patterns:
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return True
        if name == pattern:
            return True
    return False


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _str(value)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _action(value: Any) -> Action:
    return Action(_choice(*(a.value for a in Action))(value))


# ---------------------------------------------------------------- settings


def _key(parser: Callable[[Any], Any], default: Any) -> Any:
    """A settings field: its default and the parser that validates a raw value."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: default, metadata={"parse": parser})
    return field(default=default, metadata={"parse": parser})


@dataclass(frozen=True)
class ServerSettings:
    bind: str = _key(_bind, "127.0.0.1:8080")
    workers: int = _key(_int(0), 0)  # 0: from the CPU count
    threads: int = _key(_int(1), 4)
    public_url: str = _key(_public_url, "")
    access_log: str = _key(_str, "")  # "-" for stdout, a path, or "" for none
    session_lifetime: timedelta = _key(_positive_duration, timedelta(hours=12))
    index_auth: bool = _key(_bool, False)  # /simple/ and /files/ need a read token
    accel_redirect: str = _key(_accel_prefix, "")  # nginx internal location; "" = send bytes
    trusted_proxies: int = _key(_int(0), 0)  # proxies in front whose X-Forwarded-* are believed


@dataclass(frozen=True)
class UpstreamSettings:
    url: str = _key(_http_url, "https://pypi.org/simple/")
    timeout: float = _key(_float, 30.0)
    retries: int = _key(_int(0), 3)
    concurrency: int = _key(_int(1), 4)


@dataclass(frozen=True)
class SyncSettings:
    projects: tuple[Requirement, ...] = _key(_requirements, (Requirement("flask>=3"),))
    dependencies: bool = _key(_bool, True)
    prereleases: bool = _key(_bool, False)
    python_versions: tuple[str, ...] = _key(_python_versions, ("3.11", "3.12", "3.13", "3.14"))
    platforms: tuple[str, ...] = _key(_platforms, ("linux-x86_64", "macos-arm64", "windows-amd64"))
    wheels: bool = _key(_bool, True)
    sdists: bool = _key(_bool, True)
    max_file_size: int = _key(parse_size, parse_size("1GiB"))
    releases: int = _key(_int(0), 0)  # newest N matching releases per project; 0 = all
    on_demand: bool = _key(_bool, False)  # count /simple/<unknown>/ hits as requests


@dataclass(frozen=True)
class ProjectPolicy:
    allow: tuple[str, ...] = ()
    cooldown: timedelta | None = None


@dataclass(frozen=True)
class PolicySettings:
    cooldown: timedelta = _key(parse_duration, timedelta(days=3))
    internal: tuple[str, ...] = _key(_project_patterns, ())
    severity: Mapping[str, Action] = field(default_factory=dict)
    checks: Mapping[str, Action] = field(default_factory=dict)
    projects: Mapping[str, ProjectPolicy] = field(default_factory=dict)

    def build(self) -> Policy:
        severity_actions = dict(DEFAULT_SEVERITY_ACTIONS)
        severity_actions.update({Severity(k): v for k, v in self.severity.items()})
        return Policy(
            severity_actions=severity_actions,
            check_actions={**DEFAULT_CHECK_ACTIONS, **self.checks},
            project_allow={name: frozenset(p.allow) for name, p in self.projects.items()},
            cooldown=self.cooldown,
            project_cooldown={
                name: p.cooldown for name, p in self.projects.items() if p.cooldown is not None
            },
        )


def _verify_provenance(value: Any) -> bool:
    wanted = _bool(value)
    if wanted:
        from mirror.provenance import verification_available

        if not verification_available():
            raise ValueError("needs pypi-attestations: pip install 'quarantine-mirror[provenance]'")
    return wanted


@dataclass(frozen=True)
class ChecksSettings:
    pth_allowlist: tuple[str, ...] = _key(_str_list, ())
    verify_provenance: bool = _key(_verify_provenance, False)


def _endpoint_url(value: Any) -> str:
    url = _str(value).strip()
    if url == "":
        return url
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _bucket(value: Any) -> str:
    # The S3 naming rules, checked here so a typo fails at start-up, not on the first upload.
    name = _str(value).strip()
    if name and (not _BUCKET.match(name) or ".." in name):
        raise ValueError(f"{name!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
    return name


def _key_prefix(value: Any) -> str:
    """``""`` or ``"some/path/"``: the trailing slash is added, a leading one refused."""
    prefix = _str(value).strip()
    if prefix.startswith("/"):
        raise ValueError(f"{prefix!r}: an S3 key prefix does not start with '/'")
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


PRESIGN_MAX = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week


def _presign_expiry(value: Any) -> int:
    seconds = _int(1)(value)
    if seconds > PRESIGN_MAX:
        raise ValueError(f"must be at most {PRESIGN_MAX} (7 days, the SigV4 limit)")
    return seconds


@dataclass(frozen=True)
class StorageSettings:
    backend: str = _key(_choice("local", "s3"), "local")
    bucket: str = _key(_bucket, "")
    quarantine_bucket: str = _key(_bucket, "")  # "": the quarantine prefix in `bucket`
    prefix: str = _key(_key_prefix, "")
    endpoint_url: str = _key(_endpoint_url, "")  # "": AWS's own endpoint for the region
    region: str = _key(_str, "")  # "": from the boto3 chain (AWS_DEFAULT_REGION, profile)
    addressing_style: str = _key(_choice("auto", "path", "virtual"), "auto")
    downloads: str = _key(_choice("stream", "redirect"), "stream")
    presign_expiry: int = _key(_presign_expiry, 300)

    def check(self, source: str) -> None:
        """Rules between keys, which no single key's parser can see."""
        if self.backend == "s3" and not self.bucket:
            raise ConfigError(f"{source}: storage.bucket: required when storage.backend = 's3'")
        if self.backend != "s3" and self.downloads == "redirect":
            raise ConfigError(
                f"{source}: storage.downloads: 'redirect' needs storage.backend = 's3' "
                "(a local store has no URL to redirect to)"
            )
        if self.quarantine_bucket and self.quarantine_bucket == self.bucket:
            raise ConfigError(
                f"{source}: storage.quarantine_bucket: same as storage.bucket; leave it "
                "empty to use the quarantine/ prefix of that bucket"
            )


# OSV's daily export of every PyPI record: vulnerabilities (PYSEC, GHSA) and the OpenSSF
# malicious-packages (MAL) records alike.
OSV_PYPI_EXPORT = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"


@dataclass(frozen=True)
class AdvisoriesSettings:
    url: str = _key(_optional_url, OSV_PYPI_EXPORT)  # what `advisories update` loads
    timeout: float = _key(_float, 60.0)
    max_download: int = _key(parse_size, parse_size("1GiB"))  # 0 = no limit


@dataclass(frozen=True)
class AlertsSettings:
    webhook_url: str = _key(_optional_url, "")  # "" = no alerts
    timeout: float = _key(_float, 5.0)
    max_attempts: int = _key(_int(1), 8)
    retry_backoff: timedelta = _key(_positive_duration, timedelta(minutes=5))


S3_SCHEME = "s3://"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> (bucket, prefix): the bucket checked by the S3 naming
    rules and the prefix as ``[storage] prefix`` (``""`` or ending in ``/``)."""
    if not url.startswith(S3_SCHEME):
        raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"{url!r}: no bucket (expected s3://bucket/prefix)")
    if prefix and any(part in ("", ".", "..") for part in prefix.removesuffix("/").split("/")):
        raise ValueError(f"{url!r}: the prefix has an empty, '.' or '..' part")
    return _bucket(bucket), _key_prefix(prefix)


def _export_target(value: Any) -> str:
    # An s3:// target is checked here, so a bad bucket name fails at start-up; a directory
    # is checked when the export opens it.
    target = _str(value).strip()
    if not target:
        raise ValueError("empty; give a directory or s3://bucket/prefix")
    if target.startswith(S3_SCHEME):
        parse_s3_url(target)
    return target


@dataclass(frozen=True)
class ExportSettings:
    # A directory (relative to data_dir unless absolute) or s3://bucket/prefix.
    to: str = _key(_export_target, "export")
    files_url: str = _key(_public_url, "")  # "" copies files; else link <url><sha256>/<name>
    # An s3:// target's endpoint and region; "" = [storage]'s (one S3-compatible service).
    endpoint_url: str = _key(_endpoint_url, "")
    region: str = _key(_str, "")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _key(lambda v: Path(_str(v)), Path("data"))
    server: ServerSettings = field(default_factory=ServerSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    checks: ChecksSettings = field(default_factory=ChecksSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    advisories: AdvisoriesSettings = field(default_factory=AdvisoriesSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    source: str = "defaults"  # where the settings came from, for messages

    @property
    def database_path(self) -> Path:
        return self.data_dir / "qmirror.sqlite3"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "upstream": UpstreamSettings,
    "sync": SyncSettings,
    "storage": StorageSettings,
    "checks": ChecksSettings,
    "export": ExportSettings,
    "advisories": AdvisoriesSettings,
    "alerts": AlertsSettings,
}


def _parse_section(cls: type[Any], raw: Mapping[str, Any], where: str, source: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: [{where}] must be a table")
    known = {f.name: f for f in dataclasses.fields(cls) if "parse" in f.metadata}
    values = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key {_dotted(where, key)} (known: {', '.join(sorted(known))})"
            )
        try:
            values[key] = known[key].metadata["parse"](value)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{source}: {_dotted(where, key)}: {error}") from None
    return cls(**values)


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _parse_policy(raw: Mapping[str, Any], source: str) -> PolicySettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: [policy] must be a table")
    raw = dict(raw)
    severity_raw = raw.pop("severity", {})
    checks_raw = raw.pop("checks", {})
    projects_raw = raw.pop("projects", {})
    base: PolicySettings = _parse_section(PolicySettings, raw, "policy", source)

    severity: dict[str, Action] = {}
    for key, value in _table(severity_raw, "policy.severity", source).items():
        if key not in {s.value for s in Severity}:
            raise ConfigError(f"{source}: unknown key policy.severity.{key} (a severity name)")
        severity[key] = _parse_value(_action, value, f"policy.severity.{key}", source)
    known = known_check_ids()
    checks: dict[str, Action] = {}
    for key, value in _table(checks_raw, "policy.checks", source).items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown check id policy.checks.{key} (see `qmirror checks`)"
            )
        checks[key] = _parse_value(_action, value, f"policy.checks.{key}", source)
    projects: dict[str, ProjectPolicy] = {}
    for name, table in _table(projects_raw, "policy.projects", source).items():
        where = f"policy.projects.{name}"
        table = _table(table, where, source)
        unknown = set(table) - {"allow", "cooldown"}
        if unknown:
            raise ConfigError(f"{source}: unknown key {where}.{sorted(unknown)[0]}")
        for check_id in table.get("allow", []):
            if check_id not in known:
                raise ConfigError(
                    f"{source}: {where}.allow: unknown check id {check_id!r} (see `qmirror checks`)"
                )
        projects[canonicalize_name(name)] = ProjectPolicy(
            allow=_parse_value(_str_list, table.get("allow", []), f"{where}.allow", source),
            cooldown=(
                _parse_value(parse_duration, table["cooldown"], f"{where}.cooldown", source)
                if "cooldown" in table
                else None
            ),
        )
    return dataclasses.replace(base, severity=severity, checks=checks, projects=projects)


def _table(value: Any, where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [{where}] must be a table")
    return value


def _parse_value(parser: Callable[[Any], Any], value: Any, where: str, source: str) -> Any:
    try:
        return parser(value)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source}: {where}: {error}") from None


def settings_from_mapping(raw: Mapping[str, Any], source: str = "<config>") -> Settings:
    raw = dict(raw)
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        sections[name] = _parse_section(cls, raw.pop(name, {}), name, source)
    sections["policy"] = _parse_policy(raw.pop("policy", {}), source)
    top: Settings = _parse_section(Settings, raw, "", source)
    sections["storage"].check(source)
    return dataclasses.replace(top, **sections, source=source)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``QMIRROR_DATA_DIR``, ``QMIRROR_SERVER_BIND``, ``QMIRROR_SYNC_PROJECTS`` (commas), ..."""
    overrides: dict[str, Any] = {}
    top_keys = {f.name for f in dataclasses.fields(Settings) if "parse" in f.metadata}
    sections = {**_SECTIONS, "policy": PolicySettings}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in top_keys:
            overrides[key] = value
            continue
        section, _, rest = key.partition("_")
        if section in sections and rest in _scalar_keys(sections[section]):
            overrides.setdefault(section, {})[rest] = value
            continue
        raise ConfigError(f"environment: unknown variable {name}")
    return overrides


def _scalar_keys(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if "parse" in f.metadata}


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def find_config_file(
    explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> Path | None:
    """``--config FILE``, else ``$QMIRROR_CONFIG``, else ``./qmirror.toml`` if present."""
    if explicit:
        return Path(explicit)
    if environ.get(ENV_PREFIX + "CONFIG"):
        return Path(environ[ENV_PREFIX + "CONFIG"])
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.is_file() else None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    config_file = find_config_file(path, environ)
    raw: dict[str, Any] = {}
    source = "defaults"
    if config_file is not None:
        source = str(config_file)
        try:
            with open(config_file, "rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{config_file}: config file not found") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{config_file}: not valid TOML: {error}") from None
        except OSError as error:
            raise ConfigError(f"{config_file}: cannot read: {error.strerror}") from None
    env = _env_overrides(environ)
    if env:
        source = f"{source} + environment" if config_file else "environment"
    raw = _merge(_merge(raw, env), overrides or {})
    settings = settings_from_mapping(raw, source)
    # A relative data_dir in a file is relative to that file, so cron and systemd
    # (whose working directory differs) find the same data.
    from_file = "data_dir" not in env and "data_dir" not in (overrides or {})
    if config_file is not None and from_file and not settings.data_dir.is_absolute():
        settings = dataclasses.replace(
            settings, data_dir=config_file.resolve().parent / settings.data_dir
        )
    return settings
