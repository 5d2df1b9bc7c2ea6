"""plan -> fetch -> judge -> record -> publish-if-approved.

One sync at a time (an flock on ``<data_dir>/sync.lock``, released by the kernel even
when the process is killed). Downloads land in ``<data_dir>/tmp`` and only become a
quarantined blob, then a database row, once they are whole and their hash matches: a
killed sync leaves at most a temp file, which the next run removes.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import itertools
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from mirror import provenance as provenance_
from mirror.advisories import AdvisoryChecker
from mirror.alerts import Event, deliver_quietly, queue_alert
from mirror.config import Settings, is_internal
from mirror.db import Database, FileDetails, FileRow, NewFile, State, parse_iso, utcnow
from mirror.history import previous_approved, stored_snapshot
from mirror.projects import Projects
from mirror.publish import Publisher, PublishError, metadata_key, provenance_key
from mirror.simple import refresh_pages
from mirror.storage import Storage, StorageError
from mirror.targets import Targets
from mirror.upstream import (
    DownloadError,
    ProjectNotFound,
    UpstreamClient,
    UpstreamError,
    UpstreamFile,
)
from quarantine.checks import (
    CORE_METADATA_MISMATCH,
    PROVENANCE_INVALID,
    UPSTREAM_DELETED,
    UPSTREAM_HASH_MISSING,
)
from quarantine.checks.installed import popular_projects
from quarantine.drift import DriftContext, Snapshot, drift_findings, snapshot_of
from quarantine.findings import CheckContext, Finding, Severity
from quarantine.inspection import Inspection, inspect_file
from quarantine.policy import COOLDOWN_REASON, Action, Policy, Verdict, decide

log = logging.getLogger("qmirror.sync")

POLICY_ACTOR = "policy"
_temp_counter = itertools.count()


class SyncLocked(Exception):
    """Another sync holds the lock."""


@dataclass
class SyncSummary:
    projects: int = 0
    new: int = 0
    approved: int = 0
    held: int = 0
    rejected: int = 0
    failed: int = 0
    bytes: int = 0
    revoked: int = 0  # approved files an advisory or the upstream's deletion took down
    flagged: int = 0  # approved files flagged for review, still served
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        after = "".join(
            f", {count} {what}"
            for count, what in ((self.revoked, "revoked"), (self.flagged, "flagged"))
            if count
        )
        return (
            f"sync: {self.projects} projects, {self.new} new files, {self.approved} approved, "
            f"{self.held} held, {self.rejected} rejected, {self.failed} failed, "
            f"{_human_bytes(self.bytes)} downloaded{after}"
        )

    def log_fields(self) -> dict[str, Any]:
        """The counts as fields of the summary's log record (JSON keys under cron)."""
        return {
            "event": "sync-summary", "projects": self.projects, "new": self.new,
            "approved": self.approved, "held": self.held, "rejected": self.rejected,
            "failed": self.failed, "bytes": self.bytes,
        }  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "projects": self.projects, "new": self.new, "approved": self.approved,
            "held": self.held, "rejected": self.rejected, "failed": self.failed,
            "bytes": self.bytes, "revoked": self.revoked, "flagged": self.flagged,
            "errors": self.errors[:50],
        }  # fmt: skip


def _human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class Progress(Protocol):
    """How sync tells a person what it is doing: a bar on a terminal, lines under cron."""

    def start(self, total_files: int, label: str) -> None: ...

    def advance(self, filename: str, outcome: str, size: int) -> None: ...

    def finish(self) -> None: ...


class LogProgress:
    def start(self, total_files: int, label: str) -> None:
        if total_files:
            log.info("%s: fetching %d new files", label, total_files)

    def advance(self, filename: str, outcome: str, size: int) -> None:
        log.info("%s: %s (%s)", filename, outcome, _human_bytes(size))

    def finish(self) -> None:
        pass


@dataclass(frozen=True)
class Want:
    """One reason to mirror some versions of a project."""

    specifier: SpecifierSet
    extras: frozenset[str]
    reason: str  # "configured" or the project that depends on it


