"""Projects, client requests, the audit log, users and tokens.

Reviewers may look at projects, requests and the audit log; every change, and the users
page itself, needs the admin role. Changes go through :mod:`mirror.projects` and
:class:`mirror.auth.Accounts`, which write an ``events`` row in the same transaction as
the change. A POST that worked redirects (303) to the page it came from; one that did not
shows that page again with the message and a 400, nothing stored. The CSRF token of every
POST is checked in :mod:`mirror.web.security` before any view runs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask import stream_with_context as streamed
from packaging.utils import NormalizedName
from werkzeug.wrappers import Response

from mirror.auth import AuthError
from mirror.db import AuditFilter, Conflict, FileRow, Role, State, TokenRole, parse_iso
from mirror.projects import (
    InvalidInput,
    Mirrored,
    Override,
    Projects,
    Source,
    describe_cooldown,
    parse_project_name,
)
from mirror.web.security import accounts, actor, current_user, login_required
from quarantine.checks import known_check_ids

bp = Blueprint("manage", __name__, url_prefix="/admin")

PROJECTS_PAGE = 200  # rows of the projects list per page
FILES_SHOWN = 200  # per state on a project's page; the queue, filtered, has them all
REQUESTS_SHOWN = 500
AUDIT_PAGE = 100
AUDIT_PAGE_MAX = 500
AUDIT_DEPTH_MAX = 100_000  # rows a page may skip; beyond it, narrow the filters or export
FILTER_MAX = 200  # characters of a filter value
STATES = tuple(State)
AUDIT_COLUMNS = (
    "at", "kind", "actor", "action", "subject", "project", "from_state", "to_state", "reason",
    "file_id",
)  # fmt: skip
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_CHUNK = 64 * 1024


def _services() -> Any:
    return current_app.extensions["qmirror"]


def _projects() -> Projects:
    services = _services()
    return Projects(services.settings, services.db, services.clock)


def _is_admin() -> bool:
    user = current_user()
    return user is not None and user.role is Role.ADMIN


def _back(target: str) -> Response:
    return Response(status=303, headers={"Location": target})


def _field(name: str, limit: int = 2000) -> str:
    return request.form.get(name, "")[:limit]


# ---------------------------------------------------------------- projects


@dataclass(frozen=True)
class ProjectLine:
    """One row of the projects list."""

    name: str
    requirements: tuple[str, ...]
    source: str  # in words: "config file", "added here", "dependency of flask", ...
    database: bool  # an admin can edit or remove it here
    counts: Mapping[str, int]
    override: Override | None


def _source_words(mirrored: Mirrored) -> str:
    if mirrored.source is Source.CONFIG:
        return "config file"
    if mirrored.overrides_config:
        return "added here, over the config file's " + ", ".join(
            str(r) for r in mirrored.config_requirements
        )
    return "added here"


def project_lines(projects: Projects) -> list[ProjectLine]:
    """The mirrored projects (file and database), then those the mirror holds for another
    reason (dependencies, and projects no longer listed), then names that only have a
    policy override, with their file counts."""
    db = projects.db
    counts = db.file_counts_by_project()
    overrides = projects.overrides()
    empty = {state.value: 0 for state in STATES}
    lines = [
        ProjectLine(
            name=m.name,
            requirements=tuple(str(r) for r in m.requirements),
            source=_source_words(m),
            database=m.source is Source.DATABASE,
            counts=counts.get(m.name, empty),
            override=overrides.get(m.name),
        )
        for m in projects.mirrored()
    ]
    listed = {line.name for line in lines}
    for row in db.carried_projects():
        if row["name"] in listed:
            continue
        reason = (
            f"dependency of {row['required_by']}"
            if row["reason"] == "dependency" and row["required_by"]
            else "no longer listed"
        )
        name = row["name"]
        lines.append(
            ProjectLine(name, (), reason, False, counts.get(name, empty), overrides.get(name))
        )
    listed = {line.name for line in lines}
    for name, override in overrides.items():
        if name not in listed:
            lines.append(ProjectLine(name, (), "policy override only", False, empty, override))
    return lines


@bp.get("/projects")
@login_required(Role.REVIEWER)
def projects() -> Any:
    return _projects_page()


def _projects_page(
    *, error: str | None = None, form: Mapping[str, str] | None = None, status: int = 200
) -> Any:
    args = request.args
    query = (args.get("q") or "").strip().lower()[:FILTER_MAX]
    page = _page_number(args.get("page"))
    lines = [line for line in project_lines(_projects()) if query in line.name]
    shown = lines[page * PROJECTS_PAGE : (page + 1) * PROJECTS_PAGE]
    html = render_template(
        "admin/projects.html",
        nav="projects",
        lines=shown,
        total=len(lines),
        query=query,
        page=page,
        more=len(lines) > (page + 1) * PROJECTS_PAGE,
        can_manage=_is_admin(),
        error=error,
        form=form or {},
        states=STATES,
        on_demand=_services().settings.sync.on_demand,
    )
    return html, status


@bp.post("/projects")
@login_required(Role.ADMIN)
def add_project() -> Any:
    text = _field("requirement", 1000)
    try:
        added = _projects().add(text, actor=actor())
    except InvalidInput as error:
        return _projects_page(error=str(error), form={"requirement": text}, status=400)
    return _back(url_for("manage.project", name=added.name))


def _known(name: str) -> NormalizedName:
    """The normalized name of a project the mirror knows (mirrors, holds, or has an
    override for); 404 for anything else, including names that are not names."""
    try:
        key = parse_project_name(name)
    except InvalidInput:
        abort(404, description="No such project.")
    projects = _projects()
    if (
        projects.mirrored_project(key) is None
        and projects.db.carried_project(key) is None
        and key not in projects.overrides()
    ):
        abort(404, description="The mirror does not carry this project.")
    return key


@bp.get("/projects/<name>")
@login_required(Role.REVIEWER)
def project(name: str) -> Any:
    key = _known(name)
    if key != name:
        return Response(status=301, headers={"Location": url_for("manage.project", name=key)})
    return _project_page(key)


@dataclass(frozen=True)
class FileGroup:
    state: State
    files: list[FileRow]
    total: int


def file_groups(files: Iterable[FileRow]) -> list[FileGroup]:
    """A project's files by state (held first), newest first, each cut at FILES_SHOWN."""
    by_state: dict[State, list[FileRow]] = {state: [] for state in STATES}
    for row in files:
        by_state[row.state].append(row)
    return [
        FileGroup(state, rows[::-1][:FILES_SHOWN], len(rows)) for state, rows in by_state.items()
    ]


