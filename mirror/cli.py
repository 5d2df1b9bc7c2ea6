"""The ``qmirror`` command: a click group bound to the same factories the app uses."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import click
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mirror.config import ConfigError, Settings, find_config_file, load_settings
from mirror.db import Database, FileRow, State, utcnow
from mirror.publish import APPROVABLE, REJECTABLE, REVOCABLE, Publisher, PublishError
from mirror.simple import refresh_pages
from mirror.storage import StorageError, build_storage
from quarantine.policy import Verdict, decide

log = logging.getLogger("qmirror")

SCAN_EXIT = {Verdict.APPROVE: 0, Verdict.HOLD: 1, Verdict.REJECT: 2}


class CliContext:
    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config)
            except ConfigError as error:
                raise click.ClickException(str(error)) from None
        return self._settings

    def database(self) -> Database:
        db = Database(self.settings.database_path)
        db.migrate()
        return db


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("qmirror")
    root.handlers[:] = [handler]
    # On a terminal the progress bar says what is happening; under cron, log lines do.
    root.setLevel(logging.WARNING if sys.stderr.isatty() else logging.INFO)


@click.group()
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    help="Config file (default: $QMIRROR_CONFIG, else ./qmirror.toml if present).",
)
@click.version_option(package_name="quarantine-mirror")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """quarantine-mirror: a Python package index that publishes only approved files."""
    _setup_logging()
    ctx.obj = CliContext(config)


# ---------------------------------------------------------------- serve


@main.command()
@click.option("--bind", help="HOST:PORT to listen on (default: [server] bind).")
@click.option("--workers", type=int, help="gunicorn worker processes (default: from CPUs).")
@click.pass_obj
def serve(obj: CliContext, bind: str | None, workers: int | None) -> NoReturn:
    """Serve the index (and admin) under gunicorn."""
    settings = obj.settings
    db = obj.database()
    refresh_pages(db, [name for name, _ in db.servable_project_names()])
    db.close()
    bind = bind or settings.server.bind
    workers = workers or settings.server.workers or (os.cpu_count() or 1) * 2 + 1
    env = dict(os.environ)
    config_file = find_config_file(obj.config, os.environ)
    if config_file is not None:
        env["QMIRROR_CONFIG"] = str(config_file.resolve())
    env["QMIRROR_DATA_DIR"] = str(settings.data_dir.resolve())
    public = settings.server.public_url or f"http://{bind}/"
    click.echo(f"Serving on http://{bind}/  (data: {settings.data_dir})", err=True)
    click.echo(f"  pip install --index-url {public.rstrip('/')}/simple/ flask", err=True)
    argv = [
        sys.executable, "-m", "gunicorn",
        "--bind", bind,
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(settings.server.threads),
        *(["--access-logfile", settings.server.access_log] if settings.server.access_log else []),
        "mirror.web:create_app()",
    ]  # fmt: skip
    # Replace this process, so signals from systemd or a terminal reach gunicorn itself.
    os.execve(sys.executable, argv, env)  # noqa: S606


# ---------------------------------------------------------------- sync


class TerminalProgress:
    """A progress bar per project batch, for people watching a terminal."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total_files: int, label: str) -> None:
        self._bar = click.progressbar(length=total_files, label=label, file=sys.stderr)
        self._bar.__enter__()

    def advance(self, filename: str, outcome: str, size: int) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@main.command()
@click.pass_obj
def sync(obj: CliContext) -> None:
    """Pull the configured projects (and their dependencies) into quarantine."""
    from mirror.sync import LogProgress, Syncer, SyncLocked
    from mirror.upstream import UpstreamClient

    settings = obj.settings
    db = obj.database()
    upstream = UpstreamClient(
        settings.upstream.url,
        timeout=settings.upstream.timeout,
        retries=settings.upstream.retries,
        pool_size=settings.upstream.concurrency,
    )
    progress = TerminalProgress() if sys.stderr.isatty() else LogProgress()
    syncer = Syncer(
        settings, db, build_storage(settings), upstream,
        settings.policy.build(), progress=progress,
    )  # fmt: skip
    try:
        summary = syncer.run()
    except SyncLocked as error:
        raise click.ClickException(str(error)) from None
    finally:
        upstream.close()
    click.echo(summary.line())
    if summary.failed:
        for message in summary.errors[:20]:
            click.echo(f"  failed: {_clip(message, 300)}", err=True)
        raise SystemExit(1)


# ---------------------------------------------------------------- decisions


def _select(
    db: Database, spec: str, filename: str | None, states: Iterable[State]
) -> list[FileRow]:
    try:
        requirement = Requirement(spec)
    except InvalidRequirement:
        raise click.ClickException(f"{spec!r} is not PROJECT or PROJECT==VERSION") from None
    specifiers = list(requirement.specifier)
    version: Version | None = None
    if specifiers:
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise click.ClickException(f"{spec!r}: only PROJECT==VERSION is accepted")
        try:
            version = Version(specifiers[0].version)
        except InvalidVersion:
            raise click.ClickException(f"{spec!r}: invalid version") from None
    states = list(states)
    rows = [
        row
        for row in db.files(project=canonicalize_name(requirement.name), states=states)
        if (version is None or Version(row.version) == version)
        and (filename is None or row.filename == filename)
    ]
    if not rows:
        wanted = " or ".join(s.value for s in states)
        raise click.ClickException(
            f"no {wanted} files match {spec}" + (f" --file {filename}" if filename else "")
        )
    return rows


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _decide(obj: CliContext, verb: str, spec: str, filename: str | None, reason: str) -> None:
    states = {"approve": APPROVABLE, "reject": REJECTABLE, "revoke": REVOCABLE}[verb]
    if verb == "approve" and filename is None:
        # Overturning a rejection or a revocation is a decision about one file, named with
        # --file; approving a release by name only publishes what is still held.
        states = (State.QUARANTINED,)
    db = obj.database()
    rows = _select(db, spec, filename, states)
    publisher = Publisher(db, build_storage(obj.settings))
    try:
        done = getattr(publisher, verb)(rows, actor=_actor(), reason=reason)
    except (PublishError, StorageError) as error:
        raise click.ClickException(str(error)) from None
    past = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[verb]
    for row in done:
        click.echo(f"{past} {row.filename}")


