"""Model files inside packages (pickles, torch checkpoints, numpy arrays, Hydra configs,
safetensors): which members they are, reading them and the archives nested in them
within limits, and judging the dotted names (pickle imports, Hydra ``_target_`` strings)
they would make a loader import and call.

Shared by :mod:`quarantine.checks.pickles` and :mod:`quarantine.checks.modelconfig`.
Nothing here unpickles, imports or loads anything: callers get bytes. A nested zip (a
torch checkpoint, an ``.npz``) needs random access to its central directory, so the
outer member is spooled: in memory up to SPOOL_IN_MEMORY, then in an anonymous temporary
file (never a named path). A nested tar (a NeMo ``.nemo``) is read as a forward stream.
Every size is judged before the bytes behind it are read.
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
import sys
import tarfile
import tempfile
import weakref
import zipfile
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import IO, Final, Protocol, TypeVar, cast

from quarantine.artifact import (
    Artifact,
    ArtifactError,
    GiB,
    Member,
    MemberType,
    MiB,
    _central_directory_size,
    safe_text,
)

# ---------------------------------------------------------------- limits

# A member holding a nested archive (torch zip checkpoint, .npz, .nemo) is read through
# up to this size; a bigger one is reported as unverified, not read.
MAX_NESTED_ARCHIVE_SIZE: Final = 1 * GiB
# Spooled zips stay in memory up to this size, then go to an anonymous temporary file.
SPOOL_IN_MEMORY: Final = 16 * MiB
MAX_NESTED_ENTRIES: Final = 10_000
MAX_NESTED_CENTRAL_DIRECTORY: Final = 4 * MiB
# The largest single read a nested tar's headers may ask for (a pax or GNU long-name
# header is a few hundred bytes; tarfile reads one whole into memory).
MAX_NESTED_TAR_READ: Final = 1 * MiB
# How much of a nested entry is read to decide whether the rest is needed.
SNIFF_SIZE: Final = 4096
# Findings list this many offending names or problems per member, then a count.
MAX_LISTED: Final = 10
MAX_EVIDENCE: Final = 1000

NESTED_ZIP_METHODS: Final = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

# ---------------------------------------------------------------- judging dotted names

# Importing anything from these modules (or their submodules) gives a pickle or a Hydra
# config a way to run commands, load code, open sockets or touch files.
DANGEROUS_MODULES: Final = frozenset(
    {
        "os", "posix", "nt", "_posixsubprocess", "subprocess", "pty", "commands", "popen2",
        "runpy", "importlib", "pkgutil", "pydoc", "zipimport", "imp",
        "sys", "code", "codeop", "ctypes", "_ctypes", "cffi", "gc",
        "multiprocessing", "_multiprocessing", "_thread", "thread", "threading",
        "_winapi", "msvcrt", "winreg", "_winreg", "signal",
        "socket", "_socket", "ssl", "socketserver", "asyncio", "select", "selectors",
        "http", "urllib", "urllib2", "urllib3", "requests", "httpx", "aiohttp",
        "ftplib", "telnetlib", "smtplib", "poplib", "imaplib", "nntplib", "xmlrpc",
        "webbrowser", "shutil", "tempfile",
        "pickle", "_pickle", "cPickle", "pickletools", "marshal", "shelve", "dbm",
        "dill", "cloudpickle", "jsonpickle",
        "pdb", "bdb", "trace", "timeit", "profile", "cProfile",
    }
)  # fmt: skip

# Single callables, in modules that are otherwise harmless, that evaluate code, reach
# arbitrary attributes or import by name, open files, or load another pickle.
DANGEROUS_CALLABLES: Final = frozenset(
    {
        "builtins.eval", "builtins.exec", "builtins.execfile", "builtins.compile",
        "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.__import__",
        "builtins.open", "builtins.file", "builtins.input", "builtins.breakpoint",
        "builtins.globals", "builtins.locals", "builtins.vars", "builtins.reload",
        "builtins.apply", "builtins.help",
        "io.open", "io.open_code", "io.FileIO", "_io.open", "_io.open_code", "_io.FileIO",
        "codecs.open", "pathlib.Path.write_text", "pathlib.Path.write_bytes",
        "types.FunctionType", "types.LambdaType", "types.CodeType", "types.MethodType",
        "operator.attrgetter", "operator.methodcaller", "operator.call",
        "functools.reduce",
        "numpy.load", "numpy.loads", "numpy.lib.npyio.load", "numpy.ctypeslib.load_library",
        "numpy.testing._private.utils.runstring", "numpy.f2py", "numpy.distutils",
        "torch.load", "torch.serialization.load", "torch.hub", "torch.jit.load",
        "torch.package", "torch.utils.cpp_extension", "torch.ops.load_library",
        "torch.classes.load_library",
        "joblib.load", "pandas.read_pickle", "pandas.io.pickle.read_pickle",
        "yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.unsafe_load_all",
        "yaml.full_load", "yaml.full_load_all",
        "keras.models.load_model", "keras.saving.load_model",
        "tensorflow.keras.models.load_model", "tensorflow.keras.saving.load_model",
        "tensorflow.saved_model.load", "tensorflow.py_function", "tensorflow.numpy_function",
        "hydra.utils.instantiate", "hydra.utils.call", "hydra.utils.get_method",
        "hydra.utils.get_class", "hydra.utils.get_object", "hydra._internal.utils._locate",
        "hydra._internal.instantiate",
        "omegaconf.OmegaConf.register_new_resolver",
    }
)  # fmt: skip

# A module name appearing *after* the first segment of a dotted path means the path may
# walk an attribute that is that module (``logging.os.system``,
# ``hydra._internal.utils.os.system``): the alias bypass of Hydra's advisory. Such a
# path is dangerous when what it reaches from there is (``os.system``, ``sys.modules``);
# a library's own submodule of the same name (``future.builtins.newint``) is not.
ALIAS_MODULES: Final = frozenset(
    {
        "os", "nt", "posix", "sys", "subprocess", "_posixsubprocess", "builtins",
        "__builtin__", "importlib", "runpy", "pty", "ctypes", "shutil", "webbrowser",
    }
)  # fmt: skip

# Dunder attributes legitimately named by pickles (copyreg's constructors).
ALLOWED_DUNDERS: Final = frozenset({"__newobj__", "__newobj_ex__"})

# Python 2 names that the unpickler itself maps to Python 3 ones.
_MODULE_ALIASES: Final = {"__builtin__": "builtins", "exceptions": "builtins"}

_DUNDER = re.compile(r"__\w+__")
DOTTED_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def danger(dotted: str) -> str | None:
    """Why importing or calling ``dotted`` (``module.attr.attr``) is dangerous, or None.

    Dangerous: a callable in DANGEROUS_CALLABLES (or anything under one), anything in a
    DANGEROUS_MODULES module, a path that reaches one of those through an attribute
    that is an ALIAS_MODULES module, or a path through a dunder attribute
    (``__globals__``, ``__builtins__``).
    """
    segments = dotted.split(".")
    if not segments or not segments[0]:
        return None
    segments[0] = _MODULE_ALIASES.get(segments[0], segments[0])
    for end in range(len(segments), 0, -1):
        prefix = ".".join(segments[:end])
        if prefix in DANGEROUS_CALLABLES:
            return f"{prefix} runs code, imports by name, opens files or loads pickles"
    if segments[0] in DANGEROUS_MODULES:
        return f"the {segments[0]} module runs commands, code or I/O"
    for index, segment in enumerate(segments[1:], start=1):
        if segment in ALIAS_MODULES and danger(".".join(segments[index:])) is not None:
            reached = ".".join(segments[: index + 1])
            return f"{reached} reaches the {segment} module through an attribute path"
        if _DUNDER.fullmatch(segment) and segment not in ALLOWED_DUNDERS:
            reached = ".".join(segments[: index + 1])
            return f"{reached} walks the dunder attribute {segment}"
    return None


# ---------------------------------------------------------------- the package's own names


_LIBRARY_SCHEMES: Final = ("purelib", "platlib")  # <name>.data/<scheme>/ lands in site-packages


def own_top_levels(artifact: Artifact) -> frozenset[str]:
    """The top-level import names this wheel or sdist ships (packages and modules).

    Wheel: the first path segment of every member outside ``.dist-info`` (and inside
    ``.data/purelib`` or ``.data/platlib``); sdist: the same one level below its root
    directory, and below ``src/``. Modules count by their name up to the first dot
    (``_core.cpython-311-x86_64-linux-gnu.so`` is ``_core``). Standard-library names never
    count as the package's own, so a wheel cannot allowlist ``os`` by shipping ``os/``.
    """
    found: set[str] = set()
    for member in artifact.members:
        parts = member.name.split("/")
        if artifact.kind == "sdist":
            parts = parts[1:]
            if parts[:1] == ["src"]:
                parts = parts[1:]
        elif parts[0].endswith(".data") and len(parts) > 2 and parts[1] in _LIBRARY_SCHEMES:
            parts = parts[2:]
        if not parts or parts[0].endswith((".dist-info", ".data", ".egg-info")):
            continue
        top = parts[0]
        if len(parts) == 1:
            if not top.endswith((".py", ".so", ".pyd")):
                continue
            top = top.partition(".")[0]
        if top.isidentifier() and top not in sys.stdlib_module_names:
            found.add(top)
    return frozenset(found)


def is_own(dotted: str, own: frozenset[str]) -> bool:
    return dotted.partition(".")[0] in own


# ---------------------------------------------------------------- members


def file_members(artifact: Artifact) -> Iterator[Member]:
    """Regular-file members stored once (a name stored twice is another check's)."""
    counts = Counter(member.name for member in artifact.members)
    for member in artifact.members:
        if member.type is MemberType.FILE and counts[member.name] == 1:
            yield member


def read_prefix(artifact: Artifact, member: Member, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of ``member`` (the rest is never read)."""
    parts: list[bytes] = []
    total = 0
    with closing(cast(Generator[bytes, None, None], artifact.stream(member.name))) as chunks:
        for chunk in chunks:
            part = chunk[: limit - total]
            parts.append(part)
            total += len(part)
            if total >= limit:
                break
    return b"".join(parts)


@contextmanager
def spooled(artifact: Artifact, member: Member) -> Iterator[IO[bytes]]:
    """The member's bytes as a seekable file: memory, then an anonymous temporary file."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        for chunk in artifact.stream(member.name):
            spool.write(chunk)
        spool.seek(0)
        yield spool


@dataclass(frozen=True, slots=True)
class Entry:
    """One file read from a nested archive: its path there, and up to the caller's limit
    of its bytes (``size`` is what the archive declares)."""

    name: str
    data: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a nested archive (or one entry of it) could not be read."""

    name: str | None  # the entry, or None for the nested archive as a whole
    reason: str
    limit: bool = False  # over one of our limits (a loader might read it), not malformed


def zip_entries(
    stream: IO[bytes],
    size: int,
    wanted: Callable[[str], bool],
    limit: int,
    sniff: Callable[[bytes], bool] | None = None,
) -> Iterator[Entry | Problem]:
    """The ``wanted`` entries of a nested zip (seekable ``stream`` of ``size`` bytes),
    each read up to ``limit`` bytes, or skipped when ``sniff`` rejects its first
    SNIFF_SIZE bytes; what cannot be read safely is a Problem."""
    try:
        directory = _central_directory_size(stream, size)  # type: ignore[arg-type]
        if directory is not None and directory > MAX_NESTED_CENTRAL_DIRECTORY:
            yield Problem(None, f"nested zip central directory of {directory} bytes", True)
            return
        stream.seek(0)
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_NESTED_ENTRIES:
                yield Problem(None, f"nested zip with {len(infos)} entries", True)
                return
            for info in infos:
                if info.is_dir() or not wanted(info.filename):
                    continue
                if info.flag_bits & 0x1 or info.compress_type not in NESTED_ZIP_METHODS:
                    yield Problem(info.filename, "encrypted or unusual compression method")
                    continue
                with archive.open(info) as entry:
                    data = entry.read(min(limit, SNIFF_SIZE))
                    if sniff is not None and not sniff(data):
                        continue
                    if len(data) < limit:
                        data += entry.read(limit - len(data))
                yield Entry(info.filename, data, info.file_size)
    except ArtifactError:
        raise
    except Exception as exc:  # hostile bytes: BadZipFile, zlib.error, EOFError, OSError...
        yield Problem(None, f"nested zip unreadable: {type(exc).__name__}: {exc}")


class _OverLimit(ValueError):
    """A nested tar asked for more than its limits allow."""


class _ChunkFile:
    """A read-only, forward-only file over an iterator of byte chunks. It refuses a
    single read over ``max_read`` (so tarfile cannot read a huge header into memory) and
    reading past ``budget`` bytes in all (a decompression bomb), and seeks forward by
    reading."""

    def __init__(
        self, chunks: Iterator[bytes], *, max_read: int | None = None, budget: int | None = None
    ) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._position = 0
        self._max_read = max_read
        self._budget = budget

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or (self._max_read is not None and size > self._max_read):
            raise _OverLimit(f"a {size}-byte read at offset {self._position}")
        if self._budget is not None and self._position + size > self._budget:
            raise _OverLimit(f"decompressing past {self._budget} bytes")
        while len(self._buffer) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._position:
            raise io.UnsupportedOperation("only forward seeks")
        while self._position < target:
            if not self.read(min(target - self._position, self._max_read or MiB)):
                break
        return self._position


def tar_entries(
    chunks: Iterator[bytes], wanted: Callable[[str], bool], limit: int, budget: int
) -> Iterator[Entry | Problem]:
    """The ``wanted`` regular files of a nested tar (plain or gzip) read forward from
    ``chunks``, each up to ``limit`` bytes, the whole decompressed stream up to
    ``budget`` bytes; what cannot be read safely is a Problem."""
    try:
        first = next(chunks, b"")
        raw = _ChunkFile(itertools.chain([first], chunks))
        source: _Readable = raw
        if first.startswith(b"\x1f\x8b"):
            source = gzip.GzipFile(fileobj=raw, mode="rb")
        bounded = _ChunkFile(_pieces(source), max_read=MAX_NESTED_TAR_READ, budget=budget)
        entries = 0
        with tarfile.TarFile(fileobj=cast(IO[bytes], bounded), mode="r") as tar:
            while (info := tar.next()) is not None:
                entries += 1
                if entries > MAX_NESTED_ENTRIES:
                    yield Problem(None, f"nested tar with over {MAX_NESTED_ENTRIES} entries", True)
                    return
                if not info.isreg() or not wanted(info.name):
                    continue
                extracted = tar.extractfile(info)
                if extracted is None:
                    continue
                data = b"".join(_bounded_reads(extracted, min(limit, info.size)))
                yield Entry(info.name, data, info.size)
    except ArtifactError:
        raise
    except _OverLimit as exc:
        yield Problem(None, f"nested tar over a limit: {exc}", True)
    except Exception as exc:  # hostile bytes: TarError, EOFError, zlib.error, OSError...
        yield Problem(None, f"nested tar unreadable: {type(exc).__name__}: {exc}")


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def _pieces(source: _Readable) -> Iterator[bytes]:
    while chunk := source.read(MiB):
        yield chunk


def _bounded_reads(stream: IO[bytes], total: int) -> Iterator[bytes]:
    left = total
    while left > 0:
        chunk = stream.read(min(left, MAX_NESTED_TAR_READ))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


# ---------------------------------------------------------------- per-artifact results

T = TypeVar("T")


def per_artifact(compute: Callable[[Artifact], T]) -> Callable[[Artifact], T]:
    """``compute`` once per open artifact: the checks of one family share one scan."""
    cache: weakref.WeakKeyDictionary[Artifact, T] = weakref.WeakKeyDictionary()

    def cached(artifact: Artifact) -> T:
        if artifact not in cache:
            cache[artifact] = compute(artifact)
        return cache[artifact]

    return cached


def where(member: str, inner: str | None) -> str:
    """A location for evidence: ``pkg/model.pt!archive/data.pkl``."""
    return member if inner is None else f"{member}!{inner}"


def listing(items: list[str]) -> str:
    """The first MAX_LISTED items, then how many more; clipped to MAX_EVIDENCE."""
    shown = "; ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f"; and {len(items) - MAX_LISTED} more"
    return clip(shown)


def clip(text: str) -> str:
    text = safe_text(text)
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"


__all__ = [
    "ALIAS_MODULES",
    "DANGEROUS_CALLABLES",
    "DANGEROUS_MODULES",
    "DOTTED_NAME",
    "Entry",
    "Problem",
    "clip",
    "danger",
    "file_members",
    "is_own",
    "listing",
    "own_top_levels",
    "per_artifact",
    "read_prefix",
    "spooled",
    "tar_entries",
    "where",
    "zip_entries",
]
