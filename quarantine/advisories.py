"""OSV advisories (https://ossf.github.io/osv-schema/): which PyPI releases a record names,
whether it describes malicious code or an ordinary vulnerability, and the finding it
becomes. Pure: records come in as parsed JSON, nothing here reads files or the network.

Names are compared as ``canonicalize_name`` gives them and versions as
``packaging.version.Version``: an explicit ``versions`` list, and ``ECOSYSTEM`` (or
``SEMVER``) ranges evaluated as the schema says: events sorted by version, ``introduced``
switches "affected" on, ``fixed`` (at that version) and ``last_affected`` (after it)
switch it off, ``limit`` caps the range; ``introduced: "0"`` is before every version.
``GIT`` ranges name commits, which a wheel does not carry, and are skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from quarantine.checks import ADVISORY_MALICIOUS, ADVISORY_VULNERABILITY
from quarantine.findings import Finding, Severity

ECOSYSTEM: Final = "PyPI"
MALICIOUS_PREFIX: Final = "MAL-"
# Summaries and details are shown to reviewers and in alerts; longer text is cut.
MAX_SUMMARY_CHARS: Final = 300
INTRODUCED_ZERO: Final = "0"  # "from the very first version", pre-releases of 0 included


# A re-check compares every file with every advisory of its project: parse each bound once.
_version = lru_cache(maxsize=65536)(Version)


class OsvError(ValueError):
    """A record that is not OSV (no id, no modified time, not an object)."""


class Kind(StrEnum):
    MALICIOUS = "malicious"
    VULNERABILITY = "vulnerability"


# ---------------------------------------------------------------- version ranges

_EVENT_KINDS = ("introduced", "last_affected", "fixed", "limit")
# At one version, "introduced" is applied before "last_affected" and "fixed", so that
# introduced=X, fixed=X is empty and introduced=X, last_affected=X is exactly X.
_EVENT_ORDER = {kind: position for position, kind in enumerate(_EVENT_KINDS)}
_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER"})


@dataclass(frozen=True)
class VersionRange:
    """One OSV range: ``(event, version)`` pairs, versions normalized (or ``"0"``)."""

    events: tuple[tuple[str, str], ...]

    def contains(self, version: Version) -> bool:
        limits = [_version(v) for kind, v in self.events if kind == "limit"]
        if any(version >= limit for limit in limits):
            return False
        affected = False
        for kind, text in self._sorted():
            if kind == "introduced":
                if text == INTRODUCED_ZERO or version >= _version(text):
                    affected = True
            elif kind == "fixed":
                if version >= _version(text):
                    affected = False
            elif kind == "last_affected" and version > _version(text):
                affected = False
        return affected

    def _sorted(self) -> list[tuple[str, str]]:
        def key(event: tuple[str, str]) -> tuple[int, Version, int]:
            kind, text = event
            if kind == "introduced" and text == INTRODUCED_ZERO:
                return (0, _version("0"), 0)
            return (1, _version(text), _EVENT_ORDER[kind])

        return sorted((e for e in self.events if e[0] != "limit"), key=key)


@dataclass(frozen=True)
class AffectedPackage:
    """What one advisory says about one PyPI project."""

    name: NormalizedName
    versions: tuple[str, ...] = ()  # normalized str(Version)
    ranges: tuple[VersionRange, ...] = ()

    def affects(self, version: Version) -> bool:
        if any(_version(listed) == version for listed in self.versions):
            return True
        return any(r.contains(version) for r in self.ranges)

    def to_json(self) -> str:
        return json.dumps(
            {"versions": list(self.versions), "ranges": [list(r.events) for r in self.ranges]}
        )

    @classmethod
    def from_json(cls, name: str, text: str) -> AffectedPackage:
        data = json.loads(text)
        return cls(
            name=canonicalize_name(name),
            versions=tuple(data["versions"]),
            ranges=tuple(
                VersionRange(tuple((kind, value) for kind, value in events))
                for events in data["ranges"]
            ),
        )


# ---------------------------------------------------------------- advisories


@dataclass(frozen=True)
class Advisory:
    id: str
    modified: datetime
    kind: Kind
    severity: Severity
    summary: str
    aliases: tuple[str, ...]
    packages: tuple[AffectedPackage, ...]
    # Why a record without a MAL- id counts as malicious (see describes_compromise).
    malicious_because: str | None = None

    def affects(self, project: str, version: Version) -> bool:
        name = canonicalize_name(project)
        return any(p.name == name and p.affects(version) for p in self.packages)

    @property
    def label(self) -> str:
        """``MAL-2025-1 (malicious): Malicious code in evil (PyPI)`` for audit rows."""
        return f"{self.id} ({self.kind.value}): {self.summary}"


@dataclass(frozen=True)
class Parsed:
    """One record read: an advisory about PyPI projects, a withdrawal, or nothing for us."""

    id: str
    modified: datetime
    advisory: Advisory | None  # None: withdrawn, or no PyPI package named
    withdrawn: bool
    invalid_versions: int  # versions (or ranges containing one) that did not parse


def parse_osv(data: Any) -> Parsed:
    """Read one OSV record (a parsed JSON object). Raises OsvError when it is not one."""
    if not isinstance(data, Mapping):
        raise OsvError(f"expected a JSON object, got {type(data).__name__}")
    record_id = data.get("id")
    if not isinstance(record_id, str) or not record_id.strip():
        raise OsvError("no 'id'")
    record_id = record_id.strip()
    modified = parse_time(data.get("modified"))
    if modified is None:
        raise OsvError(f"{record_id}: no valid 'modified' time")
    if data.get("withdrawn"):
        return Parsed(record_id, modified, None, withdrawn=True, invalid_versions=0)
    invalid = 0
    packages: list[AffectedPackage] = []
    for entry in _list(data.get("affected")):
        if not isinstance(entry, Mapping):
            continue
        package = entry.get("package")
        if not isinstance(package, Mapping) or not _is_pypi(package.get("ecosystem")):
            continue
        name = _project_name(package.get("name"))
        if name is None:
            continue
        versions, bad_versions = _versions(entry.get("versions"))
        ranges, bad_ranges = _ranges(entry.get("ranges"))
        invalid += bad_versions + bad_ranges
        if versions or ranges:
            packages.append(AffectedPackage(name, versions, ranges))
    if not packages:
        return Parsed(record_id, modified, None, withdrawn=False, invalid_versions=invalid)
    aliases = tuple(a for a in _list(data.get("aliases")) if isinstance(a, str))
    summary = _summary(data)
    because = None if record_id.startswith(MALICIOUS_PREFIX) else describes_compromise(data)
    malicious = record_id.startswith(MALICIOUS_PREFIX) or because is not None
    advisory = Advisory(
        id=record_id,
        modified=modified,
        kind=Kind.MALICIOUS if malicious else Kind.VULNERABILITY,
        severity=Severity.CRITICAL if malicious else severity_of(data),
        summary=summary,
        aliases=aliases,
        packages=tuple(packages),
        malicious_because=because,
    )
    return Parsed(record_id, modified, advisory, withdrawn=False, invalid_versions=invalid)


def _is_pypi(ecosystem: Any) -> bool:
    return isinstance(ecosystem, str) and ecosystem.strip().casefold() == ECOSYSTEM.casefold()


def _project_name(value: Any) -> NormalizedName | None:
    """A record's package name, normalized; None unless it is a valid PyPI name. Only
    validation keeps a name like ``\u212aeras`` (a Kelvin sign, which lower-cases to
    ``k``) from normalizing to ``keras`` and revoking a project the record never named."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return canonicalize_name(value.strip(), validate=True)
    except InvalidName:
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _versions(value: Any) -> tuple[tuple[str, ...], int]:
    versions: list[str] = []
    invalid = 0
    for item in _list(value):
        try:
            versions.append(str(Version(str(item))))
        except InvalidVersion:
            invalid += 1
    return tuple(dict.fromkeys(versions)), invalid


