"""Sync in-process against a fake upstream on loopback: planning, dependencies, extras,
idempotence, cooldown with a fixed clock, dependency confusion."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from mirror.config import settings_from_mapping
from mirror.db import Database, State
from mirror.storage import local_storage
from mirror.sync import Syncer, SyncLocked, sync_lock
from mirror.upstream import UpstreamClient
from tests.support.builders import make_sdist, make_wheel

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


def make_syncer(tmp_path, index_url, clock=None, **sections):
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
        settings, db, local_storage(settings.data_dir), upstream, settings.policy.build(),
        clock=clock or Clock(NOW),
    )  # fmt: skip
    return syncer, db


def test_dependencies_follow_with_markers_and_extras(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "app", "1.0", extras=["fast"], requires_dist=[
        "lib>=2",
        'old-backport; python_version < "3.8"',
        'winonly; sys_platform == "win32"',
        'speedup; extra == "fast"',
    ]), upload_time=OLD)  # fmt: skip
    for name in ("lib", "old-backport", "winonly", "speedup"):
        index.add(make_wheel(build, name, "2.0"), upload_time=OLD)
    index.add(make_wheel(build, "lib", "1.0"), upload_time=OLD)

    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["app"]})
    summary = syncer.run()
    assert summary.failed == 0
    assert {row.filename for row in db.files()} == {
        "app-1.0-py3-none-any.whl", "lib-2.0-py3-none-any.whl",
    }  # fmt: skip
    assert db.project("lib").required_by == "app"

    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["app[fast]"]})
    syncer.run()
    assert "speedup-2.0-py3-none-any.whl" in {row.filename for row in db.files()}


def test_second_run_downloads_nothing_and_a_late_file_is_picked_up(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "solo", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["solo"]})
    assert syncer.run().new == 1

    index.requests.clear()
    again = syncer.run()
    assert again.new == 0
    assert not [p for _, p in index.requests if p.startswith("/files/")]

    index.add(make_sdist(build, "solo", "1.0"), upload_time=OLD)  # an sdist added later
    late = syncer.run()
    assert late.new == 1
    assert db.file_by_filename("solo-1.0.tar.gz").state is State.APPROVED


def test_filters_wheels_by_tag_and_requires_python(tmp_path, fake_index, build):
    index = fake_index("json")
    for tag in ("cp311-cp311-manylinux_2_17_x86_64", "cp310-cp310-manylinux_2_17_x86_64",
                "cp311-cp311-win_amd64", "py3-none-any"):  # fmt: skip
        index.add(make_wheel(build, "native", "1.0", tag=tag), upload_time=OLD)
    index.add(make_wheel(build, "native", "0.9", requires_python="<3"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["native"], "sdists": False})
    syncer.run()
    assert {row.filename for row in db.files()} == {
        "native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "native-1.0-py3-none-any.whl",
    }  # fmt: skip


def test_prereleases_only_when_asked(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "pre", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "pre", "2.0b1"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["pre"]})
    syncer.run()
    assert [row.version for row in db.files()] == ["1.0"]
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["pre"], "prereleases": True})
    syncer.run()
    assert sorted(row.version for row in db.files()) == ["1.0", "2.0b1"]


def test_cooldown_holds_then_approves_with_a_fixed_clock(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "fresh", "1.0"), upload_time=NOW - timedelta(hours=1))
    clock = Clock(NOW)
    syncer, db = make_syncer(
        tmp_path, index.url, clock, sync={"projects": ["fresh"]}, policy={"cooldown": "3d"}
    )
    first = syncer.run()
    assert (first.held, first.approved) == (1, 0)
    row = db.file_by_filename("fresh-1.0-py3-none-any.whl")
    assert row.state is State.QUARANTINED
    assert row.cooldown_until == NOW - timedelta(hours=1) + timedelta(days=3)

    clock.now = NOW + timedelta(days=2)
    assert syncer.run().approved == 0
    clock.now = NOW + timedelta(days=3)
    assert syncer.run().approved == 1
    assert db.file_by_filename("fresh-1.0-py3-none-any.whl").state is State.APPROVED
    assert db.decisions(row.id)[-1]["actor"] == "policy"


def test_internal_names_are_never_pulled_from_upstream(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "app", "1.0", requires_dist=["acme-billing>=1"]), upload_time=OLD)
    index.add(make_wheel(build, "acme-billing", "99.0"), upload_time=OLD)  # the attacker's
    syncer, db = make_syncer(
        tmp_path, index.url, sync={"projects": ["app", "acme-billing"]},
        policy={"internal": ["acme-*"]},
    )  # fmt: skip
    syncer.run()
    assert not [p for _, p in index.requests if "acme" in p]
    assert db.project("acme-billing") is None
    assert [row.project for row in db.files()] == ["app"]


def test_upstream_listing_under_the_wrong_project_is_ignored(tmp_path, fake_index, build):
    """A page for `victim` that links a file named for another project takes nothing."""
    index = fake_index("json")
    wheel = make_wheel(build, "victim", "1.0")
    index.add(wheel, upload_time=OLD)
    other = make_wheel(build, "other", "1.0")
    index.serve_raw(
        "/simple/victim/",
        (
            '{"meta": {"api-version": "1.1"}, "name": "victim", "files": ['
            f'{{"filename": "{other.name}", "url": "../../files/{other.name}",'
            f' "hashes": {{"sha256": "{"0" * 64}"}}}},'
            f'{{"filename": "../../evil-1.0-py3-none-any.whl", "url": "x",'
            f' "hashes": {{"sha256": "{"0" * 64}"}}}}]}}'
        ).encode(),
        content_type="application/vnd.pypi.simple.v1+json",
    )
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["victim"]})
    summary = syncer.run()
    assert summary.new == 0 and db.files() == []


def test_one_sync_at_a_time(tmp_path):
    data_dir = tmp_path / "data"
    with sync_lock(data_dir), pytest.raises(SyncLocked, match="another sync is running"):
        with sync_lock(data_dir):
            pass


def test_upstream_metadata_that_disagrees_with_the_wheel_is_held(tmp_path, fake_index, build):
    """PEP 658 metadata is what resolvers read; if the upstream's differs from the
    wheel's own METADATA, installers would resolve one thing and install another."""
    index = fake_index("json")
    index.add(make_wheel(build, "liar", "1.0"), upload_time=OLD,
              metadata=b"Metadata-Version: 2.1\nName: liar\nVersion: 1.0\n")  # fmt: skip
    index.add(make_wheel(build, "honest", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["liar", "honest"]})
    summary = syncer.run()
    assert (summary.held, summary.approved) == (1, 1)
    liar = db.file_by_filename("liar-1.0-py3-none-any.whl")
    assert liar.state is State.QUARANTINED
    assert [f["check_id"] for f in db.findings(liar.id)] == ["core-metadata-mismatch"]
    # We serve the wheel's own METADATA, whatever the upstream said.
    honest = db.file_by_filename("honest-1.0-py3-none-any.whl")
    assert honest.metadata_sha256 is not None


