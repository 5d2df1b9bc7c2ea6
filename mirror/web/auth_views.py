"""``/admin/login`` and ``/admin/logout``."""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from werkzeug.wrappers import Response

from mirror.auth import AuthError, LoginThrottled
from mirror.web.security import accounts, end_session, safe_next, start_session

bp = Blueprint("auth", __name__, url_prefix="/admin")


def _client_ip() -> str:
    # request.remote_addr is the proxy's when behind one; the deployment's ProxyFix
    # (trusted hops only) makes it the client's.
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    target = safe_next(request.values.get("next"), url_for("review.queue"))
    if request.method == "GET":
        return render_template("admin/login.html", next=target, error=None)
    name = request.form.get("username", "")
    password = request.form.get("password", "")
    try:
        secret, _session = accounts().login(name, password, ip=_client_ip())
    except LoginThrottled as error:
        page = render_template("admin/login.html", next=target, error=str(error))
        return Response(page, 429, {"Retry-After": str(error.retry_after)}, mimetype="text/html")
    except AuthError as error:
        return render_template("admin/login.html", next=target, error=str(error)), 401
    start_session(secret)
    return Response(status=303, headers={"Location": target})


@bp.post("/logout")
def logout() -> Response:
    end_session()
    return Response(status=303, headers={"Location": url_for("auth.login")})
