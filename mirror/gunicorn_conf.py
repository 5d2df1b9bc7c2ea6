"""gunicorn settings, the ones ``qmirror serve`` runs with (``-c python:mirror.gunicorn_conf``).

Values come from the mirror's own settings (the ``QMIRROR_CONFIG`` file and ``QMIRROR_*``
variables, e.g. ``QMIRROR_SERVER_BIND``, ``QMIRROR_SERVER_WORKERS``), so systemd and Docker
set them the same way for ``qmirror serve`` and for a bare ``gunicorn -c
deploy/gunicorn.conf.py``. gunicorn's own ``GUNICORN_CMD_ARGS`` and command-line flags
override anything here.

gunicorn reads this module's names that are gunicorn settings and ignores the rest.
"""

from __future__ import annotations

import os

from mirror.config import load_settings
from mirror.gunicorn_hooks import child_exit, on_starting  # noqa: F401 - server hooks by name
from mirror.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

_settings = load_settings()
# Workers sum request counters through files (prometheus_client multiprocess); `qmirror
# serve` sets this, a bare `gunicorn -c deploy/gunicorn.conf.py` gets it here.
if not os.environ.get(MULTIPROC_ENV):
    os.environ[MULTIPROC_ENV] = str(prepare_multiprocess_dir(_settings.data_dir.resolve()))


def _cpu_count() -> int:
    # The CPUs this process may run on (a container's cpuset), not the host's count.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux, or a sandbox refusing the call
        return os.cpu_count() or 1


wsgi_app = "mirror.web:create_app()"
bind = [_settings.server.bind]
workers = _settings.server.workers or _cpu_count() * 2 + 1
# Threads keep pip's keep-alive connections cheap and let one worker stream several files.
worker_class = "gthread"
threads = _settings.server.threads

# gthread workers heartbeat from their main loop, so `timeout` only ends a hung worker, never
# a slow download; `graceful_timeout` lets downloads in flight finish on restart or stop.
timeout = 60
graceful_timeout = 30
# pip keeps one connection per host for a whole resolve, with pauses between requests while it
# reads metadata; and nginx reuses upstream connections for up to 60 s (keepalive_timeout).
# Outlasting both means the client side always closes first: no request lost on a socket
# gunicorn is closing at the same moment.
keepalive = 75

# X-Forwarded-Proto (and friends) are believed only from these addresses: the proxy in front.
# The same variable gunicorn itself reads; in a container, set it to the proxy's network.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = _settings.server.access_log or None
# The client as the proxy saw it, timing in ms, and the proxy's request id ("-" when absent),
# so one pip request can be followed from nginx's log to this one.
access_log_format = (
    '%(h)s %({x-forwarded-for}i)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" rid=%({x-request-id}i)s'
)

# The heartbeat file on tmpfs: a slow or read-only disk (Docker overlay) cannot stall workers.
# (gunicorn creates it with mkstemp and unlinks it at once.)
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None

# gunicorn >= 25 opens a control socket at one path per user ($HOME/.gunicorn/gunicorn.ctl):
# a second server (another mirror, parallel tests) would take it over, and nothing here uses
# `gunicornc`. Older gunicorn ignores the name.
control_socket_disable = True
