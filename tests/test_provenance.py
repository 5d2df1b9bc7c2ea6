"""PEP 740 provenance through a real sync: fetched from a fake upstream on loopback,
recorded with its publisher, served on our index, compared across releases, and (when
configured) verified with pypi-attestations, offline."""

from __future__ import annotations

import json

import pytest

from mirror.db import State
from mirror.provenance import ProvenanceError, Verification, parse, record
from mirror.web import create_app
from quarantine.drift import PROVENANCE_MISSING, PROVENANCE_PUBLISHER_CHANGED
from tests.support.builders import make_provenance, make_wheel
from tests.test_sync import OLD, make_syncer

ACME = {"kind": "GitHub", "repository": "acme/widget", "workflow": "release.yml"}
FORK = {"kind": "GitHub", "repository": "mallory/widget", "workflow": "release.yml"}


@pytest.fixture
def build(tmp_path):
    path = tmp_path / "build"
    path.mkdir()
    return path


def findings_of(db, filename):
    row = db.file_by_filename(filename)
    return {f["check_id"] for f in db.findings(row.id)}


def test_publishers_are_read_from_a_provenance_object():
    data = make_provenance(
        [ACME, {"kind": "GitLab", "repository": "g/w", "workflow_filepath": ".gitlab-ci.yml"}]
    )
    (github, gitlab) = parse(data)
    assert (github.kind, github.repository) == ("GitHub", "acme/widget")
    assert github.workflow == "release.yml"
    assert (gitlab.kind, gitlab.workflow) == ("GitLab", ".gitlab-ci.yml")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not json", "not JSON"),
        (b'{"version": 2, "attestation_bundles": []}', "version 1"),
        (b'{"version": 1, "attestation_bundles": []}', "missing or empty"),
        (b'{"version": 1, "attestation_bundles": [{"publisher": {"kind": "G"}}]}', "attestations"),
    ],
)
def test_malformed_provenance_is_refused_with_a_reason(data, message):
    with pytest.raises(ProvenanceError, match=message):
        parse(data)


def test_a_forged_attestation_does_not_verify_offline():
    provenance, problem = record(
        make_provenance([ACME], subject=("widget-1.0-py3-none-any.whl", "ab" * 32)),
        filename="widget-1.0-py3-none-any.whl",
        sha256="ab" * 32,
        verify=True,
    )
    assert problem is None and provenance is not None
    assert provenance.verification is Verification.FAILED and provenance.detail


def test_provenance_is_recorded_and_served_next_to_the_file(tmp_path, fake_index, build):
    index = fake_index("json")
    attested = make_wheel(build, "widget", "1.0")
    provenance = make_provenance([ACME])
    index.add(attested, upload_time=OLD, provenance=provenance)
    index.add(make_wheel(build, "plain", "1.0"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["widget", "plain"]})
    syncer.run()

    row = db.file_by_filename(attested.name)
    assert row.state is State.APPROVED
    recorded = db.provenance(row.id)
    assert recorded["publishers"] == [["GitHub", "acme/widget", "release.yml", ""]]
    assert recorded["verification"] == "unverified"

    client = create_app(syncer.settings, db=db, storage=syncer.storage).test_client()
    page = client.get("/simple/widget/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    (entry,) = page.json["files"]
    assert entry["provenance"] == f"../../files/{row.sha256}/{attested.name}.provenance"
    with client.get(entry["provenance"].replace("../..", "", 1)) as served:
        assert served.status_code == 200 and served.data == provenance
        assert served.content_type == "application/vnd.pypi.integrity.v1+json"
    html = client.get("/simple/widget/").text
    assert f'data-provenance="../../files/{row.sha256}/{attested.name}.provenance"' in html

    plain = db.file_by_filename("plain-1.0-py3-none-any.whl")
    entry = client.get("/simple/plain/?format=json").json["files"][0]
    assert entry["provenance"] is None
    assert client.get(f"/files/{plain.sha256}/{plain.filename}.provenance").status_code == 404


def test_a_release_without_the_provenance_earlier_ones_had_is_held(tmp_path, fake_index, build):
    index = fake_index("json")

    def attested(version, publisher):
        return dict(upload_time=OLD, provenance=make_provenance([publisher]))

    index.add(make_wheel(build, "widget", "1.0"), **attested("1.0", ACME))
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["widget"]})
    syncer.run()
    index.add(make_wheel(build, "widget", "1.1"), upload_time=OLD)  # uploaded by hand
    index.add(make_wheel(build, "widget", "1.2"), **attested("1.2", FORK))
    index.add(make_wheel(build, "widget", "1.3"), **attested("1.3", ACME))
    syncer.run()

    assert db.file_by_filename("widget-1.1-py3-none-any.whl").state is State.QUARANTINED
    assert PROVENANCE_MISSING in findings_of(db, "widget-1.1-py3-none-any.whl")
    assert db.file_by_filename("widget-1.2-py3-none-any.whl").state is State.QUARANTINED
    assert PROVENANCE_PUBLISHER_CHANGED in findings_of(db, "widget-1.2-py3-none-any.whl")
    assert db.file_by_filename("widget-1.3-py3-none-any.whl").state is State.APPROVED


