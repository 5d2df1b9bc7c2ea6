"""Logging in and out, sessions, roles, CSRF and security headers (in-process app)."""

from __future__ import annotations

import pytest

from mirror.db import Role
from tests.support.admin import PASSWORD, AdminSite, csrf, csrf_from, login


@pytest.fixture
def site(tmp_path):
    return AdminSite(tmp_path)


def test_anonymous_sees_nothing_under_admin(site):
    client = site.client()
    for path in ("/admin/", "/admin/projects", "/admin/audit", "/admin/users"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/login?next=")
    assert client.post("/admin/logout", data={}).status_code == 403  # no CSRF token at all


def test_login_opens_a_session_and_logout_ends_it(site):
    site.user("ada")
    client = site.client()
    response = login(client, "ada", next="/admin/projects")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/projects"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/admin/").status_code == 200
    token = csrf(client)
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/admin/").status_code == 302


def test_session_cookie_is_secure_when_the_public_url_is_https(tmp_path):
    site = AdminSite(tmp_path, server={"public_url": "https://pypi.example.com/"})
    site.user("ada")
    response = login(site.client(), "ada")
    assert "Secure" in response.headers["Set-Cookie"]


def test_wrong_password_and_unknown_user_get_the_same_answer(site):
    site.user("ada")
    wrong = login(site.client(), "ada", "not the password at all")
    missing = login(site.client(), "nobody", "not the password at all")
    assert wrong.status_code == missing.status_code == 401
    assert "Wrong user name or password" in wrong.text

    def without_token(text):
        return text.replace(csrf_from(text), "")

    assert without_token(wrong.text) == without_token(missing.text)


def test_failed_logins_are_rate_limited_per_user(site):
    site.user("ada")
    for _ in range(5):
        assert login(site.client(), "ada", "guess guess guess").status_code == 401
    throttled = login(site.client(), "ada", PASSWORD)  # even the right password now
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    site.clock.advance(minutes=16)
    assert login(site.client(), "ada", PASSWORD).status_code == 303


def test_failed_logins_are_rate_limited_per_address(site):
    for index in range(20):
        login(site.client(), f"user{index}", "guess guess guess")
    site.user("ada")
    assert login(site.client(), "ada", PASSWORD).status_code == 429


def test_post_without_or_with_a_wrong_csrf_token_is_refused(site):
    site.user("ada")
    client = site.logged_in("ada")
    assert client.post("/admin/logout", data={}).status_code == 403
    assert client.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/admin/").status_code == 200  # still logged in: nothing changed


def test_login_form_itself_needs_its_csrf_token(site):
    site.user("ada")
    client = site.client()
    response = client.post("/admin/login", data={"username": "ada", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/admin/").status_code == 302


def test_a_reviewer_cannot_reach_admin_pages(site):
    site.user("rev", Role.REVIEWER)
    site.user("boss", Role.ADMIN)
    assert site.logged_in("rev").get("/admin/users").status_code == 403
    assert site.logged_in("boss").get("/admin/users").status_code == 200


def test_expired_session_is_refused(site):
    site.user("ada")
    client = site.logged_in("ada")
    token = csrf(client)
    site.clock.advance(hours=12, seconds=1)
    assert client.get("/admin/").status_code == 302
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 401


def test_disabling_a_user_or_changing_the_password_ends_their_sessions(site):
    site.user("ada")
    site.user("bob")
    ada, bob = site.logged_in("ada"), site.logged_in("bob")
    site.clock.advance(seconds=1)
    site.accounts.set_disabled("ada", True, actor="test")
    site.accounts.set_password("bob", "another long password", actor="test")
    assert ada.get("/admin/").status_code == 302
    assert bob.get("/admin/").status_code == 302
    assert login(site.client(), "ada").status_code == 401  # disabled
    assert login(site.client(), "bob", "another long password").status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/admin/",
        "//evil.example/admin/",
        "/\\evil.example",
        "/admin//evil.example",
        "javascript:alert(1)",
        "/elsewhere",
    ],
)
def test_no_open_redirect_after_login(site, target):
    site.user("ada")
    response = login(site.client(), "ada", next=target)
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"


def test_security_headers_on_admin_pages(site):
    response = site.client().get("/admin/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in response.text and "style=" not in response.text


def test_passwords_are_hashed_and_short_ones_refused(site):
    site.user("ada")
    row = site.db.user_by_name("ada")
    assert row.password_hash.startswith("scrypt:") and PASSWORD not in row.password_hash
    from mirror.auth import AuthError

    with pytest.raises(AuthError, match="at least 12"):
        site.accounts.add_user("eve", "short", Role.REVIEWER, actor="test")


def test_user_actions_are_audited(site):
    site.user("ada")
    site.accounts.set_disabled("ada", True, actor="cli:root")
    actions = [row["action"] for row in site.db.audit_log()]
    assert actions[:2] == ["user.disable", "user.add"]


def test_login_page_escapes_the_next_parameter(site):
    page = site.client().get('/admin/login?next=/admin/"><script>alert(1)</script>')
    assert "<script>alert" not in page.text
    assert csrf_from(page.text)
