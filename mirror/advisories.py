"""OSV advisories in the mirror: load them (a zip export, a directory of records, one
file, or a URL), store them, and act on the files they name.

What a match does is policy's call, through the finding's check id, so that every path
(``qmirror advisories update|check``, the end of each sync, a new file at sync) acts
alike:

- on a held file, a finding whose action is *reject* (``advisory-malicious`` by default)
  rejects it at once, by ``advisory:<ID>``; other findings wait for the next judgement of
  held files (sync re-judges every held file, and runs this re-check just before);
- on an approved file, *reject* revokes it at once (gone from the index), *hold* flags it
  for review (a finding and an alert; it stays served), *warn* records the finding
  (``advisory-vulnerability`` by default).

An advisory acts on a file once (``advisory_hits``): a re-check after an unchanged
reload does nothing; a record that turns from a vulnerability into a malicious one acts
again.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import urllib3

from mirror.alerts import Event, queue_alert
from mirror.config import AdvisoriesSettings
from mirror.db import Database, FileRow, State, utcnow
from mirror.publish import Publisher, PublishError
from quarantine.advisories import (
    Advisory,
    Kind,
    OsvError,
    Parsed,
    advisory_finding,
    distinct,
    matching,
    parse_osv,
)
from quarantine.findings import Finding
from quarantine.policy import Action, Policy

log = logging.getLogger("qmirror.advisories")

MAX_RECORD_BYTES: Final = 16 * 1024 * 1024  # one OSV record; real ones are a few KB
STORE_BATCH: Final = 2000  # records per write transaction, so readers and sync get turns
DOWNLOAD_CHUNK: Final = 1024 * 1024
_temp_counter = itertools.count()


class AdvisorySourceError(Exception):
    """The source cannot be read at all. ``str()`` is one line naming it."""


# ---------------------------------------------------------------- reading sources


@dataclass
class LoadReport:
    records: int = 0  # OSV records read
    pypi: int = 0  # of them, naming at least one PyPI package
    other: int = 0  # naming none (other ecosystems only)
    withdrawn: int = 0
    invalid_versions: int = 0
    unreadable: int = 0
    first_unreadable: str | None = None
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def line(self) -> str:
        text = (
            f"advisories: {self.records} records read, {self.pypi} for PyPI "
            f"({self.added} new, {self.updated} updated, {self.unchanged} unchanged), "
            f"{self.removed} withdrawn and removed, {self.other} for other ecosystems skipped"
        )
        if self.invalid_versions:
            text += f", {self.invalid_versions} invalid versions ignored"
        if self.unreadable:
            text += f", {self.unreadable} unreadable (first: {self.first_unreadable})"
        return text


def iter_documents(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(name, JSON bytes)`` for each record file in a zip export, a directory tree of
    ``.json`` files, or one file (zip or JSON)."""
    if path.is_dir():
        for member in sorted(path.rglob("*.json")):
            if member.is_file():
                yield str(member.relative_to(path)), _read_bounded(member)
        return
    if not path.is_file():
        raise AdvisorySourceError(f"{path}: no such file or directory")
    if zipfile.is_zipfile(path):
        yield from _zip_documents(path)
        return
    yield path.name, _read_bounded(path)


