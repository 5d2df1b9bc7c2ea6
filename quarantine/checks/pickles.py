"""Pickle streams inside packages: ``.pkl``/``.pickle``/``.joblib`` files (plain or
compressed), PyTorch checkpoints (``.pt``/``.pth``/``.bin``/``.ckpt``: a zip holding
``*/data.pkl``, or a legacy raw pickle sequence), numpy ``.npy`` object arrays and the
``.npy`` files in an ``.npz``, and checkpoints inside NeMo ``.nemo`` tars.

Loading a pickle imports every global it names and calls whatever it is told to, so
the globals are the payload. They are found by walking opcodes with ``pickletools``
(never by unpickling), with the interpreter's stack and memo tracked well enough to
resolve ``STACK_GLOBAL`` operands, and judged against a denylist (critical), an
allowlist of what tensors, arrays and plain containers need, and the package's own
modules (anything else is medium). Operation counts (REDUCE, BUILD, ...) are evidence.
"""

from __future__ import annotations

import _compat_pickle
import ast
import bz2
import io
import lzma
import pickletools
import re
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from quarantine.artifact import Artifact, ArtifactError, Member, MiB
from quarantine.checks.modelfiles import (
    MAX_NESTED_ARCHIVE_SIZE,
    SNIFF_SIZE,
    Entry,
    Problem,
    clip,
    danger,
    file_members,
    is_own,
    listing,
    own_top_levels,
    per_artifact,
    read_prefix,
    spooled,
    tar_entries,
    where,
    zip_entries,
)
from quarantine.findings import CheckContext, Finding, Severity

PICKLE_DANGEROUS_IMPORT: Final = "pickle-dangerous-import"
PICKLE_UNKNOWN_IMPORT: Final = "pickle-unknown-import"
PICKLE_UNVERIFIED: Final = "pickle-unverified"

# ---------------------------------------------------------------- limits

# One pickle stream is walked through at most this many bytes and opcodes; a stream
# that goes on is reported unverified (medium): whatever follows would still run.
MAX_PICKLE_SIZE: Final = 32 * MiB
MAX_PICKLE_OPS: Final = 2_000_000
# A legacy torch.save file is five pickles in a row (magic, protocol, system info, the
# object, storage keys), then raw tensor bytes.
TORCH_LEGACY_MAGIC: Final = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES: Final = 5
# Members up to this size are read whole at once; of bigger ones, SNIFF_SIZE bytes
# first, to decide whether they hold a pickle.
SMALL_MEMBER: Final = 1 * MiB
MAX_NPY_HEADER: Final = 1 * MiB

# ---------------------------------------------------------------- which members

# Always pickles, possibly compressed (``.pkl.gz``, joblib's compressed dumps).
PICKLE_SUFFIXES: Final = (".pkl", ".pickle", ".joblib", ".dill", ".pck")
COMPRESSION_SUFFIXES: Final = (".gz", ".bz2", ".xz", ".lzma", ".z", ".zlib")
# Pickles only when their bytes say so: a zip (torch.save since 1.6) or a binary pickle
# (protocol 2+ header, legacy torch.save). ``.pth`` is also site-packages' path-file
# suffix: a text .pth file is never treated as a pickle here.
TORCH_SUFFIXES: Final = (".pt", ".pth", ".bin", ".ckpt")
NUMPY_SUFFIX: Final = ".npy"
NUMPY_ARCHIVE_SUFFIX: Final = ".npz"
NEMO_SUFFIX: Final = ".nemo"
# Entries of a nested zip or tar that may hold pickles.
NESTED_PICKLE_SUFFIXES: Final = (*PICKLE_SUFFIXES, *TORCH_SUFFIXES, NUMPY_SUFFIX)

# ---------------------------------------------------------------- what a pickle may import

