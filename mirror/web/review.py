"""The review queue, a file's detail page, and the decisions taken there.

Every decision goes through :class:`mirror.publish.Publisher` (one audit row each, the
index re-rendered before the response), needs a reason, and is a POST carrying the
session's CSRF token (checked in :mod:`mirror.web.security` before any view runs).
"""

from __future__ import annotations

import email.parser
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, abort, current_app, flash, render_template, request, url_for
from werkzeug.wrappers import Response

from mirror.db import FileRow, QueueFilter, Role, State
from mirror.history import previous_approved, stored_snapshot
from mirror.publish import APPROVABLE, REJECTABLE, REVOCABLE, Publisher, PublishError
from mirror.web.security import actor, login_required
from quarantine.drift import Snapshot, drift_findings
from quarantine.findings import Finding, Severity
from quarantine.policy import COOLDOWN_REASON, Action

bp = Blueprint("review", __name__, url_prefix="/admin")

PAGE_SIZE = 100
MAX_REASON = 2000
MEMBERS_SHOWN = 1000
STATE_FILTERS = ("quarantined", "approved", "rejected", "revoked", "all")
VERBS = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}


def _services() -> Any:
    return current_app.extensions["qmirror"]


def _publisher() -> Publisher:
    services = _services()
    return Publisher(services.db, services.storage, services.clock)


# ---------------------------------------------------------------- queue


def held_why(row: FileRow, new_projects: set[str]) -> list[str]:
    """Why a held file waits, in a reviewer's words: findings, cooldown, new project."""
    why = []
    if any(not reason.startswith(COOLDOWN_REASON) for reason in row.held_reasons):
        why.append("findings")
    if any(reason.startswith(COOLDOWN_REASON) for reason in row.held_reasons):
        why.append("cooldown")
    if row.project in new_projects:
        why.append("new project")
    return why


@bp.get("/")
@login_required(Role.REVIEWER)
def queue() -> str:
    services = _services()
    db = services.db
    args = request.args
    state = args.get("state", "quarantined")
    if state not in STATE_FILTERS:
        abort(400, description="state must be one of " + ", ".join(STATE_FILTERS))
    severity = args.get("severity") or None
    if severity is not None and severity not in {s.value for s in Severity}:
        abort(400, description="unknown severity")
    try:
        page = max(0, int(args.get("page", "0")))
    except ValueError:
        abort(400, description="page must be a number")
    states = tuple(State) if state == "all" else (State(state),)
    where = QueueFilter(
        states=states,
        project=(args.get("project") or "").strip().lower() or None,
        search=(args.get("q") or "").strip()[:200] or None,
        severity=severity,
        check_id=args.get("check") or None,
    )
    rows = db.queue(where, limit=PAGE_SIZE + 1, offset=page * PAGE_SIZE)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    new_projects = {r.file.project for r in rows} - db.projects_with_approved()
    return render_template(
        "admin/queue.html",
        nav="queue",
        rows=rows,
        why={r.file.id: held_why(r.file, new_projects) for r in rows},
        counts=db.counts_by_state(),
        check_ids=db.check_ids_with_findings(),
        severities=[s.value for s in Severity],
        filters={
            "state": state,
            "project": where.project or "",
            "q": where.search or "",
            "severity": severity or "",
            "check": where.check_id or "",
        },
        page=page,
        more=more,
        now=services.clock(),
    )


@bp.post("/bulk")
@login_required(Role.REVIEWER)
def bulk() -> Response:
    verb = request.form.get("action", "")
    if verb not in ("approve", "reject"):
        abort(400, description="action must be approve or reject")
    reason = _reason()
    ids = _ids(request.form.getlist("file_id"))
    if not ids:
        flash("Select at least one file.", "error")
        return _back(url_for("review.queue"))
    db = _services().db
    rows = [row for row in (db.file_by_id(i) for i in ids) if row is not None]
    _decide_each(verb, rows, reason)
    return _back(url_for("review.queue"))


# ---------------------------------------------------------------- file detail


