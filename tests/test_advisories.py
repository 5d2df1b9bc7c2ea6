"""OSV advisories: range semantics, what counts as malicious, severities, loading (zip,
directory, file, URL), and what a match does to held and approved files; files the
upstream stops listing. In-process against a fake upstream on loopback, plus one live
test: real pip can no longer install a release once an advisory names it."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from packaging.version import Version

from mirror.advisories import AdvisorySourceError, load_advisories, update_from
from mirror.cli import main
from mirror.config import ConfigError, settings_from_mapping
from mirror.db import Database, State
from mirror.storage import local_storage
from mirror.sync import Syncer
from mirror.upstream import UpstreamClient
from quarantine.advisories import Kind, describes_compromise, parse_osv, severity_of
from quarantine.findings import Severity
from quarantine.policy import Policy, Verdict, decide
from tests.support.builders import make_wheel
from tests.support.live import (
    gunicorn_mirror,
    make_venv,
    pip,
    pip_install,
    qmirror,
    write_config,
)
from tests.support.osv import osv_record, write_file, write_tree, write_zip
from tests.support.receiver import WebhookReceiver

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=30)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def build(tmp_path):
    path = tmp_path / "build"
    path.mkdir()
    return path


def make_syncer(tmp_path, index_url, clock, **sections):
    raw = {
        "data_dir": str(tmp_path / "data"),
        "upstream": {"url": index_url, "timeout": 5, "retries": 1},
        "sync": {"python_versions": ["3.11"], "platforms": ["linux-x86_64"]},
        "policy": {"cooldown": "0"},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    settings = settings_from_mapping(raw)
    db = Database(settings.database_path)
    db.migrate()
    upstream = UpstreamClient(index_url, timeout=5, retries=1, backoff=0.01)
    syncer = Syncer(
        settings,
        db,
        local_storage(settings.data_dir),
        upstream,
        settings.policy.build(),
        clock=clock,
    )
    return syncer, db


def index_page(db, project: str) -> str:
    """The project's index page as pip sees it ("" once nothing of it is servable)."""
    page = db.page(f"simple/{project}/index.html")
    return "" if page is None else page.body.decode()


def affects(record, version: str) -> bool:
    advisory = parse_osv(record).advisory
    assert advisory is not None
    return advisory.affects(record["affected"][0]["package"]["name"], Version(version))


# ---------------------------------------------------------------- range semantics


def test_introduced_and_fixed_bound_a_half_open_range():
    record = osv_record("PYSEC-1", "lib", ranges=[[{"introduced": "1.0"}, {"fixed": "1.2"}]])
    assert not affects(record, "0.9")
    assert affects(record, "1.0") and affects(record, "1.1.5")
    assert affects(record, "1.2rc1")  # a pre-release of the fix is still before it
    assert not affects(record, "1.2") and not affects(record, "2.0")


def test_introduced_zero_is_every_version_and_last_affected_is_inclusive():
    record = osv_record("PYSEC-2", "lib", ranges=[[{"introduced": "0"}, {"last_affected": "2.1"}]])
    assert affects(record, "0.0.1.dev0") and affects(record, "2.1")
    assert not affects(record, "2.1.post1") and not affects(record, "3")


def test_several_intervals_in_one_range_and_a_limit():
    record = osv_record(
        "PYSEC-3",
        "lib",
        ranges=[[{"introduced": "0"}, {"fixed": "1.0"}, {"introduced": "2.0"}, {"fixed": "2.5"}]],
    )
    assert affects(record, "0.5") and not affects(record, "1.5")
    assert affects(record, "2.0") and not affects(record, "2.5")
    limited = osv_record("PYSEC-4", "lib", ranges=[[{"introduced": "1.0"}, {"limit": "3.0"}]])
    assert affects(limited, "2.9") and not affects(limited, "3.0")


def test_an_explicit_versions_list_names_exactly_those_releases():
    record = osv_record("MAL-2026-1", "evil", versions=["1.0", "1.1.0"])
    assert affects(record, "1.0") and affects(record, "1.1")  # compared as versions
    assert not affects(record, "1.2")


def test_names_are_normalized():
    record = osv_record("MAL-2026-2", "Evil_Pkg.Name", versions=["1.0"])
    advisory = parse_osv(record).advisory
    assert advisory.packages[0].name == "evil-pkg-name"
    assert advisory.affects("EVIL-pkg_name", Version("1.0"))


