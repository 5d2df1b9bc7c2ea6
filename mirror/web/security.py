"""Who is asking, and what they may do: sessions, roles, CSRF and security headers for
everything Flask serves (the admin pages and the API; ``/simple/`` is answered before
Flask by ``mirror.web.pages``).

A browser holds one signed cookie (Flask's session) carrying the random id of a
server-side session row; the row holds the user and the session's CSRF token, so logout,
a password change or disabling a user ends a session for real. Every POST from a browser
carries that CSRF token; the login form, which has no session yet, carries one kept in
the cookie itself.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from mirror.auth import Accounts, role_allows, same_secret, user_actor
from mirror.db import Role, SessionRow, UserRow

SESSION_COOKIE = "qmirror_session"
SESSION_ID = "sid"
LOGIN_CSRF = "login_csrf"
CSRF_FIELD = "csrf_token"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name

# No inline script or style anywhere: attacker-written metadata that slipped past
# escaping still could not run. Forms post only to us; no page can be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# With an https public URL: browsers that once reached us over TLS never try plain http
# again (where the session cookie, Secure or not, could be stripped or faked).
HSTS = "max-age=31536000"
HTTPS_ONLY = "QMIRROR_HTTPS_ONLY"
PRIVATE_PREFIXES = ("/admin", "/api/")
# The largest request body Flask reads: every form and API body is a few kilobytes (a bulk
# decision of 500 files is under 40 KB). Without a cap, a multipart POST to the login page
# is spooled to disk however large, and a JSON body read into memory, before any check.
MAX_REQUEST_BYTES = 1024 * 1024

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask, accounts: Accounts, *, data_dir: Path, https: bool) -> None:
    app.secret_key = load_secret_key(data_dir / SECRET_KEY_FILE)
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        PERMANENT_SESSION_LIFETIME=accounts.session_lifetime,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
    )
    app.config[HTTPS_ONLY] = https
    app.extensions["qmirror_accounts"] = accounts
    app.before_request(_load_session)
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.context_processor(lambda: {"csrf_token": csrf_token, "current_user": current_user()})


SECRET_KEY_BYTES = 32


def load_secret_key(path: Path) -> bytes:
    """The key that signs session cookies: made once per data directory, readable only by
    its owner, and shared by every worker (each reads the same file). It appears whole or
    not at all (written aside, then linked into place), so a worker starting while another
    makes it never reads a half-written, or empty, key."""
    try:
        return _checked_key(path, path.read_bytes())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(SECRET_KEY_BYTES)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:  # another worker made it first
            return _checked_key(path, path.read_bytes())
        except OSError:  # a file system without hard links: exclusive create, in place
            return _create_in_place(path, key)
    finally:
        aside.unlink(missing_ok=True)
    return key


def _create_in_place(path: Path, key: bytes) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _checked_key(path, path.read_bytes())
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _checked_key(path: Path, key: bytes) -> bytes:
    if len(key) < SECRET_KEY_BYTES:
        # An empty key would make every admin page a 500 (Flask has no session without
        # one); a short one signs cookies weakly. Neither is made here: say which file.
        raise RuntimeError(
            f"{path} holds {len(key)} bytes, not a {SECRET_KEY_BYTES}-byte key: remove it "
            "(every session ends) and restart, and a new key is made"
        )
    return key


def accounts() -> Accounts:
    return cast(Accounts, current_app.extensions["qmirror_accounts"])


def current_session() -> SessionRow | None:
    return cast(SessionRow | None, g.get("qmirror_session"))


def current_user() -> UserRow | None:
    live = current_session()
    return None if live is None else live.user


def actor() -> str:
    """How the audit log names whoever is acting in this request."""
    user = current_user()
    if user is not None:
        return user_actor(user.name)
    token = g.get("qmirror_token")
    return f"token:{token.id}:{token.name}" if token is not None else "anonymous"


def _load_session() -> None:
    g.qmirror_session = None
    secret = session.get(SESSION_ID)
    if isinstance(secret, str):
        g.qmirror_session = accounts().session(secret)


def start_session(secret: str) -> None:
    previous = session.get(SESSION_ID)
    if isinstance(previous, str):
        # A login over a live session (another user at the same browser) ends that one:
        # its row would outlive the cookie that named it.
        accounts().logout(previous)
    session.clear()  # a fresh cookie at login: no fixation of a pre-login one
    session[SESSION_ID] = secret
    session.permanent = True


def end_session() -> None:
    secret = session.get(SESSION_ID)
    if isinstance(secret, str):
        accounts().logout(secret)
    session.clear()


def csrf_token() -> str:
    """The token forms on this page must send back."""
    live = current_session()
    if live is not None:
        return live.csrf_token
    token = session.get(LOGIN_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[LOGIN_CSRF] = token
    return token


def _check_csrf() -> None:
    """Every state-changing browser request carries the CSRF token. The API is exempt:
    it authenticates with a bearer token, which a browser never sends by itself."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/api/"):
        return
    sent = request.form.get(CSRF_FIELD, "")
    live = current_session()
    if live is None and session.get(SESSION_ID) and request.endpoint != "auth.login":
        # The cookie names a session that has ended (expired, logged out elsewhere, user
        # disabled or changed): say so, rather than blame the form.
        abort(401, description="Your session has ended; log in again. Nothing was changed.")
    expected = live.csrf_token if live is not None else session.get(LOGIN_CSRF)
    if not isinstance(expected, str) or not sent or not same_secret(sent, expected):
        abort(403, description="The form's CSRF token is missing or wrong; reload the page.")


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config[HTTPS_ONLY]:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.path.startswith(PRIVATE_PREFIXES):
        response.headers["Cache-Control"] = "no-store"
    return response


def login_required(role: Role = Role.REVIEWER) -> Callable[[F], F]:
    """A view for people with at least ``role``. Anonymous (or expired, or disabled)
    browsers are sent to log in when they only wanted to look, refused with 401 when
    they tried to change something; a logged-in user without the role gets 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if request.method == "GET":
                    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
                abort(401, description="Your session has ended; log in again.")
            if not role_allows(user.role, role):
                abort(403, description=f"This needs the {role.value} role.")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


MAX_DIGITS = 18  # a whole number from a URL or form: far past any id or page, within int64


def whole_number(text: str) -> int | None:
    """``text`` as a non-negative whole number, or None. Only ASCII digits, and at most
    MAX_DIGITS of them: ``str.isdigit`` also accepts ``²`` (which ``int`` refuses), and
    ``int`` refuses strings of over 4300 digits, so either would be a 500, not a 400."""
    if not text or len(text) > MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def safe_next(target: str | None, default: str) -> str:
    """Where to go after login: only a path on this site under /admin, never a URL
    (no open redirect to ``//evil.example`` or ``https://evil.example``)."""
    if not target:
        return default
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/admin")
        or "\\" in target
        or "//" in target
        or any(ord(c) < 32 for c in target)
    ):
        return default
    return target
