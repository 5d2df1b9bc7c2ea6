"""``qmirror export --to s3://bucket/prefix`` against a real S3-compatible server (moto's,
a subprocess on loopback, reached by boto3 over HTTP): every object's bytes, Content-Type
and Cache-Control; the S3 tree equal to the directory export's, byte for byte; which
requests an incremental export sends (seen on the client's own event hooks); revokes; an
endpoint that stops mid-export; server-side and multipart copies; real pip installing
from the bucket's REST endpoint itself; and the command and its config."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import threading
from collections import Counter
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from click.testing import CliRunner

from mirror.cli import main
from mirror.config import ConfigError, StorageSettings, settings_from_mapping
from mirror.export import (
    FILE_CACHE,
    MANIFEST_KEY,
    PAGE_CACHE,
    ExportError,
    S3Target,
    export,
    open_configured_target,
    open_target,
)
from mirror.publish import Publisher, provenance_key
from mirror.s3 import s3_client, s3_storage
from mirror.storage import copy_blob, local_storage
from mirror.web.pages import PAGE_MAX_AGE
from tests.support.builders import make_wheel
from tests.support.live import make_venv, pip, pip_install, qmirror, write_config
from tests.support.s3_server import S3Server
from tests.test_export import ROOT_PAGES, add, pages_of, publish
from tests.test_index import Mirror

MiB = 1024 * 1024
PREFIX = "pypi/"


def s3_pages_of(project: str) -> set[str]:
    """A project's page objects: both pages and the HTML one again at the directory key."""
    return pages_of(project) | {f"simple/{project}/"}


S3_ROOT = ROOT_PAGES | {"simple/"}


class Requests:
    """The requests a boto3 client sends, by operation and key: botocore's own event
    hooks on the client under test, observing (nothing is answered or changed)."""

    OPERATIONS = (
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "DeleteObject",
    )

    def __init__(self, client, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.seen: list[tuple[str, str]] = []
        for operation in self.OPERATIONS:
            client.meta.events.register(f"before-parameter-build.s3.{operation}", self._record)

    def _record(self, model, params, **_kwargs) -> None:
        key = params.get("Key", "")
        self.seen.append((model.name, key.removeprefix(self.prefix)))

    def keys(self, *operations: str, manifest: bool = False) -> list[str]:
        return [
            key for op, key in self.seen if op in operations and (manifest or key != MANIFEST_KEY)
        ]

    def clear(self) -> None:
        self.seen.clear()


def public_bucket(s3) -> str:
    """A bucket anyone may GET from, the way a public export bucket is set up (moto, like
    S3, refuses anonymous reads otherwise)."""
    bucket = s3.create_bucket()
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    s3.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return bucket


def our_client(endpoint_url: str):
    """The mirror's own client construction (credentials from the environment)."""
    return s3_client(StorageSettings(endpoint_url=endpoint_url, addressing_style="path"))


@pytest.fixture
def mirror(tmp_path):
    return Mirror(tmp_path)


@pytest.fixture
def bucket(s3):
    return public_bucket(s3)


@pytest.fixture
def client(s3):
    return our_client(s3.endpoint_url)


@pytest.fixture
def requests(client):
    return Requests(client)


def s3_stored_mirror(tmp_path, s3, client, **storage) -> Mirror:
    """A mirror whose quarantine and published stores are in a bucket of their own."""
    mirror = Mirror(tmp_path)
    settings = StorageSettings(
        backend="s3", bucket=s3.create_bucket(), endpoint_url=s3.endpoint_url,
        addressing_style="path", **storage,
    )  # fmt: skip
    mirror.storage = s3_storage(settings, client)
    mirror.publisher = Publisher(mirror.db, mirror.storage)
    return mirror


def s3_export(mirror, client, bucket, prefix=PREFIX, **kwargs):
    return export(mirror.db, mirror.storage.published, S3Target(client, bucket, prefix), **kwargs)


def objects(s3, bucket: str, prefix: str = PREFIX) -> dict[str, bytes]:
    """Every object under the prefix (but the manifest): key -> bytes."""
    client = s3.client()
    return {
        key.removeprefix(prefix): client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in s3.keys(bucket, prefix)
        if key != prefix + MANIFEST_KEY
    }


def manifest(s3, bucket: str, prefix: str = PREFIX) -> dict:
    body = s3.client().get_object(Bucket=bucket, Key=prefix + MANIFEST_KEY)["Body"].read()
    return json.loads(body)


def directory_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
        and path.name != MANIFEST_KEY
        and not path.relative_to(root).as_posix().startswith(".qmirror-tmp")
    }


