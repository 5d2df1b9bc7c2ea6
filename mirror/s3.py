"""Blob stores in S3 (or any S3-compatible server: MinIO, Ceph, R2, moto), through boto3.

The same four-verb shape as ``LocalStore``; every botocore error is translated here, at
the boundary, into ``StorageError`` / ``BlobNotFound`` naming the store and the object,
so nothing above this module knows which backend it talks to.

Atomicity comes from S3 itself: a PUT, or the CompleteMultipartUpload that ends a
multipart upload, makes the whole object appear at once, so a reader never sees half a
file. A multipart upload that fails midway is aborted (boto3's transfer manager does, and
``_abort_pending`` makes sure), so it leaves neither an object nor billed parts. A process
killed mid-upload cannot abort anything: the README recommends the bucket lifecycle rule
``AbortIncompleteMultipartUpload`` for that.

Credentials come only from boto3's own chain (environment, shared profile, instance or
task role), never from the mirror's config file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mirror.config import StorageSettings
from mirror.storage import BlobNotFound, BlobStore, Storage, StorageError, check_key

MiB = 1024 * 1024
# Multipart above 8 MiB, in 8 MiB parts, 4 at a time. For a stream (not a file) boto3
# buffers parts in memory: at most 4 of them (s3transfer's max_in_memory_upload_chunks,
# which boto3's constructor does not take), so a put holds ~32 MiB whatever the size.
TRANSFER = TransferConfig(
    multipart_threshold=8 * MiB,
    multipart_chunksize=8 * MiB,
    max_concurrency=4,
    use_threads=True,
    preferred_transfer_client="classic",  # never the CRT client, even where awscrt is installed
)
TRANSFER.max_in_memory_upload_chunks = 4
POOL_CONNECTIONS = 16  # gunicorn threads + transfer threads share one client per process
READ_CHUNK = 256 * 1024
_MISSING = {"NoSuchKey", "404", "NotFound"}


def s3_client(settings: StorageSettings) -> Any:
    """A boto3 S3 client for ``[storage]``: endpoint, region and addressing from the
    config, credentials from boto3's chain. Thread-safe; one per process is enough."""
    config = Config(
        region_name=settings.region or None,
        signature_version="s3v4",  # presigned URLs: SigV4 (v2 is refused by most regions)
        s3={"addressing_style": settings.addressing_style},
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=POOL_CONNECTIONS,
        connect_timeout=10,
        read_timeout=60,
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=settings.endpoint_url or None, config=config)


def s3_storage(settings: StorageSettings, client: Any | None = None) -> Storage:
    """The two areas: ``<prefix>quarantine/`` (in ``quarantine_bucket`` when set, so a
    bucket policy can keep it private) and ``<prefix>published/`` in ``bucket``. Only the
    published store can presign URLs."""
    client = client or s3_client(settings)
    return Storage(
        quarantine=S3Store(
            client,
            settings.quarantine_bucket or settings.bucket,
            f"{settings.prefix}quarantine/",
            "quarantine",
        ),
        published=PresigningS3Store(
            client, settings.bucket, f"{settings.prefix}published/", "published"
        ),
    )


