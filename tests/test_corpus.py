"""Real releases from ../shared/corpus/benign (see its README): every one must inspect
with nothing the default policy holds or rejects, and flask's metadata must come out
exactly as the mirror serves and follows it."""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quarantine import CheckContext, Policy, Verdict, decide, inspect_file

# The repo's sibling ../shared (in CI a copy sits beside the clone); the `corpus`
# fixture fails clearly when it is absent.
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "benign"
FILES = sorted(CORPUS.iterdir()) if CORPUS.is_dir() else []


def test_the_corpus_is_there(corpus: Path):
    assert len(FILES) >= 30, f"expected the shared corpus at {corpus}"


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_benign_release_is_approved(corpus: Path, path: Path):
    data_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    inspection = inspect_file(
        path,
        CheckContext(filename=path.name, expected_hashes={"sha256": data_sha256}),
    )
    assert inspection.name is not None
    decision = decide(
        Policy(),
        inspection.findings,
        project=inspection.name,
        uploaded_at=None,
        now=datetime.now(UTC),
    )
    assert decision.verdict is Verdict.APPROVE, decision.reasons
    assert inspection.sha256 == data_sha256
    assert inspection.core_metadata is not None
    assert inspection.kind == ("wheel" if path.suffix == ".whl" else "sdist")


def test_flask_metadata_is_served_and_followed_exactly(corpus: Path):
    path = corpus / "flask-3.1.3-py3-none-any.whl"
    inspection = inspect_file(path, CheckContext(filename=path.name, project="flask"))
    with zipfile.ZipFile(path) as wheel:
        assert inspection.core_metadata == wheel.read("flask-3.1.3.dist-info/METADATA")
    assert inspection.findings == ()
    assert (inspection.name, inspection.version) == ("flask", "3.1.3")
    assert inspection.requires_python == ">=3.9"
    assert inspection.requires_dist == (
        "blinker>=1.9.0",
        "click>=8.1.3",
        "importlib-metadata>=3.6.0; python_version < '3.10'",
        "itsdangerous>=2.2.0",
        "jinja2>=3.1.2",
        "markupsafe>=2.1.1",
        "werkzeug>=3.1.0",
        'asgiref>=3.2 ; extra == "async"',
        'python-dotenv ; extra == "dotenv"',
    )


def test_six_license_file_anachronism_only_warns(corpus: Path):
    # setuptools wrote License-File under Metadata-Version 2.1: packaging calls that
    # invalid; metadata-invalid grades it low so the real release is not held.
    for name in ("six-1.17.0-py2.py3-none-any.whl", "six-1.17.0.tar.gz"):
        inspection = inspect_file(corpus / name, CheckContext(filename=name, project="six"))
        assert [(f.check, f.severity.value) for f in inspection.findings] == [
            ("metadata-invalid", "low")
        ]
