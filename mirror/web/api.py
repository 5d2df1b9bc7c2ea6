"""``/api/v1``: the review queue and decisions as JSON, for chat-ops and CI.

Authentication is a bearer token from ``qmirror token create`` only: a browser's session
cookie is never accepted here (so the API needs no CSRF token, and a page cannot make a
logged-in reviewer's browser call it). ``read`` tokens are for ``index_auth`` and get
nothing here; ``reviewer`` and ``admin`` tokens list, read and decide. Every decision is
an audit row naming the token, and changes the index before the response.

``approve`` publishes a held file only; approving a rejected or revoked one takes
``"overturn": true``. A client that read a file first can send ``"seen_state"``: the
decision is refused (409) if the file has moved since. Alerts a decision raises go out
after the response, off the request thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Blueprint, abort, current_app, g, jsonify, request
from packaging.utils import canonicalize_name
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from mirror.auth import token_allows
from mirror.db import FileRow, QueueFilter, State, TokenRole
from mirror.publish import APPROVABLE, OVERTURNABLE, Publisher, PublishError
from mirror.web.security import actor, whole_number
from quarantine.findings import Severity

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_LIMIT = 500
MAX_REASON = 2000
MAX_FILTER_CHARS = 200  # a project name, search text or check id; as the review queue's
VERBS = ("approve", "reject", "revoke")

F = TypeVar("F", bound=Callable[..., Any])


class Unauthorized(HTTPException):
    code = 401
    description = "A bearer token (qmirror token create) is required."

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [
            ("Content-Type", "application/json"),
            ("WWW-Authenticate", 'Bearer realm="quarantine-mirror"'),
        ]


def _services() -> Any:
    return current_app.extensions["qmirror"]


@bp.before_request
def _authenticate() -> None:
    if request.endpoint == "api.openapi":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized()
    token = _services().accounts.token(secret.strip())
    if token is None:
        raise Unauthorized(description="The token is unknown or revoked.")
    if not token_allows(token, TokenRole.REVIEWER):
        abort(403, description="This token may only read the index (role read).")
    g.qmirror_token = token
    # A cookie that came along must not make this request a person's.
    g.qmirror_session = None


def _file_json(row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": row.project,
        "version": row.version,
        "filename": row.filename,
        "kind": row.kind,
        "state": row.state.value,
        "sha256": row.sha256,
        "size": row.size,
        "upstream_url": row.upstream_url,
        "upload_time": None if row.upload_time is None else row.upload_time.isoformat(),
        "first_seen": row.first_seen.isoformat(),
        "held_reasons": list(row.held_reasons),
        "cooldown_until": None if row.cooldown_until is None else row.cooldown_until.isoformat(),
    }


def _int_arg(name: str, default: int, maximum: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    number = whole_number(value)
    if number is None:
        abort(400, description=f"{name} must be a non-negative integer")
    return min(number, maximum)


def _filter_arg(name: str) -> str | None:
    value = request.args.get(name) or None
    if value is not None and len(value) > MAX_FILTER_CHARS:
        abort(400, description=f"{name} can have at most {MAX_FILTER_CHARS} characters")
    return value


@bp.get("/files")
def list_files() -> Response:
    state = request.args.get("state", "quarantined")
    if state not in {s.value for s in State} | {"all"}:
        abort(400, description="state must be quarantined, approved, rejected, revoked or all")
    severity = request.args.get("severity") or None
    if severity is not None and severity not in {s.value for s in Severity}:
        abort(400, description="unknown severity")
    where = QueueFilter(
        states=tuple(State) if state == "all" else (State(state),),
        project=_filter_arg("project"),
        search=_filter_arg("q"),
        severity=severity,
        check_id=_filter_arg("check"),
    )
    limit = _int_arg("limit", 100, MAX_LIMIT)
    offset = _int_arg("offset", 0, 10**9)
    rows = _services().db.queue(where, limit=limit, offset=offset)
    return jsonify(
        {
            "files": [
                {**_file_json(r.file), "findings": r.findings, "worst_severity": r.worst_severity}
                for r in rows
            ],
            "limit": limit,
            "offset": offset,
        }
    )


def _row(file_id: int) -> FileRow:
    row = _services().db.file_by_id(file_id)
    if row is None:
        abort(404, description=f"no file with id {file_id}")
    return cast(FileRow, row)


@bp.get("/files/<int:file_id>")
def get_file(file_id: int) -> Response:
    db = _services().db
    row = _row(file_id)
    return jsonify(
        {
            **_file_json(row),
            "findings": [
                {
                    "check": f["check_id"],
                    "severity": f["severity"],
                    "message": f["message"],
                    "evidence": f["evidence"],
                    "path": f["path"],
                }
                for f in db.findings(row.id)
            ],
            "decisions": [
                {
                    "at": d["at"],
                    "actor": d["actor"],
                    "from": d["from_state"],
                    "to": d["to_state"],
                    "reason": d["reason"],
                }
                for d in db.decisions(row.id)
            ],
        }
    )


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description='send a JSON object such as {"reason": "..."}')
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        abort(400, description="a non-empty reason is required")
    if len(reason) > MAX_REASON:
        abort(400, description=f"a reason can have at most {MAX_REASON} characters")
    data["reason"] = " ".join(reason.split())
    # A string "false" must not overturn anything.
    if not isinstance(data.get("overturn", False), bool):
        abort(400, description="overturn must be true or false")
    seen = data.get("seen_state")
    if seen is not None and (not isinstance(seen, str) or seen not in {s.value for s in State}):
        abort(400, description="seen_state must be quarantined, approved, rejected or revoked")
    return data


def _publisher() -> Publisher:
    publisher: Publisher = _services().publisher()
    return publisher


@bp.post("/files/<int:file_id>/<verb>")
def decide(file_id: int, verb: str) -> Response | tuple[Response, int]:
    if verb not in VERBS:
        abort(404, description="the verbs are approve, reject and revoke")
    body = _body()
    row = _row(file_id)
    seen = None if body.get("seen_state") is None else State(body["seen_state"])
    if seen is not None and row.state is not seen:
        return _conflict(row, f"it is {row.state.value} now, not {seen.value}")
    overturn = bool(body.get("overturn"))
    publisher, who, reason = _publisher(), actor(), body["reason"]
    try:
        if verb == "approve":
            # The state is checked again in the transition itself: a file rejected
            # since it was read is not approved by a request that did not say overturn.
            only_from: tuple[State, ...] = APPROVABLE if overturn else (State.QUARANTINED,)
            if seen is not None:
                only_from = (seen,) if seen in only_from else ()
            if not only_from:
                raise PublishError(f"cannot approve {row.filename}: it is {row.state.value}")
            publisher.approve([row], actor=who, reason=reason, only_from=only_from)
        else:
            getattr(publisher, verb)([row], actor=who, reason=reason)
    except PublishError as error:
        now = _row(file_id)
        detail = str(error)
        if verb == "approve" and not overturn and now.state in OVERTURNABLE:
            detail += '; send "overturn": true to approve it anyway'
        return _conflict(now, detail)
    return jsonify(_file_json(_row(file_id)))


@bp.post("/releases/<project>/<version>/approve")
def approve_release(project: str, version: str) -> Response:
    """Approve the held files of a release (never overturns a rejection or revocation)."""
    body = _body()
    db = _services().db
    name = canonicalize_name(project)
    held = db.files(project=name, version=version, states=[State.QUARANTINED])
    if not held:
        abort(404, description=f"no held files of {name} {version}")
    try:
        done = _publisher().approve(
            held, actor=actor(), reason=body["reason"], only_from=(State.QUARANTINED,)
        )
    except PublishError as error:
        abort(409, description=str(error))
    return jsonify({"approved": [_file_json(_row(r.id)) for r in done]})


def _conflict(row: FileRow, detail: str) -> tuple[Response, int]:
    return jsonify({"error": "Conflict", "detail": detail, "state": row.state.value}), 409


@bp.get("/openapi.json")
def openapi() -> Response:
    from mirror.web.openapi import document

    return jsonify(document())