@contextmanager
def sync_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "sync.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SyncLocked(f"another sync is running (pid {holder}); try again later") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def _file_to_dict(file: UpstreamFile) -> dict[str, Any]:
    return {
        "filename": file.filename,
        "url": file.url,
        "hashes": dict(file.hashes),
        "requires_python": file.requires_python,
        "yanked": file.yanked,
        "upload_time": None if file.upload_time is None else file.upload_time.isoformat(),
        "size": file.size,
        "core_metadata": None if file.core_metadata is None else dict(file.core_metadata),
        "provenance": file.provenance,
    }


def _file_from_dict(data: dict[str, Any]) -> UpstreamFile:
    return UpstreamFile(
        filename=data["filename"],
        url=data["url"],
        hashes=data["hashes"],
        requires_python=data["requires_python"],
        yanked=data["yanked"],
        upload_time=parse_iso(data["upload_time"]),
        size=data["size"],
        core_metadata=data["core_metadata"],
        provenance=data["provenance"],
    )


@dataclass(frozen=True)
class _Candidate:
    file: UpstreamFile
    version: Version
    kind: str


class Syncer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage,
        upstream: UpstreamClient,
        policy: Policy,
        *,
        clock: Callable[[], datetime] = utcnow,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.upstream = upstream
        self.policy = policy
        self.clock = clock
        self.progress = progress or LogProgress()
        self.publisher = Publisher(db, storage, clock)
        self.advisories = AdvisoryChecker(db, self.publisher, policy, clock)
        self.targets = Targets(settings.sync.python_versions, settings.sync.platforms)
        self.tmp_dir = settings.data_dir / "tmp"

    # ------------------------------------------------------------ the run

    def run(self) -> SyncSummary:
        with sync_lock(self.settings.data_dir):
            self._clean_tmp()
            summary = SyncSummary()
            started = self.clock()
            run_id = self.db.start_sync_run(started)
            status = "failed"
            try:
                self._sync_projects(summary)
                # Before held files are judged again, so a cooldown-held file that an
                # advisory names meanwhile is never approved by this run.
                self._recheck_advisories(summary)
                self._rejudge_held(summary)
                status = "ok" if summary.failed == 0 else "failed"
            finally:
                finished = self.clock()
                self.db.finish_sync_run(run_id, status, summary.as_dict(), finished)
                log.log(
                    logging.INFO if status == "ok" else logging.WARNING,
                    "%s",
                    summary.line(),
                    extra={
                        **summary.log_fields(), "status": status,
                        "duration_seconds": round((finished - started).total_seconds(), 3),
                    },
                )  # fmt: skip
                if status == "failed":
                    self._alert_failed(summary)
                # After the work, and never failing it: a down receiver waits for the next run.
                deliver_quietly(self.db, self.settings.alerts, self.clock)
            return summary

    def _alert_failed(self, summary: SyncSummary) -> None:
        errors = "; ".join(summary.errors[:5]) or "the run stopped with an error (see the log)"
        try:
            queue_alert(
                self.db, Event.SYNC_FAILED, now=self.clock(), reason=f"{summary.line()}: {errors}"
            )
        except Exception:
            log.exception("cannot queue the sync-failed alert")

    def _recheck_advisories(self, summary: SyncSummary) -> None:
        report = self.advisories.check()
        summary.rejected += len(report.rejected)
        summary.revoked += len(report.revoked)
        summary.flagged += len(report.flagged)
        if report.matched:
            log.info("%s", report.line())

    def _clean_tmp(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)

    def _sync_projects(self, summary: SyncSummary) -> None:
        wants: dict[NormalizedName, list[Want]] = {}
        queue: deque[NormalizedName] = deque()
        listings: dict[NormalizedName, list[UpstreamFile] | None] = {}
        refused: set[str] = set()

        def add_want(name: str, want: Want, display: str) -> None:
            key = canonicalize_name(name)
            if is_internal(key, self.settings.policy.internal):
                # Dependency confusion: an internal name is never looked up upstream,
                # whoever asks for it.
                if key not in refused:
                    refused.add(key)
                    log.warning("%s: internal project name, not pulled from upstream", key)
                return
            if want in wants.setdefault(key, []):
                return
            reason = "configured" if want.reason == "configured" else "dependency"
            self.db.ensure_project(
                key, display, reason, None if reason == "configured" else want.reason
            )
            wants[key].append(want)
            if key not in queue:
                queue.append(key)

        for requirement in Projects(self.settings, self.db, self.clock).requirements():
            add_want(
                requirement.name,
                Want(requirement.specifier, frozenset(requirement.extras), "configured"),
                requirement.name,
            )

        while queue:
            name = queue.popleft()
            if name not in listings:
                listings[name] = self._listing(name, summary)
                summary.projects += 1
            listing = listings[name]
            if listing is None:
                continue
            candidates = self._select(name, listing, wants[name])
            self._fetch_new(name, candidates, summary)
            self._update_yanked(name, candidates)
            if not self.settings.sync.dependencies:
                continue
            for dependency, want in self._dependencies(name, candidates, wants[name]):
                add_want(dependency.name, want, dependency.name)

    # ------------------------------------------------------------ plan

    def _listing(self, name: NormalizedName, summary: SyncSummary) -> list[UpstreamFile] | None:
        project = self.db.project(name)
        cached = project.upstream_listing if project else None
        try:
            page = self.upstream.project_page(
                name, etag=project.upstream_etag if project and cached is not None else None
            )
        except ProjectNotFound as error:
            summary.failed += 1
            summary.errors.append(f"{name}: not found upstream")
            log.warning("%s: not found upstream (%s)", name, error)
            return None
        except UpstreamError as error:
            summary.failed += 1
            summary.errors.append(f"{name}: {error}")
            log.error("%s: cannot read the upstream page: %s", name, error)
            if cached is not None:  # keep judging and following what we already know
                return [_file_from_dict(item) for item in cached]
            return None
        if page.not_modified and cached is not None:
            return [_file_from_dict(item) for item in cached]
        self.db.save_upstream_listing(
            name, page.etag, page.last_serial, [_file_to_dict(f) for f in page.files]
        )
        if not page.not_modified:
            self._check_deleted(name, page.files, summary)
        return list(page.files)

    def _check_deleted(
        self, name: NormalizedName, listed: Iterable[UpstreamFile], summary: SyncSummary
    ) -> None:
        """Files we hold or serve that the upstream's full, fresh listing no longer names
        (PyPI deletes malware). Every listed filename counts, whatever our filters take:
        the question is whether the upstream still offers the file at all. A file is
        flagged once; listed again later, it is left alone."""
        names = {file.filename for file in listed}
        for row in self.db.files(project=name, states=[State.QUARANTINED, State.APPROVED]):
            if row.filename in names or self.db.has_finding(row.id, UPSTREAM_DELETED):
                continue
            finding = Finding(
                check=UPSTREAM_DELETED,
                severity=Severity.HIGH,
                message="The upstream no longer lists this file: indexes delete files they "
                "find malicious, and a release taken down upstream should be looked at.",
                # Not the index URL: it may carry credentials, and evidence is shown around.
                evidence=f"the upstream's page for {name} lists {len(names)} files, "
                f"not {row.filename} ({row.state.value} here)",
            )
            self.db.add_findings(row.id, [finding])
            action = self.policy.action_for(finding, row.project)
            reason = f"{UPSTREAM_DELETED}: {row.filename} is no longer listed by the upstream"
            log.warning("%s: no longer listed upstream (%s here)", row.filename, row.state.value)
            try:
                if row.state is State.QUARANTINED and action in (Action.REJECT, Action.HOLD):
                    self.publisher.reject([row], actor=POLICY_ACTOR, reason=reason)
                    summary.rejected += 1
                elif row.state is State.APPROVED and action is Action.REJECT:
                    self.publisher.revoke([row], actor=POLICY_ACTOR, reason=reason)
                    summary.revoked += 1
                elif row.state is State.APPROVED and action is Action.HOLD:
                    queue_alert(
                        self.db, Event.FLAGGED, now=self.clock(), reason=reason, file=row,
                        actor=POLICY_ACTOR,
                    )  # fmt: skip
                    summary.flagged += 1
            except PublishError as error:
                log.warning("%s: %s", row.filename, error)

    def _select(
        self, name: NormalizedName, listing: list[UpstreamFile], wants: list[Want]
    ) -> list[_Candidate]:
        sync = self.settings.sync
        chosen: list[_Candidate] = []
        seen: set[str] = set()
        for file in listing:
            if file.filename in seen:
                continue  # an upstream that lists a file twice gets it judged once
            seen.add(file.filename)
            parsed = _parse_filename(file.filename)
            if parsed is None:
                continue
            file_name, version, kind, tags = parsed
            if file_name != name:
                continue  # listed under the wrong project: not ours to take
            if kind == "sdist" and not sync.sdists:
                continue
            if kind == "wheel" and (not sync.wheels or not self.targets.wheel_wanted(tags)):
                continue
            if not self.targets.python_supported(file.requires_python):
                continue
            if sync.max_file_size and file.size is not None and file.size > sync.max_file_size:
                log.info("%s: skipped, %d bytes is over max_file_size", file.filename, file.size)
                continue
            if not any(_admits(w.specifier, version, sync.prereleases) for w in wants):
                continue
            chosen.append(_Candidate(file, version, kind))
        if sync.releases:
            newest = sorted({c.version for c in chosen}, reverse=True)[: sync.releases]
            chosen = [c for c in chosen if c.version in newest]
        return chosen

    def _dependencies(
        self, name: NormalizedName, candidates: list[_Candidate], wants: list[Want]
    ) -> Iterator[tuple[Requirement, Want]]:
        extras = frozenset().union(*(w.extras for w in wants))
        seen: set[str] = set()
        for candidate in candidates:
            row = self.db.file_by_filename(candidate.file.filename)
            if row is None or not _vouched_for(row):
                continue
            for text in row.requires_dist:
                if text in seen:
                    continue
                seen.add(text)
                try:
                    requirement = Requirement(text)
                except InvalidRequirement:
                    continue  # the metadata checks report it
                if requirement.url or not self.targets.marker_applies(requirement.marker, extras):
                    continue
                yield requirement, Want(requirement.specifier, frozenset(requirement.extras), name)

    # ------------------------------------------------------------ fetch, judge, record

    def _fetch_new(
        self, name: NormalizedName, candidates: list[_Candidate], summary: SyncSummary
    ) -> None:
        known = self.db.known_filenames(name)
        self._check_changed(name, [c for c in candidates if c.file.filename in known], summary)
        new = [c for c in candidates if c.file.filename not in known]
        if not new:
            return
        self.progress.start(len(new), name)
        approvals: list[FileRow] = []
        try:
            with ThreadPoolExecutor(max_workers=self.settings.upstream.concurrency) as pool:
                futures = {pool.submit(self._fetch_one, name, c): c for c in new}
                for future in as_completed(futures):
                    candidate = futures[future]
                    try:
                        outcome, row = future.result()
                    except Exception as error:  # one bad file never stops a sync
                        if not isinstance(error, DownloadError | UpstreamError | StorageError):
                            log.exception("%s: unexpected error", candidate.file.filename)
                        summary.failed += 1
                        summary.errors.append(f"{candidate.file.filename}: {error}")
                        self.db.record_fetch_error(
                            candidate.file.filename, name, candidate.file.url, str(error)
                        )
                        log.error("%s: download failed: %s", candidate.file.filename, error)
                        self.progress.advance(candidate.file.filename, "failed", 0)
                        continue
                    summary.new += 1
                    summary.bytes += row.size
                    self.db.clear_fetch_error(row.filename)
                    if outcome is Verdict.APPROVE:
                        approvals.append(row)
                    elif outcome is Verdict.REJECT:
                        summary.rejected += 1
                    else:
                        summary.held += 1
                    self.progress.advance(row.filename, outcome.value, row.size)
        finally:
            if approvals:
                self.publisher.approve(
                    approvals, actor=POLICY_ACTOR, reason="no findings hold it; cooldown passed"
                )
                summary.approved += len(approvals)
            self.progress.finish()

    def _check_changed(
        self, name: NormalizedName, known: list[_Candidate], summary: SyncSummary
    ) -> None:
        """A file we already hold whose bytes the upstream now declares differently: a
        published file must never change, so this is a replaced (possibly hijacked) upload.
        We keep serving nothing new for it and say so loudly."""
        for candidate in known:
            declared = candidate.file.hashes.get("sha256")
            row = self.db.file_by_filename(candidate.file.filename)
            if row is None or not declared or declared.lower() == row.sha256:
                continue
            message = (
                f"the upstream now declares different bytes for {row.filename} "
                f"(sha256 {declared.lower()[:16]}…, we hold {row.sha256[:16]}…, {row.state})"
            )
            summary.failed += 1
            summary.errors.append(f"{name}: {message}")
            log.error("%s: %s", name, message)

    def _fetch_one(self, name: NormalizedName, candidate: _Candidate) -> tuple[Verdict, FileRow]:
        file = candidate.file
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # Never build a path from the upstream's filename: it is attacker-written.
        temp = self.tmp_dir / f"download-{os.getpid()}-{next(_temp_counter)}"
        try:
            # A listing without sizes (PEP 503 HTML) cannot be filtered by max_file_size
            # beforehand: the download itself stops there.
            limit = self.settings.sync.max_file_size or None
            result = self.upstream.download(file, temp, max_bytes=limit)
            inspection = inspect_file(temp, self._context(name, file))
            findings = list(inspection.findings)
            findings.extend(_weak_upstream_hash(file))
            provenance = self._provenance(file, result.sha256, findings)
            if provenance is not None:
                self.storage.quarantine.put_stream(
                    provenance_key(result.sha256), io.BytesIO(provenance.data)
                )
            findings.extend(self._drift(name, candidate, inspection, provenance))
            # Known advisories are findings like any other, before policy decides.
            named = self.advisories.matching(name, str(candidate.version))
            findings.extend(self.advisories.findings(name, str(candidate.version), named))
            metadata_sha256 = None
            if candidate.kind == "wheel" and inspection.core_metadata is not None:
                metadata_sha256 = _sha256(inspection.core_metadata)
                findings.extend(_upstream_metadata_mismatch(file, metadata_sha256))
                self.storage.quarantine.put_stream(
                    metadata_key(result.sha256), io.BytesIO(inspection.core_metadata)
                )
            self.storage.quarantine.put_file(result.sha256, temp)
        finally:
            temp.unlink(missing_ok=True)

        now = self.clock()
        # The row, its provenance and its advisory hits in one transaction: a file is
        # never recorded (and later approved) without what was learnt about it.
        with self.db.write():
            file_id = self.db.add_file(
                NewFile(
                    project=name,
                    version=str(candidate.version),
                    filename=file.filename,
                    kind=candidate.kind,
                    sha256=result.sha256,
                    size=result.size,
                    upstream_url=file.url,
                    upload_time=file.upload_time,
                    requires_python=file.requires_python,
                    yanked=file.yanked,
                    upstream_core_metadata=file.core_metadata,
                    metadata_sha256=metadata_sha256,
                    requires_dist=inspection.requires_dist,
                ),
                findings,
                now=now,
                details=FileDetails(
                    core_metadata=inspection.core_metadata,
                    members=inspection.members,
                    members_truncated=inspection.members_truncated,
                    entry_points=inspection.entry_points,
                ),
            )
            if provenance is not None:
                self.db.save_provenance(
                    file_id,
                    provenance_sha256=_sha256(provenance.data),
                    publishers=[
                        (p.kind, p.repository, p.workflow, p.environment)
                        for p in provenance.publishers
                    ],
                    verification=provenance.verification.value,
                    detail=provenance.detail,
                )
            if named:
                self.db.record_advisory_hits(file_id, named, now)
        row = self.db.file_by_id(file_id)
        assert row is not None
        return self._apply_policy(row, findings, now), row

    # ------------------------------------------------------------ history: provenance, drift

    def _provenance(
        self, file: UpstreamFile, sha256: str, findings: list[Finding]
    ) -> provenance_.Provenance | None:
        """Fetch and read the file's PEP 740 provenance, when the upstream offers one. A
        fetch failure fails the file (it is tried again next sync); an unreadable or
        (when verified) invalid object is a finding."""
        data = self.upstream.provenance(file)
        if data is None:
            return None
        verify = self.settings.checks.verify_provenance
        provenance, problem = provenance_.record(
            data, filename=file.filename, sha256=sha256, verify=verify
        )
        if provenance is None:
            findings.append(
                Finding(
                    PROVENANCE_INVALID,
                    Severity.HIGH,
                    "The upstream's provenance object for this file is not valid PEP 740.",
                    problem or "",
                )
            )
            return None
        if provenance.verification is provenance_.Verification.FAILED:
            findings.append(
                Finding(
                    PROVENANCE_INVALID,
                    Severity.HIGH,
                    "The file's attestations do not verify: its provenance may be forged.",
                    provenance.detail,
                )
            )
        return provenance

    def _drift(
        self,
        name: NormalizedName,
        candidate: _Candidate,
        inspection: Inspection,
        provenance: provenance_.Provenance | None,
    ) -> list[Finding]:
        """What changed since the project's last approved release of the same kind."""
        previous = self._previous_snapshot(name, candidate)
        if previous is None:
            return []
        current = snapshot_of(inspection, provenance.publishers if provenance else None)
        # The mirror carries only what it was asked for: a normal release that starts
        # depending on a well-known project must not look like a payload carrier.
        known = self.db.project_names() | popular_projects()
        now = self.clock()
        young = frozenset(
            dependency
            for dependency in set(current.dependencies) - set(previous.dependencies)
            if dependency in known and _created_recently(self.db.first_upload(dependency), now)
        )
        return drift_findings(previous, current, DriftContext(known, young))

    def _previous_snapshot(self, name: NormalizedName, candidate: _Candidate) -> Snapshot | None:
        row = previous_approved(
            self.db, name, candidate.kind, candidate.version, candidate.file.filename
        )
        return None if row is None else stored_snapshot(self.db, row)

    def _context(self, name: NormalizedName, file: UpstreamFile) -> CheckContext:
        return CheckContext(
            filename=file.filename,
            project=name,
            expected_hashes=file.hashes,
            known_projects=self.db.project_names(),
            pth_allowlist=frozenset(self.settings.checks.pth_allowlist),
            internal_patterns=self.settings.policy.internal,
        )

    def _apply_policy(self, row: FileRow, findings: list[Finding], now: datetime) -> Verdict:
        """Record what policy says; approvals are left to the caller (batched per project)."""
        decision = decide(
            self.policy,
            findings,
            project=row.project,
            # An upstream that does not say when a file was uploaded (PEP 503 HTML) gets
            # the cooldown counted from when we first saw the file.
            uploaded_at=row.upload_time or row.first_seen,
            now=now,
        )
        if decision.verdict is Verdict.REJECT:
            self.publisher.reject([row], actor=POLICY_ACTOR, reason="; ".join(decision.reasons))
        elif decision.verdict is Verdict.HOLD:
            self.db.set_hold(row.id, decision.reasons, decision.cooldown_until)
            if _for_review(decision.reasons) and not _for_review(row.held_reasons):
                # Newly held for a person (not merely waiting out the cooldown).
                queue_alert(
                    self.db, Event.HELD, now=now, reason="; ".join(decision.reasons), file=row,
                    actor=POLICY_ACTOR,
                )  # fmt: skip
        return decision.verdict

    def _rejudge_held(self, summary: SyncSummary) -> None:
        """A held file is judged again each sync: its cooldown may have passed, or the
        policy may have changed. Only findings and time are re-read, not the bytes."""
        now = self.clock()
        approvals: list[FileRow] = []
        for row in self.db.files(states=[State.QUARANTINED]):
            findings = [_finding_from_row(f) for f in self.db.findings(row.id)]
            verdict = self._apply_policy(row, findings, now)
            if verdict is Verdict.APPROVE:
                approvals.append(row)
            elif verdict is Verdict.REJECT:
                summary.rejected += 1
        if approvals:
            self.publisher.approve(
                approvals, actor=POLICY_ACTOR, reason="cooldown passed; no findings hold it"
            )
            summary.approved += len(approvals)

    def _update_yanked(self, name: NormalizedName, candidates: list[_Candidate]) -> None:
        changed = False
        for candidate in candidates:
            row = self.db.file_by_filename(candidate.file.filename)
            if row is not None and self.db.update_yanked(row.id, candidate.file.yanked):
                changed = changed or row.state is State.APPROVED
        if changed:
            refresh_pages(self.db, [name])


