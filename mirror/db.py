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

from quarantine.advisories import Advisory, AffectedPackage, Kind, Parsed
from quarantine.findings import Finding, Severity
from quarantine.inspection import ListedMember

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


def audit_time(moment: datetime) -> str:
    """When an audit row (a decision or an event) happened, to the microsecond the clock
    gives: the log merges the two tables by time, and within one second a policy approval
    and an admin's change can both happen. A whole second keeps the short form; UTC ISO
    strings of either form sort in time order ('+' sorts before '.', which sorts before
    the digits)."""
    return moment.astimezone(UTC).isoformat()


def parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# Worst first: how the review queue orders a file's findings.
_SEVERITY_ORDER = (
    "CASE x.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2"
    " WHEN 'low' THEN 3 ELSE 4 END"
)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


@migrations()
def m002_review(db: SqliteUtilsDatabase) -> None:
    """Users, sessions, API tokens, admin-managed projects and policy, client requests for
    projects the mirror does not carry, what inspection saw inside each file, and an
    append-only log of every administrative action (decisions cover files)."""
    db.executescript(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,      -- werkzeug scrypt; never the password
            role TEXT NOT NULL CHECK (role IN ('reviewer', 'admin')),
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            credentials_changed_at TEXT NOT NULL
        );
        CREATE TABLE sessions (
            id_hash TEXT PRIMARY KEY,         -- sha256 of the cookie's random id
            user_id INTEGER NOT NULL REFERENCES users(id),
            csrf_token TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            ip TEXT NOT NULL
        );
        CREATE INDEX sessions_user ON sessions(user_id);
        CREATE TABLE login_attempts (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL,
            ip TEXT NOT NULL,
            at TEXT NOT NULL,
            ok INTEGER NOT NULL
        );
        CREATE INDEX login_attempts_user ON login_attempts(username, at);
        CREATE INDEX login_attempts_ip ON login_attempts(ip, at);
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,  -- sha256 of the secret; the secret is shown once
            role TEXT NOT NULL CHECK (role IN ('read', 'reviewer', 'admin')),
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE TABLE allowlist (              -- projects added by admins, over [sync] projects
            name TEXT PRIMARY KEY,            -- normalized
            requirement TEXT NOT NULL,        -- a PEP 508 specifier, e.g. 'flask>=3'
            added_by TEXT NOT NULL,
            added_at TEXT NOT NULL
        );
        CREATE TABLE project_policy (         -- per-project overrides, over [policy.projects]
            name TEXT PRIMARY KEY,
            allow TEXT NOT NULL DEFAULT '[]', -- JSON list of check ids ignored for it
            cooldown_seconds REAL,            -- NULL: the configured cooldown
            updated_by TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE project_requests (       -- /simple/<name>/ asked for, not carried
            name TEXT PRIMARY KEY,
            hits INTEGER NOT NULL,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL
        );
        CREATE TABLE file_details (           -- what inspection saw, for the reviewer
            file_id INTEGER PRIMARY KEY REFERENCES files(id),
            core_metadata BLOB,               -- METADATA / PKG-INFO bytes as stored
            members TEXT NOT NULL,            -- JSON [[name, size, type, record_hash], ...]
            members_truncated INTEGER NOT NULL DEFAULT 0,
            entry_points TEXT NOT NULL DEFAULT '[]'  -- JSON [[group, name, value], ...]
        );
        CREATE TABLE events (                 -- administrative actions; append-only
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,             -- e.g. 'user.add', 'allowlist.add'
            subject TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE INDEX decisions_at ON decisions(at);
        CREATE INDEX findings_check ON findings(check_id);
        """
    )


@migrations()
def m004_provenance(db: SqliteUtilsDatabase) -> None:
    """PEP 740 provenance: the object the upstream offered (a blob we serve next to the
    file) and the publisher identity read from it."""
    db.executescript(
        """
        ALTER TABLE files ADD COLUMN provenance_sha256 TEXT;  -- '<sha256>.provenance' blob
        CREATE TABLE provenance (
            file_id INTEGER PRIMARY KEY REFERENCES files(id),
            publishers TEXT NOT NULL,         -- JSON [[kind, repository, workflow, env], ...]
            verification TEXT NOT NULL,       -- unverified | verified | failed
            detail TEXT NOT NULL DEFAULT ''
        );
        """
    )


@migrations()
def m003_advisories(db: SqliteUtilsDatabase) -> None:
    """OSV advisories and the PyPI projects each names, which advisory already touched
    which file (so a re-check acts once), and the outbox of alerts waiting for the
    webhook."""
    db.executescript(
        """
        CREATE TABLE advisories (
            id TEXT PRIMARY KEY,              -- MAL-2025-1, PYSEC-2024-2, GHSA-...
            modified TEXT NOT NULL,           -- the record's; a reload with the same is a no-op
            kind TEXT NOT NULL CHECK (kind IN ('malicious', 'vulnerability')),
            severity TEXT NOT NULL,
            summary TEXT NOT NULL,
            aliases TEXT NOT NULL DEFAULT '[]',
            malicious_because TEXT,           -- why a non-MAL record counts as malicious
            loaded_at TEXT NOT NULL
        );
        CREATE TABLE advisory_packages (
            advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
            project TEXT NOT NULL,            -- normalized
            affected TEXT NOT NULL            -- JSON {"versions": [...], "ranges": [...]}
        );
        CREATE INDEX advisory_packages_project ON advisory_packages(project);
        CREATE INDEX advisory_packages_advisory ON advisory_packages(advisory_id);
        CREATE TABLE advisory_hits (
            file_id INTEGER NOT NULL REFERENCES files(id),
            advisory_id TEXT NOT NULL,        -- no foreign key: a withdrawn one stays history
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (file_id, advisory_id, kind)
        );
        CREATE TABLE alert_outbox (
            id INTEGER PRIMARY KEY,
            event TEXT NOT NULL,
            payload TEXT NOT NULL,            -- the JSON body, built when queued
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT
        );
        CREATE INDEX alert_outbox_due ON alert_outbox(next_attempt_at, id);
        """
    )


@migrations()
def m005_manage(db: SqliteUtilsDatabase) -> None:
    """When each user last logged in (login attempts are pruned after an hour and sessions
    end, so neither remembers it), the audit log's events in time order, and client
    requests least asked for first (what a full table gives up for a new name)."""
    db.executescript(
        """
        ALTER TABLE users ADD COLUMN last_login_at TEXT;
        CREATE INDEX events_at ON events(at);
        CREATE INDEX project_requests_rank ON project_requests(hits, last_at);
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
    provenance_sha256: str | None = None

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
            provenance_sha256=row["provenance_sha256"],
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


class Role(StrEnum):
    """What a person may do. Reviewers decide files; admins also manage users, tokens,
    projects and policy."""

    REVIEWER = "reviewer"
    ADMIN = "admin"


class TokenRole(StrEnum):
    """What an API token may do: read the index (``index_auth``), review, or administer."""

    READ = "read"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Conflict(Exception):
    """A write that would break a uniqueness rule (a user name taken, say)."""


@dataclass(frozen=True)
class UserRow:
    id: int
    name: str
    password_hash: str
    role: Role
    disabled: bool
    created_at: datetime
    credentials_changed_at: datetime
    last_login_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UserRow:
        return cls(
            id=row["id"],
            name=row["name"],
            password_hash=row["password_hash"],
            role=Role(row["role"]),
            disabled=bool(row["disabled"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            credentials_changed_at=datetime.fromisoformat(row["credentials_changed_at"]),
            last_login_at=parse_iso(row.get("last_login_at")),
        )


@dataclass(frozen=True)
class SessionRow:
    id_hash: str
    user: UserRow
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: TokenRole
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TokenRow:
        return cls(
            id=row["id"],
            name=row["name"],
            role=TokenRole(row["role"]),
            created_by=row["created_by"],
            created_at=datetime.fromisoformat(row["created_at"]),
            last_used_at=parse_iso(row["last_used_at"]),
            revoked_at=parse_iso(row["revoked_at"]),
        )


@dataclass(frozen=True)
class FileDetails:
    """What inspection saw inside a file, kept for reviewers and for drift checks."""

    core_metadata: bytes | None
    members: tuple[ListedMember, ...]
    members_truncated: bool
    entry_points: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class QueueRow:
    """A file as the review queue lists it."""

    file: FileRow
    findings: int
    worst_severity: str | None


@dataclass(frozen=True)
class QueueFilter:
    states: tuple[State, ...] = (State.QUARANTINED,)
    project: str | None = None  # exact, normalized
    search: str | None = None  # substring of project or filename
    severity: str | None = None  # at least one finding of exactly this severity
    check_id: str | None = None  # at least one finding of this check


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None  # substring, e.g. "rev" finds "user:rev"
    action: str | None = None  # exactly: a state a file moved to, or an event action
    subject: str | None = None  # substring of filename / project / event subject
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before


@dataclass(frozen=True)
class AuditPosition:
    """Where a read of the audit log stopped: the last row's (at, kind, seq)."""

    at: str
    kind: str
    seq: int


@dataclass(frozen=True)
class _AuditSide:
    """One table of the audit log: how to select its rows, and the columns filters use."""

    kind: str
    select: str
    at: str
    seq: str
    actor: str
    action: str
    subject: tuple[str, ...]


# Rows are ordered newest first, then events before decisions, then by id (newest first).
_AUDIT_SIDES = (
    _AuditSide(
        kind="event",
        select="SELECT e.at AS at, 'event' AS kind, e.id AS seq, e.actor AS actor,"
        " e.action AS action, e.subject AS subject, NULL AS project, NULL AS from_state,"
        " NULL AS to_state, e.detail AS reason, NULL AS file_id FROM events e",
        at="e.at", seq="e.id", actor="e.actor", action="e.action", subject=("e.subject",),
    ),
    _AuditSide(
        kind="decision",
        select="SELECT d.at AS at, 'decision' AS kind, d.id AS seq, d.actor AS actor,"
        " d.to_state AS action, f.filename AS subject, f.project AS project,"
        " d.from_state AS from_state, d.to_state AS to_state, d.reason AS reason,"
        " d.file_id AS file_id FROM decisions d JOIN files f ON f.id = d.file_id",
        at="d.at", seq="d.id", actor="d.actor", action="d.to_state",
        subject=("f.filename", "f.project"),
    ),
)  # fmt: skip


def _audit_query(
    where: AuditFilter, after: AuditPosition | None, per_side: int
) -> tuple[str, list[Any]]:
    """The merged, filtered audit log as SQL (without its final LIMIT): each side filtered
    and cut to ``per_side`` rows in time order (its ``at`` index), then merged."""
    parts: list[str] = []
    params: list[Any] = []
    for side in _AUDIT_SIDES:
        clauses: list[str] = []
        if where.actor:
            clauses.append(f"{side.actor} LIKE ? ESCAPE '\\'")
            params.append("%" + _like_escape(where.actor) + "%")
        if where.action:
            clauses.append(f"{side.action} = ?")
            params.append(where.action)
        if where.subject:
            matches = [f"{column} LIKE ? ESCAPE '\\'" for column in side.subject]
            clauses.append("(" + " OR ".join(matches) + ")")
            params.extend(["%" + _like_escape(where.subject) + "%"] * len(matches))
        if where.since:
            clauses.append(f"{side.at} >= ?")
            params.append(iso(where.since))
        if where.until:
            clauses.append(f"{side.at} < ?")
            params.append(iso(where.until))
        if after is not None:
            if side.kind < after.kind:  # after the cursor's kind at the same moment
                clauses.append(f"{side.at} <= ?")
                params.append(after.at)
            elif side.kind == after.kind:
                # A row value, so the range starts in the index, not after a scan to it.
                clauses.append(f"({side.at}, {side.seq}) < (?, ?)")
                params.extend([after.at, after.seq])
            else:
                clauses.append(f"{side.at} < ?")
                params.append(after.at)
        filtered = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        # Built from the fixed texts above only; every value is a parameter.
        parts.append(
            f"SELECT * FROM ({side.select}{filtered}"  # noqa: S608
            f" ORDER BY {side.at} DESC, {side.seq} DESC LIMIT ?)"
        )
        params.append(per_side)
    sql = " UNION ALL ".join(parts) + " ORDER BY at DESC, kind DESC, seq DESC"
    return sql, params


@dataclass
class AdvisoryCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass(frozen=True)
class OutboxRow:
    """An alert waiting for the webhook."""

    id: int
    event: str
    payload: str  # the JSON body
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


MAX_PROJECT_REQUESTS = 10_000  # distinct unknown names remembered; a flood adds no rows


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

    def servable_listing(self) -> Iterator[tuple[str, str, str, str | None, str | None]]:
        """(project, sha256, filename, metadata_sha256, provenance_sha256) of every servable
        file, by project then filename: what an export copies, without a FileRow per file."""
        yield from self.db.execute(
            "SELECT project, sha256, filename, metadata_sha256, provenance_sha256"
            " FROM servable_files"
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
        details: FileDetails | None = None,
    ) -> int:
        """Insert a quarantined file, its findings, what inspection saw inside it and its
        first audit row, atomically."""
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
            if details is not None:
                self.save_file_details(file_id, details)
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
                audit_time(now),
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

    def cooldown_waiting(self) -> tuple[int, datetime | None]:
        """Held files that wait only on the cooldown, and when the first of them is due."""
        count, due = self.db.execute(
            "SELECT COUNT(*), MIN(cooldown_until) FROM files"
            " WHERE state = 'quarantined' AND cooldown_until IS NOT NULL"
        ).fetchone()
        return int(count), parse_iso(due)

    def counts_by_state(self) -> dict[str, int]:
        counts = {state.value: 0 for state in State}
        for state, count in self.db.execute(
            "SELECT state, COUNT(*) FROM files GROUP BY state"
        ).fetchall():
            counts[state] = count
        return counts

    def file_ids_for_release(self, project: str, version: str) -> list[int]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT id FROM files WHERE project = ? AND version = ? ORDER BY filename",
                [project, version],
            ).fetchall()
        ]

    # ------------------------------------------------------------ provenance

    def save_provenance(
        self,
        file_id: int,
        *,
        provenance_sha256: str,
        publishers: Sequence[Sequence[str]],
        verification: str,
        detail: str,
    ) -> None:
        with self.write():
            self.db.execute(
                "UPDATE files SET provenance_sha256 = ? WHERE id = ?", [provenance_sha256, file_id]
            )
            self.db.execute(
                "INSERT OR REPLACE INTO provenance (file_id, publishers, verification, detail)"
                " VALUES (?, ?, ?, ?)",
                [file_id, json.dumps([list(p) for p in publishers]), verification, detail],
            )

    def provenance(self, file_id: int) -> dict[str, Any] | None:
        """{"publishers": [[kind, repository, workflow, environment], ...],
        "verification": ..., "detail": ...} or None when the file came without one."""
        rows = list(self.db.query("SELECT * FROM provenance WHERE file_id = ?", [file_id]))
        if not rows:
            return None
        row = rows[0]
        row["publishers"] = json.loads(row["publishers"])
        return row

    def approved_files(self, project: str, kind: str) -> list[FileRow]:
        """A project's approved files of one kind, for drift: the caller picks the newest."""
        return [
            FileRow.from_row(row)
            for row in self.db.query(
                "SELECT * FROM files WHERE project = ? AND kind = ? AND state = 'approved'",
                [project, kind],
            )
        ]

    def first_upload(self, project: str) -> str | None:
        """The earliest upload time in a project's stored upstream listing (ISO), which is
        as close as a simple index gets to when the project was created."""
        row = self.db.execute(
            "SELECT upstream_listing FROM projects WHERE name = ?", [project]
        ).fetchone()
        if row is None or row[0] is None:
            return None
        times = [item.get("upload_time") for item in json.loads(row[0])]
        known = [t for t in times if isinstance(t, str)]
        return min(known) if known else None

    # ------------------------------------------------------------ review queue

    def queue(
        self, where: QueueFilter = QueueFilter(), *, limit: int = 200, offset: int = 0
    ) -> list[QueueRow]:
        """Files in ``where.states``, oldest first, with their findings count and worst
        severity, filtered by project, name search, severity or check id."""
        clauses = [f"f.state IN ({', '.join('?' for _ in where.states)})"]
        params: list[Any] = [State(s).value for s in where.states]
        if where.project:
            clauses.append("f.project = ?")
            params.append(where.project)
        if where.search:
            clauses.append("(f.project LIKE ? ESCAPE '\\' OR f.filename LIKE ? ESCAPE '\\')")
            pattern = "%" + _like_escape(where.search) + "%"
            params.extend([pattern, pattern])
        if where.severity:
            clauses.append(
                "EXISTS (SELECT 1 FROM findings x WHERE x.file_id = f.id AND x.severity = ?)"
            )
            params.append(where.severity)
        if where.check_id:
            clauses.append(
                "EXISTS (SELECT 1 FROM findings x WHERE x.file_id = f.id AND x.check_id = ?)"
            )
            params.append(where.check_id)
        params.extend([limit, offset])
        # The WHERE text is built from fixed clauses only; values are parameters.
        sql = f"""
            SELECT f.*,
                (SELECT COUNT(*) FROM findings x WHERE x.file_id = f.id) AS n_findings,
                (SELECT x.severity FROM findings x WHERE x.file_id = f.id
                 ORDER BY {_SEVERITY_ORDER} LIMIT 1) AS worst
            FROM files f WHERE {" AND ".join(clauses)}
            ORDER BY f.first_seen, f.id LIMIT ? OFFSET ?"""  # noqa: S608
        return [
            QueueRow(FileRow.from_row(row), row["n_findings"], row["worst"])
            for row in self.db.query(sql, params)
        ]

    def projects_with_approved(self) -> set[str]:
        """Projects with at least one approved file (others are new to the mirror)."""
        return {
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT project FROM files WHERE state = 'approved'"
            ).fetchall()
        }

    def check_ids_with_findings(self) -> list[str]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT check_id FROM findings ORDER BY check_id"
            ).fetchall()
        ]

    # ------------------------------------------------------------ file details

    def save_file_details(self, file_id: int, details: FileDetails) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO file_details"
            " (file_id, core_metadata, members, members_truncated, entry_points)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                file_id,
                details.core_metadata,
                json.dumps([[m.name, m.size, m.type, m.record_hash] for m in details.members]),
                int(details.members_truncated),
                json.dumps([list(ep) for ep in details.entry_points]),
            ],
        )

    def file_details(self, file_id: int) -> FileDetails | None:
        row = self.db.execute(
            "SELECT core_metadata, members, members_truncated, entry_points FROM file_details"
            " WHERE file_id = ?",
            [file_id],
        ).fetchone()
        if row is None:
            return None
        return FileDetails(
            core_metadata=None if row[0] is None else bytes(row[0]),
            members=tuple(ListedMember(*item) for item in json.loads(row[1])),
            members_truncated=bool(row[2]),
            entry_points=tuple((g, n, v) for g, n, v in json.loads(row[3])),
        )

    # ------------------------------------------------------------ users and sessions

    def add_user(self, name: str, password_hash: str, role: Role, now: datetime) -> int:
        try:
            cursor = self.db.execute(
                "INSERT INTO users (name, password_hash, role, created_at, credentials_changed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [name, password_hash, Role(role).value, iso(now), iso(now)],
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"a user named {name!r} already exists") from None
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def user_by_name(self, name: str) -> UserRow | None:
        rows = list(self.db.query("SELECT * FROM users WHERE name = ?", [name]))
        return UserRow.from_row(rows[0]) if rows else None

    def user_by_id(self, user_id: int) -> UserRow | None:
        rows = list(self.db.query("SELECT * FROM users WHERE id = ?", [user_id]))
        return UserRow.from_row(rows[0]) if rows else None

    def users(self) -> list[UserRow]:
        return [UserRow.from_row(row) for row in self.db.query("SELECT * FROM users ORDER BY name")]

    def update_user(
        self,
        user_id: int,
        *,
        now: datetime,
        password_hash: str | None = None,
        role: Role | None = None,
        disabled: bool | None = None,
    ) -> None:
        """Change a user; any change of credentials, role or standing ends their sessions."""
        with self.write():
            if password_hash is not None:
                self.db.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id]
                )
            if role is not None:
                self.db.execute(
                    "UPDATE users SET role = ? WHERE id = ?", [Role(role).value, user_id]
                )
            if disabled is not None:
                self.db.execute(
                    "UPDATE users SET disabled = ? WHERE id = ?", [int(disabled), user_id]
                )
            self.db.execute(
                "UPDATE users SET credentials_changed_at = ? WHERE id = ?", [iso(now), user_id]
            )
            self.db.execute("DELETE FROM sessions WHERE user_id = ?", [user_id])

    def create_session(
        self,
        id_hash: str,
        user_id: int,
        csrf_token: str,
        *,
        now: datetime,
        expires_at: datetime,
        ip: str,
    ) -> None:
        with self.write():
            self.db.execute("DELETE FROM sessions WHERE expires_at < ?", [iso(now)])
            self.db.execute(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at, ip)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [id_hash, user_id, csrf_token, iso(now), iso(expires_at), ip],
            )
            self.db.execute("UPDATE users SET last_login_at = ? WHERE id = ?", [iso(now), user_id])

    def session(self, id_hash: str) -> SessionRow | None:
        rows = list(
            self.db.query(
                "SELECT s.id_hash AS s_id, s.csrf_token AS s_csrf, s.created_at AS s_created,"
                " s.expires_at AS s_expires, u.* FROM sessions s JOIN users u ON u.id = s.user_id"
                " WHERE s.id_hash = ?",
                [id_hash],
            )
        )
        if not rows:
            return None
        row = rows[0]
        return SessionRow(
            id_hash=row["s_id"],
            user=UserRow.from_row(row),
            csrf_token=row["s_csrf"],
            created_at=datetime.fromisoformat(row["s_created"]),
            expires_at=datetime.fromisoformat(row["s_expires"]),
        )

    def delete_session(self, id_hash: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE id_hash = ?", [id_hash])

    def failed_logins(
        self, *, since: datetime, username: str | None = None, ip: str | None = None
    ) -> tuple[int, datetime | None]:
        """Failed attempts since ``since`` for a user name or an address (and the oldest of
        them, from which a caller can tell when the window frees up)."""
        column, value = ("username", username) if username is not None else ("ip", ip)
        # column is one of two fixed names, never input.
        row = self.db.execute(
            f"SELECT COUNT(*), MIN(at) FROM login_attempts"  # noqa: S608
            f" WHERE {column} = ? AND ok = 0 AND at >= ?",
            [value, iso(since)],
        ).fetchone()
        return int(row[0]), parse_iso(row[1])

    def prune_login_attempts(self, before: datetime) -> None:
        self.db.execute("DELETE FROM login_attempts WHERE at < ?", [iso(before)])

    # ------------------------------------------------------------ API tokens

    def add_token(
        self, name: str, token_hash: str, role: TokenRole, created_by: str, now: datetime
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO api_tokens (name, token_hash, role, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [name, token_hash, TokenRole(role).value, created_by, iso(now)],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        """A live (not revoked) token by the hash of its secret."""
        rows = list(
            self.db.query(
                "SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                [token_hash],
            )
        )
        return TokenRow.from_row(rows[0]) if rows else None

    def touch_token(self, token_id: int, now: datetime) -> None:
        self.db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [iso(now), token_id])

    def tokens(self) -> list[TokenRow]:
        return [
            TokenRow.from_row(row) for row in self.db.query("SELECT * FROM api_tokens ORDER BY id")
        ]

    def revoke_token(self, token_id: int, now: datetime) -> bool:
        cursor = self.db.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            [iso(now), token_id],
        )
        return cursor.rowcount > 0

    # ------------------------------------------------------------ admin-managed projects
    # mirror/projects.py layers these rows over the config file; everything else asks it.

    def allowlist(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM allowlist ORDER BY name"))

    def allowlist_entry(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM allowlist WHERE name = ?", [name]))
        return rows[0] if rows else None

    def add_to_allowlist(self, name: str, requirement: str, actor: str, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO allowlist (name, requirement, added_by, added_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET requirement = excluded.requirement,"
            " added_by = excluded.added_by, added_at = excluded.added_at",
            [name, requirement, actor, iso(now)],
        )

    def remove_from_allowlist(self, name: str) -> bool:
        return self.db.execute("DELETE FROM allowlist WHERE name = ?", [name]).rowcount > 0

    def project_policies(self) -> dict[str, dict[str, Any]]:
        """name -> {"allow": [...], "cooldown_seconds": float | None, ...}"""
        policies = {}
        for row in self.db.query("SELECT * FROM project_policy ORDER BY name"):
            row["allow"] = json.loads(row["allow"])
            policies[row["name"]] = row
        return policies

    def set_project_policy(
        self,
        name: str,
        *,
        allow: Sequence[str],
        cooldown_seconds: float | None,
        actor: str,
        now: datetime,
    ) -> None:
        self.db.execute(
            "INSERT INTO project_policy (name, allow, cooldown_seconds, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET allow = excluded.allow,"
            " cooldown_seconds = excluded.cooldown_seconds, updated_by = excluded.updated_by,"
            " updated_at = excluded.updated_at",
            [name, json.dumps(list(allow)), cooldown_seconds, actor, iso(now)],
        )

    def delete_project_policy(self, name: str) -> bool:
        return self.db.execute("DELETE FROM project_policy WHERE name = ?", [name]).rowcount > 0

    def carried_projects(self) -> list[dict[str, Any]]:
        """Every project the mirror holds files for or has looked up: {name, display_name,
        reason ('configured' or 'dependency'), required_by, first_seen}, by name."""
        return list(
            self.db.query(
                "SELECT name, display_name, reason, required_by, first_seen FROM projects"
                " ORDER BY name"
            )
        )

    def carried_project(self, name: str) -> dict[str, Any] | None:
        """One row of ``carried_projects`` (without the stored upstream listing)."""
        rows = list(
            self.db.query(
                "SELECT name, display_name, reason, required_by, first_seen FROM projects"
                " WHERE name = ?",
                [name],
            )
        )
        return rows[0] if rows else None

    def file_counts_by_project(self) -> dict[str, dict[str, int]]:
        """project -> {state: files}, every state present (0 when none). One pass over the
        files_project index."""
        counts: dict[str, dict[str, int]] = {}
        for project, state, count in self.db.execute(
            "SELECT project, state, COUNT(*) FROM files GROUP BY project, state"
        ).fetchall():
            counts.setdefault(project, {s.value: 0 for s in State})[state] = count
        return counts

    # ------------------------------------------------------------ client requests

    def count_project_requests(self, hits: Mapping[str, int], now: datetime) -> int:
        """Add ``hits`` (normalized name -> count) for names clients asked for, skipping
        any the mirror carries (a project it holds or has on the allowlist). At most
        MAX_PROJECT_REQUESTS names are kept: a new name beyond that evicts the least asked
        for (oldest first), so a flood of one-off names cannot lock out a project people
        keep asking for. Returns how many names were counted."""
        counted = 0
        with self.write():
            (size,) = self.db.execute("SELECT COUNT(*) FROM project_requests").fetchone()
            for name, count in hits.items():
                carried = self.db.execute(
                    "SELECT 1 FROM projects WHERE name = ?"
                    " UNION ALL SELECT 1 FROM allowlist WHERE name = ? LIMIT 1",
                    [name, name],
                ).fetchone()
                if carried:
                    continue
                counted += 1
                updated = self.db.execute(
                    "UPDATE project_requests SET hits = hits + ?, last_at = ? WHERE name = ?",
                    [count, iso(now), name],
                ).rowcount
                if updated:
                    continue
                if size >= MAX_PROJECT_REQUESTS:
                    size -= self.db.execute(
                        "DELETE FROM project_requests WHERE name IN (SELECT name FROM"
                        " project_requests ORDER BY hits, last_at LIMIT ?)",
                        [size - MAX_PROJECT_REQUESTS + 1],
                    ).rowcount
                size += 1
                self.db.execute(
                    "INSERT INTO project_requests (name, hits, first_at, last_at)"
                    " VALUES (?, ?, ?, ?)",
                    [name, count, iso(now), iso(now)],
                )
        return counted

    def project_requests(self, *, limit: int = 500) -> list[dict[str, Any]]:
        """Requested names the mirror still does not carry, most asked for first:
        {name, hits, first_at, last_at}."""
        return list(
            self.db.query(
                "SELECT r.* FROM project_requests r"
                " WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.name = r.name)"
                " AND NOT EXISTS (SELECT 1 FROM allowlist a WHERE a.name = r.name)"
                " ORDER BY r.hits DESC, r.last_at DESC, r.name LIMIT ?",
                [limit],
            )
        )

    def project_request(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM project_requests WHERE name = ?", [name]))
        return rows[0] if rows else None

    def forget_project_request(self, name: str) -> bool:
        return self.db.execute("DELETE FROM project_requests WHERE name = ?", [name]).rowcount > 0

    # ------------------------------------------------------------ audit

    def log_event(
        self, actor: str, action: str, subject: str, detail: str = "", *, now: datetime
    ) -> None:
        """An administrative action (users, tokens, projects, policy): append-only."""
        self.db.execute(
            "INSERT INTO events (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
            [audit_time(now), actor, action, subject, detail],
        )

    def audit_log(
        self, where: AuditFilter = AuditFilter(), *, limit: int = 500, offset: int = 0
    ) -> list[dict[str, Any]]:
        """File decisions and administrative events, newest first, as one list of rows
        {at, kind ('decision' or 'event'), seq (the row's id in its table), actor, action
        (the state a file moved to, or the event's action), subject (a filename or the
        event's subject), project, from_state, to_state, reason (or the event's detail),
        file_id}. Each side reads at most ``offset + limit`` rows, newest first through its
        index on ``at``: a page costs its depth, not the size of the log."""
        sql, params = _audit_query(where, None, offset + limit)
        return list(self.db.query(f"{sql} LIMIT ? OFFSET ?", [*params, limit, offset]))

    def iter_audit_log(
        self, where: AuditFilter = AuditFilter(), *, batch: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every row ``audit_log`` would list, in the same order, read ``batch`` rows at a
        time after the last one seen (keyset, not offset): an export of any size holds one
        batch in memory and keeps no read transaction open between batches."""
        after: AuditPosition | None = None
        while True:
            sql, params = _audit_query(where, after, batch)
            rows = list(self.db.query(f"{sql} LIMIT ?", [*params, batch]))
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]
            after = AuditPosition(last["at"], last["kind"], last["seq"])

    def audit_actions(self) -> list[str]:
        """Every action the audit log can be filtered by: the states files move to, then
        each event action recorded so far."""
        events = [
            row[0] for row in self.db.execute("SELECT DISTINCT action FROM events ORDER BY action")
        ]
        return [*(s.value for s in State), *events]

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

    # ------------------------------------------------------------ operations

    def ops_figures(self) -> OpsFigures:
        """What ``/metrics`` reports, read at scrape time: index lookups, and counts over
        the small sync_runs table (35,000 rows after a year of 15-minute syncs: ~15 ms)."""
        db = self.db
        (oldest,) = db.execute(
            "SELECT MIN(first_seen) FROM files WHERE state = 'quarantined'"
        ).fetchone()
        runs = dict(
            db.execute(
                "SELECT status, COUNT(*) FROM sync_runs WHERE status != 'running' GROUP BY status"
            ).fetchall()
        )
        last = db.execute(
            "SELECT started, finished, status, json_extract(summary, '$.bytes') FROM sync_runs"
            " WHERE status != 'running' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        (last_ok,) = db.execute(
            "SELECT MAX(finished) FROM sync_runs WHERE status = 'ok'"
        ).fetchone()
        (downloaded,) = db.execute(
            "SELECT COALESCE(SUM(json_extract(summary, '$.bytes')), 0) FROM sync_runs"
        ).fetchone()
        (fetch_errors,) = db.execute("SELECT COUNT(*) FROM fetch_errors").fetchone()
        (audit_head,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()
        return OpsFigures(
            files_by_state=self.counts_by_state(),
            oldest_held_first_seen=parse_iso(oldest),
            sync_runs={str(k): int(v) for k, v in runs.items()},
            last_sync=None
            if last is None
            else LastSync(
                started=datetime.fromisoformat(last[0]),
                finished=parse_iso(last[1]),
                status=last[2],
                bytes=int(last[3] or 0),
            ),
            last_success_finished=parse_iso(last_ok),
            downloaded_bytes=int(downloaded),
            fetch_errors=int(fetch_errors),
            audit_head=int(audit_head),
        )

    def findings_by_check(self) -> list[tuple[str, str, int]]:
        """(check id, state, count) of findings on files held or approved. A scan of those
        files' findings (~0.1-0.3 s at 300,000): callers cache it by ``audit_head``, which
        moves with every change that can alter it (findings are written with a file's
        first audit row, and states change only with one)."""
        return [
            (str(check), str(state), int(count))
            for check, state, count in self.db.execute(
                "SELECT g.check_id, f.state, COUNT(*) FROM findings g"
                " JOIN files f ON f.id = g.file_id"
                " WHERE f.state IN ('quarantined', 'approved') GROUP BY g.check_id, f.state"
            ).fetchall()
        ]

    def blob_references(self) -> list[BlobReference]:
        """Every blob the files table refers to, in the store(s) it must be in: every
        fetched file (and its core metadata and provenance) is in quarantine; approved
        ones also in published. Sizes and digests as recorded at fetch time."""
        return [
            BlobReference(
                sha256=row[0],
                size=row[1],
                metadata_sha256=row[2],
                published=bool(row[3]),
                provenance_sha256=row[4],
            )
            for row in self.db.execute(
                "SELECT sha256, MAX(size), MAX(metadata_sha256), MAX(state = 'approved'),"
                " MAX(provenance_sha256) FROM files GROUP BY sha256 ORDER BY sha256"
            ).fetchall()
        ]

    # ------------------------------------------------------------ advisories (m003)
    # quarantine/advisories.py reads OSV records; mirror/advisories.py decides what a
    # match does. These queries only store and find them.

    def store_advisories(self, records: Iterable[Parsed], now: datetime) -> AdvisoryCounts:
        """Add, update (when the record's ``modified`` is newer) or remove (withdrawn)
        advisories, in one transaction. Records naming no PyPI package are not passed in."""
        counts = AdvisoryCounts()
        with self.write():
            for record in records:
                row = self.db.execute(
                    "SELECT modified FROM advisories WHERE id = ?", [record.id]
                ).fetchone()
                if record.withdrawn or record.advisory is None:
                    if row is not None:
                        self.db.execute("DELETE FROM advisories WHERE id = ?", [record.id])
                        counts.removed += 1
                    continue
                if row is not None and datetime.fromisoformat(row[0]) >= record.modified:
                    counts.unchanged += 1
                    continue
                advisory = record.advisory
                self.db.execute(
                    "INSERT INTO advisories (id, modified, kind, severity, summary, aliases,"
                    " malicious_because, loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET modified = excluded.modified,"
                    " kind = excluded.kind, severity = excluded.severity,"
                    " summary = excluded.summary, aliases = excluded.aliases,"
                    " malicious_because = excluded.malicious_because,"
                    " loaded_at = excluded.loaded_at",
                    [
                        advisory.id,
                        advisory.modified.isoformat(),
                        advisory.kind.value,
                        advisory.severity.value,
                        advisory.summary,
                        json.dumps(list(advisory.aliases)),
                        advisory.malicious_because,
                        iso(now),
                    ],
                )
                self.db.execute(
                    "DELETE FROM advisory_packages WHERE advisory_id = ?", [advisory.id]
                )
                self.db.conn.executemany(
                    "INSERT INTO advisory_packages (advisory_id, project, affected)"
                    " VALUES (?, ?, ?)",
                    [(advisory.id, p.name, p.to_json()) for p in advisory.packages],
                )
                if row is None:
                    counts.added += 1
                else:
                    counts.updated += 1
        return counts

    def advisories_for(self, projects: Iterable[str]) -> dict[str, list[Advisory]]:
        """project (normalized) -> the advisories naming it, each carrying only what it
        says about that project; ordered by id."""
        found: dict[tuple[str, str], tuple[dict[str, Any], list[AffectedPackage]]] = {}
        names = sorted(set(projects))
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            # The IN list is placeholders only; values are parameters.
            sql = (
                "SELECT a.*, p.project AS project, p.affected AS affected"  # noqa: S608
                " FROM advisory_packages p JOIN advisories a ON a.id = p.advisory_id"
                f" WHERE p.project IN ({', '.join('?' for _ in chunk)})"
                " ORDER BY a.id, p.rowid"
            )
            for row in self.db.query(sql, chunk):
                key = (row["project"], row["id"])
                entry = found.setdefault(key, (row, []))
                entry[1].append(AffectedPackage.from_json(row["project"], row["affected"]))
        result: dict[str, list[Advisory]] = {}
        for (project, _), (row, packages) in sorted(found.items()):
            result.setdefault(project, []).append(
                Advisory(
                    id=row["id"],
                    modified=datetime.fromisoformat(row["modified"]),
                    kind=Kind(row["kind"]),
                    severity=Severity(row["severity"]),
                    summary=row["summary"],
                    aliases=tuple(json.loads(row["aliases"])),
                    packages=tuple(packages),
                    malicious_because=row["malicious_because"],
                )
            )
        return result

    def advisory_projects(self) -> list[str]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT project FROM advisory_packages ORDER BY project"
            ).fetchall()
        ]

    def advisory_counts(self) -> dict[str, int]:
        counts = {kind.value: 0 for kind in Kind}
        for kind, count in self.db.execute(
            "SELECT kind, COUNT(*) FROM advisories GROUP BY kind"
        ).fetchall():
            counts[kind] = count
        return counts

    def advisory_hits(self) -> set[tuple[int, str, str]]:
        """(file_id, advisory_id, kind) for every advisory that already acted on a file."""
        return {
            (row[0], row[1], row[2])
            for row in self.db.execute(
                "SELECT file_id, advisory_id, kind FROM advisory_hits"
            ).fetchall()
        }

    def record_advisory_hits(
        self, file_id: int, advisories: Iterable[Advisory], now: datetime
    ) -> None:
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO advisory_hits (file_id, advisory_id, kind, at)"
            " VALUES (?, ?, ?, ?)",
            [(file_id, a.id, a.kind.value, iso(now)) for a in advisories],
        )

    def add_findings(self, file_id: int, findings: Iterable[Finding]) -> None:
        """Append findings to a file already recorded (advisories, upstream deletion)."""
        self.db.conn.executemany(
            "INSERT INTO findings (file_id, check_id, severity, message, evidence, path)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(file_id, f.check, f.severity.value, f.message, f.evidence, f.path) for f in findings],
        )

    def has_finding(self, file_id: int, check_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM findings WHERE file_id = ? AND check_id = ? LIMIT 1",
            [file_id, check_id],
        ).fetchone()
        return row is not None

    # ------------------------------------------------------------ alert outbox (m003)

    def queue_alert(self, event: str, payload: Mapping[str, Any], now: datetime) -> None:
        self.db.execute(
            "INSERT INTO alert_outbox (event, payload, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?)",
            [event, json.dumps(dict(payload)), iso(now), iso(now)],
        )

    def due_alerts(self, now: datetime, *, limit: int) -> list[OutboxRow]:
        return [
            OutboxRow(
                id=row["id"],
                event=row["event"],
                payload=row["payload"],
                created_at=datetime.fromisoformat(row["created_at"]),
                attempts=row["attempts"],
                next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
                last_error=row["last_error"],
            )
            for row in self.db.query(
                "SELECT * FROM alert_outbox WHERE next_attempt_at <= ? ORDER BY id LIMIT ?",
                [iso(now), limit],
            )
        ]

    def pending_alerts(self) -> list[OutboxRow]:
        return [
            OutboxRow(
                id=row["id"],
                event=row["event"],
                payload=row["payload"],
                created_at=datetime.fromisoformat(row["created_at"]),
                attempts=row["attempts"],
                next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
                last_error=row["last_error"],
            )
            for row in self.db.query("SELECT * FROM alert_outbox ORDER BY id")
        ]

    def alert_delivered(self, alert_id: int) -> None:
        self.db.execute("DELETE FROM alert_outbox WHERE id = ?", [alert_id])

    def alert_failed(self, alert_id: int, error: str, next_attempt_at: datetime) -> None:
        self.db.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?,"
            " next_attempt_at = ? WHERE id = ?",
            [error, iso(next_attempt_at), alert_id],
        )

    def discard_alerts(self) -> int:
        """Drop every queued alert (no webhook is configured to take them)."""
        return self.db.execute("DELETE FROM alert_outbox").rowcount

    # ------------------------------------------------------------ review decisions

    def check_ids_by_file(self, file_ids: Sequence[int]) -> dict[int, list[str]]:
        """The distinct check ids of each file's findings, sorted (files with none absent):
        one query for a whole queue page."""
        found: dict[int, list[str]] = {}
        for start in range(0, len(file_ids), 500):  # well under SQLite's variable limit
            chunk = list(file_ids[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            for file_id, check_id in self.db.execute(
                # Only placeholders are formatted in; the ids are parameters.
                f"SELECT DISTINCT file_id, check_id FROM findings"  # noqa: S608
                f" WHERE file_id IN ({marks}) ORDER BY file_id, check_id",
                chunk,
            ).fetchall():
                found.setdefault(file_id, []).append(check_id)
        return found

    # ------------------------------------------------------------ login attempts, counted first

    def begin_login_attempt(self, username: str, ip: str, now: datetime) -> int:
        """A login attempt, counted as failed until :meth:`login_attempt_succeeded` says
        otherwise: written before the password is checked, so simultaneous guesses are
        counted against each other."""
        cursor = self.db.execute(
            "INSERT INTO login_attempts (username, ip, at, ok) VALUES (?, ?, ?, 0)",
            [username, ip, iso(now)],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def login_attempt_succeeded(self, attempt_id: int) -> None:
        self.db.execute("UPDATE login_attempts SET ok = 1 WHERE id = ?", [attempt_id])


@dataclass(frozen=True)
class LastSync:
    started: datetime
    finished: datetime | None
    status: str
    bytes: int


@dataclass(frozen=True)
class OpsFigures:
    files_by_state: dict[str, int]
    oldest_held_first_seen: datetime | None
    sync_runs: dict[str, int]  # finished runs by status ("ok", "failed")
    last_sync: LastSync | None  # the last finished run
    last_success_finished: datetime | None
    downloaded_bytes: int
    fetch_errors: int
    audit_head: int  # the newest audit row's id: moves with every file added or decided


@dataclass(frozen=True)
class BlobReference:
    sha256: str
    size: int
    metadata_sha256: str | None
    published: bool
    provenance_sha256: str | None = None


@dataclass(frozen=True)
class DatabaseHealth:
    """What ``qmirror doctor`` learns from a database file, opened read-only."""

    integrity: list[str]  # PRAGMA quick_check: ["ok"] when sound
    journal_mode: str
    pending_migrations: list[str]


def inspect_database(path: Path) -> DatabaseHealth:
    """Open ``path`` read-only (never creating or migrating it) and check it.
    Raises ``sqlite3.Error`` when the file cannot be opened or is not a database."""
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        integrity = [row[0] for row in conn.execute("PRAGMA quick_check(20)").fetchall()]
        (journal_mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        pending = [m.name for m in migrations.pending(SqliteUtilsDatabase(conn))]
    finally:
        conn.close()
    return DatabaseHealth(integrity, str(journal_mode), pending)


def backup_database(source: Path, target: Path) -> None:
    """A consistent copy of a live database with SQLite's online backup API: the copy is
    one snapshot even while the server and a sync write (WAL readers never block)."""
    uri = f"file:{quote(str(Path(source).resolve()))}?mode=ro"
    src = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    dst = sqlite3.connect(target)
    try:
        # One step (pages=-1): the whole copy is taken under one read transaction.
        src.backup(dst, pages=-1)
        # The copy is a plain rollback-journal file, so it is one self-contained file.
        dst.execute("PRAGMA journal_mode = DELETE")
    finally:
        dst.close()
        src.close()


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

    def live_token(self, token_hash: str) -> bool:
        """Whether a live (not revoked) API token has this digest, for ``index_auth``."""
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT 1 FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                    [token_hash],
                )
                .fetchone()
            )
        return row is not None
