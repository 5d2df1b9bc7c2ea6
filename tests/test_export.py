"""``qmirror export``: the published index as static files. Real pip through a plain static
server (``python -m http.server``), incremental re-exports checked by inode and mtime, and
that nothing held, rejected or revoked ever lands in the tree."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from mirror.cli import main
from mirror.db import State, utcnow
from mirror.export import MANIFEST_KEY, ExportError, export, export_lock, open_target
from mirror.storage import copy_blob
from tests.support.builders import make_sdist, make_wheel, metadata_text
from tests.support.live import (
    free_port,
    gunicorn_mirror,
    make_venv,
    pip,
    pip_install,
    qmirror,
    wait_for_http,
    write_config,
)
from tests.test_index import Mirror

ROOT_PAGES = {"simple/index.html", "simple/index.json"}


def pages_of(project: str) -> set[str]:
    return {f"simple/{project}/index.html", f"simple/{project}/index.json"}


@pytest.fixture
def mirror(tmp_path):
    return Mirror(tmp_path)


def publish(mirror, name, version, *, requires_dist=(), sdist=False):
    """A file approved the way an admin would: through the Publisher."""
    row = add(mirror, name, version, requires_dist=requires_dist, sdist=sdist)
    mirror.publisher.approve([row], actor="test", reason="ok")
    return mirror.db.file_by_id(row.id)


def add(mirror, name, version, *, requires_dist=(), sdist=False):
    """A quarantined file, with core metadata pip can resolve from (wheels only)."""
    if sdist:
        return mirror.add(make_sdist(mirror.build_dir, name, version), name, version)
    path = make_wheel(mirror.build_dir, name, version, requires_dist=requires_dist)
    metadata = metadata_text(name, version, requires_dist=requires_dist).encode()
    return mirror.add(path, name, version, metadata=metadata)


def run_export(mirror, out: Path, **kwargs):
    return export(mirror.db, mirror.storage.published, open_target(str(out), base=out), **kwargs)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file in the tree (but the manifest): (inode, mtime_ns)."""
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != MANIFEST_KEY and not rel.startswith(".qmirror-tmp"):
            stat = path.stat()
            found[rel] = (stat.st_ino, stat.st_mtime_ns)
    return found


def assert_consistent(root: Path) -> None:
    """What a static server would serve is whole: the root lists exactly the project
    pages present, and every file a page lists is present with the bytes it claims."""
    listed = {p["name"] for p in json.loads((root / "simple/index.json").read_bytes())["projects"]}
    present = {p.parent.name for p in (root / "simple").glob("*/index.json")}
    assert listed == present
    for page in (root / "simple").glob("*/index.json"):
        assert (page.parent / "index.html").is_file()
        for entry in json.loads(page.read_bytes())["files"]:
            assert entry["url"].startswith("../../files/")
            target = (page.parent / entry["url"]).resolve()
            assert hashlib.sha256(target.read_bytes()).hexdigest() == entry["hashes"]["sha256"]
            if "core-metadata" in entry:
                metadata = Path(f"{target}.metadata").read_bytes()
                assert hashlib.sha256(metadata).hexdigest() == entry["core-metadata"]["sha256"]


