"""Native code in a wheel whose tags say pure Python (platform ``any``): compiled code no
reviewer or source check can read, in a file that claims to have none. Found by name
and by the magic numbers of each member's first bytes (ELF, PE, Mach-O), so a binary
renamed ``.dat`` is found too.

Graded by how the code would run, since real pure wheels do ship binaries: Windows
launchers (setuptools, distlib, pip) and DLLs loaded through ctypes (pyopengl) are low;
helper executables for Linux and macOS (selenium's selenium-manager, pulp's CBC solver)
are medium; code that runs without anyone calling it, an extension module Python loads
on ``import`` or an executable installed onto PATH, is high, and so is a binary under a
name that hides what it is.
"""

from __future__ import annotations

import posixpath
import struct
from dataclasses import dataclass
from typing import Final, Literal

from quarantine.artifact import HEAD_SIZE, Artifact, ArtifactError, MemberType
from quarantine.findings import CheckContext, Finding, Severity

NATIVE_CODE_IN_PURE_WHEEL: Final = "native-code-in-pure-wheel"

# Suffixes Python's import system loads as extension modules (on some platform).
EXTENSION_MODULE_SUFFIXES: Final = frozenset({".so", ".pyd"})
# Suffixes native code goes by (no suffix: a Unix executable). Native magic under any
# other suffix is a binary disguised as something else.
NATIVE_SUFFIXES: Final = frozenset(
    {"", ".so", ".pyd", ".dll", ".dylib", ".exe", ".bin", ".node", ".bundle", ".jnilib"}
    | {".o", ".a", ".lib", ".sys", ".ocx", ".cpl", ".elf", ".out"}
)
# How many paths one finding lists in its evidence.
MAX_LISTED: Final = 10

Format = Literal["ELF", "PE", "Mach-O"]

_MACH_O: Final = frozenset(
    {b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"}
)
_FAT: Final = frozenset({b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"})
# A fat Mach-O binary lists a few architectures; a Java class file, which shares its
# magic, has its version (45 and up) in the same place.
_MAX_FAT_ARCHITECTURES: Final = 20
_PE_OFFSET_AT: Final = 0x3C


@dataclass(frozen=True, slots=True)
class _Grade:
    severity: Severity
    message: str


_EXTENSION_MODULE = _Grade(
    Severity.HIGH,
    "The wheel is tagged pure Python but ships compiled extension modules, which run as "
    "soon as they are imported.",
)
_ON_PATH = _Grade(
    Severity.HIGH,
    "The wheel is tagged pure Python but installs native executables onto PATH.",
)
_DISGUISED = _Grade(
    Severity.HIGH,
    "The wheel is tagged pure Python but ships native binaries under names that hide "
    "what they are.",
)
_UNIX_BINARY = _Grade(
    Severity.MEDIUM,
    "The wheel is tagged pure Python but ships Linux or macOS binaries (ELF, Mach-O) "
    "that no source review can read.",
)
_WINDOWS_BINARY = _Grade(
    Severity.LOW,
    "The wheel is tagged pure Python but ships Windows binaries (PE), as script "
    "launchers and ctypes DLLs commonly are.",
)
_NAMED_ONLY = _Grade(
    Severity.INFO,
    "The wheel is tagged pure Python and has files named like native code that are not "
    "native binaries.",
)
_ORDER = (_EXTENSION_MODULE, _ON_PATH, _DISGUISED, _UNIX_BINARY, _WINDOWS_BINARY, _NAMED_ONLY)


def native_code_in_pure_wheel(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A wheel tagged for any platform (``py3-none-any``) ships native code: files named
    .so/.pyd/.dll/.dylib/.exe, or whose first bytes are an ELF, PE or Mach-O header.

    One finding per grade, listing the files: high for extension modules (run on import),
    native executables under ``.data/scripts`` (installed onto PATH) and binaries whose
    suffix hides them; medium for other ELF and Mach-O files; low for Windows PE files
    (launchers, ctypes DLLs); info for native-looking names with other content.
    """
    if artifact.kind != "wheel" or artifact.error is not None or not _pure(artifact):
        return []
    found: dict[_Grade, list[str]] = {}
    for member in artifact.members:
        if member.type is not MemberType.FILE or member.size == 0:
            continue
        grade = _grade(member.name, _format(artifact, member.name))
        if grade is not None:
            found.setdefault(grade, []).append(member.name)
    findings = []
    for grade in _ORDER:
        names = found.get(grade)
        if names:
            listed = ", ".join(names[:MAX_LISTED])
            more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
            findings.append(
                Finding(
                    NATIVE_CODE_IN_PURE_WHEEL,
                    grade.severity,
                    grade.message,
                    f"{len(names)} file(s): {listed}{more}",
                    names[0],
                )
            )
    return findings


def _pure(artifact: Artifact) -> bool:
    return bool(artifact.tags) and all(tag.platform == "any" for tag in artifact.tags)


def _format(artifact: Artifact, name: str) -> Format | None:
    """What native format the member's first bytes announce, if any."""
    try:
        head = artifact.head(name, HEAD_SIZE)
    except ArtifactError:  # a duplicated or corrupt member: other checks report it
        return None
    return binary_format(head)


def binary_format(head: bytes) -> Format | None:
    """ELF, PE or Mach-O by the magic numbers in ``head`` (a file's first HEAD_SIZE
    bytes), or None."""
    magic = head[:4]
    if magic == b"\x7fELF":
        return "ELF"
    if magic in _MACH_O:
        return "Mach-O"
    if magic in _FAT and len(head) >= 8:
        count = struct.unpack_from(">L", head, 4)[0]
        return "Mach-O" if 0 < count < _MAX_FAT_ARCHITECTURES else None
    if head[:2] == b"MZ" and len(head) >= _PE_OFFSET_AT + 4:
        # The DOS header points at the PE header; text that happens to start "MZ" has
        # printable bytes there, an offset far past any real header.
        offset = struct.unpack_from("<L", head, _PE_OFFSET_AT)[0]
        return "PE" if 0x40 <= offset < 0x10000 else None
    return None


def _grade(name: str, found: Format | None) -> _Grade | None:
    base = posixpath.basename(name).lower()
    suffix = posixpath.splitext(base)[1]
    versioned_library = ".so." in base or ".dylib." in base  # libfoo.so.1.2
    if found is None:
        if suffix in EXTENSION_MODULE_SUFFIXES | {".dll", ".dylib", ".exe"}:
            return _NAMED_ONLY
        return None
    if suffix in EXTENSION_MODULE_SUFFIXES:
        return _EXTENSION_MODULE
    top, _, rest = name.partition("/")
    if top.endswith(".data") and rest.startswith("scripts/"):
        return _ON_PATH
    if suffix not in NATIVE_SUFFIXES and not versioned_library:
        return _DISGUISED
    return _WINDOWS_BINARY if found == "PE" else _UNIX_BINARY
