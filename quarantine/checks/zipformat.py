"""ZIP confusion (the class of uv's CVE-2025-54368): one zip that different readers unpack
differently. pip reads the central directory at the end; uv and other streaming readers
walk the local headers from the start; repair tools scan for signatures; some readers
take the first end record, others the last. A wheel is safe to judge only if all of
them see the same members with the same bytes, so the structures must agree and every
byte must belong to one of them.

The structures are located and decoded by :meth:`Artifact.zip_layout` (bounded reads,
``struct``); these checks judge what it found. Tar archives have no such double
bookkeeping and are skipped.
"""

from __future__ import annotations

from typing import Final

from quarantine.artifact import Artifact, ArtifactError, ZipEntry, ZipLayout, ZipSpan
from quarantine.checks.layout import cap_findings
from quarantine.findings import CheckContext, Finding, Severity

ZIP_HEADER_MISMATCH: Final = "zip-header-mismatch"
ZIP_OVERLAPPING_MEMBERS: Final = "zip-overlapping-members"
ZIP_HIDDEN_DATA: Final = "zip-hidden-data"
ZIP_END_RECORD_MISMATCH: Final = "zip-end-record-mismatch"

# An archive comment up to this long is left alone (zip tools write a line of text);
# a longer one is room for a payload that only some readers skip.
MAX_COMMENT: Final = 1024
# The flag bits that change how a member is read: encrypted, sizes in a trailing data
# descriptor, strong encryption, UTF-8 name, masked local header.
SIGNIFICANT_FLAGS: Final = 0x0001 | 0x0008 | 0x0040 | 0x0800 | 0x2000
_CLASSIC_LABELS: Final = ("entries on this disk", "entries", "directory size", "directory offset")
_FLAG_DESCRIPTOR: Final = 0x0008
_FLAG_UTF8: Final = 0x0800


