"""``/api/v1`` and ``index_auth`` in-process: bearer tokens, decisions audited with the
token's name and visible on the index at once, refusals that change nothing, and the
OpenAPI description checked against the routes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from mirror.db import State, TokenRole
from tests.support.admin import AdminSite
from tests.support.builders import make_wheel

OLD = datetime(2025, 1, 1, tzinfo=UTC)
PTH = {"hooky/__init__.py": b"", "hooky.pth": b"import os; os.system('id')\n"}


def synced_site(tmp_path, fake_index, **settings):
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    index.add(make_wheel(build, "hooky", "1.0", files=PTH), upload_time=OLD)
    index.add(make_wheel(build, "hooky", "1.1", files=PTH), upload_time=OLD)
    index.add(make_wheel(build, "clean", "1.0"), upload_time=OLD)
    site = AdminSite(
        tmp_path,
        upstream={"url": index.url},
        sync={"projects": ["hooky", "clean"], "python_versions": ["3.11"],
              "platforms": ["linux-x86_64"]},
        policy={"cooldown": "0"},
        **settings,
    )  # fmt: skip
    site.sync_from(index.url)
    return site


@pytest.fixture
def site(tmp_path, fake_index):
    return synced_site(tmp_path, fake_index)


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def token(site, role=TokenRole.REVIEWER, name="chatops"):
    return site.accounts.create_token(name, role, actor="test")


def test_list_and_get_held_files(site):
    secret = token(site).secret
    client = site.client()
    listing = client.get("/api/v1/files", headers=bearer(secret)).json
    assert sorted(f["filename"] for f in listing["files"]) == [
        "hooky-1.0-py3-none-any.whl",
        "hooky-1.1-py3-none-any.whl",
    ]
    first = listing["files"][0]
    assert first["state"] == "quarantined" and first["worst_severity"] == "high"
    detail = client.get(f"/api/v1/files/{first['id']}", headers=bearer(secret)).json
    assert detail["findings"][0]["check"] == "pth-import"
    assert detail["decisions"][0]["to"] == "quarantined"
    approved = client.get("/api/v1/files?state=approved", headers=bearer(secret)).json
    assert [f["filename"] for f in approved["files"]] == ["clean-1.0-py3-none-any.whl"]


def test_decisions_are_audited_with_the_token_and_change_the_index(site):
    new = token(site, name="ci-bot")
    client = site.client()
    hooky = site.db.file_by_filename("hooky-1.0-py3-none-any.whl")
    response = client.post(
        f"/api/v1/files/{hooky.id}/approve", json={"reason": "vetted"}, headers=bearer(new.secret)
    )
    assert response.status_code == 200 and response.json["state"] == "approved"
    assert "hooky-1.0-py3-none-any.whl" in client.get("/simple/hooky/").text
    last = site.db.decisions(hooky.id)[-1]
    assert (last["actor"], last["reason"]) == (f"token:{new.row.id}:ci-bot", "vetted")
    revoked = client.post(
        f"/api/v1/files/{hooky.id}/revoke", json={"reason": "advisory"}, headers=bearer(new.secret)
    )
    assert revoked.json["state"] == "revoked"
    assert client.get("/simple/hooky/").status_code == 404  # nothing of hooky is listed now


def test_release_approval_and_conflicts(site):
    secret = token(site).secret
    client = site.client()
    other = site.db.file_by_filename("hooky-1.1-py3-none-any.whl")
    client.post(f"/api/v1/files/{other.id}/reject", json={"reason": "no"}, headers=bearer(secret))
    done = client.post(
        "/api/v1/releases/hooky/1.1/approve", json={"reason": "x"}, headers=bearer(secret)
    )
    assert done.status_code == 404  # its only file is rejected, not held
    conflict = client.post(
        f"/api/v1/files/{other.id}/reject", json={"reason": "again"}, headers=bearer(secret)
    )
    assert conflict.status_code == 409 and conflict.json["state"] == "rejected"
    not_held = client.post(
        f"/api/v1/files/{other.id}/approve", json={"reason": "fp"}, headers=bearer(secret)
    )
    assert not_held.status_code == 409 and "overturn" in not_held.json["detail"]
    overturned = client.post(
        f"/api/v1/files/{other.id}/approve",
        json={"reason": "false positive", "overturn": True},
        headers=bearer(secret),
    )
    assert overturned.status_code == 200 and overturned.json["state"] == "approved"
    release = client.post(
        "/api/v1/releases/hooky/1.0/approve", json={"reason": "ok"}, headers=bearer(secret)
    )
    assert [f["filename"] for f in release.json["approved"]] == ["hooky-1.0-py3-none-any.whl"]


def test_approve_means_held_only_unless_overturn_is_true(site):
    secret = token(site).secret
    client = site.client()
    hooky = site.db.file_by_filename("hooky-1.0-py3-none-any.whl")
    url = f"/api/v1/files/{hooky.id}/approve"
    assert client.post(f"/api/v1/files/{hooky.id}/reject", json={"reason": "pth"},
                       headers=bearer(secret)).status_code == 200  # fmt: skip
    before = len(site.db.decisions())
    for overturn in ("true", 1, "false", None):  # only a JSON boolean says it
        refused = client.post(
            url, json={"reason": "fp", "overturn": overturn}, headers=bearer(secret)
        )
        assert refused.status_code == 400, overturn
    not_held = client.post(url, json={"reason": "fp", "overturn": False}, headers=bearer(secret))
    assert not_held.status_code == 409 and not_held.json["state"] == "rejected"
    assert len(site.db.decisions()) == before
    assert site.db.file_by_id(hooky.id).state is State.REJECTED


def test_seen_state_refuses_a_decision_on_a_file_that_moved(site):
    secret = token(site).secret
    client = site.client()
    hooky = site.db.file_by_filename("hooky-1.0-py3-none-any.whl")
    seen = client.get(f"/api/v1/files/{hooky.id}", headers=bearer(secret)).json["state"]
    assert seen == "quarantined"
    client.post(f"/api/v1/files/{hooky.id}/reject", json={"reason": "first"},
                headers=bearer(token(site, name="other").secret))  # fmt: skip
    before = len(site.db.decisions())
    for verb, body in (
        ("approve", {"overturn": True}),  # an overturn, but of a state it never saw
        ("reject", {}),
    ):
        late = client.post(
            f"/api/v1/files/{hooky.id}/{verb}",
            json={"reason": "late", "seen_state": seen, **body},
            headers=bearer(secret),
        )
        assert late.status_code == 409, verb
        assert late.json["detail"] == "it is rejected now, not quarantined"
    assert client.post(f"/api/v1/files/{hooky.id}/approve",
                       json={"reason": "x", "seen_state": "bogus"},
                       headers=bearer(secret)).status_code == 400  # fmt: skip
    # Seen as rejected and said overturn: exactly that happens.
    overturned = client.post(
        f"/api/v1/files/{hooky.id}/approve",
        json={"reason": "false positive", "seen_state": "rejected", "overturn": True},
        headers=bearer(secret),
    )
    assert overturned.status_code == 200 and overturned.json["state"] == "approved"
    assert len(site.db.decisions()) == before + 1


def test_release_approval_takes_the_name_as_pip_would(site):
    secret = token(site).secret
    done = site.client().post(
        "/api/v1/releases/Hooky/1.0/approve", json={"reason": "ok"}, headers=bearer(secret)
    )
    assert done.status_code == 200
    assert [f["filename"] for f in done.json["approved"]] == ["hooky-1.0-py3-none-any.whl"]


def test_refusals_change_nothing(site):
    client = site.client()
    hooky = site.db.file_by_filename("hooky-1.0-py3-none-any.whl")
    url = f"/api/v1/files/{hooky.id}/approve"
    before = len(site.db.decisions())
    missing = client.post(url, json={"reason": "x"})
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json["error"] == "Unauthorized"
    assert client.post(url, json={"reason": "x"}, headers=bearer("qm_wrong")).status_code == 401
    gone = token(site)
    site.accounts.revoke_token(gone.row.id, actor="test")
    assert client.post(url, json={"reason": "x"}, headers=bearer(gone.secret)).status_code == 401
    reader = token(site, TokenRole.READ).secret
    assert client.post(url, json={"reason": "x"}, headers=bearer(reader)).status_code == 403
    assert client.get("/api/v1/files", headers=bearer(reader)).status_code == 403
    secret = token(site).secret
    bad = client.post(
        url, data="{not json", headers={**bearer(secret), "Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    assert client.post(url, json={"reason": "  "}, headers=bearer(secret)).status_code == 400
    assert client.post("/api/v1/files/999999/approve", json={"reason": "x"},
                       headers=bearer(secret)).status_code == 404  # fmt: skip
    assert site.db.file_by_id(hooky.id).state is State.QUARANTINED
    assert len(site.db.decisions()) == before


def test_a_session_cookie_alone_does_not_authenticate_the_api(site):
    from mirror.db import Role

    site.user("rev", Role.REVIEWER)
    browser = site.logged_in("rev")
    assert browser.get("/admin/").status_code == 200
    assert browser.get("/api/v1/files").status_code == 401


def test_openapi_describes_every_route_and_is_valid(site):
    from openapi_spec_validator import validate

    document = site.client().get("/api/v1/openapi.json").json
    validate(document)
    described = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    registered = set()
    for rule in site.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.removeprefix("/api/v1")
        path = path.replace("<int:file_id>", "{file_id}").replace("<project>", "{project}")
        path = path.replace("<version>", "{version}")
        methods = rule.methods - {"HEAD", "OPTIONS"}
        if "<verb>" in path:
            registered |= {(path.replace("<verb>", v), m) for v in ("approve", "reject", "revoke")
                           for m in methods}  # fmt: skip
        else:
            registered |= {(path, m) for m in methods}
    assert described == registered


# ---------------------------------------------------------------- index_auth


def basic(secret, user="pip"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def test_index_auth_needs_a_live_token_for_pages_and_files(tmp_path, fake_index):
    site = synced_site(tmp_path, fake_index, server={"index_auth": True})
    client = site.client()
    clean = site.db.file_by_filename("clean-1.0-py3-none-any.whl")
    file_url = f"/files/{clean.sha256}/{clean.filename}"
    for url in ("/simple/", "/simple/clean/", file_url):
        refused = client.get(url)
        assert refused.status_code == 401, url
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="quarantine-mirror"'
    assert client.get("/healthz").status_code == 200
    reader = token(site, TokenRole.READ, name="laptops")
    assert client.get("/simple/clean/", headers=basic(reader.secret)).status_code == 200
    with client.get(file_url, headers=basic(reader.secret)) as response:
        assert response.status_code == 200
    assert client.get("/simple/clean/", headers=basic("qm_made_up")).status_code == 401
    site.accounts.revoke_token(reader.row.id, actor="test")
    assert client.get("/simple/clean/", headers=basic(reader.secret)).status_code == 401


def test_index_is_open_without_index_auth(site):
    assert site.client().get("/simple/clean/").status_code == 200


@pytest.mark.live
def test_pip_installs_through_index_auth_with_a_token_and_not_without(tmp_path, fake_index):
    from tests.support.live import gunicorn_mirror, make_venv, pip_install, qmirror, write_config

    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    index.add(make_wheel(build, "clean", "1.0"), upload_time=OLD)
    config = write_config(
        tmp_path / "qmirror.toml", tmp_path / "data", index.url,
        sync={"projects": ["clean"]}, server={"index_auth": True},
    )  # fmt: skip
    qmirror(config, "sync")
    secret = qmirror(config, "token", "create", "laptops", "--role", "read").stdout.strip()
    with gunicorn_mirror(config, tmp_path) as server:
        python = make_venv(tmp_path / "venv")
        refused = pip_install(python, server.index_url, ["clean"])
        assert refused.returncode != 0
        authed = f"http://pip:{secret}@127.0.0.1:{server.port}/simple/"
        installed = pip_install(python, authed, ["clean"])
        assert installed.returncode == 0, installed.stdout + installed.stderr
