"""Code that runs when a package is built, installed or imported, read with ``ast`` only.

An sdist's ``setup.py``, its in-tree build backend (``pyproject.toml`` ``backend-path``),
its hatch/pdm/poetry build hooks, and the local modules those import all run on the
machine that installs the sdist (install time). The ``__init__.py`` of each top-level
package and each top-level module run on the first import (import time). The other
modules of a pure-Python wheel are searched for obfuscators when they compress poorly.

:mod:`quarantine.checks._ast_rules` reads each file (never compiling, importing or
running it) and reports single behaviours and chains. A single behaviour alone is
common in legitimate code (setup scripts run ``git describe`` and compilers) and only
warns; a chain, where the data of one behaviour feeds another, holds or rejects.

Only the files these rules need are read, each up to MAX_SOURCE_SIZE. The files are
read and parsed once per artifact and shared by the checks here.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from quarantine.artifact import Artifact, ArtifactError, Member, MemberType
from quarantine.checks._ast_rules import (
    CHAINS,
    OBFUSCATORS,
    PATTERNS,
    Hit,
    Reach,
    Report,
    Rule,
    analyse,
    clip,
)
from quarantine.findings import CheckContext, Finding, Severity

SETUP_SCRIPT_CHAIN: Final = "setup-script-chain"
SETUP_SCRIPT_PATTERN: Final = "setup-script-pattern"
IMPORT_TIME_CHAIN: Final = "import-time-chain"
IMPORT_TIME_PATTERN: Final = "import-time-pattern"
OBFUSCATED_CODE: Final = "obfuscated-code"
CODE_UNINSPECTABLE: Final = "code-uninspectable"

MiB: Final = 1024 * 1024
# A source file is parsed only up to this size: a dense 1 MiB module takes about 70 MB and
# 1.5 s to parse and analyse. The largest import-time file among 966 real wheels is 427 KB.
MAX_SOURCE_SIZE: Final = 1 * MiB
MAX_PYPROJECT_SIZE: Final = 1 * MiB
# How many install-time files (setup.py and what it imports, transitively) and
# import-time files (top-level packages and modules) are read per artifact.
MAX_INSTALL_FILES: Final = 16
MAX_IMPORT_FILES: Final = 64
# Findings per check before the rest are summed up in one; examples per summary.
MAX_FINDINGS: Final = 20
MAX_EXAMPLES: Final = 3
# sdist packages deeper than this (in directories, below the root or src/) are not
# looked at as import-time code.
MAX_SDIST_PACKAGE_DEPTH: Final = 3

INSTALL_SEVERITY: Final[Mapping[Rule, Severity]] = {
    Rule.DECODE_EXEC: Severity.CRITICAL,
    Rule.CREDENTIAL_SEND: Severity.CRITICAL,
    Rule.DOWNLOAD_EXEC: Severity.CRITICAL,
    Rule.REVERSE_SHELL: Severity.CRITICAL,
    Rule.DOWNLOAD_RUN: Severity.HIGH,
    Rule.PERSISTENCE: Severity.HIGH,
    Rule.NETWORK: Severity.LOW,
    Rule.PROCESS: Severity.LOW,
    Rule.HOME_WRITE: Severity.LOW,
    Rule.ENCODED_BLOB: Severity.LOW,
}
IMPORT_SEVERITY: Final[Mapping[Rule, Severity]] = {
    **dict.fromkeys(CHAINS, Severity.HIGH),
    Rule.NETWORK: Severity.LOW,
    Rule.PROCESS: Severity.LOW,
    Rule.HOME_WRITE: Severity.INFO,
    Rule.ENCODED_BLOB: Severity.INFO,
}
OBFUSCATION_SEVERITY: Final = Severity.MEDIUM

MESSAGES: Final[Mapping[Rule, str]] = {
    Rule.DECODE_EXEC: "{code} executes data it decodes (an obfuscated payload).",
    Rule.CREDENTIAL_SEND: (
        "{code} sends credentials, the environment or the user's identity over the network."
    ),
    Rule.DOWNLOAD_EXEC: "{code} downloads code and executes it.",
    Rule.DOWNLOAD_RUN: "{code} runs, or makes executable, a file it downloads.",
    Rule.REVERSE_SHELL: "{code} connects a shell to a network socket (a reverse shell).",
    Rule.PERSISTENCE: (
        "{code} writes to a shell start-up file, SSH authorized_keys, cron, a .pth or "
        "another place that runs code later."
    ),
    Rule.NETWORK: "{code} accesses the network.",
    Rule.PROCESS: "{code} runs external commands (common for git or a compiler; check what).",
    Rule.HOME_WRITE: "{code} writes into the user's home directory.",
    Rule.ENCODED_BLOB: "{code} holds a large high-entropy string literal (encoded data?).",
}
OBFUSCATION_MESSAGES: Final[Mapping[Rule, str]] = {
    Rule.PYARMOR: "The package ships PyArmor-obfuscated code, which cannot be reviewed.",
    Rule.MARSHAL_BLOB: "A module loads compiled code from a marshal blob, hidden from review.",
    Rule.ENCODED_EXEC: "A module executes an encoded literal (obfuscated code).",
}

# Build hooks run at install time by their backends, found by their default names.
BUILD_HOOK_FILES: Final = ("hatch_build.py", "pdm_build.py")
# pyproject.toml keys naming a build hook script.
BUILD_HOOK_KEYS: Final = (
    ("tool", "hatch", "build", "hooks", "custom", "path"),
    ("tool", "hatch", "metadata", "hooks", "custom", "path"),
    ("tool", "poetry", "build", "script"),
    ("tool", "poetry", "build"),
    ("tool", "pdm", "build", "custom-hook"),
)
# sdist directories that hold no installed package.
NON_PACKAGE_DIRS: Final = frozenset(
    {
        "test",
        "tests",
        "testing",
        "doc",
        "docs",
        "example",
        "examples",
        "bench",
        "benchmark",
        "benchmarks",
        "ci",
        "tools",
        "scripts",
        "build",
        "dist",
        "_build",
    }
)
# sdist root modules that development tools run, not an install or an import.
DEV_MODULES: Final = frozenset(
    {
        "setup.py",
        "conftest.py",
        "noxfile.py",
        "tasks.py",
        "fabfile.py",
        "dodo.py",
        "pavement.py",
        "runtests.py",
        "run_tests.py",
        "ez_setup.py",
        "distribute_setup.py",
        "versioneer.py",
        "bootstrap.py",
        "manage.py",
        "build.py",
    }
)
TEST_MODULE: Final = re.compile(r"^test_.*\.py$|_tests?\.py$")
# A pure wheel's other modules are read only when they compress poorly, as encoded or
# encrypted data does (about 80% of real modules compress below 0.35 of their size;
# PyArmor output stays near 0.48, zlib+base64 near 0.75, base64 of source code above 0.36
# up to 25 KB), and parsed only when their text names an obfuscator, or both exec/eval
# and a decoder.
OBFUSCATED_MIN_RATIO: Final = 0.35
OBFUSCATED_MIN_SIZE: Final = 512
OBFUSCATOR_HINTS: Final = (b"pyarmor", b"__armor", b"marshal")
EXEC_HINTS: Final = (b"exec", b"eval")
DECODER_HINT: Final = re.compile(
    rb"b(?:64|32|16|85)decode|a85decode|decodebytes|decodestring|decompress|unhexlify"
    rb"|fromhex|a2b_|rot_?13|codecs|\bchr\s*\(|\[::-1\]|(?:\\x[0-9a-fA-F]{2}){8}"
)
# The runtime an obfuscated package carries at its top level.
PYARMOR_RUNTIME: Final = re.compile(r"^(?:pyarmor_runtime(?:_\d+)?|pytransform)/")

Stage = Literal["install", "import", "module"]

_WHO: Final[Mapping[Stage, str]] = {
    "install": "Install-time code (setup.py or the build backend)",
    "import": "Code that runs on import",
    "module": "A module",
}


@dataclass(frozen=True, slots=True)
class _Source:
    path: str
    stage: Stage
    report: Report
    oversized: bool = False


@dataclass(frozen=True, slots=True)
class _Scan:
    sources: tuple[_Source, ...] = ()
    error: ArtifactError | None = None  # a member could not be read
    pyarmor_runtime: str | None = None


# ---------------------------------------------------------------- the checks


def setup_script_chain(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """An sdist's install-time code (setup.py, an in-tree build backend, a build hook, or a
    local module they import) chains behaviours: it executes data it decodes, sends
    credentials or the environment over the network, executes or makes executable what
    it downloads, connects a shell to a socket, or writes to a shell start-up file, SSH
    authorized_keys, cron or a .pth.

    Critical for decode -> exec, credential -> network, download -> exec and a reverse
    shell; high for download -> run/chmod and persistence writes. The code is read with
    ast and never run; names are resolved through imports and aliases, and the data of
    the first behaviour must reach the second.
    """
    return _capped(_chain_findings(_scan(artifact), "install", SETUP_SCRIPT_CHAIN))


def setup_script_pattern(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """An sdist's install-time code accesses the network, runs external commands, writes
    into the home directory or holds a large high-entropy literal, with no chain.

    Low (warns): setup scripts legitimately run git and compilers. One finding per file
    and behaviour, with the first occurrences as evidence.
    """
    return _capped(_pattern_findings(_scan(artifact), "install", SETUP_SCRIPT_PATTERN))


def import_time_chain(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Code that runs on import (the __init__.py of each top-level package, each
    top-level module) chains behaviours, as setup-script-chain describes: decode -> exec,
    credential -> network, download -> exec/run, reverse shell, persistence write.

    High. Only code that runs on import counts: module-level statements and class
    bodies, and the local functions and classes they use, not the rest of the library.
    """
    return _capped(_chain_findings(_scan(artifact), "import", IMPORT_TIME_CHAIN))


