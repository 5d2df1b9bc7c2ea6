"""The core metadata (wheel METADATA, sdist PKG-INFO): present where installers look for
it, about the file it ships in, valid by packaging's reading of the spec, of a sane size,
and depending only on what an index can vouch for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from quarantine.artifact import Artifact, CoreMetadata, KiB, MiB, safe_text
from quarantine.findings import CheckContext, Finding, Severity

METADATA_MISSING: Final = "metadata-missing"
METADATA_NAME_MISMATCH: Final = "metadata-name-mismatch"
METADATA_VERSION_MISMATCH: Final = "metadata-version-mismatch"
METADATA_INVALID: Final = "metadata-invalid"
METADATA_VERSION_UNKNOWN: Final = "metadata-version-unknown"
METADATA_OVERSIZED: Final = "metadata-oversized"
REQUIRES_DIST_DIRECT_URL: Final = "requires-dist-direct-url"
DEPENDENCY_NOT_MIRRORED: Final = "dependency-not-mirrored"

# One hostile METADATA can carry thousands of bad fields; a reviewer needs the first few.
MAX_INVALID_FINDINGS: Final = 20
MAX_EVIDENCE: Final = 500

# Fields installers act on when they resolve and install (packaging's raw names). An error
# in one of these can make tools disagree about what the file is or what it pulls in, so
# it holds the file (medium). Errors in the other fields (summary, URLs, license, ...)
# change nothing an installer does and only warn (low).
INSTALLER_FIELDS: Final = frozenset(
    {"metadata_version", "name", "version", "requires_dist", "requires_python", "provides_extra"}
)


def _label(artifact: Artifact) -> str:
    return "PKG-INFO" if artifact.kind == "sdist" else "METADATA"


def metadata_missing(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """No core metadata where installers read it: a wheel without exactly one top-level
    .dist-info matching its filename, or without METADATA in it; an sdist without one
    top-level directory holding PKG-INFO; or that file over the size limit."""
    if artifact.error is not None or artifact.kind is None:
        return []  # archive-unreadable / filename-invalid say why
    error = artifact.core_metadata_error
    if error is None:
        return []
    return [
        Finding(
            METADATA_MISSING,
            Severity.HIGH,
            f"The {artifact.kind} has no usable {_label(artifact)} where installers read it.",
            error.message,
            error.member,
        )
    ]


def metadata_name_mismatch(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The metadata's Name (normalized) is not the project the filename names."""
    core = artifact.core_metadata
    if core is None or core.name is None or artifact.name is None:
        return []
    if canonicalize_name(core.name) == artifact.name:
        return []
    return [
        Finding(
            METADATA_NAME_MISMATCH,
            Severity.HIGH,
            f"{_label(artifact)} names a different project than the filename does.",
            _clip(f"Name: {core.name} (filename: {artifact.name})"),
            core.path,
        )
    ]


