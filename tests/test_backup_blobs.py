"""Backup and restore in process: every blob a restored mirror lists comes back (a file,
its core metadata, its provenance), in the stores its state puts it in."""

from __future__ import annotations

import pytest

from mirror.backup import RestoreRefused, backup, restore
from mirror.db import Database, State
from mirror.publish import provenance_key
from mirror.storage import local_storage
from tests.support.builders import make_provenance, make_wheel
from tests.test_sync import NOW, OLD, make_syncer

ACME = {"kind": "GitHub", "repository": "acme/widget", "workflow": "release.yml"}


@pytest.fixture
def synced(tmp_path, fake_index):
    build = tmp_path / "build"
    build.mkdir()
    index = fake_index("json")
    index.add(
        make_wheel(build, "widget", "1.0"), upload_time=OLD, provenance=make_provenance([ACME])
    )
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["widget"]})
    syncer.run()
    row = db.file_by_filename("widget-1.0-py3-none-any.whl")
    assert row.state is State.APPROVED and row.provenance_sha256
    return syncer.settings, db, row


def test_a_restored_mirror_has_the_provenance_it_lists(tmp_path, synced):
    settings, db, row = synced
    db.close()
    backup(settings.database_path, local_storage(settings.data_dir), tmp_path / "bk", NOW)

    target = tmp_path / "restored"
    restore(tmp_path / "bk", target, local_storage)

    restored_db = Database(target / "qmirror.sqlite3")
    restored = restored_db.file_by_id(row.id)
    restored_db.close()
    assert restored is not None and restored.provenance_sha256 == row.provenance_sha256
    key = provenance_key(row.sha256)
    with local_storage(settings.data_dir).published.open(key) as stream:
        original = stream.read()
    stores = local_storage(target)
    for store in (stores.quarantine, stores.published):
        with store.open(key) as stream:
            assert stream.read() == original


def test_restore_refuses_a_tampered_provenance(tmp_path, synced):
    settings, db, row = synced
    db.close()
    backup(settings.database_path, local_storage(settings.data_dir), tmp_path / "bk", NOW)
    key = provenance_key(row.sha256)
    blob = tmp_path / "bk" / "blobs" / key[:2] / key
    blob.unlink()  # a hardlink: replace it rather than write through to the store
    blob.write_bytes(b'{"version": 1, "attestation_bundles": "forged"}')

    with pytest.raises(RestoreRefused, match="provenance"):
        restore(tmp_path / "bk", tmp_path / "restored", local_storage)
    assert not (tmp_path / "restored" / "qmirror.sqlite3").exists()
