"""gunicorn server hooks ``qmirror serve`` loads (``--config python:mirror.gunicorn_hooks``).

A deployment with its own gunicorn config file imports these names into it
(``from mirror.gunicorn_hooks import on_starting, child_exit``) so the metrics stay
right: ``PROMETHEUS_MULTIPROC_DIR`` must be set in gunicorn's environment before it
starts (``qmirror serve`` does it; a systemd unit sets ``Environment=``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mirror.metrics import MULTIPROC_ENV, reset_multiprocess_dir


def on_starting(server: Any) -> None:
    """In the master, before any worker: start the request counters from zero."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        reset_multiprocess_dir(Path(directory))


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges stop counting (its counters are kept, summed)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
