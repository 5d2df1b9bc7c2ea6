"""The mirror's app with or without its outermost layer (request id + request metrics),
for bench_observe.py to measure what that layer costs on the ``/simple/`` fast path:

    gunicorn ... 'observe_app:make("baseline")'      # the index as it was before it
    gunicorn ... 'observe_app:make("instrumented")'  # what `qmirror serve` runs
"""

from __future__ import annotations

from mirror.web import create_app
from mirror.web.observe import Observed


def make(mode: str):
    app = create_app()
    if mode == "baseline":
        assert isinstance(app.wsgi_app, Observed)
        app.wsgi_app = app.wsgi_app.app  # peel the layer off: SimpleIndex in front of Flask
    elif mode != "instrumented":
        raise ValueError(mode)
    return app
