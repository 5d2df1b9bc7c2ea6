"""metadata-missing, metadata-name-mismatch, metadata-version-mismatch, metadata-invalid.

The other metadata checks are in test_checks_metadata_fields.py."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks.metadata import (
    MAX_INVALID_FINDINGS,
    METADATA_INVALID,
    METADATA_MISSING,
    METADATA_NAME_MISMATCH,
    METADATA_VERSION_MISMATCH,
    METADATA_VERSION_UNKNOWN,
)
from tests.support.builders import make_sdist, make_wheel, metadata_text


def inspect(path, **context):
    return inspect_file(path, CheckContext(filename=path.name, **context))


def only(inspection, check):
    found = [finding for finding in inspection.findings if finding.check == check]
    assert len(found) == 1, inspection.findings
    return found[0]


# ---------------------------------------------------------------- metadata-missing


def rewrite_zip(path, *, drop=(), add=None):
    """Rewrite a built wheel without some members / with extra ones."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist() if name not in drop}
    members.update(add or {})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("change", "evidence"),
    [
        ({"drop": ["demo-1.0.dist-info/METADATA"]}, "no demo-1.0.dist-info/METADATA"),
        (
            {"add": {"evil-1.0.dist-info/METADATA": metadata_text("evil", "1.0").encode()}},
            "2 .dist-info directories",
        ),
    ],
)
def test_wheel_without_its_metadata_is_held(tmp_path, change, evidence):
    path = rewrite_zip(make_wheel(tmp_path, "demo", "1.0"), **change)
    finding = only(inspect(path), METADATA_MISSING)
    assert finding.severity is Severity.HIGH and evidence in finding.evidence


