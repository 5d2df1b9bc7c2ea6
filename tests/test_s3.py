"""S3 storage against a real S3-compatible server (moto's, a subprocess on loopback,
reached by boto3 over HTTP): the store's verbs, multipart uploads, failures that leave
nothing behind, error translation, presigned URLs, the storage factory, the config keys,
and the file route in both download modes (Flask test client)."""

import hashlib
import io
import os
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.http import parse_options_header

from mirror.config import ConfigError, load_settings, settings_from_mapping
from mirror.db import Database, NewFile
from mirror.publish import Publisher, metadata_key
from mirror.s3 import TRANSFER, PresigningS3Store, S3Store, s3_storage
from mirror.storage import (
    BlobNotFound,
    LocalStore,
    Presigner,
    StorageError,
    build_storage,
    copy_blob,
    local_storage,
)
from mirror.web import create_app
from tests.support.builders import make_wheel
from tests.support.live import free_port

KEY = "ab" * 32  # a sha256-shaped key
MiB = 1024 * 1024


def storage_settings(s3, bucket: str, tmp_path: Path, **storage):
    return settings_from_mapping(
        {
            "data_dir": str(tmp_path / "data"),
            "storage": {
                "backend": "s3",
                "bucket": bucket,
                "endpoint_url": s3.endpoint_url,
                **storage,
            },
        },
        "test.toml",
    )


@pytest.fixture
def bucket(s3):
    return s3.create_bucket()


@pytest.fixture
def storage(s3, bucket, tmp_path):
    return build_storage(storage_settings(s3, bucket, tmp_path, prefix="mirror"))