def zip_header_mismatch(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A central directory entry and the local header at its offset disagree: no local
    header there, or a different name (bytes, UTF-8 flag, or Info-ZIP Unicode Path
    name), compression method, flags, CRC or sizes (the data descriptor's, when the
    local header defers to one). pip goes by the directory and a streaming installer by
    the local header, so they install different files: critical."""
    layout = _layout(artifact, raise_errors=True)
    if layout is None:
        return []
    findings = []
    for entry in layout.entries:
        problems = _disagreements(entry)
        if problems:
            name = entry.central.text_name
            findings.append(
                Finding(
                    ZIP_HEADER_MISMATCH,
                    Severity.CRITICAL,
                    "The zip's central directory and a local file header describe a member "
                    "differently, so different installers unpack different files.",
                    f"{name}: " + "; ".join(problems),
                    name,
                )
            )
    return cap_findings(findings)


def zip_overlapping_members(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Two directory entries whose local headers and data share bytes (or one local
    header), or a member running into the central directory. Real writers lay members
    end to end; overlap is how one set of bytes is made to read as two different files
    (and how small zips expand to terabytes): critical."""
    layout = _layout(artifact)
    if layout is None:
        return []
    placed = sorted(
        (entry for entry in layout.entries if entry.local is not None),
        key=lambda entry: (entry.offset, entry.end),
    )
    findings = []
    reach: ZipEntry | None = None  # the member reaching furthest so far
    for entry in placed:
        if reach is not None and entry.offset < reach.end:
            how = "share a local header" if entry.offset == reach.offset else "overlap"
            findings.append(
                Finding(
                    ZIP_OVERLAPPING_MEMBERS,
                    Severity.CRITICAL,
                    "Two zip members occupy the same bytes.",
                    f"{reach.central.text_name} [{reach.offset}, {reach.end}) and "
                    f"{entry.central.text_name} [{entry.offset}, {entry.end}) {how}",
                    entry.central.text_name,
                )
            )
        if reach is None or entry.end > reach.end:
            reach = entry
    if reach is not None and reach.end > layout.directory_start:
        findings.append(
            Finding(
                ZIP_OVERLAPPING_MEMBERS,
                Severity.CRITICAL,
                "A zip member's data runs into the central directory.",
                f"{reach.central.text_name} ends at {reach.end}; the central directory "
                f"starts at {layout.directory_start}",
                reach.central.text_name,
            )
        )
    return cap_findings(findings)


def zip_hidden_data(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Bytes no zip structure accounts for: before the first member (prepended, as in a
    self-extractor or a polyglot), between members or before the central directory,
    after the end record, or an archive comment over MAX_COMMENT bytes. pip never sees
    them; a reader that walks headers from the start, or searches for a record, may.

    Critical when the hidden bytes hold a zip record signature (a member or a whole
    archive that only some readers find), high otherwise.
    """
    layout = _layout(artifact)
    if layout is None:
        return []
    findings = []
    for span in layout.spans:
        if span.kind == "comment" and span.size <= MAX_COMMENT and not span.signatures:
            continue
        findings.append(_hidden(span))
    return cap_findings(findings)


def zip_end_record_mismatch(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The end records do not describe the central directory that is there: a second
    end-of-central-directory signature in the directory or in unaccounted bytes (readers
    that take another one open another archive), an entry count other than the entries
    present, a directory offset other than where it is, a classic end record that
    disagrees with the zip64 one where it is not saturated, a zip64 locator pointing
    elsewhere than the zip64 record, or a comment length running past the end of the file.

    Critical for all of these but two: a count off by a multiple of 65536 in an archive
    without zip64 is medium (writers that wrap it exist), and so is the comment length.
    """
    layout = _layout(artifact)
    if layout is None:
        return []
    findings: list[Finding] = []

    def report(severity: Severity, message: str, evidence: str) -> None:
        findings.append(Finding(ZIP_END_RECORD_MISMATCH, severity, message, evidence))

    others = [offset for offset in layout.end_records if offset != layout.end_offset]
    if others:
        shown = ", ".join(str(offset) for offset in others[:10])
        report(
            Severity.CRITICAL,
            "The zip holds more than one end-of-central-directory record; readers that "
            "take a different one see a different archive.",
            f"end record used at {layout.end_offset}; others at {shown}",
        )
    present = len(layout.entries)
    counts = {layout.declared_entries, layout.declared_disk_entries}
    if counts != {present}:
        wrapped = layout.zip64_offset is None and counts == {present % 0x10000}
        report(
            Severity.MEDIUM if wrapped else Severity.CRITICAL,
            "The end record's entry count differs from the entries in the central "
            "directory; readers that trust the count see a different member list.",
            f"declared {layout.declared_entries} (this disk: "
            f"{layout.declared_disk_entries}), present {present}",
        )
    if layout.shift:
        report(
            Severity.CRITICAL,
            "The central directory is not at the offset the end record declares, so every "
            "member offset is off for readers that trust the declaration.",
            f"declared at {layout.directory_offset}, found at {layout.directory_start} "
            f"(shift {layout.shift})",
        )
    if layout.zip64_offset is not None:
        zip64 = (
            layout.declared_disk_entries,
            layout.declared_entries,
            layout.directory_size,
            layout.directory_offset,
        )
        saturated = (0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        differ = [
            f"{label} {classic} (zip64: {value})"
            for label, classic, value, full in zip(
                _CLASSIC_LABELS, layout.classic_values, zip64, saturated, strict=True
            )
            if classic not in (value, full)
        ]
        if differ:
            report(
                Severity.CRITICAL,
                "The classic end record and the zip64 one describe different central "
                "directories; readers that only consult zip64 for saturated fields follow "
                "the classic one.",
                "; ".join(differ),
            )
    if layout.zip64_offset is not None and layout.zip64_declared_offset != layout.zip64_offset:
        report(
            Severity.CRITICAL,
            "The zip64 locator points somewhere other than the zip64 end record that "
            "Python's zipfile reads.",
            f"locator says {layout.zip64_declared_offset}, record at {layout.zip64_offset}",
        )
    comment_end = layout.end_offset + 22 + layout.comment_length
    if comment_end > layout.file_size:
        report(
            Severity.MEDIUM,
            "The end record declares a comment longer than the bytes left in the file; "
            "strict readers reject the archive, lenient ones do not.",
            f"comment of {layout.comment_length} bytes declared at {layout.end_offset + 22}, "
            f"file ends at {layout.file_size}",
        )
    return findings


# ---------------------------------------------------------------- helpers


def _layout(artifact: Artifact, *, raise_errors: bool = False) -> ZipLayout | None:
    """The zip's layout; None for tar archives and archives that did not open. A layout
    that cannot be read raises ArtifactError (archive-unreadable) only if
    ``raise_errors``: one check reports it, the others see None."""
    if artifact.container != "zip" or artifact.error is not None:
        return None
    try:
        return artifact.zip_layout()
    except ArtifactError:
        if raise_errors:
            raise
        return None


def _disagreements(entry: ZipEntry) -> list[str]:
    central, local = entry.central, entry.local
    if local is None:
        return [f"no local header at offset {entry.offset} (declared {entry.declared_offset})"]
    problems = []
    if local.name != central.name:
        problems.append(f"local header names it {local.text_name!r}")
    elif (local.flags ^ central.flags) & _FLAG_UTF8 and not central.name.isascii():
        problems.append("the UTF-8 flag differs, so the name decodes differently")
    for where, header in (("central", central), ("local", local)):
        if header.unicode_name is not None and header.unicode_name != central.text_name:
            problems.append(f"the {where} Unicode Path field names it {header.unicode_name!r}")
    if local.method != central.method:
        problems.append(f"compression method central {central.method}, local {local.method}")
    if (local.flags ^ central.flags) & SIGNIFICANT_FLAGS & ~_FLAG_UTF8:
        problems.append(f"flags central {central.flags:#06x}, local {local.flags:#06x}")
    expected = (central.crc, central.compressed_size, central.size)
    stated = (local.crc, local.compressed_size, local.size)
    if local.flags & _FLAG_DESCRIPTOR:
        # The local header may leave the values zero and defer to the descriptor.
        if stated != (0, 0, 0) and stated != expected:
            problems.append(_values("local header", stated, expected))
        descriptor = entry.descriptor
        if descriptor is not None:
            found = (descriptor.crc, descriptor.compressed_size, descriptor.size)
            if found != expected:
                problems.append(_values("data descriptor", found, expected))
    elif stated != expected:
        problems.append(_values("local header", stated, expected))
    return problems


def _values(where: str, found: tuple[int, int, int], expected: tuple[int, int, int]) -> str:
    labels = ("CRC", "compressed size", "size")
    parts = [
        f"{label} {want} in the directory, {got} in the {where}"
        for label, got, want in zip(labels, found, expected, strict=True)
        if got != want
    ]
    return ", ".join(parts)


def _hidden(span: ZipSpan) -> Finding:
    where = {
        "prepended": "before the first member",
        "between": "between members or before the central directory",
        "comment": "in the archive comment",
        "appended": "after the end of the archive",
    }[span.kind]
    evidence = f"{span.size} bytes at [{span.start}, {span.end}) {where}"
    if span.signatures:
        return Finding(
            ZIP_HIDDEN_DATA,
            Severity.CRITICAL,
            f"Bytes {where} that pip never reads hold zip records ("
            + ", ".join(span.signatures)
            + "): another reader can find members there.",
            evidence,
        )
    return Finding(
        ZIP_HIDDEN_DATA,
        Severity.HIGH,
        f"The zip carries bytes {where} that no zip structure accounts for; some readers "
        "see them, pip does not.",
        evidence,
    )
