"""Where a wheel's members land when an installer unpacks it, for the start-up checks.

A wheel's root goes to site-packages (purelib or platlib, both on ``sys.path``), and so
do ``<name>.data/purelib/`` and ``<name>.data/platlib/``; ``<name>.data/scripts/`` goes to
the ``bin/`` (``Scripts\\``) directory on ``PATH``; ``<name>.data/data/`` goes under the
environment's prefix, where ``lib/python3.X/site-packages/`` is site-packages again and
``lib/python3.X/`` is the standard library itself. Everything else (``.dist-info``,
headers, other data) is not importable and is left out.

Also the few data files these checks ship (``quarantine/data/*.txt``), read once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources

from packaging.utils import NormalizedName, canonicalize_name

from quarantine.artifact import Artifact, MemberType


class Place(StrEnum):
    SITE = "site-packages"
    STDLIB = "standard library directory"
    SCRIPTS = "scripts directory"


@dataclass(frozen=True, slots=True)
class Landing:
    """A member file and the path it gets relative to the directory it lands in."""

    member: str
    place: Place
    path: str


# <name>.data/data/<prefix-relative path>: the site-packages and standard-library
# directories of POSIX (lib/python3.X, lib64, Debian's local/.../dist-packages) and Windows
# (Lib) layouts. Matched case-sensitively, as the POSIX installers write them.
_DATA_SITE = re.compile(
    r"(?:local/)?(?:lib|lib64)/(?:python|pypy)[^/]*/(?:site|dist)-packages/(?P<path>.+)"
    r"|Lib/site-packages/(?P<win>.+)"
)
_DATA_STDLIB = re.compile(
    r"(?:lib|lib64)/(?:python|pypy)\d[^/]*/(?:lib-dynload/)?(?P<path>[^/].*)|Lib/(?P<win>.+)"
)


def landings(artifact: Artifact) -> Iterator[Landing]:
    """Where each file member of a wheel lands (only importable places and scripts)."""
    if artifact.kind != "wheel" or artifact.error is not None:
        return
    for member in artifact.members:
        if member.type is MemberType.DIRECTORY or member.name.endswith("/"):
            continue
        landing = _landing(member.name)
        if landing is not None:
            yield landing


def _landing(name: str) -> Landing | None:
    top, slash, rest = name.partition("/")
    if top.endswith(".dist-info"):
        return None
    if not (top.endswith(".data") and slash):
        return Landing(name, Place.SITE, name)
    scheme, slash, path = rest.partition("/")
    if not slash or not path:
        return None
    if scheme in ("purelib", "platlib"):
        return Landing(name, Place.SITE, path)
    if scheme == "scripts":
        return Landing(name, Place.SCRIPTS, path)
    if scheme != "data":
        return None
    if match := _DATA_SITE.fullmatch(path):
        return Landing(name, Place.SITE, match["path"] or match["win"])
    if (match := _DATA_STDLIB.fullmatch(path)) and not path.startswith("Lib/site-packages/"):
        return Landing(name, Place.STDLIB, match["path"] or match["win"])
    return None


# A top-level module file: name, an optional ABI tag (cpython-311-x86_64-linux-gnu, abi3,
# cp311-win_amd64), and a suffix the import system loads.
_MODULE_FILE = re.compile(r"(?P<name>[^./]+)(?:\.[^./]+)?\.(?:py|pyc|pyw|so|pyd)")


@dataclass
class TopLevel:
    """One importable top-level name a wheel installs into a ``sys.path`` directory."""

    name: str
    place: Place
    members: list[str] = field(default_factory=list)
    module: bool = False  # a ``name.py`` / extension module file
    package_files: list[str] = field(default_factory=list)  # files directly in ``name/``

    @property
    def canonical(self) -> NormalizedName:
        return canonicalize_name(self.name)

    @property
    def portion_only(self) -> bool:
        """Only subpackages below the name, nothing of its own: a namespace portion."""
        return not self.module and not self.package_files

    def describe(self, limit: int = 3) -> str:
        shown = ", ".join(self.members[:limit])
        more = f" and {len(self.members) - limit} more" if len(self.members) > limit else ""
        return f"{shown}{more}"


def top_level_names(artifact: Artifact) -> dict[tuple[Place, str], TopLevel]:
    """The importable top-level modules and packages of a wheel, by (place, name), in
    site-packages and the standard-library directory; names that are not Python
    identifiers (``numpy.libs``, ``cmeel.prefix``) cannot be imported and are left out."""
    found: dict[tuple[Place, str], TopLevel] = {}
    for landing in landings(artifact):
        if landing.place is Place.SCRIPTS:
            continue
        first, slash, below = landing.path.partition("/")
        if slash:
            name = first
        elif match := _MODULE_FILE.fullmatch(first):
            name = match["name"]
        else:
            continue  # a data file at the top (LICENSE, a .pth, a .pyi stub)
        if not name.isidentifier():
            continue
        top = found.setdefault((landing.place, name), TopLevel(name, landing.place))
        top.members.append(landing.member)
        if not slash:
            top.module = True
        elif "/" not in below:
            top.package_files.append(landing.member)
    return found


def data_lines(filename: str) -> tuple[tuple[str, ...], ...]:
    """The rows of ``quarantine/data/<filename>``: whitespace-separated fields, with
    blank lines and ``#`` comments left out."""
    return _data_lines(filename)


@cache
def _data_lines(filename: str) -> tuple[tuple[str, ...], ...]:
    text = (resources.files("quarantine") / "data" / filename).read_text("utf-8")
    rows = []
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if fields:
            rows.append(tuple(fields))
    return tuple(rows)


@cache
def popular_projects() -> frozenset[str]:
    """The normalized names in ``quarantine/data/popular.txt``."""
    return frozenset(canonicalize_name(row[0]) for row in data_lines("popular.txt"))