# What plain containers, numpy arrays, pandas frames and torch tensors/state dicts need
# (after the unpickler's own Python 2 name mapping), modelled on torch's ``weights_only``
# loader: constructors of data, none of which calls anything it is handed by name.
SAFE_GLOBALS: Final = frozenset(
    {
        "builtins.set", "builtins.frozenset", "builtins.list", "builtins.dict",
        "builtins.tuple", "builtins.bytearray", "builtins.bytes", "builtins.complex",
        "builtins.slice", "builtins.range", "builtins.object", "builtins.int",
        "builtins.float", "builtins.str", "builtins.bool",
        "_codecs.encode", "codecs.encode",
        "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__",
        "collections.OrderedDict", "collections.defaultdict", "collections.deque",
        "collections.Counter",
        "datetime.date", "datetime.datetime", "datetime.time", "datetime.timedelta",
        "datetime.timezone", "decimal.Decimal", "fractions.Fraction", "uuid.UUID",
        "numpy.ndarray", "numpy.dtype", "numpy.matrix", "numpy.matrixlib.defmatrix.matrix",
        "numpy.core.records.recarray", "numpy.core.records.record",
        "numpy._core.records.recarray", "numpy._core.records.record",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
        "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedArray",
        "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        # pandas' own reconstructors for its containers (pandas.read_pickle data)
        "pandas.core.indexes.base._new_Index", "pandas.core.indexes.base.Index",
        "pandas.core.indexes.range.RangeIndex", "pandas.core.indexes.multi.MultiIndex",
        "pandas.core.indexes.datetimes._new_DatetimeIndex",
        "pandas.core.frame.DataFrame", "pandas.core.series.Series",
        "pandas.core.internals.managers.BlockManager",
        "pandas.core.internals.managers.SingleBlockManager",
        "pandas.core.internals.blocks.new_block", "pandas._libs.internals._unpickle_block",
        "pandas._libs.tslibs.timestamps._unpickle_timestamp",
        "pandas._libs.tslibs.timedeltas._timedelta_unpickle",
        "pandas.core.arrays.categorical.Categorical",
        "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter",
        "torch.Size", "torch.device", "torch.serialization._get_layout",
        "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
        "torch.strided", "torch.sparse_coo", "torch.sparse_csr", "torch.sparse_csc",
        "torch.sparse_bsr", "torch.sparse_bsc", "torch._mkldnn",
        "torch.contiguous_format", "torch.channels_last", "torch.channels_last_3d",
        "torch.preserve_format", "torch.per_tensor_affine", "torch.per_channel_affine",
        "torch.per_tensor_symmetric", "torch.per_channel_symmetric",
        "torch.per_channel_affine_float_qparams",
    }
)  # fmt: skip

SAFE_GLOBAL_PATTERNS: Final = (
    re.compile(r"torch\._utils\._rebuild_[a-z0-9_]+"),
    re.compile(r"torch\.[A-Za-z0-9]*Storage"),  # torch.FloatStorage, torch.BFloat16Storage
    re.compile(r"torch\.(u?int\d+|float\d*|bfloat16|half|double|long|short|bool|complex\d*"
               r"|cfloat|cdouble|chalf|quint\w+|qint\w+|float8_\w+|bits\w+)"),  # dtypes
    re.compile(r"numpy\.dtypes\.\w+DType"),
    re.compile(r"numpy\.(u?int\d+|float\d+|complex\d+|bool_?|bytes_|str_|void|object_"
               r"|longlong|ulonglong|longdouble|clongdouble|intc|uintc|intp|uintp|half"
               r"|single|double|csingle|cdouble)"),  # numpy scalar types
)  # fmt: skip


# Globals whose loaders read raw bytes from the file in the middle of the stream, so a
# walk breaks off where the loader would go on (joblib >= 0.10 writes arrays inline).
INLINE_READERS: Final = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper"})


def is_safe_global(dotted: str) -> bool:
    return dotted in SAFE_GLOBALS or any(p.fullmatch(dotted) for p in SAFE_GLOBAL_PATTERNS)


# ---------------------------------------------------------------- walking opcodes


