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
