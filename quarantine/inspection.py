"""The one entry point the mirror calls: a file on disk in, everything judged about it out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import NormalizedName

from quarantine.artifact import (
    DEFAULT_LIMITS,
    Artifact,
    ArtifactError,
    Limits,
    parse_record,
    safe_text,
)
from quarantine.checks import CATALOGUE, CHECK_CRASHED, Check
from quarantine.checks.archive import ARCHIVE_UNREADABLE
from quarantine.checks.entrypoints import read_entry_points
from quarantine.findings import CheckContext, Finding, Severity

log = logging.getLogger(__name__)


# A reviewer reads a member list; a wheel of 100,000 members is listed up to this many.
MAX_LISTED_MEMBERS = 20_000


@dataclass(frozen=True, slots=True)
class ListedMember:
    """One archive member as a reviewer sees it: the declared size, and for wheels the
    hash RECORD claims (verified by the record checks, which report any mismatch)."""

    name: str
    size: int
    type: str
    record_hash: str | None


@dataclass(frozen=True)
class Inspection:
    filename: str
    kind: str | None  # "wheel" | "sdist" | None when the filename is unparseable
    name: NormalizedName | None  # from the filename
    version: str | None  # from the filename (str(Version))
    sha256: str
    size: int
    # wheel: the exact METADATA bytes (served as the PEP 658 .metadata file); sdist: the
    # PKG-INFO bytes; None if missing or unreadable.
    core_metadata: bytes | None
    requires_dist: tuple[str, ...]  # raw Requires-Dist strings from that metadata
    requires_python: str | None
    findings: tuple[Finding, ...]
    members: tuple[ListedMember, ...] = ()
    members_truncated: bool = False
    # A wheel's entry points as installers read them: (group, name, value).
    entry_points: tuple[tuple[str, str, str], ...] = ()


def inspect_file(
    path: Path,
    context: CheckContext,
    *,
    limits: Limits = DEFAULT_LIMITS,
    checks: Sequence[Check] = CATALOGUE,
) -> Inspection:
    """Hash ``path`` once, open it as the artifact ``context.filename`` names, and run
    every check. Hostile content never raises: it yields findings. A check that raises
    ArtifactError (a member it read is corrupt) yields ``archive-unreadable``; any other
    exception yields ``check-crashed`` naming the check, with the traceback logged.
    Raises OSError only when ``path`` itself cannot be read."""
    with Artifact.open(
        path, filename=context.filename, limits=limits, hash_algorithms=context.expected_hashes
    ) as artifact:
        findings: list[Finding] = []
        for check in checks:
            for finding in run_check(check, artifact, context):
                if finding not in findings:
                    findings.append(finding)
        core = artifact.core_metadata
        members = _listed_members(artifact)
        return Inspection(
            filename=context.filename,
            kind=artifact.kind,
            name=artifact.name,
            version=None if artifact.version is None else str(artifact.version),
            sha256=artifact.sha256,
            size=artifact.size,
            core_metadata=None if core is None else core.data,
            requires_dist=() if core is None else core.requires_dist,
            requires_python=None if core is None else core.requires_python,
            findings=tuple(findings),
            members=members[:MAX_LISTED_MEMBERS],
            members_truncated=len(members) > MAX_LISTED_MEMBERS,
            entry_points=_entry_points(artifact),
        )


def _entry_points(artifact: Artifact) -> tuple[tuple[str, str, str], ...]:
    try:
        return tuple((ep.group, ep.name, ep.value) for ep in read_entry_points(artifact))
    except ArtifactError:
        return ()  # the entry-point checks report an unreadable entry_points.txt


def _listed_members(artifact: Artifact) -> tuple[ListedMember, ...]:
    hashes: dict[str, str] = {}
    if artifact.kind == "wheel" and artifact.members:
        try:
            record = artifact.record()
            if record is not None:
                hashes = {entry.path: entry.hash for entry in parse_record(record) if entry.hash}
        except ArtifactError:
            pass  # the record checks report an unreadable RECORD
    return tuple(
        ListedMember(
            safe_text(member.name),
            member.size,
            member.type.value,
            hashes.get(member.name),
        )
        for member in artifact.members
    )


def run_check(check: Check, artifact: Artifact, context: CheckContext) -> list[Finding]:
    """One check's findings, as valid text; a failure becomes a finding, never an exception."""
    try:
        return [_as_text(finding) for finding in check.run(artifact, context)]
    except ArtifactError as exc:
        return [
            Finding(
                ARCHIVE_UNREADABLE,
                Severity.CRITICAL,
                f"A member could not be read safely while running {check.id}.",
                safe_text(exc.message),
                None if exc.member is None else safe_text(exc.member),
            )
        ]
    except Exception as exc:
        log.exception("check %s crashed on %s", check.id, safe_text(context.filename))
        return [
            Finding(
                CHECK_CRASHED,
                Severity.HIGH,
                f"The check {check.id} failed on this file, so what it looks for is unchecked.",
                safe_text(f"{type(exc).__name__}: {exc}")[:500],
            )
        ]


def _as_text(finding: Finding) -> Finding:
    """Member names from tar headers may hold undecodable bytes (as lone surrogates);
    findings are stored and shown as UTF-8 text, so escape them here, once for all checks."""
    path = None if finding.path is None else safe_text(finding.path)
    return replace(
        finding, message=safe_text(finding.message), evidence=safe_text(finding.evidence), path=path
    )
