"""``qmirror backup DIR`` and ``qmirror restore DIR``.

A backup directory holds::

    qmirror.sqlite3   a consistent snapshot (SQLite's online backup API: safe while the
                      server serves and a sync writes)
    blobs/ab/<key>    every blob the snapshot's files table refers to (a file, its core
                      metadata, its provenance), once each (the quarantine and published
                      copies of a key are the same bytes), hardlinked when on the
                      store's filesystem, else copied
    manifest.json     the database's sha256 and, per blob, its key, recorded sha256 and
                      size, the stores it belongs in, and whether its bytes are here
                      (a store that is not a local directory, such as S3, keeps its own)

The manifest is written last, so a directory without one is an unfinished backup.
Blobs are immutable and stores replace files by rename, so a hardlink never sees a
later write; but a hardlinked backup shares the disk it protects: copy the directory
to another machine (``rsync -H`` keeps the links) for a backup that survives the disk.

Restore trusts nothing it reads: the database must match the manifest's digest, and
every blob is checked against the digest and size *the restored database* records
(so a manifest edited to match a tampered blob does not help). Any missing or
corrupt blob refuses the whole restore before anything is written to the data dir;
the database goes in last, so a restored mirror never lists a file it cannot serve.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mirror.db import Database, backup_database, iso
from mirror.publish import metadata_key, provenance_key
from mirror.storage import BlobStore, Storage, StorageError
from mirror.sync import sync_lock

MANIFEST = "manifest.json"
DATABASE = "qmirror.sqlite3"
BLOBS = "blobs"
FORMAT = 1
HASH_CHUNK = 1024 * 1024
REPORT_LINES = 20

_counter = itertools.count()


class BackupError(Exception):
    """A backup or restore that cannot go on; ``str()`` says what and where."""


@dataclass(frozen=True)
class Expected:
    """One blob the database refers to: where it belongs and what it must hash to."""

    key: str
    sha256: str
    size: int | None  # recorded for files; metadata's and provenance's are not
    stores: tuple[str, ...]


def expected_blobs(db: Database) -> Iterator[Expected]:
    for ref in db.blob_references():
        stores = ("quarantine", "published") if ref.published else ("quarantine",)
        yield Expected(ref.sha256, ref.sha256, ref.size, stores)
        if ref.metadata_sha256:
            yield Expected(metadata_key(ref.sha256), ref.metadata_sha256, None, stores)
        if ref.provenance_sha256:
            yield Expected(provenance_key(ref.sha256), ref.provenance_sha256, None, stores)


def _stores(storage: Storage) -> dict[str, BlobStore]:
    return {"quarantine": storage.quarantine, "published": storage.published}


def _blob_path(root: Path, key: str) -> Path:
    return root / BLOBS / key[:2] / key


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _link_or_copy(source: Path, target: Path) -> bool:
    """Hardlink (True) or, across filesystems, copy (False)."""
    try:
        os.link(source, target)
        return True
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    shutil.copyfile(source, target)
    return False


def _is_empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


# ---------------------------------------------------------------- backup


@dataclass
class BackupReport:
    files: int = 0
    blobs: int = 0
    linked: int = 0
    copied: int = 0
    remote: int = 0
    missing: list[str] = field(default_factory=list)

    def line(self, target: Path) -> str:
        return (
            f"backed up the database ({self.files} files) and {self.blobs} blobs "
            f"({self.linked} hardlinked, {self.copied} copied, {self.remote} left in "
            f"non-local stores) to {target}"
        )


def backup(database_path: Path, storage: Storage, target: Path, now: datetime) -> BackupReport:
    if not database_path.is_file():
        raise BackupError(f"{database_path}: no database to back up")
    if not _is_empty(target):
        raise BackupError(f"{target} is not empty: back up into a new directory")
    target.mkdir(parents=True, exist_ok=True)
    snapshot = target / DATABASE
    backup_database(database_path, snapshot)
    db = Database(snapshot)
    try:
        expected = list(expected_blobs(db))
        report = BackupReport(files=sum(db.counts_by_state().values()))
    finally:
        db.close()
    stores = _stores(storage)
    entries = []
    for blob in expected:
        entry: dict[str, Any] = {
            "key": blob.key, "sha256": blob.sha256, "size": blob.size,
            "stores": list(blob.stores), "copied": False,
        }  # fmt: skip
        copied = _take_blob(blob, stores, target, report)
        if copied is not None:
            entry["copied"] = True
            entry["size"] = copied
        entries.append(entry)
    report.blobs = len(entries)
    manifest = {
        "format": FORMAT,
        "created": iso(now),
        "database": DATABASE,
        "database_sha256": _sha256_file(snapshot),
        "blobs": entries,
    }
    temp = target / f".{MANIFEST}.tmp"
    temp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(temp, target / MANIFEST)
    return report


def _take_blob(
    blob: Expected, stores: dict[str, BlobStore], target: Path, report: BackupReport
) -> int | None:
    """Copy a blob's bytes into the backup from the first store that has them as a local
    file; returns their size, or None when no store has a local file."""
    present = False
    for name in blob.stores:
        store = stores[name]
        path = store.local_path(blob.key)
        if path is not None:
            destination = _blob_path(target, blob.key)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if _link_or_copy(path, destination):
                report.linked += 1
            else:
                report.copied += 1
            return destination.stat().st_size
        present = present or store.exists(blob.key)
    if present:
        report.remote += 1
    else:
        report.missing.append(f"{blob.key} (in none of: {', '.join(blob.stores)})")
    return None


# ---------------------------------------------------------------- restore


@dataclass
class RestoreReport:
    blobs: int = 0
    linked: int = 0
    copied: int = 0
    remote: int = 0

    def line(self, target: Path) -> str:
        return (
            f"restored the database and {self.blobs} blobs ({self.linked} hardlinked, "
            f"{self.copied} copied, {self.remote} checked in non-local stores) into {target}"
        )


class RestoreRefused(BackupError):
    def __init__(self, problems: list[str], source: Path, target: Path) -> None:
        shown = problems[:REPORT_LINES]
        more = len(problems) - len(shown)
        lines = [
            f"restore refused: {len(problems)} problem(s) in the backup {source}; "
            f"nothing was written to {target}",
            *(f"  {line}" for line in shown),
            *([f"  ... and {more} more"] if more else []),
        ]
        super().__init__("\n".join(lines))
        self.problems = problems


def _read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{path}: missing: not a backup, or an unfinished one") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"{path}: unreadable: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a format {FORMAT} qmirror backup manifest")
    return manifest


def restore(
    source: Path,
    target: Path,
    storage: Callable[[Path], Storage],
    *,
    force: bool = False,
) -> RestoreReport:
    """Verify the backup in ``source`` whole, then restore it into data dir ``target``."""
    manifest = _read_manifest(source)
    snapshot = source / DATABASE
    if not snapshot.is_file():
        raise BackupError(f"{snapshot}: missing from the backup")
    if _sha256_file(snapshot) != manifest.get("database_sha256"):
        raise RestoreRefused(
            [f"{DATABASE}: sha256 differs from the manifest (tampered or corrupt)"],
            source,
            target,
        )
    if not force and not _is_empty(target):
        raise BackupError(
            f"{target} is not empty: restore into a new data dir, or pass --force to "
            "replace its database (stop the server first)"
        )
    target.mkdir(parents=True, exist_ok=True)
    with sync_lock(target):  # no sync writes while the data dir is replaced
        incoming = target / f".{DATABASE}.restoring"
        shutil.copyfile(snapshot, incoming)
        try:
            report = _restore_blobs(manifest, source, target, incoming, storage(target))
            _install_database(incoming, target / DATABASE)
        finally:
            incoming.unlink(missing_ok=True)
    db = Database(target / DATABASE)
    try:
        db.migrate()  # WAL on again, and any migration newer than the backup
    finally:
        db.close()
    return report


def _restore_blobs(
    manifest: dict[str, Any], source: Path, target: Path, incoming: Path, storage: Storage
) -> RestoreReport:
    db = Database(incoming)
    try:
        expected = list(expected_blobs(db))
    finally:
        db.close()
    listed = {entry.get("key"): entry for entry in manifest.get("blobs", [])}
    stores = _stores(storage)
    problems: list[str] = []
    remote: list[Expected] = []
    for blob in expected:
        path = _blob_path(source, blob.key)
        where = f"{BLOBS}/{blob.key[:2]}/{blob.key} ({', '.join(blob.stores)})"
        if not path.is_file():
            if listed.get(blob.key, {}).get("copied"):
                problems.append(f"{where}: missing from the backup")
            elif all(stores[name].exists(blob.key) for name in blob.stores):
                remote.append(blob)
            else:
                problems.append(f"{blob.key}: neither in the backup nor in the target stores")
            continue
        size = path.stat().st_size
        if blob.size is not None and size != blob.size:
            problems.append(f"{where}: {size} bytes, recorded {blob.size} (tampered or corrupt)")
            continue
        digest = _sha256_file(path)
        if digest != blob.sha256:
            problems.append(
                f"{where}: sha256 {digest[:16]}…, recorded {blob.sha256[:16]}… "
                "(tampered or corrupt)"
            )
    if problems:
        raise RestoreRefused(problems, source, target)

    report = RestoreReport(remote=len(remote))
    remote_keys = {blob.key for blob in remote}
    staging = target / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    for blob in expected:
        if blob.key in remote_keys:
            continue
        for name in blob.stores:
            if _put(stores[name], blob.key, _blob_path(source, blob.key), staging):
                report.linked += 1
            else:
                report.copied += 1
        report.blobs += 1
    return report


def _put(store: BlobStore, key: str, source: Path, staging: Path) -> bool:
    """Into a store through its interface: a hardlink handed to ``put_file`` (a rename
    for a local store on the same filesystem), else the bytes streamed."""
    temp = staging / f"restore-{os.getpid()}-{next(_counter)}"
    try:
        os.link(source, temp)
    except OSError:
        with open(source, "rb") as stream:
            store.put_stream(key, stream)
        return False
    try:
        store.put_file(key, temp)
    except StorageError:
        temp.unlink(missing_ok=True)
        raise
    return True


def _install_database(incoming: Path, final: Path) -> None:
    for stale in (final.with_name(final.name + "-wal"), final.with_name(final.name + "-shm")):
        stale.unlink(missing_ok=True)  # a WAL of the replaced database must not replay
    with open(incoming, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(incoming, final)
