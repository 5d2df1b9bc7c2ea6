"""metadata-version-unknown, metadata-oversized, requires-dist-direct-url and
dependency-not-mirrored: what the metadata declares, beyond being parseable."""

from __future__ import annotations

import zipfile

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks import CATALOGUE, Check
from quarantine.checks.metadata import (
    DEPENDENCY_NOT_MIRRORED,
    MAX_DESCRIPTION_BYTES,
    MAX_FIELD_BYTES,
    MAX_FIELD_VALUES,
    MAX_SUMMARY_CHARS,
    METADATA_INVALID,
    METADATA_OVERSIZED,
    METADATA_VERSION_UNKNOWN,
    REQUIRES_DIST_DIRECT_URL,
    dependency_not_mirrored,
    metadata_invalid,
    metadata_oversized,
    metadata_version_unknown,
    requires_dist_direct_url,
)
from tests.support.builders import make_sdist, make_wheel, metadata_text

CHECKS = {
    METADATA_INVALID: metadata_invalid,
    METADATA_VERSION_UNKNOWN: metadata_version_unknown,
    METADATA_OVERSIZED: metadata_oversized,
    REQUIRES_DIST_DIRECT_URL: requires_dist_direct_url,
    DEPENDENCY_NOT_MIRRORED: dependency_not_mirrored,
}


def findings(path, check, **context):
    """What one check (run as inspect_file runs it) finds in the file at ``path``."""
    inspection = inspect_file(
        path, CheckContext(filename=path.name, **context), checks=[Check(check, CHECKS[check])]
    )
    return list(inspection.findings)


def wheel(tmp_path, text):
    return make_wheel(tmp_path, "demo", "1.0", metadata=text)


# ---------------------------------------------------------------- metadata-version-unknown


@pytest.mark.parametrize(
    ("version", "severity"),
    [
        ("3.0", Severity.HIGH),  # the spec: consumers must fail on an unknown major
        ("10.1", Severity.HIGH),
        ("banana", Severity.HIGH),
        ("1.5", Severity.MEDIUM),  # no version of the spec, and not newer either
        ("2.3.1", Severity.MEDIUM),
        ("2.9", Severity.LOW),  # a newer minor: tools accept it
    ],
)
def test_unknown_metadata_version_is_graded_by_its_major(tmp_path, version, severity):
    path = wheel(tmp_path, metadata_text("demo", "1.0", metadata_version=version))
    (finding,) = findings(path, METADATA_VERSION_UNKNOWN)
    assert finding.severity is severity
    assert finding.evidence == f"Metadata-Version: {version}"
    assert finding.path == "demo-1.0.dist-info/METADATA"
    assert findings(path, METADATA_INVALID) == []  # graded once, here


def test_missing_metadata_version_is_high(tmp_path):
    text = metadata_text("demo", "1.0").replace("Metadata-Version: 2.1\n", "")
    (finding,) = findings(wheel(tmp_path, text), METADATA_VERSION_UNKNOWN)
    assert finding.severity is Severity.HIGH and "(missing)" in finding.evidence


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.0"])
def test_real_metadata_versions_pass(tmp_path, version):
    # 2.0 is no spec version, but bdist_wheel wrote it until 2018 (5 benchmark wheels)
    path = wheel(tmp_path, metadata_text("demo", "1.0", metadata_version=version))
    assert findings(path, METADATA_VERSION_UNKNOWN) == []
    assert findings(path, METADATA_INVALID) == []


def test_sdist_metadata_version_is_checked_too(tmp_path):
    path = make_sdist(
        tmp_path, "demo", "1.0", metadata=metadata_text("demo", "1.0", metadata_version="3.0")
    )
    (finding,) = findings(path, METADATA_VERSION_UNKNOWN)
    assert finding.path == "demo-1.0/PKG-INFO" and "PKG-INFO" in finding.message


# ---------------------------------------------------------------- metadata-oversized


def test_real_sized_metadata_passes(tmp_path):
    # The largest of each among the benchmark's real wheels: mujoco's 230 KB
    # description, matplotlib's 75 KB License, a 488-character summary, transformers'
    # 457 Requires-Dist.
    text = metadata_text(
        "demo",
        "1.0",
        summary="s" * 488,
        requires_dist=[f"dep{i}>=1" for i in range(457)],
        extra_headers={"License": "l" * 75_000},
    )
    path = wheel(tmp_path, text + "d" * 230_000)
    assert findings(path, METADATA_OVERSIZED) == []