def test_with_verification_on_a_forged_provenance_holds_the_file(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "widget", "1.0")
    index.add(wheel, upload_time=OLD)
    forged = make_provenance([ACME], subject=(wheel.name, index.digest(wheel.name)))
    index.add(wheel, upload_time=OLD, provenance=forged)
    syncer, db = make_syncer(
        tmp_path, index.url, sync={"projects": ["widget"]}, checks={"verify_provenance": True}
    )
    syncer.run()
    row = db.file_by_filename(wheel.name)
    assert row.state is State.QUARANTINED
    assert "provenance-invalid" in findings_of(db, wheel.name)
    assert db.provenance(row.id)["verification"] == "failed"


def test_an_unreadable_provenance_object_is_a_finding(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "widget", "1.0")
    index.add(wheel, upload_time=OLD, provenance=b"<html>not provenance</html>")
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["widget"]})
    syncer.run()
    row = db.file_by_filename(wheel.name)
    assert row.state is State.QUARANTINED and "provenance-invalid" in findings_of(db, wheel.name)
    assert db.provenance(row.id) is None and row.provenance_sha256 is None


def test_a_failed_provenance_fetch_fails_the_file_until_the_next_sync(tmp_path, fake_index, build):
    index = fake_index("json")
    wheel = make_wheel(build, "widget", "1.0")
    index.add(wheel, upload_time=OLD, provenance=make_provenance([ACME]))
    index.fail_next(f"/files/{wheel.name}.provenance", status=503, times=2)  # both tries
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["widget"]})
    summary = syncer.run()
    assert summary.failed == 1 and db.file_by_filename(wheel.name) is None
    syncer.run()
    assert db.file_by_filename(wheel.name).state is State.APPROVED
    assert json.loads(json.dumps(db.provenance(db.file_by_filename(wheel.name).id)))["publishers"]


def test_a_file_is_never_recorded_without_its_provenance(tmp_path, fake_index, build):
    index = fake_index("json")
    attested = make_wheel(build, "widget", "1.0")
    index.add(attested, upload_time=OLD, provenance=make_provenance([ACME]))
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["widget"]})
    # The database refuses the provenance row (as a full disk or a lock would).
    with db.write():
        db.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON provenance"
            " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    summary = syncer.run()
    assert summary.failed == 1 and "disk full" in summary.errors[0]
    assert db.file_by_filename(attested.name) is None  # not half-recorded

    with db.write():
        db.db.execute("DROP TRIGGER refuse")
    syncer.run()
    row = db.file_by_filename(attested.name)
    assert row.state is State.APPROVED and row.provenance_sha256
    assert db.provenance(row.id)["publishers"][0][1] == "acme/widget"
