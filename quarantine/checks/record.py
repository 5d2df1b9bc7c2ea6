"""A wheel's RECORD: the list of every file with its hash and size, which pip copies into
the installed RECORD (and later uninstalls from) but never checks. A member whose bytes
differ from RECORD, or that RECORD does not list, was changed or slipped in after the
wheel was built (pip installs it all the same); a path RECORD lists that the wheel lacks
is still deleted by ``pip uninstall``, whoever owns it.

Every member RECORD lists is hashed once, streamed in chunks (CHUNK_SIZE), by the one
audit the four checks share.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from quarantine.artifact import Artifact, ArtifactError, MemberType, RecordEntry, parse_record
from quarantine.checks.layout import cap_findings
from quarantine.findings import CheckContext, Finding, Severity

RECORD_INVALID: Final = "record-invalid"
RECORD_HASH_MISMATCH: Final = "record-hash-mismatch"
RECORD_UNLISTED_MEMBER: Final = "record-unlisted-member"
RECORD_ABSENT_MEMBER: Final = "record-absent-member"

# RECORD cannot hash itself, and its signatures sign it after it is written.
UNHASHED_FILES: Final = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s"})
# Hash names RECORD may use: fixed-length digests every Python has. The spec forbids
# md5 and sha1 (collisions can be made); they are still checked, and reported.
ALGORITHMS: Final = frozenset(
    {"sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"}
    | {"blake2b", "blake2s", "md5", "sha1"}
)
WEAK_ALGORITHMS: Final = frozenset({"md5", "sha1"})
# Files whose contents run: imported, loaded, executed or processed at start-up. A
# change to one of these after the build is a change to what the wheel does.
CODE_SUFFIXES: Final = frozenset(
    {".py", ".pyc", ".pyo", ".pyw", ".pth", ".so", ".pyd", ".dll", ".dylib", ".exe"}
    | {".sh", ".bat", ".cmd", ".ps1"}
)
# Members are hashed by up to this many threads, one per CPU this process may use:
# zlib and hashlib release the GIL, so a big wheel's members inflate in parallel (more
# threads than CPUs only contend).
MAX_HASH_WORKERS: Final = 8
# Members at least this big get a thread of their own; smaller ones are hashed in
# batches, which keeps per-task overhead off wheels of ten thousand tiny files.
BATCH_BYTES: Final = 4 * 1024 * 1024


@dataclass
class _Audit:
    """What one pass over a wheel found; ``problem`` set when RECORD cannot be used."""

    record_path: str | None = None
    problem: Finding | None = None
    invalid: list[Finding] = field(default_factory=list)
    mismatched: list[Finding] = field(default_factory=list)
    unlisted: list[Finding] = field(default_factory=list)
    absent: list[Finding] = field(default_factory=list)


# One audit per open artifact, or the ArtifactError a member raised while it was hashed
# (reported once, by record-hash-mismatch, as archive-unreadable).
_AUDITS: weakref.WeakKeyDictionary[Artifact, _Audit | ArtifactError] = weakref.WeakKeyDictionary()


def record_invalid(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The wheel has no RECORD, or one that cannot be read as the spec's CSV, or rows
    whose hash cannot be checked (unknown or forbidden algorithm, malformed digest) or
    that list one path twice with different hashes.

    High when there is no usable RECORD at all (nothing in the wheel is vouched for),
    unless METADATA is unusable too (metadata-missing reports that .dist-info); medium
    for rows that leave one member unverifiable.
    """
    audit = _audit(artifact)
    if audit is None:
        return []
    return ([audit.problem] if audit.problem else []) + cap_findings(audit.invalid)


