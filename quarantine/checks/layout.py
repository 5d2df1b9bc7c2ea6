"""Member names and kinds: what an installer would write where. Names that climb out of
the install directory, names two readers resolve differently, names stored twice, and
links (or devices) that point outside the archive. The archive's own directory is taken
as stored; nothing is extracted."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Final

from quarantine.artifact import Artifact, ArtifactError, Member, MemberType
from quarantine.findings import CheckContext, Finding, Severity

DUPLICATE_MEMBER: Final = "duplicate-member"
UNSAFE_MEMBER_PATH: Final = "unsafe-member-path"
UNSAFE_LINK: Final = "unsafe-link"

# A hostile archive can hold thousands of bad names; a reviewer needs the first few.
MAX_FINDINGS: Final = 20

_DRIVE = re.compile(r"[A-Za-z]:")


def duplicate_member(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Two members that install to the same path: one name stored twice, or two names
    that are the same path once ``./``, ``//`` and backslashes are read as installers
    read them. Which copy counts differs between tools (zipfile's lookup by name returns
    the last, an unpacker writes both and keeps the last, a reader that stops at the
    first match takes the first), so a reviewer may read the harmless copy.

    High for those; low for names that differ only in case or Unicode normalization
    (one overwrites the other on Windows and macOS).
    """
    if artifact.error is not None:
        return []
    findings: list[Finding] = []
    by_name: dict[str, list[Member]] = defaultdict(list)
    for member in artifact.members:
        by_name[member.name].append(member)
    for name, copies in by_name.items():
        if len(copies) > 1 and not all(m.type is MemberType.DIRECTORY for m in copies):
            kinds = ", ".join(m.type.value for m in copies)
            findings.append(
                Finding(
                    DUPLICATE_MEMBER,
                    Severity.HIGH,
                    "A member name is stored more than once; tools disagree on which copy counts.",
                    f"{name}: stored {len(copies)} times ({kinds})",
                    name,
                )
            )
    files = [name for name, copies in by_name.items() if copies[0].type is not MemberType.DIRECTORY]
    for names in _collisions(files, _canonical):
        findings.append(
            Finding(
                DUPLICATE_MEMBER,
                Severity.HIGH,
                "Different member names install to the same path, so one silently "
                "replaces the other.",
                " | ".join(names),
                names[0],
            )
        )
    for names in _collisions(files, _folded):
        if len({_canonical(name) for name in names}) > 1:  # not already reported above
            findings.append(
                Finding(
                    DUPLICATE_MEMBER,
                    Severity.LOW,
                    "Member names differ only in case or Unicode normalization; on Windows "
                    "and macOS one overwrites the other.",
                    " | ".join(names),
                    names[0],
                )
            )
    return cap_findings(findings)


