"""The ``qmirror`` command: a click group bound to the same factories the app uses."""

from __future__ import annotations

import dataclasses
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
from mirror.logs import setup_logging
from mirror.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from mirror.projects import Projects
from mirror.publish import APPROVABLE, REJECTABLE, REVOCABLE, Publisher, PublishError
from mirror.simple import refresh_pages
from mirror.storage import Storage, StorageError, build_storage
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
    # On a terminal the progress bar says what is happening; under cron, log lines do
    # (JSON lines, see mirror.logs).
    setup_logging(logging.WARNING if sys.stderr.isatty() else logging.INFO)


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
    env = dict(os.environ)
    config_file = find_config_file(obj.config, os.environ)
    if config_file is not None:
        env["QMIRROR_CONFIG"] = str(config_file.resolve())
    env["QMIRROR_DATA_DIR"] = str(settings.data_dir.resolve())
    # Workers share request counters through files here (prometheus_client multiprocess).
    if not env.get(MULTIPROC_ENV):
        env[MULTIPROC_ENV] = str(prepare_multiprocess_dir(settings.data_dir.resolve()))
    shown = bind or settings.server.bind
    public = settings.server.public_url or f"http://{shown}/"
    click.echo(f"Serving on http://{shown}/  (data: {settings.data_dir})", err=True)
    click.echo(f"  pip install --index-url {public.rstrip('/')}/simple/ flask", err=True)
    # gunicorn's settings (workers, gthread, timeouts, log format) live in one module that
    # reads the same config, so `gunicorn -c deploy/gunicorn.conf.py` runs the same server.
    argv = [
        sys.executable, "-m", "gunicorn", "--config", "python:mirror.gunicorn_conf",
        *(["--bind", bind] if bind else []),
        *(["--workers", str(workers)] if workers else []),
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
    """Pull the configured projects, those admins added, and their dependencies into
    quarantine."""
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
    # The policy with each project's override, the config file's and the admins' alike.
    syncer = Syncer(
        settings, db, build_storage(settings), upstream,
        Projects(settings, db).policy(), progress=progress,
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
        if verb == "approve":
            # The states chosen above, checked again inside the transition: a decision
            # taken since the lookup is not overturned by accident.
            done = publisher.approve(rows, actor=_actor(), reason=reason, only_from=tuple(states))
        else:
            done = getattr(publisher, verb)(rows, actor=_actor(), reason=reason)
    except (PublishError, StorageError) as error:
        raise click.ClickException(str(error)) from None
    past = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[verb]
    for row in done:
        click.echo(f"{past} {row.filename}")
    _deliver_alerts(obj, db)


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
    waiting, next_due = db.cooldown_waiting()
    if as_json:
        click.echo(json.dumps({
            "counts": counts,
            "cooldown": {
                "waiting": waiting, "next_due": None if next_due is None else next_due.isoformat(),
            },
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
    if waiting:
        due = "" if next_due is None else f"; next due {next_due.isoformat()}"
        click.echo(f"waiting on cooldown: {waiting}{due} (approved by the first sync after)")
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
@click.option(
    "--against",
    type=click.Path(exists=True, dir_okay=False),
    help="An earlier (approved) release: also report what changed since it (drift).",
)
@click.pass_obj
def scan(obj: CliContext, files: tuple[str, ...], as_json: bool, against: str | None) -> None:
    """Run every check on files on disk. Exit 0 approve, 1 hold, 2 reject (the worst).
    With --against OLDFILE, also compare each file with that earlier release."""
    from quarantine.drift import drift_findings, snapshot_of
    from quarantine.findings import CheckContext
    from quarantine.inspection import inspect_file

    def context_for(path: Path) -> CheckContext:
        return CheckContext(
            filename=path.name,
            pth_allowlist=frozenset(obj.settings.checks.pth_allowlist),
            internal_patterns=obj.settings.policy.internal,
        )

    previous = None
    if against is not None:
        previous = snapshot_of(inspect_file(Path(against), context_for(Path(against))))
    policy = obj.settings.policy.build()
    worst = Verdict.APPROVE
    for name in files:
        path = Path(name)
        inspection = inspect_file(path, context_for(path))
        if previous is not None:
            drift = drift_findings(previous, snapshot_of(inspection))
            inspection = dataclasses.replace(inspection, findings=(*inspection.findings, *drift))
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
    import inspect

    from quarantine.checks import CATALOGUE, REPORTED_OUTSIDE_CATALOGUE
    from quarantine.drift import DRIFT_CHECKS, DRIFT_GRAVER_IDS

    rows = [(check.id, check.description) for check in CATALOGUE]
    drift = [
        (check_id, (inspect.getdoc(function) or "").split("\n\n", 1)[0].replace("\n", " "))
        for check_id, function in DRIFT_CHECKS
    ]
    drift += DRIFT_GRAVER_IDS.items()
    rows += [(check_id, f"(drift, against the last approved release) {d}") for check_id, d in drift]
    rows += list(REPORTED_OUTSIDE_CATALOGUE.items())
    width = max(len(check_id) for check_id, _ in rows)
    for check_id, description in rows:
        click.echo(f"{check_id:<{width}}  {description}")


@main.command()
@click.pass_obj
def init(obj: CliContext) -> None:
    """Create the data directory and database (serve and sync do this too)."""
    db = obj.database()
    refresh_pages(db, [])
    click.echo(f"initialised {obj.settings.data_dir.resolve()}")


# ---------------------------------------------------------------- users and tokens


def _accounts(obj: CliContext) -> Any:
    from mirror.auth import Accounts

    return Accounts(obj.database(), session_lifetime=obj.settings.server.session_lifetime)


def _read_password() -> str:
    """From a prompt on a terminal, else the first line of stdin; never from argv, where
    every user of the machine (and the shell history) could read it."""
    if sys.stdin.isatty():
        password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    line = sys.stdin.readline()
    if not line:
        raise click.ClickException("no password given on stdin")
    return line.rstrip("\r\n")


@main.group()
def user() -> None:
    """Manage the people who review files (password from a prompt or stdin)."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["reviewer", "admin"]), default="reviewer", show_default=True
)
@click.pass_obj
def user_add(obj: CliContext, name: str, role: str) -> None:
    """Add a user: reviewers decide files, admins also manage users, tokens and projects."""
    from mirror.auth import AuthError
    from mirror.db import Conflict, Role

    try:
        created = _accounts(obj).add_user(name, _read_password(), Role(role), actor=_actor())
    except (AuthError, Conflict) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"added {created.role.value} {created.name}")


@user.command("passwd")
@click.argument("name")
@click.pass_obj
def user_passwd(obj: CliContext, name: str) -> None:
    """Set a user's password; their open sessions end."""
    from mirror.auth import AuthError

    try:
        _accounts(obj).set_password(name, _read_password(), actor=_actor())
    except AuthError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"password changed for {name}")


@user.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@click.pass_obj
def user_disable(obj: CliContext, name: str, enable: bool) -> None:
    """Disable a user (their sessions end at once), or enable them again."""
    from mirror.auth import AuthError

    try:
        _accounts(obj).set_disabled(name, not enable, actor=_actor())
    except AuthError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{'enabled' if enable else 'disabled'} {name}")


@user.command("list")
@click.pass_obj
def user_list(obj: CliContext) -> None:
    """List users with their role and whether they are disabled."""
    for row in obj.database().users():
        state = "disabled" if row.disabled else "active"
        click.echo(f"{row.name}\t{row.role.value}\t{state}")


@main.group()
def token() -> None:
    """Manage API tokens (bearer tokens for /api/, read tokens for index_auth)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["read", "reviewer", "admin"]),
    default="reviewer",
    show_default=True,
    help="read: the index only (index_auth); reviewer: decide files; admin: everything.",
)
@click.pass_obj
def token_create(obj: CliContext, name: str, role: str) -> None:
    """Create a token and print its secret (shown once; only a hash is kept)."""
    from mirror.auth import AuthError
    from mirror.db import TokenRole

    try:
        new = _accounts(obj).create_token(name, TokenRole(role), actor=_actor())
    except AuthError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"created token {new.row.id} ({new.row.role.value}) {new.row.name}", err=True)
    click.echo(new.secret)


@token.command("list")
@click.pass_obj
def token_list(obj: CliContext) -> None:
    """List tokens (never their secrets)."""
    for row in obj.database().tokens():
        state = "revoked" if row.revoked_at else "live"
        used = row.last_used_at.isoformat() if row.last_used_at else "never used"
        click.echo(f"{row.id}\t{row.role.value}\t{state}\t{row.name}\t{used}")


@token.command("revoke")
@click.argument("token_id", type=int)
@click.pass_obj
def token_revoke(obj: CliContext, token_id: int) -> None:
    """Revoke a token by id: it stops working at once."""
    from mirror.auth import AuthError

    try:
        _accounts(obj).revoke_token(token_id, actor=_actor())
    except AuthError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"revoked token {token_id}")


# ---------------------------------------------------------------- operations


@main.command()
@click.pass_obj
def doctor(obj: CliContext) -> None:
    """Check config, database, storage, upstream, disk space and the last sync; one line
    each (ok, warn or FAIL, and how to fix it). Exit 1 if anything FAILs."""
    from mirror.doctor import Level, config_result, fail, run_checks

    try:
        settings = load_settings(obj.config)
    except ConfigError as error:
        click.echo(fail("config", str(error), "correct the file or variable named").line())
        raise SystemExit(1) from None
    results = [config_result(settings)]
    click.echo(results[0].line())
    for result in run_checks(settings, lambda: build_storage(settings), utcnow):
        click.echo(result.line())
        results.append(result)
    if any(result.level == Level.FAIL for result in results):
        raise SystemExit(1)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def backup(obj: CliContext, directory: Path) -> None:
    """Back up the database (a consistent snapshot, safe while serving) and a manifest of
    every blob, with local blobs hardlinked or copied, into a new DIRECTORY."""
    from mirror.backup import BackupError
    from mirror.backup import backup as run_backup

    settings = obj.settings
    try:
        report = run_backup(settings.database_path, build_storage(settings), directory, utcnow())
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.line(directory))
    if report.missing:
        click.echo(
            f"{len(report.missing)} blobs the database refers to are in no store "
            "(the backup cannot restore them):",
            err=True,
        )
        for line in report.missing[:20]:
            click.echo(f"  {line}", err=True)
        raise SystemExit(1)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--into", "into", type=click.Path(file_okay=False, path_type=Path),
    help="Data dir to restore into (default: the configured data_dir).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Replace the database of a non-empty data dir.")
@click.pass_obj
def restore(obj: CliContext, directory: Path, into: Path | None, force: bool) -> None:
    """Verify a backup (database and every blob against the recorded sha256) and restore
    it into a data dir; refuses a non-empty one without --force, and any corrupt backup."""
    from mirror.backup import BackupError
    from mirror.backup import restore as run_restore

    settings = obj.settings
    target = into if into is not None else settings.data_dir

    def storage_for(data_dir: Path) -> Storage:
        return build_storage(dataclasses.replace(settings, data_dir=data_dir))

    try:
        report = run_restore(directory, target, storage_for, force=force)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.line(target))
    # The backup's files are in the states they had then: a file revoked since (by an
    # advisory loaded after the backup) is approved again until the advisories say otherwise.
    click.echo(
        "before serving: run `qmirror advisories update` (the backup knows only the "
        "advisories loaded when it was taken; a file revoked since is listed again until then)"
    )


# ---------------------------------------------------------------- export


@main.command("export")
@click.option(
    "--to",
    "to",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Target directory, relative to the current one, or an S3 bucket and prefix"
    " (default: [export] to, which is relative to the data directory: data/export).",
)
@click.option(
    "--files-url",
    metavar="URL",
    help="Link files at URL<sha256>/<filename> (the running mirror's /files/, a bucket)"
    " instead of copying them (default: [export] files_url).",
)
@click.option(
    "--hardlink", is_flag=True, help="Hardlink files from the published store (same filesystem)."
)
@click.option("--full", is_flag=True, help="Ignore the manifest: rewrite every page and file.")
@click.pass_obj
def export_command(
    obj: CliContext, to: str | None, files_url: str | None, hardlink: bool, full: bool
) -> None:
    """Write the published index as static files for nginx, a CDN, an S3 website or bucket."""
    from mirror.export import (
        ExportError,
        export,
        export_lock,
        normalize_files_url,
        open_configured_target,
    )

    settings = obj.settings
    try:
        with export_lock(settings.data_dir):
            published = build_storage(settings).published
            spec, base = (
                (to, Path.cwd()) if to is not None else (settings.export.to, settings.data_dir)
            )
            target = open_configured_target(spec, settings, published, base=base, hardlink=hardlink)
            url = files_url if files_url is not None else settings.export.files_url
            db = obj.database()
            report = export(
                db,
                published,
                target,
                files_url=normalize_files_url(url) if url else None,
                full=full,
            )
    except ExportError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.line())


# ---------------------------------------------------------------- advisories


def _deliver_alerts(obj: CliContext, db: Database) -> None:
    from mirror.alerts import deliver_quietly

    deliver_quietly(db, obj.settings.alerts, utcnow)


def _advisory_checker(obj: CliContext, db: Database) -> Any:
    from mirror.advisories import AdvisoryChecker

    publisher = Publisher(db, build_storage(obj.settings))
    return AdvisoryChecker(db, publisher, Projects(obj.settings, db).policy())


def _echo_check(report: Any) -> None:
    click.echo(report.line())
    for verb, names in (
        ("rejected", report.rejected),
        ("revoked", report.revoked),
        ("flagged", report.flagged),
    ):
        for name in names:
            click.echo(f"  {verb} {_clip(name)}")


@main.group()
def advisories() -> None:
    """OSV advisories: malicious-package (MAL) and vulnerability (PYSEC, GHSA) records."""


@advisories.command("update")
@click.option(
    "--from",
    "source",
    metavar="FILE|DIR|URL",
    help="An OSV zip export, a directory of OSV .json records, one record file, or an "
    "http(s) URL (default: [advisories] url).",
)
@click.pass_obj
def advisories_update(obj: CliContext, source: str | None) -> None:
    """Load OSV records, then re-check every held and approved file against them."""
    from mirror.advisories import AdvisorySourceError, update_from

    settings = obj.settings
    source = source or settings.advisories.url
    if not source:
        raise click.ClickException("no [advisories] url is configured: pass --from FILE|DIR|URL")
    db = obj.database()
    try:
        loaded = update_from(
            db, source, settings.advisories, settings.data_dir / "tmp", now=utcnow()
        )
    except AdvisorySourceError as error:
        raise click.ClickException(str(error)) from None
    click.echo(loaded.line())
    _echo_check(_advisory_checker(obj, db).check())
    _deliver_alerts(obj, db)


@advisories.command("check")
@click.pass_obj
def advisories_check(obj: CliContext) -> None:
    """Re-check every held and approved file against the advisories already loaded (sync
    does this at the end of each run)."""
    db = obj.database()
    _echo_check(_advisory_checker(obj, db).check())
    _deliver_alerts(obj, db)


@advisories.command("list")
@click.argument("project", required=False)
@click.pass_obj
def advisories_list(obj: CliContext, project: str | None) -> None:
    """Advisories loaded for PROJECT, or for every project the mirror carries."""
    from mirror.advisories import advisory_rows_for_listing, describe_affected

    db = obj.database()
    counts = db.advisory_counts()
    name = canonicalize_name(project) if project else None
    rows = advisory_rows_for_listing(db, name)
    for listed, advisory in rows:
        click.echo(
            f"{advisory.id}\t{advisory.kind.value}\t{advisory.severity.value}\t{listed}"
            f"\t{_clip(describe_affected(advisory), 80)}\t{_clip(advisory.summary, 100)}"
        )
    scope = name or "the mirrored projects"
    click.echo(
        f"{len(rows)} advisories for {scope}; loaded: {counts['malicious']} malicious, "
        f"{counts['vulnerability']} vulnerability records",
        err=True,
    )
