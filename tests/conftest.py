from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.live import REPO

CORPUS = REPO.parent / "shared" / "corpus" / "benign"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Real releases from ../shared/corpus/benign (see its README)."""
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing: expected {CORPUS}")
    return CORPUS


@pytest.fixture
def fake_index(tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Start fake upstream indexes on loopback: ``fake_index(api="json"|"html")``."""
    from tests.support.upstream_server import FakeIndex

    started: list[FakeIndex] = []

    def start(api: str = "json") -> FakeIndex:
        index = FakeIndex(tmp_path / f"upstream-{len(started)}", api=api)
        index.start()
        started.append(index)
        return index

    yield start
    for index in started:
        index.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real S3-compatible server (moto's, a subprocess on loopback), once a session."""
    from tests.support.s3_server import S3Server

    with S3Server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server


@pytest.fixture
def s3(s3_server: object, monkeypatch: pytest.MonkeyPatch) -> object:
    """The session's S3 server, its fake credentials in this test's environment: boto3's
    standard chain finds them, and so do the qmirror and gunicorn subprocesses."""
    from tests.support.s3_server import S3Server

    for name, value in S3Server.ENV.items():
        monkeypatch.setenv(name, value)
    return s3_server