def assert_consistent(s3, bucket: str, prefix: str = PREFIX) -> None:
    """What a reader of the bucket gets is whole: the root lists exactly the projects
    whose pages are there, and every file a page lists is there with its bytes."""
    tree = objects(s3, bucket, prefix)
    listed = {p["name"] for p in json.loads(tree["simple/index.json"])["projects"]}
    present = {key.split("/")[1] for key in tree if key.endswith("/index.json")} - {"index.json"}
    assert listed == present
    for project in present:
        assert tree[f"simple/{project}/"] == tree[f"simple/{project}/index.html"]
        for entry in json.loads(tree[f"simple/{project}/index.json"])["files"]:
            key = entry["url"].removeprefix("../../")
            assert hashlib.sha256(tree[key]).hexdigest() == entry["hashes"]["sha256"]
            if "core-metadata" in entry:
                metadata = tree[f"{key}.metadata"]
                assert hashlib.sha256(metadata).hexdigest() == entry["core-metadata"]["sha256"]
    assert tree["simple/"] == tree["simple/index.html"]


def attested(mirror, name: str, version: str):
    """An approved file with a provenance document next to it."""
    row = add(mirror, name, version)
    document = json.dumps({"version": 1, "attestation_bundles": [], "for": name}).encode()
    mirror.storage.quarantine.put_stream(provenance_key(row.sha256), io.BytesIO(document))
    mirror.db.save_provenance(
        row.id,
        provenance_sha256=hashlib.sha256(document).hexdigest(),
        publishers=[("GitHub", f"acme/{name}", "release.yml", "")],
        verification="unverified",
        detail="",
    )
    mirror.publisher.approve([row], actor="test", reason="ok")
    return mirror.db.file_by_id(row.id)


# ---------------------------------------------------------------- a full export


