"""A project's history as drift sees it: which approved file a new one is compared with,
and a recorded file as a :class:`quarantine.drift.Snapshot`. Used by sync (drift
findings) and by the review page (the side-by-side diff), so both compare the same two
files the same way."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from mirror.db import Database, FileRow
from quarantine.drift import Publisher, Snapshot, snapshot


def _version_or_none(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def wheel_tags(filename: str) -> str | None:
    """A wheel filename's tag part ("cp312-cp312-manylinux_2_28_x86_64"), for picking the
    previous release's build for the same platform."""
    if not filename.endswith(".whl"):
        return None
    return "-".join(filename[: -len(".whl")].split("-")[-3:])


def previous_approved(
    db: Database, project: str, kind: str, version: Version | str, filename: str
) -> FileRow | None:
    """The newest approved release before ``version`` (else the newest other one) of the
    same kind; for wheels, its build with the same tags when there is one."""
    current = version if isinstance(version, Version) else _version_or_none(version)
    if current is None:
        return None
    others: list[tuple[Version, FileRow]] = []
    for row in db.approved_files(project, kind):
        other = _version_or_none(row.version)
        if other is not None and other != current:
            others.append((other, row))
    if not others:
        return None
    older = [pair for pair in others if pair[0] < current]
    pool = older or others
    newest = max(other for other, _ in pool)
    release = [row for other, row in pool if other == newest]
    tags = wheel_tags(filename)
    return next((r for r in release if wheel_tags(r.filename) == tags), release[0])


def stored_snapshot(db: Database, row: FileRow) -> Snapshot:
    """A recorded file as drift sees it: members and metadata from file_details (files
    recorded before those existed have unknown members), publishers from its provenance."""
    details = db.file_details(row.id)
    recorded = db.provenance(row.id)
    publishers = (
        None if recorded is None else tuple(Publisher(*item) for item in recorded["publishers"])
    )
    return snapshot(
        filename=row.filename,
        kind=row.kind,
        size=row.size,
        core_metadata=None if details is None else details.core_metadata,
        members=() if details is None else details.members,
        members_truncated=True if details is None else details.members_truncated,
        entry_points=() if details is None else details.entry_points,
        publishers=publishers,
    )
