"""The outermost WSGI layer: a request id and request metrics for every request.

It wraps everything, the ``/simple/`` fast path included, so it does only what each
request must pay for: two clock reads, an id (the caller's ``X-Request-ID`` when it is
short and safe, else a per-process prefix and a counter), one header, a route label
from a prefix test, and two increments on pre-resolved metric children.

The route label is never the raw path (attacker-chosen, unbounded): ``/simple/``,
``/simple/<project>/``, ``/files/``, else the Flask endpoint that handled the request
(recorded in the WSGI environ by a ``before_request`` hook), else ``unmatched``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, request

from mirror.logs import request_id
from mirror.metrics import (
    ROUTE_FILES,
    ROUTE_SIMPLE_PROJECT,
    ROUTE_SIMPLE_ROOT,
    ROUTE_UNMATCHED,
    HttpMetrics,
)

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("qmirror.web")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON = "qmirror.request_id"
ROUTE_ENVIRON = "qmirror.route"
# An incoming id is kept only if it cannot break a header, a log line or a label.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class _Ids:
    """``<random per-process prefix>-<counter>``: unique across workers, cheap per request."""

    def __init__(self) -> None:
        self.reset()
        # A forked worker must not repeat its parent's ids.
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(4)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


_ids = _Ids()


def incoming_request_id(value: str | None) -> str | None:
    if value and SAFE_REQUEST_ID.fullmatch(value):
        return value
    return None


class Observed:
    """WSGI middleware: request id in and out, request metrics recorded."""

    def __init__(self, app: WSGIApplication, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        rid = incoming_request_id(environ.get("HTTP_X_REQUEST_ID")) or _ids.next()
        environ[REQUEST_ID_ENVIRON] = rid
        token = request_id.set(rid)
        status = [500]

        def start(
            status_line: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Any:
            status[0] = int(status_line[:3])
            headers.append((REQUEST_ID_HEADER, rid))
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, start)
        except Exception:
            log.exception("unhandled error")
            raise
        finally:
            self.metrics.record(_route(environ), status[0], time.perf_counter() - started)
            request_id.reset(token)


def _route(environ: WSGIEnvironment) -> str:
    path: str = environ.get("PATH_INFO", "")
    if path.startswith("/simple/"):
        return ROUTE_SIMPLE_ROOT if path == "/simple/" else ROUTE_SIMPLE_PROJECT
    if path.startswith("/files/"):
        return ROUTE_FILES
    route: str = environ.get(ROUTE_ENVIRON) or ROUTE_UNMATCHED
    return route


def _remember_endpoint() -> None:
    request.environ[ROUTE_ENVIRON] = request.endpoint


def install(app: Flask, metrics: HttpMetrics) -> None:
    """Wrap the app's WSGI callable (the ``/simple/`` fast path included)."""
    app.before_request(_remember_endpoint)
    app.wsgi_app = Observed(app.wsgi_app, metrics)  # type: ignore[method-assign]
