"""Drift: what changed between a project's last approved release and a new file of it, in
the ways a hijacked maintainer account changes a project.

A single-file check cannot see these: a release that adds a ``.pth`` hook, a dependency
nobody has heard of, a new author e-mail domain or a build from another repository looks
normal on its own. Each drift check compares two :class:`Snapshot` values (pure data,
built by the caller from the database or from files on disk) and returns findings.
"""

from __future__ import annotations

import email.utils
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from quarantine.checks.native import NATIVE_SUFFIXES
from quarantine.checks.pickles import NESTED_PICKLE_SUFFIXES
from quarantine.findings import Finding, Severity
from quarantine.inspection import Inspection, ListedMember

DRIFT_NEW_EMAIL: Final = "drift-new-email"
DRIFT_NEW_EMAIL_DOMAIN: Final = "drift-new-email-domain"
DRIFT_URL_HOST: Final = "drift-url-host"
DRIFT_NEW_DEPENDENCY: Final = "drift-new-dependency"
DRIFT_NEW_UNKNOWN_DEPENDENCY: Final = "drift-new-unknown-dependency"
DRIFT_NEW_SCRIPT: Final = "drift-new-script"
DRIFT_NEW_PTH: Final = "drift-new-pth"
DRIFT_NEW_NATIVE: Final = "drift-new-native"
DRIFT_NEW_TOP_LEVEL: Final = "drift-new-top-level"
DRIFT_NEW_MODEL_FILE: Final = "drift-new-model-file"
DRIFT_SIZE_JUMP: Final = "drift-size-jump"
PROVENANCE_MISSING: Final = "provenance-missing"
PROVENANCE_PUBLISHER_CHANGED: Final = "provenance-publisher-changed"

# A new file this many times larger than the last approved one (and at least this many
# bytes larger) is a jump: a payload bundled in, or a different project under the name.
SIZE_JUMP_RATIO: Final = 4.0
SIZE_JUMP_MIN_BYTES: Final = 1_000_000
MEMBER_JUMP_RATIO: Final = 3.0
MEMBER_JUMP_MIN: Final = 100
MODEL_SUFFIXES: Final = (*NESTED_PICKLE_SUFFIXES, ".safetensors", ".onnx", ".h5", ".nemo")
MAX_LISTED: Final = 10  # names one finding lists in its evidence
SCRIPT_GROUPS: Final = frozenset({"console_scripts", "gui_scripts"})


@dataclass(frozen=True)
class Publisher:
    """Who a PEP 740 attestation says built the file: the trusted publisher identity."""

    kind: str  # "GitHub", "GitLab", "Google", ...
    repository: str  # owner/name, or the service account e-mail for Google
    workflow: str  # workflow file (GitHub), workflow_filepath (GitLab); "" when none
    environment: str = ""

    def identity(self) -> tuple[str, str, str]:
        # Environments are renamed often and legitimately; the repository and workflow
        # are what a hijacker who publishes from elsewhere cannot keep.
        return (self.kind.lower(), self.repository.lower(), self.workflow)

    def describe(self) -> str:
        workflow = f" workflow {self.workflow}" if self.workflow else ""
        return f"{self.kind} {self.repository}{workflow}"


@dataclass(frozen=True)
class Snapshot:
    """What drift compares: one file's metadata, layout and provenance."""

    filename: str
    kind: str | None  # "wheel" | "sdist"
    size: int
    emails: frozenset[str] = frozenset()  # lower-cased author/maintainer addresses
    url_hosts: Mapping[str, str] = field(default_factory=dict)  # host -> first field naming it
    dependencies: Mapping[NormalizedName, str] = field(default_factory=dict)  # name -> raw
    scripts: frozenset[str] = frozenset()
    members: frozenset[str] = frozenset()
    member_count: int = 0
    members_known: bool = False  # False when nothing was recorded (or the list was cut)
    # None: the file came without provenance; else its publishers (possibly several).
    publishers: tuple[Publisher, ...] | None = None

    @property
    def pth_files(self) -> frozenset[str]:
        return frozenset(m for m in self.members if _is_startup_pth(m, self.kind))

    @property
    def native_binaries(self) -> frozenset[str]:
        return frozenset(_native_key(m) for m in self.members if _is_native(m))

    @property
    def top_level(self) -> frozenset[str]:
        return frozenset(t for m in self.members if (t := _top_level(m, self.kind)))

    @property
    def model_files(self) -> frozenset[str]:
        return frozenset(m for m in self.members if _is_model_file(m, self.kind))