def _ranges(value: Any) -> tuple[tuple[VersionRange, ...], int]:
    """ECOSYSTEM/SEMVER ranges; one with a version that does not parse is dropped whole
    (and counted): dropping only its ``fixed`` would stretch it over every later release."""
    ranges: list[VersionRange] = []
    invalid = 0
    for item in _list(value):
        if not isinstance(item, Mapping) or item.get("type") not in _RANGE_TYPES:
            continue
        events: list[tuple[str, str]] = []
        broken = False
        for event in _list(item.get("events")):
            if not isinstance(event, Mapping):
                continue
            for kind in _EVENT_KINDS:
                if kind not in event:
                    continue
                text = str(event[kind]).strip()
                if kind == "introduced" and text == INTRODUCED_ZERO:
                    events.append((kind, INTRODUCED_ZERO))
                elif kind == "limit" and text == "*":
                    continue  # "no limit"
                else:
                    try:
                        events.append((kind, str(Version(text))))
                    except InvalidVersion:
                        broken = True
        if broken:
            invalid += 1
        elif any(kind == "introduced" for kind, _ in events):
            ranges.append(VersionRange(tuple(events)))
    return tuple(ranges), invalid


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 as OSV writes it (``Z``, sometimes nanoseconds), as an aware UTC time."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _summary(data: Mapping[str, Any]) -> str:
    text = data.get("summary") or ""
    if not isinstance(text, str) or not text.strip():
        details = data.get("details")
        text = details.strip().split("\n", 1)[0] if isinstance(details, str) else ""
    text = " ".join(text.split()) or "(no summary)"
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[: MAX_SUMMARY_CHARS - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------------------------------------------------------- malicious or not

# CWE ids for planted malicious code (GitHub's malware advisories carry CWE-506).
MALICIOUS_CWES: Final = frozenset(
    {"CWE-506", "CWE-507", "CWE-508", "CWE-509", "CWE-510", "CWE-511", "CWE-512"}
)

_RELEASE_WORDS = r"(?:releases?|versions?|packages?|wheels?|uploads?|builds?|distributions?)"
# Statements that the release itself is bad, as opposed to a flaw an attacker can exploit
# ("allows attackers to execute malicious code", "a malicious version string", "installing
# a malicious package"): each phrase names what the release contains or what happened to it.
_COMPROMISE_PHRASES: Final = tuple(
    re.compile(pattern)
    for pattern in (
        r"\bmalicious code in\b",
        r"\b(?:contains?|contained|includes?|included|ships?|shipped|embeds?|embedded"
        r"|bundles?|bundled) (?:an? |the )?"
        r"(?:malicious code|malware|backdoor|credential[- ]?steal)",
        # "malicious versions were published", not "a malicious version string" or "any
        # malicious release could": hypotheticals take an article.
        r"(?<!\ba )(?<!\ban )(?<!\bany )\bmalicious (?:versions?|releases?)\b"
        r"(?! (?:string|number|specifier|header|field|value|identifier|constraint|tag|name))",
        rf"\bcompromised {_RELEASE_WORDS}\b",
        rf"\b{_RELEASE_WORDS} (?:\S+ ){{0,6}}(?:was|were|has been|have been|had been)"
        r" (?:compromised|backdoored|trojani[sz]ed|hijacked)\b",
        r"\bbackdoored\b",
        r"\bcredential[- ]?steal(?:er|ers|ing)\b",
        r"\binfo[- ]?stealer\b",
        r"\bsupply[- ]chain (?:attack|compromise)\b",
        r"\b(?:published|uploaded|pushed) (?:to pypi )?by (?:an? )?(?:attacker|threat actor)\b",
    )
)
# Bare words that only the summary line may carry: in details they too often describe what
# a flaw lets an attacker do ("could be used to install malware").
_SUMMARY_WORDS: Final = (re.compile(r"\bmalware\b"), re.compile(r"\bbackdoor\b"))


def describes_compromise(record: Mapping[str, Any]) -> str | None:
    """Whether a record that is not a ``MAL-`` record still describes malicious code or a
    compromised release (the compromised LiteLLM and telnyx releases got PYSEC ids): a
    ``MAL-`` alias, malicious-packages origins or a malicious-code CWE in
    ``database_specific``, or a phrase that says the release carries malware. Returns
    what matched (for the audit row), or None."""
    for alias in _list(record.get("aliases")):
        if isinstance(alias, str) and alias.startswith(MALICIOUS_PREFIX):
            return f"has the alias {alias}"
    specific = record.get("database_specific")
    if isinstance(specific, Mapping):
        if "malicious-packages-origins" in specific:
            return "has malicious-packages origins"
        cwes = {str(c).upper() for c in _list(specific.get("cwe_ids"))}
        if cwes & MALICIOUS_CWES:
            return f"names {', '.join(sorted(cwes & MALICIOUS_CWES))} (malicious code)"
    summary = _plain(record.get("summary"))
    details = _plain(record.get("details"))
    for pattern in _COMPROMISE_PHRASES:
        for text in (summary, details):
            match = pattern.search(text)
            if match:
                return f"says {match.group(0)!r}"
    for pattern in _SUMMARY_WORDS:
        match = pattern.search(summary)
        if match:
            return f"says {match.group(0)!r}"
    return None


def _plain(value: Any) -> str:
    return " ".join(value.lower().split()) if isinstance(value, str) else ""


# ---------------------------------------------------------------- severity

_WORDS: Final = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "important": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.INFO,
    "none": Severity.INFO,
}
DEFAULT_SEVERITY: Final = Severity.MEDIUM