def _project_page(
    key: NormalizedName,
    *,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
    status: int = 200,
) -> Any:
    projects = _projects()
    db = projects.db
    settings = projects.settings
    mirrored = projects.mirrored_project(key)
    override = projects.overrides().get(key)
    cooldown = settings.policy.cooldown
    cooldown_from = "[policy] cooldown"
    if override is not None and override.cooldown is not None:
        cooldown = override.cooldown
        stored_here = override.source is Source.DATABASE and (
            override.config is None or override.config.cooldown != override.cooldown
        )
        cooldown_from = "this project's override" if stored_here else "the config file"
    held = db.carried_project(key)
    defaults = {
        "requirement": ", ".join(str(r) for r in mirrored.requirements) if mirrored else key,
        "allow": " ".join(override.allow) if override else "",
        "cooldown": (
            describe_cooldown(override.cooldown)
            if override is not None and override.cooldown is not None
            else ""
        ),
    }
    html = render_template(
        "admin/project.html",
        nav="projects",
        name=key,
        mirrored=mirrored,
        source=_source_words(mirrored) if mirrored else None,
        held=held,
        override=override,
        cooldown=describe_cooldown(cooldown),
        cooldown_from=cooldown_from,
        groups=file_groups(db.files(project=key)),
        files_shown=FILES_SHOWN,
        can_manage=_is_admin(),
        error=error,
        form={**defaults, **(form or {})},
        check_ids=sorted(known_check_ids()),
    )
    return html, status


@bp.post("/projects/<name>/requirement")
@login_required(Role.ADMIN)
def edit_requirement(name: str) -> Any:
    key = _known(name)
    text = _field("requirement", 1000)
    try:
        _projects().replace(key, text, actor=actor())
    except InvalidInput as error:
        return _project_page(key, error=str(error), form={"requirement": text}, status=400)
    return _back(url_for("manage.project", name=key))


@bp.post("/projects/<name>/remove")
@login_required(Role.ADMIN)
def remove_project(name: str) -> Any:
    key = _known(name)
    projects = _projects()
    try:
        projects.remove(key, actor=actor())
    except InvalidInput as error:
        return _project_page(key, error=str(error), status=400)
    still_known = projects.mirrored_project(key) or projects.db.carried_project(key)
    return _back(url_for("manage.project", name=key) if still_known else url_for(".projects"))