def _read_bounded(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return b""  # reported as unreadable by the caller
        return path.read_bytes()
    except OSError as error:
        raise AdvisorySourceError(f"{path}: cannot read: {error.strerror}") from None


def _zip_documents(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > MAX_RECORD_BYTES:
                    yield info.filename, b""
                    continue
                with archive.open(info) as member:
                    yield info.filename, member.read(MAX_RECORD_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise AdvisorySourceError(f"{path}: not a readable zip: {error}") from None


def _records(name: str, data: bytes) -> list[Any]:
    """The OSV objects in one document: an object, a list of them, or an OSV API answer
    (``{"vulns": [...]}``)."""
    if not data or len(data) > MAX_RECORD_BYTES:
        raise OsvError(f"empty or larger than {MAX_RECORD_BYTES} bytes")
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OsvError(f"not JSON: {error}") from None
    if isinstance(parsed, dict) and "id" not in parsed and isinstance(parsed.get("vulns"), list):
        return list(parsed["vulns"])
    if isinstance(parsed, list):
        return parsed
    return [parsed]


def load_advisories(db: Database, path: Path, *, now: datetime) -> LoadReport:
    """Read every record at ``path`` and store those about PyPI (idempotent by id and
    ``modified``; withdrawn records are removed)."""
    report = LoadReport()
    batch: list[Parsed] = []
    for name, data in iter_documents(path):
        try:
            objects = _records(name, data)
        except OsvError as error:
            _unreadable(report, name, error)
            continue
        for item in objects:
            report.records += 1
            try:
                parsed = parse_osv(item)
            except OsvError as error:
                _unreadable(report, name, error)
                continue
            report.invalid_versions += parsed.invalid_versions
            if parsed.withdrawn:
                report.withdrawn += 1
            elif parsed.advisory is None:
                report.other += 1
                continue
            else:
                report.pypi += 1
            batch.append(parsed)
            if len(batch) >= STORE_BATCH:
                _store(db, batch, report, now)
                batch = []
    _store(db, batch, report, now)
    return report


def _unreadable(report: LoadReport, name: str, error: Exception) -> None:
    report.unreadable += 1
    if report.first_unreadable is None:
        report.first_unreadable = f"{name}: {error}"
    log.warning("advisory %s skipped: %s", name, error)


def _store(db: Database, batch: list[Parsed], report: LoadReport, now: datetime) -> None:
    if not batch:
        return
    counts = db.store_advisories(batch, now)
    report.added += counts.added
    report.updated += counts.updated
    report.unchanged += counts.unchanged
    report.removed += counts.removed


# ---------------------------------------------------------------- fetching a URL


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def download(url: str, dest: Path, settings: AdvisoriesSettings) -> int:
    """Stream ``url`` to ``dest`` (at most ``max_download`` bytes); returns the size.
    ``dest`` is removed on any failure."""
    pool = urllib3.PoolManager(
        headers={"User-Agent": "quarantine-mirror"},
        timeout=urllib3.Timeout(connect=settings.timeout, read=settings.timeout),
        retries=urllib3.Retry(total=3, connect=3, read=1, redirect=5, status=0, backoff_factor=1),
    )
    limit = settings.max_download
    received = 0
    try:
        response = pool.request("GET", url, preload_content=False, decode_content=True)
        try:
            if response.status != 200:
                raise AdvisorySourceError(f"GET {url}: HTTP {response.status}")
            with dest.open("wb") as out:
                for chunk in response.stream(DOWNLOAD_CHUNK):
                    received += len(chunk)
                    if limit and received > limit:
                        raise AdvisorySourceError(
                            f"GET {url}: larger than [advisories] max_download ({limit} bytes)"
                        )
                    out.write(chunk)
        finally:
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as error:
        dest.unlink(missing_ok=True)
        raise AdvisorySourceError(f"GET {url}: {type(error).__name__}: {error}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        pool.clear()
    return received


def update_from(
    db: Database, source: str, settings: AdvisoriesSettings, tmp_dir: Path, *, now: datetime
) -> LoadReport:
    """Load advisories from a path or an http(s) URL (fetched to a temp file first)."""
    if not is_url(source):
        return load_advisories(db, Path(source), now=now)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    temp = tmp_dir / f"advisories-{os.getpid()}-{next(_temp_counter)}"
    try:
        download(source, temp, settings)
        return load_advisories(db, temp, now=now)
    finally:
        temp.unlink(missing_ok=True)


# ---------------------------------------------------------------- acting on files


@dataclass
class CheckReport:
    files: int = 0  # files checked
    matched: int = 0  # files an advisory newly named
    findings: int = 0
    rejected: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"advisories check: {self.files} files, {self.matched} newly named by an "
            f"advisory ({self.findings} findings), {len(self.rejected)} rejected, "
            f"{len(self.revoked)} revoked, {len(self.flagged)} flagged for review"
        )


class AdvisoryChecker:
    """Matches stored advisories against the mirror's files and applies policy."""

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        policy: Policy,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.policy = policy
        self.clock = clock

    def matching(self, project: str, version: str) -> list[Advisory]:
        """Advisories naming a release (for a new file, before policy decides on it), one
        per flaw (see :func:`distinct`)."""
        return distinct(
            matching(self.db.advisories_for([project]).get(project, []), project, version)
        )

    def findings(self, project: str, version: str, advisories: Iterable[Advisory]) -> list[Finding]:
        return [advisory_finding(a, project, version) for a in advisories]

    def check(self, rows: Sequence[FileRow] | None = None) -> CheckReport:
        """Re-check held and approved files (all of them by default) against the
        advisories; act on what is new."""
        if rows is None:
            rows = self.db.files(states=[State.QUARANTINED, State.APPROVED])
        report = CheckReport(files=len(rows))
        by_project = self.db.advisories_for({row.project for row in rows})
        if not by_project:
            return report
        hits: dict[int, set[tuple[str, Kind]]] = {}
        for file_id, advisory_id, kind in self.db.advisory_hits():
            hits.setdefault(file_id, set()).add((advisory_id, Kind(kind)))
        for row in rows:
            known = by_project.get(row.project, [])
            acted = hits.get(row.id, set())
            fresh = distinct(
                (
                    a
                    for a in matching(known, row.project, row.version)
                    if (a.id, a.kind) not in acted
                ),
                _names_of(acted, known),
            )
            if fresh:
                self._apply(row, fresh, report)
        return report

    def _apply(self, row: FileRow, advisories: list[Advisory], report: CheckReport) -> None:
        now = self.clock()
        findings = self.findings(row.project, row.version, advisories)
        with self.db.write():
            self.db.add_findings(row.id, findings)
            self.db.record_advisory_hits(row.id, advisories, now)
        report.matched += 1
        report.findings += len(findings)
        actions = [self.policy.action_for(f, row.project) for f in findings]
        rejecting = [a for a, act in zip(advisories, actions, strict=True) if act is Action.REJECT]
        holding = [a for a, act in zip(advisories, actions, strict=True) if act is Action.HOLD]
        current = self.db.file_by_id(row.id)
        if current is None:
            return
        try:
            if rejecting and current.state is State.QUARANTINED:
                self.publisher.reject(
                    [current], actor=_actor(rejecting), reason=_reason(rejecting, current)
                )
                report.rejected.append(current.filename)
                log.warning("%s: rejected, %s", current.filename, _reason(rejecting, current))
            elif rejecting and current.state is State.APPROVED:
                self.publisher.revoke(
                    [current], actor=_actor(rejecting), reason=_reason(rejecting, current)
                )
                report.revoked.append(current.filename)
                log.warning("%s: revoked, %s", current.filename, _reason(rejecting, current))
            elif holding and current.state is State.APPROVED:
                queue_alert(
                    self.db,
                    Event.FLAGGED,
                    now=now,
                    reason=_reason(holding, current),
                    file=current,
                    actor=_actor(holding),
                )
                report.flagged.append(current.filename)
        except PublishError as error:  # someone decided first
            log.warning("%s: %s", current.filename, error)


def _names_of(acted: set[tuple[str, Kind]], known: list[Advisory]) -> set[tuple[str, Kind]]:
    """The ids that acted on a file and the aliases their stored records give (a
    withdrawn record is only its id)."""
    names = set(acted)
    for advisory in known:
        if (advisory.id, advisory.kind) in acted:
            names.update((alias, advisory.kind) for alias in advisory.aliases)
    return names


def _actor(advisories: list[Advisory]) -> str:
    return f"advisory:{advisories[0].id}"


def _reason(advisories: list[Advisory], row: FileRow) -> str:
    named = "; ".join(a.label for a in advisories)
    kinds = {a.kind for a in advisories}
    what = "malicious" if Kind.MALICIOUS in kinds else "vulnerable"
    return f"advisory says {row.project} {row.version} is {what}: {named}"


def advisory_rows_for_listing(db: Database, project: str | None) -> list[tuple[str, Advisory]]:
    """(project, advisory) pairs for ``qmirror advisories list``: one project's, or those
    naming any project the mirror carries."""
    projects = [project] if project else sorted(db.project_names())
    found = db.advisories_for(projects)
    return [(name, advisory) for name in sorted(found) for advisory in found[name]]


def describe_affected(advisory: Advisory) -> str:
    """``==1.0, >=0 <1.2.3, >=2.0 <=2.1`` for a terminal."""
    parts: list[str] = []
    for package in advisory.packages:
        parts.extend(f"=={v}" for v in package.versions)
        for version_range in package.ranges:
            bounds = []
            for kind, value in version_range.events:
                symbol = {"introduced": ">=", "fixed": "<", "last_affected": "<=", "limit": "<"}
                bounds.append(f"{symbol[kind]}{value}")
            parts.append(" ".join(bounds))
    return ", ".join(parts) or "(none)"
