"""pth-import, pth-allowlisted, pth-path, sitecustomize-installed: code that runs at every
interpreter start-up."""

from __future__ import annotations

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks import CATALOGUE, Check
from quarantine.checks.startup import (
    MAX_PTH_SIZE,
    PTH_ALLOWLISTED,
    PTH_IMPORT,
    PTH_PATH,
    SITECUSTOMIZE,
    pth_allowlisted,
    pth_import,
    pth_path,
    sitecustomize_installed,
)
from tests.support.builders import make_sdist, make_wheel

CHECKS = [
    Check(PTH_IMPORT, pth_import),
    Check(PTH_ALLOWLISTED, pth_allowlisted),
    Check(PTH_PATH, pth_path),
    Check(SITECUSTOMIZE, sitecustomize_installed),
]
PAYLOAD = b"import os; os.system('echo pwned')\n"
MODULE = {"demo/__init__.py": b""}


def findings(path, **context):
    return inspect_file(path, CheckContext(filename=path.name, **context), checks=CHECKS).findings


def only(found, check):
    matching = [finding for finding in found if finding.check == check]
    assert len(matching) == 1, found
    return matching[0]


def wheel(tmp_path, files, name="demo", version="1.0"):
    return make_wheel(tmp_path, name, version, files={**MODULE, **files})


def test_the_checks_are_in_the_catalogue():
    ids = {check.id for check in CATALOGUE}
    assert {PTH_IMPORT, PTH_ALLOWLISTED, PTH_PATH, SITECUSTOMIZE} <= ids


# ---------------------------------------------------------------- .pth files


@pytest.mark.parametrize(
    "member",
    [
        "evil.pth",
        "demo-1.0.data/purelib/evil.pth",
        "demo-1.0.data/platlib/evil.pth",
        "demo-1.0.data/data/lib/python3.11/site-packages/evil.pth",
        "demo-1.0.data/data/Lib/site-packages/evil.pth",
    ],
)
def test_pth_that_runs_code_in_site_packages_is_held(tmp_path, member):
    finding = only(findings(wheel(tmp_path, {member: PAYLOAD})), PTH_IMPORT)
    assert finding.severity is Severity.HIGH and finding.path == member
    assert "os.system('echo pwned')" in finding.evidence and "evil.pth" in finding.message


@pytest.mark.parametrize(
    "member", ["demo/evil.pth", "demo-1.0.data/data/share/evil.pth", "demo-1.0.data/headers/x.pth"]
)
def test_pth_outside_site_packages_is_never_read_by_site(tmp_path, member):
    assert findings(wheel(tmp_path, {member: PAYLOAD})) == ()


@pytest.mark.parametrize(
    "content",
    [
        b"import\tos; os.system('echo pwned')\n",  # a tab also counts
        b"\xef\xbb\xbfimport os; os.system('echo pwned')\n",  # Python 3.13 drops the BOM
        b"# a comment\rimport os; os.system('echo pwned')",  # universal newlines: \r ends a line
        b"src\r\nimport os; os.system('echo pwned')\r\n",
    ],
)
def test_executed_lines_are_found_as_site_py_reads_them(tmp_path, content):
    found = findings(wheel(tmp_path, {"evil.pth": content}))
    assert only(found, PTH_IMPORT).severity is Severity.HIGH


def test_path_only_pth_is_low(tmp_path):
    content = b"# extra paths\nsrc\n ../shared\n import os  (indented: a path to site.py)\n\n"
    found = findings(wheel(tmp_path, {"demo-paths.pth": content}))
    finding = only(found, PTH_PATH)
    assert finding.severity is Severity.LOW
    assert "src |  ../shared |  import os" in finding.evidence  # kept as site.py reads them
    assert {f.check for f in found} == {PTH_PATH}


def test_comment_only_pth_says_nothing(tmp_path):
    assert findings(wheel(tmp_path, {"empty.pth": b"# nothing here\n\n"})) == ()


def test_oversized_pth_is_held_without_being_read(tmp_path):
    content = b"# " + b"x" * MAX_PTH_SIZE + b"\n"
    finding = only(findings(wheel(tmp_path, {"big.pth": content})), PTH_IMPORT)
    assert "too large" in finding.message


def test_sdists_install_nothing_as_is(tmp_path):
    path = make_sdist(tmp_path, "demo", "1.0", files={"evil.pth": PAYLOAD})
    assert findings(path) == ()


# ---------------------------------------------------------------- the allowlist


