"""script-shadows-command and plugin-entry-point: entry points that run a wheel's code when
something else is started."""

from __future__ import annotations

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.artifact import Artifact, parse_entry_points
from quarantine.checks import CATALOGUE, Check
from quarantine.checks.entrypoints import (
    PLUGIN_ENTRY_POINT,
    SCRIPT_SHADOWS_COMMAND,
    command_shadowed,
    plugin_entry_point,
    read_entry_points,
    script_shadows_command,
)
from tests.support.builders import make_wheel

CHECKS = [
    Check(SCRIPT_SHADOWS_COMMAND, script_shadows_command),
    Check(PLUGIN_ENTRY_POINT, plugin_entry_point),
]


def findings(path):
    return inspect_file(path, CheckContext(filename=path.name), checks=CHECKS).findings


def only(found, check):
    matching = [finding for finding in found if finding.check == check]
    assert len(matching) == 1, found
    return matching[0]


def test_the_checks_are_in_the_catalogue():
    assert {SCRIPT_SHADOWS_COMMAND, PLUGIN_ENTRY_POINT} <= {check.id for check in CATALOGUE}


# ---------------------------------------------------------------- shadowed commands


@pytest.mark.parametrize(
    ("entry_points", "command"),
    [
        ("[console_scripts]\ngit = demo:main\n", "git"),
        ("[gui_scripts]\nssh = demo:main\n", "ssh"),
        ("[console_scripts]\npip3.12 = demo:main\n", "pip"),
        ("[console_scripts]\nPython3 = demo:main\n", "python"),
        ("[console_scripts]\nsudo.exe = demo:main\n", "sudo"),
        ("[console_scripts]\npython-3 = demo:main\n", "python"),
    ],
)
def test_script_named_like_a_common_command_is_held(tmp_path, entry_points, command):
    path = make_wheel(tmp_path, "demo", "1.0", entry_points=entry_points)
    finding = only(findings(path), SCRIPT_SHADOWS_COMMAND)
    assert finding.severity is Severity.HIGH and f"the {command} command" in finding.message
    assert finding.path == "demo-1.0.dist-info/entry_points.txt"
    assert "demo:main" in finding.evidence


def test_plain_script_file_named_like_a_command_is_held(tmp_path):
    member = "demo-1.0.data/scripts/curl"
    files = {"demo/__init__.py": b"", member: b"#!/bin/sh\necho pwned\n"}
    finding = only(
        findings(make_wheel(tmp_path, "demo", "1.0", files=files)), SCRIPT_SHADOWS_COMMAND
    )
    assert finding.path == member and "curl command" in finding.message


def test_a_tool_command_belongs_to_its_own_project_only(tmp_path):
    entry_points = "[console_scripts]\npip = pip_tools.cli:main\n"
    path = make_wheel(tmp_path, "pip-tools", "1.0", entry_points=entry_points)
    assert only(findings(path), SCRIPT_SHADOWS_COMMAND).severity is Severity.HIGH
    path = make_wheel(tmp_path, "pip", "99.0", entry_points=entry_points)
    assert findings(path) == ()


def test_a_project_named_like_a_system_command_does_not_own_it(tmp_path):
    path = make_wheel(tmp_path, "git", "1.0", entry_points="[console_scripts]\ngit = git:main\n")
    assert only(findings(path), SCRIPT_SHADOWS_COMMAND).severity is Severity.HIGH


@pytest.mark.parametrize(
    ("filename", "scripts"),
    [
        ("pip-26.2.1-py3-none-any.whl", {"pip", "pip3"}),
        ("pytest-9.1.1-py3-none-any.whl", {"pytest", "py.test"}),
        ("jupyter_core-5.9.1-py3-none-any.whl", {"jupyter"}),
    ],
)
def test_real_projects_own_their_commands(corpus, filename, scripts):
    with Artifact.open(corpus / filename) as artifact:
        names = {ep.name for ep in read_entry_points(artifact) if ep.group == "console_scripts"}
    assert scripts <= names and all(command_shadowed(name) for name in scripts)
    assert SCRIPT_SHADOWS_COMMAND not in {f.check for f in findings(corpus / filename)}


@pytest.mark.parametrize(
    "name", ["gitlint", "git-clang-format", "pythonw-helper", "lsm2bin", "f2py3.11", "pip-sync"]
)
def test_names_that_only_start_like_a_command_pass(tmp_path, name):
    path = make_wheel(tmp_path, "demo", "1.0", entry_points=f"[console_scripts]\n{name} = d:m\n")
    assert findings(path) == ()


@pytest.mark.parametrize("name", ["../../lib/python3.11/site-packages/x", "..\\evil", ".."])
def test_script_name_that_is_a_path_is_held(tmp_path, name):
    path = make_wheel(tmp_path, "demo", "1.0", entry_points=f"[console_scripts]\n{name} = d:m\n")
    assert "is a path" in only(findings(path), SCRIPT_SHADOWS_COMMAND).message


@pytest.mark.parametrize(
    "text",
    [
        "[console_scripts]\ndemo = demo:main\n    git = demo:evil\n",  # configparser: continuation
        "[console_scripts]\ndemo = demo:main\x1cgit = demo:evil\n",  # str.splitlines splits here
        "[[console_scripts]]\ngit = demo:evil\n",  # importlib.metadata strips the brackets
    ],
)
def test_entry_points_are_read_as_installers_read_them(tmp_path, text):
    path = make_wheel(tmp_path, "demo", "1.0", entry_points=text)
    # The artifact's own reader agrees with installers (a configparser reading would not).
    assert "git" in parse_entry_points(text.encode()).get("console_scripts", {})
    assert "git command" in only(findings(path), SCRIPT_SHADOWS_COMMAND).message


def test_wheel_without_a_dist_info_is_left_to_metadata_missing(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0", entry_points="[console_scripts]\ngit = d:m\n")
    path = path.rename(tmp_path / "other-1.0-py3-none-any.whl")  # no other-1.0.dist-info
    assert findings(path) == ()


# ---------------------------------------------------------------- plugin groups


def test_autoloaded_plugins_are_listed_for_the_reviewer(tmp_path):
    entry_points = (
        "[pytest11]\ndemo = demo.plugin\n\n[keyring.backends]\ndemo = demo.kr\n\n"
        "[sphinx.html_themes]\ndemo = demo.theme\n"  # loaded by name only
    )
    found = findings(make_wheel(tmp_path, "demo", "1.0", entry_points=entry_points))
    assert [(f.check, f.severity) for f in found] == [(PLUGIN_ENTRY_POINT, Severity.INFO)] * 2
    assert found[0].evidence == "[pytest11] demo = demo.plugin"
    assert "pytest at every run" in found[0].message


def test_hosts_own_builtin_plugins_are_not_listed(corpus):
    found = findings(corpus / "setuptools-80.9.0-py3-none-any.whl")
    assert PLUGIN_ENTRY_POINT not in {f.check for f in found}
