"""The catalogue and inspect_file: stable ids, crashes contained, hostile bytes never raise."""

from __future__ import annotations

import io
import random
import re
import tarfile

import pytest

import quarantine
from quarantine import CheckContext, Finding, Inspection, Severity, inspect_file
from quarantine.artifact import Artifact, Limits
from quarantine.checks import CATALOGUE, CHECK_CRASHED, Check
from quarantine.checks.archive import ARCHIVE_UNREADABLE
from tests.support.builders import make_sdist, make_wheel

KEBAB = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def test_catalogue_ids_are_unique_kebab_case_and_documented():
    ids = [check.id for check in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert CHECK_CRASHED not in ids
    for check in CATALOGUE:
        assert KEBAB.fullmatch(check.id), check.id
        assert check.description, check.id
    assert {
        "archive-unreadable",
        "filename-invalid",
        "project-name-mismatch",
        "metadata-missing",
        "metadata-name-mismatch",
        "metadata-version-mismatch",
        "metadata-invalid",
        "upstream-hash-mismatch",
    } <= set(ids)


def test_package_reexports_the_public_names():
    for name in ("Finding", "Severity", "CheckContext", "Inspection", "inspect_file"):
        assert hasattr(quarantine, name)
    for name in ("Policy", "Verdict", "decide"):
        assert hasattr(quarantine, name)


def test_wheel_inspection_carries_what_the_mirror_needs(tmp_path):
    path = make_wheel(
        tmp_path, "Demo", "1.0", requires_dist=["click>=8", 'x; extra == "y"'], extras=["y"],
        requires_python=">=3.10",
    )  # fmt: skip
    inspection = inspect_file(path, CheckContext(filename=path.name, project="demo"))
    assert isinstance(inspection, Inspection)
    assert inspection.findings == ()
    assert (inspection.kind, inspection.name, inspection.version) == ("wheel", "demo", "1.0")
    assert inspection.filename == path.name and inspection.size == path.stat().st_size
    assert inspection.core_metadata is not None
    assert inspection.core_metadata.startswith(b"Metadata-Version: 2.1\nName: Demo\n")
    assert inspection.requires_dist == ("click>=8", 'x; extra == "y"')
    assert inspection.requires_python == ">=3.10"


def test_sdist_inspection_serves_pkg_info(tmp_path):
    path = make_sdist(tmp_path, "demo", "1.0.0", requires_dist=["attrs"])
    inspection = inspect_file(path, CheckContext(filename=path.name, project="demo"))
    assert inspection.findings == ()
    assert (inspection.kind, inspection.version) == ("sdist", "1.0.0")
    assert inspection.core_metadata is not None and b"Name: demo" in inspection.core_metadata
    assert inspection.requires_dist == ("attrs",)


def crashing(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Always fails."""
    raise ZeroDivisionError("the check's own bug")


def reads_a_missing_member(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Reads a member that is not there."""
    artifact.read("no/such/member", 10)
    return []


def test_a_crashing_check_becomes_a_finding_and_the_others_still_run(tmp_path, caplog):
    path = make_wheel(tmp_path, "demo", "1.0")
    checks = [Check("always-crashes", crashing), *CATALOGUE]
    inspection = inspect_file(path, CheckContext(filename=path.name), checks=checks)
    (finding,) = inspection.findings
    assert (finding.check, finding.severity) == (CHECK_CRASHED, Severity.HIGH)
    assert "always-crashes" in finding.message and "ZeroDivisionError" in finding.evidence
    assert "the check's own bug" in caplog.text  # the traceback goes to the log


def test_an_unreadable_member_inside_a_check_is_archive_unreadable(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    checks = [Check("reads-members", reads_a_missing_member)]
    inspection = inspect_file(path, CheckContext(filename=path.name), checks=checks)
    (finding,) = inspection.findings
    assert (finding.check, finding.severity) == (ARCHIVE_UNREADABLE, Severity.CRITICAL)
    assert "reads-members" in finding.message and finding.path == "no/such/member"


@pytest.mark.parametrize("build", [make_wheel, make_sdist])
def test_mutated_archives_never_raise(tmp_path, build):
    original = build(tmp_path, "demo", "1.0", requires_dist=["click"]).read_bytes()
    rng = random.Random(1234)
    path = tmp_path / "mutant"
    filename = "demo-1.0-py3-none-any.whl" if build is make_wheel else "demo-1.0.tar.gz"
    seen: set[str] = set()
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            data[at] = rng.randrange(256)
        if rng.random() < 0.2:
            del data[rng.randrange(len(data)) :]
        path.write_bytes(bytes(data))
        inspection = inspect_file(path, CheckContext(filename=filename, project="demo"))
        assert CHECK_CRASHED not in {f.check for f in inspection.findings}
        seen.update(f.check for f in inspection.findings)
        for finding in inspection.findings:
            finding.evidence.encode("utf-8")  # storable as text
    assert ARCHIVE_UNREADABLE in seen


def test_findings_are_valid_text_even_for_undecodable_member_names(tmp_path):
    path = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("demo-1.0/\udcff\udcfe.bin")  # bytes ff fe in the header
        info.size = 2000
        tar.addfile(info, io.BytesIO(bytes(2000)))
    inspection = inspect_file(
        path, CheckContext(filename=path.name), limits=Limits(max_member_size=1000)
    )
    (finding,) = inspection.findings
    assert finding.check == ARCHIVE_UNREADABLE and finding.path is not None
    for text in (finding.message, finding.evidence, finding.path):
        text.encode("utf-8")
    assert "\\udcff" in finding.path