@dataclass(frozen=True, slots=True)
class Import:
    """A global a pickle makes the unpickler import: as written, and where."""

    module: str
    name: str
    opcode: str  # GLOBAL, STACK_GLOBAL, INST, EXT1/2/4, or "raw GLOBAL" (byte scan)
    position: int  # byte offset of the opcode in the stream

    @property
    def resolved(self) -> str:
        """The dotted name the unpickler imports, after its Python 2 name mapping."""
        key = (self.module, self.name)
        module, name = _compat_pickle.NAME_MAPPING.get(key, key)
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        return f"{module}.{name}"

    def describe(self) -> str:
        return f"offset {self.position}: {self.opcode} {self.module} {self.name}"


@dataclass
class Walk:
    """What walking one pickle stream (or a legacy torch sequence of them) found."""

    imports: list[Import] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    ops: int = 0
    complete: bool = False  # reached STOP
    error: str | None = None  # why the walk stopped before STOP
    exhausted: bool = False  # it stopped because the bytes ran out (or at MAX_PICKLE_OPS)

    def summary(self) -> str:
        counted = ", ".join(f"{name} {count}" for name, count in sorted(self.counts.items()))
        return f"{self.ops} opcodes" + (f" ({counted})" if counted else "")


_STRING_OPS: Final = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
     "SHORT_BINUNICODE", "BINUNICODE8"}
)  # fmt: skip
_PUT_OPS: Final = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS: Final = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS: Final = frozenset({"EXT1", "EXT2", "EXT4"})
# Opcodes that call something or build objects: counted as evidence only.
_EVIDENCE_OPS: Final = frozenset(
    {"REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX", "INST", "OBJ", "PERSID", "BINPERSID"}
)
_MARK: Final = object()
_UNKNOWN: Final = object()


def walk_pickle(
    data: bytes, start: int = 0, walk: Walk | None = None, *, max_ops: int = MAX_PICKLE_OPS
) -> tuple[Walk, int]:
    """Walk one pickle stream in ``data`` from ``start`` to its STOP, recording imports;
    returns the walk and the offset after STOP. Never raises for hostile bytes: a stream
    that cannot be parsed further sets ``error``, and ``exhausted`` too when the bytes
    ran out or the walk passed ``max_ops`` opcodes."""
    walk = walk if walk is not None else Walk()
    stream = io.BytesIO(data)
    stream.seek(start)
    stack: list[object] = []
    memo: dict[object, object] = {}
    try:
        for op, arg, position in pickletools.genops(stream):
            walk.ops += 1
            if walk.ops > max_ops:
                walk.error = f"offset {position}: over {max_ops} opcodes"
                walk.exhausted = True
                break
            _step(op, arg, position or 0, stack, memo, walk)
            if op.name == "STOP":
                walk.complete = True
    except Exception as exc:  # hostile bytes: ValueError, UnicodeDecodeError, ...
        at = stream.tell()
        walk.error = f"offset {at}: {type(exc).__name__}: {exc}"
        walk.exhausted = at >= len(data)
    return walk, stream.tell()


def _step(
    op: pickletools.OpcodeInfo,
    arg: object,
    position: int,
    stack: list[object],
    memo: dict[object, object],
    walk: Walk,
) -> None:
    name = op.name
    if name in _EVIDENCE_OPS:
        walk.counts[name] += 1
    if name in _STRING_OPS:
        stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
    elif name == "GLOBAL" or name == "INST":
        module, _, attr = str(arg).partition(" ")
        walk.imports.append(Import(module, attr, name, position))
        if name == "INST":
            _pop_mark(stack)
        stack.append(_UNKNOWN)
    elif name == "STACK_GLOBAL":
        top = stack.pop() if stack else _UNKNOWN
        below = stack.pop() if stack else _UNKNOWN
        if isinstance(below, str) and isinstance(top, str):
            walk.imports.append(Import(below, top, name, position))
        else:
            walk.imports.append(Import("?", "?", f"{name} (operands not traced)", position))
        stack.append(_UNKNOWN)
    elif name in _EXT_OPS:
        walk.imports.append(Import("copyreg extension", str(arg), name, position))
        stack.append(_UNKNOWN)
    elif name in _PUT_OPS:
        memo[arg] = stack[-1] if stack else _UNKNOWN
    elif name == "MEMOIZE":
        memo[len(memo)] = stack[-1] if stack else _UNKNOWN
    elif name in _GET_OPS:
        stack.append(memo.get(arg, _UNKNOWN))
    elif name == "MARK":
        stack.append(_MARK)
    elif name == "DUP":
        stack.append(stack[-1] if stack else _UNKNOWN)
    else:
        before = op.stack_before
        if pickletools.markobject in before:
            _pop_mark(stack)
            under = before.index(pickletools.markobject)
        else:
            under = len(before)
        if under:
            del stack[-under:]
        stack.extend([_UNKNOWN] * len(op.stack_after))