def test_a_name_that_only_lower_cases_to_a_project_names_nothing():
    # U+212A KELVIN SIGN lower-cases to "k": no PyPI project can carry it.
    record = osv_record("MAL-2026-9", "\u212aeras", versions=["3.0"])
    assert parse_osv(record).advisory is None
    both = osv_record("MAL-2026-10", "evil", versions=["1.0"])
    both["affected"].append({"package": {"ecosystem": "PyPI", "name": "\u212aeras"}})
    advisory = parse_osv(both).advisory
    assert [p.name for p in advisory.packages] == ["evil"]
    assert not advisory.affects("keras", Version("3.0"))


def test_invalid_versions_are_ignored_and_counted():
    record = osv_record("PYSEC-5", "lib", versions=["1.0", "not a version"])
    record["affected"][0]["ranges"] = [
        {"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "garbage!"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "5.0"}, {"fixed": "6.0"}]},
    ]
    parsed = parse_osv(record)
    assert parsed.invalid_versions == 2
    # The range with a bad fixed version is dropped whole, not stretched to infinity.
    assert affects(record, "1.0") and not affects(record, "3.0") and affects(record, "5.5")


def test_other_ecosystems_and_git_ranges_are_ignored():
    npm = osv_record("GHSA-npm", "lodash", ecosystem="npm")
    assert parse_osv(npm).advisory is None
    git = osv_record(
        "OSV-git", "lib", ranges=[[{"introduced": "0"}, {"fixed": "abc123"}]], range_type="GIT"
    )
    assert parse_osv(git).advisory is None


def test_withdrawn_records_are_marked():
    record = osv_record("PYSEC-6", "lib", withdrawn="2026-05-02T00:00:00Z")
    parsed = parse_osv(record)
    assert parsed.withdrawn and parsed.advisory is None


# ---------------------------------------------------------------- kinds and severities

LITELLM_LIKE = osv_record(
    "PYSEC-2026-101",
    "litellm",
    versions=["1.82.7", "1.82.8"],
    summary="litellm 1.82.7 and 1.82.8 were compromised",
    details="The litellm releases 1.82.7 and 1.82.8 published to PyPI were compromised: they "
    "contain malicious code that harvests credentials and sends them to an attacker.",
)
TELNYX_LIKE = osv_record(
    "PYSEC-2026-102",
    "telnyx",
    versions=["4.87.1"],
    summary="Compromised telnyx release",
    details="A compromised release of telnyx shipped a credential stealer.",
)


@pytest.mark.parametrize(
    "record",
    [
        LITELLM_LIKE,
        TELNYX_LIKE,
        osv_record("GHSA-xxxx", "lib", database_specific={"cwe_ids": ["CWE-506"]}),
        osv_record("PYSEC-7", "lib", aliases=["MAL-2026-9"]),
        osv_record("GHSA-yyyy", "lib", summary="Malware in lib"),
    ],
    ids=["litellm", "telnyx", "cwe-506", "mal-alias", "malware-summary"],
)
def test_records_describing_a_compromised_release_are_malicious(record):
    advisory = parse_osv(record).advisory
    assert advisory.kind is Kind.MALICIOUS and advisory.severity is Severity.CRITICAL
    assert advisory.malicious_because


@pytest.mark.parametrize(
    ("summary", "details"),
    [
        ("Remote code execution in lib", "Allows remote attackers to execute malicious code."),
        (
            "ReDoS in version parsing",
            "A malicious version string causes catastrophic backtracking.",
        ),
        (
            "Path traversal",
            "Installing a malicious package can overwrite files outside the target.",
        ),
        ("Privilege escalation", "An attacker on a compromised system can read the token."),
        ("XSS", "A request containing a malicious payload is reflected unescaped."),
    ],
)
def test_ordinary_vulnerabilities_are_not_malicious(summary, details):
    record = osv_record("PYSEC-8", "lib", summary=summary, details=details)
    assert describes_compromise(record) is None
    assert parse_osv(record).advisory.kind is Kind.VULNERABILITY


def test_severity_from_the_database_rating_then_cvss_then_medium():
    assert severity_of({"database_specific": {"severity": "MODERATE"}}) is Severity.MEDIUM
    assert severity_of({"database_specific": {"severity": "HIGH"}}) is Severity.HIGH
    v3 = {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
    assert severity_of({"severity": [v3]}) is Severity.CRITICAL
    v3_low = {"type": "CVSS_V3", "score": "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}
    assert severity_of({"severity": [v3_low]}) is Severity.LOW
    v4 = {
        "type": "CVSS_V4",
        "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N",
    }
    assert severity_of({"severity": [v4]}) in (Severity.HIGH, Severity.CRITICAL)
    assert severity_of({"severity": [{"type": "CVSS_V3", "score": "nonsense"}]}) is Severity.MEDIUM
    assert severity_of({}) is Severity.MEDIUM


def test_by_default_a_vulnerability_warns_and_malware_rejects():
    policy = settings_from_mapping({}).policy.build()
    vuln = parse_osv(osv_record("PYSEC-9", "lib", database_specific={"severity": "CRITICAL"}))
    from quarantine.advisories import advisory_finding

    finding = advisory_finding(vuln.advisory, "lib", "1.0")
    assert finding.check == "advisory-vulnerability" and finding.severity is Severity.CRITICAL
    verdict = decide(policy, [finding], project="lib", uploaded_at=OLD, now=NOW).verdict
    assert verdict is Verdict.APPROVE
    malware = advisory_finding(parse_osv(osv_record("MAL-1", "lib")).advisory, "lib", "1.0")
    assert decide(Policy(), [malware], project="lib", uploaded_at=OLD, now=NOW).verdict is (
        Verdict.REJECT
    )
    # ... and an operator may decide otherwise, by check id.
    strict = settings_from_mapping({"policy": {"checks": {"advisory-vulnerability": "hold"}}})
    held = decide(strict.policy.build(), [finding], project="lib", uploaded_at=OLD, now=NOW)
    assert held.verdict is Verdict.HOLD
    with pytest.raises(
        ConfigError, match=re.escape("unknown check id policy.checks.advisory-vulnerabilty")
    ):
        settings_from_mapping({"policy": {"checks": {"advisory-vulnerabilty": "hold"}}})


# ---------------------------------------------------------------- loading


def test_load_a_zip_a_tree_and_a_file_idempotently(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    records = [
        osv_record("MAL-2026-10", "evil", versions=["1.0"]),
        osv_record("PYSEC-2026-11", "lib", ranges=[[{"introduced": "0"}, {"fixed": "2"}]]),
        osv_record("GHSA-npm1", "left-pad", ecosystem="npm"),
    ]
    zipped = write_zip(tmp_path / "all.zip", records)
    report = load_advisories(db, zipped, now=NOW)
    assert (report.records, report.pypi, report.other, report.added) == (3, 2, 1, 2)
    again = load_advisories(db, zipped, now=NOW)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert db.advisory_counts() == {"malicious": 1, "vulnerability": 1}

    tree = write_tree(tmp_path / "malicious-packages", [records[0]])
    assert load_advisories(db, tree, now=NOW).unchanged == 1
    newer = osv_record(
        "MAL-2026-10", "evil", versions=["1.0", "1.1"], modified="2026-05-03T00:00:00Z"
    )
    single = write_file(tmp_path / "one.json", newer)
    assert load_advisories(db, single, now=NOW).updated == 1
    evil = db.advisories_for(["evil"])["evil"][0]
    assert evil.packages[0].versions == ("1.0", "1.1")
    older = osv_record("MAL-2026-10", "evil", versions=["9"], modified="2026-01-01T00:00:00Z")
    assert load_advisories(db, write_file(tmp_path / "old.json", older), now=NOW).unchanged == 1


def test_withdrawn_records_are_removed_and_unreadable_ones_counted(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    load_advisories(db, write_file(tmp_path / "a.json", osv_record("PYSEC-20", "lib")), now=NOW)
    withdrawn = osv_record(
        "PYSEC-20", "lib", withdrawn="2026-05-05T00:00:00Z", modified="2026-05-05T00:00:00Z"
    )
    tree = tmp_path / "tree"
    write_tree(tree, [withdrawn])
    (tree / "broken.json").write_text("{not json")
    (tree / "noid.json").write_text(json.dumps({"modified": "2026-01-01T00:00:00Z"}))
    report = load_advisories(db, tree, now=NOW)
    assert report.removed == 1 and report.unreadable == 2
    assert "broken.json" in report.first_unreadable
    assert db.advisories_for(["lib"]) == {}


def test_a_missing_source_is_one_clear_error(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    with pytest.raises(AdvisorySourceError, match=re.escape("nope.zip: no such file")):
        load_advisories(db, tmp_path / "nope.zip", now=NOW)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    report = load_advisories(db, bad, now=NOW)  # not a zip: read as one JSON document
    assert report.unreadable == 1


class _ZipHandler(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.send_response(200 if self.path == "/PyPI/all.zip" else 404)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_update_from_a_url_streams_to_a_temp_file_with_a_size_limit(tmp_path):
    zipped = write_zip(tmp_path / "all.zip", [osv_record("MAL-2026-30", "evil")])
    handler = type("H", (_ZipHandler,), {"body": zipped.read_bytes()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        db = Database(tmp_path / "db.sqlite3")
        db.migrate()
        settings = settings_from_mapping({})
        report = update_from(
            db, f"{base}/PyPI/all.zip", settings.advisories, tmp_path / "t", now=NOW
        )
        assert report.added == 1 and not list((tmp_path / "t").iterdir())
        with pytest.raises(AdvisorySourceError, match=re.escape("HTTP 404")):
            update_from(db, f"{base}/missing", settings.advisories, tmp_path / "t", now=NOW)
        small = settings_from_mapping({"advisories": {"max_download": 10}})
        with pytest.raises(AdvisorySourceError, match=re.escape("larger than")):
            update_from(db, f"{base}/PyPI/all.zip", small.advisories, tmp_path / "t", now=NOW)
        assert not list((tmp_path / "t").iterdir())
    finally:
        server.shutdown()
        server.server_close()


def test_cli_update_without_a_source_says_what_to_do(tmp_path):
    config = tmp_path / "q.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[advisories]\nurl = ""\n')
    result = CliRunner().invoke(main, ["--config", str(config), "advisories", "update"])
    assert result.exit_code == 1
    assert "no [advisories] url is configured: pass --from" in result.output


# ---------------------------------------------------------------- effects on files


def test_malicious_record_rejects_a_held_file_and_revokes_an_approved_one(
    tmp_path, fake_index, build
):
    index = fake_index("json")
    index.add(make_wheel(build, "evil", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "evil", "2.0"), upload_time=NOW - timedelta(hours=1))
    clock = Clock(NOW)
    syncer, db = make_syncer(
        tmp_path, index.url, clock, sync={"projects": ["evil"]}, policy={"cooldown": "3d"}
    )
    syncer.run()
    old, young = (db.file_by_filename(f"evil-{v}-py3-none-any.whl") for v in ("1.0", "2.0"))
    assert old.state is State.APPROVED and young.state is State.QUARANTINED
    assert "evil-1.0" in index_page(db, "evil")

    tree = write_tree(
        tmp_path / "mal",
        [
            osv_record(
                "MAL-2026-40",
                "evil",
                versions=["1.0", "2.0"],
                summary="Malicious code in evil (PyPI)",
            )
        ],
    )
    load_advisories(db, tree, now=NOW)
    report = syncer.advisories.check()
    assert report.revoked == [old.filename] and report.rejected == [young.filename]

    assert db.file_by_id(old.id).state is State.REVOKED
    assert db.file_by_id(young.id).state is State.REJECTED
    assert "evil-1.0" not in index_page(db, "evil")
    assert not syncer.storage.published.exists(old.sha256)
    for row in (old, young):
        last = db.decisions(row.id)[-1]
        assert last["actor"] == "advisory:MAL-2026-40"
        assert "MAL-2026-40" in last["reason"] and "malicious" in last["reason"]
        assert [f["check_id"] for f in db.findings(row.id)] == ["advisory-malicious"]
    # A second check finds nothing new to do.
    assert syncer.advisories.check().matched == 0


def test_aliases_of_one_flaw_act_once(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "lib", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(
        tmp_path,
        index.url,
        Clock(NOW),
        sync={"projects": ["lib"]},
        policy={"checks": {"advisory-vulnerability": "hold"}},
    )
    syncer.run()
    row = db.file_by_filename("lib-1.0-py3-none-any.whl")
    # GitHub's record lists the PyPA one as an alias; the PyPA one does not list it back.
    ghsa = osv_record("GHSA-aaaa-bbbb-cccc", "lib", versions=["1.0"], aliases=["PYSEC-2026-80"])
    pysec = osv_record("PYSEC-2026-80", "lib", versions=["1.0"])
    load_advisories(db, write_file(tmp_path / "g.json", ghsa), now=NOW)
    assert syncer.advisories.check().flagged == [row.filename]
    load_advisories(db, write_file(tmp_path / "p.json", pysec), now=NOW)
    assert syncer.advisories.check().matched == 0
    assert len(db.findings(row.id)) == 1
    assert [a.event for a in db.pending_alerts()].count("flagged") == 1


def test_an_overturned_revocation_is_not_undone_by_the_same_flaw_under_another_id(
    tmp_path, fake_index, build
):
    index = fake_index("json")
    index.add(make_wheel(build, "lib", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, Clock(NOW), sync={"projects": ["lib"]})
    syncer.run()
    row = db.file_by_filename("lib-1.0-py3-none-any.whl")
    mal = osv_record("MAL-2026-81", "lib", versions=["1.0"])
    load_advisories(db, write_file(tmp_path / "m.json", mal), now=NOW)
    assert syncer.advisories.check().revoked == [row.filename]
    syncer.publisher.approve([row], actor="admin", reason="a false report")
    # The same report reaches another database, which cites the MAL id.
    pysec = osv_record("PYSEC-2026-81", "lib", versions=["1.0"], aliases=["MAL-2026-81"])
    load_advisories(db, write_file(tmp_path / "p.json", pysec), now=NOW)
    report = syncer.advisories.check()
    assert report.matched == 0 and not report.revoked
    assert db.file_by_id(row.id).state is State.APPROVED
    # Both at once, for a new file: one finding.
    index.add(make_wheel(build, "lib", "1.0.post1"), upload_time=OLD)
    both = osv_record("MAL-2026-82", "lib", versions=["1.0.post1"], aliases=["PYSEC-2026-82"])
    again = osv_record("PYSEC-2026-82", "lib", versions=["1.0.post1"], aliases=["MAL-2026-82"])
    load_advisories(db, write_zip(tmp_path / "b.zip", [both, again]), now=NOW)
    syncer.run()
    new = db.file_by_filename("lib-1.0.post1-py3-none-any.whl")
    assert new.state is State.REJECTED
    assert [f["check_id"] for f in db.findings(new.id)] == ["advisory-malicious"]


def test_compromised_pysec_record_acts_like_mal(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "litellm", "1.82.7"), upload_time=OLD)
    index.add(make_wheel(build, "litellm", "1.82.6"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, Clock(NOW), sync={"projects": ["litellm"]})
    syncer.run()
    load_advisories(db, write_file(tmp_path / "p.json", LITELLM_LIKE), now=NOW)
    report = syncer.advisories.check()
    assert report.revoked == ["litellm-1.82.7-py3-none-any.whl"]
    assert db.file_by_filename("litellm-1.82.6-py3-none-any.whl").state is State.APPROVED
    revoked = db.file_by_filename("litellm-1.82.7-py3-none-any.whl")
    assert db.decisions(revoked.id)[-1]["actor"] == "advisory:PYSEC-2026-101"


def test_ordinary_vulnerability_is_a_finding_and_changes_nothing(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "lib", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "lib", "1.1"), upload_time=NOW - timedelta(hours=1))
    clock = Clock(NOW)
    syncer, db = make_syncer(
        tmp_path, index.url, clock, sync={"projects": ["lib"]}, policy={"cooldown": "3d"}
    )
    syncer.run()
    record = osv_record(
        "GHSA-aaaa-bbbb-cccc",
        "lib",
        ranges=[[{"introduced": "0"}, {"fixed": "2.0"}]],
        summary="Header injection in lib",
        database_specific={"severity": "HIGH"},
    )
    load_advisories(db, write_file(tmp_path / "g.json", record), now=NOW)
    report = syncer.advisories.check()
    assert report.matched == 2 and not (report.rejected or report.revoked or report.flagged)
    approved = db.file_by_filename("lib-1.0-py3-none-any.whl")
    assert approved.state is State.APPROVED
    (finding,) = db.findings(approved.id)
    assert (finding["check_id"], finding["severity"]) == ("advisory-vulnerability", "high")
    assert "GHSA-aaaa-bbbb-cccc" in finding["message"]
    # The held file's cooldown passes: a warning does not keep it held.
    clock.now = NOW + timedelta(days=4)
    syncer.run()
    assert db.file_by_filename("lib-1.1-py3-none-any.whl").state is State.APPROVED
    assert len(db.findings(approved.id)) == 1  # re-checked every sync, recorded once


def test_cooldown_held_file_named_meanwhile_is_never_auto_approved(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "young", "1.0"), upload_time=NOW - timedelta(hours=1))
    index.add(make_wheel(build, "young", "1.1"), upload_time=NOW - timedelta(hours=1))
    clock = Clock(NOW)
    syncer, db = make_syncer(
        tmp_path,
        index.url,
        clock,
        sync={"projects": ["young"]},
        policy={"cooldown": "3d", "checks": {"advisory-vulnerability": "hold"}},
    )
    syncer.run()
    records = [
        osv_record("MAL-2026-50", "young", versions=["1.0"]),
        osv_record("PYSEC-2026-51", "young", versions=["1.1"], summary="SSRF in young"),
    ]
    load_advisories(db, write_zip(tmp_path / "a.zip", records), now=NOW)
    clock.now = NOW + timedelta(days=4)  # the cooldown is over; the advisories are news
    summary = syncer.run()
    assert summary.approved == 0
    malicious = db.file_by_filename("young-1.0-py3-none-any.whl")
    assert malicious.state is State.REJECTED
    vulnerable = db.file_by_filename("young-1.1-py3-none-any.whl")
    assert vulnerable.state is State.QUARANTINED
    assert any("PYSEC-2026-51" in reason for reason in vulnerable.held_reasons)


def test_a_new_file_is_checked_before_policy_decides(tmp_path, fake_index, build):
    index = fake_index("json")
    syncer, db = make_syncer(tmp_path, index.url, Clock(NOW), sync={"projects": ["evil"]})
    load_advisories(db, write_file(tmp_path / "m.json", osv_record("MAL-2026-60", "evil")), now=NOW)
    index.add(make_wheel(build, "evil", "3.0"), upload_time=OLD)
    summary = syncer.run()
    assert summary.approved == 0 and summary.rejected == 1
    row = db.file_by_filename("evil-3.0-py3-none-any.whl")
    assert row.state is State.REJECTED
    assert "MAL-2026-60" in db.decisions(row.id)[-1]["reason"]
    assert len(db.findings(row.id)) == 1 and syncer.advisories.check().matched == 0


def test_an_updated_record_is_rechecked(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "lib", "1.5"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, Clock(NOW), sync={"projects": ["lib"]})
    syncer.run()
    first = osv_record("PYSEC-2026-70", "lib", ranges=[[{"introduced": "0"}, {"fixed": "1.0"}]])
    load_advisories(db, write_file(tmp_path / "v1.json", first), now=NOW)
    assert syncer.advisories.check().matched == 0
    # The record is corrected: 1.5 is affected, and in fact it was malicious code.
    second = osv_record(
        "PYSEC-2026-70",
        "lib",
        ranges=[[{"introduced": "0"}, {"fixed": "2.0"}]],
        modified="2026-05-09T00:00:00Z",
        details="Version 1.5 contained malicious code.",
    )
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(write_cli_config(tmp_path)),
            "advisories",
            "update",
            "--from",
            str(write_file(tmp_path / "v2.json", second)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 updated" in result.output and "revoked lib-1.5-py3-none-any.whl" in result.output
    assert db.file_by_filename("lib-1.5-py3-none-any.whl").state is State.REVOKED
    listing = CliRunner().invoke(
        main, ["--config", str(write_cli_config(tmp_path)), "advisories", "list", "LIB"]
    )
    assert listing.exit_code == 0
    assert "PYSEC-2026-70\tmalicious\tcritical\tlib\t>=0 <2" in listing.output


def write_cli_config(tmp_path):
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return config


# ---------------------------------------------------------------- disappeared upstream


def test_a_file_the_upstream_deletes_is_rejected_when_held_and_flagged_when_approved(
    tmp_path, fake_index, build, request
):
    index = fake_index("json")
    index.add(make_wheel(build, "gone", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "gone", "2.0"), upload_time=NOW - timedelta(hours=1))
    # Listed upstream but never taken (a platform we do not mirror): not ours to judge.
    index.add(make_wheel(build, "gone", "2.0", tag="cp311-cp311-win_amd64"), upload_time=OLD)
    receiver = WebhookReceiver().start()
    request.addfinalizer(receiver.stop)
    clock = Clock(NOW)
    syncer, db = make_syncer(
        tmp_path,
        index.url,
        clock,
        sync={"projects": ["gone"]},
        policy={"cooldown": "3d"},
        alerts={"webhook_url": receiver.url},
    )
    syncer.run()
    approved = db.file_by_filename("gone-1.0-py3-none-any.whl")
    held = db.file_by_filename("gone-2.0-py3-none-any.whl")
    assert (approved.state, held.state) == (State.APPROVED, State.QUARANTINED)

    # An upstream error, then an unchanged page (304): nothing is concluded from either.
    index.remove(approved.filename)
    index.remove(held.filename)
    index.fail_next("/simple/gone/", status=500, times=2)  # both attempts
    syncer.run()
    assert not db.findings(approved.id) and not db.findings(held.id)
    assert db.file_by_id(held.id).state is State.QUARANTINED

    summary = syncer.run()
    assert db.file_by_id(held.id).state is State.REJECTED
    assert "no longer listed" in db.decisions(held.id)[-1]["reason"]
    assert db.file_by_id(approved.id).state is State.APPROVED  # still served
    assert [f["check_id"] for f in db.findings(approved.id)] == ["upstream-deleted"]
    assert summary.flagged == 1
    alerts = {a["qmirror"]["event"]: a["qmirror"] for a in receiver.alerts}
    assert alerts["rejected"]["filename"] == held.filename
    assert alerts["flagged"]["filename"] == approved.filename
    assert "no longer listed" in alerts["flagged"]["reason"]
    assert "sync-failed" in alerts  # the run that could not read the page

    # Not flagged again; and listed again later, it is left alone.
    syncer.run()
    index.add(build / approved.filename, upload_time=OLD)
    syncer.run()
    assert len(db.findings(approved.id)) == 1
    assert [e for e in receiver.events() if e == "flagged"] == ["flagged"]
    assert db.file_by_id(approved.id).state is State.APPROVED


def test_upstream_deleted_may_revoke_by_policy(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "gone", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "gone", "1.1"), upload_time=OLD)  # the project lives on
    syncer, db = make_syncer(
        tmp_path,
        index.url,
        Clock(NOW),
        sync={"projects": ["gone"]},
        policy={"checks": {"upstream-deleted": "reject"}},
    )
    syncer.run()
    index.remove("gone-1.0-py3-none-any.whl")
    summary = syncer.run()
    assert summary.revoked == 1
    assert db.file_by_filename("gone-1.0-py3-none-any.whl").state is State.REVOKED
    assert "gone-1.0-" not in index_page(db, "gone") and "gone-1.1-" in index_page(db, "gone")


# ---------------------------------------------------------------- live: real pip


@pytest.mark.live
def test_pip_cannot_install_a_release_once_an_advisory_names_it(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "evil", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "evil", "0.9"), upload_time=OLD)
    with WebhookReceiver() as receiver:
        config = write_config(
            tmp_path / "qmirror.toml",
            tmp_path / "data",
            index.url,
            sync={"projects": ["evil"]},
            alerts={"webhook_url": receiver.url},
        )
        qmirror(config, "sync")
        with gunicorn_mirror(config, tmp_path) as server:
            python = make_venv(tmp_path / "venv")
            before = pip_install(python, server.index_url, ["evil==1.0"])
            assert before.returncode == 0, before.stdout + before.stderr
            pip(python, "uninstall", "-y", "evil")

            record = osv_record(
                "MAL-2026-80", "evil", versions=["1.0"], summary="Malicious code in evil (PyPI)"
            )
            update = qmirror(
                config,
                "advisories",
                "update",
                "--from",
                str(write_file(tmp_path / "MAL-2026-80.json", record)),
            )
            assert "revoked evil-1.0-py3-none-any.whl" in update.stdout

            after = pip_install(python, server.index_url, ["evil==1.0"])
            assert after.returncode != 0
            assert "No matching distribution found for evil==1.0" in after.stderr
            still = pip_install(python, server.index_url, ["evil==0.9"])
            assert still.returncode == 0, still.stdout + still.stderr
        revoked = [a for a in receiver.alerts if a["qmirror"]["event"] == "revoked"]
        assert revoked and revoked[0]["qmirror"]["filename"] == "evil-1.0-py3-none-any.whl"
        assert revoked[0]["qmirror"]["actor"] == "advisory:MAL-2026-80"
        assert "MAL-2026-80" in revoked[0]["text"]
