"""Top-level names a wheel installs that belong to someone else: another well-known or
already-mirrored project (``reqeusts`` installing ``requests/`` overwrites the real one's
files, and its code runs on every ``import requests``), or the standard library.

Who owns a name is, by default, the project of the same normalized name, when that project
is in ``quarantine/data/popular.txt`` or the mirror already carries it; names whose owners
differ (``yaml`` is PyYAML's, pytest ships ``py.py``, ``google/`` is shared by the
``google-*`` projects and protobuf) are listed in ``quarantine/data/top_level_owners.txt``.
Names many wheels ship by mistake (``tests/``, ``docs/``) are nobody's and are ignored.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterable
from functools import cache
from typing import Final

from packaging.utils import canonicalize_name

from quarantine.artifact import Artifact
from quarantine.checks.installed import (
    Place,
    TopLevel,
    data_lines,
    popular_projects,
    top_level_names,
)
from quarantine.findings import CheckContext, Finding, Severity

NAMESPACE_HIJACK: Final = "namespace-hijack"
STDLIB_SHADOWING: Final = "stdlib-shadowing"

TOP_LEVEL_OWNERS_FILE: Final = "top_level_owners.txt"

# Top-level names that many unrelated wheels ship (test suites, docs, build leftovers):
# nobody owns them, so installing one is no hijack (``test`` is also a stdlib package).
GENERIC_TOP_LEVEL_NAMES: Final = frozenset(
    {
        "__init__", "__main__", "__pycache__", "_version", "version", "conftest", "setup",
        "test", "tests", "testing", "testdata", "test_data", "docs", "doc", "examples",
        "example", "samples", "sample", "demo", "demos", "benchmarks", "benchmark", "bench",
        "scripts", "script", "tools", "utils", "util", "src", "lib", "build", "dist", "data",
        "notebooks", "tutorials", "bin", "share", "include", "etc", "config", "common", "core",
    }
)  # fmt: skip

# Standard-library modules of other Python versions than the one running: removed in 3.12
# and 3.13 (still importable on 3.11, republished on PyPI for later ones) and added in 3.14.
OTHER_STDLIB_MODULES: Final = frozenset(
    {
        "asynchat", "asyncore", "distutils", "imp", "smtpd",
        "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap",
        "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau",
        "telnetlib", "uu", "xdrlib",
        "annotationlib", "compression",
    }
)  # fmt: skip
STDLIB_MODULES: Final = frozenset(sys.stdlib_module_names) | OTHER_STDLIB_MODULES

MAX_EVIDENCE: Final = 300


def namespace_hijack(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A wheel that installs a top-level module or package belonging to another project:
    one in the popular list or already on the mirror (by name, or by the curated owners
    list for names that differ from their project's).

    High; low when the wheel is itself a popular project (popular projects that overlap,
    like pymongo's ``bson/``, are real conflicts, not attacks; the curated list names the
    known ones). A namespace portion (only subpackages, nothing directly in the shared
    directory) from a project named after the namespace (``google-auth`` adding
    ``google/auth/``) is the namespace-package convention and passes.
    """
    own = artifact.name
    if own is None:
        return []
    findings = []
    for top in _site_tops(artifact):
        owners = _owners_of(top, context)
        if owners is None or _owned(own, owners):
            continue
        if top.portion_only and own.startswith(f"{top.canonical}-"):
            continue  # google-auth adding google/auth/: the namespace-package convention
        severity = Severity.LOW if own in popular_projects() else Severity.HIGH
        what = "module" if top.module else "package"
        findings.append(
            Finding(
                NAMESPACE_HIJACK,
                severity,
                f"The wheel installs the top-level {what} {top.name}, which belongs to "
                f"{_names(owners)}, not {own}.",
                _clip(top.describe()),
                top.members[0],
            )
        )
    return findings


def stdlib_shadowing(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A wheel that installs a top-level module or package named like a standard-library
    module (a backport listed as the name's owner, or named after it, passes), or anything
    importable into the standard-library directory itself."""
    own = artifact.name
    findings = []
    for (place, name), top in sorted(top_level_names(artifact).items()):
        if place is Place.STDLIB:
            message = f"The wheel installs {name} into the standard-library directory."
        elif name in STDLIB_MODULES and name not in GENERIC_TOP_LEVEL_NAMES:
            owners = _owners().get(top.canonical, (top.canonical,))
            if own is not None and _owned(own, owners):
                continue
            message = f"The wheel installs a top-level {name}, shadowing the standard library."
        else:
            continue
        findings.append(
            Finding(STDLIB_SHADOWING, Severity.HIGH, message, _clip(top.describe()), top.members[0])
        )
    return findings


def _site_tops(artifact: Artifact) -> list[TopLevel]:
    return [
        top
        for (place, name), top in sorted(top_level_names(artifact).items())
        if place is Place.SITE and name not in GENERIC_TOP_LEVEL_NAMES
    ]


def _owners_of(top: TopLevel, context: CheckContext) -> tuple[str, ...] | None:
    """The projects a top-level name belongs to, or None when it is nobody's we know."""
    listed = _owners().get(top.canonical)
    if listed is not None:
        return listed
    canonical = top.canonical
    if canonical in popular_projects() or canonical in context.known_projects:
        return (canonical,)
    return None


@cache
def _owners() -> dict[str, tuple[str, ...]]:
    """The owners file as {normalized top-level name: owner patterns}."""
    return {
        canonicalize_name(row[0]): tuple(
            canonicalize_name(p) if "*" not in p else p for p in row[1:]
        )
        for row in data_lines(TOP_LEVEL_OWNERS_FILE)
    }


def _owned(project: str, owners: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(project, pattern) for pattern in owners)


def _names(owners: tuple[str, ...]) -> str:
    return " / ".join(owners)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
