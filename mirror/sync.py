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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
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

from mirror.config import Settings, is_internal
from mirror.db import Database, FileRow, NewFile, State, parse_iso, utcnow
from mirror.publish import Publisher, metadata_key
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
from quarantine.checks import CORE_METADATA_MISMATCH, UPSTREAM_HASH_MISSING
from quarantine.findings import CheckContext, Finding, Severity
from quarantine.inspection import inspect_file
from quarantine.policy import COOLDOWN_REASON, Policy, Verdict, decide

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
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"sync: {self.projects} projects, {self.new} new files, {self.approved} approved, "
            f"{self.held} held, {self.rejected} rejected, {self.failed} failed, "
            f"{_human_bytes(self.bytes)} downloaded"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "projects": self.projects, "new": self.new, "approved": self.approved,
            "held": self.held, "rejected": self.rejected, "failed": self.failed,
            "bytes": self.bytes, "errors": self.errors[:50],
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
        self.targets = Targets(settings.sync.python_versions, settings.sync.platforms)
        self.tmp_dir = settings.data_dir / "tmp"

    # ------------------------------------------------------------ the run

    def run(self) -> SyncSummary:
        with sync_lock(self.settings.data_dir):
            self._clean_tmp()
            summary = SyncSummary()
            run_id = self.db.start_sync_run(self.clock())
            status = "failed"
            try:
                self._sync_projects(summary)
                self._rejudge_held(summary)
                status = "ok" if summary.failed == 0 else "failed"
            finally:
                self.db.finish_sync_run(run_id, status, summary.as_dict(), self.clock())
            return summary

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

        for requirement in self.settings.sync.projects:
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
        return list(page.files)

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
            result = self.upstream.download(file, temp)
            inspection = inspect_file(temp, self._context(name, file))
            findings = list(inspection.findings)
            findings.extend(_weak_upstream_hash(file))
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
        )
        row = self.db.file_by_id(file_id)
        assert row is not None
        return self._apply_policy(row, findings, now), row

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