def write_random(path: Path, size: int) -> str:
    """A file of ``size`` pseudo-random bytes, written in chunks; returns its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        block = os.urandom(MiB)
        for index in range(0, size, MiB):
            chunk = bytes([index // MiB % 251]) + block[1 : min(MiB, size - index)]
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_stream(stream) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(256 * 1024):
        digest.update(chunk)
    return digest.hexdigest()


class GeneratedStream(io.RawIOBase):
    """``size`` bytes made on the fly (never held whole), failing after ``fail_after``."""

    def __init__(self, size: int, fail_after: int | None = None, error=OSError):
        self.size = size
        self.fail_after = fail_after
        self.error = error
        self.sent = 0
        self.digest = hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise self.error("the source went away")
        n = min(len(buffer), self.size - self.sent)
        data = bytes([self.sent // MiB % 256]) * n
        buffer[:n] = data
        self.digest.update(data)
        self.sent += n
        return n


# ---------------------------------------------------------------- the store's verbs


def test_put_open_exists_delete_round_trip(s3, bucket, storage):
    store = storage.published
    assert not store.exists(KEY)
    store.put_stream(KEY, io.BytesIO(b"wheel bytes"))
    assert store.exists(KEY)
    assert store.local_path(KEY) is None
    with store.open(KEY) as stream:
        assert stream.read() == b"wheel bytes"
    # The published area is its own prefix; nothing landed in quarantine.
    assert s3.keys(bucket) == [f"mirror/published/{KEY}"]
    assert not storage.quarantine.exists(KEY)

    store.delete(KEY)
    assert not store.exists(KEY)
    store.delete(KEY)  # a missing key is not an error
    assert s3.keys(bucket) == []


def test_put_file_uploads_and_consumes_the_source(s3, bucket, storage, tmp_path):
    source = tmp_path / "download"
    source.write_bytes(b"fetched")
    storage.quarantine.put_file(KEY, source)
    assert not source.exists()
    assert s3.keys(bucket) == [f"mirror/quarantine/{KEY}"]
    with storage.quarantine.open(KEY) as stream:
        assert stream.read() == b"fetched"


def test_a_large_file_goes_up_in_parts_and_streams_back(s3, bucket, storage, tmp_path):
    source = tmp_path / "big.whl"
    size = 20 * MiB + 12345
    expected = write_random(source, size)
    storage.quarantine.put_file(KEY, source)

    head = s3.client().head_object(Bucket=bucket, Key=f"mirror/quarantine/{KEY}")
    assert head["ContentLength"] == size
    parts = -(-size // TRANSFER.multipart_chunksize)
    assert head["ETag"].strip('"').endswith(f"-{parts}")  # a multipart upload's ETag
    with storage.quarantine.open(KEY) as stream:
        assert sha256_of_stream(stream) == expected


def test_a_large_stream_goes_up_in_parts(s3, bucket, storage):
    source = GeneratedStream(20 * MiB)
    storage.published.put_stream(KEY, source)
    head = s3.client().head_object(Bucket=bucket, Key=f"mirror/published/{KEY}")
    assert head["ContentLength"] == 20 * MiB
    assert "-" in head["ETag"]
    with storage.published.open(KEY) as stream:
        assert sha256_of_stream(stream) == source.digest.hexdigest()


@pytest.mark.parametrize(
    ("fail_after", "error", "raised"),
    [
        (12 * MiB, OSError, StorageError),  # midway through a multipart upload
        (0, OSError, StorageError),  # before anything was sent
        (12 * MiB, KeyError, KeyError),  # not a storage failure: the caller's error, as is
    ],
)
def test_a_failed_upload_leaves_no_object_and_no_pending_parts(
    s3, bucket, storage, fail_after, error, raised
):
    with pytest.raises(raised) as caught:
        storage.published.put_stream(KEY, GeneratedStream(20 * MiB, fail_after, error))
    if raised is StorageError:
        assert f"published store: s3://{bucket}/mirror/published/{KEY}" in str(caught.value)
    assert not storage.published.exists(KEY)
    assert s3.keys(bucket) == []
    assert s3.pending_uploads(bucket) == []


def test_a_failed_upload_keeps_what_was_there(s3, bucket, storage):
    storage.published.put_stream(KEY, io.BytesIO(b"first"))
    with pytest.raises(StorageError):
        storage.published.put_stream(KEY, GeneratedStream(20 * MiB, fail_after=9 * MiB))
    with storage.published.open(KEY) as stream:
        assert stream.read() == b"first"
    assert s3.pending_uploads(bucket) == []


def test_a_missing_key_is_blob_not_found(s3, bucket, storage):
    with pytest.raises(BlobNotFound) as caught:
        storage.published.open(KEY)
    where = f"published store: s3://{bucket}/mirror/published/{KEY}"
    assert str(caught.value) == f"{where}: no such blob"
    assert storage.published.exists(KEY) is False


def test_a_missing_bucket_is_a_storage_error_naming_store_and_key(s3, tmp_path):
    storage = build_storage(storage_settings(s3, "no-such-bucket-here", tmp_path))
    with pytest.raises(StorageError) as caught:
        storage.quarantine.put_stream(KEY, io.BytesIO(b"x"))
    message = str(caught.value)
    assert message.startswith(f"quarantine store: s3://no-such-bucket-here/quarantine/{KEY}:")
    assert "bucket does not exist" in message
    with pytest.raises(StorageError, match="bucket does not exist"):
        storage.quarantine.open(KEY)


def test_an_unreachable_endpoint_is_a_storage_error(s3, tmp_path):
    settings = settings_from_mapping(
        {"storage": {"backend": "s3", "bucket": "some-bucket",
                     "endpoint_url": f"http://127.0.0.1:{free_port()}"}},
        "test.toml",
    )  # fmt: skip
    store = build_storage(settings).published
    with pytest.raises(StorageError) as caught:
        store.open(KEY)
    assert not isinstance(caught.value, BlobNotFound)
    where = f"published store: s3://some-bucket/published/{KEY}"
    assert str(caught.value).startswith(f"{where}: cannot read it:")
    assert "Could not connect" in str(caught.value)


def test_keys_that_are_not_digests_are_refused(storage):
    with pytest.raises(StorageError, match="invalid blob key"):
        storage.published.open("../../etc/passwd")


def test_copies_between_s3_stores_are_server_side(s3, bucket, storage, tmp_path):
    storage.quarantine.put_stream(KEY, io.BytesIO(b"approved bytes"))
    assert storage.published.copy_from(storage.quarantine, KEY) is True
    with storage.published.open(KEY) as stream:
        assert stream.read() == b"approved bytes"
    # From another kind of store the copy streams instead.
    local = LocalStore(tmp_path / "local", "local")
    other = "cd" * 32
    local.put_stream(other, io.BytesIO(b"from disk"))
    assert storage.published.copy_from(local, other) is False
    copy_blob(local, other, storage.published)
    with storage.published.open(other) as stream:
        assert stream.read() == b"from disk"


def test_only_the_published_store_presigns(s3, bucket, storage):
    assert isinstance(storage.published, Presigner)
    assert not isinstance(storage.quarantine, Presigner)
    storage.published.put_stream(KEY, io.BytesIO(b"presigned"))
    url = storage.published.presigned_url(
        KEY,
        expires=60,
        content_type="application/octet-stream",
        content_disposition='attachment; filename="alpha-1.0-py3-none-any.whl"',
    )
    assert url.startswith(f"{s3.endpoint_url}/{bucket}/mirror/published/{KEY}?")
    assert "X-Amz-Expires=60" in url  # SigV4
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"presigned"
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="alpha-1.0-py3-none-any.whl"'
        )


def test_a_quarantine_bucket_of_its_own(s3, bucket, tmp_path):
    private = s3.create_bucket("qmirror-private")
    settings = storage_settings(s3, bucket, tmp_path, quarantine_bucket=private)
    storage = build_storage(settings)
    storage.quarantine.put_stream(KEY, io.BytesIO(b"held"))
    copy_blob(storage.quarantine, KEY, storage.published)
    assert s3.keys(private) == [f"quarantine/{KEY}"]
    assert s3.keys(bucket) == [f"published/{KEY}"]


def test_build_storage_picks_the_backend(s3, bucket, tmp_path):
    local = build_storage(settings_from_mapping({"data_dir": str(tmp_path / "data")}))
    assert isinstance(local.published, LocalStore)
    assert local.published.root == tmp_path / "data" / "published"
    remote = build_storage(storage_settings(s3, bucket, tmp_path, prefix="team/pypi"))
    assert type(remote.quarantine) is S3Store
    assert type(remote.published) is PresigningS3Store
    assert (remote.quarantine.prefix, remote.published.prefix) == (
        "team/pypi/quarantine/",
        "team/pypi/published/",
    )


def test_credentials_come_from_the_boto3_chain(s3, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")
    storage = build_storage(storage_settings(s3, bucket, tmp_path))
    url = storage.published.presigned_url(
        KEY, expires=60, content_type="text/plain", content_disposition="inline"
    )
    credential = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Credential"]
    assert credential[0].startswith("from-the-environment/")


# ---------------------------------------------------------------- config


def test_the_s3_keys_load_and_normalize(tmp_path):
    config = tmp_path / "qmirror.toml"
    config.write_text(
        '[storage]\nbackend = "s3"\nbucket = "acme-pypi"\nquarantine_bucket = "acme-held"\n'
        'prefix = "mirror"\nendpoint_url = "http://127.0.0.1:9000/"\nregion = "eu-west-1"\n'
        'addressing_style = "path"\ndownloads = "redirect"\npresign_expiry = 120\n'
    )
    storage = load_settings(config, environ={"QMIRROR_STORAGE_PRESIGN_EXPIRY": "90"}).storage
    assert storage.bucket == "acme-pypi" and storage.quarantine_bucket == "acme-held"
    assert storage.prefix == "mirror/"
    assert storage.endpoint_url == "http://127.0.0.1:9000"
    assert (storage.region, storage.addressing_style) == ("eu-west-1", "path")
    assert (storage.downloads, storage.presign_expiry) == ("redirect", 90)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"backend": "s3"}, "storage.bucket: required when storage.backend = 's3'"),
        ({"backend": "gcs"}, "storage.backend: 'gcs' is not one of local, s3"),
        ({"backend": "s3", "bucket": "Bad_Bucket"}, "storage.bucket: 'Bad_Bucket' is not an S3"),
        ({"backend": "s3", "bucket": "b-1", "secret_access_key": "x"},
         "unknown key storage.secret_access_key"),
        ({"backend": "s3", "bucket": "b-1", "endpoint_url": "ftp://x"},
         "storage.endpoint_url: 'ftp://x' is not an http(s) URL"),
        ({"backend": "s3", "bucket": "b-1", "prefix": "/abs"}, "storage.prefix: '/abs'"),
        ({"backend": "s3", "bucket": "b-1", "downloads": "proxy"},
         "storage.downloads: 'proxy' is not one of stream, redirect"),
        ({"backend": "s3", "bucket": "b-1", "presign_expiry": 0},
         "storage.presign_expiry: must be at least 1"),
        ({"backend": "s3", "bucket": "b-1", "presign_expiry": 8 * 86400},
         "storage.presign_expiry: must be at most 604800"),
        ({"backend": "s3", "bucket": "b-1", "addressing_style": "dns"},
         "storage.addressing_style: 'dns' is not one of auto, path, virtual"),
        ({"backend": "s3", "bucket": "b-1", "quarantine_bucket": "b-1"},
         "storage.quarantine_bucket: same as storage.bucket"),
        ({"downloads": "redirect"}, "storage.downloads: 'redirect' needs storage.backend = 's3'"),
    ],
)  # fmt: skip
def test_bad_storage_config_names_the_key(storage, message):
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"storage": storage}, "qmirror.toml")
    assert str(caught.value).startswith("qmirror.toml: ")
    assert message in str(caught.value)


def test_a_missing_bucket_from_the_environment_is_caught_too(tmp_path):
    with pytest.raises(ConfigError, match=r"environment: storage\.bucket: required"):
        load_settings(environ={"QMIRROR_STORAGE_BACKEND": "s3"})


# ---------------------------------------------------------------- the file route


class S3Mirror:
    """An in-process mirror (Flask test client) over S3 storage, one approved and one
    held file."""

    def __init__(self, s3, bucket: str, tmp_path: Path, downloads: str):
        self.settings = storage_settings(s3, bucket, tmp_path, downloads=downloads)
        self.db = Database(self.settings.database_path)
        self.db.migrate()
        self.storage = s3_storage(self.settings.storage)
        build = tmp_path / "build"
        build.mkdir()
        self.approved = self.add(make_wheel(build, "alpha", "1.0"), "alpha", "1.0")
        self.held = self.add(make_wheel(build, "alpha", "2.0"), "alpha", "2.0")
        Publisher(self.db, self.storage).approve([self.approved], actor="test", reason="ok")
        self.app = create_app(self.settings, db=self.db, storage=self.storage)
        self.client = self.app.test_client()

    def add(self, path: Path, project: str, version: str):
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        self.storage.quarantine.put_stream(sha256, io.BytesIO(data))
        metadata = b"Metadata-Version: 2.1\nName: alpha\nVersion: " + version.encode() + b"\n"
        self.storage.quarantine.put_stream(metadata_key(sha256), io.BytesIO(metadata))
        self.db.ensure_project(project, project, "configured")
        file_id = self.db.add_file(
            NewFile(
                project=project, version=version, filename=path.name, kind="wheel",
                sha256=sha256, size=len(data), upstream_url=f"https://up.example/{path.name}",
                upload_time=datetime(2025, 1, 1, tzinfo=UTC), requires_python=None, yanked=None,
                upstream_core_metadata=None, metadata_sha256=hashlib.sha256(metadata).hexdigest(),
                requires_dist=[],
            ),
            [],
            now=datetime.now(UTC),
        )  # fmt: skip
        return self.db.file_by_id(file_id)

    def url(self, row, suffix: str = "") -> str:
        return f"/files/{row.sha256}/{row.filename}{suffix}"


def test_stream_mode_sends_the_bytes_through_the_app(s3, bucket, tmp_path):
    mirror = S3Mirror(s3, bucket, tmp_path, "stream")
    response = mirror.client.get(mirror.url(mirror.approved))
    assert response.status_code == 200
    assert hashlib.sha256(response.get_data()).hexdigest() == mirror.approved.sha256
    assert response.content_length == mirror.approved.size
    assert response.headers["ETag"] == f'"{mirror.approved.sha256}"'
    assert mirror.approved.filename in response.headers["Content-Disposition"]
    metadata = mirror.client.get(mirror.url(mirror.approved, ".metadata"))
    assert metadata.status_code == 200 and metadata.get_data().startswith(b"Metadata-Version")
    assert mirror.client.get(mirror.url(mirror.held)).status_code == 404


def test_redirect_mode_sends_a_presigned_url_for_servable_files_only(s3, bucket, tmp_path):
    mirror = S3Mirror(s3, bucket, tmp_path, "redirect")
    response = mirror.client.get(mirror.url(mirror.approved))
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    location = response.headers["Location"]
    parts = urllib.parse.urlsplit(location)
    assert parts.path == f"/{bucket}/published/{mirror.approved.sha256}"
    query = urllib.parse.parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["300"]
    with urllib.request.urlopen(location, timeout=10) as fetched:
        assert hashlib.sha256(fetched.read()).hexdigest() == mirror.approved.sha256
        disposition = parse_options_header(fetched.headers["Content-Disposition"])
        assert disposition == ("attachment", {"filename": mirror.approved.filename})
    metadata = mirror.client.get(mirror.url(mirror.approved, ".metadata"))
    assert metadata.status_code == 302
    with urllib.request.urlopen(metadata.headers["Location"], timeout=10) as fetched:
        assert fetched.read().startswith(b"Metadata-Version")
        assert fetched.headers["Content-Type"] == "text/plain"

    # Held: no URL is minted, and its bytes are only in the quarantine prefix.
    assert mirror.client.get(mirror.url(mirror.held)).status_code == 404
    assert f"published/{mirror.held.sha256}" not in s3.keys(bucket)

    # Revoked: a 404 at once, and a URL handed out before stops working (bytes deleted).
    Publisher(mirror.db, mirror.storage).revoke([mirror.approved], actor="test", reason="bad")
    assert mirror.client.get(mirror.url(mirror.approved)).status_code == 404
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(location, timeout=10)
    assert gone.value.code in (403, 404)  # S3 says 403 for a missing key to some callers
    assert f"published/{mirror.approved.sha256}" not in s3.keys(bucket)


def test_the_local_backend_still_serves_from_disk(tmp_path):
    settings = settings_from_mapping({"data_dir": str(tmp_path / "data")})
    assert settings.storage.downloads == "stream"
    storage = local_storage(settings.data_dir)
    assert not isinstance(storage.published, Presigner)


def test_a_store_that_is_down_is_a_503_not_a_traceback(s3, bucket, tmp_path):
    mirror = S3Mirror(s3, bucket, tmp_path, "stream")
    down = settings_from_mapping(
        {"data_dir": str(tmp_path / "data"),
         "storage": {"backend": "s3", "bucket": bucket,
                     "endpoint_url": f"http://127.0.0.1:{free_port()}"}},
        "test.toml",
    )  # fmt: skip
    app = create_app(down, db=mirror.db, storage=build_storage(down))
    response = app.test_client().get(mirror.url(mirror.approved))
    assert response.status_code == 503
