"""Publisher transitions killed at their worst moment: a process that dies right after a
revocation commits has already taken the file off the index (the pages change in the
same transaction as the state)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from mirror.db import Database, State
from tests.support.builders import make_wheel
from tests.support.live import REPO
from tests.test_sync import OLD, make_syncer

KILLED_AFTER_COMMIT = """
import os, sys
from pathlib import Path
from mirror.db import Database
from mirror.publish import Publisher
from mirror.storage import local_storage

data = Path(sys.argv[1])
db = Database(data / "qmirror.sqlite3")
row = db.file_by_filename(sys.argv[2])
# The alert hook runs once the transition has committed: die there, like a SIGKILL.
Publisher(db, local_storage(data), alerted=lambda: os._exit(9)).revoke(
    [row], actor="admin", reason="malware"
)
"""


def test_a_revocation_killed_after_its_commit_is_already_off_the_index(tmp_path, fake_index):
    build = tmp_path / "build"
    build.mkdir()
    index = fake_index("json")
    index.add(make_wheel(build, "evil", "1.0"), upload_time=OLD)
    index.add(make_wheel(build, "evil", "1.1"), upload_time=OLD)
    syncer, db = make_syncer(tmp_path, index.url, sync={"projects": ["evil"]})
    syncer.run()
    filename = "evil-1.0-py3-none-any.whl"
    assert db.file_by_filename(filename).state is State.APPROVED
    db.close()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED_AFTER_COMMIT),
            str(tmp_path / "data"),
            filename,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 9, done.stderr

    db = Database(tmp_path / "data" / "qmirror.sqlite3")
    assert db.file_by_filename(filename).state is State.REVOKED
    for fmt in ("html", "json"):
        page = db.page(f"simple/evil/index.{fmt}")
        assert page is not None and b"evil-1.1" in page.body
        assert filename.encode() not in page.body
    db.close()