def import_time_pattern(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Code that runs on import accesses the network or runs external commands (low), or
    writes into the home directory or holds a large high-entropy literal (info)."""
    return _capped(_pattern_findings(_scan(artifact), "import", IMPORT_TIME_PATTERN))


def obfuscated_code(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Obfuscated code in a pure-Python wheel or an sdist: a PyArmor runtime or
    PyArmor-protected modules, code objects loaded with marshal from a literal, or a
    module that executes an encoded literal (decoded or not).

    Medium: obfuscated code cannot be reviewed. One finding per kind, with examples.
    In a wheel, the import-time files and every module that compresses poorly (see
    OBFUSCATED_MIN_RATIO) are searched; in an sdist, the install- and import-time files.
    """
    scan = _scan(artifact)
    found: dict[Rule, list[tuple[_Source, Hit]]] = {}
    for source in scan.sources:
        if scan.pyarmor_runtime and source.path.startswith(scan.pyarmor_runtime):
            continue  # the runtime itself, reported once below
        for hit in source.report.hits:
            # exec of an encoded literal in install- or import-time code is a chain there
            if hit.rule in OBFUSCATORS and (
                hit.rule is not Rule.ENCODED_EXEC or source.stage == "module"
            ):
                found.setdefault(hit.rule, []).append((source, hit))
    findings = []
    if scan.pyarmor_runtime is not None:
        findings.append(
            Finding(
                OBFUSCATED_CODE,
                OBFUSCATION_SEVERITY,
                "The wheel bundles a PyArmor runtime, which runs obfuscated code.",
                scan.pyarmor_runtime,
                scan.pyarmor_runtime,
            )
        )
    for rule, hits in found.items():
        source = hits[0][0]
        evidence = _examples([(s.path, hit) for s, hit in hits])
        findings.append(
            Finding(
                OBFUSCATED_CODE,
                OBFUSCATION_SEVERITY,
                OBFUSCATION_MESSAGES[rule],
                evidence,
                source.path,
            )
        )
    return findings


def code_uninspectable(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Install- or import-time code that could not be inspected: over MAX_SOURCE_SIZE,
    or not parseable by this Python (Python 2 or newer syntax, null bytes), so the
    rules above did not see it.

    Install time: medium when too large or when its text names risky calls (exec,
    subprocess, socket, b64decode, ...), else low. Import time: low when risky, else
    info. A member that cannot be read at all is reported as archive-unreadable.
    """
    scan = _scan(artifact)
    if scan.error is not None:
        raise scan.error
    findings = []
    for source in scan.sources:
        report = source.report
        if report.error is None or source.stage == "module":
            continue
        install = source.stage == "install"
        if source.oversized:
            severity = Severity.MEDIUM if install else Severity.INFO
            message = f"{_WHO[source.stage]} is too large to inspect."
        elif report.risky:
            severity = Severity.MEDIUM if install else Severity.LOW
            message = f"{_WHO[source.stage]} cannot be parsed, and its text names risky calls."
        else:
            severity = Severity.LOW if install else Severity.INFO
            message = f"{_WHO[source.stage]} cannot be parsed, so it was not inspected."
        findings.append(
            Finding(CODE_UNINSPECTABLE, severity, message, clip(report.error, 300), source.path)
        )
    return _capped(findings)


# ---------------------------------------------------------------- findings


def _severity(stage: Stage, rule: Rule) -> Severity:
    return (INSTALL_SEVERITY if stage == "install" else IMPORT_SEVERITY)[rule]


def _chain_findings(scan: _Scan, stage: Stage, check: str) -> list[Finding]:
    findings = []
    for source in scan.sources:
        if source.stage != stage:
            continue
        for hit in source.report.hits:
            if hit.rule in CHAINS:
                findings.append(
                    Finding(
                        check,
                        _severity(stage, hit.rule),
                        MESSAGES[hit.rule].format(code=_WHO[stage]),
                        f"{source.path}:{hit.line}: {hit.text}",
                        source.path,
                    )
                )
    return findings


def _pattern_findings(scan: _Scan, stage: Stage, check: str) -> list[Finding]:
    """One finding per file and behaviour; lines a chain covers are left to the chain."""
    findings = []
    for source in scan.sources:
        if source.stage != stage:
            continue
        chained = {hit.line for hit in source.report.hits if hit.rule in CHAINS}
        by_rule: dict[Rule, list[Hit]] = {}
        for hit in source.report.hits:
            if hit.rule in PATTERNS and hit.line not in chained:
                by_rule.setdefault(hit.rule, []).append(hit)
        for rule, hits in by_rule.items():
            findings.append(
                Finding(
                    check,
                    _severity(stage, rule),
                    MESSAGES[rule].format(code=_WHO[stage]),
                    _examples([(source.path, hit) for hit in hits]),
                    source.path,
                )
            )
    return findings


def _examples(hits: Sequence[tuple[str, Hit]]) -> str:
    shown = "; ".join(f"{path}:{hit.line}: {hit.text}" for path, hit in hits[:MAX_EXAMPLES])
    more = len(hits) - MAX_EXAMPLES
    return shown + (f" (and {more} more)" if more > 0 else "")


def _capped(findings: list[Finding]) -> list[Finding]:
    """The first MAX_FINDINGS, then one finding summing up the rest at the worst severity."""
    if len(findings) <= MAX_FINDINGS:
        return findings
    kept, rest = findings[:MAX_FINDINGS], findings[MAX_FINDINGS:]
    worst = max(rest, key=lambda finding: finding.severity.rank)
    summary = Finding(
        worst.check,
        worst.severity,
        f"{len(rest)} more findings like the above.",
        clip("; ".join(finding.evidence for finding in rest[:MAX_EXAMPLES]), 500),
        worst.path,
    )
    return [*kept, summary]


# ---------------------------------------------------------------- reading the artifact

# One scan per open artifact, shared by the checks above; gone with the artifact.
_SCANS: Final[weakref.WeakKeyDictionary[Artifact, _Scan]] = weakref.WeakKeyDictionary()


def _scan(artifact: Artifact) -> _Scan:
    scan = _SCANS.get(artifact)
    if scan is None:
        scan = _SCANS[artifact] = _build_scan(artifact)
    return scan


def _build_scan(artifact: Artifact) -> _Scan:
    if artifact.error is not None or artifact.kind is None:
        return _Scan()
    wheel = artifact.kind == "wheel"
    files: dict[str, Member] = {}
    twice: set[str] = set()
    for member in artifact.members:
        name = member.name
        # A wheel runs nothing but its .py files; an sdist also has pyproject.toml.
        if member.type is not MemberType.FILE or (wheel and not name.endswith(".py")):
            continue
        if name in files:
            twice.add(name)
        files[name] = member
    for name in twice:  # another check's finding (and which copy wins is unclear)
        del files[name]
    try:
        if wheel:
            return _scan_wheel(artifact, files)
        return _scan_sdist(artifact, files)
    except ArtifactError as exc:
        return _Scan(error=exc)


def _read(artifact: Artifact, member: Member, stage: Stage, reach: Reach) -> _Source:
    if member.size > MAX_SOURCE_SIZE:
        error = f"{member.size} bytes, over the {MAX_SOURCE_SIZE}-byte limit"
        return _Source(member.name, stage, Report(error=error, risky=True), oversized=True)
    data = artifact.read(member.name, MAX_SOURCE_SIZE)
    return _Source(member.name, stage, analyse(data, reach))


def _top_level(layout: Mapping[str, str]) -> list[str]:
    """Members that run on import: each top-level module, and the __init__.py of each
    package with no package above it (below namespace directories too). ``layout`` maps
    the installed path to the member name."""
    packages = {path.rpartition("/")[0] for path in layout if path.endswith("/__init__.py")}
    chosen = []
    for path, member in layout.items():
        if not path.endswith(".py"):
            continue
        if "/" not in path:
            chosen.append(member)
        elif path.endswith("/__init__.py"):
            parts = path.split("/")[:-1]
            if not any("/".join(parts[:depth]) in packages for depth in range(1, len(parts))):
                chosen.append(member)
    return chosen[:MAX_IMPORT_FILES]


def _is_pure(artifact: Artifact) -> bool:
    tags = artifact.tags
    return bool(tags) and all(tag.abi == "none" and tag.platform == "any" for tag in tags)


def _scan_wheel(artifact: Artifact, files: Mapping[str, Member]) -> _Scan:
    layout: dict[str, str] = {}  # installed path -> member name (all .py)
    for name in files:
        top, _, rest = name.partition("/")
        if top.endswith(".data"):
            scheme, _, inner = rest.partition("/")
            if scheme in ("purelib", "platlib") and inner:
                layout.setdefault(inner, name)
        elif not top.endswith(".dist-info"):
            layout.setdefault(name, name)
    first = _top_level(layout)
    sources = [_read(artifact, files[name], "import", "import") for name in first]
    if not _is_pure(artifact):
        return _Scan(tuple(sources))
    runtime = next((found[0] for path in layout if (found := PYARMOR_RUNTIME.match(path))), None)
    read = set(first)
    for name in layout.values():
        member = files[name]
        if name in read or not _compresses_poorly(member):
            continue
        data = artifact.read(name, MAX_SOURCE_SIZE)
        if any(hint in data for hint in OBFUSCATOR_HINTS) or (
            any(hint in data for hint in EXEC_HINTS) and DECODER_HINT.search(data)
        ):
            sources.append(_Source(name, "module", analyse(data, "all")))
    return _Scan(tuple(sources), pyarmor_runtime=runtime)


def _compresses_poorly(member: Member) -> bool:
    if not OBFUSCATED_MIN_SIZE <= member.size <= MAX_SOURCE_SIZE:
        return False
    compressed = member.compressed_size
    return compressed is None or compressed >= OBFUSCATED_MIN_RATIO * member.size


def _scan_sdist(artifact: Artifact, files: Mapping[str, Member]) -> _Scan:
    try:
        root = artifact.sdist_root
    except ArtifactError:
        return _Scan()  # metadata-missing reports it
    prefix = f"{root}/"
    pyproject = _pyproject(artifact, files, prefix)
    # Install time: setup.py (run as a script), build hooks and backend modules (run
    # whole: their hook functions are called by the frontend), and what they import.
    pending: list[tuple[str, Reach]] = []
    if f"{prefix}setup.py" in files:
        pending.append((f"{prefix}setup.py", "script"))
    hooks = [f"{prefix}{name}" for name in BUILD_HOOK_FILES]
    hooks += [_inside(prefix, path) or "" for path in _hook_paths(pyproject)]
    pending += [(path, "all") for path in hooks if path in files]
    backend_bases, backend_files = _backend(pyproject, prefix, files)
    pending += [(path, "all") for path in backend_files]
    bases = [prefix, f"{prefix}src/", *backend_bases]
    install: dict[str, _Source] = {}
    while pending and len(install) < MAX_INSTALL_FILES:
        name, reach = pending.pop(0)
        if name in install:
            continue
        source = install[name] = _read(artifact, files[name], "install", reach)
        for level, module in source.report.imports:
            for found in _local_module(name, level, module, bases, files):
                pending.append((found, "import" if found.endswith("/__init__.py") else "all"))
    # Import time: the top-level packages and modules, below the root and below src/.
    layouts: dict[str, dict[str, str]] = {prefix: {}, f"{prefix}src/": {}}
    for name in files:
        if not name.startswith(prefix) or name in install or not name.endswith(".py"):
            continue
        base = f"{prefix}src/" if name.startswith(f"{prefix}src/") else prefix
        path = name.removeprefix(base)
        parts = path.split("/")
        if parts[0] in NON_PACKAGE_DIRS or len(parts) > MAX_SDIST_PACKAGE_DEPTH + 1:
            continue
        if len(parts) == 1 and (path in DEV_MODULES or TEST_MODULE.search(path)):
            continue
        layouts[base][path] = name
    first = [name for layout in layouts.values() for name in _top_level(layout)]
    order = {member.name: index for index, member in enumerate(artifact.members)}
    first.sort(key=order.__getitem__)  # a tar is read front to back
    imported = [_read(artifact, files[name], "import", "import") for name in first]
    return _Scan((*install.values(), *imported))


def _inside(prefix: str, path: str) -> str | None:
    """``path`` (relative to the sdist root) as a member name, if it stays inside."""
    joined = posixpath.normpath(posixpath.join(prefix, path))
    return joined if joined.startswith(prefix) else None


def _pyproject(artifact: Artifact, files: Mapping[str, Member], prefix: str) -> dict[str, object]:
    member = files.get(f"{prefix}pyproject.toml")
    if member is None or member.size > MAX_PYPROJECT_SIZE:
        return {}
    try:
        return tomllib.loads(artifact.read(member.name, MAX_PYPROJECT_SIZE).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}  # the build fails the same way; nothing runs


def _lookup(table: object, keys: Sequence[str]) -> object:
    for key in keys:
        if not isinstance(table, dict):
            return None
        table = table.get(key)
    return table


def _hook_paths(pyproject: Mapping[str, object]) -> list[str]:
    found = [_lookup(pyproject, keys) for keys in BUILD_HOOK_KEYS]
    return [path for path in found if isinstance(path, str)]


def _backend(
    pyproject: Mapping[str, object], prefix: str, files: Mapping[str, Member]
) -> tuple[list[str], list[str]]:
    """The in-tree backend's directories and module files (``backend-path``)."""
    paths = _lookup(pyproject, ("build-system", "backend-path"))
    backend = _lookup(pyproject, ("build-system", "build-backend"))
    if not isinstance(paths, list) or not isinstance(backend, str):
        return [], []
    module = backend.partition(":")[0].strip()
    bases = []
    for entry in paths:
        if isinstance(entry, str):
            directory = posixpath.normpath(posixpath.join(prefix, entry))
            if f"{directory}/".startswith(prefix):  # the root itself, or inside it
                bases.append(f"{directory}/")
    modules = [path for base in bases for path in _module_files(base, module, files)]
    return bases, modules


def _module_files(base: str, module: str, files: Mapping[str, Member]) -> list[str]:
    """The files importing ``module`` from directory ``base`` runs: each package's
    __init__.py on the way, and the module."""
    parts = [part for part in module.split(".") if part]
    found = []
    for depth in range(1, len(parts) + 1):
        stem = base + "/".join(parts[:depth])
        for candidate in (f"{stem}/__init__.py", f"{stem}.py"):
            if candidate in files:
                found.append(candidate)
    return found


def _local_module(
    current: str, level: int, module: str, bases: Sequence[str], files: Mapping[str, Member]
) -> list[str]:
    """Files of the sdist an import in ``current`` would load."""
    if level == 0:
        search = list(bases)
    else:
        directory = posixpath.dirname(current)
        for _ in range(level - 1):
            directory = posixpath.dirname(directory)
        search = [f"{directory}/"]
    return [path for base in search for path in _module_files(base, module, files)]
