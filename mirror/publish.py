"""State transitions: approve, reject, revoke. Each is one audit row and takes effect on
the index at once (pages are re-rendered before the call returns).

A caller that acted on what a person saw says so with ``only_from``: "approve only if it
is still held" must not quietly overturn a rejection someone made in the meantime.

Order matters for safety. Approve copies the blob into the published store *before* the
state flips, so a listed file always has its bytes. Revoke flips the state and re-renders
the pages in one transaction, *before* deleting the bytes, so the index stops listing a
file before it stops existing; the file route also checks the servable view, so a
leftover blob is never served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from mirror.alerts import Event, queue_alert
from mirror.db import Database, FileRow, State, StateConflict, utcnow
from mirror.simple import refresh_pages
from mirror.storage import Storage, copy_blob
from quarantine.findings import Finding, Severity
from quarantine.policy import Policy, Verdict, decide


class PublishError(Exception):
    """A transition that cannot happen; the message says which file and why."""


APPROVABLE = (State.QUARANTINED, State.REJECTED, State.REVOKED)
REJECTABLE = (State.QUARANTINED,)
REVOCABLE = (State.APPROVED,)
OVERTURNABLE = (State.REJECTED, State.REVOKED)  # approving these overturns a decision
_ALERTED = {State.REJECTED: Event.REJECTED, State.REVOKED: Event.REVOKED}


def metadata_key(sha256: str) -> str:
    return f"{sha256}.metadata"


def provenance_key(sha256: str) -> str:
    return f"{sha256}.provenance"


class Publisher:
    """``alerted`` is called after a transition that queued an alert has committed (the
    web's background delivery is woken that way; the CLI and sync deliver when done)."""

    def __init__(
        self,
        db: Database,
        storage: Storage,
        clock: Callable[[], datetime] = utcnow,
        *,
        alerted: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.clock = clock
        self.alerted = alerted

    def approve(
        self,
        files: Iterable[FileRow],
        *,
        actor: str,
        reason: str,
        only_from: tuple[State, ...] = APPROVABLE,
    ) -> list[FileRow]:
        """Publish ``files``; each must be in one of ``only_from`` (checked in the
        transition's own transaction, so a decision taken meanwhile is never overturned
        by accident: pass ``(State.QUARANTINED,)`` for "only if still held")."""
        if not only_from or not set(only_from) <= set(APPROVABLE):
            raise ValueError(f"only_from must be some of {[s.value for s in APPROVABLE]}")
        done: list[FileRow] = []
        try:
            for row in files:
                # Copy what the database says now (a caller's row may predate its
                # metadata or provenance being recorded).
                self._copy_to_published(self._require(row, only_from, "approve"))
                self._transition(row, only_from, State.APPROVED, actor, reason)
                done.append(row)
        finally:
            self._refresh(done)  # what did change is on the index, even if a later row failed
        return done

    def reject(self, files: Iterable[FileRow], *, actor: str, reason: str) -> list[FileRow]:
        done = []
        for row in files:
            self._require(row, REJECTABLE, "reject")
            self._transition(row, REJECTABLE, State.REJECTED, actor, reason)
            done.append(row)
        return done

    def revoke(self, files: Iterable[FileRow], *, actor: str, reason: str) -> list[FileRow]:
        done: list[FileRow] = []
        try:
            for row in files:
                self._require(row, REVOCABLE, "revoke")
                self._transition(row, REVOCABLE, State.REVOKED, actor, reason)
                done.append(row)
        finally:
            for row in done:
                # The same bytes may still be published under another approved filename.
                if not self.db.sha256_still_servable(row.sha256):
                    self.storage.published.delete(row.sha256)
                    self.storage.published.delete(metadata_key(row.sha256))
                    self.storage.published.delete(provenance_key(row.sha256))
        return done

    def _transition(
        self, row: FileRow, expected: tuple[State, ...], to: State, actor: str, reason: str
    ) -> None:
        now = self.clock()
        try:
            # The alert is queued in the transition's own transaction: every path that
            # rejects or revokes (CLI, policy, advisories, the web) alerts, exactly once.
            with self.db.write():
                self.db.transition(
                    row.id, expected=expected, to=to, actor=actor, reason=reason, now=now
                )
                if to is State.REVOKED:
                    # In the same transaction: no moment, not even for a process killed
                    # right after the commit, when a revoked file is still listed.
                    refresh_pages(self.db, [row.project])
                if to in _ALERTED:
                    queue_alert(
                        self.db, _ALERTED[to], now=now, reason=reason, file=row, actor=actor
                    )
        except StateConflict as error:
            raise PublishError(f"cannot move {row.filename} to {to.value}: {error}") from None
        if to in _ALERTED and self.alerted is not None:
            self.alerted()  # committed: a deliverer woken now finds the alert

    def _require(self, row: FileRow, states: tuple[State, ...], verb: str) -> FileRow:
        current = self.db.file_by_id(row.id)
        if current is None or current.state not in states:
            now = "missing" if current is None else current.state.value
            raise PublishError(f"cannot {verb} {row.filename}: it is {now}")
        return current

    def _copy_to_published(self, row: FileRow) -> None:
        copy_blob(self.storage.quarantine, row.sha256, self.storage.published)
        if row.metadata_sha256:
            copy_blob(self.storage.quarantine, metadata_key(row.sha256), self.storage.published)
        if row.provenance_sha256:
            copy_blob(self.storage.quarantine, provenance_key(row.sha256), self.storage.published)

    def _refresh(self, rows: list[FileRow]) -> None:
        if rows:
            refresh_pages(self.db, {row.project for row in rows})


def clean_held(
    db: Database, policy: Policy, rows: Iterable[FileRow], *, now: datetime
) -> list[FileRow]:
    """The held files among ``rows`` that the policy would approve but for the cooldown
    (a person approving them is the point of asking): the one meaning of "clean" the
    review pages offer to approve in bulk. The policy's own :func:`decide` judges, on
    the stored findings, exactly as sync re-judges a held file."""
    clean = []
    for row in rows:
        if row.state is not State.QUARANTINED:
            continue
        findings = [
            Finding(f["check_id"], Severity(f["severity"]), f["message"], f["evidence"], f["path"])
            for f in db.findings(row.id)
        ]
        verdict = decide(policy, findings, project=row.project, uploaded_at=None, now=now)
        if verdict.verdict is Verdict.APPROVE:
            clean.append(row)
    return clean
