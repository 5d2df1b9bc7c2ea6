"""Security review: what a person's standing means for their sessions and tokens, and
which user names may be made (in-process app)."""

from __future__ import annotations

import base64
import threading

import pytest

from mirror.db import Role, TokenRole
from tests.support.admin import PASSWORD, AdminSite, csrf, csrf_from, login

TOKEN_SECRET = "qm_"


@pytest.fixture
def site(tmp_path):
    return AdminSite(tmp_path, server={"index_auth": True})


def web_token(site, client, role: str) -> str:
    """A token made on the users page, as its creator would; returns the secret shown."""
    page = client.post(
        "/admin/tokens", data={"csrf_token": csrf(client), "name": f"ci-{role}", "role": role}
    )
    assert page.status_code == 200
    start = page.text.index(TOKEN_SECRET)
    return page.text[start : page.text.index("<", start)]


def api_status(site, secret: str) -> int:
    return (
        site.client()
        .get("/api/v1/files", headers={"Authorization": f"Bearer {secret}"})
        .status_code
    )


def index_status(site, secret: str) -> int:
    basic = base64.b64encode(f"pip:{secret}".encode()).decode()
    return site.client().get("/simple/", headers={"Authorization": f"Basic {basic}"}).status_code


def test_disabling_a_user_revokes_the_tokens_they_made(site):
    site.user("ada", Role.ADMIN)
    site.user("bob", Role.ADMIN)
    bob = site.logged_in("bob")
    bobs = web_token(site, bob, "reviewer")
    adas = web_token(site, site.logged_in("ada"), "read")
    assert api_status(site, bobs) == 200 and index_status(site, bobs) == 200

    ada = site.logged_in("ada")
    response = ada.post("/admin/users/bob/disable", data={"csrf_token": csrf(ada)})
    assert response.status_code == 303
    assert api_status(site, bobs) == 401 and index_status(site, bobs) == 401
    assert index_status(site, adas) == 200  # another's token is untouched
    events = [(r["action"], r["subject"], r["reason"]) for r in site.db.audit_log()]
    assert ("token.revoke", "token 1", "its creator was disabled") in events
    # Enabling bob again brings no token back.
    site.accounts.set_disabled("bob", False, actor="test")
    assert api_status(site, bobs) == 401


def test_an_admin_made_reviewer_loses_the_admin_tokens_they_made(site):
    site.user("bob", Role.ADMIN)
    bob = site.logged_in("bob")
    admin_token, reviewer_token = web_token(site, bob, "admin"), web_token(site, bob, "reviewer")
    site.accounts.set_role("bob", Role.REVIEWER, actor="cli:root")
    assert api_status(site, admin_token) == 401
    assert api_status(site, reviewer_token) == 200
    live = {t.role for t in site.db.tokens() if t.revoked_at is None}
    assert live == {TokenRole.REVIEWER}


def test_logging_in_over_a_live_session_ends_it(site):
    site.user("ada")
    site.user("bob")
    client = site.logged_in("ada")
    adas_cookie = client.get_cookie("qmirror_session").value
    assert login(client, "bob").status_code == 303
    assert "bob" in client.get("/admin/").text
    client.set_cookie("qmirror_session", adas_cookie)
    assert client.get("/admin/").status_code == 302  # ada's session ended with the new login


@pytest.mark.parametrize("name", ["ADA", "Ada", ".", ".."])
def test_user_names_that_read_as_another_or_as_a_path_are_refused(site, name):
    site.user("ada")
    admin = site.logged_in(site.user("root", Role.ADMIN))
    response = admin.post(
        "/admin/users",
        data={
            "csrf_token": csrf(admin),
            "name": name,
            "role": "reviewer",
            "password": PASSWORD,
            "password_again": PASSWORD,
        },
    )
    assert response.status_code == 400 and "Nothing was changed" in response.text
    assert site.db.user_by_name(name) is None


def test_name_variants_and_forwarded_addresses_do_not_escape_the_login_limits(site):
    site.user("ada")
    for index, variant in enumerate(["ada", " ada", "ada ", "ada\t", "ada"]):
        client = site.client()
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"203.0.113.{index}"
        assert login(client, variant, "guess guess guess").status_code == 401
    assert login(site.client(), "ada").status_code == 429
    for index in range(20):  # no trusted proxy: X-Forwarded-For is not the address
        client = site.client()
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"198.51.100.{index}"
        login(client, f"other{index}", "guess guess guess")
    site.user("bob")
    assert login(site.client(), "bob").status_code == 429


def test_an_https_mirror_tells_browsers_to_stay_on_https(tmp_path):
    https = AdminSite(tmp_path / "https", server={"public_url": "https://pypi.example.com/"})
    for path in ("/admin/login", "/admin/no-such-page", "/api/v1/files"):
        response = https.client().get(path)
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000", path
    plain = AdminSite(tmp_path / "http")
    assert "Strict-Transport-Security" not in plain.client().get("/admin/login").headers


def test_the_session_key_is_made_whole_and_a_short_one_is_refused(tmp_path):
    from mirror.web.security import load_secret_key

    path = tmp_path / "data" / "secret_key"
    key = load_secret_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secret_key(path) == key  # every worker reads the same key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # nothing left aside
    path.write_bytes(b"")  # as a worker saw it mid-write before keys were linked into place
    with pytest.raises(RuntimeError, match="holds 0 bytes"):
        AdminSite(tmp_path)


def test_simultaneous_guesses_get_no_more_tries_than_sequential_ones(site):
    site.user("ada")
    clients = [site.client() for _ in range(12)]
    pages = [client.get("/admin/login") for client in clients]  # each its login CSRF token
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def guess(client, page):
        data = {
            "username": "ada",
            "password": "guess guess guess",
            "csrf_token": csrf_from(page.text),
        }
        start.wait()
        statuses.append(client.post("/admin/login", data=data).status_code)
        site.db.close()  # this thread's connection

    threads = [
        threading.Thread(target=guess, args=pair) for pair in zip(clients, pages, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 5 + [429] * 7