@bp.post("/projects/<name>/policy")
@login_required(Role.ADMIN)
def set_policy(name: str) -> Any:
    key = _known(name)
    allow, cooldown = _field("allow", 5000), _field("cooldown", 100)
    try:
        _projects().set_override(key, allow=allow, cooldown=cooldown, actor=actor())
    except InvalidInput as error:
        form = {"allow": allow, "cooldown": cooldown}
        return _project_page(key, error=str(error), form=form, status=400)
    return _back(url_for("manage.project", name=key))


@bp.post("/projects/<name>/policy/clear")
@login_required(Role.ADMIN)
def clear_policy(name: str) -> Any:
    key = _known(name)
    try:
        _projects().clear_override(key, actor=actor())
    except InvalidInput as error:
        return _project_page(key, error=str(error), status=400)
    return _back(url_for("manage.project", name=key))


# ---------------------------------------------------------------- requests


@bp.get("/requests")
@login_required(Role.REVIEWER)
def requests() -> Any:
    return _requests_page()


def _requests_page(*, error: str | None = None, status: int = 200) -> Any:
    projects = _projects()
    rows = [
        {**row, "first_at": parse_iso(row["first_at"]), "last_at": parse_iso(row["last_at"])}
        for row in projects.requests(REQUESTS_SHOWN)
    ]
    html = render_template(
        "admin/requests.html",
        nav="requests",
        rows=rows,
        shown=REQUESTS_SHOWN,
        on_demand=projects.settings.sync.on_demand,
        can_manage=_is_admin(),
        error=error,
    )
    return html, status


def _requested(name: str) -> str:
    try:
        return parse_project_name(name)
    except InvalidInput:
        abort(404, description="No such request.")


@bp.post("/requests/<name>/add")
@login_required(Role.ADMIN)
def add_requested(name: str) -> Any:
    try:
        _projects().add_requested(_requested(name), actor=actor())
    except InvalidInput as error:
        return _requests_page(error=str(error), status=400)
    return _back(url_for(".requests"))


@bp.post("/requests/<name>/dismiss")
@login_required(Role.ADMIN)
def dismiss_request(name: str) -> Any:
    try:
        _projects().dismiss_request(_requested(name), actor=actor())
    except InvalidInput as error:
        return _requests_page(error=str(error), status=400)
    return _back(url_for(".requests"))


# ---------------------------------------------------------------- audit log


def _page_number(text: str | None) -> int:
    try:
        return max(0, int(text or "0"))
    except ValueError:
        abort(400, description="page must be a number")