def test_a_full_export_puts_every_object_with_its_type_cache_and_the_directory_exports_bytes(
    tmp_path, mirror, s3, bucket, client, requests
):
    publish(mirror, "helper", "1.0")
    publish(mirror, "demo", "1.0", requires_dist=["helper>=1"])
    publish(mirror, "demo", "1.1", sdist=True)
    signed = attested(mirror, "signed", "1.0")
    held = add(mirror, "demo", "2.0")
    rejected = add(mirror, "demo", "3.0")
    mirror.publisher.reject([rejected], actor="test", reason="bad")
    revoked = publish(mirror, "demo", "4.0")
    mirror.publisher.revoke([revoked], actor="test", reason="bad")
    secret = add(mirror, "secret", "1.0")  # a project with nothing servable

    report = s3_export(mirror, client, bucket)
    target = f"s3://{bucket}/pypi"
    assert report.line().startswith(f"exported to {target}: pages 8 written")
    tree = objects(s3, bucket)

    # The same tree as a directory export, byte for byte, plus the directory-key pages.
    directory = tmp_path / "dir"
    export(mirror.db, mirror.storage.published, open_target(str(directory), base=tmp_path))
    on_disk = directory_tree(directory)
    directory_keys = {"simple/", "simple/demo/", "simple/helper/", "simple/signed/"}
    assert set(tree) == set(on_disk) | directory_keys
    assert {key: tree[key] for key in on_disk} == on_disk
    for key in directory_keys:
        assert tree[key] == tree[f"{key}index.html"]
    assert f"files/{signed.sha256}/{signed.filename}.provenance" in tree
    assert_consistent(s3, bucket)

    # What each object says about itself: an S3 website or CDN sends these as they are.
    assert PAGE_CACHE == f"max-age={PAGE_MAX_AGE}, public"  # the app's own pages' max-age
    raw = s3.client()
    expected = {
        "simple/index.html": ("text/html; charset=utf-8", PAGE_CACHE),
        "simple/": ("text/html; charset=utf-8", PAGE_CACHE),
        "simple/demo/": ("text/html; charset=utf-8", PAGE_CACHE),
        "simple/demo/index.json": ("application/vnd.pypi.simple.v1+json", PAGE_CACHE),
        MANIFEST_KEY: ("application/json", "no-store"),
    }
    for key in tree:
        if key.startswith("files/"):
            kind = key.rsplit(".", 1)[-1]
            expected[key] = (
                {
                    "metadata": "text/plain; charset=utf-8",
                    "provenance": "application/vnd.pypi.integrity.v1+json",
                }.get(kind, "application/octet-stream"),
                FILE_CACHE,
            )
    for key, (content_type, cache_control) in expected.items():
        head = raw.head_object(Bucket=bucket, Key=PREFIX + key)
        assert (head["ContentType"], head["CacheControl"]) == (content_type, cache_control), key
    assert FILE_CACHE == "public, max-age=31536000, immutable"

    # Nothing quarantined, rejected or revoked was ever sent, let alone left there.
    sent = requests.keys(*Requests.OPERATIONS, manifest=True)
    everything = b"".join(key.encode() + body for key, body in tree.items())
    everything += raw.get_object(Bucket=bucket, Key=PREFIX + MANIFEST_KEY)["Body"].read()
    for row in (held, rejected, revoked, secret):
        assert not [key for key in sent if row.sha256 in key or row.filename in key]
        assert row.sha256.encode() not in everything
        assert row.filename.encode() not in everything
    assert not any(key.startswith("simple/secret") for key in tree)
    assert set(requests.keys("DeleteObject")) == set()


def test_the_target_describes_itself_and_refuses_unsafe_keys(client, bucket):
    assert S3Target(client, bucket, "").describe() == f"s3://{bucket}"
    assert S3Target(client, bucket, "a/b").describe() == f"s3://{bucket}/a/b"
    target = S3Target(client, bucket, "a/b/")
    for key in ("../x", "files//x", "/files/x", "files/./x"):
        with pytest.raises(ExportError, match="unsafe path"):
            target.put_bytes(key, b"x", "text/plain")
    assert target.is_empty()


# ---------------------------------------------------------------- incremental


def test_an_approval_rewrites_only_that_projects_pages_and_a_new_project_the_root(
    mirror, s3, bucket, client, requests
):
    for name in ("alpha", "beta", "gamma"):
        publish(mirror, name, "1.0")
    s3_export(mirror, client, bucket)
    before = {item["Key"]: item["ETag"] for item in s3.client().list_objects_v2(
        Bucket=bucket, Prefix=PREFIX)["Contents"]}  # fmt: skip

    requests.clear()
    again = s3_export(mirror, client, bucket)
    assert requests.seen == [] and again.pages_written == again.files_copied == []

    row = publish(mirror, "beta", "2.0")
    report = s3_export(mirror, client, bucket)
    new_files = {
        f"files/{row.sha256}/{row.filename}",
        f"files/{row.sha256}/{row.filename}.metadata",
    }
    assert set(report.pages_written) == pages_of("beta")
    assert set(report.files_copied) == new_files
    puts = requests.keys("PutObject")
    assert sorted(puts) == sorted(new_files | s3_pages_of("beta"))  # each object once
    assert requests.keys("DeleteObject") == []
    # The manifest: marked unfinished before the first file, finished after the last page.
    manifest_puts = [key for op, key in requests.seen if key == MANIFEST_KEY]
    assert 2 <= len(manifest_puts) <= 4
    assert requests.seen[0] == ("PutObject", MANIFEST_KEY)
    assert requests.seen[-1] == ("PutObject", MANIFEST_KEY)
    after = {item["Key"]: item["ETag"] for item in s3.client().list_objects_v2(
        Bucket=bucket, Prefix=PREFIX)["Contents"]}  # fmt: skip
    changed = {key.removeprefix(PREFIX) for key in after if after[key] != before.get(key)}
    assert changed - {MANIFEST_KEY} == new_files | s3_pages_of("beta")

    requests.clear()
    publish(mirror, "newcomer", "1.0")
    report = s3_export(mirror, client, bucket)
    page_puts = [key for key in requests.keys("PutObject") if key.startswith("simple/")]
    assert set(page_puts) == s3_pages_of("newcomer") | S3_ROOT
    assert page_puts[-3:] == ["simple/index.html", "simple/", "simple/index.json"]  # root last
    files_before_pages = requests.keys("PutObject")
    assert all(key.startswith("files/") for key in files_before_pages[:2])
    assert_consistent(s3, bucket)