def _pop_mark(stack: list[object]) -> None:
    while stack:
        if stack.pop() is _MARK:
            return


def walk_stream(data: bytes, start: int = 0) -> Walk:
    """Walk the pickle at ``start`` in ``data``; for a legacy torch.save file (its first pickle is
    torch's magic number), the TORCH_LEGACY_PICKLES pickles in a row. When a stream
    breaks off (joblib writes raw array bytes between opcodes, and reads them itself),
    the rest is scanned byte-wise for import opcodes."""
    walk, end = walk_pickle(data, start)
    if walk.complete and _is_torch_magic(data, start, end):
        for _ in range(TORCH_LEGACY_PICKLES - 1):
            walk.complete = False
            walk, end = walk_pickle(data, end, walk)
            if not walk.complete:
                break
    if walk.error is not None and not walk.exhausted:
        walk.imports.extend(_raw_imports(data, end))
    return walk


def _is_torch_magic(data: bytes, start: int, end: int) -> bool:
    head = data[start:end]
    return head.startswith(b"\x80\x02\x8a\x0a") and (
        int.from_bytes(head[4:14], "little") == TORCH_LEGACY_MAGIC
    )


# Byte patterns of import opcodes, for bytes that cannot be walked. Both are linear:
# a match can start only at the start of a run of name bytes (GLOBAL, INST: the run
# holds the opcode and the module, ended by a newline) or at a string opcode
# (STACK_GLOBAL: two SHORT_BINUNICODE strings, each maybe memoized, then 0x93).
_RAW_GLOBAL: Final = re.compile(rb"(?<![\w.])([\w.]{3,257}+)\n([A-Za-z_][\w.]{2,255}+)\n")
_RAW_STACK_GLOBAL: Final = re.compile(
    rb"\x8c([\x01-\xff])([\w.]{1,255}+)\x94?\x8c([\x01-\xff])([\w.]{1,255}+)\x94?\x93"
)
_MODULE_START: Final = re.compile(rb"[A-Za-z_]")


def _raw_imports(data: bytes, start: int) -> list[Import]:
    """Import opcodes found by pattern in bytes that cannot be walked (best effort)."""
    found = []
    for match in _RAW_GLOBAL.finditer(data, start):
        run, name = match[1], match[2].decode("ascii")
        # The opcode (c or i) is somewhere in the run: the earliest gives the longest
        # module, but a dangerous reading wins.
        readings = [
            (at, run[at + 1 :].decode("ascii"), "raw GLOBAL" if run[at] == 0x63 else "raw INST")
            for at in range(len(run) - 2)  # modules of two or more characters
            if run[at] in b"ci" and _MODULE_START.match(run, at + 1)
        ]
        if readings:
            at, module, opcode = next(
                (reading for reading in readings if danger(f"{reading[1]}.{name}")), readings[0]
            )
            found.append(Import(module, name, opcode, match.start() + at))
    for match in _RAW_STACK_GLOBAL.finditer(data, start):
        if match[1][0] == len(match[2]) and match[3][0] == len(match[4]):
            module, name = match[2].decode("ascii"), match[4].decode("ascii")
            found.append(Import(module, name, "raw STACK_GLOBAL", match.start()))
    return found


# ---------------------------------------------------------------- recognising the bytes