def snapshot(
    *,
    filename: str,
    kind: str | None,
    size: int,
    core_metadata: bytes | None,
    members: Iterable[ListedMember] = (),
    members_truncated: bool = False,
    entry_points: Iterable[tuple[str, str, str]] = (),
    publishers: tuple[Publisher, ...] | None = None,
) -> Snapshot:
    names = [m.name for m in members]
    emails: set[str] = set()
    hosts: dict[str, str] = {}
    dependencies: dict[NormalizedName, str] = {}
    if core_metadata:
        raw, _unparsed = parse_email(core_metadata)
        for key in ("author_email", "maintainer_email"):
            value = raw.get(key)
            if isinstance(value, str):
                emails.update(_addresses(value))
        links: list[tuple[str, str]] = []
        for key, label in (("home_page", "Home-page"), ("download_url", "Download-URL")):
            value = raw.get(key)
            if isinstance(value, str) and value.strip():
                links.append((label, value))
        links.extend((f"Project-URL {k}", v) for k, v in (raw.get("project_urls") or {}).items())
        for label, url in links:
            host = _host(url)
            if host:
                hosts.setdefault(host, label)
        for text in raw.get("requires_dist") or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue  # metadata checks report it
            dependencies.setdefault(canonicalize_name(requirement.name), text)
    return Snapshot(
        filename=filename,
        kind=kind,
        size=size,
        emails=frozenset(emails),
        url_hosts=hosts,
        dependencies=dependencies,
        scripts=frozenset(name for group, name, _ in entry_points if group in SCRIPT_GROUPS),
        members=frozenset(names),
        member_count=len(names),
        members_known=bool(names) and not members_truncated,
        publishers=publishers,
    )


def snapshot_of(
    inspection: Inspection, publishers: tuple[Publisher, ...] | None = None
) -> Snapshot:
    return snapshot(
        filename=inspection.filename,
        kind=inspection.kind,
        size=inspection.size,
        core_metadata=inspection.core_metadata,
        members=inspection.members,
        members_truncated=inspection.members_truncated,
        entry_points=inspection.entry_points,
        publishers=publishers,
    )


@dataclass(frozen=True)
class DriftContext:
    """What the mirror knows beyond the two files."""

    # Projects the mirror has seen, and well-known ones (normalized): a new dependency
    # outside it is unknown.
    known_projects: frozenset[str] | None = None
    # Projects whose first upstream upload is recent (created in the last 30 days).
    young_projects: frozenset[str] = frozenset()


DriftCheck = Callable[[Snapshot, Snapshot, DriftContext], list[Finding]]