def test_wheel_without_any_dist_info_is_held(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", b"")
    assert "no .dist-info" in only(inspect(path), METADATA_MISSING).evidence


def test_dist_info_of_another_release_is_not_this_wheels_metadata(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0", filename="demo-1.1-py3-none-any.whl")
    finding = only(inspect(path), METADATA_MISSING)
    assert "does not match its filename" in finding.evidence
    assert finding.path == "demo-1.0.dist-info"


def test_sdist_without_pkg_info_is_held(tmp_path):
    path = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("demo-1.0/setup.py")
        tar.addfile(info, io.BytesIO(b""))
        nested = tarfile.TarInfo("demo-1.0/src/demo.egg-info/PKG-INFO")
        data = metadata_text("demo", "1.0").encode()
        nested.size = len(data)
        tar.addfile(nested, io.BytesIO(data))
    finding = only(inspect(path), METADATA_MISSING)
    assert "no demo-1.0/PKG-INFO" in finding.evidence


def test_pkg_info_and_metadata_found_where_installers_look(tmp_path):
    assert inspect(make_wheel(tmp_path, "demo", "1.0")).findings == ()
    assert inspect(make_sdist(tmp_path, "demo", "1.0")).findings == ()


# ---------------------------------------------------------------- name / version


@pytest.mark.parametrize("build", [make_wheel, make_sdist])
def test_metadata_naming_another_project_is_held(tmp_path, build):
    path = build(tmp_path, "demo", "1.0", metadata=metadata_text("requests", "1.0"))
    finding = only(inspect(path), METADATA_NAME_MISMATCH)
    assert finding.severity is Severity.HIGH
    assert "Name: requests" in finding.evidence and finding.path.endswith(("METADATA", "PKG-INFO"))


@pytest.mark.parametrize("build", [make_wheel, make_sdist])
def test_metadata_with_another_version_is_held(tmp_path, build):
    path = build(tmp_path, "demo", "1.0", metadata=metadata_text("demo", "1.0.1"))
    finding = only(inspect(path), METADATA_VERSION_MISMATCH)
    assert finding.severity is Severity.HIGH and "Version: 1.0.1" in finding.evidence


@pytest.mark.parametrize(
    ("filename_name", "filename_version", "metadata_name", "metadata_version"),
    [
        ("demo_pkg", "1.0", "Demo.Pkg", "1.0.0"),
        ("demo", "1.0rc1", "DEMO", "1.0-rc.1"),
        ("demo", "2!1.0.post0", "demo", "2!1.0-post0"),
    ],
)
def test_names_and_versions_that_normalize_alike_pass(
    tmp_path, filename_name, filename_version, metadata_name, metadata_version
):
    text = metadata_text(metadata_name, metadata_version)
    path = make_wheel(tmp_path, filename_name, filename_version, metadata=text)
    assert inspect(path).findings == ()


def test_unparseable_version_is_invalid_not_a_mismatch(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0", metadata=metadata_text("demo", "one"))
    inspection = inspect(path)
    assert [f.check for f in inspection.findings] == [METADATA_INVALID]
    assert inspection.findings[0].severity is Severity.MEDIUM


# ---------------------------------------------------------------- metadata-invalid


@pytest.mark.parametrize(
    ("headers", "severity", "evidence"),
    [
        ({"Requires-Dist": "requests >=< 2"}, Severity.MEDIUM, "requires-dist"),
        ({"Requires-Python": ">=3.8 or so"}, Severity.MEDIUM, "requires-python"),
        ({"Provides-Extra": "not an extra!"}, Severity.MEDIUM, "provides-extra"),
        ({"Description-Content-Type": "text/evil"}, Severity.LOW, "description-content-type"),
        ({"X-Tracking": "1"}, Severity.LOW, "unrecognized field"),
        ({"License-Expression": "MIT"}, Severity.LOW, "introduced in metadata version 2.4"),
    ],
)
def test_invalid_fields_are_graded_by_what_installers_do_with_them(
    tmp_path, headers, severity, evidence
):
    text = metadata_text("demo", "1.0", extra_headers=headers)
    finding = only(inspect(make_wheel(tmp_path, "demo", "1.0", metadata=text)), METADATA_INVALID)
    assert finding.severity is severity and evidence in finding.evidence
    assert finding.path == "demo-1.0.dist-info/METADATA"


def test_unknown_header_does_not_hide_an_invalid_requirement(tmp_path):
    text = metadata_text(
        "demo",
        "1.0",
        requires_dist=["evil >=< 1"],
        extra_headers={"X-Hide": "1"},
        metadata_version="1.0",
    )
    findings = inspect(make_wheel(tmp_path, "demo", "1.0", metadata=text)).findings
    graded = {(f.severity, f.evidence.split(":")[0]) for f in findings}
    assert (Severity.MEDIUM, "requires-dist") in graded  # the value itself
    assert (Severity.LOW, "requires-dist") in graded  # newer than Metadata-Version 1.0
    assert (Severity.LOW, "x-hide") in graded


def test_duplicated_name_header_is_held(tmp_path):
    text = metadata_text("demo", "1.0", extra_headers={"Name": "evil"})
    findings = inspect(make_wheel(tmp_path, "demo", "1.0", metadata=text)).findings
    assert {f.check for f in findings} == {METADATA_INVALID}
    assert Severity.MEDIUM in {f.severity for f in findings}


def test_metadata_that_is_not_email_at_all(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0", metadata=bytes(range(256)).decode("latin-1"))
    findings = inspect(path).findings
    # and no Metadata-Version, when packaging gets as far as reading headers
    assert METADATA_INVALID in {f.check for f in findings}
    assert {f.check for f in findings} <= {METADATA_INVALID, METADATA_VERSION_UNKNOWN}
    assert Severity.MEDIUM in {f.severity for f in findings if f.check == METADATA_INVALID}


def test_multipart_metadata_that_packaging_chokes_on(tmp_path):
    text = (
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nhi\n--zz--\n"
    )
    inspection = inspect(make_wheel(tmp_path, "demo", "1.0", metadata=text))
    graded = {(f.severity, f.evidence.split(":")[0]) for f in inspection.findings}
    # older packaging raises on a multipart body; newer (26.4) sets the body aside as an
    # unreadable description, which installers never read
    assert (Severity.MEDIUM, "AssertionError") in graded or (
        Severity.LOW,
        "description",
    ) in graded
    assert {f.check for f in inspection.findings} == {METADATA_INVALID}
    assert inspection.core_metadata == text.encode()


def test_thousands_of_bad_fields_are_summed_up(tmp_path):
    headers = {f"X-Junk-{i}": "1" for i in range(500)}
    headers["Requires-Dist"] = "evil >=< 1"
    text = metadata_text("demo", "1.0", extra_headers=headers)
    findings = inspect(make_wheel(tmp_path, "demo", "1.0", metadata=text)).findings
    assert len(findings) == MAX_INVALID_FINDINGS + 1
    assert "more invalid fields" in findings[-1].message
    assert Severity.MEDIUM in {f.severity for f in findings}  # the requirement is not lost
    assert all(len(f.evidence) <= 500 for f in findings)