_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC: Final = b"\x93NUMPY"
# numpy's type strings for dtypes without Python objects: b1, <i8, <f4, <c16, |S10,
# <U3, |V8, <M8[ns], <m8[s].
_PLAIN_TYPESTR: Final = re.compile(r"[|<>=]?[biufcSUVa?]\d*|[|<>=]?[mM]8(\[\d*\w+\])?")
_BINARY_PICKLE: Final = re.compile(rb"\x80[\x02-\x05]")
# The header numpy writes for a plain array (one key each, in this order), then padding.
_CANONICAL_HEADER: Final = re.compile(
    r"\{'descr': '([^'\\]*)', 'fortran_order': (?:True|False), 'shape': \([0-9L, ]*\), \} *\n?"
)
_PY2_LONG: Final = re.compile(r"(?<=\d)[lL]\b")


def _decompress(data: bytes) -> bytes | None:
    """A compressed pickle's bytes (gzip, zlib, joblib's old ``ZF`` files, bz2, xz,
    lzma), up to MAX_PICKLE_SIZE; None if ``data`` is not compressed."""
    if data.startswith(b"ZF"):  # joblib < 0.10: "ZF", a padded hex length, then zlib
        at = next((i for i in range(2, 64) if data[i : i + 1] == b"x"), None)
        if at is None:
            return None
        data = data[at:]
    decompress: Callable[[bytes, int], bytes]
    if data.startswith(b"\x1f\x8b") or (
        data[:1] == b"x" and len(data) > 1 and (data[0] * 256 + data[1]) % 31 == 0
    ):
        decompress = zlib.decompressobj(wbits=47).decompress  # gzip or zlib header
    elif data.startswith(b"BZh"):
        decompress = bz2.BZ2Decompressor().decompress
    elif data.startswith((b"\xfd7zXZ\x00", b"]\x00\x00")):
        decompress = lzma.LZMADecompressor().decompress
    else:
        return None
    return decompress(data, MAX_PICKLE_SIZE + 1)


def _npy_pickle_start(data: bytes) -> int | None:
    """Where the pickle of an ``.npy`` object array starts, or None when the array holds
    no Python objects (numpy unpickles only those: header dtype ``|O``, or a structured
    dtype with an ``O`` field). ValueError for a header numpy could not read."""
    major = data[6:7]
    if major == b"\x01":
        (length,), start = struct.unpack_from("<H", data, 8), 10
    elif major in (b"\x02", b"\x03"):
        (length,), start = struct.unpack_from("<I", data, 8), 12
    else:
        raise ValueError(f"unknown .npy format version {data[6:8]!r}")
    if length > MAX_NPY_HEADER or start + length > len(data):
        raise ValueError(f".npy header of {length} bytes")
    text = data[start : start + length].decode("latin-1")
    canonical = _CANONICAL_HEADER.fullmatch(text)
    if canonical is not None:  # what numpy writes, without parsing it as Python
        return start + length if _has_object(canonical[1]) else None
    # Python 2 wrote long integers with an L suffix (``'shape': (2L,)``); numpy drops it.
    header = ast.literal_eval(_PY2_LONG.sub("", text))
    if not isinstance(header, dict) or "descr" not in header:
        raise ValueError(".npy header without a descr")
    return start + length if _has_object(header["descr"]) else None


def _has_object(descr: object) -> bool:
    """Whether a header ``descr`` may make numpy unpickle (a dtype with objects in it).
    Anything but numpy's own plain type strings and field lists counts, to be safe."""
    if isinstance(descr, str):
        return not _PLAIN_TYPESTR.fullmatch(descr)
    if isinstance(descr, tuple):  # (base dtype, shape)
        return not descr or _has_object(descr[0])
    if isinstance(descr, list):  # structured: [(name, dtype[, shape]), ...]
        return any(
            not (isinstance(item, tuple) and len(item) in (2, 3)) or _has_object(item[1])
            for item in descr
        )
    return True


# ---------------------------------------------------------------- the scan