def test_a_revoke_removes_the_file_its_metadata_and_provenance_and_rewrites_the_pages(
    mirror, s3, bucket, client, requests
):
    keep = publish(mirror, "demo", "1.0")
    bad = attested(mirror, "demo", "2.0")
    only = publish(mirror, "lonely", "1.0")
    s3_export(mirror, client, bucket)
    bad_keys = {f"files/{bad.sha256}/{bad.filename}{s}" for s in ("", ".metadata", ".provenance")}
    assert bad_keys <= set(objects(s3, bucket))

    requests.clear()
    mirror.publisher.revoke([bad, only], actor="test", reason="advisory")
    report = s3_export(mirror, client, bucket)

    only_keys = {f"files/{only.sha256}/{only.filename}{s}" for s in ("", ".metadata")}
    assert set(report.files_deleted) == bad_keys | only_keys
    assert set(report.pages_deleted) == pages_of("lonely")
    assert set(requests.keys("DeleteObject")) == bad_keys | only_keys | s3_pages_of("lonely")
    assert set(requests.keys("PutObject")) == s3_pages_of("demo") | S3_ROOT
    # Pages stop listing a file before the file goes.
    deletes = [key for op, key in requests.seen if op == "DeleteObject"]
    last_page = max(i for i, (op, key) in enumerate(requests.seen) if key.startswith("simple/"))
    first_file = min(i for i, (op, key) in enumerate(requests.seen) if key.startswith("files/"))
    assert last_page < first_file and deletes
    tree = objects(s3, bucket)
    assert not bad_keys & set(tree) and not only_keys & set(tree)
    assert not [key for key in tree if key.startswith("simple/lonely")]
    assert bad.filename.encode() not in tree["simple/demo/"]
    assert keep.filename.encode() in tree["simple/demo/"]
    assert b"lonely" not in tree["simple/"]
    assert_consistent(s3, bucket)


# ---------------------------------------------------------------- failures


