"""quarantine-mirror: the service (sync, publish, index, admin). Judging lives in ``quarantine``."""

__version__ = "0.1.0"