_spec = click.argument("spec", metavar="PROJECT[==VERSION]")
_file = click.option("--file", "filename", help="Only this file of the release.")


@main.command()
@_spec
@_file
@click.option("--reason", default="approved from the command line", show_default=True)
@click.pass_obj
def approve(obj: CliContext, spec: str, filename: str | None, reason: str) -> None:
    """Publish held files: they appear on the index at once. A rejected or revoked file is
    only approved when named with --file."""
    _decide(obj, "approve", spec, filename, reason)


@main.command()
@_spec
@_file
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.pass_obj
def reject(obj: CliContext, spec: str, filename: str | None, reason: str) -> None:
    """Reject held files: they are never published."""
    _decide(obj, "reject", spec, filename, reason)


@main.command()
@_spec
@_file
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.pass_obj
def revoke(obj: CliContext, spec: str, filename: str | None, reason: str) -> None:
    """Remove approved files from the index at once."""
    _decide(obj, "revoke", spec, filename, reason)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj: CliContext, as_json: bool) -> None:
    """Files per state, the oldest held file, the last sync."""
    db = obj.database()
    counts = db.counts_by_state()
    held = db.files(states=[State.QUARANTINED])
    oldest = held[0] if held else None
    last = db.last_sync_run()
    errors = db.fetch_errors()
    if as_json:
        click.echo(json.dumps({
            "counts": counts,
            "oldest_held": None if oldest is None else {
                "filename": oldest.filename, "first_seen": oldest.first_seen.isoformat(),
                "reasons": list(oldest.held_reasons),
            },
            "last_sync": last,
            "fetch_errors": len(errors),
        }, indent=2))  # fmt: skip
        return
    click.echo("  ".join(f"{state}: {count}" for state, count in counts.items()))
    if oldest is not None:
        age = utcnow() - oldest.first_seen
        click.echo(f"oldest held: {oldest.filename} (held {_age(age.total_seconds())})")
        for reason in oldest.held_reasons[:5]:
            click.echo(f"  - {_clip(reason)}")
    if last is not None:
        click.echo(f"last sync: {last['started']} {last['status']}")
    if errors:
        click.echo(f"files that failed to download (retried next sync): {len(errors)}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _clip(text: str, width: int = 160) -> str:
    # Reasons quote attacker-written metadata: keep a terminal line a line.
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------- scan


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.pass_obj
def scan(obj: CliContext, files: tuple[str, ...], as_json: bool) -> None:
    """Run every check on files on disk. Exit 0 approve, 1 hold, 2 reject (the worst)."""
    from quarantine.findings import CheckContext
    from quarantine.inspection import inspect_file

    policy = obj.settings.policy.build()
    worst = Verdict.APPROVE
    for name in files:
        path = Path(name)
        context = CheckContext(
            filename=path.name,
            pth_allowlist=frozenset(obj.settings.checks.pth_allowlist),
            internal_patterns=obj.settings.policy.internal,
        )
        inspection = inspect_file(path, context)
        decision = decide(
            policy, inspection.findings, project=inspection.name, uploaded_at=None, now=utcnow()
        )
        if SCAN_EXIT[decision.verdict] > SCAN_EXIT[worst]:
            worst = decision.verdict
        if as_json:
            click.echo(json.dumps({
                "file": str(path), "sha256": inspection.sha256,
                "verdict": decision.verdict.value, "reasons": list(decision.reasons),
                "findings": [f.as_dict() for f in inspection.findings],
            }))  # fmt: skip
            continue
        click.echo(f"{path.name}: {decision.verdict.value.upper()}")
        for finding in inspection.findings:
            where = f" [{_clip(finding.path, 80)}]" if finding.path else ""
            click.echo(
                f"  {finding.severity.value:<8} {finding.check}{where}: {_clip(finding.message)}"
            )
            if finding.evidence:
                click.echo(f"           {_clip(finding.evidence)}")
    raise SystemExit(SCAN_EXIT[worst])


@main.command("checks")
def list_checks() -> None:
    """List every check: its id (for [policy.checks] and allow lists) and what it looks for."""
    from quarantine.checks import CATALOGUE

    width = max(len(check.id) for check in CATALOGUE)
    for check in CATALOGUE:
        click.echo(f"{check.id:<{width}}  {check.description}")


@main.command()
@click.pass_obj
def init(obj: CliContext) -> None:
    """Create the data directory and database (serve and sync do this too)."""
    db = obj.database()
    refresh_pages(db, [])
    click.echo(f"initialised {obj.settings.data_dir.resolve()}")