def test_an_endpoint_that_stops_mid_export_is_an_error_naming_the_target_and_the_next_completes(
    tmp_path, mirror
):
    """A server of its own, stopped (SIGSTOP) as the first of gamma's objects is sent and
    resumed afterwards, so its state survives: the client waits one second, gives up."""
    with S3Server(tmp_path / "own-s3") as server:
        server_bucket = server.create_bucket()
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=1,
                read_timeout=1,
                retries={"mode": "standard", "total_max_attempts": 1},
            ),
        )
        publish(mirror, "alpha", "1.0")
        export(mirror.db, mirror.storage.published, S3Target(client, server_bucket, PREFIX))
        before = objects(server, server_bucket)
        publish(mirror, "beta", "1.0")
        publish(mirror, "gamma", "1.0")

        stopped = []

        def stop_at_gamma(params, **_kwargs):
            if "gamma" in params["Key"] and not stopped:
                stopped.append(params["Key"])
                os.kill(server.process.pid, signal.SIGSTOP)

        client.meta.events.register("before-parameter-build.s3.PutObject", stop_at_gamma)
        try:
            with pytest.raises(ExportError) as raised:
                export(mirror.db, mirror.storage.published, S3Target(client, server_bucket, PREFIX))
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        client.meta.events.unregister("before-parameter-build.s3.PutObject", stop_at_gamma)
        assert stopped
        message = str(raised.value)  # the copy that failed, not the manifest after it
        assert message.startswith(f"export s3://{server_bucket}/{PREFIX}files/")
        assert "cannot store it: " in message and "127.0.0.1" in message
        assert "\n" not in message

        # Readers still see a whole index: the pages they had, every link resolving.
        during = objects(server, server_bucket)
        assert {key: during[key] for key in before} == before
        assert_consistent(server, server_bucket)
        assert manifest(server, server_bucket)["complete"] is False

        report = export(
            mirror.db, mirror.storage.published, S3Target(client, server_bucket, PREFIX)
        )
        assert set(report.pages_written) == pages_of("beta") | pages_of("gamma") | ROOT_PAGES
        assert manifest(server, server_bucket)["complete"] is True
        assert_consistent(server, server_bucket)
        done = objects(server, server_bucket)
        assert {"simple/beta/", "simple/gamma/"} <= set(done)


def test_a_missing_bucket_is_a_one_line_error_naming_it(mirror, s3, client):
    publish(mirror, "demo", "1.0")
    with pytest.raises(ExportError, match=r"s3://no-such-bucket-here/pypi/.*bucket does not exist"):
        s3_export(mirror, client, "no-such-bucket-here")


# ---------------------------------------------------------------- copies


def test_big_files_are_multipart_and_copied_server_side_from_an_s3_published_store(
    tmp_path, s3, bucket, client
):
    mirror = s3_stored_mirror(tmp_path, s3, client)
    big = make_wheel(mirror.build_dir, "big", "1.0", files={"big/blob.bin": os.urandom(9 * MiB)})
    row = mirror.add(
        big, "big", "1.0", metadata=b"Metadata-Version: 2.1\nName: big\nVersion: 1.0\n"
    )
    mirror.publisher.approve([row], actor="test", reason="ok")
    requests = Requests(client)

    report = s3_export(mirror, client, bucket)
    key = f"files/{row.sha256}/{row.filename}"
    assert key in report.files_copied
    assert report.bytes_written >= big.stat().st_size
    assert key not in requests.keys("PutObject")  # not a byte through this process
    assert requests.keys("CreateMultipartUpload") == [key]
    assert Counter(requests.keys("UploadPartCopy"))[key] == 2  # 8 MiB parts
    assert requests.keys("UploadPart") == []
    head = s3.client().head_object(Bucket=bucket, Key=PREFIX + key)
    assert (head["ContentType"], head["CacheControl"]) == ("application/octet-stream", FILE_CACHE)
    exported = s3.client().get_object(Bucket=bucket, Key=PREFIX + key)["Body"].read()
    assert hashlib.sha256(exported).hexdigest() == row.sha256
    assert_consistent(s3, bucket)

    # From a local published store the same file is uploaded in parts, streamed.
    local = Mirror(tmp_path / "local")
    local_row = local.add(big, "big", "1.0")
    local.publisher.approve([local_row], actor="test", reason="ok")
    other = public_bucket(s3)
    requests.clear()
    s3_export(local, client, other)
    assert requests.keys("CreateMultipartUpload") == [key]
    assert Counter(requests.keys("UploadPart"))[key] == 2
    head = s3.client().head_object(Bucket=other, Key=PREFIX + key)
    assert (head["ContentType"], head["CacheControl"]) == ("application/octet-stream", FILE_CACHE)
    assert s3.pending_uploads(other) == []