class S3Store:
    """Blobs as objects ``s3://<bucket>/<prefix><key>``."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, name: str, transfer: TransferConfig = TRANSFER
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.name = name
        self.transfer = transfer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} s3://{self.bucket}/{self.prefix}>"

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self, key: str) -> str:
        return f"{self.name} store: s3://{self.bucket}/{self.prefix}{key}"

    def put_file(self, key: str, source: Path) -> None:
        target = self.object_key(key)
        try:
            self.client.upload_file(str(source), self.bucket, target, Config=self.transfer)
        except BaseException as error:
            self._abort_pending(target)
            raise self._translate(error, key, "cannot store") from None
        Path(source).unlink(missing_ok=True)

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        target = self.object_key(key)
        try:
            self.client.upload_fileobj(stream, self.bucket, target, Config=self.transfer)
        except BaseException as error:
            self._abort_pending(target)
            raise self._translate(error, key, "cannot store") from None

    def open(self, key: str) -> BinaryIO:
        target = self.object_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=target)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key, "cannot read") from None
        reader = _ObjectReader(response["Body"], self._where(key))
        return io.BufferedReader(reader, buffer_size=READ_CHUNK)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except (ClientError, BotoCoreError) as error:
            translated = self._translate(error, key, "cannot check")
            if isinstance(translated, BlobNotFound):
                return False
            raise translated from None
        return True

    def delete(self, key: str) -> None:
        try:  # S3 answers 204 for a missing key too: deleting is idempotent
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key, "cannot delete") from None

    def local_path(self, key: str) -> Path | None:
        return None

    def copy_from(self, source: BlobStore, key: str) -> bool:
        """A server-side copy (managed: multipart for large objects), so approving a file
        moves no bytes through this process; only between S3 stores on one client."""
        if not isinstance(source, S3Store) or source.client is not self.client:
            return False
        target = self.object_key(key)
        copy_source = {"Bucket": source.bucket, "Key": source.object_key(key)}
        try:
            self.client.copy(copy_source, self.bucket, target, Config=self.transfer)
        except BaseException as error:
            self._abort_pending(target)
            raise self._translate(error, key, f"cannot copy from {source.name} to") from None
        return True

    def _abort_pending(self, target: str) -> None:
        # boto3's transfer manager aborts a multipart upload it cannot finish; this covers
        # the paths where it could not (an interrupt between parts), best effort.
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=target)
            for upload in listing.get("Uploads", []):
                if upload["Key"] == target:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=target, UploadId=upload["UploadId"]
                    )
        except (ClientError, BotoCoreError):
            pass

    def _translate(self, error: BaseException, key: str, verb: str) -> BaseException:
        """botocore's exception, as one of ours; anything else (a caller's stream failing,
        KeyboardInterrupt) is returned as it is, to be re-raised."""
        if isinstance(error, S3UploadFailedError):
            return StorageError(f"{self._where(key)}: {verb} it: {_upload_reason(error)}")
        if isinstance(error, ClientError):
            code, message = _error_code(error.response)
            if code in _MISSING:
                return BlobNotFound(f"{self._where(key)}: no such blob")
            if code == "NoSuchBucket":
                return StorageError(f"{self._where(key)}: {verb} it: bucket does not exist")
            return StorageError(f"{self._where(key)}: {verb} it: {code}: {message}")
        if isinstance(error, BotoCoreError):
            return StorageError(f"{self._where(key)}: {verb} it: {error}")
        if isinstance(error, OSError) and not isinstance(error, BlockingIOError):
            return StorageError(f"{self._where(key)}: {verb} it: {error.strerror or error}")
        return error


class PresigningS3Store(S3Store):
    """The published store: it can also hand out a short-lived GET URL, so a download
    need not pass through a gunicorn worker. The quarantine store is a plain S3Store and
    has no such method, so no code path can mint a URL to a quarantined object."""

    def presigned_url(
        self, key: str, *, expires: int, content_type: str, content_disposition: str
    ) -> str:
        try:
            url: str = self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.object_key(key),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition,
                },
                ExpiresIn=expires,
            )
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key, "cannot presign") from None
        return url


@dataclass(frozen=True)
class ObjectHeaders:
    """What an object of a static site carries for the readers: S3 sends these back."""

    content_type: str
    cache_control: str

    def extra_args(self) -> dict[str, str]:
        return {"ContentType": self.content_type, "CacheControl": self.cache_control}


class S3ObjectTree(S3Store):
    """Objects at relative keys the caller chooses (``simple/flask/index.html``) under a
    prefix, each with its own headers: a static site in a bucket (``qmirror export``).
    The caller checks its keys; uploads, multipart, aborts and the error translation are
    the store's, so the messages read the same."""

    def object_key(self, key: str) -> str:
        return self.prefix + key

    def _where(self, key: str) -> str:
        return f"{self.name} s3://{self.bucket}/{self.prefix}{key}"

    def put_bytes(self, key: str, body: bytes, headers: ObjectHeaders) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.object_key(key), Body=body, **headers.extra_args()
            )
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key, "cannot store") from None

    def put_stream_with(self, key: str, stream: BinaryIO, headers: ObjectHeaders) -> None:
        """Streamed (multipart above the threshold): never the whole stream in memory."""
        target = self.object_key(key)
        try:
            self.client.upload_fileobj(
                stream, self.bucket, target, ExtraArgs=headers.extra_args(), Config=self.transfer
            )
        except BaseException as error:
            self._abort_pending(target)
            raise self._translate(error, key, "cannot store") from None

    def put_path(self, key: str, path: Path, headers: ObjectHeaders) -> None:
        """Upload a local file, which stays where it is (unlike ``put_file``)."""
        target = self.object_key(key)
        try:
            self.client.upload_file(
                str(path), self.bucket, target, ExtraArgs=headers.extra_args(), Config=self.transfer
            )
        except BaseException as error:
            self._abort_pending(target)
            raise self._translate(error, key, "cannot store") from None

    def copy_blob(
        self, source: BlobStore, source_key: str, key: str, headers: ObjectHeaders
    ) -> int | None:
        """A server-side copy of ``source``'s blob, with this tree's headers; the bytes
        copied, or None when ``source`` is not an S3 store on this client (stream it)."""
        if not isinstance(source, S3Store) or source.client is not self.client:
            return None
        copy_source = {"Bucket": source.bucket, "Key": source.object_key(source_key)}
        try:
            size = int(self.client.head_object(**copy_source)["ContentLength"])
        except (ClientError, BotoCoreError) as error:
            raise source._translate(error, source_key, "cannot read") from None
        target = self.object_key(key)
        try:
            self.client.copy(
                copy_source,
                self.bucket,
                target,
                ExtraArgs={**headers.extra_args(), "MetadataDirective": "REPLACE"},
                Config=self.transfer,
            )
        except BaseException as error:
            self._abort_pending(target)
            raise self._translate(error, key, f"cannot copy from {source.name} to") from None
        return size

    def read_bytes(self, key: str) -> bytes | None:
        """A small object's bytes (a manifest), or None when there is none."""
        try:
            with self.open(key) as stream:
                return stream.read()
        except BlobNotFound:
            return None

    def is_empty(self) -> bool:
        """Whether nothing at all is under the prefix (one key listed, at most)."""
        try:
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, "", "cannot list") from None
        return not listing.get("Contents")


class _ObjectReader(io.RawIOBase):
    """A GET response body as a raw stream, its errors translated like the rest."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except (BotoCoreError, OSError) as error:
            raise StorageError(f"{self._where}: read failed: {error}") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _error_code(response: Mapping[str, Any]) -> tuple[str, str]:
    error = response.get("Error", {})
    return str(error.get("Code", "?")), str(error.get("Message", "")).strip() or "no message"


def _upload_reason(error: S3UploadFailedError) -> str:
    # boto3 flattens the ClientError into text: "Failed to upload X to B/K: An error ..."
    text = str(error)
    return text.split(": ", 1)[1] if ": " in text else text


__all__ = [
    "TRANSFER",
    "ObjectHeaders",
    "PresigningS3Store",
    "S3ObjectTree",
    "S3Store",
    "s3_client",
    "s3_storage",
]
