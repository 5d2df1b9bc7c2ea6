"""Projects, client requests, the audit log, users and tokens."""

from __future__ import annotations

from flask import Blueprint, render_template

from mirror.db import Role
from mirror.web.security import login_required

bp = Blueprint("manage", __name__, url_prefix="/admin")


@bp.get("/projects")
@login_required(Role.REVIEWER)
def projects() -> str:
    return render_template("admin/base.html", nav="projects")


@bp.get("/requests")
@login_required(Role.REVIEWER)
def requests() -> str:
    return render_template("admin/base.html", nav="requests")


@bp.get("/audit")
@login_required(Role.REVIEWER)
def audit() -> str:
    return render_template("admin/base.html", nav="audit")


@bp.get("/users")
@login_required(Role.ADMIN)
def users() -> str:
    return render_template("admin/base.html", nav="users")