def severity_of(record: Mapping[str, Any]) -> Severity:
    """A vulnerability's severity: the database's own rating (GitHub's
    ``database_specific.severity``), else the worst CVSS vector in ``severity`` scored by
    the ``cvss`` library, else medium."""
    for holder in _severity_holders(record):
        word = holder.get("severity")
        if isinstance(word, str) and word.strip().lower() in _WORDS:
            return _WORDS[word.strip().lower()]
    scored = [s for s in (_cvss_severity(item) for item in _cvss_items(record)) if s is not None]
    if scored:
        return max(scored, key=lambda s: s.rank)
    return DEFAULT_SEVERITY


def _severity_holders(record: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    specific = record.get("database_specific")
    if isinstance(specific, Mapping):
        yield specific
    for entry in _list(record.get("affected")):
        if isinstance(entry, Mapping) and _is_pypi((entry.get("package") or {}).get("ecosystem")):
            for key in ("database_specific", "ecosystem_specific"):
                if isinstance(entry.get(key), Mapping):
                    yield entry[key]


def _cvss_items(record: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    yield from (s for s in _list(record.get("severity")) if isinstance(s, Mapping))
    for entry in _list(record.get("affected")):
        if isinstance(entry, Mapping) and _is_pypi((entry.get("package") or {}).get("ecosystem")):
            yield from (s for s in _list(entry.get("severity")) if isinstance(s, Mapping))


def _cvss_severity(item: Mapping[str, Any]) -> Severity | None:
    from cvss import CVSS2, CVSS3, CVSS4, CVSSError

    kind, score = item.get("type"), item.get("score")
    if not isinstance(score, str):
        return None
    calculator = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}.get(str(kind))
    if calculator is None:
        return None
    try:
        base = float(calculator(score.strip()).base_score)
    except (CVSSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return severity_for_score(base)


def severity_for_score(score: float) -> Severity:
    """CVSS qualitative ratings: 9.0+ critical, 7.0+ high, 4.0+ medium, 0.1+ low."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.INFO


# ---------------------------------------------------------------- findings


def advisory_finding(advisory: Advisory, project: str, version: str) -> Finding:
    """The finding an advisory becomes on a file of ``project`` at ``version``."""
    aliases = f"; aliases {', '.join(advisory.aliases[:10])}" if advisory.aliases else ""
    because = ""
    if advisory.malicious_because:
        because = f"; malicious because it {advisory.malicious_because}"
    evidence = (
        f"{advisory.id} (modified {advisory.modified.isoformat()}) names "
        f"{project} {version}{aliases}{because}"
    )
    if advisory.kind is Kind.MALICIOUS:
        return Finding(
            ADVISORY_MALICIOUS,
            Severity.CRITICAL,
            f"Advisory {advisory.id} reports this release as malicious: {advisory.summary}",
            evidence,
        )
    return Finding(
        ADVISORY_VULNERABILITY,
        advisory.severity,
        f"Advisory {advisory.id} ({advisory.severity.value}) affects this release: "
        f"{advisory.summary}",
        evidence,
    )


def distinct(
    advisories: Iterable[Advisory], acted: Iterable[tuple[str, Kind]] = ()
) -> list[Advisory]:
    """``advisories`` with one record per flaw: databases publish the same one under
    several ids (a GHSA and a PYSEC, a PYSEC aliasing a MAL), and it must act once. An
    advisory is left out when its id or an alias is the id or an alias of one kept
    before it, or in ``acted`` (``(id or alias, kind)`` of what already acted on the
    file), of the same kind: a vulnerability turning out malicious still acts."""
    taken = set(acted)
    kept = []
    for advisory in advisories:
        names = [(name, advisory.kind) for name in (advisory.id, *advisory.aliases)]
        if any(name in taken for name in names):
            continue
        taken.update(names)
        kept.append(advisory)
    return kept


def matching(advisories: Sequence[Advisory], project: str, version: str) -> list[Advisory]:
    """The advisories naming ``project`` at ``version`` (a version that does not parse
    matches none)."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return []
    return [a for a in advisories if a.affects(project, parsed)]
