"""The core metadata (wheel METADATA, sdist PKG-INFO): present where installers look for
it, about the file it ships in, and valid by packaging's reading of the spec."""

from __future__ import annotations

from typing import Final

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from quarantine.artifact import Artifact, CoreMetadata, safe_text
from quarantine.findings import CheckContext, Finding, Severity

METADATA_MISSING: Final = "metadata-missing"
METADATA_NAME_MISMATCH: Final = "metadata-name-mismatch"
METADATA_VERSION_MISMATCH: Final = "metadata-version-mismatch"
METADATA_INVALID: Final = "metadata-invalid"

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
    - a field packaging does not recognize: installers ignore unknown fields;
    - a 2.x Metadata-Version newer than the installed packaging knows (2.5, to older
      packaging releases; five corpus wheels declare it): the spec has tools accept a
      newer minor version.
    """
    core = artifact.core_metadata
    if core is None:
        return []
    graded = [_grade(artifact, core, error) for error in core.errors]
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
    field = raw_field.lower().replace("-", "_")
    evidence = _clip(f"{safe_text(raw_field)}: {text}")
    if "introduced in metadata version" in text:
        severity, message = (
            Severity.LOW,
            f"{label} uses a field newer than its declared Metadata-Version.",
        )
    elif text.startswith("unrecognized field"):
        severity, message = Severity.LOW, f"{label} has a field packaging does not recognize."
    elif field == "metadata_version" and _newer_minor(core.metadata_version):
        severity, message = (
            Severity.LOW,
            f"{label} declares a Metadata-Version newer than this packaging knows.",
        )
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


def _newer_minor(value: str | None) -> bool:
    """A 2.x Metadata-Version above the 2.4 every supported packaging knows."""
    try:
        version = Version(value or "")
    except InvalidVersion:
        return False
    return version.major == 2 and version > Version("2.4")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