def all_bytes(root: Path) -> bytes:
    return b"".join(p.as_posix().encode() + p.read_bytes() for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- live: pip


@contextmanager
def static_server(directory: Path, log_dir: Path) -> Iterator[tuple[str, Path]]:
    """``python -m http.server`` over the export: a plain static server, no negotiation."""
    port = free_port()
    log = log_dir / f"http-server-{port}.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
             "--directory", str(directory)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/simple/", process=process)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def mirror_config(tmp_path, mirror) -> Path:
    return write_config(
        tmp_path / "qmirror.toml", mirror.settings.data_dir, "http://127.0.0.1:9/simple/"
    )


@pytest.mark.live
def test_pip_installs_from_the_export_on_a_plain_static_server(tmp_path, mirror):
    publish(mirror, "helper", "1.0")
    publish(mirror, "demo", "1.0", requires_dist=["helper>=1"])
    held = add(mirror, "demo", "2.0")  # newer, but quarantined: pip must not see it
    rejected = add(mirror, "demo", "3.0", sdist=True)
    mirror.publisher.reject([rejected], actor="test", reason="bad")
    config = mirror_config(tmp_path, mirror)

    result = qmirror(config, "export", "--to", str(tmp_path / "out"))
    assert result.stdout.startswith(f"exported to {tmp_path / 'out'}: pages 6 written")
    assert "files 4 copied" in result.stdout
    out = tmp_path / "out"
    assert_consistent(out)
    everything = all_bytes(out)
    for row in (held, rejected):
        assert row.sha256.encode() not in everything
        assert row.filename.encode() not in everything

    with static_server(out, tmp_path) as (url, log):
        python = make_venv(tmp_path / "venv")
        installed = pip_install(python, f"{url}/simple/", ["demo"])
        assert installed.returncode == 0, installed.stdout + installed.stderr
        versions = {
            item["name"]: item["version"]
            for item in json.loads(pip(python, "list", "--format=json").stdout)
        }
        assert versions["demo"] == "1.0" and versions["helper"] == "1.0"
        # pip resolved from the exported PEP 658 metadata, not by downloading to look.
        assert '.whl.metadata HTTP/1.1" 200' in log.read_text()


@pytest.mark.live
def test_pip_installs_from_exported_pages_linking_files_on_the_running_mirror(tmp_path, mirror):
    publish(mirror, "demo", "1.0")
    config = mirror_config(tmp_path, mirror)
    out = tmp_path / "out"
    with gunicorn_mirror(config, tmp_path, workers=1) as server:
        files_url = f"{server.url}/files/"
        qmirror(config, "export", "--to", str(out), "--files-url", files_url)
        page = json.loads((out / "simple/demo/index.json").read_bytes())
        assert page["files"][0]["url"].startswith(files_url)
        assert f'href="{files_url}' in (out / "simple/demo/index.html").read_text()
        assert not (out / "files").exists()
        with static_server(out, tmp_path) as (url, log):
            python = make_venv(tmp_path / "venv")
            installed = pip_install(python, f"{url}/simple/", ["demo"])
            assert installed.returncode == 0, installed.stdout + installed.stderr
            served = log.read_text()
    assert "GET /simple/demo/" in served
    assert "/files/" not in served  # the bytes came from the mirror, not the static tree


# ---------------------------------------------------------------- incremental


def test_first_export_writes_every_page_and_file_then_a_second_writes_nothing(tmp_path, mirror):
    publish(mirror, "alpha", "1.0")
    publish(mirror, "beta", "1.0", sdist=True)
    out = tmp_path / "out"
    first = run_export(mirror, out)
    assert set(first.pages_written) == ROOT_PAGES | pages_of("alpha") | pages_of("beta")
    assert len(first.files_copied) == 3  # alpha's wheel and its .metadata, beta's sdist
    assert first.bytes_written == sum(
        (out / key).stat().st_size for key in first.pages_written + first.files_copied
    )
    assert_consistent(out)
    before = snapshot(out)
    again = run_export(mirror, out)
    assert (again.pages_written, again.files_copied, again.pages_deleted, again.files_deleted) == (
        [],
        [],
        [],
        [],
    )
    assert again.line().startswith(f"exported to {out}: pages 0 written, 0 deleted (6 in all)")
    assert snapshot(out) == before


def test_one_approval_rewrites_only_that_projects_pages_and_copies_only_its_file(tmp_path, mirror):
    for name in ("alpha", "beta", "gamma"):
        publish(mirror, name, "1.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    before = snapshot(out)

    row = publish(mirror, "beta", "2.0")
    report = run_export(mirror, out)

    new_files = {
        f"files/{row.sha256}/{row.filename}",
        f"files/{row.sha256}/{row.filename}.metadata",
    }
    # A new version of a listed project leaves the root's bytes (and ETag) as they were.
    assert set(report.pages_written) == pages_of("beta")
    assert set(report.files_copied) == new_files
    assert report.pages_deleted == report.files_deleted == []
    after = snapshot(out)
    assert set(after) == set(before) | new_files
    for key, stat in before.items():
        if key in pages_of("beta"):
            assert after[key] != stat, f"{key} was not rewritten"
        else:
            assert after[key] == stat, f"{key} was touched"
    assert_consistent(out)


def test_the_first_file_of_a_new_project_rewrites_its_pages_and_the_root(tmp_path, mirror):
    publish(mirror, "alpha", "1.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    before = snapshot(out)
    publish(mirror, "newcomer", "1.0")
    report = run_export(mirror, out)
    assert set(report.pages_written) == pages_of("newcomer") | ROOT_PAGES
    assert report.pages_written[-2:] == ["simple/index.html", "simple/index.json"]  # root last
    after = snapshot(out)
    for key in pages_of("alpha") | {k for k in before if k.startswith("files/")}:
        assert after[key] == before[key]
    assert "newcomer" in (out / "simple/index.html").read_text()
    assert_consistent(out)


def test_a_revoke_removes_the_file_and_its_listing(tmp_path, mirror):
    keep = publish(mirror, "demo", "1.0")
    bad = publish(mirror, "demo", "2.0")
    only = publish(mirror, "lonely", "1.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    assert (out / f"files/{bad.sha256}/{bad.filename}").is_file()

    mirror.publisher.revoke([bad, only], actor="test", reason="advisory")
    report = run_export(mirror, out)

    assert set(report.files_deleted) == {
        f"files/{row.sha256}/{row.filename}{suffix}"
        for row in (bad, only)
        for suffix in ("", ".metadata")
    }
    assert set(report.pages_deleted) == pages_of("lonely")
    assert set(report.pages_written) == pages_of("demo") | ROOT_PAGES
    assert not (out / "files" / bad.sha256).exists()  # no empty directories left behind
    assert not (out / "simple/lonely").exists()
    page = (out / "simple/demo/index.html").read_text()
    assert bad.filename not in page and keep.filename in page
    assert "lonely" not in (out / "simple/index.json").read_text()
    assert bad.sha256.encode() not in all_bytes(out)
    assert_consistent(out)


def test_files_url_links_files_elsewhere_and_back_again(tmp_path, mirror):
    row = publish(mirror, "demo", "1.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    base = "https://files.example/qm/files/"

    linked = run_export(mirror, out, files_url=base)
    assert set(linked.pages_written) == pages_of("demo") | ROOT_PAGES
    assert len(linked.files_deleted) == 2 and not (out / "files").exists()
    entry = json.loads((out / "simple/demo/index.json").read_bytes())["files"][0]
    assert entry["url"] == f"{base}{row.sha256}/{row.filename}"
    html = (out / "simple/demo/index.html").read_text()
    assert f'href="{base}{row.sha256}/{row.filename}#sha256={row.sha256}"' in html
    # Everything but the links is the mirror's own page (the same renderer).
    stored = json.loads(mirror.db.page("simple/demo/index.json").body)
    stored["files"][0]["url"] = entry["url"]
    assert json.loads((out / "simple/demo/index.json").read_bytes()) == stored

    back = run_export(mirror, out)
    assert len(back.files_copied) == 2 and len(back.pages_written) == 4
    assert_consistent(out)


def test_quarantined_rejected_and_revoked_files_are_never_exported(tmp_path, mirror):
    publish(mirror, "demo", "1.0")
    held = add(mirror, "demo", "2.0")
    rejected = add(mirror, "demo", "3.0")
    mirror.publisher.reject([rejected], actor="test", reason="bad")
    revoked = publish(mirror, "demo", "4.0")
    mirror.publisher.revoke([revoked], actor="test", reason="bad")
    held_only = add(mirror, "secret", "1.0")  # a project with nothing servable
    out = tmp_path / "out"
    report = run_export(mirror, out)
    assert report.files_total == 2
    everything = all_bytes(out)
    for row in (held, rejected, revoked, held_only):
        assert row.sha256.encode() not in everything
        assert row.filename.encode() not in everything
    assert not (out / "simple/secret").exists()


def test_a_page_not_yet_refreshed_after_a_revoke_is_refreshed_not_exported_stale(tmp_path, mirror):
    """A writer commits the transition, then renders the pages: an export in between (or
    after a writer died in between) must not list a file it no longer exports."""
    keep = publish(mirror, "demo", "1.0")
    gone = publish(mirror, "demo", "2.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    mirror.db.transition(
        gone.id, expected=[State.APPROVED], to=State.REVOKED, actor="test", reason="x",
        now=utcnow(),
    )  # fmt: skip
    assert gone.filename.encode() in mirror.db.page("simple/demo/index.html").body
    report = run_export(mirror, out)
    assert report.refreshed == ["demo"]
    assert gone.filename not in (out / "simple/demo/index.html").read_text()
    assert keep.filename in (out / "simple/demo/index.html").read_text()
    assert len(report.files_deleted) == 2
    assert_consistent(out)


def test_a_failed_export_leaves_a_consistent_tree_and_the_next_one_completes_it(tmp_path, mirror):
    publish(mirror, "alpha", "1.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    before = snapshot(out)
    first = publish(mirror, "beta", "1.0")
    broken = publish(mirror, "gamma", "1.0")
    mirror.storage.published.delete(broken.sha256)  # the store loses a blob mid-way

    with pytest.raises(ExportError, match=f"files/{broken.sha256}/{broken.filename}"):
        run_export(mirror, out)
    after = snapshot(out)
    assert {k: after[k] for k in before} == before  # no page was written
    assert_consistent(out)
    manifest = json.loads((out / MANIFEST_KEY).read_bytes())
    assert manifest["complete"] is False
    assert f"files/{first.sha256}/{first.filename}" in manifest["projects"]["beta"]["files"]

    copy_blob(mirror.storage.quarantine, broken.sha256, mirror.storage.published)
    report = run_export(mirror, out)
    assert json.loads((out / MANIFEST_KEY).read_bytes())["complete"] is True
    gamma = f"files/{broken.sha256}/{broken.filename}"
    assert report.files_copied == [gamma, f"{gamma}.metadata"]
    assert set(report.pages_written) == pages_of("beta") | pages_of("gamma") | ROOT_PAGES
    assert_consistent(out)


def test_an_export_killed_before_deleting_a_revoked_file_deletes_it_next_time(tmp_path, mirror):
    """Killed after the pages stopped listing a revoked file but before the file went:
    the manifest says the export was not complete, so the next one compares every
    project's files rather than trusting unchanged listings."""
    publish(mirror, "demo", "1.0")
    bad = publish(mirror, "demo", "2.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    bad_key = f"files/{bad.sha256}/{bad.filename}"
    kept = (out / bad_key).read_bytes()
    mirror.publisher.revoke([bad], actor="test", reason="advisory")
    run_export(mirror, out)
    # The tree and manifest as the kill would have left them (the checkpoint after step 3).
    (out / bad_key).parent.mkdir(parents=True)
    (out / bad_key).write_bytes(kept)
    manifest = json.loads((out / MANIFEST_KEY).read_bytes())
    manifest["complete"] = False
    manifest["projects"]["demo"]["files"].append(bad_key)
    (out / MANIFEST_KEY).write_text(json.dumps(manifest))

    report = run_export(mirror, out)
    assert report.files_deleted == [bad_key] and report.pages_written == []
    assert not (out / bad_key).exists()
    assert json.loads((out / MANIFEST_KEY).read_bytes())["complete"] is True


def test_hardlink_shares_the_published_blob_and_leftover_temp_files_are_cleaned(tmp_path, mirror):
    row = publish(mirror, "demo", "1.0")
    out = tmp_path / "out"
    (out / ".qmirror-tmp").mkdir(parents=True)
    (out / ".qmirror-tmp" / "123-1").write_bytes(b"half a page from a killed export")
    target = open_target(str(out), base=tmp_path, hardlink=True)
    export(mirror.db, mirror.storage.published, target)
    exported = out / f"files/{row.sha256}/{row.filename}"
    blob = mirror.storage.published.local_path(row.sha256)
    assert os.stat(exported).st_ino == os.stat(blob).st_ino
    assert list((out / ".qmirror-tmp").iterdir()) == []


def test_full_rewrites_everything(tmp_path, mirror):
    publish(mirror, "demo", "1.0")
    out = tmp_path / "out"
    run_export(mirror, out)
    (out / "simple/demo/index.html").write_text("tampered")
    report = run_export(mirror, out, full=True)
    assert len(report.pages_written) == 4 and len(report.files_copied) == 2
    assert (out / "simple/demo/index.html").read_bytes() == mirror.db.page(
        "simple/demo/index.html"
    ).body


# ---------------------------------------------------------------- the command


def cli(config: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(config), "export", *args])


@pytest.fixture
def config(tmp_path, mirror):
    publish(mirror, "demo", "1.0")
    path = tmp_path / "qmirror.toml"
    path.write_text(f'data_dir = "{mirror.settings.data_dir}"\n')
    return path


def test_export_goes_to_the_configured_directory_by_default(config, mirror):
    result = cli(config)
    assert result.exit_code == 0, result.output
    out = mirror.settings.data_dir / "export"
    assert result.output.startswith(f"exported to {out}: pages 4 written, 0 deleted")
    assert "files 2 copied, 0 deleted (2 in all)" in result.output
    assert_consistent(out)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: str(d / "a-file"), "a-file: not a directory"),
        (lambda d: "ftp://host/dir", "--to ftp://host/dir: unknown target ftp://"),
        (lambda d: "s3://Bad_Bucket/prefix", "is not an S3 bucket name"),
        (lambda d: "s3://bucket/a//b", "the prefix has an empty"),
        (lambda d: str(d / "busy"), "busy: not empty and not an export (no .qmirror-export.json)"),
        (lambda d: str(d / "corrupt"), "not a valid export manifest (Expecting property name"),
        (lambda d: str(d / "tampered"), "a key outside simple/ and files/"),
    ],
)
def test_a_bad_target_is_a_clear_one_line_error(tmp_path, config, make, message):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("someone else's")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / MANIFEST_KEY).write_text("{not json")
    (tmp_path / "tampered").mkdir()
    (tmp_path / "tampered" / "keep.txt").write_text("must survive")
    (tmp_path / "tampered" / MANIFEST_KEY).write_text(
        json.dumps({"format": 1, "files_url": None, "complete": True, "pages": {},
                    "projects": {"demo": {"listing": "", "files": ["keep.txt"]}}})
    )  # fmt: skip
    result = cli(config, "--to", make(tmp_path))
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "busy" / "simple").exists()
    assert not (tmp_path / "corrupt" / "simple").exists()
    assert (tmp_path / "tampered" / "keep.txt").read_text() == "must survive"


def test_a_bad_files_url_and_a_second_export_at_once_are_refused(tmp_path, config, mirror):
    result = cli(config, "--to", str(tmp_path / "out"), "--files-url", "ftp://x/")
    assert result.exit_code == 1 and "--files-url 'ftp://x/': not an http(s) URL" in result.output
    with export_lock(mirror.settings.data_dir):
        busy = cli(config, "--to", str(tmp_path / "out"))
    assert busy.exit_code == 1 and "another export is running" in busy.output


def test_files_url_from_the_config_file(tmp_path, config):
    config.write_text(config.read_text() + '\n[export]\nfiles_url = "https://cdn.example/files"\n')
    result = cli(config, "--to", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out/simple/demo/index.json").read_text()
    assert '"url":"https://cdn.example/files/' in page


def test_provenance_objects_are_exported_next_to_their_files(mirror, tmp_path):
    from mirror.publish import provenance_key

    row = add(mirror, "attested", "1.0")
    document = b'{"version": 1, "attestation_bundles": []}'
    mirror.storage.quarantine.put_stream(provenance_key(row.sha256), io.BytesIO(document))
    mirror.db.save_provenance(
        row.id,
        provenance_sha256=hashlib.sha256(document).hexdigest(),
        publishers=[("GitHub", "acme/attested", "release.yml", "")],
        verification="unverified",
        detail="",
    )
    mirror.publisher.approve([row], actor="test", reason="ok")
    out = tmp_path / "out"
    run_export(mirror, out)
    (entry,) = json.loads((out / "simple/attested/index.json").read_bytes())["files"]
    assert entry["provenance"].endswith(".provenance")
    assert (out / "simple/attested" / entry["provenance"]).resolve().read_bytes() == document
    assert_consistent(out)