@dataclass(frozen=True, slots=True)
class Report:
    """One pickle stream walked, or one that could not be."""

    member: str
    inner: str | None
    walk: Walk | None = None
    problem: str | None = None
    severity: Severity = Severity.LOW  # of the problem
    # For a stream that breaks off: the global whose loader reads on past the break.
    reader: str | None = None

    @property
    def where(self) -> str:
        return where(self.member, self.inner)


@dataclass
class Scan:
    reports: list[Report] = field(default_factory=list)
    own: frozenset[str] = frozenset()
    error: ArtifactError | None = None  # a member that could not be read at all


def _kind(name: str) -> str | None:
    lower = name.lower()
    base = lower
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            base = lower.removesuffix(suffix)
    if base.endswith(PICKLE_SUFFIXES):
        return "pickle"
    if lower.endswith(TORCH_SUFFIXES):
        return "torch"
    if lower.endswith(NUMPY_SUFFIX):
        return "npy"
    if lower.endswith(NUMPY_ARCHIVE_SUFFIX):
        return "npz"
    if lower.endswith(NEMO_SUFFIX):
        return "nemo"
    return None


@per_artifact
def scan(artifact: Artifact) -> Scan:
    """Every pickle stream in the artifact's members, walked (once per artifact)."""
    result = Scan(own=own_top_levels(artifact))
    for member in file_members(artifact):
        kind = _kind(member.name)
        if kind is None:
            continue
        try:
            result.reports.extend(_member_reports(artifact, member, kind))
        except ArtifactError as exc:
            result.error = result.error or exc
    return result


def _member_reports(artifact: Artifact, member: Member, kind: str) -> Iterator[Report]:
    name = member.name
    if kind == "nemo":
        if member.size > MAX_NESTED_ARCHIVE_SIZE:
            yield _too_large(member)
            return
        budget = max(member.size * 200, 64 * MiB)
        entries = tar_entries(artifact.stream(name), _nested_wanted, MAX_PICKLE_SIZE, budget)
        yield from _nested_reports(name, entries)
        return
    # A small member is read once (a second read of a tar member rewinds its stream).
    head = read_prefix(
        artifact, member, SMALL_MEMBER if member.size <= SMALL_MEMBER else SNIFF_SIZE
    )
    whole = len(head) >= member.size
    if head.startswith(_ZIP_MAGIC):
        if member.size > MAX_NESTED_ARCHIVE_SIZE:
            yield _too_large(member)
        elif whole:
            entries = zip_entries(
                io.BytesIO(head), len(head), _nested_wanted, MAX_PICKLE_SIZE, _sniff
            )
            yield from _nested_reports(name, entries)
        else:
            with spooled(artifact, member) as spool:
                entries = zip_entries(spool, member.size, _nested_wanted, MAX_PICKLE_SIZE, _sniff)
                yield from _nested_reports(name, entries)
        return
    if head.startswith(_NPY_MAGIC) and not whole:
        header_end = _npy_header_end(head)
        if header_end is not None and header_end > len(head):
            head = read_prefix(artifact, member, min(header_end, MAX_NPY_HEADER + 12))
    if not _sniff(head) or (kind == "torch" and not _BINARY_PICKLE.match(head)):
        return  # not a pickle: an .npy of numbers, a text .pth path file, a ROM...
    data = head if whole else read_prefix(artifact, member, MAX_PICKLE_SIZE)
    yield from _blob_reports(name, None, data, member.size > len(data), kind)


def _too_large(member: Member) -> Report:
    return Report(
        member.name,
        None,
        problem=f"{member.size} bytes: over the {MAX_NESTED_ARCHIVE_SIZE}-byte limit for "
        "opening an archive inside a member",
        severity=Severity.MEDIUM,
    )


def _nested_wanted(name: str) -> bool:
    return name.lower().endswith(NESTED_PICKLE_SUFFIXES)


def _sniff(head: bytes) -> bool:
    """Whether bytes starting with ``head`` may hold a pickle: anything but an .npy
    whose header says it holds no Python objects."""
    if not head.startswith(_NPY_MAGIC):
        return True
    try:
        return _npy_pickle_start(head) is not None
    except Exception:  # a header cut short here, or one numpy cannot read: look closer
        return True


