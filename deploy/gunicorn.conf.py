"""gunicorn config for quarantine-mirror: ``gunicorn -c deploy/gunicorn.conf.py``.

``qmirror serve`` already runs gunicorn with these settings (they ship in the package as
``mirror/gunicorn_conf.py``, read below). Use this file when gunicorn is started some other
way, or copy it (e.g. to /etc/qmirror/gunicorn.conf.py) to change a setting for one site.

What it reads from the environment (systemd ``Environment=``, Docker ``environment:``):

    QMIRROR_CONFIG          the mirror's TOML file
    QMIRROR_SERVER_BIND     HOST:PORT (or unix:PATH)      default 127.0.0.1:8080
    QMIRROR_SERVER_WORKERS  worker processes; 0 = 2 x CPUs + 1
    QMIRROR_SERVER_THREADS  gthread threads per worker    default 4
    QMIRROR_SERVER_ACCESS_LOG  "-" = stdout, a path, "" = none
    FORWARDED_ALLOW_IPS     proxies whose X-Forwarded-Proto is believed; default 127.0.0.1,::1

Defined there: wsgi_app, bind, workers, worker_class = "gthread", threads, timeout = 60,
graceful_timeout = 30, keepalive = 75, forwarded_allow_ips, accesslog, access_log_format
(with the proxy's X-Request-ID), worker_tmp_dir.
"""

from mirror.gunicorn_conf import *  # noqa: F403

# Site overrides go here, after the defaults, e.g.:
# timeout = 120
# workers = 4