@pytest.mark.parametrize(
    ("change", "evidence"),
    [
        ({"body": "d" * (MAX_DESCRIPTION_BYTES + 1)}, "description: 1048577 bytes"),
        ({"body": "é" * (MAX_DESCRIPTION_BYTES // 2 + 1)}, "description: 1048578 bytes"),
        ({"summary": "s" * (MAX_SUMMARY_CHARS + 1)}, "summary: 1025 characters"),
        ({"headers": {"Author": "a" * (MAX_FIELD_BYTES + 1)}}, "author: 262145 bytes"),
        ({"headers": {"X-Padding": "x" * (MAX_FIELD_BYTES + 1)}}, "x-padding: 262145 bytes"),
        (
            {"requires": [f"dep{i}" for i in range(MAX_FIELD_VALUES + 1)]},
            "requires-dist: 1001 values",
        ),
    ],
)
def test_oversized_fields_hold(tmp_path, change, evidence):
    text = metadata_text(
        "demo",
        "1.0",
        summary=change.get("summary", "A test project"),
        requires_dist=change.get("requires", ()),
        extra_headers=change.get("headers"),
    )
    (finding,) = findings(wheel(tmp_path, text + change.get("body", "")), METADATA_OVERSIZED)
    assert finding.severity is Severity.MEDIUM
    assert finding.evidence.startswith(evidence)


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b"Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nhi\n--zz--\n", False),
        (b"\n" + b"\xff" * (MAX_DESCRIPTION_BYTES + 1), True),  # not UTF-8: set aside
    ],
    ids=["multipart", "not-utf-8"],
)
def test_bodies_packaging_sets_aside_are_measured_too(tmp_path, body, found):
    path = make_wheel(tmp_path, "demo", "1.0")
    headers = metadata_text("demo", "1.0").rstrip("\n").encode() + b"\n"
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["demo-1.0.dist-info/METADATA"] = headers + body
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert len(findings(path, METADATA_OVERSIZED)) == found


def test_repeated_project_urls_count_as_one_field(tmp_path):
    urls = "".join(f"Project-URL: u{i}, https://example.org/{i}\n" for i in range(1001))
    text = metadata_text("demo", "1.0").rstrip("\n") + "\n" + urls + "\n"
    (finding,) = findings(wheel(tmp_path, text), METADATA_OVERSIZED)
    assert finding.evidence.startswith("project-urls: 1001 values")


# ---------------------------------------------------------------- requires-dist-direct-url


@pytest.mark.parametrize(
    "requirement",
    [
        "evil @ https://example.invalid/evil-1.0.tar.gz",
        "evil[extra]@git+https://example.invalid/evil.git@main ; python_version >= '3'",
        "evil @ file:///tmp/evil-1.0-py3-none-any.whl",
    ],
)
@pytest.mark.parametrize("build", [make_wheel, make_sdist])
def test_dependency_from_a_direct_url_is_high(tmp_path, requirement, build):
    path = build(tmp_path, "demo", "1.0", requires_dist=["click>=8", requirement])
    (finding,) = findings(path, REQUIRES_DIST_DIRECT_URL)
    assert finding.severity is Severity.HIGH
    assert finding.evidence == f"Requires-Dist: {requirement}"
    assert "click" not in finding.evidence


def test_index_dependencies_that_look_like_urls_pass(tmp_path):
    # real requirements from requests and botocore: extras, markers, specifiers, names
    # with "url" in them, an "@" only inside a marker string
    requires = [
        "urllib3<3,>=1.21.1",
        "PySocks!=1.5.7,>=1.5.6; extra == 'socks'",
        "awscrt==0.27.6; extra == 'crt'",
        "url-normalize>=1.4 ; platform_machine != 'https@x'",
    ]
    path = make_wheel(tmp_path, "demo", "1.0", requires_dist=requires, extras=["socks", "crt"])
    assert findings(path, REQUIRES_DIST_DIRECT_URL) == []


# ---------------------------------------------------------------- dependency-not-mirrored


def test_dependencies_outside_the_mirror_are_listed_once(tmp_path):
    path = make_wheel(
        tmp_path,
        "demo",
        "1.0",
        requires_dist=["Click>=8", "Werkzeug>=3", "Jinja2", "zope.interface", "demo[extra]"],
    )
    known = frozenset({"click", "jinja2"})
    (finding,) = findings(path, DEPENDENCY_NOT_MIRRORED, known_projects=known)
    assert finding.severity is Severity.INFO
    assert finding.evidence == "werkzeug, zope-interface"  # normalized, sorted, not itself
    assert "2 projects" in finding.message


def test_dependencies_are_not_listed_outside_a_sync_or_when_all_are_known(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0", requires_dist=["click", "Werkzeug"])
    assert findings(path, DEPENDENCY_NOT_MIRRORED) == []  # scanned from disk
    known = frozenset({"click", "werkzeug"})
    assert findings(path, DEPENDENCY_NOT_MIRRORED, known_projects=known) == []


def test_metadata_checks_are_in_the_catalogue():
    ids = {check.id for check in CATALOGUE}
    assert set(CHECKS) <= ids