def _nested_reports(member: str, entries: Iterator[Entry | Problem]) -> Iterator[Report]:
    for entry in entries:
        if isinstance(entry, Problem):
            yield _problem(member, entry)
            continue
        if entry.data.startswith(_ZIP_MAGIC) and entry.size > len(entry.data):
            reason = f"a {entry.size}-byte archive: over the {MAX_PICKLE_SIZE}-byte limit here"
            yield Report(member, entry.name, problem=reason, severity=Severity.MEDIUM)
            continue
        if entry.data.startswith(_ZIP_MAGIC):
            # A torch zip inside a .nemo tar, read (bounded) into memory, opened in turn.
            inner = zip_entries(
                io.BytesIO(entry.data), len(entry.data), _nested_wanted, MAX_PICKLE_SIZE, _sniff
            )
            for nested in inner:
                if isinstance(nested, Problem):
                    yield _problem(member, nested, entry.name)
                else:
                    yield from _blob_reports(
                        member,
                        f"{entry.name}!{nested.name}",
                        nested.data,
                        nested.size > len(nested.data),
                        _kind(nested.name) or "pickle",
                    )
            continue
        kind = _kind(entry.name) or "pickle"
        if kind == "torch" and not _BINARY_PICKLE.match(entry.data):
            continue
        truncated = entry.size > len(entry.data)
        yield from _blob_reports(member, entry.name, entry.data, truncated, kind)


def _problem(member: str, problem: Problem, inner: str | None = None) -> Report:
    path = problem.name if inner is None else f"{inner}!{problem.name or ''}".rstrip("!")
    severity = Severity.MEDIUM if problem.limit else Severity.LOW
    return Report(member, path or inner, problem=problem.reason, severity=severity)


def _blob_reports(
    member: str, inner: str | None, data: bytes, truncated: bool, kind: str
) -> Iterator[Report]:
    """Walk the pickle in ``data`` (the whole file, or its first bytes if ``truncated``)."""
    start = 0
    if data.startswith(_NPY_MAGIC):
        try:
            found = _npy_pickle_start(data)
        except Exception as exc:  # ValueError, SyntaxError, RecursionError, struct.error...
            yield Report(member, inner, problem=f"unreadable .npy header: {exc}")
            return
        if found is None:
            return
        start = found
    elif kind not in ("pickle", "torch"):
        return  # an .npy/.npz numpy would not read
    elif kind == "pickle":
        try:
            decompressed = _decompress(data)
        except Exception as exc:  # zlib.error, OSError, EOFError, LZMAError...
            yield Report(member, inner, problem=f"compressed pickle unreadable: {exc}")
            return
        if decompressed is not None:
            data = decompressed[:MAX_PICKLE_SIZE]
            truncated = len(decompressed) > MAX_PICKLE_SIZE
    walk = walk_stream(data, start)
    yield Report(member, inner, walk=walk)
    if walk.error is None:
        return
    if walk.exhausted and (truncated or walk.ops > MAX_PICKLE_OPS):
        yield Report(
            member,
            inner,
            problem=f"walked {len(data)} bytes and {walk.ops} opcodes without reaching "
            "the end of the pickle (a size limit); the rest is unchecked",
            severity=Severity.MEDIUM,
        )
    else:
        reader = next((i.resolved for i in walk.imports if i.resolved in INLINE_READERS), None)
        problem = f"the pickle breaks off at {walk.error}"
        if reader is not None:
            problem += f"; {reader} reads on past it, the rest was scanned byte-wise"
        yield Report(member, inner, problem=problem, reader=reader)


def _npy_header_end(head: bytes) -> int | None:
    try:
        if head[6:7] == b"\x01":
            return 10 + int(struct.unpack_from("<H", head, 8)[0])
        return 12 + int(struct.unpack_from("<I", head, 8)[0])
    except struct.error:
        return None


# ---------------------------------------------------------------- the checks