def test_yanking_upstream_is_reflected_on_our_page(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "yanky", "1.0")
    index.add(wheel, upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["yanky"]})
    syncer.run()
    assert b"data-yanked" not in db.page("simple/yanky/index.html").body
    index.yank(wheel.name, "broken build")
    syncer.run()
    assert db.file_by_filename(wheel.name).yanked == "broken build"
    assert b'data-yanked="broken build"' in db.page("simple/yanky/index.html").body


def _raw_page(name: str, files: list[dict]) -> bytes:
    import json

    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()


def test_checks_in_sync_see_mirrored_and_internal_names(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "billing-core", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "biling-core", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(
        tmp_path, index.url, sync={"projects": ["biling-core"]},
        policy={"internal": ["billing-core"]},
    )  # fmt: skip
    syncer.run()
    row = db.file_by_filename("biling_core-1.0-py3-none-any.whl")
    assert row.state is State.QUARANTINED
    assert "typosquat" in {f["check_id"] for f in db.findings(row.id)}


def test_a_file_without_a_strong_upstream_hash_is_held(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "nohash", "1.0")
    index.add(wheel, upload_time=OLD)
    index.serve_raw(
        "/simple/nohash/",
        _raw_page("nohash", [{"filename": wheel.name, "url": index.file_url(wheel.name),
                              "hashes": {}}]),
        content_type="application/vnd.pypi.simple.v1+json",
    )  # fmt: skip
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["nohash"]})
    syncer.run()
    row = db.file_by_filename(wheel.name)
    assert row.state is State.QUARANTINED
    assert [f["check_id"] for f in db.findings(row.id)] == ["upstream-hash-missing"]


