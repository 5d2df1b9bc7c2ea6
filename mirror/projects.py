"""What the mirror carries and how it judges each project: the config file, with what
admins stored in the database layered over it. This is the one place the two meet; sync,
the CLI and the admin pages all ask here, so a project added in the web form is mirrored
by the next ``qmirror sync`` and an override applies at the next check.

The layering, name by name:

- Requirements: ``[sync] projects`` plus the ``allowlist`` rows. A row for a name the
  file also lists replaces the file's requirement(s) for that name: it is an admin's later
  word. Removing the row brings the file's back.
- Policy: ``[policy.projects.NAME]`` with a ``project_policy`` row over it. The row's
  allow list replaces the file's; its cooldown, when set, replaces the file's (unset: the
  file's, else ``[policy] cooldown``).

It also counts what clients ask for and the mirror does not carry (``[sync] on_demand``),
off the request path: :class:`RequestCounter`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name, is_normalized_name

from mirror.config import (
    PolicySettings,
    ProjectPolicy,
    Settings,
    is_internal,
    mirrored_requirement,
    parse_duration,
)
from mirror.db import Database, parse_iso, utcnow
from quarantine.checks import known_check_ids
from quarantine.policy import Policy

log = logging.getLogger("qmirror.projects")

MAX_NAME_LENGTH = 100  # a project name from a URL or a form; PyPI's longest are far shorter
MAX_REQUIREMENT_LENGTH = 500
MAX_ALLOWED_CHECKS = 100
MAX_COOLDOWN = timedelta(days=365)
_LIST_SEPARATORS = re.compile(r"[\s,]+")


class Source(StrEnum):
    """Where a project's requirement or override comes from."""

    CONFIG = "config"
    DATABASE = "database"


class InvalidInput(ValueError):
    """A requirement, name, check id or cooldown an admin typed that cannot be stored;
    ``str()`` says why, in words safe to show them (values quoted with ``repr``)."""


@dataclass(frozen=True)
class Mirrored:
    """A project the sync pulls, with the requirement(s) it uses for it."""

    name: NormalizedName
    requirements: tuple[Requirement, ...]
    source: Source
    config_requirements: tuple[Requirement, ...] = ()  # the file's, even when overridden
    changed_by: str | None = None  # for a database row: who added or last edited it
    changed_at: datetime | None = None

    @property
    def overrides_config(self) -> bool:
        return self.source is Source.DATABASE and bool(self.config_requirements)


@dataclass(frozen=True)
class Override:
    """A project's own policy: checks ignored for it and a cooldown of its own."""

    name: NormalizedName
    allow: tuple[str, ...]
    cooldown: timedelta | None  # None: [policy] cooldown
    source: Source
    config: ProjectPolicy | None = None  # the file's, even when overridden
    changed_by: str | None = None
    changed_at: datetime | None = None


# ---------------------------------------------------------------- what admins type


def parse_project_name(text: str) -> NormalizedName:
    """A project name as a URL or a form gives it, normalized (PEP 503); refused when it
    is not a valid name at all, or absurdly long."""
    text = text.strip()
    if not text or len(text) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a project name has 1-{MAX_NAME_LENGTH} characters")
    name = canonicalize_name(text)
    if not is_normalized_name(name):
        raise InvalidInput(f"{text[:MAX_NAME_LENGTH]!r} is not a valid project name")
    return name


def parse_requirement(text: str, internal: tuple[str, ...] = ()) -> Requirement:
    """A requirement to mirror, by the same rules as ``[sync] projects`` (no direct URLs),
    and neither an environment marker (it would mean nothing: python_versions and
    platforms choose files) nor an internal name (never pulled from upstream)."""
    text = text.strip()
    if not text:
        raise InvalidInput("enter a requirement, such as flask>=3 or requests")
    if len(text) > MAX_REQUIREMENT_LENGTH or not text.isprintable():
        raise InvalidInput(
            f"a requirement is at most {MAX_REQUIREMENT_LENGTH} printable characters"
        )
    try:
        requirement = mirrored_requirement(text)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    if requirement.marker is not None:
        raise InvalidInput(
            f"{text!r}: a marker means nothing here; [sync] python_versions and platforms "
            "choose which files are mirrored"
        )
    name = parse_project_name(requirement.name)
    if is_internal(name, internal):
        raise InvalidInput(
            f"{name!r} is an internal project name ([policy] internal): it is never pulled "
            "from upstream"
        )
    return requirement


