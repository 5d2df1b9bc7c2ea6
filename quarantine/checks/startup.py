"""Code a wheel makes run at every Python start-up, before any import of its own: ``.pth``
files in site-packages (``site.py`` executes their lines that start with ``import``; the
litellm 1.82.8 credential stealer was one) and ``sitecustomize``/``usercustomize`` modules
(``site.py`` imports them by name from anywhere on ``sys.path``).

A few real projects do this on purpose. ``quarantine/data/pth_allowlist.txt`` names their
``.pth`` files together with the project that owns each one (so ``evil`` shipping a
``distutils-precedence.pth`` is not setuptools), ``[checks] pth_allowlist`` in the config
adds names for any project, and the legacy namespace ``*-nspkg.pth`` files setuptools wrote
are recognised by their exact template. Even an allowed file is held when its code
decodes data, starts processes or reaches the network, which none of the legitimate ones
does; a change of content between releases is the drift check's to report.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Final

from quarantine.artifact import Artifact, safe_text
from quarantine.checks.installed import Place, data_lines, landings, top_level_names
from quarantine.findings import CheckContext, Finding, Severity

PTH_IMPORT: Final = "pth-import"
PTH_ALLOWLISTED: Final = "pth-allowlisted"
PTH_PATH: Final = "pth-path"
SITECUSTOMIZE: Final = "sitecustomize-installed"

PTH_ALLOWLIST_FILE: Final = "pth_allowlist.txt"
# Modules site.py imports at start-up by name, from any sys.path directory.
STARTUP_MODULES: Final = frozenset({"sitecustomize", "usercustomize"})

# A .pth larger than this is not read: site.py would run it whole, so it is held as is.
MAX_PTH_SIZE: Final = 64 * 1024
# The largest legitimate executable .pth known (pytest-cov's) is about 1 KiB; an allowed
# name carrying more than this is held. Namespace files are matched by template instead.
MAX_ALLOWLISTED_PTH_SIZE: Final = 4 * 1024
MAX_EVIDENCE: Final = 300

# What none of the allowed .pth files does (coverage's and pytest-cov's exec() a literal,
# hunter's eval()s its environment variable, setuptools' and the namespace files call
# __import__, pywin32's getattr()s): an allowed name whose executed lines do any of this
# is held. Matched on the executed lines only, string literals included (exec'd source).
SUSPICIOUS_PTH_CODE: Final = (
    (
        "decodes data",
        re.compile(
            r"base64|b(?:16|32|64|85)decode|a85decode|binascii|unhexlify|fromhex|zlib|gzip"
            r"|bz2|lzma|marshal|pickle|codecs|rot_?13|decompress|bytearray|\bbytes\s*\("
            r"|\bchr\s*\(|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}"
        ),
    ),
    (
        "starts processes",
        re.compile(r"subprocess|popen|\bsystem\s*\(|spawn|os\.exec|\bfork\b|\bpty\b"),
    ),
    (
        "reaches the network",
        re.compile(
            r"socket|urllib|urlopen|urlretrieve|http\.client|httplib|\brequests\b|httpx"
            r"|aiohttp|ftplib|smtplib|telnetlib|webbrowser|https?://"
        ),
    ),
    (
        "opens files or native code",
        re.compile(r"ctypes|\bcompile\s*\(|\bopen\s*\(|shutil|tempfile"),
    ),
)

# The lines setuptools' namespace installer (setuptools/namespaces.py) writes into a
# wheel's <dist>-<version>-pyX.Y-nspkg.pth, one per namespace package, three generations
# of it. {pkg} is a package name literal, {pth} the tuple of its components; a dotted
# package adds NSPKG_MULTI_TEMPLATE. Compared with all whitespace removed.
NSPKG_TEMPLATES: Final = (
    (  # setuptools >= 69
        "import sys, types, os",
        "p = os.path.join(sys._getframe(1).f_locals['sitedir'], *{pth})",
        "importlib = __import__('importlib.util')",
        "__import__('importlib.machinery')",
        "m = sys.modules.setdefault({pkg}, importlib.util.module_from_spec("
        "importlib.machinery.PathFinder.find_spec({pkg}, [os.path.dirname(p)])))",
        "m = m or sys.modules.setdefault({pkg}, types.ModuleType({pkg}))",
        "mp = (m or []) and m.__dict__.setdefault('__path__',[])",
        "(p not in mp) and mp.append(p)",
    ),
    (  # setuptools 31 - 68
        "import sys, types, os",
        "has_mfs = sys.version_info > (3, 5)",
        "p = os.path.join(sys._getframe(1).f_locals['sitedir'], *{pth})",
        "importlib = has_mfs and __import__('importlib.util')",
        "has_mfs and __import__('importlib.machinery')",
        "m = has_mfs and sys.modules.setdefault({pkg}, importlib.util.module_from_spec("
        "importlib.machinery.PathFinder.find_spec({pkg}, [os.path.dirname(p)])))",
        "m = m or sys.modules.setdefault({pkg}, types.ModuleType({pkg}))",
        "mp = (m or []) and m.__dict__.setdefault('__path__',[])",
        "(p not in mp) and mp.append(p)",
    ),
    (  # setuptools < 31
        "import sys, types, os",
        "p = os.path.join(sys._getframe(1).f_locals['sitedir'], *{pth})",
        "ie = os.path.exists(os.path.join(p,'__init__.py'))",
        "m = not ie and sys.modules.setdefault({pkg}, types.ModuleType({pkg}))",
        "mp = (m or []) and m.__dict__.setdefault('__path__',[])",
        "(p not in mp) and mp.append(p)",
    ),
)
NSPKG_MULTI_TEMPLATE: Final = "m and setattr(sys.modules[{pkg}], {pkg}, m)"
NSPKG_SUFFIX: Final = "-nspkg.pth"

_LITERAL = r"""(?:'[A-Za-z_][\w.]*'|"[A-Za-z_][\w.]*")"""
_TUPLE = rf"\((?:{_LITERAL},)+(?:{_LITERAL})?\)"


@cache
def _nspkg_patterns() -> tuple[re.Pattern[str], ...]:
    """One regex per template generation, with and without the dotted-package line."""
    patterns = []
    for template in NSPKG_TEMPLATES:
        for lines in (template, (*template, NSPKG_MULTI_TEMPLATE)):
            text = "".join(";".join(lines).split())
            escaped = re.escape(text).replace(r"\{pkg\}", "{pkg}").replace(r"\{pth\}", "{pth}")
            patterns.append(re.compile(escaped.format(pkg=_LITERAL, pth=_TUPLE) + ";?"))
    return tuple(patterns)


def _is_nspkg_line(line: str) -> bool:
    compact = "".join(line.split())
    return any(pattern.fullmatch(compact) for pattern in _nspkg_patterns())


class _Kind(Enum):
    PATHS = "paths"  # only sys.path entries
    ALLOWED = "allowed"  # runs code, known legitimate
    CODE = "code"  # runs code, not allowed (or allowed but suspicious)


@dataclass(frozen=True)
class _Pth:
    member: str
    name: str
    kind: _Kind
    executed: tuple[str, ...]
    paths: tuple[str, ...]
    sha256: str
    why: str  # for CODE: what makes it hold; for ALLOWED: why it is allowed


def pth_import(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A ``.pth`` file installed into site-packages with a line ``site.py`` executes at
    every interpreter start (one starting with ``import``) and not on the allowlist for
    this project, or allowlisted but decoding data, starting processes or reaching the
    network."""
    return [
        Finding(
            PTH_IMPORT,
            Severity.HIGH,
            f"The .pth file {pth.name} runs code at every Python start-up ({pth.why}).",
            _clip(f"{pth.name}: {' | '.join(pth.executed)}"),
            pth.member,
        )
        for pth in _pth_files(artifact, context)
        if pth.kind is _Kind.CODE
    ]