def test_filenames_that_would_break_urls_or_terminals_are_not_taken(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "weird", "1.0")
    index.add(wheel, upload_time=OLD)
    digest = index.digest(wheel.name)
    bad = ["weird-1.0-py3-none-any.x#frag.whl", "weird-1.0-py3-none-any.\x1b[31m.whl"]
    index.serve_raw(
        "/simple/weird/",
        _raw_page("weird", [{"filename": name, "url": index.file_url(wheel.name),
                             "hashes": {"sha256": digest}} for name in bad]),
        content_type="application/vnd.pypi.simple.v1+json",
    )  # fmt: skip
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["weird"]})
    assert syncer.run().new == 0 and db.files() == []


def test_a_file_listed_twice_is_judged_once(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "twice", "1.0")
    index.add(wheel, upload_time=OLD)
    entry = {"filename": wheel.name, "url": index.file_url(wheel.name),
             "hashes": {"sha256": index.digest(wheel.name)}}  # fmt: skip
    index.serve_raw("/simple/twice/", _raw_page("twice", [entry, entry]),
                    content_type="application/vnd.pypi.simple.v1+json")  # fmt: skip
    syncer, _ = make_syncer(tmp_path, index.url, sync={"projects": ["twice"]})
    summary = syncer.run()
    assert (summary.new, summary.failed) == (1, 0)


def test_upstream_changing_the_bytes_of_a_held_file_is_reported(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "swap", "1.0")
    index.add(wheel, upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["swap"]})
    syncer.run()
    original = db.file_by_filename(wheel.name).sha256
    replacement = make_wheel(build / "..", "swap", "1.0", files={"swap/__init__.py": b"x = 1\n"})
    index.remove(wheel.name)
    index.add(replacement, upload_time=OLD)
    summary = syncer.run()
    assert summary.failed == 1
    assert "different bytes" in summary.errors[0]
    assert db.file_by_filename(wheel.name).sha256 == original  # we keep what we judged


def test_dependencies_of_a_file_held_for_findings_are_not_followed(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "shady", "1.0", requires_dist=["payload"],
                         files={"shady/__init__.py": b"", "shady.pth": b"import payload\n"}),
              upload_time=OLD)  # fmt: skip
    index.add(make_wheel(build, "payload", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["shady"]})
    syncer.run()
    assert db.project("payload") is None
    assert db.file_by_filename("shady-1.0-py3-none-any.whl").state is State.QUARANTINED


def test_max_file_size_bounds_a_download_the_listing_gave_no_size(tmp_path, fake_index, build):
    index = fake_index("html")  # PEP 503 pages say nothing of sizes
    index.add(make_sdist(build, "big", "1.0", files={"big/blob.bin": os.urandom(300_000)}))
    index.add(make_wheel(build, "big", "1.0"))
    syncer, db = make_syncer(
        tmp_path, index.url, sync={"projects": ["big"], "max_file_size": "100KiB"}
    )
    summary = syncer.run()
    assert summary.failed == 1 and "big-1.0.tar.gz" in summary.errors[0]
    assert "byte limit" in summary.errors[0]
    assert [row.filename for row in db.files()] == ["big-1.0-py3-none-any.whl"]
    assert list((tmp_path / "data" / "tmp").iterdir()) == []


def test_a_new_dependency_on_a_well_known_project_is_not_unknown(tmp_path, fake_index, build):
    index = fake_index("json")
    index.add(make_wheel(build, "app", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["app"], "dependencies": False})
    syncer.run()
    index.add(
        make_wheel(build, "app", "1.1", requires_dist=["requests>=2", "colorama2"]),
        upload_time=OLD,
    )
    syncer.run()
    row = db.file_by_filename("app-1.1-py3-none-any.whl")
    found = {(f["check_id"], f["evidence"]) for f in db.findings(row.id)}
    # requests is not carried here, but it is one of the most-downloaded projects.
    assert ("drift-new-dependency", "requests>=2") in found
    assert ("drift-new-unknown-dependency", "colorama2") in found
    assert ("drift-new-unknown-dependency", "requests>=2") not in found
