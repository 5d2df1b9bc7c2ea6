"""``/metrics``: Prometheus text for the mirror's state and its request figures.

Serve it to the monitoring network only (the nginx in front of the mirror is the place
to restrict it): it says what is held and why, by check id.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, current_app
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.wrappers import Response

from mirror.metrics import Metrics

bp = Blueprint("ops", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    figures = cast(Metrics, current_app.extensions["qmirror"].metrics)
    response = Response(figures.exposition(), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