@pytest.mark.parametrize(
    ("filename", "pth", "why"),
    [
        ("setuptools-80.9.0-py3-none-any.whl", "distutils-precedence.pth", "setuptools"),
        (
            "coverage-7.16.2-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64"
            ".manylinux_2_5_x86_64.whl",
            "a1_coverage.pth",
            "coverage",
        ),
        ("cmeel-0.61.0-py3-none-any.whl", "cmeel.pth", "cmeel"),
        (
            "sphinxcontrib_jsmath-1.0.1-py2.py3-none-any.whl",
            "sphinxcontrib_jsmath-1.0.1-py3.7-nspkg.pth",
            "namespace-package",
        ),
    ],
)
def test_real_startup_pth_files_are_listed_not_held(corpus, filename, pth, why):
    found = findings(corpus / filename)
    finding = only(found, PTH_ALLOWLISTED)
    assert finding.severity is Severity.INFO and finding.path == pth
    assert why in finding.message and finding.evidence.startswith("sha256=")
    assert PTH_IMPORT not in {f.check for f in found}


def test_allowlisted_name_from_another_project_is_held(tmp_path, corpus):
    # setuptools' real file, word for word, shipped by a project that is not setuptools.
    import zipfile

    with zipfile.ZipFile(corpus / "setuptools-80.9.0-py3-none-any.whl") as real:
        content = real.read("distutils-precedence.pth")
    found = findings(wheel(tmp_path, {"distutils-precedence.pth": content}, name="setuptool"))
    assert "not on the allowlist" in only(found, PTH_IMPORT).message


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"import base64; exec(base64.b64decode('cHJpbnQoMSk='))", "decodes data"),
        (b"import sys; exec('import subprocess\\nsubprocess.run([\"echo\"])')", "starts processes"),
        (b"import sys; exec('\\x70\\x72\\x69\\x6e\\x74(1)')", "decodes data"),
        (b"import urllib.request as u; u.urlopen('http://192.0.2.1/x')", "reaches the network"),
    ],
)
def test_allowlisted_pth_carrying_a_payload_is_held(tmp_path, payload, reason):
    path = wheel(tmp_path, {"a1_coverage.pth": payload}, name="coverage", version="9.9")
    finding = only(findings(path), PTH_IMPORT)
    assert finding.severity is Severity.HIGH
    assert "allowlisted for coverage" in finding.message and reason in finding.message


def test_allowlisted_pth_that_grew_far_beyond_the_real_one_is_held(tmp_path):
    content = b"import os; x = 1" + b"; x = 1" * 1000 + b"\n"
    path = wheel(tmp_path, {"cmeel.pth": content}, name="cmeel", version="9.9")
    assert "larger than any known" in only(findings(path), PTH_IMPORT).message


def test_configured_allowlist_admits_a_name_for_any_project(tmp_path):
    path = wheel(tmp_path, {"acme_boot.pth": b"import acme_boot\n"})
    assert only(findings(path), PTH_IMPORT)
    found = findings(path, pth_allowlist=frozenset({"acme_boot.pth"}))
    assert "in the configuration" in only(found, PTH_ALLOWLISTED).message


def _setuptools_nspkg_line(package: str) -> bytes:
    """The line the installed setuptools itself writes (the template of its generation)."""
    namespaces = pytest.importorskip("setuptools.namespaces")
    installer = namespaces.Installer()
    return installer._gen_nspkg_line(package).encode()


@pytest.mark.parametrize("package", ["acme", "acme.tools"])
def test_nspkg_written_by_setuptools_is_listed(tmp_path, package):
    content = _setuptools_nspkg_line("acme") + (
        _setuptools_nspkg_line(package) if "." in package else b""
    )
    path = wheel(tmp_path, {"acme.tools-1.0-py3.11-nspkg.pth": content})
    finding = only(findings(path), PTH_ALLOWLISTED)
    assert "namespace-package" in finding.message


@pytest.mark.parametrize(
    "tail", [b";import os;os.system('echo pwned')", b"\nimport os; os.system('echo pwned')"]
)
def test_nspkg_name_with_more_than_the_template_is_held(tmp_path, tail):
    content = _setuptools_nspkg_line("acme").rstrip(b"\n") + tail
    path = wheel(tmp_path, {"acme-1.0-py3.11-nspkg.pth": content})
    assert only(findings(path), PTH_IMPORT).severity is Severity.HIGH


# ---------------------------------------------------------------- sitecustomize


@pytest.mark.parametrize(
    "member",
    [
        "sitecustomize.py",
        "usercustomize/__init__.py",
        "sitecustomize.cpython-311-x86_64-linux-gnu.so",
        "demo-1.0.data/purelib/sitecustomize.py",
        "demo-1.0.data/data/lib/python3.11/sitecustomize.py",
    ],
)
def test_top_level_sitecustomize_is_held(tmp_path, member):
    finding = only(findings(wheel(tmp_path, {member: b"print('pwned')\n"})), SITECUSTOMIZE)
    assert finding.severity is Severity.HIGH and finding.path == member


def test_nested_sitecustomize_is_just_a_module(tmp_path):
    # debugpy ships pydevd's own sitecustomize.py deep inside its package.
    member = "demo/_vendored/pydev_sitecustomize/sitecustomize.py"
    assert findings(wheel(tmp_path, {member: b"print('hi')\n"})) == ()