def _for_review(reasons: Iterable[str]) -> bool:
    """Whether hold reasons include more than the cooldown."""
    return any(not reason.startswith(COOLDOWN_REASON) for reason in reasons)


def _vouched_for(row: FileRow) -> bool:
    """Whether a file's dependencies may be followed: it is approved, or held only by the
    cooldown. A file held for findings must not pull new projects into the mirror."""
    if row.state is State.APPROVED:
        return True
    return row.state is State.QUARANTINED and all(
        reason.startswith(COOLDOWN_REASON) for reason in row.held_reasons
    )


def _admits(specifier: SpecifierSet, version: Version, prereleases: bool) -> bool:
    """Pre-releases only when configured, or when the specifier itself names one."""
    allow = prereleases or bool(specifier.prereleases)
    return specifier.contains(version, prereleases=allow)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


STRONG_HASHES = ("sha256", "sha384", "sha512", "blake2b")


def _weak_upstream_hash(file: UpstreamFile) -> list[Finding]:
    """Without a strong digest from the upstream, nothing vouches that these are the bytes
    the upstream published: the download was verified against nothing (or only md5)."""
    if any(name in file.hashes for name in STRONG_HASHES):
        return []
    declared = ", ".join(sorted(file.hashes)) or "none"
    return [
        Finding(
            check=UPSTREAM_HASH_MISSING,
            severity=Severity.HIGH,
            message="The upstream declared no strong hash (sha256 or better) for this file, "
            "so its bytes could not be verified against what was published.",
            evidence=f"hashes declared: {declared}",
        )
    ]


