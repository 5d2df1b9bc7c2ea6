"""``qmirror doctor``: is this installation able to work? One line per check.

Each check is a small function returning a :class:`Result` (``ok``, ``warn`` or
``FAIL``, what it found, and for anything but ok how to fix it). Checks never change
what they look at, except for the probe blob each store gets (written, read back,
deleted) and the one GET to the upstream root.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

import urllib3

from mirror.config import Settings
from mirror.db import Database, inspect_database, parse_iso
from mirror.storage import BlobStore, Storage, StorageError

DISK_WARN_FREE_BYTES = 5 * 1024**3  # below this, a sync of a big release may not fit
DISK_WARN_FREE_FRACTION = 0.05
DISK_FAIL_FREE_BYTES = 512 * 1024**2  # below this, SQLite and downloads start failing
SYNC_STALE_RUNNING = timedelta(hours=6)  # a run "running" this long was killed
SYNC_WARN_AGE = timedelta(days=2)  # no successful sync for this long: is cron running?
PROBE_BYTES = 4096
UPSTREAM_READ_BYTES = 1024  # the root of a real index is megabytes: read only the start


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Result:
    name: str
    level: Level
    message: str
    fix: str = ""

    def line(self) -> str:
        message = " / ".join(part.strip() for part in self.message.splitlines())
        text = f"{self.level.value:<4}  {self.name}: {message}"
        return f"{text} -- fix: {self.fix}" if self.fix and self.level != Level.OK else text


def ok(name: str, message: str) -> Result:
    return Result(name, Level.OK, message)


def warn(name: str, message: str, fix: str) -> Result:
    return Result(name, Level.WARN, message, fix)


def fail(name: str, message: str, fix: str) -> Result:
    return Result(name, Level.FAIL, message, fix)


def run_checks(
    settings: Settings, storage: Callable[[], Storage], now: Callable[[], datetime]
) -> Iterator[Result]:
    """Every check after the config (which the caller has loaded: ``config_result``).
    ``storage`` is a factory, since building a store can itself fail."""
    database = check_database(settings.database_path)
    yield database
    yield from check_storage(storage)
    yield check_upstream(settings.upstream.url, settings.upstream.timeout)
    yield check_disk(settings.data_dir)
    if database.level != Level.FAIL:  # else the database line has said what is wrong
        yield check_last_sync(settings.database_path, now())


def config_result(settings: Settings) -> Result:
    where = "built-in defaults (no config file)" if settings.source == "defaults" else ""
    return ok("config", f"loaded from {where or settings.source}; data dir {settings.data_dir}")


# ---------------------------------------------------------------- database


def check_database(path: Path) -> Result:
    name = "database"
    if not path.exists():
        return fail(name, f"{path} does not exist", "run `qmirror init` (or check data_dir)")
    try:
        health = inspect_database(path)
    except sqlite3.DatabaseError as error:
        if "not a database" in str(error) or "malformed" in str(error):
            return fail(
                name,
                f"{path} is corrupt ({error})",
                "stop the server and restore a backup: `qmirror restore DIR --force`",
            )
        return fail(
            name,
            f"cannot open {path} ({error})",
            "make the data dir and the database writable by the user that runs qmirror "
            "(SQLite in WAL mode writes beside the file even to read)",
        )
    if health.integrity != ["ok"]:
        problems = [
            line.strip()
            for row in health.integrity
            for line in row.splitlines()
            if line.strip() and not line.startswith("*** in database")
        ] or health.integrity
        return fail(
            name,
            f"{path} failed PRAGMA quick_check ({len(problems)} problem(s), the first: "
            f"{problems[0]})",
            "stop the server and restore a backup: `qmirror restore DIR --force`",
        )
    if health.pending_migrations:
        return fail(
            name,
            f"{path} is not migrated ({len(health.pending_migrations)} pending: "
            f"{', '.join(health.pending_migrations)})",
            "run `qmirror init` (serve and sync migrate too)",
        )
    if health.journal_mode.lower() != "wal":
        return warn(
            name,
            f"{path} is in {health.journal_mode} journal mode, not WAL "
            "(readers and the writer block each other)",
            "run `qmirror init`, which turns WAL on",
        )
    return ok(name, f"{path}: opens, migrated, quick_check ok, WAL")


# ---------------------------------------------------------------- storage


def check_storage(storage: Callable[[], Storage]) -> Iterator[Result]:
    fix = "make the data dir writable by the user that runs qmirror"
    try:
        stores = storage()
    except (OSError, StorageError) as error:
        yield fail("storage", f"cannot open the blob stores: {_reason(error)}", fix)
        return
    for store in (stores.quarantine, stores.published):
        yield check_store(store, fix)


def check_store(store: BlobStore, fix: str) -> Result:
    """Write, read back and delete a probe blob through the BlobStore interface."""
    name = f"storage {store.name}"
    payload = secrets.token_bytes(PROBE_BYTES)
    key = f"{hashlib.sha256(payload).hexdigest()}.doctor-probe"
    step = "write"
    try:
        store.put_stream(key, io.BytesIO(payload))
        step = "read"
        with store.open(key) as stream:
            back = stream.read()
        if back != payload:
            return fail(name, "a probe blob read back different bytes", fix)
        step = "delete"
        store.delete(key)
        if store.exists(key):
            return fail(name, "a deleted probe blob is still there", fix)
    except (OSError, StorageError) as error:
        return fail(name, f"cannot {step} a probe blob: {_reason(error)}", fix)
    return ok(name, "probe blob written, read back and deleted")


# ---------------------------------------------------------------- upstream


def check_upstream(url: str, timeout: float) -> Result:
    name = "upstream"
    fix = "check [upstream] url, DNS and the network path (proxy, firewall) to it"
    pool = urllib3.PoolManager(
        headers={"User-Agent": "quarantine-mirror doctor"},
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=False,
    )
    try:
        response = pool.request("GET", url, preload_content=False, redirect=True)
    except urllib3.exceptions.NameResolutionError:
        host = urllib3.util.parse_url(url).host
        return fail(name, f"cannot resolve {host} (GET {url})", fix)
    except urllib3.exceptions.NewConnectionError as error:  # before its base class below
        return fail(name, f"cannot connect to {url} ({_connection_reason(error)})", fix)
    except urllib3.exceptions.ConnectTimeoutError:
        return fail(name, f"no connection to {url} within {timeout:g}s", fix)
    except urllib3.exceptions.SSLError as error:
        return fail(name, f"TLS failed for {url} ({error})", "check the upstream's certificate")
    except urllib3.exceptions.ReadTimeoutError:
        return fail(name, f"{url} did not answer within {timeout:g}s", fix)
    except urllib3.exceptions.HTTPError as error:
        return fail(name, f"GET {url} failed ({_reason(error)})", fix)
    try:
        response.read(UPSTREAM_READ_BYTES)
    except urllib3.exceptions.HTTPError as error:
        return fail(name, f"GET {url}: the answer broke off ({_reason(error)})", fix)
    finally:
        response.release_conn()
        pool.clear()
    if response.status >= 400:
        return fail(
            name,
            f"GET {url} answered HTTP {response.status}",
            "check [upstream] url points at a simple index root (…/simple/)",
        )
    return ok(name, f"GET {url}: HTTP {response.status}")


def _connection_reason(error: urllib3.exceptions.NewConnectionError) -> str:
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(cause, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(error).split(": ", 1)[-1]


# ---------------------------------------------------------------- disk


def check_disk(data_dir: Path) -> Result:
    name = "disk"
    where = data_dir if data_dir.exists() else _existing_parent(data_dir)
    try:
        usage = shutil.disk_usage(where)
    except OSError as error:
        return fail(name, f"cannot read free space of {where}: {_reason(error)}", "check data_dir")
    free = f"{_gib(usage.free)} free of {_gib(usage.total)} at {where}"
    fix = "free space or move data_dir to a bigger disk"
    if usage.free < DISK_FAIL_FREE_BYTES:
        return fail(name, f"only {free}", fix)
    if usage.free < DISK_WARN_FREE_BYTES or usage.free < usage.total * DISK_WARN_FREE_FRACTION:
        return warn(name, f"low: {free}", fix)
    return ok(name, free)


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _gib(count: int) -> str:
    return f"{count / 1024**3:.1f} GiB"


# ---------------------------------------------------------------- last sync


def check_last_sync(database_path: Path, now: datetime) -> Result:
    name = "last sync"
    db = Database(database_path)
    try:
        last = db.last_sync_run()
    except sqlite3.Error as error:
        return fail(name, f"cannot read sync runs ({error})", "see the database line above")
    finally:
        db.close()
    if last is None:
        return warn(name, "no sync has run yet", "run `qmirror sync` (and schedule it, see Cron)")
    started = datetime.fromisoformat(last["started"])
    finished = parse_iso(last["finished"])
    if last["status"] == "running":
        if now - started > SYNC_STALE_RUNNING:
            return warn(
                name,
                f"a sync started {_ago(now - started)} ago is still marked running",
                "it was probably killed; run `qmirror sync` again",
            )
        return ok(name, f"running since {_ago(now - started)} ago")
    when = finished or started
    if last["status"] == "failed":
        return warn(
            name,
            f"the sync {_ago(now - when)} ago reported failures",
            "run `qmirror status` and `qmirror sync` to see which projects or files failed",
        )
    if now - when > SYNC_WARN_AGE:
        return warn(
            name,
            f"the last sync finished {_ago(now - when)} ago",
            "check the cron job that runs `qmirror sync`",
        )
    return ok(name, f"ok, finished {_ago(now - when)} ago")


def _ago(delta: timedelta) -> str:
    seconds = max(0.0, delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)