def test_a_blob_missing_from_the_s3_published_store_is_an_error_and_the_next_export_goes_on(
    tmp_path, s3, bucket, client
):
    mirror = s3_stored_mirror(tmp_path, s3, client)
    row = publish(mirror, "demo", "1.0")
    mirror.storage.published.delete(row.sha256)
    with pytest.raises(ExportError, match=f"files/{row.sha256}/{row.filename}"):
        s3_export(mirror, client, bucket)
    assert "simple/demo/index.html" not in objects(s3, bucket)
    copy_blob(mirror.storage.quarantine, row.sha256, mirror.storage.published)
    s3_export(mirror, client, bucket)
    assert_consistent(s3, bucket)


# ---------------------------------------------------------------- live: pip


@pytest.mark.live
def test_pip_installs_from_the_buckets_rest_endpoint_itself(tmp_path, mirror, s3, bucket, client):
    """No website hosting, no proxy: pip's --index-url is the bucket's own URL, and the
    directory-key pages answer its ``simple/<project>/`` requests."""
    publish(mirror, "helper", "1.0")
    publish(mirror, "demo", "1.0", requires_dist=["helper>=1"])
    held = add(mirror, "demo", "2.0")
    s3_export(mirror, client, bucket)

    python = make_venv(tmp_path / "venv")
    index_url = f"{s3.endpoint_url}/{bucket}/{PREFIX}simple/"
    installed = pip_install(python, index_url, ["demo"])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    versions = {
        item["name"]: item["version"]
        for item in json.loads(pip(python, "list", "--format=json").stdout)
    }
    assert versions["demo"] == "1.0" and versions["helper"] == "1.0"
    refused = pip_install(python, index_url, [f"demo=={held.version}"])
    assert refused.returncode != 0


# ---------------------------------------------------------------- the command


def s3_config(tmp_path, mirror, s3, bucket: str, **export_keys) -> Path:
    return write_config(
        tmp_path / "qmirror.toml",
        mirror.settings.data_dir,
        "http://127.0.0.1:9/simple/",
        storage={
            "backend": "s3",
            "bucket": bucket,
            "prefix": "store",
            "endpoint_url": s3.endpoint_url,
            "addressing_style": "path",
        },
        **({"export": export_keys} if export_keys else {}),
    )