def pth_allowlisted(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A ``.pth`` file that runs code at start-up and is a known legitimate one (allowlisted
    for this project, or a setuptools namespace file): listed with its digest so a reviewer,
    and the drift check, can compare it with the last release."""
    return [
        Finding(
            PTH_ALLOWLISTED,
            Severity.INFO,
            f"The .pth file {pth.name} runs code at every Python start-up; it is {pth.why}.",
            _clip(f"sha256={pth.sha256} {pth.name}: {' | '.join(pth.executed)}"),
            pth.member,
        )
        for pth in _pth_files(artifact, context)
        if pth.kind is _Kind.ALLOWED
    ]


def pth_path(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A ``.pth`` file installed into site-packages that only adds directories to
    ``sys.path`` (no line that runs code)."""
    return [
        Finding(
            PTH_PATH,
            Severity.LOW,
            f"The .pth file {pth.name} adds directories to sys.path at every Python start-up.",
            _clip(f"{pth.name}: {' | '.join(pth.paths)}"),
            pth.member,
        )
        for pth in _pth_files(artifact, context)
        if pth.kind is _Kind.PATHS and pth.paths
    ]


def sitecustomize_installed(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A ``sitecustomize`` or ``usercustomize`` module or package installed at the top of
    site-packages (or the standard-library directory): ``site.py`` imports it at every
    interpreter start."""
    return [
        Finding(
            SITECUSTOMIZE,
            Severity.HIGH,
            f"The wheel installs a top-level {top.name} module, which Python imports at "
            "every start-up.",
            _clip(top.describe()),
            top.members[0],
        )
        for (_place, name), top in sorted(top_level_names(artifact).items())
        if name in STARTUP_MODULES
    ]


# ---------------------------------------------------------------- reading .pth files


def _pth_files(artifact: Artifact, context: CheckContext) -> Iterator[_Pth]:
    for landing in landings(artifact):
        path = landing.path
        if landing.place is Place.SITE and "/" not in path and path.endswith(".pth"):
            yield _read_pth(artifact, context, landing.member, path)


def _read_pth(artifact: Artifact, context: CheckContext, member: str, name: str) -> _Pth:
    found = artifact.member(member)
    if found is not None and found.size > MAX_PTH_SIZE:
        why = f"{found.size} bytes, too large to inspect"
        return _Pth(member, name, _Kind.CODE, ("(not read)",), (), "", why)
    data = artifact.read(member, MAX_PTH_SIZE)
    executed, paths = _pth_lines(data)
    sha256 = hashlib.sha256(data).hexdigest()
    if not executed:
        return _Pth(member, name, _Kind.PATHS, executed, paths, sha256, "")
    if name.endswith(NSPKG_SUFFIX) and all(_is_nspkg_line(line) for line in executed):
        why = "a setuptools namespace-package file"
        return _Pth(member, name, _Kind.ALLOWED, executed, paths, sha256, why)
    allowed_by = _allowed_by(artifact, context, name)
    if allowed_by is None:
        return _Pth(member, name, _Kind.CODE, executed, paths, sha256, "not on the allowlist")
    suspicious = [label for label, pattern in SUSPICIOUS_PTH_CODE if _search(pattern, executed)]
    if len(data) > MAX_ALLOWLISTED_PTH_SIZE:
        suspicious.append(f"{len(data)} bytes, larger than any known legitimate one")
    if suspicious:
        why = f"allowlisted {allowed_by}, but it {', '.join(suspicious)}"
        return _Pth(member, name, _Kind.CODE, executed, paths, sha256, why)
    return _Pth(member, name, _Kind.ALLOWED, executed, paths, sha256, f"allowlisted {allowed_by}")


def _pth_lines(data: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(executed lines, path lines) as ``site.addpackage`` reads them: universal newlines,
    ``#`` comments and blank lines skipped, lines starting ``import`` + space or tab run
    with exec(), the rest added to sys.path. A UTF-8 BOM is dropped first (Python 3.13
    decodes .pth files as utf-8-sig)."""
    text = data.decode("utf-8", "replace").removeprefix("\ufeff")
    executed: list[str] = []
    paths: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith(("import ", "import\t")):
            executed.append(safe_text(line.strip()))
        else:
            paths.append(safe_text(line.rstrip()))
    return tuple(executed), tuple(paths)


def _allowed_by(artifact: Artifact, context: CheckContext, name: str) -> str | None:
    """Why ``name`` may run code for this artifact's project, or None."""
    if name in context.pth_allowlist:
        return "in the configuration"
    for row in data_lines(PTH_ALLOWLIST_FILE):
        filename, owners = row[0], row[1:]
        if filename == name and artifact.name in owners:
            return f"for {artifact.name}"
    return None


def _search(pattern: re.Pattern[str], lines: tuple[str, ...]) -> bool:
    return any(pattern.search(line) for line in lines)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