@dataclass(frozen=True)
class DiffRow:
    label: str
    before: list[str]
    after: list[str]

    @property
    def added(self) -> set[str]:
        return set(self.after) - set(self.before)

    @property
    def removed(self) -> set[str]:
        return set(self.before) - set(self.after)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def drift_rows(before: Snapshot, after: Snapshot) -> list[DiffRow]:
    """The side-by-side view of two snapshots: what drift compares, field by field."""

    def publishers(snap: Snapshot) -> list[str]:
        return (
            ["(no provenance)"]
            if snap.publishers is None
            else [p.describe() for p in snap.publishers]
        )

    return [
        DiffRow("File", [before.filename], [after.filename]),
        DiffRow("Size", [f"{before.size:,} bytes"], [f"{after.size:,} bytes"]),
        DiffRow("Members", [f"{before.member_count:,}"], [f"{after.member_count:,}"]),
        DiffRow("Author/maintainer e-mail", sorted(before.emails), sorted(after.emails)),
        DiffRow("Link hosts", sorted(before.url_hosts), sorted(after.url_hosts)),
        DiffRow(
            "Dependencies",
            sorted(before.dependencies.values()),
            sorted(after.dependencies.values()),
        ),
        DiffRow("Commands (console/GUI scripts)", sorted(before.scripts), sorted(after.scripts)),
        DiffRow("Top-level names", sorted(before.top_level), sorted(after.top_level)),
        DiffRow(".pth start-up files", sorted(before.pth_files), sorted(after.pth_files)),
        DiffRow("Native binaries", sorted(before.native_binaries), sorted(after.native_binaries)),
        DiffRow("Pickle / model files", sorted(before.model_files), sorted(after.model_files)),
        DiffRow("Publisher (PEP 740)", publishers(before), publishers(after)),
    ]


def metadata_fields(core: bytes | None) -> list[tuple[str, list[str]]]:
    """Every field of the core metadata as (name, values), in file order, as text.
    Decoded as UTF-8 the way installers read it (undecodable bytes shown as U+FFFD);
    never rendered as markup."""
    if not core:
        return []
    message = email.parser.Parser().parsestr(core.decode("utf-8", "replace"))
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(str(key), []).append(str(value))
    description = message.get_payload()
    if isinstance(description, str) and description.strip():
        fields.setdefault("Description", []).append(description)
    return list(fields.items())


@bp.get("/files/<int:file_id>")
@login_required(Role.REVIEWER)
def file(file_id: int) -> str:
    services = _services()
    db = services.db
    row = db.file_by_id(file_id)
    if row is None:
        abort(404, description="No such file.")
    details = db.file_details(row.id)
    findings = db.findings(row.id)
    previous = previous_approved(db, row.project, row.kind, row.version, row.filename)
    drift: list[DiffRow] = []
    drift_now: list[Finding] = []
    if previous is not None:
        before, after = stored_snapshot(db, previous), stored_snapshot(db, row)
        drift = drift_rows(before, after)
        drift_now = drift_findings(before, after)
    listing = db.project(row.project)
    upstream_entry = next(
        (
            item
            for item in (listing.upstream_listing or [] if listing else [])
            if item.get("filename") == row.filename
        ),
        None,
    )
    release = [r for r in db.files(project=row.project, version=row.version) if r.id != row.id]
    return render_template(
        "admin/file.html",
        nav="queue",
        row=row,
        fields=metadata_fields(details.core_metadata if details else None),
        details=details,
        members=(details.members[:MEMBERS_SHOWN] if details else ()),
        findings=findings,
        decisions=db.decisions(row.id),
        provenance=db.provenance(row.id),
        upstream_provenance=(upstream_entry or {}).get("provenance"),
        previous=previous,
        drift=drift,
        drift_findings=drift_now,
        release=release,
        clean_in_release=_clean_held(db.files(project=row.project, version=row.version)),
        can={
            "approve": row.state in APPROVABLE,
            "reject": row.state in REJECTABLE,
            "revoke": row.state in REVOCABLE,
        },
        now=services.clock(),
        members_shown=MEMBERS_SHOWN,
    )


