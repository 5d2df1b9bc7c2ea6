"""upstream-hash-mismatch: the bytes are the ones the upstream index declared."""

from __future__ import annotations

import hashlib

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks.hashes import UPSTREAM_HASH_MISMATCH
from tests.support.builders import make_wheel


def test_wrong_sha256_is_critical(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    wrong = hashlib.sha256(b"the file the upstream published").hexdigest()
    context = CheckContext(filename=path.name, expected_hashes={"sha256": wrong})
    inspection = inspect_file(path, context)
    (finding,) = inspection.findings
    assert (finding.check, finding.severity) == (UPSTREAM_HASH_MISMATCH, Severity.CRITICAL)
    assert wrong in finding.evidence and inspection.sha256 in finding.evidence


def test_any_hashlib_algorithm_is_compared(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    data = path.read_bytes()
    expected = {"sha512": hashlib.sha512(data).hexdigest(), "md5": "0" * 32}
    inspection = inspect_file(path, CheckContext(filename=path.name, expected_hashes=expected))
    (finding,) = inspection.findings
    assert finding.check == UPSTREAM_HASH_MISMATCH and "md5" in finding.evidence


def test_matching_digests_in_any_case_and_unknown_algorithms_pass(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    data = path.read_bytes()
    expected = {
        "sha256": hashlib.sha256(data).hexdigest().upper(),
        "SHA384": hashlib.sha384(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "blake2b_256": "not a hashlib name: PyPI's JSON API uses it",
    }
    inspection = inspect_file(path, CheckContext(filename=path.name, expected_hashes=expected))
    assert inspection.findings == ()
    assert inspection.sha256 == hashlib.sha256(data).hexdigest()
    assert inspection.size == len(data)
