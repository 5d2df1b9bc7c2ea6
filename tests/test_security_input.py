"""Security review: input an attacker controls is bounded and malformed input is a 400 or
413, never a 500 or an unbounded read (in-process app)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from mirror.db import FileDetails, NewFile, State, TokenRole
from mirror.web.security import MAX_REQUEST_BYTES
from quarantine.inspection import ListedMember
from tests.support.admin import AdminSite, csrf


@pytest.fixture
def site(tmp_path):
    return AdminSite(tmp_path)


def bearer(site, role=TokenRole.REVIEWER):
    secret = site.accounts.create_token("probe", role, actor="test").secret
    return {"Authorization": f"Bearer {secret}"}


def test_an_oversized_body_is_refused_before_it_is_read(site):
    big = b"x" * (MAX_REQUEST_BYTES + 1)
    body = (
        b'--b\r\nContent-Disposition: form-data; name="junk"; filename="junk.bin"\r\n\r\n'
        + big
        + b"\r\n--b--\r\n"
    )
    upload = site.client().post(
        "/admin/login", data=body, content_type="multipart/form-data; boundary=b"
    )
    assert upload.status_code == 413
    assert upload.headers["Cache-Control"] == "no-store"
    api = site.client().post(
        "/api/v1/files/1/approve",
        data=b'{"reason": "' + big + b'"}',
        headers={**bearer(site), "Content-Type": "application/json"},
    )
    assert api.status_code == 413 and api.json["error"] == "Request Entity Too Large"


def test_a_bulk_form_of_the_largest_allowed_size_fits_the_body_limit(site):
    site.user("ada")
    client = site.logged_in("ada")
    form = {
        "csrf_token": csrf(client),
        "action": "approve",
        "reason": "r" * 2000,
        "file_id": [str(10**17 + n) for n in range(500)],
        "seen_state": [f"{10**17 + n}:quarantined" for n in range(700)],
    }
    response = client.post("/admin/bulk", data=form)
    assert response.status_code == 400 and "No file has id" in response.text


@pytest.mark.parametrize("number", ["²", "1" * 5000, "-1", "\uff11"])
def test_numbers_in_urls_and_forms_that_are_not_ascii_digits_are_a_400(site, number):
    site.user("ada")
    client = site.logged_in("ada")
    assert client.get("/admin/", query_string={"page": number}).status_code == 400
    assert client.get("/admin/", query_string={"per_page": number}).status_code == 400
    api = site.client().get("/api/v1/files", query_string={"limit": number}, headers=bearer(site))
    assert api.status_code == 400 and "non-negative integer" in api.json["detail"]
    token = csrf(client)
    for form in (
        {"file_id": number, "seen_state": "1:quarantined"},
        {"file_id": "1", "seen_state": f"{number}:quarantined"},
    ):
        data = {"csrf_token": token, "action": "approve", "reason": "because", **form}
        response = client.post("/admin/bulk", data=data)
        assert response.status_code == 400, form
        assert "Nothing was changed" in response.text


@pytest.mark.parametrize("name", ["project", "q", "check"])
def test_api_filters_are_bounded(site, name):
    headers = bearer(site)
    fits = site.client().get("/api/v1/files", query_string={name: "x" * 200}, headers=headers)
    assert fits.status_code == 200 and fits.json["files"] == []
    long = site.client().get("/api/v1/files", query_string={name: "x" * 201}, headers=headers)
    assert long.status_code == 400 and "at most 200" in long.json["detail"]


def held_files(site, count: int) -> list[int]:
    """``count`` held files of as many projects, with names that do not compress."""
    ids = []
    for n in range(count):
        name = "p" + hashlib.sha256(str(n).encode()).hexdigest()[:16]
        filename = f"{name}-1.0-py3-none-any.whl"
        site.db.ensure_project(name, name, "configured")
        new = NewFile(
            name, "1.0", filename, "bdist_wheel", hashlib.sha256(filename.encode()).hexdigest(),
            10, f"https://files.example/{filename}", datetime(2026, 1, 1, tzinfo=UTC), None,
            None, None, None, (),
        )  # fmt: skip
        ids.append(site.db.add_file(new, [], now=site.clock()))
    return ids


def test_a_bulk_decision_of_the_most_files_reports_them_within_a_cookie(site):
    site.user("ada")
    client = site.logged_in("ada")
    ids = held_files(site, 500)
    response = client.post(
        "/admin/bulk",
        data={
            "csrf_token": csrf(client),
            "action": "reject",
            "reason": "typosquats",
            "file_id": [str(i) for i in ids],
            "seen_state": [f"{i}:quarantined" for i in ids],
        },
    )  # a cookie over 4 KB is a warning (an error here) and dropped by browsers
    assert response.status_code == 303
    assert len(response.headers["Set-Cookie"]) < 2048
    page = client.get(response.headers["Location"]).text
    assert "Rejected 500 files: p" in page and " and 490 more." in page
    assert all(site.db.file_by_id(i).state is State.REJECTED for i in ids)


def test_the_plain_text_member_list_cannot_be_forged_by_a_member_name(site):
    site.user("ada")
    client = site.logged_in("ada")
    (file_id,) = held_files(site, 1)
    forged = "pkg/a.py\n0\tfile\t-\tinnocent.py"
    members = (
        ListedMember(forged, 5, "file", "sha256=x\tfake"),
        ListedMember("b.py", 1, "file", None),
    )
    site.db.save_file_details(file_id, FileDetails(None, members, False))
    text = client.get(f"/admin/files/{file_id}/members").text
    assert text.splitlines() == [
        "5\tfile\tsha256=x\\x09fake\tpkg/a.py\\x0a0\\x09file\\x09-\\x09innocent.py",
        "1\tfile\t-\tb.py",
    ]


@pytest.mark.parametrize("seen", [[1], {}, 1, True])
def test_an_api_seen_state_that_is_not_a_string_is_a_400(site, seen):
    for url in ("/api/v1/files/1/approve", "/api/v1/releases/foo/1.0/approve"):
        response = site.client().post(
            url, json={"reason": "checked", "seen_state": seen}, headers=bearer(site)
        )
        assert response.status_code == 400 and "seen_state" in response.json["detail"]


def test_the_last_day_there_is_is_an_audit_filter_like_any_other(site):
    site.user("ada")
    client = site.logged_in("ada")
    for query in ("until=9999-12-31", "format=csv&until=9999-12-31", "since=0001-01-01"):
        response = client.get(f"/admin/audit?{query}")
        assert response.status_code == 200, query
        assert "user.add" in response.text
