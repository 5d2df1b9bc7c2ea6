"""Drift between a project's last approved release and a new file: two real releases
built here (benign N; N+1 unchanged, or poisoned in one way each) run through the real
inspection, then compared."""

from __future__ import annotations

import pytest

from quarantine.drift import (
    DRIFT_NEW_DEPENDENCY,
    DRIFT_NEW_EMAIL,
    DRIFT_NEW_EMAIL_DOMAIN,
    DRIFT_NEW_MODEL_FILE,
    DRIFT_NEW_NATIVE,
    DRIFT_NEW_PTH,
    DRIFT_NEW_SCRIPT,
    DRIFT_NEW_TOP_LEVEL,
    DRIFT_NEW_UNKNOWN_DEPENDENCY,
    DRIFT_SIZE_JUMP,
    DRIFT_URL_HOST,
    PROVENANCE_MISSING,
    PROVENANCE_PUBLISHER_CHANGED,
    DriftContext,
    Publisher,
    drift_findings,
    snapshot_of,
)
from quarantine.findings import CheckContext, Severity
from quarantine.inspection import inspect_file
from tests.support.builders import make_sdist, make_wheel

GITHUB = Publisher("GitHub", "acme/widget", "release.yml", "pypi")


def metadata(version, *, email="Ann <ann@acme.example>", home="https://acme.example/widget",
             requires=("attrs>=23",), extra=""):  # fmt: skip
    lines = [
        "Metadata-Version: 2.1",
        "Name: widget",
        f"Version: {version}",
        f"Author-email: {email}",
        f"Home-page: {home}",
        "Project-URL: Source, https://github.com/acme/widget",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    return "\n".join(lines) + "\n" + extra + "\n"


BASE_FILES = {
    "widget/__init__.py": b"VERSION = 1\n",
    "widget/_speedups.cpython-311-x86_64-linux-gnu.so": b"\x7fELF" + b"\0" * 64,
}
SCRIPTS = "[console_scripts]\nwidget = widget:main\n"


def release(tmp_path, version, *, files=None, entry_points=SCRIPTS, **meta):
    directory = tmp_path / version
    directory.mkdir(parents=True)
    wheel = make_wheel(
        directory, "widget", version, tag="cp311-cp311-manylinux_2_28_x86_64",
        files={**BASE_FILES, **(files or {})}, entry_points=entry_points,
        metadata=metadata(version, **meta),
    )  # fmt: skip
    return inspect_file(wheel, CheckContext(filename=wheel.name))


def compare(tmp_path, new_inspection, *, before=GITHUB, after=GITHUB, context=None):
    old = snapshot_of(release(tmp_path, "1.0"), (before,) if before else None)
    new = snapshot_of(new_inspection, (after,) if after else None)
    return drift_findings(old, new, context or DriftContext(frozenset({"attrs", "requests"})))


def ids(findings):
    return sorted(f.check for f in findings)


def test_an_unchanged_next_release_has_no_drift(tmp_path):
    assert compare(tmp_path, release(tmp_path, "1.1")) == []


def test_new_email_address_and_new_domain(tmp_path):
    same_domain = compare(tmp_path, release(tmp_path, "1.1", email="Bo <bo@acme.example>"))
    assert ids(same_domain) == [DRIFT_NEW_EMAIL]
    assert same_domain[0].severity is Severity.LOW
    elsewhere = compare(tmp_path / "x", release(tmp_path, "1.2", email="x <x@mail.evil.example>"))
    assert ids(elsewhere) == [DRIFT_NEW_EMAIL_DOMAIN]
    assert "x@mail.evil.example" in elsewhere[0].evidence


def test_changed_home_page_host(tmp_path):
    findings = compare(tmp_path, release(tmp_path, "1.1", home="https://acme-widget.example/"))
    assert ids(findings) == [DRIFT_URL_HOST]
    assert "acme-widget.example" in findings[0].evidence


def test_new_dependency_known_unknown_and_young(tmp_path):
    known = compare(tmp_path, release(tmp_path, "1.1", requires=("attrs>=23", "requests")))
    assert ids(known) == [DRIFT_NEW_DEPENDENCY] and known[0].severity is Severity.LOW
    unknown = compare(tmp_path / "u", release(tmp_path, "1.2", requires=("attrs", "colorama2")))
    assert ids(unknown) == [DRIFT_NEW_UNKNOWN_DEPENDENCY]
    assert unknown[0].severity is Severity.HIGH and unknown[0].evidence == "colorama2"
    young = compare(
        tmp_path / "y",
        release(tmp_path, "1.3", requires=("attrs", "requests")),
        context=DriftContext(frozenset({"attrs", "requests"}), frozenset({"requests"})),
    )
    assert ids(young) == [DRIFT_NEW_UNKNOWN_DEPENDENCY]
    assert "recently" in young[0].message


def test_new_console_script(tmp_path):
    scripts = SCRIPTS + "sudo = widget.evil:main\n"
    findings = compare(tmp_path, release(tmp_path, "1.1", entry_points=scripts))
    assert ids(findings) == [DRIFT_NEW_SCRIPT] and "sudo" in findings[0].evidence


def test_new_pth_file_is_high(tmp_path):
    pth = {"widget-init.pth": b"import widget._hook\n"}
    findings = compare(tmp_path, release(tmp_path, "1.1", files=pth))
    assert DRIFT_NEW_PTH in ids(findings)
    (finding,) = [f for f in findings if f.check == DRIFT_NEW_PTH]
    assert finding.severity is Severity.HIGH and finding.path == "widget-init.pth"


def test_new_native_binary_but_not_a_rebuilt_one(tmp_path):
    rebuilt = {"widget/_speedups.cpython-312-x86_64-linux-gnu.so": b"\x7fELF" + b"\0" * 64}
    assert compare(tmp_path, release(tmp_path, "1.1", files=rebuilt)) == []
    new = {"widget/libstealer.so": b"\x7fELF" + b"\1" * 64}
    findings = compare(tmp_path / "n", release(tmp_path, "1.2", files=new))
    assert ids(findings) == [DRIFT_NEW_NATIVE] and "libstealer" in findings[0].evidence


def test_new_top_level_package(tmp_path):
    findings = compare(tmp_path, release(tmp_path, "1.1", files={"requests/__init__.py": b""}))
    assert ids(findings) == [DRIFT_NEW_TOP_LEVEL] and findings[0].evidence == "requests"


def test_new_model_file(tmp_path):
    findings = compare(tmp_path, release(tmp_path, "1.1", files={"widget/model.pkl": b"\x80\x04."}))
    assert ids(findings) == [DRIFT_NEW_MODEL_FILE]


def test_large_jump_in_size(tmp_path):
    import os

    blob = {"widget/data/blob.dat": os.urandom(3_000_000)}
    assert DRIFT_SIZE_JUMP in ids(compare(tmp_path, release(tmp_path, "1.1", files=blob)))


def test_large_jump_in_member_count(tmp_path):
    many = {f"widget/gen/m{i}.py": b"" for i in range(300)}
    findings = compare(tmp_path, release(tmp_path, "1.1", files=many))
    assert ids(findings) == [DRIFT_SIZE_JUMP] and "members" in findings[0].message


def test_provenance_disappears_or_its_publisher_changes(tmp_path):
    gone = compare(tmp_path, release(tmp_path, "1.1"), after=None)
    assert ids(gone) == [PROVENANCE_MISSING] and gone[0].severity is Severity.HIGH
    fork = Publisher("GitHub", "evil/widget", "release.yml", "pypi")
    moved = compare(tmp_path / "m", release(tmp_path, "1.2"), after=fork)
    assert ids(moved) == [PROVENANCE_PUBLISHER_CHANGED] and "evil/widget" in moved[0].evidence
    renamed_environment = Publisher("GitHub", "acme/widget", "release.yml", "release")
    assert compare(tmp_path / "e", release(tmp_path, "1.3"), after=renamed_environment) == []
    never_had_it = compare(tmp_path / "n", release(tmp_path, "1.4"), before=None, after=None)
    assert never_had_it == []


def test_poisoned_release_with_every_change_at_once(tmp_path):
    poisoned = release(
        tmp_path, "1.1",
        email="Maint <maint@proton.example>", home="https://widget-docs.example/",
        requires=("attrs>=23", "colorama2"),
        entry_points=SCRIPTS + "git = widget.shadow:main\n",
        files={"widget.pth": b"import widget\n", "widget/payload.pkl": b"\x80\x04.",
               "widget/helper.so": b"\x7fELF" + b"\2" * 64, "stealer/__init__.py": b""},
    )  # fmt: skip
    findings = compare(tmp_path, poisoned, after=None)
    assert ids(findings) == sorted(
        [
            DRIFT_NEW_EMAIL_DOMAIN, DRIFT_URL_HOST, DRIFT_NEW_UNKNOWN_DEPENDENCY,
            DRIFT_NEW_SCRIPT, DRIFT_NEW_PTH, DRIFT_NEW_NATIVE, DRIFT_NEW_TOP_LEVEL,
            DRIFT_NEW_MODEL_FILE, PROVENANCE_MISSING,
        ]
    )  # fmt: skip


def test_sdists_compare_their_contents_not_their_root_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = make_sdist(tmp_path / "a", "widget", "1.0")
    new = make_sdist(tmp_path / "b", "widget", "1.1", files={"widget.pth": b"import os\n"})
    before = snapshot_of(inspect_file(old, CheckContext(filename=old.name)))
    after = snapshot_of(inspect_file(new, CheckContext(filename=new.name)))
    assert ids(drift_findings(before, after)) == [DRIFT_NEW_PTH]
    same = make_sdist(tmp_path / "b", "widget", "1.2")
    unchanged = snapshot_of(inspect_file(same, CheckContext(filename=same.name)))
    assert drift_findings(before, unchanged) == []


@pytest.mark.parametrize("check_id", [DRIFT_NEW_PTH, PROVENANCE_MISSING, DRIFT_NEW_EMAIL_DOMAIN])
def test_drift_ids_are_known_to_config(check_id):
    from quarantine.checks import known_check_ids

    assert check_id in known_check_ids()
