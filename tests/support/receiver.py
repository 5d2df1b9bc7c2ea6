"""A webhook receiver on loopback: a real HTTP server that records every alert POSTed to
it and answers with the statuses a test scripts (200 unless told otherwise), after the
delays it scripts (a receiver that hangs)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class WebhookReceiver:
    def __init__(self, port: int = 0) -> None:
        self.alerts: list[dict[str, Any]] = []  # parsed bodies of the requests answered 2xx
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self._statuses: deque[int] = deque()
        self._delays: deque[float] = deque()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    delay = receiver._delays.popleft() if receiver._delays else 0.0
                time.sleep(delay)
                with receiver._lock:
                    receiver.requests.append((self.command, self.path, dict(self.headers)))
                    status = receiver._statuses.popleft() if receiver._statuses else 200
                    if 200 <= status < 300:
                        receiver.alerts.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/T000/B000/secret"

    def respond_next(self, *statuses: int) -> None:
        """The next requests get these statuses, in order."""
        with self._lock:
            self._statuses.extend(statuses)

    def hang_next(self, *seconds: float) -> None:
        """The next requests are answered only after these delays, in order."""
        with self._lock:
            self._delays.extend(seconds)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The alerts once at least ``count`` have arrived (or whatever came by the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.alerts) >= count:
                    break
            time.sleep(0.02)
        with self._lock:
            return list(self.alerts)

    def events(self) -> list[str]:
        return [alert["qmirror"]["event"] for alert in self.alerts]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