@bp.get("/files/<int:file_id>/metadata")
@login_required(Role.REVIEWER)
def raw_metadata(file_id: int) -> Response:
    """The core metadata exactly as stored, as inert plain text."""
    details = _services().db.file_details(file_id)
    if details is None or details.core_metadata is None:
        abort(404, description="No metadata was recorded for this file.")
    return Response(
        details.core_metadata,
        mimetype="text/plain",
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Disposition": "inline",
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.get("/files/<int:file_id>/members")
@login_required(Role.REVIEWER)
def raw_members(file_id: int) -> Response:
    """Every recorded member, one per line (size, type, RECORD hash, name)."""
    details = _services().db.file_details(file_id)
    if details is None:
        abort(404, description="No member list was recorded for this file.")
    lines = (f"{m.size}\t{m.type}\t{m.record_hash or '-'}\t{m.name}\n" for m in details.members)
    return Response(
        "".join(lines),
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.post("/files/<int:file_id>/decide")
@login_required(Role.REVIEWER)
def decide(file_id: int) -> Response | tuple[str, int]:
    verb = request.form.get("action", "")
    if verb not in VERBS:
        abort(400, description="action must be approve, reject or revoke")
    reason = _reason()
    row = _services().db.file_by_id(file_id)
    if row is None:
        abort(404, description="No such file.")
    _decide_each(verb, [row], reason)
    return _back(url_for("review.file", file_id=file_id))


@bp.post("/releases/<project>/<version>/approve-clean")
@login_required(Role.REVIEWER)
def approve_release(project: str, version: str) -> Response:
    """Approve every held file of a release that nothing holds but the cooldown."""
    reason = _reason()
    db = _services().db
    clean = _clean_held(db.files(project=project, version=version))
    if not clean:
        flash("No held file of this release is clean.", "error")
    else:
        _decide_each("approve", clean, reason)
    back = request.form.get("back_to_file", "")
    target = (
        url_for("review.file", file_id=int(back)) if back.isdigit() else url_for("review.queue")
    )
    return _back(target)


# ---------------------------------------------------------------- helpers


def _clean_held(rows: Iterable[FileRow]) -> list[FileRow]:
    """Held files with no finding that the policy would hold or reject them for."""
    services = _services()
    policy = services.settings.policy.build()
    clean = []
    for row in rows:
        if row.state is not State.QUARANTINED:
            continue
        actions = {
            policy.action_for(
                Finding(f["check_id"], Severity(f["severity"]), f["message"]), row.project
            )
            for f in services.db.findings(row.id)
        }
        if not actions & {Action.HOLD, Action.REJECT}:
            clean.append(row)
    return clean


def _reason() -> str:
    reason = " ".join(request.form.get("reason", "").split())
    if not reason:
        abort(400, description="A decision needs a reason; nothing was changed.")
    if len(reason) > MAX_REASON:
        abort(400, description=f"A reason can have at most {MAX_REASON} characters.")
    return reason


def _ids(values: list[str]) -> list[int]:
    ids = []
    for value in values[:1000]:
        if not value.isdigit():
            abort(400, description="file ids are numbers")
        ids.append(int(value))
    return ids


def _decide_each(verb: str, rows: list[FileRow], reason: str) -> None:
    """One decision per file, so a file someone else decided first does not stop the
    rest; each outcome is a flash message."""
    publisher = _publisher()
    who = actor()
    for row in rows:
        if verb == "approve" and row.state is not State.QUARANTINED and len(rows) > 1:
            flash(f"Skipped {row.filename}: it is {row.state.value}.", "error")
            continue
        try:
            cast(Any, getattr(publisher, verb))([row], actor=who, reason=reason)
        except PublishError as error:
            flash(str(error), "error")
            continue
        flash(f"{VERBS[verb].capitalize()} {row.filename}.", "ok")


def _back(target: str) -> Response:
    return Response(status=303, headers={"Location": target})
