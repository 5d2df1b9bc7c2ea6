"""Which files a mirror wants: the Python versions and platforms its users run.

``packaging.tags`` decides wheel compatibility and ``packaging.markers`` decides which
dependencies apply; this module only turns the configured names into their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from packaging.markers import Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.version import Version

# Newest glibc / macOS releases whose wheel tags we accept; older ones are implied.
MAX_GLIBC_MINOR = 40
MAX_MACOS = (26, 0)


def _manylinux(arch: str) -> list[str]:
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(MAX_GLIBC_MINOR, 4, -1)]
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    tags += [name + f"_{arch}" for name, minor in legacy.items() if minor <= MAX_GLIBC_MINOR]
    tags += [f"musllinux_1_{minor}_{arch}" for minor in range(2, -1, -1)]
    return [*tags, f"linux_{arch}"]


@dataclass(frozen=True)
class _Platform:
    tag_platforms: tuple[str, ...]
    markers: dict[str, str]


def _platform(name: str) -> _Platform:
    if name.startswith("linux-"):
        arch = name.split("-", 1)[1]
        return _Platform(
            tuple(_manylinux(arch)),
            {
                "sys_platform": "linux",
                "platform_system": "Linux",
                "os_name": "posix",
                "platform_machine": arch,
            },
        )
    if name.startswith("macos-"):
        arch = name.split("-", 1)[1]
        return _Platform(
            tuple(mac_platforms(MAX_MACOS, arch)),
            {
                "sys_platform": "darwin",
                "platform_system": "Darwin",
                "os_name": "posix",
                "platform_machine": arch,
            },
        )
    if name == "windows-amd64":
        return _Platform(
            ("win_amd64",),
            {
                "sys_platform": "win32",
                "platform_system": "Windows",
                "os_name": "nt",
                "platform_machine": "AMD64",
            },
        )
    raise ValueError(f"unknown platform {name!r}")


@dataclass(frozen=True)
class Targets:
    python_versions: tuple[str, ...]
    platforms: tuple[str, ...]

    @cached_property
    def tags(self) -> frozenset[Tag]:
        tags: set[Tag] = set()
        for python in self.python_versions:
            major, minor = (int(part) for part in python.split("."))
            for platform in self.platforms:
                tag_platforms = list(_platform(platform).tag_platforms)
                tags.update(cpython_tags((major, minor), platforms=tag_platforms))
                tags.update(
                    compatible_tags((major, minor), f"cp{major}{minor}", platforms=tag_platforms)
                )
        return frozenset(tags)

    @cached_property
    def marker_environments(self) -> tuple[dict[str, str], ...]:
        environments = []
        for python in self.python_versions:
            for platform in self.platforms:
                env = {
                    "python_version": python,
                    "python_full_version": f"{python}.0",
                    "implementation_name": "cpython",
                    "platform_python_implementation": "CPython",
                    "implementation_version": f"{python}.0",
                    "platform_release": "",
                    "platform_version": "",
                    "extra": "",
                }
                env.update(_platform(platform).markers)
                environments.append(env)
        return tuple(environments)

    def wheel_wanted(self, tags: frozenset[Tag]) -> bool:
        return not tags.isdisjoint(self.tags)

    def python_supported(self, requires_python: str | None) -> bool:
        """Whether any configured Python (any micro release of it) satisfies the file's
        ``Requires-Python``; an unparseable value keeps the file (the checks judge it)."""
        if not requires_python:
            return True
        try:
            spec = SpecifierSet(requires_python)
        except InvalidSpecifier:
            return True
        return any(
            spec.contains(Version(f"{python}.{micro}"), prereleases=True)
            for python in self.python_versions
            for micro in (0, 99)
        )

    def marker_applies(self, marker: Marker | None, extras: frozenset[str]) -> bool:
        if marker is None:
            return True
        for env in self.marker_environments:
            for extra in ("", *sorted(extras)):
                if marker.evaluate({**env, "extra": extra}):
                    return True
        return False