def parse_allow(text: str) -> tuple[str, ...]:
    """Check ids separated by commas or spaces, each one from the catalogue."""
    ids = [item for item in _LIST_SEPARATORS.split(text.strip()) if item]
    if len(ids) > MAX_ALLOWED_CHECKS:
        raise InvalidInput(f"at most {MAX_ALLOWED_CHECKS} check ids")
    known = known_check_ids()
    unknown = [item for item in ids if item not in known]
    if unknown:
        shown = ", ".join(repr(item[:80]) for item in unknown[:5])
        raise InvalidInput(f"unknown check id {shown} (see `qmirror checks`)")
    return tuple(dict.fromkeys(ids))


def parse_cooldown(text: str) -> timedelta | None:
    """A duration such as ``3d``, ``12h`` or ``0``; empty means the configured one."""
    text = text.strip()
    if not text:
        return None
    try:
        cooldown = parse_duration(text[:40])
    except ValueError as error:
        raise InvalidInput(f"cooldown: {error}") from None
    if cooldown > MAX_COOLDOWN:
        raise InvalidInput(f"cooldown: at most {MAX_COOLDOWN.days} days")
    return cooldown


def describe_cooldown(cooldown: timedelta) -> str:
    seconds = int(cooldown.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---------------------------------------------------------------- the layers


class Projects:
    """The effective project list and policy, and the admin's changes to them (each one
    an ``events`` row in the same transaction)."""

    def __init__(
        self, settings: Settings, db: Database, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock

    # ------------------------------------------------------------ reading

    def _config_requirements(self) -> dict[NormalizedName, tuple[Requirement, ...]]:
        by_name: dict[NormalizedName, tuple[Requirement, ...]] = {}
        for requirement in self.settings.sync.projects:
            name = canonicalize_name(requirement.name)
            by_name[name] = (*by_name.get(name, ()), requirement)
        return by_name

    def mirrored(self) -> list[Mirrored]:
        """Every project the sync pulls (not counting dependencies), by name."""
        from_file = self._config_requirements()
        projects = {
            name: Mirrored(name, requirements, Source.CONFIG, requirements)
            for name, requirements in from_file.items()
        }
        for row in self.db.allowlist():
            name = canonicalize_name(row["name"])
            try:
                requirement = Requirement(row["requirement"])
            except InvalidRequirement:  # rows are validated when written; never stop a sync
                log.warning("%s: the stored requirement %r is not valid", name, row["requirement"])
                continue
            projects[name] = Mirrored(
                name,
                (requirement,),
                Source.DATABASE,
                from_file.get(name, ()),
                changed_by=row["added_by"],
                changed_at=parse_iso(row["added_at"]),
            )
        return [projects[name] for name in sorted(projects)]

    def requirements(self) -> list[Requirement]:
        """What ``qmirror sync`` starts from."""
        return [requirement for project in self.mirrored() for requirement in project.requirements]

    def mirrored_project(self, name: str) -> Mirrored | None:
        return next((p for p in self.mirrored() if p.name == name), None)

    def overrides(self) -> dict[NormalizedName, Override]:
        """Each project's own policy, file and database merged, by name."""
        overrides = {
            canonicalize_name(name): Override(
                canonicalize_name(name), policy.allow, policy.cooldown, Source.CONFIG, policy
            )
            for name, policy in self.settings.policy.projects.items()
        }
        for name, row in self.db.project_policies().items():
            key = canonicalize_name(name)
            from_file = overrides.get(key)
            seconds = row["cooldown_seconds"]
            cooldown = (
                timedelta(seconds=seconds)
                if seconds is not None
                else (from_file.cooldown if from_file else None)
            )
            overrides[key] = Override(
                key,
                tuple(row["allow"]),
                cooldown,
                Source.DATABASE,
                from_file.config if from_file else None,
                changed_by=row["updated_by"],
                changed_at=parse_iso(row["updated_at"]),
            )
        return dict(sorted(overrides.items()))

    def policy_settings(self) -> PolicySettings:
        merged: dict[str, ProjectPolicy] = {
            name: ProjectPolicy(allow=o.allow, cooldown=o.cooldown)
            for name, o in self.overrides().items()
        }
        return dataclasses.replace(self.settings.policy, projects=merged)

    def policy(self) -> Policy:
        """The policy every judgement uses: ``[policy]`` with each project's override."""
        return self.policy_settings().build()

    def is_internal(self, name: str) -> bool:
        return is_internal(canonicalize_name(name), self.settings.policy.internal)

    # ------------------------------------------------------------ requirements

    def add(self, text: str, *, actor: str, detail: str = "") -> Mirrored:
        """Mirror a project from the next sync on (or change the database's requirement
        for it). Raises InvalidInput, storing nothing, for a bad requirement."""
        requirement = parse_requirement(text, self.settings.policy.internal)
        name = canonicalize_name(requirement.name)
        stored = str(requirement)
        now = self.clock()
        with self.db.write():
            before = self.db.allowlist_entry(name)
            self.db.add_to_allowlist(name, stored, actor, now)
            if before is not None:
                self.db.log_event(
                    actor, "allowlist.update", name, f"{before['requirement']} -> {stored}",
                    now=now,
                )  # fmt: skip
            else:
                over = self._config_requirements().get(name)
                note = f" (over the config file's {', '.join(map(str, over))})" if over else ""
                self.db.log_event(actor, "allowlist.add", name, stored + note + detail, now=now)
            self.db.forget_project_request(name)
        found = self.mirrored_project(name)
        assert found is not None
        return found

    def replace(self, name: str, text: str, *, actor: str) -> Mirrored:
        """Edit the database's requirement for ``name``; the project stays the same."""
        requirement = parse_requirement(text, self.settings.policy.internal)
        if canonicalize_name(requirement.name) != name:
            raise InvalidInput(
                f"{text.strip()!r} names another project; add it as a new one instead"
            )
        if self.db.allowlist_entry(name) is None:
            raise InvalidInput(f"{name!r} has no requirement stored here to edit")
        return self.add(text, actor=actor)

    def remove(self, name: str, *, actor: str) -> None:
        """Drop the database's requirement: the sync stops pulling new files for it
        (unless the config file lists it; then the file's requirement applies again).
        Files already mirrored stay as they are."""
        now = self.clock()
        with self.db.write():
            before = self.db.allowlist_entry(name)
            if before is None:
                raise InvalidInput(
                    f"{name!r} has no requirement stored here; the config file's can only "
                    "be changed in the file"
                )
            self.db.remove_from_allowlist(name)
            over = self._config_requirements().get(canonicalize_name(name))
            note = f"; the config file's {', '.join(map(str, over))} applies again" if over else ""
            detail = before["requirement"] + note
            self.db.log_event(actor, "allowlist.remove", name, detail, now=now)

    # ------------------------------------------------------------ policy overrides

    def set_override(self, name: str, *, allow: str, cooldown: str, actor: str) -> Override:
        """Store a project's own policy. Raises InvalidInput, storing nothing, for an
        unknown check id or a bad cooldown."""
        key = parse_project_name(name)
        ids = parse_allow(allow)
        wait = parse_cooldown(cooldown)
        now = self.clock()
        seconds = None if wait is None else wait.total_seconds()
        detail = (
            f"allow {', '.join(ids) or 'nothing'}; cooldown "
            f"{'as configured' if wait is None else describe_cooldown(wait)}"
        )
        with self.db.write():
            self.db.set_project_policy(
                key, allow=ids, cooldown_seconds=seconds, actor=actor, now=now
            )
            self.db.log_event(actor, "policy.set", key, detail, now=now)
        return self.overrides()[key]

    def clear_override(self, name: str, *, actor: str) -> None:
        now = self.clock()
        with self.db.write():
            if not self.db.delete_project_policy(name):
                raise InvalidInput(f"{name!r} has no override stored here")
            self.db.log_event(actor, "policy.clear", name, "", now=now)

    # ------------------------------------------------------------ client requests

    def requests(self, limit: int = 500) -> list[dict[str, Any]]:
        """Names clients asked for that the mirror does not carry, most asked for first."""
        listed = set(self._config_requirements())
        return [
            row
            for row in self.db.project_requests(limit=limit)
            if row["name"] not in listed and not self.is_internal(row["name"])
        ]

    def add_requested(self, name: str, *, actor: str) -> Mirrored:
        """One click on the requests page: mirror the project, any version."""
        request = self.db.project_request(name)
        hits = f"; asked for {_times(request['hits'])}" if request else ""
        return self.add(name, actor=actor, detail=hits)

    def dismiss_request(self, name: str, *, actor: str) -> None:
        """Forget a request. Clients that keep asking bring it back."""
        now = self.clock()
        with self.db.write():
            request = self.db.project_request(name)
            if request is None or not self.db.forget_project_request(name):
                raise InvalidInput(f"no request for {name!r}")
            self.db.log_event(
                actor, "request.dismiss", name, f"asked for {_times(request['hits'])}", now=now
            )


def _times(count: int) -> str:
    return "1 time" if count == 1 else f"{count} times"


# ---------------------------------------------------------------- counting requests

FLUSH_AFTER = 5.0  # seconds a worker gathers misses before writing them, in one transaction
MAX_PENDING = 1000  # distinct names a worker holds between writes; more are not counted


class RequestCounter:
    """Counts ``/simple/<name>/`` misses for names the mirror does not carry, when
    ``[sync] on_demand`` is on.

    :meth:`hit` runs on the 404 path and does no I/O: it adds one to a dict. A timer
    thread writes what gathered ``flush_after`` seconds later, in one transaction. So a
    404 never waits on the database, however busy; a flood of misses costs one write per
    interval per worker, not one per request; and since every worker's page cache is
    dropped whenever the database changes, misses do not empty it on every request. A
    write that fails drops its counts (they are a hint for admins, not a record) and says
    so in the log."""

    def __init__(
        self,
        db: Database,
        *,
        skip: Callable[[str], bool] = lambda name: False,
        clock: Callable[[], datetime] = utcnow,
        flush_after: float = FLUSH_AFTER,
    ) -> None:
        self.db = db
        self.skip = skip
        self.clock = clock
        self.flush_after = flush_after
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._timer: threading.Timer | None = None
        self._pid = os.getpid()

    @classmethod
    def for_settings(
        cls, settings: Settings, db: Database, clock: Callable[[], datetime] = utcnow
    ) -> RequestCounter:
        """A counter that skips the config file's projects and internal names (the
        database's projects are skipped when the counts are written)."""
        listed = frozenset(canonicalize_name(r.name) for r in settings.sync.projects)
        internal = settings.policy.internal

        def skip(name: str) -> bool:
            return name in listed or is_internal(name, internal)

        return cls(db, skip=skip, clock=clock)

    def hit(self, name: str) -> None:
        """A client asked for ``name`` and got a 404."""
        if len(name) > MAX_NAME_LENGTH or not is_normalized_name(name) or self.skip(name):
            return
        with self._lock:
            if self._pid != os.getpid():  # a forked worker: the parent's timer is not ours
                self._pending, self._timer, self._pid = {}, None, os.getpid()
            if name in self._pending:
                self._pending[name] += 1
            elif len(self._pending) < MAX_PENDING:
                self._pending[name] = 1
            else:
                return
            if self._timer is None:
                self._timer = threading.Timer(self.flush_after, self._flush_in_thread)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> int:
        """Write the gathered counts now; returns how many names were counted."""
        with self._lock:
            pending, self._pending = self._pending, {}
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if not pending:
            return 0
        try:
            return self.db.count_project_requests(pending, self.clock())
        except sqlite3.Error as error:
            log.warning("could not count %d requested project names: %s", len(pending), error)
            return 0

    def _flush_in_thread(self) -> None:
        try:
            self.flush()
        except Exception:  # a counting bug must never surface in a worker's thread
            log.exception("counting requested projects failed")
        finally:
            self.db.close()  # this thread's connection; the thread ends here
