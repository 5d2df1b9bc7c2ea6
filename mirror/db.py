"""The database: schema, migrations and every query. The only module that writes SQL.

SQLite in WAL mode through sqlite-utils. Each thread (and each gunicorn worker, after
the fork) opens its own connection; writes are short ``atomic()`` blocks and a busy
timeout makes concurrent writers wait rather than fail.

"Servable" is defined once, as the ``servable_files`` view: every index page, file
route and export reads from it and from nothing else.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database as SqliteUtilsDatabase
from sqlite_utils.migrations import Migrations

from quarantine.findings import Finding

BUSY_TIMEOUT_SECONDS = 30


class State(StrEnum):
    """A file's lifecycle. Only APPROVED is servable."""

    QUARANTINED = "quarantined"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"


class StateConflict(Exception):
    """A transition from a state the file is no longer in (someone else decided first)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


migrations = Migrations("qmirror")


@migrations()
def m001_initial(db: SqliteUtilsDatabase) -> None:
    db.executescript(
        """
        CREATE TABLE projects (
            name TEXT PRIMARY KEY,            -- normalized (PEP 503)
            display_name TEXT NOT NULL,
            reason TEXT NOT NULL,             -- 'configured' or 'dependency'
            required_by TEXT,                 -- for dependencies: who pulled it in
            first_seen TEXT NOT NULL,
            upstream_etag TEXT,
            upstream_serial INTEGER,
            upstream_listing TEXT             -- JSON of the last upstream file list
        );
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL REFERENCES projects(name),
            version TEXT NOT NULL,
            filename TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,               -- 'wheel' or 'sdist'
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            upstream_url TEXT NOT NULL,
            upload_time TEXT,                 -- the upstream's (PEP 700), never ours
            first_seen TEXT NOT NULL,
            requires_python TEXT,
            yanked TEXT,                      -- NULL: not yanked; '' or a reason
            upstream_core_metadata TEXT,      -- JSON hashes the upstream declared, or NULL
            metadata_sha256 TEXT,             -- sha256 of the core metadata we serve
            requires_dist TEXT NOT NULL DEFAULT '[]',
            state TEXT NOT NULL,
            held_reasons TEXT NOT NULL DEFAULT '[]',
            cooldown_until TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX files_project ON files(project, state);
        CREATE INDEX files_sha256 ON files(sha256);
        CREATE INDEX files_state ON files(state, first_seen);
        CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id),
            check_id TEXT NOT NULL,
            severity TEXT NOT NULL,
            message TEXT NOT NULL,
            evidence TEXT NOT NULL,
            path TEXT
        );
        CREATE INDEX findings_file ON findings(file_id);
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id),
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX decisions_file ON decisions(file_id);
        CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TABLE fetch_errors (
            filename TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            url TEXT NOT NULL,
            error TEXT NOT NULL,
            at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1
        );
        CREATE TABLE pages (
            key TEXT PRIMARY KEY,             -- e.g. 'simple/flask/index.json'
            body BLOB NOT NULL,
            etag TEXT NOT NULL,
            content_type TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE sync_runs (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            status TEXT NOT NULL,             -- running, ok, failed
            summary TEXT
        );
        CREATE VIEW servable_files AS
            SELECT * FROM files WHERE state = 'approved';
        """
    )


@dataclass(frozen=True)
class FileRow:
    id: int
    project: str
    version: str
    filename: str
    kind: str
    sha256: str
    size: int
    upstream_url: str
    upload_time: datetime | None
    first_seen: datetime
    requires_python: str | None
    yanked: str | None
    upstream_core_metadata: dict[str, str] | None
    metadata_sha256: str | None
    requires_dist: tuple[str, ...]
    state: State
    held_reasons: tuple[str, ...]
    cooldown_until: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FileRow:
        core = row["upstream_core_metadata"]
        return cls(
            id=row["id"],
            project=row["project"],
            version=row["version"],
            filename=row["filename"],
            kind=row["kind"],
            sha256=row["sha256"],
            size=row["size"],
            upstream_url=row["upstream_url"],
            upload_time=parse_iso(row["upload_time"]),
            first_seen=datetime.fromisoformat(row["first_seen"]),
            requires_python=row["requires_python"],
            yanked=row["yanked"],
            upstream_core_metadata=None if core is None else json.loads(core),
            metadata_sha256=row["metadata_sha256"],
            requires_dist=tuple(json.loads(row["requires_dist"])),
            state=State(row["state"]),
            held_reasons=tuple(json.loads(row["held_reasons"])),
            cooldown_until=parse_iso(row["cooldown_until"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
        )


@dataclass(frozen=True)
class NewFile:
    """What sync knows about a file it has just quarantined."""

    project: str
    version: str
    filename: str
    kind: str
    sha256: str
    size: int
    upstream_url: str
    upload_time: datetime | None
    requires_python: str | None
    yanked: str | None
    upstream_core_metadata: Mapping[str, str] | None
    metadata_sha256: str | None
    requires_dist: Sequence[str]


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str
    content_type: str


@dataclass(frozen=True)
class ProjectRow:
    name: str
    display_name: str
    reason: str
    required_by: str | None
    upstream_etag: str | None
    upstream_serial: int | None
    upstream_listing: list[dict[str, Any]] | None


class Database:
    """Thread-aware handle: each thread gets its own SQLite connection, opened lazily."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    # ------------------------------------------------------------ connections

    @property
    def db(self) -> SqliteUtilsDatabase:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            # A connection must never cross a fork (gunicorn workers): open anew.
            local.db = self._connect()
            local.pid = os.getpid()
        db: SqliteUtilsDatabase = local.db
        return db

    def _connect(self) -> SqliteUtilsDatabase:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        return SqliteUtilsDatabase(conn)

    @contextmanager
    def write(self) -> Iterator[SqliteUtilsDatabase]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

        A deferred transaction that reads and then writes fails at once with "database is
        locked" if another writer committed in between; an immediate one waits its turn
        (busy timeout) and its reads see the state it then writes over. Nested use becomes
        a savepoint.
        """
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees the database as of its first read
        (WAL readers never block writers). For readers that must see pages and the
        servable view agree, such as an export. No writes inside."""
        db = self.db
        if db.conn.in_transaction:
            raise RuntimeError("snapshot() inside a transaction")
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("ROLLBACK")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
            self._local.pid = None

    def migrate(self) -> None:
        """Create or upgrade the schema. gunicorn workers all call this as they boot, so
        an exclusive file lock makes the first one migrate and the rest find it done."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".migrate-lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            db = self.db
            db.enable_wal()
            migrations.apply(db)

    # ------------------------------------------------------------ projects

    def ensure_project(
        self, name: str, display_name: str, reason: str, required_by: str | None = None
    ) -> None:
        """Record a project the first time it is seen; a configured project stays configured."""
        with self.write():
            existing = self.db.execute(
                "SELECT reason FROM projects WHERE name = ?", [name]
            ).fetchone()
            if existing is None:
                self.db.execute(
                    "INSERT INTO projects (name, display_name, reason, required_by, first_seen)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [name, display_name, reason, required_by, iso(utcnow())],
                )
            elif reason == "configured" and existing[0] != "configured":
                self.db.execute(
                    "UPDATE projects SET reason = 'configured', required_by = NULL WHERE name = ?",
                    [name],
                )

    def project(self, name: str) -> ProjectRow | None:
        rows = list(self.db.query("SELECT * FROM projects WHERE name = ?", [name]))
        if not rows:
            return None
        row = rows[0]
        listing = row["upstream_listing"]
        return ProjectRow(
            name=row["name"],
            display_name=row["display_name"],
            reason=row["reason"],
            required_by=row["required_by"],
            upstream_etag=row["upstream_etag"],
            upstream_serial=row["upstream_serial"],
            upstream_listing=None if listing is None else json.loads(listing),
        )

    def save_upstream_listing(
        self, name: str, etag: str | None, serial: int | None, listing: list[dict[str, Any]]
    ) -> None:
        self.db.execute(
            "UPDATE projects SET upstream_etag = ?, upstream_serial = ?, upstream_listing = ?"
            " WHERE name = ?",
            [etag, serial, json.dumps(listing), name],
        )

    def project_names(self) -> frozenset[str]:
        """Every project the mirror carries (configured or pulled as a dependency)."""
        return frozenset(row[0] for row in self.db.execute("SELECT name FROM projects").fetchall())

    def servable_project_names(self) -> list[tuple[str, str]]:
        """(normalized, display) names of projects with at least one servable file."""
        return [
            (row[0], row[1])
            for row in self.db.execute(
                "SELECT p.name, p.display_name FROM projects p WHERE EXISTS"
                " (SELECT 1 FROM servable_files f WHERE f.project = p.name) ORDER BY p.name"
            ).fetchall()
        ]

    # ------------------------------------------------------------ files

    def file_by_filename(self, filename: str) -> FileRow | None:
        rows = list(self.db.query("SELECT * FROM files WHERE filename = ?", [filename]))
        return FileRow.from_row(rows[0]) if rows else None

    def file_by_id(self, file_id: int) -> FileRow | None:
        rows = list(self.db.query("SELECT * FROM files WHERE id = ?", [file_id]))
        return FileRow.from_row(rows[0]) if rows else None

    def known_filenames(self, project: str) -> set[str]:
        return {
            row[0]
            for row in self.db.execute(
                "SELECT filename FROM files WHERE project = ?", [project]
            ).fetchall()
        }

    def files(
        self,
        *,
        project: str | None = None,
        version: str | None = None,
        filename: str | None = None,
        states: Iterable[State] | None = None,
    ) -> list[FileRow]:
        clauses, params = [], []
        if project is not None:
            clauses.append("project = ?")
            params.append(project)
        if version is not None:
            clauses.append("version = ?")
            params.append(version)
        if filename is not None:
            clauses.append("filename = ?")
            params.append(filename)
        if states is not None:
            wanted = [State(s).value for s in states]
            clauses.append(f"state IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            FileRow.from_row(row)
            # The WHERE text is built from fixed clauses only; values are parameters.
            for row in self.db.query(
                f"SELECT * FROM files{where} ORDER BY first_seen, id",  # noqa: S608
                params,
            )
        ]

    def servable_files(self, project: str) -> list[FileRow]:
        return [
            FileRow.from_row(row)
            for row in self.db.query(
                "SELECT * FROM servable_files WHERE project = ? ORDER BY filename", [project]
            )
        ]

    def servable_listing(self) -> Iterator[tuple[str, str, str, str | None]]:
        """(project, sha256, filename, metadata_sha256) of every servable file, by project
        then filename: what an export copies, without building a FileRow per file."""
        yield from self.db.execute(
            "SELECT project, sha256, filename, metadata_sha256 FROM servable_files"
            " ORDER BY project, filename"
        )

    def sha256_still_servable(self, sha256: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM servable_files WHERE sha256 = ? LIMIT 1", [sha256]
        ).fetchone()
        return row is not None

    def servable_file(self, sha256: str, filename: str) -> FileRow | None:
        rows = list(
            self.db.query(
                "SELECT * FROM servable_files WHERE sha256 = ? AND filename = ?",
                [sha256, filename],
            )
        )
        return FileRow.from_row(rows[0]) if rows else None

    def add_file(
        self,
        new: NewFile,
        findings: Iterable[Finding],
        *,
        now: datetime,
    ) -> int:
        """Insert a quarantined file, its findings and its first audit row, atomically."""
        with self.write():
            cursor = self.db.execute(
                """INSERT INTO files (project, version, filename, kind, sha256, size,
                    upstream_url, upload_time, first_seen, requires_python, yanked,
                    upstream_core_metadata, metadata_sha256, requires_dist, state,
                    updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    new.project,
                    new.version,
                    new.filename,
                    new.kind,
                    new.sha256,
                    new.size,
                    new.upstream_url,
                    iso(new.upload_time),
                    iso(now),
                    new.requires_python,
                    new.yanked,
                    None
                    if new.upstream_core_metadata is None
                    else json.dumps(dict(new.upstream_core_metadata)),
                    new.metadata_sha256,
                    json.dumps(list(new.requires_dist)),
                    State.QUARANTINED.value,
                    iso(now),
                ],
            )
            file_id = cursor.lastrowid
            assert file_id is not None
            self.db.conn.executemany(
                "INSERT INTO findings (file_id, check_id, severity, message, evidence, path)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (file_id, f.check, f.severity.value, f.message, f.evidence, f.path)
                    for f in findings
                ],
            )
            self._audit(file_id, "sync", None, State.QUARANTINED, "fetched from upstream", now)
        return file_id

    def findings(self, file_id: int) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT check_id, severity, message, evidence, path FROM findings"
                " WHERE file_id = ? ORDER BY id",
                [file_id],
            )
        )

    def set_hold(
        self, file_id: int, reasons: Sequence[str], cooldown_until: datetime | None
    ) -> None:
        self.db.execute(
            "UPDATE files SET held_reasons = ?, cooldown_until = ? WHERE id = ?",
            [json.dumps(list(reasons)), iso(cooldown_until), file_id],
        )

    def update_yanked(self, file_id: int, yanked: str | None) -> bool:
        cursor = self.db.execute(
            "UPDATE files SET yanked = ? WHERE id = ? AND yanked IS NOT ?",
            [yanked, file_id, yanked],
        )
        return cursor.rowcount > 0

    def transition(
        self,
        file_id: int,
        *,
        expected: Iterable[State],
        to: State,
        actor: str,
        reason: str,
        now: datetime,
    ) -> None:
        """Move a file between states and append the audit row, in one transaction.

        Raises StateConflict when the file is not in one of the ``expected`` states
        (so two reviewers deciding at once cannot both win).
        """
        allowed = [State(s).value for s in expected]
        with self.write():
            row = self.db.execute("SELECT state FROM files WHERE id = ?", [file_id]).fetchone()
            if row is None:
                raise StateConflict(f"no file with id {file_id}")
            if row[0] not in allowed:
                raise StateConflict(f"file is {row[0]}, not {' or '.join(allowed)}")
            self.db.execute(
                "UPDATE files SET state = ?, updated_at = ?,"
                " held_reasons = CASE WHEN ? = 'quarantined' THEN held_reasons ELSE '[]' END,"
                " cooldown_until = CASE WHEN ? = 'quarantined' THEN cooldown_until ELSE NULL END"
                " WHERE id = ?",
                [to.value, iso(now), to.value, to.value, file_id],
            )
            self._audit(file_id, actor, State(row[0]), to, reason, now)

    def _audit(
        self,
        file_id: int,
        actor: str,
        from_state: State | None,
        to_state: State,
        reason: str,
        now: datetime,
    ) -> None:
        self.db.execute(
            "INSERT INTO decisions (file_id, at, actor, from_state, to_state, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                file_id,
                iso(now),
                actor,
                None if from_state is None else from_state.value,
                to_state.value,
                reason,
            ],
        )

    def decisions(self, file_id: int | None = None) -> list[dict[str, Any]]:
        if file_id is None:
            return list(self.db.query("SELECT * FROM decisions ORDER BY id"))
        return list(
            self.db.query("SELECT * FROM decisions WHERE file_id = ? ORDER BY id", [file_id])
        )

    def counts_by_state(self) -> dict[str, int]:
        counts = {state.value: 0 for state in State}
        for state, count in self.db.execute(
            "SELECT state, COUNT(*) FROM files GROUP BY state"
        ).fetchall():
            counts[state] = count
        return counts

    # ------------------------------------------------------------ fetch errors

    def record_fetch_error(self, filename: str, project: str, url: str, error: str) -> None:
        self.db.execute(
            "INSERT INTO fetch_errors (filename, project, url, error, at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(filename) DO UPDATE SET error = excluded.error, at = excluded.at,"
            " attempts = attempts + 1",
            [filename, project, url, error, iso(utcnow())],
        )

    def clear_fetch_error(self, filename: str) -> None:
        self.db.execute("DELETE FROM fetch_errors WHERE filename = ?", [filename])

    def fetch_errors(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM fetch_errors ORDER BY at"))

    # ------------------------------------------------------------ pages

    def put_pages(self, pages: Mapping[str, Page], *, delete: Iterable[str] = ()) -> None:
        with self.write():
            for key, page in pages.items():
                self.db.execute(
                    "INSERT INTO pages (key, body, etag, content_type, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET body = excluded.body,"
                    " etag = excluded.etag, content_type = excluded.content_type,"
                    " updated_at = excluded.updated_at",
                    [key, page.body, page.etag, page.content_type, iso(utcnow())],
                )
            for key in delete:
                self.db.execute("DELETE FROM pages WHERE key = ?", [key])

    def page(self, key: str) -> Page | None:
        row = self.db.execute(
            "SELECT body, etag, content_type FROM pages WHERE key = ?", [key]
        ).fetchone()
        return None if row is None else Page(bytes(row[0]), row[1], row[2])

    def page_etags(self) -> dict[str, str]:
        """Every stored page's key and ETag (no bodies)."""
        return dict(self.db.execute("SELECT key, etag FROM pages").fetchall())

    # ------------------------------------------------------------ sync runs

    def start_sync_run(self, now: datetime) -> int:
        cursor = self.db.execute(
            "INSERT INTO sync_runs (started, status) VALUES (?, 'running')", [iso(now)]
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_sync_run(
        self, run_id: int, status: str, summary: Mapping[str, Any], now: datetime
    ) -> None:
        self.db.execute(
            "UPDATE sync_runs SET finished = ?, status = ?, summary = ? WHERE id = ?",
            [iso(now), status, json.dumps(dict(summary)), run_id],
        )

    def last_sync_run(self) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1"))
        return rows[0] if rows else None


class PageReader:
    """A read-only connection for serving precomputed pages, shared by a worker's threads.

    ``PRAGMA data_version`` changes whenever *another* connection commits; since this
    connection never writes, every page change (a sync, an approval in this very process)
    is visible as a new version, which is what lets callers cache pages in memory.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def version(self) -> int:
        with self._lock:
            (value,) = self._connection().execute("PRAGMA data_version").fetchone()
            return int(value)

    def page(self, key: str) -> Page | None:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT body, etag, content_type FROM pages WHERE key = ?", [key])
                .fetchone()
            )
        return None if row is None else Page(row[0], row[1], row[2])