def unsafe_member_path(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A member name that is absolute (``/etc/...``, ``\\\\server\\...``), starts with a
    drive letter (``C:``), climbs out with ``..`` (with ``/`` or ``\\`` as separator),
    or holds a NUL byte (zipfile cuts the name there; other readers do not): critical,
    since no real release needs one. A backslash alone is medium: Windows installers
    split the name there and others do not, so the file lands in different places."""
    if artifact.error is not None:
        return []
    findings = []
    names: Iterable[str] = dict.fromkeys(member.name for member in artifact.members)
    for name in names:
        problem = _escape(name)
        if problem is not None:
            findings.append(
                Finding(
                    UNSAFE_MEMBER_PATH,
                    Severity.CRITICAL,
                    f"A member name {problem}, so it would be written outside the install "
                    "directory.",
                    name,
                    name,
                )
            )
        elif "\\" in name:
            findings.append(
                Finding(
                    UNSAFE_MEMBER_PATH,
                    Severity.MEDIUM,
                    "A member name contains a backslash: Windows installers read it as a "
                    "directory separator, others as part of the file name.",
                    name,
                    name,
                )
            )
    findings.extend(_nul_names(artifact))
    return cap_findings(findings)


def unsafe_link(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A symlink or hardlink whose target is absolute or resolves outside the archive's
    root (for an sdist, its one top-level directory, which pip strips), and device or
    FIFO entries: critical for a link out, medium for a special file. In a wheel any
    symlink is medium even pointing inside: the format has none, pip writes the target
    path as the file's content and other unpackers create the link."""
    if artifact.error is not None:
        return []
    root = _root(artifact)
    findings = []
    for member in artifact.members:
        if member.type is MemberType.OTHER:
            findings.append(
                Finding(
                    UNSAFE_LINK,
                    Severity.MEDIUM,
                    "The archive holds a device or FIFO entry, which no installer should create.",
                    member.name,
                    member.name,
                )
            )
            continue
        if member.type not in (MemberType.SYMLINK, MemberType.HARDLINK):
            continue
        try:
            target = artifact.link_target(member.name)
        except ArtifactError:
            target = None  # a duplicated name: duplicate-member reports it
        kind = member.type.value
        evidence = f"{member.name} -> {target}"
        if target is not None and _link_escapes(member, target, root):
            findings.append(
                Finding(
                    UNSAFE_LINK,
                    Severity.CRITICAL,
                    f"A {kind} points outside the archive, so unpacking it writes or reads "
                    "files elsewhere on the machine.",
                    evidence,
                    member.name,
                )
            )
        elif artifact.kind == "wheel" or artifact.container == "zip":
            findings.append(
                Finding(
                    UNSAFE_LINK,
                    Severity.MEDIUM,
                    f"A zip entry is flagged as a {kind}: wheels have no links, and "
                    "unpackers disagree on whether to create one or write the target path "
                    "as a file.",
                    evidence,
                    member.name,
                )
            )
    return cap_findings(findings)


# ---------------------------------------------------------------- helpers


def _escape(name: str) -> str | None:
    """How ``name`` leaves the directory it is unpacked into, or None."""
    if name.startswith(("/", "\\")):
        return "is absolute"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if ".." in re.split(r"[\\/]", name):
        return "climbs out with '..'"
    return None


def _nul_names(artifact: Artifact) -> list[Finding]:
    """Zip names with a NUL byte: zipfile (so artifact.members) shows them cut short."""
    try:
        layout = artifact.zip_layout()
    except ArtifactError:
        return []  # zip-header-mismatch's reader reports the structure
    if layout is None:
        return []
    findings = []
    for entry in layout.entries:
        if b"\x00" in entry.central.name:
            shown = entry.central.name.decode("utf-8", "backslashreplace")
            findings.append(
                Finding(
                    UNSAFE_MEMBER_PATH,
                    Severity.CRITICAL,
                    "A member name holds a NUL byte: Python's zipfile cuts the name "
                    "there, other readers keep all of it.",
                    shown.replace("\x00", "\\x00"),
                    entry.central.text_name.partition("\x00")[0],
                )
            )
    return findings


def _canonical(name: str) -> str:
    """The path an installer writes: backslashes as separators, no ``.`` or empty parts."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    return "/".join(parts)


def _folded(name: str) -> str:
    return unicodedata.normalize("NFC", _canonical(name)).casefold()


def _collisions(names: Iterable[str], key: Callable[[str], str]) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        groups[key(name)].append(name)
    return [group for group in groups.values() if len(group) > 1]


def _root(artifact: Artifact) -> str:
    """The directory links must stay inside: an sdist's top-level directory (pip strips
    it when unpacking), else the archive root."""
    if artifact.kind == "sdist":
        try:
            return artifact.sdist_root
        except ArtifactError:
            pass
    return ""


def _link_escapes(member: Member, target: str, root: str) -> bool:
    target = target.replace("\\", "/")
    if target.startswith("/") or _DRIVE.match(target):
        return True
    if member.type is MemberType.HARDLINK:
        # A tar hardlink names another member, from the archive root.
        resolved = posixpath.normpath(target)
    else:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), target))
    if resolved == ".." or resolved.startswith("../"):
        return True
    inside = _canonical(resolved)
    return bool(root) and inside != root and not inside.startswith(root + "/")


def cap_findings(findings: list[Finding]) -> list[Finding]:
    """The first MAX_FINDINGS findings, then one counting the rest at their worst (the
    integrity checks share this)."""
    if len(findings) <= MAX_FINDINGS:
        return findings
    rest = findings[MAX_FINDINGS:]
    worst = max((finding.severity for finding in rest), key=lambda severity: severity.rank)
    return [
        *findings[:MAX_FINDINGS],
        Finding(
            rest[0].check,
            worst,
            f"{len(rest)} more members like the above.",
            "; ".join(finding.evidence for finding in rest[:50])[:500],
        ),
    ]