def test_the_command_exports_to_s3_with_the_storage_client_and_config(tmp_path, s3, client):
    storage_bucket = s3.create_bucket()
    target_bucket = public_bucket(s3)
    mirror = Mirror(tmp_path)
    settings = StorageSettings(
        backend="s3", bucket=storage_bucket, prefix="store/", endpoint_url=s3.endpoint_url,
        addressing_style="path",
    )  # fmt: skip
    mirror.storage = s3_storage(settings, client)
    mirror.publisher = Publisher(mirror.db, mirror.storage)
    publish(mirror, "demo", "1.0")

    config = s3_config(tmp_path, mirror, s3, storage_bucket, to=f"s3://{target_bucket}/site")
    result = CliRunner().invoke(main, ["--config", str(config), "export"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"exported to s3://{target_bucket}/site: pages 4 written")
    assert "files 2 copied" in result.output
    assert_consistent(s3, target_bucket, "site/")

    # --to wins over the config; the quarantine's own prefix is refused.
    other = public_bucket(s3)
    result = CliRunner().invoke(main, ["--config", str(config), "export", "--to", f"s3://{other}"])
    assert result.exit_code == 0, result.output
    assert_consistent(s3, other, "")
    for spec in (f"s3://{storage_bucket}", f"s3://{storage_bucket}/store"):
        refused = CliRunner().invoke(main, ["--config", str(config), "export", "--to", spec])
        assert refused.exit_code == 1
        assert f"holds the quarantine (s3://{storage_bucket}/store/quarantine/)" in refused.output
        assert refused.output.count("\n") == 1
    assert s3.keys(storage_bucket, "store/simple") == []


def test_the_export_shares_the_storage_client_unless_export_names_another_endpoint(
    tmp_path, s3, client
):
    storage_bucket = s3.create_bucket()
    base = {
        "data_dir": str(tmp_path / "data"),
        "storage": {
            "backend": "s3", "bucket": storage_bucket, "endpoint_url": s3.endpoint_url,
            "addressing_style": "path",
        },
    }  # fmt: skip
    settings = settings_from_mapping(base, "test.toml")
    published = s3_storage(settings.storage, client).published
    target = open_configured_target("s3://elsewhere/x", settings, published, base=tmp_path)
    assert isinstance(target, S3Target) and target.client is client

    other = settings_from_mapping(
        {**base, "export": {"endpoint_url": "http://127.0.0.1:9", "region": "eu-west-1"}}, "t.toml"
    )
    target = open_configured_target("s3://elsewhere/x", other, published, base=tmp_path)
    assert isinstance(target, S3Target) and target.client is not client
    assert target.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert target.client.meta.region_name == "eu-west-1"
    # With another endpoint the quarantine bucket is another bucket: not refused.
    open_configured_target(f"s3://{storage_bucket}", other, published, base=tmp_path)

    local = settings_from_mapping({"data_dir": str(tmp_path / "data")}, "test.toml")
    target = open_configured_target(
        "s3://elsewhere", local, local_storage(tmp_path / "data").published, base=tmp_path
    )
    assert isinstance(target, S3Target) and target.client is not client


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("s3://Bad_Bucket/x", "export.to: 'Bad_Bucket' is not an S3 bucket name"),
        ("s3:///x", "export.to: 's3:///x': no bucket"),
        ("s3://bucket/a/../b", "export.to: 's3://bucket/a/../b': the prefix has an empty"),
        ("", "export.to: empty"),
    ],
)
def test_a_bad_export_target_in_the_config_names_the_key(tmp_path, to, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings_from_mapping({"export": {"to": to}}, "test.toml")


def test_export_endpoint_and_region_are_config_keys(tmp_path):
    settings = settings_from_mapping(
        {"export": {"to": "s3://bucket/p", "endpoint_url": "https://s3.example/", "region": "x"}},
        "test.toml",
    )
    assert settings.export.endpoint_url == "https://s3.example"
    assert settings.export.region == "x"
    with pytest.raises(
        ConfigError, match=re.escape("export.endpoint_url: 'ftp://x' is not an http")
    ):
        settings_from_mapping({"export": {"endpoint_url": "ftp://x"}}, "test.toml")


@pytest.mark.live
def test_qmirror_export_to_s3_as_a_subprocess(tmp_path, mirror, s3, bucket):
    """The command as cron runs it: credentials from the environment only."""
    publish(mirror, "demo", "1.0")
    config = write_config(
        tmp_path / "qmirror.toml",
        mirror.settings.data_dir,
        "http://127.0.0.1:9/simple/",
        export={"to": f"s3://{bucket}/pypi", "endpoint_url": s3.endpoint_url},
    )
    result = qmirror(config, "export")
    assert result.stdout.startswith(f"exported to s3://{bucket}/pypi: pages 4 written")
    assert_consistent(s3, bucket)


def test_files_go_up_several_at_a_time_and_pages_only_after_all_of_them(mirror, client, bucket):
    """An object store is latency-bound: copies overlap (at most copy_concurrency), and
    still no page is sent before every file it could list is whole."""
    for index in range(6):
        publish(mirror, f"p{index}", "1.0")
    lock = threading.Lock()
    in_flight, most, order = Counter(), Counter(), []

    def started(params, **_kwargs):
        with lock:
            in_flight["n"] += 1
            most["n"] = max(most["n"], in_flight["n"])
            order.append(params["Key"].removeprefix(PREFIX))

    def finished(**_kwargs):
        with lock:
            in_flight["n"] -= 1

    client.meta.events.register("before-parameter-build.s3.PutObject", started)
    client.meta.events.register("after-call.s3.PutObject", finished)
    s3_export(mirror, client, bucket)
    assert 1 < most["n"] <= S3Target.copy_concurrency
    first_page = min(i for i, key in enumerate(order) if key.startswith("simple/"))
    last_file = max(i for i, key in enumerate(order) if key.startswith("files/"))
    assert last_file < first_page