def pickle_dangerous_import(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A pickle stream in the file (a .pkl/.joblib file, a torch checkpoint's data.pkl,
    an .npy object array) imports something that runs commands or code when the pickle
    is loaded: os/subprocess/socket and friends, builtins exec/eval/getattr/__import__,
    importlib, runpy, loaders of further pickles, or a module reached through an
    attribute path.

    Critical: unpickling is executing. The evidence names each global as written, its
    opcode and byte offset, and counts the opcodes that call (REDUCE, BUILD, ...).
    """
    result = scan(artifact)
    if result.error is not None:
        raise result.error  # reported once, as archive-unreadable
    findings = []
    for report in result.reports:
        if report.walk is None:
            continue
        flagged = [
            (found, reason)
            for found in report.walk.imports
            if (reason := danger(found.resolved)) is not None
        ]
        if not flagged:
            continue
        first = flagged[0][0].resolved
        findings.append(
            Finding(
                PICKLE_DANGEROUS_IMPORT,
                Severity.CRITICAL,
                f"A pickle in this file imports {clip(first)}, which runs code when the "
                "pickle is loaded.",
                listing(
                    [f"{report.where} {found.describe()} ({reason})" for found, reason in flagged]
                    + [report.walk.summary()]
                ),
                report.member,
            )
        )
    return findings


def pickle_unknown_import(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A pickle stream in the file imports names outside the safe allowlist (what plain
    containers, numpy arrays and torch tensors need, SAFE_GLOBALS) and outside the
    package's own top-level modules: loading it imports those modules and may call them.
    A STACK_GLOBAL whose operands cannot be traced counts too.

    Medium (held for review); names that are dangerous are pickle-dangerous-import's.
    """
    result = scan(artifact)
    findings = []
    for report in result.reports:
        if report.walk is None:
            continue
        unknown = [
            found
            for found in report.walk.imports
            if danger(found.resolved) is None
            and not is_safe_global(found.resolved)
            and not is_own(found.resolved, result.own)
        ]
        if not unknown:
            continue
        names = sorted({found.resolved for found in unknown})
        findings.append(
            Finding(
                PICKLE_UNKNOWN_IMPORT,
                Severity.MEDIUM,
                f"A pickle in this file imports {len(names)} name(s) outside the safe "
                f"allowlist and this package, such as {clip(names[0])}.",
                listing(
                    [f"{report.where} {found.describe()}" for found in unknown]
                    + [report.walk.summary()]
                ),
                report.member,
            )
        )
    return findings


def pickle_unverified(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A pickle stream, or the archive holding one, could not be walked to its end.

    Medium when the walk stopped at a limit (MAX_PICKLE_SIZE, MAX_PICKLE_OPS, a nested
    archive over its size limit), or when the stream breaks off where a loader reads on
    (joblib's inline array bytes, INLINE_READERS) in a package other than that loader's:
    the unchecked rest would still run (it is scanned byte-wise for imports, which a
    crafted stream can evade). Low when the bytes are just malformed (every loader fails
    there too), for joblib's own test data, or when a nested archive is unreadable.
    """
    result = scan(artifact)
    findings = []
    for report in result.reports:
        if report.problem is None:
            continue
        severity = report.severity
        if report.reader is not None and not is_own(report.reader, result.own):
            severity = Severity.MEDIUM
        findings.append(
            Finding(
                PICKLE_UNVERIFIED,
                severity,
                "A pickle stream in this file could not be checked completely.",
                clip(f"{report.where}: {report.problem}"),
                report.member,
            )
        )
    return findings


__all__ = [
    "INLINE_READERS",
    "PICKLE_DANGEROUS_IMPORT",
    "PICKLE_UNKNOWN_IMPORT",
    "PICKLE_UNVERIFIED",
    "SAFE_GLOBALS",
    "SAFE_GLOBAL_PATTERNS",
    "Import",
    "Walk",
    "is_safe_global",
    "pickle_dangerous_import",
    "pickle_unknown_import",
    "pickle_unverified",
    "scan",
    "walk_pickle",
    "walk_stream",
]
