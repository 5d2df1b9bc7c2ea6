"""``[server] index_auth``: ``/simple/`` and ``/files/`` answer only to HTTP basic auth
whose password is a live API token (any role; pip: ``https://user:TOKEN@host/simple/``).

This runs on the pip-facing hot path, so it asks the database only for a token it has
not seen since the database last changed: verdicts are cached per worker and dropped
whenever ``PRAGMA data_version`` moves, which every commit (a revocation among them)
does. A revoked token is refused from the next request on.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mirror.auth import digest
from mirror.db import PageReader

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

REALM = "quarantine-mirror"
MAX_CACHED = 1024  # verdicts kept per worker; a flood of made-up tokens cannot grow it
MAX_HEADER = 4096
UNAUTHORIZED = b"Authentication required: use a read token as the password (index_auth).\n"
REFUSAL_HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(UNAUTHORIZED))),
    ("WWW-Authenticate", f'Basic realm="{REALM}"'),
]


class IndexAuth:
    def __init__(self, reader: PageReader) -> None:
        self.reader = reader
        self._verdicts: dict[str, bool] = {}
        self._version: int | None = None
        self._lock = threading.Lock()

    def allows(self, environ: WSGIEnvironment) -> bool:
        secret = _basic_password(environ.get("HTTP_AUTHORIZATION", ""))
        if secret is None:
            return False
        key = digest(secret)
        version = self.reader.version()
        with self._lock:
            if version != self._version:
                self._verdicts.clear()
                self._version = version
            cached = self._verdicts.get(key)
        if cached is not None:
            return cached
        verdict = self.reader.live_token(key)
        with self._lock:
            if self._version == version:
                if len(self._verdicts) >= MAX_CACHED:
                    self._verdicts.clear()
                self._verdicts[key] = verdict
        return verdict

    @staticmethod
    def refuse(start_response: StartResponse) -> Iterable[bytes]:
        start_response("401 Unauthorized", REFUSAL_HEADERS)
        return [UNAUTHORIZED]


def _basic_password(header: str) -> str | None:
    if not header or len(header) > MAX_HEADER:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep and password else None
