"""The admin app in-process: a real database, users made through ``Accounts``, and a
Flask test client that logs in through the login form like a browser does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask.testing import FlaskClient

from mirror.auth import Accounts
from mirror.config import settings_from_mapping
from mirror.db import Database, Role
from mirror.storage import local_storage
from mirror.sync import Syncer
from mirror.upstream import UpstreamClient
from mirror.web import create_app

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    """A clock a test moves by hand (no sleeping)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class AdminSite:
    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.settings = settings_from_mapping({"data_dir": str(tmp_path / "data"), **settings})
        self.db = Database(self.settings.database_path)
        self.db.migrate()
        self.storage = local_storage(self.settings.data_dir)
        self.clock = Clock()
        self.app = create_app(self.settings, db=self.db, storage=self.storage, clock=self.clock)
        self.accounts: Accounts = self.app.extensions["qmirror"].accounts

    def sync_from(self, index_url: str) -> None:
        """One real ``qmirror sync`` run against ``index_url``, on this site's clock."""
        with UpstreamClient(index_url, timeout=5, retries=0) as upstream:
            Syncer(
                self.settings, self.db, self.storage, upstream, self.settings.policy.build(),
                clock=self.clock,
            ).run()  # fmt: skip

    def user(self, name: str, role: Role = Role.REVIEWER, password: str = PASSWORD) -> str:
        self.accounts.add_user(name, password, role, actor="test")
        return name

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def logged_in(self, name: str, password: str = PASSWORD) -> FlaskClient:
        client = self.client()
        response = login(client, name, password)
        assert response.status_code == 303, response.get_data(as_text=True)
        return client


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def login(client: FlaskClient, name: str, password: str = PASSWORD, next: str | None = None):
    page = client.get("/admin/login")
    data = {"username": name, "password": password, "csrf_token": csrf_from(page.text)}
    if next is not None:
        data["next"] = next
    return client.post("/admin/login", data=data)


def csrf(client: FlaskClient, path: str = "/admin/") -> str:
    """The CSRF token of a logged-in client's session, read off a page as a browser would."""
    return csrf_from(client.get(path).text)
