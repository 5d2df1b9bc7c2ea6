"""namespace-hijack and stdlib-shadowing: top-level names that belong to someone else."""

from __future__ import annotations

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks import CATALOGUE, Check
from quarantine.checks.namespace import (
    NAMESPACE_HIJACK,
    STDLIB_SHADOWING,
    namespace_hijack,
    stdlib_shadowing,
)
from tests.support.builders import make_wheel

CHECKS = [
    Check(NAMESPACE_HIJACK, namespace_hijack),
    Check(STDLIB_SHADOWING, stdlib_shadowing),
]
PAYLOAD = b"print('pwned')\n"


def findings(path, **context):
    return inspect_file(path, CheckContext(filename=path.name, **context), checks=CHECKS).findings


def only(found, check):
    matching = [finding for finding in found if finding.check == check]
    assert len(matching) == 1, found
    return matching[0]


def wheel(tmp_path, name, files, version="1.0"):
    return make_wheel(tmp_path, name, version, files=files)


def test_the_checks_are_in_the_catalogue():
    assert {NAMESPACE_HIJACK, STDLIB_SHADOWING} <= {check.id for check in CATALOGUE}


# ---------------------------------------------------------------- namespace hijack


@pytest.mark.parametrize(
    ("name", "files", "owner"),
    [
        ("reqeusts", {"requests/__init__.py": PAYLOAD, "requests/api.py": b""}, "requests"),
        ("reqeusts", {"requests.py": PAYLOAD}, "requests"),
        ("demo", {"demo/__init__.py": b"", "urllib3/connection.py": PAYLOAD}, "urllib3"),
        ("pyyamll", {"yaml/__init__.py": PAYLOAD}, "pyyaml"),  # an import name != project
        ("opencv-python-pwn", {"cv2/__init__.py": PAYLOAD}, "opencv-python"),
        ("evil", {"numpy/core/multiarray.py": PAYLOAD}, "numpy"),  # only a subpackage
    ],
)
def test_top_level_name_of_a_popular_project_is_held(tmp_path, name, files, owner):
    finding = only(findings(wheel(tmp_path, name, files)), NAMESPACE_HIJACK)
    assert finding.severity is Severity.HIGH
    assert owner in finding.message and finding.path in files


def test_names_of_projects_the_mirror_carries_are_protected(tmp_path):
    path = wheel(tmp_path, "helper", {"acme_billing/__init__.py": PAYLOAD})
    assert findings(path) == ()
    found = findings(path, known_projects=frozenset({"acme-billing"}))
    assert "acme-billing" in only(found, NAMESPACE_HIJACK).message


def test_a_popular_project_overlapping_another_only_warns(tmp_path):
    # Real conflicts between popular projects exist (pymongo's bson/ vs the bson project).
    path = wheel(tmp_path, "boto3", {"boto3/__init__.py": b"", "six.py": b""}, version="9.9")
    assert only(findings(path), NAMESPACE_HIJACK).severity is Severity.LOW


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("google-cloud-acme", {"google/cloud/acme/__init__.py": b""}),  # a namespace portion
        ("pyyaml", {"yaml/__init__.py": b""}),  # the curated owner
        ("pymongo", {"pymongo/__init__.py": b"", "bson/__init__.py": b""}),
        ("typing-extensions", {"typing_extensions.py": b""}),
        ("demo", {"demo/__init__.py": b"", "tests/__init__.py": b"", "docs/conf.py": b""}),
        ("demo", {"demo/__init__.py": b"", "numpy.libs/libgfortran.so.5": b""}),
    ],
)
def test_legitimate_overlaps_pass(tmp_path, name, files):
    assert findings(wheel(tmp_path, name, files)) == ()


def test_a_namespace_portion_of_another_family_is_held(tmp_path):
    # `google-*` projects share google/ by convention; a project of another name does not.
    path = wheel(tmp_path, "gooogle-auth", {"google/auth/__init__.py": PAYLOAD})
    assert only(findings(path), NAMESPACE_HIJACK).severity is Severity.HIGH


@pytest.mark.parametrize(
    "filename",
    [
        "pytest-9.1.1-py3-none-any.whl",  # py.py, shared with the py project
        "setuptools-80.9.0-py3-none-any.whl",  # pkg_resources, _distutils_hack
        "jupyter_core-5.9.1-py3-none-any.whl",  # jupyter.py
        "six-1.17.0-py2.py3-none-any.whl",
        "sphinxcontrib_jsmath-1.0.1-py2.py3-none-any.whl",
    ],
)
def test_real_releases_with_shared_names_pass(corpus, filename):
    assert findings(corpus / filename) == ()


# ---------------------------------------------------------------- standard library


@pytest.mark.parametrize(
    "member",
    [
        "subprocess.py",
        "json/__init__.py",
        "_ssl.cpython-311-x86_64-linux-gnu.so",
        "cgi.py",  # removed in 3.13: shadows it there for real
        "demo-1.0.data/purelib/socket.py",
    ],
)
def test_module_named_like_the_standard_library_is_held(tmp_path, member):
    path = wheel(tmp_path, "demo", {"demo/__init__.py": b"", member: PAYLOAD})
    finding = only(findings(path), STDLIB_SHADOWING)
    assert finding.severity is Severity.HIGH and finding.path == member


def test_anything_written_into_the_standard_library_directory_is_held(tmp_path):
    member = "demo-1.0.data/data/lib/python3.11/demo_helper.py"
    finding = only(findings(wheel(tmp_path, "demo", {member: PAYLOAD})), STDLIB_SHADOWING)
    assert "standard-library directory" in finding.message


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("argparse", {"argparse.py": b""}),  # the PyPI backport, named after its module
        ("enum34", {"enum/__init__.py": b""}),
        ("futures", {"concurrent/__init__.py": b"", "concurrent/futures/__init__.py": b""}),
        ("legacy-cgi", {"cgi.py": b"", "cgitb.py": b""}),
        ("demo", {"demo/__init__.py": b"", "test/test_demo.py": b""}),  # test/: generic
        ("gmsh", {"gmsh.py": b"", "gmsh-1.0.data/data/lib/libgmsh.so": b""}),
    ],
)
def test_backports_and_look_alikes_pass(tmp_path, name, files):
    assert findings(wheel(tmp_path, name, files)) == ()


def test_a_backport_name_does_not_cover_other_projects(tmp_path):
    path = wheel(tmp_path, "enum35", {"enum/__init__.py": PAYLOAD})
    assert only(findings(path), STDLIB_SHADOWING).severity is Severity.HIGH