def record_hash_mismatch(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A member's bytes do not have the hash RECORD gives for them: it was changed after
    the wheel was built (pip installs it regardless).

    High for code (CODE_SUFFIXES, or anything installed as a script), medium for other
    files; low when only the size column is wrong and the hash matches.
    """
    audit = _audit(artifact, raise_errors=True)
    return [] if audit is None else cap_findings(audit.mismatched)


def record_unlisted_member(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A file in the wheel that RECORD does not vouch for: missing from RECORD, or listed
    without a hash (RECORD itself and its signature files excepted). Build tools list
    every file, so it was most likely added after the build; pip installs it anyway.

    High for code (a ``.pth`` or module slipped into a finished wheel), low for ``.pyc``
    (bytecode some tools add), medium for the rest.
    """
    audit = _audit(artifact)
    return [] if audit is None else cap_findings(audit.unlisted)


def record_absent_member(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """RECORD lists a path the wheel does not contain. pip copies such rows into the
    installed RECORD, so ``pip uninstall`` deletes that path: a file another package owns,
    or (with ``..``) one outside site-packages.

    High when the path is absolute or climbs out with ``..``; medium otherwise.
    """
    audit = _audit(artifact)
    return [] if audit is None else cap_findings(audit.absent)


# ---------------------------------------------------------------- the audit


def _audit(artifact: Artifact, *, raise_errors: bool = False) -> _Audit | None:
    """The shared audit, computed once per artifact; None when the file is not a wheel
    whose .dist-info can be found (metadata-missing and archive-unreadable say why), or
    when a member could not be read (raised again only if ``raise_errors``)."""
    if artifact.kind != "wheel" or artifact.error is not None:
        return None
    if artifact not in _AUDITS:
        try:
            dist_info = artifact.dist_info
        except ArtifactError:
            return None
        try:
            _AUDITS[artifact] = _run_audit(artifact, dist_info)
        except ArtifactError as exc:
            _AUDITS[artifact] = exc
    audit = _AUDITS[artifact]
    if isinstance(audit, ArtifactError):
        if raise_errors:
            raise audit
        return None
    return audit


def _run_audit(artifact: Artifact, dist_info: str) -> _Audit:
    record_path = f"{dist_info}/RECORD"
    audit = _Audit(record_path)
    try:
        data = artifact.record()
    except ArtifactError as exc:
        audit.problem = _no_record(record_path, f"RECORD cannot be read: {exc.message}")
        return audit
    if data is None:
        # Without METADATA either, the .dist-info is unusable and pip refuses the
        # wheel; metadata-missing says so, and one finding is enough.
        if artifact.core_metadata is not None:
            audit.problem = _no_record(record_path, f"no {record_path} in the wheel")
        return audit
    try:
        entries = parse_record(data)
    except ArtifactError as exc:
        audit.problem = _no_record(record_path, exc.message)
        return audit

    rows, hashes = _rows(entries, audit)
    counts: dict[str, int] = {}
    for member in artifact.members:
        counts[member.name] = counts.get(member.name, 0) + 1
    jobs: list[_Job] = []
    for member in artifact.members:
        name = member.name
        if member.type is not MemberType.FILE or counts[name] > 1:
            continue  # directories need no hash; duplicates are duplicate-member's
        if posixpath.dirname(name) == dist_info and posixpath.basename(name) in UNHASHED_FILES:
            continue
        entry = rows.get(name)
        if entry is None:
            audit.unlisted.append(_unlisted(name, "missing from RECORD"))
        elif not entry.hash:
            audit.unlisted.append(_unlisted(name, "listed in RECORD without a hash"))
        elif (parsed := hashes.get(name)) is not None:
            jobs.append(_Job(name, entry, parsed[0], parsed[1], member.size))
    for job, actual in _digests(artifact, jobs):
        finding = _compare(job, actual)
        if finding is not None:
            audit.mismatched.append(finding)
    present = set(counts)
    directories = {parent for name in present for parent in _parents(name)}
    for path, entry in rows.items():
        if path in present or path.rstrip("/") in directories:
            continue
        audit.absent.append(_absent(path, entry))
    return audit


def _parents(name: str) -> Iterable[str]:
    """Every directory above ``name`` ("/" once, for an absolute name)."""
    child, parent = name, posixpath.dirname(name.rstrip("/"))
    while parent and parent != child:
        yield parent
        child, parent = parent, posixpath.dirname(parent)


def _rows(
    entries: Iterable[RecordEntry], audit: _Audit
) -> tuple[dict[str, RecordEntry], dict[str, tuple[str, bytes]]]:
    """RECORD's rows by path (the last row wins, as in pip) and their parsed hashes,
    with rows that cannot be checked reported."""
    rows: dict[str, RecordEntry] = {}
    hashes: dict[str, tuple[str, bytes]] = {}
    for entry in entries:
        previous = rows.get(entry.path)
        if previous is not None and previous.hash != entry.hash:
            audit.invalid.append(
                Finding(
                    RECORD_INVALID,
                    Severity.MEDIUM,
                    "RECORD lists one path twice with different hashes.",
                    f"{entry.path}: {previous.hash or '(none)'} and {entry.hash or '(none)'}",
                    audit.record_path,
                )
            )
        rows[entry.path] = entry
        hashes.pop(entry.path, None)
        parsed = _parse_hash(entry.hash) if entry.hash else None
        if parsed is not None:
            hashes[entry.path] = parsed
        elif entry.hash:
            audit.invalid.append(
                Finding(
                    RECORD_INVALID,
                    Severity.MEDIUM,
                    "RECORD gives a hash that cannot be checked (unknown algorithm or "
                    "malformed digest), so that member is unverified.",
                    f"{entry.path},{entry.hash}",
                    audit.record_path,
                )
            )
        if parsed is not None and parsed[0] in WEAK_ALGORITHMS:
            audit.invalid.append(
                Finding(
                    RECORD_INVALID,
                    Severity.MEDIUM,
                    "RECORD uses a hash the wheel spec forbids (md5/sha1 collisions can "
                    "be made), so that member is only weakly vouched for.",
                    f"{entry.path},{entry.hash}",
                    audit.record_path,
                )
            )
    return rows, hashes


def _parse_hash(value: str) -> tuple[str, bytes] | None:
    """(algorithm, digest) from ``<algorithm>=<urlsafe-base64>`` (padding optional; hex
    accepted too), or None if it cannot be checked."""
    algorithm, sep, encoded = value.partition("=")
    algorithm = algorithm.strip().lower()
    encoded = encoded.strip().rstrip("=")
    if not sep or algorithm not in ALGORITHMS or not encoded:
        return None
    try:
        expected = hashlib.new(algorithm).digest_size  # ValueError: md5 under FIPS
        if len(encoded) == 2 * expected:
            # Hex, as a few build tools write it (gmsh): never the length of base64.
            digest = bytes.fromhex(encoded)
        else:
            standard = encoded.replace("-", "+").replace("_", "/")
            digest = base64.b64decode(standard + "=" * (-len(encoded) % 4), validate=True)
    except ValueError:  # binascii.Error too
        return None
    return (algorithm, digest) if len(digest) == expected else None


@dataclass(frozen=True, slots=True)
class _Job:
    name: str
    entry: RecordEntry
    algorithm: str
    expected: bytes
    size: int  # as the archive declares it


def _digests(artifact: Artifact, jobs: list[_Job]) -> list[tuple[_Job, tuple[bytes, int]]]:
    """Each member's (digest, byte count), every member read once; big members each on
    a thread of their own, small ones in batches."""
    batches: list[list[_Job]] = []
    small: list[_Job] = []
    small_bytes = 0
    for job in jobs:
        if job.size >= BATCH_BYTES:
            batches.append([job])
            continue
        small.append(job)
        small_bytes += job.size
        if small_bytes >= BATCH_BYTES:
            batches.append(small)
            small, small_bytes = [], 0
    if small:
        batches.append(small)

    def run(batch: list[_Job]) -> list[tuple[_Job, tuple[bytes, int]]]:
        return [(job, _digest(artifact, job.name, job.algorithm)) for job in batch]

    if len(batches) <= 1:
        return [result for batch in batches for result in run(batch)]
    # Biggest first, so the longest member does not start last.
    batches.sort(key=lambda batch: -sum(job.size for job in batch))
    pool = ThreadPoolExecutor(_workers(), thread_name_prefix="record-hash")
    try:
        return [result for done in pool.map(run, batches) for result in done]
    finally:
        pool.shutdown(cancel_futures=True)  # after a failure, hash no more


def _workers() -> int:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(MAX_HASH_WORKERS, usable))


def _digest(artifact: Artifact, name: str, algorithm: str) -> tuple[bytes, int]:
    hasher = hashlib.new(algorithm)
    size = 0
    for chunk in artifact.stream(name):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.digest(), size


def _compare(job: _Job, actual: tuple[bytes, int]) -> Finding | None:
    digest, size = actual
    name = job.name
    if digest != job.expected:
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return Finding(
            RECORD_HASH_MISMATCH,
            Severity.HIGH if _is_code(name) else Severity.MEDIUM,
            "A member's content differs from the hash RECORD gives for it: it was changed "
            "after the wheel was built.",
            f"{name}: RECORD {job.entry.hash}, actual {job.algorithm}={encoded}",
            name,
        )
    declared = job.entry.size.strip()
    if declared and declared != str(size):
        return Finding(
            RECORD_HASH_MISMATCH,
            Severity.LOW,
            "RECORD gives a member a different size than it has (its hash matches).",
            f"{name}: RECORD size {declared}, actual {size}",
            name,
        )
    return None


def _is_code(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in CODE_SUFFIXES or _is_script(name)


def _is_script(name: str) -> bool:
    """``<name>-<version>.data/scripts/...``: installed into bin/ as an executable."""
    top, _, rest = name.partition("/")
    return top.endswith(".data") and rest.startswith("scripts/")


def _unlisted(name: str, how: str) -> Finding:
    suffix = posixpath.splitext(name)[1].lower()
    if suffix in (".pyc", ".pyo"):
        severity = Severity.LOW
    elif _is_code(name):
        severity = Severity.HIGH
    else:
        severity = Severity.MEDIUM
    return Finding(
        RECORD_UNLISTED_MEMBER,
        severity,
        "A file in the wheel is not vouched for by RECORD, as if added after the build; "
        "pip installs it unchecked.",
        f"{name}: {how}",
        name,
    )


def _absent(path: str, entry: RecordEntry) -> Finding:
    parts = path.replace("\\", "/").split("/")
    escapes = path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":")
    return Finding(
        RECORD_ABSENT_MEMBER,
        Severity.HIGH if escapes else Severity.MEDIUM,
        "RECORD lists a path the wheel does not contain; pip uninstall would delete it "
        + ("outside the package's own directory." if escapes else "whoever owns it."),
        f"{path},{entry.hash},{entry.size}",
        path,
    )


def _no_record(record_path: str, evidence: str) -> Finding:
    return Finding(
        RECORD_INVALID,
        Severity.HIGH,
        "The wheel has no usable RECORD, so nothing in it is vouched for.",
        evidence,
        record_path,
    )
