"""The Flask app factory: the one composition root. gunicorn runs ``mirror.web:create_app()``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from mirror.alerts import BackgroundDelivery
from mirror.auth import Accounts
from mirror.config import Settings, load_settings
from mirror.db import Database, PageReader, utcnow
from mirror.logs import setup_logging
from mirror.metrics import Metrics
from mirror.projects import RequestCounter
from mirror.publish import Publisher
from mirror.simple import page_key, refresh_pages
from mirror.storage import Storage, build_storage
from mirror.web.index_auth import IndexAuth


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    storage: Storage | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Flask:
    settings = settings or load_settings()
    db = db or Database(settings.database_path)
    storage = storage or build_storage(settings)
    db.migrate()
    if db.page(page_key(None, "html")) is None:
        refresh_pages(db, [])  # an empty mirror still answers /simple/

    app = Flask(__name__)
    app.config["QMIRROR_SETTINGS"] = settings
    accounts = Accounts(db, session_lifetime=settings.server.session_lifetime, clock=clock)
    metrics = Metrics(db, clock)
    # Alerts from decisions taken here go out after the response, on a thread of their own.
    alerts = BackgroundDelivery(db.path, settings.alerts, clock)
    app.extensions["qmirror"] = Services(
        settings=settings, db=db, storage=storage, clock=clock, accounts=accounts,
        metrics=metrics, alerts=alerts,
    )  # fmt: skip

    from mirror.web import (
        api,
        auth_views,
        display,
        index,
        manage,
        observe,
        ops,
        pages,
        review,
        security,
    )  # fmt: skip

    security.init_app(
        app,
        accounts,
        data_dir=settings.data_dir,
        https=settings.server.public_url.startswith("https:"),
    )
    display.install(app)
    app.register_blueprint(index.bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(manage.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(api.bp)
    app.register_error_handler(HTTPException, _http_error)
    reader = PageReader(db.path)
    auth = IndexAuth(reader) if settings.server.index_auth else None
    app.extensions["qmirror_index_auth"] = auth
    # [sync] on_demand: 404s for projects the mirror does not carry are counted for
    # /admin/requests, off the request path.
    counter = RequestCounter.for_settings(settings, db, clock) if settings.sync.on_demand else None
    app.extensions["qmirror_requests"] = counter
    pages.install(app, reader, auth, None if counter is None else counter.hit)
    observe.install(app, metrics.http)  # outermost: the /simple/ fast path is counted too
    setup_logging(logging.INFO)
    if settings.server.trusted_proxies:
        # Behind nginx: the client's address and scheme, believed from the trusted hops only.
        hops = settings.server.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app


def _http_error(error: HTTPException) -> Response | tuple[str, int]:
    """Errors in the asker's language: JSON for the API, a page for people. The
    description is ours, never attacker-written, and escaped by the template anyway."""
    code = error.code or 500
    headers = dict(error.get_response().headers)
    headers.pop("Content-Type", None)
    headers.pop("Content-Length", None)
    if request.path.startswith("/api/"):
        body = {"error": error.name, "detail": error.description}
        response = Response(_json(body), code, headers, mimetype="application/json")
        return response
    page = render_template(
        "admin/error.html", code=code, name=error.name, description=error.description, nav=None
    )
    return Response(page, code, headers, mimetype="text/html")


def _json(data: object) -> str:
    import json

    return json.dumps(data)


class Services:
    """What request handlers reach through ``current_app.extensions['qmirror']``."""

    def __init__(
        self, *, settings: Settings, db: Database, storage: Storage,
        clock: Callable[[], datetime], accounts: Accounts, metrics: Metrics,
        alerts: BackgroundDelivery,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.db = db
        self.storage = storage
        self.clock = clock
        self.accounts = accounts
        self.metrics = metrics
        self.alerts = alerts

    def publisher(self) -> Publisher:
        """A Publisher for one request's decisions; its alerts wake the background delivery."""
        return Publisher(self.db, self.storage, self.clock, alerted=self.alerts.wake)
