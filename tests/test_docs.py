"""The README documents every command (the sqlite-utils habit)."""

from pathlib import Path

from mirror.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_command_is_documented_in_the_readme():
    for name in main.commands:
        assert f"`qmirror {name}" in README, f"qmirror {name} is not in the README"


def test_readme_opens_with_the_two_commands():
    blocks = README.split("```sh\n")[1:3]
    install, test = (block.split("\n```")[0] for block in blocks)
    assert (
        "pip install -e ." in install and "qmirror sync" in install and "qmirror serve" in install
    )
    assert test.strip() == "bash .ci/run"
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "pytest" in ci
