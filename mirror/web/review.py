"""The review queue, a file's detail page, and the decisions taken there.

Every decision goes through :class:`mirror.publish.Publisher` (one audit row each, the
index re-rendered before the response), needs a reason, and is a POST carrying the
session's CSRF token (checked in :mod:`mirror.web.security` before any view runs).

A decision form carries what the reviewer saw (``seen_state``; for a release, the clean
files offered): when the file has moved since (someone else decided, an advisory revoked
it) the decision is refused with 409 and nothing changes. Approving a held file never
overturns a rejection or revocation made meanwhile; overturning is its own form. A
refused decision shows the form again with the message and the reason as typed.
"""

from __future__ import annotations

import email.parser
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, current_app, flash, render_template, request, url_for
from werkzeug.wrappers import Response

from mirror.db import FileRow, QueueFilter, Role, State
from mirror.history import previous_approved, stored_snapshot
from mirror.projects import Projects
from mirror.publish import (
    OVERTURNABLE,
    REJECTABLE,
    REVOCABLE,
    Publisher,
    PublishError,
    clean_held,
)
from mirror.web.security import actor, login_required, whole_number
from quarantine.checks.unicode import escaped
from quarantine.drift import Snapshot, drift_findings
from quarantine.findings import Finding, Severity
from quarantine.policy import COOLDOWN_REASON

bp = Blueprint("review", __name__, url_prefix="/admin")

PER_PAGE = 100  # queue rows per page unless ?per_page= says otherwise
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000  # far past any real queue; keeps the offset a small integer
MAX_BULK = 500  # files in one bulk decision
MAX_REASON = 2000
MAX_ECHO = 4 * MAX_REASON  # how much of a refused reason is shown back
MAX_FILTER_CHARS = 200
MEMBERS_SHOWN = 1000
FLASHES_SHOWN = 10  # files a bulk decision's messages name one by one
STATE_FILTERS = ("quarantined", "approved", "rejected", "revoked", "all")
# Form action -> what the flash message says was done.
DONE = {"approve": "Approved", "overturn": "Approved", "reject": "Rejected", "revoke": "Revoked"}
BULK_ACTIONS = ("approve", "reject")
NOTHING_CHANGED = "Nothing was changed."


