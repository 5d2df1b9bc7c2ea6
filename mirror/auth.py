"""People and tokens: password hashing, login with rate limits, sessions, API tokens.

No Flask here: the web layer and the CLI both call this, with the database and the clock
passed in. Secrets are never stored: passwords as werkzeug scrypt hashes, session ids and
API tokens as sha256 digests of random values shown to their owner once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from mirror.db import Database, Role, SessionRow, TokenRole, TokenRow, UserRow, utcnow

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # scrypt of a megabyte "password" is a cheap denial of service
PASSWORD_METHOD = "scrypt"  # noqa: S105 - a hash method name
USERNAME_MAX = 64

# Failed logins allowed per window, per user name and per client address. The per-user
# limit slows guessing one account; the per-address limit slows spraying many.
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 20

TOKEN_PREFIX = "qm_"  # noqa: S105 - marks our tokens in logs and scanners
TOKEN_BYTES = 32


@functools.cache
def _dummy_hash() -> str:
    """Checked when a user name does not exist, so a login for a missing user costs the
    same time as one with a wrong password (no user enumeration by timing)."""
    return generate_password_hash(secrets.token_hex(16), method=PASSWORD_METHOD)


class AuthError(Exception):
    """A refused login or account change; ``str()`` is safe to show the person."""


class LoginThrottled(AuthError):
    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed logins. Try again later.")
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    check_password_strength(password)
    return generate_password_hash(password, method=PASSWORD_METHOD)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthError(f"a password can have at most {MAX_PASSWORD_LENGTH} characters")


def check_username(name: str) -> str:
    name = name.strip()
    if (
        not name
        or len(name) > USERNAME_MAX
        or not all(c.isalnum() or c in "._-@" for c in name)
        or not name.strip(".")  # "." and ".." are path segments in the users page's URLs
    ):
        raise AuthError(
            f"a user name is 1-{USERNAME_MAX} letters, digits and . _ - @ (got {name[:80]!r})"
        )
    return name


def user_actor(name: str) -> str:
    """How the audit log (and a token's ``created_by``) names a person acting."""
    return f"user:{name}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    row: TokenRow
    secret: str  # shown once, never stored


class Accounts:
    """Users, sessions and tokens over one database, with an injectable clock."""

    def __init__(
        self,
        db: Database,
        *,
        session_lifetime: timedelta = timedelta(hours=12),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.session_lifetime = session_lifetime
        self.clock = clock

    # ------------------------------------------------------------ users

    def add_user(self, name: str, password: str, role: Role, *, actor: str) -> UserRow:
        name = check_username(name)
        password_hash = hash_password(password)
        now = self.clock()
        with self.db.write():
            # "Ada" next to "ada" would read as one person in the audit log.
            taken = next((u.name for u in self.db.users() if u.name.lower() == name.lower()), None)
            if taken is not None:
                raise AuthError(f"a user named {taken!r} already exists")
            user_id = self.db.add_user(name, password_hash, Role(role), now)
            self.db.log_event(actor, "user.add", name, f"role {Role(role).value}", now=now)
        user = self.db.user_by_id(user_id)
        assert user is not None
        return user

    def _user(self, name: str) -> UserRow:
        user = self.db.user_by_name(name)
        if user is None:
            raise AuthError(f"no user named {name!r}")
        return user

    def set_password(self, name: str, password: str, *, actor: str) -> None:
        user = self._user(name)
        password_hash = hash_password(password)
        now = self.clock()
        with self.db.write():
            self.db.update_user(user.id, now=now, password_hash=password_hash)
            self.db.log_event(actor, "user.passwd", name, "sessions ended", now=now)

    def set_disabled(self, name: str, disabled: bool, *, actor: str) -> None:
        """Disable (or enable) a user. Disabling ends their sessions and revokes every
        token they made: they saw its secret, so it would let them act on after leaving.
        Enabling them again brings no token back."""
        user = self._user(name)
        now = self.clock()
        with self.db.write():
            self.db.update_user(user.id, now=now, disabled=disabled)
            action = "user.disable" if disabled else "user.enable"
            self.db.log_event(actor, action, name, "sessions ended", now=now)
            if disabled:
                self._revoke_tokens_of(name, above=None, actor=actor, now=now)

    def set_role(self, name: str, role: Role, *, actor: str) -> None:
        """Change a user's role. An admin made reviewer loses the admin tokens they made:
        no token may do more than the person who holds its secret."""
        user = self._user(name)
        now = self.clock()
        with self.db.write():
            self.db.update_user(user.id, now=now, role=Role(role))
            self.db.log_event(actor, "user.role", name, f"role {Role(role).value}", now=now)
            if Role(role) is Role.REVIEWER:
                self._revoke_tokens_of(name, above=TokenRole.REVIEWER, actor=actor, now=now)

    def _revoke_tokens_of(
        self, name: str, *, above: TokenRole | None, actor: str, now: datetime
    ) -> None:
        """Revoke the live tokens ``name`` made (only those of a role above ``above``,
        when given), one audit row each; inside the caller's transaction."""
        for token in self.db.tokens():
            if (
                token.created_by != user_actor(name)
                or token.revoked_at is not None
                or (above is not None and not _token_role_above(token.role, above))
            ):
                continue
            self.db.revoke_token(token.id, now)
            why = "its creator was disabled" if above is None else "its creator's role is lower"
            self.db.log_event(actor, "token.revoke", f"token {token.id}", why, now=now)

    # ------------------------------------------------------------ login and sessions

    def login(self, name: str, password: str, *, ip: str) -> tuple[str, SessionRow]:
        """Check a password and open a session. Returns the session's secret id (for the
        cookie) and its row. Refusals say nothing about which part was wrong."""
        now = self.clock()
        since = now - LOGIN_WINDOW
        name = name.strip()[:USERNAME_MAX]
        # The limits are checked and this attempt counted in one write transaction, before
        # the (slow) password check: guesses sent at once cannot all pass a count of zero.
        with self.db.write():
            self._throttle(since, now, username=name)
            self._throttle(since, now, ip=ip)
            attempt = self.db.begin_login_attempt(name, ip, now)
        if len(password) > MAX_PASSWORD_LENGTH:
            password = ""
        user = self.db.user_by_name(name)
        ok = check_password_hash(user.password_hash if user else _dummy_hash(), password)
        ok = ok and user is not None and not user.disabled
        if not ok or user is None:
            raise AuthError("Wrong user name or password, or the account is disabled.")
        self.db.login_attempt_succeeded(attempt)
        self.db.prune_login_attempts(now - 4 * LOGIN_WINDOW)
        secret = secrets.token_urlsafe(32)
        self.db.create_session(
            digest(secret),
            user.id,
            secrets.token_urlsafe(32),
            now=now,
            expires_at=now + self.session_lifetime,
            ip=ip,
        )
        session = self.db.session(digest(secret))
        assert session is not None
        return secret, session

    def _throttle(
        self, since: datetime, now: datetime, *, username: str | None = None, ip: str | None = None
    ) -> None:
        limit = MAX_FAILURES_PER_USER if username is not None else MAX_FAILURES_PER_IP
        failures, oldest = self.db.failed_logins(since=since, username=username, ip=ip)
        if failures >= limit:
            frees_at = (oldest or now) + LOGIN_WINDOW
            raise LoginThrottled(max(1, int((frees_at - now).total_seconds())))

    def session(self, secret: str) -> SessionRow | None:
        """The live session for a cookie's secret id: None when unknown, expired, or its
        user has been disabled or changed since it began."""
        if not secret or len(secret) > 200:
            return None
        session = self.db.session(digest(secret))
        if session is None:
            return None
        if (
            session.expires_at <= self.clock()
            or session.user.disabled
            or session.user.credentials_changed_at > session.created_at
        ):
            self.db.delete_session(session.id_hash)
            return None
        return session

    def logout(self, secret: str) -> None:
        self.db.delete_session(digest(secret))

    # ------------------------------------------------------------ API tokens

    def create_token(self, name: str, role: TokenRole, *, actor: str) -> NewToken:
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise AuthError("a token name is 1-100 printable characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        with self.db.write():
            token_id = self.db.add_token(name, digest(secret), TokenRole(role), actor, now)
            self.db.log_event(
                actor, "token.create", f"token {token_id}", f"{name} ({role})", now=now
            )
        row = self.db.token_by_hash(digest(secret))
        assert row is not None
        return NewToken(row=row, secret=secret)

    def token(self, secret: str) -> TokenRow | None:
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        row = self.db.token_by_hash(digest(secret))
        if row is not None:
            self.db.touch_token(row.id, self.clock())
        return row

    def revoke_token(self, token_id: int, *, actor: str) -> None:
        now = self.clock()
        with self.db.write():
            if not self.db.revoke_token(token_id, now):
                raise AuthError(f"no live token with id {token_id}")
            self.db.log_event(actor, "token.revoke", f"token {token_id}", "", now=now)


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison for CSRF tokens and the like."""
    return hmac.compare_digest(a.encode(), b.encode())


TOKEN_ROLE_ORDER = (TokenRole.READ, TokenRole.REVIEWER, TokenRole.ADMIN)


def token_allows(token: TokenRow, needed: TokenRole) -> bool:
    return TOKEN_ROLE_ORDER.index(token.role) >= TOKEN_ROLE_ORDER.index(needed)


def _token_role_above(role: TokenRole, than: TokenRole) -> bool:
    return TOKEN_ROLE_ORDER.index(role) > TOKEN_ROLE_ORDER.index(than)


def role_allows(role: Role, needed: Role) -> bool:
    return role is Role.ADMIN or needed is Role.REVIEWER
