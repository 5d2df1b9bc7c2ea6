"""The review queue, a file's detail page, and the decisions taken there."""

from __future__ import annotations

from flask import Blueprint, render_template

from mirror.db import Role
from mirror.web.security import login_required

bp = Blueprint("review", __name__, url_prefix="/admin")


@bp.get("/")
@login_required(Role.REVIEWER)
def queue() -> str:
    return render_template("admin/base.html", nav="queue")