def metadata_version_mismatch(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The metadata's Version is not the filename's version (compared as versions, so
    ``1.0`` equals ``1.0.0``). An unparseable Version is metadata-invalid's to report."""
    core = artifact.core_metadata
    if core is None or core.version is None or artifact.version is None:
        return []
    try:
        if Version(core.version) == artifact.version:
            return []
    except InvalidVersion:
        return []
    return [
        Finding(
            METADATA_VERSION_MISMATCH,
            Severity.HIGH,
            f"{_label(artifact)} gives a different version than the filename does.",
            _clip(f"Version: {core.version} (filename: {artifact.version})"),
            core.path,
        )
    ]


def metadata_invalid(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """packaging's validation errors for the metadata, one finding each (the first
    MAX_INVALID_FINDINGS, then one summing up the rest).

    Medium for fields installers act on (INSTALLER_FIELDS) and for metadata packaging
    cannot parse at all; low for the rest, and for three kinds of error that real,
    legitimate releases carry:

    - a field newer than the declared Metadata-Version: setuptools wrote License-File
      under Metadata-Version 2.1 for years (six 1.17.0, wheel and sdist, in the corpus);
      installers read the field regardless of the version label;
    - a field packaging does not recognize: installers ignore unknown fields.

    Errors about Metadata-Version itself are metadata-version-unknown's to grade.
    """
    core = artifact.core_metadata
    if core is None:
        return []
    graded = [
        _grade(artifact, core, error)
        for error in core.errors
        if _field_of(error) != "metadata_version"
    ]
    findings = graded[:MAX_INVALID_FINDINGS]
    rest = graded[MAX_INVALID_FINDINGS:]
    if rest:
        worst = max((finding.severity for finding in rest), key=lambda severity: severity.rank)
        findings.append(
            Finding(
                METADATA_INVALID,
                worst,
                f"{_label(artifact)} has {len(rest)} more invalid fields.",
                _clip("; ".join(finding.evidence for finding in rest)),
                core.path,
            )
        )
    return findings


def _grade(artifact: Artifact, core: CoreMetadata, error: Exception) -> Finding:
    label = _label(artifact)
    raw_field = getattr(error, "field", None)
    text = safe_text(str(error))
    if not isinstance(raw_field, str):
        return Finding(
            METADATA_INVALID,
            Severity.MEDIUM,
            f"packaging cannot parse {label}, so installers may read it differently.",
            _clip(f"{type(error).__name__}: {text}"),
            core.path,
        )
    field = _field_of(error)
    evidence = _clip(f"{safe_text(raw_field)}: {text}")
    if "introduced in metadata version" in text:
        severity, message = (
            Severity.LOW,
            f"{label} uses a field newer than its declared Metadata-Version.",
        )
    elif text.startswith("unrecognized field"):
        severity, message = Severity.LOW, f"{label} has a field packaging does not recognize."
    elif field in INSTALLER_FIELDS:
        severity, message = (
            Severity.MEDIUM,
            f"{label} has an invalid {safe_text(raw_field)} field, which installers act on.",
        )
    else:
        severity, message = (
            Severity.LOW,
            f"{label} has an invalid {safe_text(raw_field)} field (installers ignore it).",
        )
    return Finding(METADATA_INVALID, severity, message, evidence, core.path)


# ---------------------------------------------------------------- Metadata-Version

# The spec has consumers fail on a Metadata-Version whose major they do not know, and
# only warn on a newer minor one.
KNOWN_METADATA_MAJORS: Final = frozenset({1, 2})
# The newest Metadata-Version every packaging this project supports (>= 24.2) knows.
# A 2.x above it is a newer minor: low. A 2.x at or below it that packaging still
# rejects is no version of the spec at all: medium.
NEWEST_KNOWN_METADATA_VERSION: Final = Version("2.4")
# Not spec versions, but written by real tools: 2.0 (the withdrawn PEP 426) by
# bdist_wheel before wheel 0.31 (2018); 5 of 966 real wheels in the benchmark carry it.
LEGACY_METADATA_VERSIONS: Final = frozenset({"2.0"})


def metadata_version_unknown(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A Metadata-Version packaging does not know: missing, unparseable or of a major
    version the spec does not define (high: the spec has installers refuse it), no
    version of the spec at all (medium), or a newer 2.x minor (low: tools accept it).

    Legacy values real tools wrote (LEGACY_METADATA_VERSIONS) pass.
    """
    core = artifact.core_metadata
    if core is None or not any(_field_of(e) == "metadata_version" for e in core.errors):
        return []
    value = core.metadata_version
    if value is not None and value.strip() in LEGACY_METADATA_VERSIONS:
        return []
    label = _label(artifact)
    try:
        version = None if value is None else Version(value)
    except InvalidVersion:
        version = None
    if version is None or version.major not in KNOWN_METADATA_MAJORS:
        severity = Severity.HIGH
        message = f"{label} declares no Metadata-Version of a major version installers know."
    elif version.major == NEWEST_KNOWN_METADATA_VERSION.major and (
        version > NEWEST_KNOWN_METADATA_VERSION
    ):
        severity = Severity.LOW
        message = f"{label} declares a Metadata-Version newer than this packaging knows."
    else:
        severity = Severity.MEDIUM
        message = f"{label} declares a Metadata-Version that is no version of the spec."
    shown = "(missing)" if value is None else safe_text(value)
    return [
        Finding(
            METADATA_VERSION_UNKNOWN,
            severity,
            message,
            _clip(f"Metadata-Version: {shown}"),
            core.path,
        )
    ]


# ---------------------------------------------------------------- size

# Largest values among the 966 real wheels of the benchmark: Description 230 KB
# (mujoco), License 75 KB (matplotlib's full license texts), Summary 488 characters
# (PyPI refuses more than 512), 457 Requires-Dist (transformers). The limits leave
# room for several times that; a value past them serves only to bury something.
MAX_DESCRIPTION_BYTES: Final = 1 * MiB
MAX_SUMMARY_CHARS: Final = 1024
MAX_FIELD_BYTES: Final = 256 * KiB  # one value of any other field
MAX_FIELD_VALUES: Final = 1000  # uses of one multiple-use field (Requires-Dist, ...)


def metadata_oversized(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Metadata fields far larger than real releases have: a Description over 1 MiB, a
    Summary over 1,024 characters, any other value over 256 KiB, or one field used over
    1,000 times (thousands of Requires-Dist). Medium: such bulk hides what it carries
    from a reviewer and slows every tool that reads it.

    The limits are MAX_DESCRIPTION_BYTES, MAX_SUMMARY_CHARS, MAX_FIELD_BYTES and
    MAX_FIELD_VALUES.
    """
    core = artifact.core_metadata
    if core is None:
        return []
    label = _label(artifact)
    findings = []
    for field, values in _fields(core):
        header = field.replace("_", "-")
        if len(values) > MAX_FIELD_VALUES:
            findings.append(
                Finding(
                    METADATA_OVERSIZED,
                    Severity.MEDIUM,
                    f"{label} repeats {header} far more often than real releases do.",
                    f"{safe_text(header)}: {len(values)} values (limit {MAX_FIELD_VALUES})",
                    core.path,
                )
            )
        if field == "summary":
            size, limit, unit = max(map(len, values), default=0), MAX_SUMMARY_CHARS, "characters"
        else:
            limit = MAX_DESCRIPTION_BYTES if field == "description" else MAX_FIELD_BYTES
            size, unit = (
                max((len(value.encode("utf-8", "replace")) for value in values), default=0),
                "bytes",
            )
        if size > limit:
            findings.append(
                Finding(
                    METADATA_OVERSIZED,
                    Severity.MEDIUM,
                    f"{label} has a {header} field far larger than real releases have.",
                    f"{safe_text(header)}: {size} {unit} (limit {limit})",
                    core.path,
                )
            )
    return findings[:MAX_INVALID_FINDINGS]


def _fields(core: CoreMetadata) -> Iterator[tuple[str, list[str]]]:
    """Every field packaging read, known or not, as (raw name, its values)."""
    for field, value in core.raw.items():
        if isinstance(value, str):
            yield field, [value]
        elif isinstance(value, dict):
            yield field, [f"{key}, {url}" for key, url in value.items()]
        elif isinstance(value, list):
            yield field, [str(item) for item in value]
    for header, values in core.unparsed.items():
        # packaging keeps what it could not read as it found it: a body that is not
        # UTF-8 as bytes, a multipart body as None
        yield header.lower().replace("-", "_"), [_as_str(value) for value in values]


def _as_str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------- dependencies


def requires_dist_direct_url(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A Requires-Dist that names a direct URL (``name @ https://...``) instead of a
    project on the index: installers fetch it from wherever it points, past the mirror
    and its checks. High: PyPI itself refuses uploads carrying one."""
    core = artifact.core_metadata
    if core is None:
        return []
    direct = [line for line, requirement in _requirements(core) if requirement.url is not None]
    if not direct:
        return []
    return [
        Finding(
            REQUIRES_DIST_DIRECT_URL,
            Severity.HIGH,
            f"{_label(artifact)} requires {len(direct)} dependenc"
            f"{'y' if len(direct) == 1 else 'ies'} from a direct URL, bypassing the index.",
            _clip("; ".join(f"Requires-Dist: {safe_text(line)}" for line in direct)),
            core.path,
        )
    ]


def dependency_not_mirrored(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Dependencies (Requires-Dist, extras included) on projects the mirror does not
    carry, listed once for the reviewer (info). Only during a sync, when
    ``context.known_projects`` is known; a project's dependency on itself is skipped."""
    core = artifact.core_metadata
    if core is None or not context.known_projects:
        return []
    own = {artifact.name, None if core.name is None else canonicalize_name(core.name)}
    missing = sorted(
        {
            name
            for _, requirement in _requirements(core)
            if (name := canonicalize_name(requirement.name)) not in context.known_projects
            and name not in own
        }
    )
    if not missing:
        return []
    return [
        Finding(
            DEPENDENCY_NOT_MIRRORED,
            Severity.INFO,
            f"{_label(artifact)} depends on {len(missing)} project"
            f"{'' if len(missing) == 1 else 's'} the mirror does not carry.",
            _clip(", ".join(missing)),
            core.path,
        )
    ]


def _requirements(core: CoreMetadata) -> Iterator[tuple[str, Requirement]]:
    """Each Requires-Dist line packaging can parse, with its parse; metadata-invalid
    reports the others."""
    for line in core.requires_dist:
        try:
            yield line, Requirement(line)
        except InvalidRequirement:
            continue


def _field_of(error: Exception) -> str | None:
    """The field (packaging's raw name) a validation error is about, if it names one."""
    field = getattr(error, "field", None)
    return field.lower().replace("-", "_") if isinstance(field, str) else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