def _day(text: str, what: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        abort(400, description=f"{what} must be a date such as 2026-06-01")


def audit_filter(args: Mapping[str, str]) -> tuple[AuditFilter, dict[str, str]]:
    """The filter a query string asks for, and its values as typed (for the form and
    the links that keep it). Dates are whole UTC days: ``until`` includes its day."""
    values = {
        key: (args.get(key) or "").strip()[:FILTER_MAX]
        for key in ("actor", "action", "subject", "since", "until")
    }
    since, until = _day(values["since"], "since"), _day(values["until"], "until")
    where = AuditFilter(
        actor=values["actor"] or None,
        action=values["action"] or None,
        subject=values["subject"] or None,
        since=None if since is None else datetime(since.year, since.month, since.day, tzinfo=UTC),
        until=(
            None
            if until is None or until == date.max  # its next day is past datetime's range
            else datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
        ),
    )
    return where, {key: value for key, value in values.items() if value}


@bp.get("/audit")
@login_required(Role.REVIEWER)
def audit() -> Any:
    args = request.args
    where, filters = audit_filter(args)
    fmt = args.get("format", "")
    db = _services().db
    if fmt in ("csv", "json"):
        return export_audit(db.iter_audit_log(where), fmt, _services().clock())
    if fmt:
        abort(400, description="format must be csv or json")
    try:
        size = min(AUDIT_PAGE_MAX, max(1, int(args.get("per_page") or AUDIT_PAGE)))
    except ValueError:
        abort(400, description="per_page must be a number")
    page = _page_number(args.get("page"))
    if page * size > AUDIT_DEPTH_MAX:
        abort(400, description="That page is too deep: narrow the filters, or export.")
    rows = db.audit_log(where, limit=size + 1, offset=page * size)
    paging = {**filters, **({"per_page": str(size)} if size != AUDIT_PAGE else {})}
    return render_template(
        "admin/audit.html",
        nav="audit",
        rows=[{**row, "at": parse_iso(row["at"])} for row in rows[:size]],
        filters=filters,
        paging=paging,
        actions=db.audit_actions(),
        page=page,
        more=len(rows) > size,
    )


def csv_cell(value: object) -> str:
    """A value as a CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_audit(rows: Iterator[dict[str, Any]], fmt: str, now: datetime) -> Response:
    """The filtered log as a download, streamed: rows are read in batches as it is sent."""
    records = ({column: row[column] for column in AUDIT_COLUMNS} for row in rows)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        body, mimetype = _csv_chunks(records), "text/csv"
    else:
        body, mimetype = _json_chunks(records), "application/json"
    return Response(
        streamed(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="qmirror-audit-{stamp}.{fmt}"'},
    )


def _csv_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_COLUMNS)
    for record in records:
        writer.writerow([csv_cell(record[column]) for column in AUDIT_COLUMNS])
        if buffer.tell() >= EXPORT_CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    parts = ["["]
    size = 1
    for index, record in enumerate(records):
        part = ("," if index else "") + "\n" + json.dumps(record)
        parts.append(part)
        size += len(part)
        if size >= EXPORT_CHUNK:
            yield "".join(parts)
            parts, size = [], 0
    parts.append("\n]\n")
    yield "".join(parts)


# ---------------------------------------------------------------- users and tokens


@bp.get("/users")
@login_required(Role.ADMIN)
def users() -> Any:
    return _users_page()


def _users_page(
    *,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
    new_token: Any = None,
    status: int = 200,
) -> Any:
    db = _services().db
    html = render_template(
        "admin/users.html",
        nav="users",
        users=db.users(),
        tokens=db.tokens(),
        roles=[role.value for role in Role],
        token_roles=[role.value for role in TokenRole],
        me=current_user(),
        error=error,
        form=form or {},
        new_token=new_token,
    )
    return html, status


def _new_password() -> str:
    password, again = _field("password", 4096), _field("password_again", 4096)
    if password != again:
        raise AuthError("the two passwords differ")
    return password


@bp.post("/users")
@login_required(Role.ADMIN)
def add_user() -> Any:
    name, role = _field("name", 200), _field("role", 20)
    try:
        if role not in {r.value for r in Role}:
            raise AuthError("role must be reviewer or admin")
        accounts().add_user(name, _new_password(), Role(role), actor=actor())
    except (AuthError, Conflict) as error:
        return _users_page(error=str(error), form={"name": name, "role": role}, status=400)
    return _back(url_for(".users"))


def _user_named(name: str) -> str:
    if _services().db.user_by_name(name) is None:
        abort(404, description="No such user.")
    return name


@bp.post("/users/<name>/disable")
@login_required(Role.ADMIN)
def disable_user(name: str) -> Any:
    me = current_user()
    if me is not None and me.name == _user_named(name):
        return _users_page(
            error="You cannot disable your own account (nobody might be left to enable it).",
            status=400,
        )
    accounts().set_disabled(name, True, actor=actor())
    return _back(url_for(".users"))


@bp.post("/users/<name>/enable")
@login_required(Role.ADMIN)
def enable_user(name: str) -> Any:
    accounts().set_disabled(_user_named(name), False, actor=actor())
    return _back(url_for(".users"))


@bp.post("/users/<name>/password")
@login_required(Role.ADMIN)
def reset_password(name: str) -> Any:
    _user_named(name)
    try:
        accounts().set_password(name, _new_password(), actor=actor())
    except AuthError as error:
        return _users_page(error=f"{name}: {error}", status=400)
    return _back(url_for(".users"))


@bp.post("/tokens")
@login_required(Role.ADMIN)
def create_token() -> Any:
    name, role = _field("name", 200), _field("role", 20)
    try:
        if role not in {r.value for r in TokenRole}:
            raise AuthError("role must be read, reviewer or admin")
        token = accounts().create_token(name, TokenRole(role), actor=actor())
    except AuthError as error:
        return _users_page(error=str(error), form={"token_name": name}, status=400)
    # The secret is on this response only (no redirect, no-store like every admin page):
    # only its digest is kept, so no later page can show it again.
    return _users_page(new_token=token)


@bp.post("/tokens/<int:token_id>/revoke")
@login_required(Role.ADMIN)
def revoke_token(token_id: int) -> Any:
    try:
        accounts().revoke_token(token_id, actor=actor())
    except AuthError as error:
        return _users_page(error=str(error), status=400)
    return _back(url_for(".users"))