def new_email(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """A new author or maintainer e-mail address; a new e-mail domain is worse (an
    attacker who takes over an account often changes the contact to one they control)."""
    if not previous.emails:
        return []
    old_domains = {_domain(a) for a in previous.emails}
    findings = []
    for address in sorted(current.emails - previous.emails):
        if _domain(address) not in old_domains:
            findings.append(
                Finding(
                    DRIFT_NEW_EMAIL_DOMAIN,
                    Severity.MEDIUM,
                    "The author/maintainer e-mail moved to a domain earlier releases never used.",
                    f"{address} (before: {', '.join(sorted(previous.emails))})",
                )
            )
        else:
            findings.append(
                Finding(
                    DRIFT_NEW_EMAIL,
                    Severity.LOW,
                    "A new author/maintainer e-mail address appears.",
                    f"{address} (before: {', '.join(sorted(previous.emails))})",
                )
            )
    return findings


def url_host(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """A project link (Home-page, Project-URL, Download-URL) now points at a host that
    no earlier link used."""
    if not previous.url_hosts:
        return []
    return [
        Finding(
            DRIFT_URL_HOST,
            Severity.MEDIUM,
            "A project link points at a host earlier releases never linked to.",
            f"{label}: {host} (before: {', '.join(sorted(previous.url_hosts))})",
        )
        for host, label in sorted(current.url_hosts.items())
        if host not in previous.url_hosts
    ]


def new_dependency(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """A dependency the last approved release did not have; one on a project the mirror
    has never seen, or one created upstream in the last 30 days, is a typical payload
    carrier (the malicious code sits in the dependency)."""
    findings = []
    for name in sorted(set(current.dependencies) - set(previous.dependencies)):
        raw = current.dependencies[name]
        unknown = context.known_projects is not None and name not in context.known_projects
        if unknown or name in context.young_projects:
            why = "the mirror has never seen it" if unknown else "it was created upstream recently"
            findings.append(
                Finding(
                    DRIFT_NEW_UNKNOWN_DEPENDENCY,
                    Severity.HIGH,
                    f"A new dependency appears, and {why}.",
                    raw,
                )
            )
        else:
            findings.append(
                Finding(DRIFT_NEW_DEPENDENCY, Severity.LOW, "A new dependency appears.", raw)
            )
    return findings


def new_script(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """A new console or GUI script: a command that runs the package's code when typed."""
    added = sorted(current.scripts - previous.scripts)
    if not added:
        return []
    return [
        Finding(
            DRIFT_NEW_SCRIPT,
            Severity.MEDIUM,
            "New commands are installed that earlier releases did not have.",
            _listing(added),
        )
    ]


def new_pth(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """A new ``.pth`` file: code that runs at every interpreter start."""
    if not (previous.members_known and current.members_known):
        return []
    added = sorted(current.pth_files - previous.pth_files)
    if not added:
        return []
    return [
        Finding(
            DRIFT_NEW_PTH,
            Severity.HIGH,
            "A new .pth start-up file appears: it runs at every Python start.",
            _listing(added),
            added[0],
        )
    ]


def new_native(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """New native binaries (compared by name without version or ABI tags)."""
    if not (previous.members_known and current.members_known):
        return []
    added = sorted(current.native_binaries - previous.native_binaries)
    if not added:
        return []
    return [
        Finding(
            DRIFT_NEW_NATIVE,
            Severity.MEDIUM,
            "New native binaries appear that earlier releases did not ship.",
            _listing(added),
        )
    ]


def new_top_level(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """A new top-level package or module: a new importable name."""
    if not (previous.members_known and current.members_known):
        return []
    added = sorted(current.top_level - previous.top_level)
    if not added:
        return []
    return [
        Finding(
            DRIFT_NEW_TOP_LEVEL,
            Severity.MEDIUM,
            "New top-level packages or modules appear.",
            _listing(added),
        )
    ]


def new_model_file(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """New pickle or model files (where deserialisation payloads hide)."""
    if not (previous.members_known and current.members_known):
        return []
    added = sorted(current.model_files - previous.model_files)
    if not added:
        return []
    return [
        Finding(
            DRIFT_NEW_MODEL_FILE,
            Severity.MEDIUM,
            "New pickle or model files appear.",
            _listing(added),
            added[0],
        )
    ]


def size_jump(previous: Snapshot, current: Snapshot, context: DriftContext) -> list[Finding]:
    """A large jump in size or member count."""
    findings = []
    grew = current.size - previous.size
    ratio = current.size / previous.size if previous.size else 0.0
    if ratio >= SIZE_JUMP_RATIO and grew >= SIZE_JUMP_MIN_BYTES:
        findings.append(
            Finding(
                DRIFT_SIZE_JUMP,
                Severity.MEDIUM,
                "The file is several times larger than the last approved release.",
                f"{previous.size:,} → {current.size:,} bytes",
            )
        )
    counted = previous.members_known and current.members_known and previous.member_count
    more = current.member_count - previous.member_count
    if (
        counted
        and current.member_count / previous.member_count >= MEMBER_JUMP_RATIO
        and more >= MEMBER_JUMP_MIN
    ):
        findings.append(
            Finding(
                DRIFT_SIZE_JUMP,
                Severity.MEDIUM,
                "The file has several times more members than the last approved one.",
                f"{previous.member_count:,} → {current.member_count:,} members",
            )
        )
    return findings


def provenance_missing(
    previous: Snapshot, current: Snapshot, context: DriftContext
) -> list[Finding]:
    """The last approved release had provenance (PEP 740) and this file has none: a
    release uploaded by hand with stolen credentials cannot carry the trusted
    publisher's attestation."""
    if previous.publishers is None or current.publishers is not None:
        return []
    return [
        Finding(
            PROVENANCE_MISSING,
            Severity.HIGH,
            "Earlier releases were attested by a trusted publisher; this file has no provenance.",
            "before: " + ", ".join(p.describe() for p in previous.publishers),
        )
    ]


def provenance_publisher_changed(
    previous: Snapshot, current: Snapshot, context: DriftContext
) -> list[Finding]:
    """The attested publisher (repository or workflow) differs from the last approved
    release's."""
    if not previous.publishers or not current.publishers:
        return []
    before = {p.identity() for p in previous.publishers}
    changed = [p for p in current.publishers if p.identity() not in before]
    if not changed:
        return []
    return [
        Finding(
            PROVENANCE_PUBLISHER_CHANGED,
            Severity.HIGH,
            "The file was attested by a different publisher than earlier releases.",
            f"now: {', '.join(p.describe() for p in changed)}; before: "
            + ", ".join(p.describe() for p in previous.publishers),
        )
    ]


DRIFT_CHECKS: Final[list[tuple[str, DriftCheck]]] = [
    (DRIFT_NEW_EMAIL, new_email),
    (DRIFT_URL_HOST, url_host),
    (DRIFT_NEW_DEPENDENCY, new_dependency),
    (DRIFT_NEW_SCRIPT, new_script),
    (DRIFT_NEW_PTH, new_pth),
    (DRIFT_NEW_NATIVE, new_native),
    (DRIFT_NEW_TOP_LEVEL, new_top_level),
    (DRIFT_NEW_MODEL_FILE, new_model_file),
    (DRIFT_SIZE_JUMP, size_jump),
    (PROVENANCE_MISSING, provenance_missing),
    (PROVENANCE_PUBLISHER_CHANGED, provenance_publisher_changed),
]

# The graver form of a check above, reported by the same function under its own id so
# policy can rate it apart.
DRIFT_GRAVER_IDS: Final[dict[str, str]] = {
    DRIFT_NEW_EMAIL_DOMAIN: "An author/maintainer email at a domain no earlier release used.",
    DRIFT_NEW_UNKNOWN_DEPENDENCY: (
        "A new dependency on a project the mirror has never seen, or one created upstream "
        "in the last 30 days."
    ),
}

DRIFT_CHECK_IDS: Final = frozenset(
    {check_id for check_id, _ in DRIFT_CHECKS} | set(DRIFT_GRAVER_IDS)
)


def drift_findings(
    previous: Snapshot, current: Snapshot, context: DriftContext | None = None
) -> list[Finding]:
    context = context or DriftContext()
    findings: list[Finding] = []
    for _check_id, check in DRIFT_CHECKS:
        findings.extend(check(previous, current, context))
    return findings


# ---------------------------------------------------------------- member classification


def _addresses(value: str) -> set[str]:
    return {address.lower() for _name, address in email.utils.getaddresses([value]) if address}


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def _host(url: str) -> str | None:
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _strip_sdist_root(name: str, kind: str | None) -> str:
    # An sdist's members all sit under "<name>-<version>/": compare what is inside.
    if kind == "sdist":
        return name.partition("/")[2]
    return name


def _top_level(name: str, kind: str | None) -> str | None:
    path = _strip_sdist_root(name, kind).lstrip("/")
    if not path:
        return None
    if kind == "sdist":
        # Source layouts put packages under src/; setup files and docs are not imports.
        if path.startswith("src/"):
            path = path[4:]
        elif "/" not in path:
            return None
    head, slash, _rest = path.partition("/")
    if head.endswith((".dist-info", ".data", ".egg-info")) or head in {"tests", "docs"}:
        return None
    if not slash:
        if not head.endswith(".py") and not _is_native(head):
            return None
        return head.split(".", 1)[0]
    return head


def _is_startup_pth(name: str, kind: str | None) -> bool:
    path = _strip_sdist_root(name, kind)
    # site.py only reads .pth files at the top of site-packages (a wheel's root, or its
    # .data/purelib|platlib). Deeper .pth files are model weights or data.
    if not path.endswith(".pth"):
        return False
    parts = path.split("/")
    return len(parts) == 1 or (
        len(parts) == 3 and parts[0].endswith(".data") and parts[1] in {"purelib", "platlib"}
    )


def _is_native(name: str) -> bool:
    base = posixpath.basename(name)
    suffix = posixpath.splitext(base)[1].lower()
    # .bin is too often data (model weights) to count as a binary by its name alone.
    return (bool(suffix) and suffix in NATIVE_SUFFIXES and suffix != ".bin") or ".so." in base


def _native_key(name: str) -> str:
    # "_speedups.cpython-312-x86_64-linux-gnu.so" and "_speedups.cp313-win_amd64.pyd"
    # are the same binary for another interpreter: compare the stem only.
    directory, base = posixpath.split(name)
    return posixpath.join(directory, base.split(".", 1)[0])


def _is_model_file(name: str, kind: str | None) -> bool:
    lower = name.lower()
    return lower.endswith(MODEL_SUFFIXES) and not _is_startup_pth(name, kind)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")
