"""The Flask app factory: the one composition root. gunicorn runs ``mirror.web:create_app()``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from flask import Flask

from mirror.config import Settings, load_settings
from mirror.db import Database, PageReader, utcnow
from mirror.simple import page_key, refresh_pages
from mirror.storage import Storage, build_storage


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
    app.extensions["qmirror"] = Services(settings=settings, db=db, storage=storage, clock=clock)

    from mirror.web import index, pages

    app.register_blueprint(index.bp)
    pages.install(app, PageReader(db.path))
    logging.getLogger("qmirror").setLevel(logging.INFO)
    return app


class Services:
    """What request handlers reach through ``current_app.extensions['qmirror']``."""

    def __init__(
        self, *, settings: Settings, db: Database, storage: Storage,
        clock: Callable[[], datetime],
    ) -> None:  # fmt: skip
        self.settings = settings
        self.db = db
        self.storage = storage
        self.clock = clock
