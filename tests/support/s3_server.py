"""A real S3-compatible server for tests: moto's standalone server (``python -m
moto.server``, a werkzeug HTTP server speaking the S3 REST API) in a subprocess on a free
loopback port. boto3 reaches it over HTTP exactly as it would reach AWS or MinIO; nothing
in boto3 or in the mirror is patched.

Usage::

    from tests.support.s3_server import S3Server

    with S3Server(tmp_path) as s3:                 # or s3.start() ... s3.stop()
        bucket = s3.create_bucket()                # a fresh, uniquely named bucket
        client = s3.client()                       # boto3, with the fake credentials
        settings = {"backend": "s3", "bucket": bucket, "endpoint_url": s3.endpoint_url}

``S3Server.ENV`` holds the fake credentials and region: put them in the environment of
anything that builds its own client (``qmirror`` subprocesses, gunicorn) so boto3's
standard chain finds them; it also points the shared config files at /dev/null and turns
off the instance-metadata lookup, so no test reaches past loopback for credentials.

As a pytest fixture (``tests/conftest.py`` wires ``s3_server`` this way, once a session,
and ``s3`` per test: the environment set, a fresh bucket)::

    @pytest.fixture(scope="session")
    def s3_server(tmp_path_factory):
        with S3Server(tmp_path_factory.mktemp("s3")) as server:
            yield server
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.live import free_port, wait_for_http

_bucket_counter = itertools.count(1)


class S3Server:
    ENV = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any credentials
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.port = 0
        self.endpoint_url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"moto-{self.port}.log"
        with open(log, "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.ENV},
                start_new_session=True,
            )
        try:
            wait_for_http(f"{self.endpoint_url}/moto-api/", timeout=30, process=self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self) -> Any:
        """A boto3 client of its own (fake credentials given explicitly, not from the
        environment), for a test to look at the server behind the mirror's back."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.ENV["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )

    def create_bucket(self, stem: str = "qmirror-test") -> str:
        """A new bucket with a name no other test of this session uses."""
        name = f"{stem}-{os.getpid()}-{next(_bucket_counter)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        client = self.client()
        found: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def pending_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        uploads = self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return sorted(upload["Key"] for upload in uploads)