class Refused(Exception):
    """A decision refused before anything changed; the form is shown again with why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _services() -> Any:
    return current_app.extensions["qmirror"]


def _publisher() -> Publisher:
    publisher: Publisher = _services().publisher()
    return publisher


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


@dataclass(frozen=True)
class QueueView:
    """Which page of the queue is asked for: its filters, page and page size."""

    state: str
    where: QueueFilter
    page: int = 0
    per_page: int = PER_PAGE

    def args(self, **changes: int) -> dict[str, Any]:
        """The query arguments that show this page again (``changes`` applied), without
        the defaults, for links and the redirect after a bulk decision."""
        values: dict[str, Any] = {
            "state": self.state,
            "project": self.where.project or "",
            "q": self.where.search or "",
            "severity": self.where.severity or "",
            "check": self.where.check_id or "",
            "page": self.page,
            "per_page": self.per_page,
            **changes,
        }
        defaults = {"state": "quarantined", "page": 0, "per_page": PER_PAGE}
        return {k: v for k, v in values.items() if v != "" and v != defaults.get(k, "")}


def _bounded_int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name) or ""
    if not value:
        return default
    number = whole_number(value)
    if number is None or not low <= number <= high:
        abort(400, description=f"{name} must be a whole number from {low} to {high}")
    return number


def queue_view(params: Mapping[str, str]) -> QueueView:
    """The queue page asked for by query arguments (or a bulk form's hidden copy)."""
    state = params.get("state") or "quarantined"
    if state not in STATE_FILTERS:
        abort(400, description="state must be one of " + ", ".join(STATE_FILTERS))
    severity = params.get("severity") or None
    if severity is not None and severity not in {s.value for s in Severity}:
        abort(400, description="unknown severity")
    states = tuple(State) if state == "all" else (State(state),)
    where = QueueFilter(
        states=states,
        project=(params.get("project") or "").strip().lower()[:MAX_FILTER_CHARS] or None,
        search=(params.get("q") or "").strip()[:MAX_FILTER_CHARS] or None,
        severity=severity,
        check_id=(params.get("check") or "").strip()[:MAX_FILTER_CHARS] or None,
    )
    return QueueView(
        state=state,
        where=where,
        page=_bounded_int(params, "page", 0, 0, MAX_PAGE),
        per_page=_bounded_int(params, "per_page", PER_PAGE, 1, MAX_PER_PAGE),
    )


@dataclass(frozen=True)
class Typed:
    """What a refused form carried, to show it again: the reason per form, the files."""

    reasons: Mapping[str, str] = field(default_factory=dict)
    selected: frozenset[str] = frozenset()

    @classmethod
    def of(cls, form_name: str, reason: str, selected: Iterable[str] = ()) -> Typed:
        return cls({form_name: reason[:MAX_ECHO]}, frozenset(selected))


def render_queue(
    view: QueueView, *, status: int = 200, error: str | None = None, typed: Typed = Typed()
) -> tuple[str, int]:
    services = _services()
    db = services.db
    # Oldest first, ties broken by id (db.queue's order): a page holds the same files
    # however often it is asked for, and pages neither overlap nor skip.
    rows = db.queue(view.where, limit=view.per_page + 1, offset=view.page * view.per_page)
    more = len(rows) > view.per_page
    rows = rows[: view.per_page]
    new_projects = {r.file.project for r in rows} - db.projects_with_approved()
    page = render_template(
        "admin/queue.html",
        nav="queue",
        rows=rows,
        why={r.file.id: held_why(r.file, new_projects) for r in rows},
        checks=db.check_ids_by_file([r.file.id for r in rows]),
        counts=db.counts_by_state(),
        check_ids=db.check_ids_with_findings(),
        severities=[s.value for s in Severity],
        view=view,
        page_sizes=sorted({25, 50, PER_PAGE, MAX_PER_PAGE, view.per_page}),
        more=more,
        now=services.clock(),
        error=error,
        typed=typed,
    )
    return page, status


@bp.get("/")
@login_required(Role.REVIEWER)
def queue() -> tuple[str, int]:
    return render_queue(queue_view(request.args))


@bp.post("/bulk")
@login_required(Role.REVIEWER)
def bulk() -> Response | tuple[str, int]:
    """Approve or reject the selected held files. Refused whole, before anything
    changes, when the selection is empty or too large, the reason is missing, or a file
    is no longer in the state the page showed."""
    form = request.form
    view = queue_view(form)
    selected = form.getlist("file_id")
    typed = Typed.of("bulk", form.get("reason", ""), selected[:MAX_BULK])
    try:
        verb = form.get("action", "")
        if verb not in BULK_ACTIONS:
            raise Refused(400, "Choose approve or reject.")
        ids = _ids(selected, MAX_BULK)
        if not ids:
            raise Refused(400, f"Select at least one file. {NOTHING_CHANGED}")
        reason = _reason(form.get("reason", ""))
        rows = _as_seen(ids, _seen_states(form.getlist("seen_state")))
        not_held = [row for row in rows if row.state is not State.QUARANTINED]
        if not_held:
            raise Refused(
                409,
                f"Only held files are decided in bulk; {_states_of(not_held)}"
                f" (open a file to overturn its decision). {NOTHING_CHANGED}",
            )
    except Refused as refusal:
        return render_queue(view, status=refusal.status, error=refusal.message, typed=typed)
    # Each file on its own: one that someone decides in the instant since the check
    # above is reported and does not stop the rest.
    _decide_all(verb, rows, reason)
    return _back(url_for("review.queue", **view.args()))


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


def render_file(
    row: FileRow, *, status: int = 200, error: str | None = None, typed: Typed = Typed()
) -> tuple[str, int]:
    services = _services()
    db = services.db
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
    release_files = db.files(project=row.project, version=row.version)
    clean_in_release = _clean_held(release_files)
    can = {
        "approve": row.state is State.QUARANTINED,
        "overturn": row.state in OVERTURNABLE,
        "reject": row.state in REJECTABLE,
        "revoke": row.state in REVOCABLE,
        "release": bool(clean_in_release),
    }
    page = render_template(
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
        release=[r for r in release_files if r.id != row.id],
        clean_in_release=clean_in_release,
        can=can,
        # A reason typed into a form the file's state no longer offers: shown, not lost.
        unsent_reason=next(
            (text for form, text in typed.reasons.items() if text.strip() and not can.get(form)),
            None,
        ),
        now=services.clock(),
        members_shown=MEMBERS_SHOWN,
        error=error,
        typed=typed,
    )
    return page, status


@bp.get("/files/<int:file_id>")
@login_required(Role.REVIEWER)
def file(file_id: int) -> tuple[str, int]:
    return render_file(_file_or_404(file_id))


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
    """Every recorded member, one per line (size, type, RECORD hash, name). Names and
    hashes are the archive's: a newline or tab in one is shown as an escape, so it
    cannot forge a line (or a column) of its own."""
    details = _services().db.file_details(file_id)
    if details is None:
        abort(404, description="No member list was recorded for this file.")
    lines = (
        f"{m.size}\t{m.type}\t{escaped(m.record_hash or '-')}\t{escaped(m.name)}\n"
        for m in details.members
    )
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
    """One decision on one file: approve (a held file), overturn (approve a rejected or
    revoked one), reject or revoke; refused when the file is no longer as seen."""
    row = _file_or_404(file_id)
    form = request.form
    verb = form.get("action", "")
    typed = Typed.of(verb, form.get("reason", ""))
    try:
        if verb not in DONE:
            raise Refused(400, "action must be approve, overturn, reject or revoke.")
        reason = _reason(form.get("reason", ""))
        (row,) = _as_seen([row.id], {row.id: _seen_state(form.get("seen_state", ""))})
        _decide(verb, row, reason)
    except Refused as refusal:
        current = _file_or_404(file_id)
        return render_file(current, status=refusal.status, error=refusal.message, typed=typed)
    flash(f"{DONE[verb]} {row.filename}.", "ok")
    return _back(url_for("review.file", file_id=file_id))


@bp.post("/files/<int:file_id>/approve-clean-release")
@login_required(Role.REVIEWER)
def approve_release(file_id: int) -> Response | tuple[str, int]:
    """Approve the clean held files of this file's release (its project and version),
    exactly those the page offered (``seen_clean``): the release comes from the file,
    never from a name in the form."""
    row = _file_or_404(file_id)
    form = request.form
    typed = Typed.of("release", form.get("reason", ""))
    try:
        reason = _reason(form.get("reason", ""))
        seen = set(_ids(form.getlist("seen_clean"), MAX_BULK))
        clean = _clean_held(_services().db.files(project=row.project, version=row.version))
        if not clean:
            raise Refused(409, f"No held file of this release is clean. {NOTHING_CHANGED}")
        if {r.id for r in clean} != seen:
            raise Refused(
                409,
                "The clean held files of this release changed since the page was loaded"
                f" (now: {', '.join(r.filename for r in clean)}). {NOTHING_CHANGED}"
                " Check them and approve again.",
            )
    except Refused as refusal:
        return render_file(
            _file_or_404(file_id), status=refusal.status, error=refusal.message, typed=typed
        )
    _decide_all("approve", clean, reason)
    return _back(url_for("review.file", file_id=file_id))


# ---------------------------------------------------------------- helpers


def _file_or_404(file_id: int) -> FileRow:
    row: FileRow | None = _services().db.file_by_id(file_id)
    if row is None:
        abort(404, description="No such file.")
    return row


def _clean_held(rows: Iterable[FileRow]) -> list[FileRow]:
    services = _services()
    # The policy with the admins' per-project overrides, as sync applies it.
    policy = Projects(services.settings, services.db, services.clock).policy()
    return clean_held(services.db, policy, rows, now=services.clock())


def _reason(typed: str) -> str:
    reason = " ".join(typed.split())
    if not reason:
        raise Refused(400, f"A decision needs a reason. {NOTHING_CHANGED}")
    if len(reason) > MAX_REASON:
        raise Refused(400, f"A reason can have at most {MAX_REASON} characters. {NOTHING_CHANGED}")
    return reason


def _ids(values: list[str], limit: int) -> list[int]:
    """File ids from a form, in order, each once."""
    if len(values) > limit:
        raise Refused(400, f"At most {limit} files can be decided at once. {NOTHING_CHANGED}")
    ids = [whole_number(value) for value in values]
    if None in ids:
        raise Refused(400, f"File ids are numbers. {NOTHING_CHANGED}")
    return list(dict.fromkeys(file_id for file_id in ids if file_id is not None))


def _seen_state(value: str) -> State:
    try:
        return State(value)
    except ValueError:
        raise Refused(
            400,
            f"The form does not say what state the file was in; reload the page. {NOTHING_CHANGED}",
        ) from None


def _seen_states(values: list[str]) -> dict[int, State]:
    """The bulk form's ``seen_state`` fields, ``ID:STATE`` for each row it showed."""
    seen = {}
    for value in values[: MAX_PER_PAGE + MAX_BULK]:
        text, _, state = value.partition(":")
        file_id = whole_number(text)
        if file_id is None:
            raise Refused(400, f"A malformed form; reload the page. {NOTHING_CHANGED}")
        seen[file_id] = _seen_state(state)
    return seen


def _as_seen(ids: list[int], seen: Mapping[int, State]) -> list[FileRow]:
    """The files as they are now, refused (409) if any is not in the state its page
    showed: someone else decided first, or an advisory did."""
    db = _services().db
    rows = []
    for file_id in ids:
        row = db.file_by_id(file_id)
        if row is None:
            raise Refused(400, f"No file has id {file_id}. {NOTHING_CHANGED}")
        if file_id not in seen:
            raise Refused(
                400, f"The form does not say what state {row.filename} was in. {NOTHING_CHANGED}"
            )
        rows.append(row)
    moved = [row for row in rows if row.state is not seen[row.id]]
    if moved:
        raise Refused(
            409,
            f"Decided since the page was loaded: {_states_of(moved, seen)}. {NOTHING_CHANGED}",
        )
    return rows


def _states_of(rows: list[FileRow], seen: Mapping[int, State] | None = None) -> str:
    """Each file and its state ("a.whl is rejected; b.whl is approved"), ten at most."""

    def one(row: FileRow) -> str:
        now = f"{row.filename} is {_shown_state(row.state)}"
        return now if seen is None else f"{now} now, not {_shown_state(seen[row.id])}"

    more = f"; and {len(rows) - 10} more" if len(rows) > 10 else ""
    return "; ".join(one(row) for row in rows[:10]) + more


def _shown_state(state: State) -> str:
    return "held" if state is State.QUARANTINED else state.value


def _decide(verb: str, row: FileRow, reason: str) -> None:
    """One decision on a file already checked to be as the reviewer saw it; the state it
    must still be in is checked again in the transition's own transaction."""
    publisher, who = _publisher(), actor()
    try:
        if verb == "approve":
            publisher.approve([row], actor=who, reason=reason, only_from=(State.QUARANTINED,))
        elif verb == "overturn":
            if row.state not in OVERTURNABLE:
                raise Refused(
                    409, f"Only a rejected or revoked file is overturned; {_states_of([row])}."
                )
            publisher.approve([row], actor=who, reason=reason, only_from=(row.state,))
        elif verb == "reject":
            publisher.reject([row], actor=who, reason=reason)
        else:
            publisher.revoke([row], actor=who, reason=reason)
    except PublishError as error:
        raise Refused(409, f"{error}. {NOTHING_CHANGED}") from None


def _decide_all(verb: str, rows: Iterable[FileRow], reason: str) -> None:
    """:func:`_decide` for each of several files, one not stopping the rest; the outcome
    is flash messages, one per file up to FLASHES_SHOWN, then a summary. (Flashes live in
    the session cookie: one per file of a 500-file decision is a cookie browsers drop.)"""
    done: list[FileRow] = []
    refused: list[str] = []
    for row in rows:
        try:
            _decide(verb, row, reason)
        except Refused as refusal:
            refused.append(refusal.message)
            continue
        done.append(row)
    for message in refused[:FLASHES_SHOWN]:
        flash(message, "error")
    if len(refused) > FLASHES_SHOWN:
        flash(f"And {len(refused) - FLASHES_SHOWN} more files were refused.", "error")
    if len(done) <= FLASHES_SHOWN:
        for row in done:
            flash(f"{DONE[verb]} {row.filename}.", "ok")
        return
    names = ", ".join(row.filename for row in done[:FLASHES_SHOWN])
    flash(f"{DONE[verb]} {len(done)} files: {names} and {len(done) - FLASHES_SHOWN} more.", "ok")


def _back(target: str) -> Response:
    return Response(status=303, headers={"Location": target})