def _upstream_metadata_mismatch(file: UpstreamFile, ours: str) -> list[Finding]:
    declared = (file.core_metadata or {}).get("sha256")
    if declared and declared.lower() != ours:
        return [
            Finding(
                check=CORE_METADATA_MISMATCH,
                severity=Severity.HIGH,
                message="The upstream's PEP 658 metadata hash differs from the METADATA "
                "inside the wheel: installers that resolve from metadata would see "
                "different dependencies than the wheel installs.",
                evidence=f"upstream sha256={declared}, wheel METADATA sha256={ours}",
            )
        ]
    return []


def _finding_from_row(row: dict[str, Any]) -> Finding:
    return Finding(
        check=row["check_id"],
        severity=Severity(row["severity"]),
        message=row["message"],
        evidence=row["evidence"],
        path=row["path"],
    )


# What a wheel or sdist filename may contain (PEP 427/625 names, versions and tags). Anything
# else (a '#', a '/', an escape sequence) would break URLs, logs or terminals downstream.
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")


def _parse_filename(filename: str) -> tuple[NormalizedName, Version, str, frozenset[Any]] | None:
    if not _SAFE_FILENAME.fullmatch(filename):
        return None
    try:
        if filename.endswith(".whl"):
            name, version, _build, tags = parse_wheel_filename(filename)
            return name, version, "wheel", tags
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return name, version, "sdist", frozenset()
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


YOUNG_PROJECT_AGE = timedelta(days=30)


def _created_recently(first_upload: str | None, now: datetime) -> bool:
    moment = parse_iso(first_upload)
    return moment is not None and now - moment < YOUNG_PROJECT_AGE
