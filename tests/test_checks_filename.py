"""filename-invalid and project-name-mismatch: what the filename claims."""

from __future__ import annotations

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks.filename import FILENAME_INVALID, PROJECT_NAME_MISMATCH
from tests.support.builders import make_sdist, make_wheel


def checks_of(inspection) -> list[str]:
    return [finding.check for finding in inspection.findings]


@pytest.mark.parametrize(
    "filename",
    [
        "demo.whl",  # no version, no tags
        "demo-1.0-py3-none.whl",  # too few parts
        "demo-notaversion-py3-none-any.whl",
        "demo-1.0-x-py3-none-any.whl",  # build tag must start with a digit
        "demo-1.0.tar.bz2",  # not an sdist extension PEP 625 or packaging accept
        "demo-one.tar.gz",
        "demo.tar.gz",
        "setup.py",
    ],
)
def test_unparseable_filename_is_critical(tmp_path, filename):
    path = make_wheel(tmp_path, "demo", "1.0")
    inspection = inspect_file(path, CheckContext(filename=filename))
    (finding,) = [f for f in inspection.findings if f.check == FILENAME_INVALID]
    assert finding.severity is Severity.CRITICAL and finding.evidence
    assert inspection.kind is None and inspection.name is None and inspection.version is None
    assert inspection.core_metadata is None  # nowhere defined to look
    assert "metadata-missing" not in checks_of(inspection)  # filename-invalid says it


@pytest.mark.parametrize(
    ("name", "version", "filename"),
    [
        ("demo", "1.0", None),
        ("Demo.Pkg", "1.0.post1", None),
        ("demo", "1.0", "demo-1.0-1-py3-none-any.whl"),  # build tag
        ("demo", "1.0", "Demo-1.0-py2.py3-none-any.whl"),  # legacy capitals
    ],
)
def test_valid_wheel_filenames_pass(tmp_path, name, version, filename):
    path = make_wheel(tmp_path, name, version, filename=filename)
    inspection = inspect_file(path, CheckContext(filename=path.name))
    assert FILENAME_INVALID not in checks_of(inspection)
    assert inspection.kind == "wheel"


def test_legacy_sdist_filenames_pass(tmp_path):
    # Unnormalized names, as PyPI still lists them (Flask-0.1.tar.gz, zope.interface-...).
    path = make_sdist(tmp_path, "zope.interface", "5.0", filename="zope.interface-5.0.tar.gz")
    inspection = inspect_file(path, CheckContext(filename=path.name, project="zope-interface"))
    assert inspection.findings == ()
    assert (inspection.kind, inspection.name, inspection.version) == (
        "sdist",
        "zope-interface",
        "5.0",
    )


def test_file_listed_under_another_project_is_critical(tmp_path):
    path = make_wheel(tmp_path, "unrelated", "2.0")
    inspection = inspect_file(path, CheckContext(filename=path.name, project="requests"))
    (finding,) = inspection.findings
    assert (finding.check, finding.severity) == (PROJECT_NAME_MISMATCH, Severity.CRITICAL)
    assert "unrelated" in finding.message and "requests" in finding.message


@pytest.mark.parametrize(
    ("listed", "filename"),
    [
        ("jinja2", "Jinja2-3.1.6-py3-none-any.whl"),
        ("zope-interface", "zope.interface-5.0-py3-none-any.whl"),
        ("charset-normalizer", "charset_normalizer-3.0-py3-none-any.whl"),
        ("Charset_Normalizer", "charset_normalizer-3.0-py3-none-any.whl"),
    ],
)
def test_names_that_normalize_alike_match(tmp_path, listed, filename):
    name, version = filename.split("-")[:2]
    built = make_wheel(tmp_path, name, version)
    # The file is judged as the name it was listed as, whatever it is called on disk.
    inspection = inspect_file(built, CheckContext(filename=filename, project=listed))
    assert inspection.findings == ()


def test_no_project_no_comparison(tmp_path):
    path = make_wheel(tmp_path, "anything", "1.0")
    assert inspect_file(path, CheckContext(filename=path.name)).findings == ()
