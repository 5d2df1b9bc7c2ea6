"""Open a wheel or sdist without trusting it.

Nothing is extracted to disk, imported or executed: members are listed from the archive's
own directory (zip) or headers (tar) and read one at a time, in chunks, under the limits
in :class:`Limits`. Every declared size is judged *before* the bytes behind it are
decompressed, and the decompressors themselves are bounded, so a decompression bomb
becomes an :class:`ArtifactError` naming the limit, never an out-of-memory or a hang.

Opening never raises for hostile content: :meth:`Artifact.open` records why an archive
could not be read in :attr:`Artifact.error` (the ``archive-unreadable`` check reports it),
and the filename, digests and size are known even then. Reading a member raises
:class:`ArtifactError`, the one exception type of this module.
"""

from __future__ import annotations

import bz2
import csv
import email.parser
import gzip
import hashlib
import io
import lzma
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property, partial
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Literal, Protocol, Self

from packaging.metadata import Metadata, RawMetadata, parse_email
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Files are hashed and members read in chunks of this size: never a whole file in memory.
CHUNK_SIZE = 1 * MiB
# Artifact.head keeps this much of each member it has read: enough for magic numbers.
HEAD_SIZE = 64
# A zip symlink's target is its content; a real one is a short path.
MAX_LINK_TARGET = 4 * KiB

ArtifactKind = Literal["wheel", "sdist"]
Container = Literal["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"]

# How the archive is opened, by the filename's suffix (pip goes by the name too).
_SUFFIXES: tuple[tuple[str, Container], ...] = (
    (".whl", "zip"),
    (".zip", "zip"),
    (".tar.gz", "tar.gz"),
    (".tgz", "tar.gz"),
    (".tar.bz2", "tar.bz2"),
    (".tbz", "tar.bz2"),
    (".tar.xz", "tar.xz"),
    (".txz", "tar.xz"),
    (".tar", "tar"),
)


@dataclass(frozen=True)
class Limits:
    """What an archive may claim before it is refused as a bomb. The defaults admit the
    largest real wheels (multi-gigabyte CUDA builds, tens of thousands of members)."""

    max_members: int = 100_000
    max_total_size: int = 16 * GiB  # sum of the members' uncompressed sizes
    max_member_size: int = 4 * GiB  # one member, uncompressed
    # Uncompressed/compressed, per zip member and for the whole archive. Real wheels and
    # sdists sit below 15; deflate cannot exceed about 1032, which only zeros approach.
    max_compression_ratio: float = 200.0
    # The ratio is only judged above this many uncompressed bytes: a small file of
    # spaces compresses 500:1 and harms nobody.
    ratio_floor: int = 8 * MiB
    # A zip's central directory is parsed whole (about 500 bytes of memory and 6 us per
    # 46-byte entry), so its size is judged from the end record before it is parsed.
    max_central_directory_size: int = 32 * MiB
    # METADATA, PKG-INFO, WHEEL and entry_points.txt are read and parsed whole; the email
    # parser takes about 0.15 s per MiB.
    max_metadata_size: int = 4 * MiB
    max_record_size: int = 64 * MiB
    # The largest single read tarfile may make on a decompressed stream. Our own reads
    # are CHUNK_SIZE; only a pax or GNU long-name header makes tarfile read more at once
    # (a real one is a few hundred bytes), and it reads it whole into memory.
    max_header_size: int = 16 * MiB


DEFAULT_LIMITS = Limits()


class ArtifactError(Exception):
    """The archive, or one member of it, cannot be read safely. ``member`` names the
    member when there is one; ``limit`` names what was exceeded: a :class:`Limits` field,
    or ``"read limit"`` for the limit a caller passed to :meth:`Artifact.read`."""

    def __init__(self, message: str, member: str | None = None, *, limit: str | None = None):
        super().__init__(message)
        self.message = message
        self.member = member
        self.limit = limit


class MemberType(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"  # devices, fifos, anything an installer should never see


@dataclass(frozen=True, slots=True)
class Member:
    """One archive entry as the archive declares it. ``name`` is the stored path, exactly
    (zip directories end with ``/``; traversal like ``../`` is left for checks to see)."""

    name: str
    size: int  # uncompressed, as declared
    compressed_size: int | None  # zip only
    type: MemberType
    mode: int | None  # the stored permission bits, when the archive has Unix ones
    link_target: str | None = None  # tar links only


@dataclass(frozen=True)
class CoreMetadata:
    """The file's core metadata: wheel METADATA or sdist PKG-INFO, exactly as stored.

    ``raw`` is what ``packaging.metadata.parse_email`` could read (unvalidated strings,
    what installers act on); ``metadata`` is the validated form, None when packaging
    reported ``errors``.
    """

    path: str
    data: bytes
    raw: RawMetadata
    unparsed: Mapping[str, list[str]]
    metadata: Metadata | None
    errors: tuple[Exception, ...]

    @property
    def name(self) -> str | None:
        return self.raw.get("name")

    @property
    def version(self) -> str | None:
        return self.raw.get("version")

    @property
    def metadata_version(self) -> str | None:
        return self.raw.get("metadata_version")

    @property
    def requires_dist(self) -> tuple[str, ...]:
        return tuple(self.raw.get("requires_dist", ()))

    @property
    def requires_python(self) -> str | None:
        return self.raw.get("requires_python")


# The fields the core metadata spec requires; packaging reports their absence.
_REQUIRED_FIELDS = ("metadata_version", "name", "version")


def parse_core_metadata(path: str, data: bytes) -> CoreMetadata:
    """Parse METADATA/PKG-INFO bytes with packaging, collecting every validation error.

    ``Metadata.from_email(validate=True)`` alone reports too little for a judge: it stops
    at the first stage with errors (one unknown header hides every invalid value), and it
    skips checking the value of a field newer than the declared Metadata-Version (declare
    1.0 and no Requires-Dist is checked). So when it reports anything, ``from_raw`` runs
    too and every field's value is also checked one by one; all errors are kept, once.
    """
    try:
        raw, unparsed = parse_email(data)
    except Exception as exc:  # hostile input: ValueError, and AssertionError on multipart
        return CoreMetadata(path, data, {}, {}, None, (exc,))
    try:
        metadata = Metadata.from_email(data, validate=True)
        return CoreMetadata(path, data, raw, unparsed, metadata, ())
    except ExceptionGroup as group:
        found = list(_leaves(group))
    except Exception as exc:
        found = [exc]
    found += _errors(partial(Metadata.from_raw, raw, validate=True))
    lenient = Metadata.from_raw(raw, validate=False)
    for key in sorted(set(raw) | set(_REQUIRED_FIELDS)):
        if key in vars(Metadata):  # a field this packaging has a validator for
            found += _errors(partial(getattr, lenient, key))
    unique: dict[tuple[str, str], Exception] = {}
    for error in found:
        unique.setdefault((str(getattr(error, "field", "")), str(error)), error)
    return CoreMetadata(path, data, raw, unparsed, None, tuple(unique.values()))


def _errors(validate: Callable[[], object]) -> list[Exception]:
    try:
        validate()
    except ExceptionGroup as group:
        return list(_leaves(group))
    except Exception as exc:
        return [exc]
    return []


def _leaves(group: BaseExceptionGroup[Exception]) -> Iterator[Exception]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def digest_file(path: Path, algorithms: Iterable[str] = ()) -> tuple[int, dict[str, str]]:
    """Size and hex digests of a file, read once in CHUNK_SIZE chunks. sha256 is always
    computed; other names are lower-cased and kept only if hashlib knows them with a
    fixed length (so the upstream's ``blake2b_256`` or ``shake_128`` are skipped)."""
    hashers: dict[str, hashlib._Hash] = {"sha256": hashlib.sha256()}
    for name in algorithms:
        key = str(name).strip().lower()
        if key in hashers:
            continue
        try:
            hasher = hashlib.new(key, usedforsecurity=False)
        except (ValueError, TypeError):
            continue
        if hasher.digest_size > 0 and not key.startswith("shake"):
            hashers[key] = hasher
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    return size, {key: hasher.hexdigest() for key, hasher in hashers.items()}


def safe_text(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes in tar names) made printable
    escapes, so it can be stored and encoded as UTF-8 anywhere."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@contextmanager
def _translated(what: str, member: str | None = None) -> Iterator[None]:
    """Turn whatever zipfile/tarfile/zlib raise on hostile input into ArtifactError."""
    try:
        yield
    except ArtifactError:
        raise
    # The stdlib parsers raise a zoo here: BadZipFile, TarError, EOFError, zlib.error,
    # struct.error, NotImplementedError, RuntimeError, UnicodeDecodeError, OSError...
    except Exception as exc:
        where = f" {safe_text(repr(member))}" if member is not None else ""
        raise ArtifactError(
            f"cannot {what}{where}: {type(exc).__name__}: {safe_text(str(exc))}", member
        ) from exc


def _refuse(message: str, limit: str, member: str | None = None) -> ArtifactError:
    return ArtifactError(message, member, limit=limit)


def _decompression_budget(archive_size: int, limits: Limits) -> int:
    """How many uncompressed bytes a file of ``archive_size`` bytes may expand to."""
    return max(limits.ratio_floor, int(limits.max_compression_ratio * archive_size))


class _Tally:
    """Declared sizes, judged member by member before anything is decompressed."""

    def __init__(self, archive_size: int, limits: Limits) -> None:
        self._archive_size = archive_size
        self._limits = limits
        self._budget = _decompression_budget(archive_size, limits)
        self.count = 0
        self.total = 0

    def add(self, member: Member) -> None:
        limits = self._limits
        self.count += 1
        if self.count > limits.max_members:
            raise _refuse(f"more than {limits.max_members} members", "max_members")
        _check_member(member, limits)
        self.total += member.size
        if self.total > limits.max_total_size:
            raise _refuse(
                f"members up to {safe_text(repr(member.name))} declare more than "
                f"{limits.max_total_size} bytes in total",
                "max_total_size",
                member.name,
            )
        if self.total > self._budget:
            raise _refuse(
                f"members up to {safe_text(repr(member.name))} declare {self.total} bytes "
                f"from a {self._archive_size}-byte file "
                f"(ratio over {limits.max_compression_ratio:g})",
                "max_compression_ratio",
                member.name,
            )


def _check_member(member: Member, limits: Limits) -> None:
    if member.size > limits.max_member_size:
        raise _refuse(
            f"member {safe_text(repr(member.name))} declares {member.size} bytes "
            f"(over {limits.max_member_size})",
            "max_member_size",
            member.name,
        )
    compressed = member.compressed_size
    if (
        compressed is not None
        and member.size > limits.ratio_floor
        and member.size > limits.max_compression_ratio * max(compressed, 1)
    ):
        raise _refuse(
            f"member {safe_text(repr(member.name))} declares {member.size} bytes from "
            f"{compressed} compressed (ratio over {limits.max_compression_ratio:g})",
            "max_compression_ratio",
            member.name,
        )


class _Backend(Protocol):
    members: tuple[Member, ...]

    def open_member(self, name: str) -> IO[bytes]: ...

    def close(self) -> None: ...


class _Decompressed(Protocol):
    """What a decompressing file object (or the raw file) offers the tar reader."""

    def read(self, size: int = ..., /) -> bytes: ...

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- zip

_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")


def _central_directory_size(stream: BinaryIO, file_size: int) -> int | None:
    """The central directory size from the end records, or None when there is no end
    record (zipfile then reports the archive as not a zip)."""
    tail_size = min(file_size, _EOCD.size + 0xFFFF)
    stream.seek(file_size - tail_size)
    tail = stream.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    fields = _EOCD.unpack_from(tail, at)
    size: int = fields[5]
    if size != 0xFFFFFFFF and fields[4] != 0xFFFF:
        return size
    locator_at = at - _EOCD64_LOCATOR.size
    if locator_at < 0 or tail[locator_at : locator_at + 4] != b"PK\x06\x07":
        return size
    record_at = file_size - tail_size + locator_at - _EOCD64.size
    if record_at < 0:
        return size
    stream.seek(record_at)
    record = stream.read(_EOCD64.size)
    if len(record) != _EOCD64.size or record[:4] != b"PK\x06\x06":
        return size
    size64: int = _EOCD64.unpack(record)[8]
    return size64


def _zip_member(info: zipfile.ZipInfo) -> Member:
    # Unix permission bits sit in the high half of external_attr when made on Unix.
    mode = (info.external_attr >> 16 if info.create_system == 3 else 0) or None
    if mode is not None and stat.S_ISLNK(mode):
        kind = MemberType.SYMLINK
    elif info.is_dir() or (mode is not None and stat.S_ISDIR(mode)):
        kind = MemberType.DIRECTORY
    elif mode is None or stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0:
        kind = MemberType.FILE
    else:
        kind = MemberType.OTHER
    return Member(
        name=info.filename,
        size=info.file_size,
        compressed_size=info.compress_size,
        type=kind,
        mode=None if mode is None else stat.S_IMODE(mode),
    )


class _ZipBackend:
    def __init__(self, path: Path, archive_size: int, limits: Limits) -> None:
        with ExitStack() as stack:
            file = stack.enter_context(path.open("rb"))
            directory = _central_directory_size(file, archive_size)
            if directory is not None and directory > limits.max_central_directory_size:
                raise _refuse(
                    f"the zip central directory is {directory} bytes "
                    f"(over {limits.max_central_directory_size})",
                    "max_central_directory_size",
                )
            self._zip = stack.enter_context(zipfile.ZipFile(file))
            infos = self._zip.infolist()
            self._infos = {info.filename: info for info in infos}
            self.members = tuple(_zip_member(info) for info in infos)
            tally = _Tally(archive_size, limits)
            for info, member in zip(infos, self.members, strict=True):
                tally.add(member)
                if info.flag_bits & 0x1:
                    raise ArtifactError(
                        f"member {safe_text(repr(info.filename))} is encrypted", info.filename
                    )
                # zipfile decompresses bzip2 and lzma members without an output bound;
                # wheels may only use stored or deflate (binary distribution format spec).
                if info.compress_type not in _ZIP_METHODS:
                    raise ArtifactError(
                        f"member {safe_text(repr(info.filename))} uses compression method "
                        f"{info.compress_type}; only stored and deflate are allowed",
                        info.filename,
                    )
            self._stack = stack.pop_all()

    def open_member(self, name: str) -> IO[bytes]:
        # ZipExtFile stops at the declared size and checks the CRC at the end.
        return self._zip.open(self._infos[name])

    def close(self) -> None:
        self._stack.close()


# ---------------------------------------------------------------- zip layout
#
# zipfile trusts the central directory and reads a local header only to skip it; a
# streaming installer trusts the local headers and never reads the directory. When the
# two disagree, or bytes sit where only one kind of reader looks, two installers unpack
# different files from the same wheel (uv's CVE-2025-54368). The layout below is what
# the bytes say, every structure located and decoded with ``struct`` in bounded reads;
# the zip-confusion checks judge it.

_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LOCAL_SIGNATURE = b"PK\x03\x04"
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_ZIP64_EXTRA = 0x0001
_UNICODE_PATH_EXTRA = 0x7075  # Info-ZIP: a UTF-8 name some readers prefer to the stored one
_FLAG_DESCRIPTOR = 0x0008  # sizes and CRC follow the data, not in the local header
_FLAG_UTF8 = 0x0800
_MAX_32 = 0xFFFFFFFF

# Record signatures worth naming when they turn up in bytes no structure accounts for:
# a reader that scans for them (a streaming installer, a repair tool) finds what the
# central directory does not list.
ZIP_SIGNATURES: Mapping[bytes, str] = {
    _LOCAL_SIGNATURE: "local file header",
    _CENTRAL_SIGNATURE: "central directory header",
    _END_SIGNATURE: "end of central directory record",
    _ZIP64_END_SIGNATURE: "zip64 end of central directory record",
}

SpanKind = Literal["prepended", "between", "comment", "appended"]


@dataclass(frozen=True, slots=True)
class ZipHeader:
    """One header's account of a member: the central directory's, or the local one's."""

    name: bytes  # exactly as stored
    flags: int
    method: int
    crc: int
    compressed_size: int  # zip64 values resolved
    size: int
    unicode_name: str | None  # the Info-ZIP Unicode Path extra field's name, when present

    @property
    def text_name(self) -> str:
        """The name as zipfile (and pip) decode it: UTF-8 when flagged, else cp437."""
        return self.name.decode("utf-8" if self.flags & _FLAG_UTF8 else "cp437", "replace")


@dataclass(frozen=True, slots=True)
class ZipDescriptor:
    """The data descriptor after a member's data (flag bit 3): what a streaming reader
    learns the member's CRC and sizes from."""

    crc: int
    compressed_size: int
    size: int


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """A central directory entry beside the local header its offset leads to."""

    central: ZipHeader
    declared_offset: int  # of the local header, as the directory gives it
    offset: int  # where zipfile looks for it: declared, shifted as the end record implies
    local: ZipHeader | None  # None when no local header is there
    descriptor: ZipDescriptor | None
    end: int  # end of the local header, the data and any descriptor (offset when no header)


@dataclass(frozen=True, slots=True)
class ZipSpan:
    """Bytes no zip structure accounts for, and any record signatures inside them."""

    kind: SpanKind  # before the first member, between structures, the comment, after it
    start: int
    end: int
    signatures: tuple[str, ...]  # ZIP_SIGNATURES names found inside, in order, once each

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ZipLayout:
    """Where a zip's structures sit and what each says, as :meth:`Artifact.zip_layout`
    reads them. Offsets are from the start of the file."""

    file_size: int
    entries: tuple[ZipEntry, ...]  # central directory order
    end_offset: int  # the end of central directory record zipfile uses (the last one)
    declared_entries: int  # the end record's entry count (the zip64 one's when present)
    declared_disk_entries: int  # the same count "on this disk" (must be equal)
    directory_offset: int  # the directory's offset as declared
    directory_start: int  # where zipfile reads it: just before the end records
    directory_size: int
    comment_length: int  # as declared; the comment may run past the end of the file
    zip64_offset: int | None  # where zipfile reads the zip64 end record (None: no zip64)
    zip64_declared_offset: int | None  # where the zip64 locator says it is
    # The classic end record's own (disk entries, entries, directory size, directory
    # offset): with zip64, readers that ignore it unless these are saturated use these.
    classic_values: tuple[int, int, int, int]
    end_records: tuple[int, ...]  # every end-record signature in the directory or in
    # unaccounted bytes, the one used included
    spans: tuple[ZipSpan, ...]  # unaccounted bytes, in file order

    @property
    def shift(self) -> int:
        """How far every declared offset is off (data prepended to a whole zip)."""
        return self.directory_start - self.directory_offset


def _extra_fields(extra: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        yield kind, extra[at + 4 : at + 4 + length]
        at += 4 + length


def _unicode_name(extra: bytes) -> str | None:
    for kind, data in _extra_fields(extra):
        if kind == _UNICODE_PATH_EXTRA and len(data) >= 5:
            return data[5:].decode("utf-8", "replace")
    return None


def _zip64_values(extra: bytes) -> list[int]:
    for kind, data in _extra_fields(extra):
        if kind == _ZIP64_EXTRA:
            return [value for (value,) in struct.iter_unpack("<Q", data[: len(data) // 8 * 8])]
    return []


def _parse_directory(data: bytes) -> list[tuple[ZipHeader, int]]:
    """Central directory entries and their declared local header offsets, read as
    zipfile reads them (until the declared size is used up)."""
    entries = []
    at = 0
    while at + _CENTRAL.size <= len(data):
        fields = _CENTRAL.unpack_from(data, at)
        if fields[0] != _CENTRAL_SIGNATURE:
            break
        flags, method, crc, compressed, size = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_length, extra_length, comment_length, offset = (
            fields[10],
            fields[11],
            fields[12],
            fields[16],
        )
        name_at = at + _CENTRAL.size
        name = data[name_at : name_at + name_length]
        extra = data[name_at + name_length : name_at + name_length + extra_length]
        values = iter(_zip64_values(extra))
        # The zip64 extra holds, in this order, each field whose 32-bit slot is full.
        size = next(values, size) if size == _MAX_32 else size
        compressed = next(values, compressed) if compressed == _MAX_32 else compressed
        offset = next(values, offset) if offset == _MAX_32 else offset
        header = ZipHeader(name, flags, method, crc, compressed, size, _unicode_name(extra))
        entries.append((header, offset))
        at = name_at + name_length + extra_length + comment_length
    return entries


def _read_at(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


def _local_header(stream: BinaryIO, offset: int) -> tuple[ZipHeader, int] | None:
    """The local header at ``offset`` and where its data starts, or None."""
    fixed = _read_at(stream, offset, _LOCAL.size)
    if len(fixed) < _LOCAL.size or fixed[:4] != _LOCAL_SIGNATURE:
        return None
    fields = _LOCAL.unpack(fixed)
    flags, method, crc, compressed, size, name_length, extra_length = (
        fields[2],
        fields[3],
        fields[6],
        fields[7],
        fields[8],
        fields[9],
        fields[10],
    )
    variable = stream.read(name_length + extra_length)  # at most 128 KiB
    name, extra = variable[:name_length], variable[name_length:]
    values = _zip64_values(extra)
    # A local zip64 extra carries both sizes (uncompressed first) whenever either is full.
    if len(values) >= 2 and _MAX_32 in (size, compressed):
        size, compressed = values[0], values[1]
    elif values and size == _MAX_32:
        size = values[0]
    elif values and compressed == _MAX_32:
        compressed = values[0]
    header = ZipHeader(name, flags, method, crc, compressed, size, _unicode_name(extra))
    return header, offset + _LOCAL.size + name_length + extra_length


def _descriptor(
    stream: BinaryIO, offset: int, expected: ZipHeader, zip64: bool
) -> tuple[ZipDescriptor, int]:
    """The data descriptor at ``offset`` and its length. Its signature is optional and
    its sizes are 4 or 8 bytes; of the readings possible, the one that agrees with the
    central directory is taken (else the plainest), as a lenient reader would."""
    data = _read_at(stream, offset, 24)
    readings: list[tuple[ZipDescriptor, int]] = []
    skips = (4, 0) if data[:4] == _DESCRIPTOR_SIGNATURE else (0,)
    for skip in skips:
        for wide in (zip64, not zip64):
            layout = struct.Struct("<LQQ" if wide else "<LLL")
            if len(data) >= skip + layout.size:
                crc, compressed, size = layout.unpack_from(data, skip)
                readings.append((ZipDescriptor(crc, compressed, size), skip + layout.size))
    if not readings:
        return ZipDescriptor(-1, -1, -1), len(data)
    for reading in readings:
        found = reading[0]
        if (found.crc, found.compressed_size, found.size) == (
            expected.crc,
            expected.compressed_size,
            expected.size,
        ):
            return reading
    return readings[0]


def _signatures_in(stream: BinaryIO, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Offsets of ZIP_SIGNATURES in ``[start, end)``, read in CHUNK_SIZE chunks."""
    overlap = 3
    at = start
    carry = b""
    while at < end:
        chunk = _read_at(stream, at, min(CHUNK_SIZE, end - at))
        if not chunk:
            return
        window = carry + chunk
        base = at - len(carry)
        found = window.find(b"PK")
        while found >= 0:
            signature = window[found : found + 4]
            if signature in ZIP_SIGNATURES:
                yield base + found, signature
            found = window.find(b"PK", found + 1)
        carry = window[-overlap:]
        at += len(chunk)


def _spans(
    stream: BinaryIO, file_size: int, claimed: list[tuple[int, int]], comment: tuple[int, int]
) -> tuple[list[ZipSpan], list[int]]:
    """The unclaimed byte ranges (and the comment), each scanned for record signatures;
    and every end-record signature found in them."""
    ranges: list[tuple[SpanKind, int, int]] = []
    cursor = 0
    first = min((start for start, _end in claimed), default=0)
    for start, end in sorted(claimed):
        if start > cursor:
            ranges.append(("prepended" if cursor < first else "between", cursor, start))
        cursor = max(cursor, end)
    comment_start, comment_end = comment
    if comment_end > comment_start:
        ranges.append(("comment", comment_start, comment_end))
    if file_size > max(cursor, comment_end):
        ranges.append(("appended", max(cursor, comment_end), file_size))
    spans = []
    end_records = []
    for kind, start, end in ranges:
        names: dict[str, None] = {}
        for at, signature in _signatures_in(stream, start, end):
            names.setdefault(ZIP_SIGNATURES[signature])
            if signature == _END_SIGNATURE:
                end_records.append(at)
        spans.append(ZipSpan(kind, start, end, tuple(names)))
    return spans, end_records


def read_zip_layout(path: Path, limits: Limits = DEFAULT_LIMITS) -> ZipLayout:
    """Locate and decode every structure of the zip at ``path``: the end records as
    zipfile finds them (the last end record in the final 64 KiB), the central directory,
    each local header at the offset the directory gives and its data descriptor, and the
    bytes none of them accounts for. Reads are bounded: the directory by
    ``max_central_directory_size``, each header by its own length fields, unaccounted
    bytes in CHUNK_SIZE chunks. ArtifactError when there is no end record or the
    directory is too big; anything else odd is recorded for the checks to judge."""
    with _translated("read the zip layout"), path.open("rb") as stream:
        file_size = stream.seek(0, io.SEEK_END)
        tail_size = min(file_size, _EOCD.size + 0xFFFF)
        tail_start = file_size - tail_size
        tail = _read_at(stream, tail_start, tail_size)
        at = tail.rfind(_END_SIGNATURE)
        if at < 0 or tail_size - at < _EOCD.size:
            raise ArtifactError("no end of central directory record")
        end_offset = tail_start + at
        fields = _EOCD.unpack_from(tail, at)
        disk_entries, entries, directory_size, directory_offset, comment_length = fields[3:8]
        classic = (disk_entries, entries, directory_size, directory_offset)
        zip64_offset = zip64_declared = None
        locator = _read_at(stream, end_offset - _EOCD64_LOCATOR.size, _EOCD64_LOCATOR.size)
        if end_offset >= _EOCD64_LOCATOR.size + _EOCD64.size and locator[:4] == (
            _ZIP64_LOCATOR_SIGNATURE
        ):
            candidate = end_offset - _EOCD64_LOCATOR.size - _EOCD64.size
            record = _read_at(stream, candidate, _EOCD64.size)
            if record[:4] == _ZIP64_END_SIGNATURE:
                zip64_offset = candidate
                zip64_declared = _EOCD64_LOCATOR.unpack(locator)[2]
                values = _EOCD64.unpack(record)
                disk_entries, entries, directory_size, directory_offset = values[6:10]
        directory_end = end_offset if zip64_offset is None else zip64_offset
        directory_start = directory_end - directory_size
        if directory_size > limits.max_central_directory_size:
            raise _refuse(
                f"the zip central directory is {directory_size} bytes "
                f"(over {limits.max_central_directory_size})",
                "max_central_directory_size",
            )
        if directory_start < 0:
            raise ArtifactError("the central directory would start before the file")
        directory = _read_at(stream, directory_start, directory_size)
        shift = directory_start - directory_offset
        found = []
        claimed = [(directory_start, directory_end), (directory_end, end_offset + _EOCD.size)]
        for central, declared in _parse_directory(directory):
            offset = declared + shift
            local = _local_header(stream, offset) if 0 <= offset < file_size else None
            header, descriptor, end = None, None, offset
            if local is not None:
                header, data_start = local
                end = data_start + central.compressed_size
                if header.flags & _FLAG_DESCRIPTOR:
                    zip64 = _wide_descriptor(header, central)
                    descriptor, length = _descriptor(stream, end, central, zip64)
                    end += length
                claimed.append((offset, min(end, file_size)))
            found.append(ZipEntry(central, declared, offset, header, descriptor, end))
        comment_start = end_offset + _EOCD.size
        comment_end = min(comment_start + comment_length, file_size)
        spans, stray_ends = _spans(stream, file_size, claimed, (comment_start, comment_end))
        in_directory = [directory_start + index for index in _find_all(directory, _END_SIGNATURE)]
        end_records = sorted({*in_directory, *stray_ends, end_offset})
        return ZipLayout(
            file_size=file_size,
            entries=tuple(found),
            end_offset=end_offset,
            declared_entries=entries,
            declared_disk_entries=disk_entries,
            directory_offset=directory_offset,
            directory_start=directory_start,
            directory_size=directory_size,
            comment_length=comment_length,
            zip64_offset=zip64_offset,
            zip64_declared_offset=zip64_declared,
            classic_values=classic,
            end_records=tuple(end_records),
            spans=tuple(spans),
        )


def _wide_descriptor(local: ZipHeader, central: ZipHeader) -> bool:
    """Whether a member's data descriptor should carry 8-byte sizes (zip64)."""
    return max(central.size, central.compressed_size) >= _MAX_32 or _MAX_32 in (
        local.size,
        local.compressed_size,
    )


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


# ---------------------------------------------------------------- tar


class _BoundedStream:
    """A decompressed tar stream that refuses to produce more than ``budget`` bytes or
    any single read over ``max_read``, so tarfile's own header reads are bounded."""

    def __init__(self, inner: _Decompressed, budget: int, max_read: int) -> None:
        self._inner = inner
        self._budget = budget
        self._max_read = max_read
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or size > max(self._max_read, CHUNK_SIZE):
            raise _refuse(
                f"a tar header asks for a {size}-byte read at offset {self._position} "
                f"(over {self._max_read})",
                "max_header_size",
            )
        self._charge(self._position + size)
        data = self._inner.read(size)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR):
            raise io.UnsupportedOperation("seek from the end of a compressed stream")
        self._charge(target)
        self._position = self._inner.seek(target)
        return self._position

    def _charge(self, end: int) -> None:
        if end > self._budget:
            raise _refuse(
                f"the tar stream decompresses past {self._budget} bytes",
                "max_compression_ratio",
            )

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only")

    def close(self) -> None:
        self._inner.close()


def _tar_member(info: tarfile.TarInfo) -> Member:
    if info.isreg():
        kind = MemberType.FILE
    elif info.isdir():
        kind = MemberType.DIRECTORY
    elif info.issym():
        kind = MemberType.SYMLINK
    elif info.islnk():
        kind = MemberType.HARDLINK
    else:
        kind = MemberType.OTHER
    link = info.linkname if kind in (MemberType.SYMLINK, MemberType.HARDLINK) else None
    return Member(info.name, info.size, None, kind, stat.S_IMODE(info.mode), link)


class _TarBackend:
    def __init__(self, path: Path, container: Container, archive_size: int, limits: Limits):
        with ExitStack() as stack:
            raw = stack.enter_context(path.open("rb"))
            inner: _Decompressed = raw
            if container == "tar.gz":
                inner = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            elif container == "tar.bz2":
                inner = stack.enter_context(bz2.BZ2File(raw, mode="rb"))
            elif container == "tar.xz":
                inner = stack.enter_context(lzma.LZMAFile(raw, mode="rb"))
            budget = _decompression_budget(archive_size, limits)
            stream = _BoundedStream(inner, budget, limits.max_header_size)
            self._tar = stack.enter_context(tarfile.TarFile(fileobj=stream, mode="r"))
            self._infos: dict[str, tarfile.TarInfo] = {}
            members: list[Member] = []
            tally = _Tally(archive_size, limits)
            # Each header is judged before next() skips (decompresses) the data behind it.
            while (info := self._tar.next()) is not None:
                member = _tar_member(info)
                tally.add(member)
                members.append(member)
                self._infos[info.name] = info
            self.members = tuple(members)
            self._stack = stack.pop_all()

    def open_member(self, name: str) -> IO[bytes]:
        extracted = self._tar.extractfile(self._infos[name])
        if extracted is None:
            raise ArtifactError(f"member {safe_text(repr(name))} has no data", name)
        return extracted

    def close(self) -> None:
        self._stack.close()


def _container(filename: str, path: Path) -> Container:
    lower = filename.lower()
    for suffix, container in _SUFFIXES:
        if lower.endswith(suffix):
            return container
    # Not a name we know: go by the first bytes.
    with path.open("rb") as stream:
        head = stream.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(b"BZh"):
        return "tar.bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "tar.xz"
    if head[257:262] == b"ustar":
        return "tar"
    raise ArtifactError("not a zip or tar archive (by name or by content)")


# ---------------------------------------------------------------- the artifact


class Artifact:
    """A wheel or sdist opened for inspection: ``with Artifact.open(path, filename=...)
    as artifact``. What the filename says (kind, name, version, tags) is known even when
    the archive is unreadable; members and metadata only while the artifact is open."""

    def __init__(
        self,
        path: Path,
        filename: str,
        *,
        size: int,
        digests: Mapping[str, str],
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.path = path
        self.filename = filename
        self.size = size
        self.digests = dict(digests)
        self.limits = limits
        self.kind: ArtifactKind | None = None
        self.name: NormalizedName | None = None
        self.version: Version | None = None
        self.tags: frozenset[Tag] = frozenset()
        self.filename_error: str | None = None
        self.container: Container | None = None
        self.error: ArtifactError | None = None
        self.members: tuple[Member, ...] = ()
        self._backend: _Backend | None = None
        self._by_name: dict[str, list[Member]] = {}
        self._heads: dict[str, bytes] = {}
        self._layout: ZipLayout | ArtifactError | None = None
        self._parse_filename()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        filename: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        hash_algorithms: Iterable[str] = (),
    ) -> Self:
        """Hash ``path`` once, parse ``filename`` (default: the path's name; the name the
        file was listed as, since a download's temporary name means nothing), and list
        the archive. Raises OSError only if ``path`` itself cannot be read."""
        size, digests = digest_file(path, hash_algorithms)
        artifact = cls(path, filename or path.name, size=size, digests=digests, limits=limits)
        artifact._open_archive()
        return artifact

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._backend is not None:
            backend, self._backend = self._backend, None
            backend.close()

    @property
    def sha256(self) -> str:
        return self.digests["sha256"]

    def _parse_filename(self) -> None:
        name = self.filename
        try:
            if name.endswith(".whl"):
                self.name, self.version, _build, self.tags = parse_wheel_filename(name)
                self.kind = "wheel"
            else:
                self.name, self.version = parse_sdist_filename(name)
                self.kind = "sdist"
        except (InvalidWheelFilename, InvalidSdistFilename, ValueError) as exc:
            self.filename_error = safe_text(str(exc))

    def _open_archive(self) -> None:
        try:
            with _translated("open the archive"):
                self.container = _container(self.filename, self.path)
                if self.container == "zip":
                    self._backend = _ZipBackend(self.path, self.size, self.limits)
                else:
                    self._backend = _TarBackend(self.path, self.container, self.size, self.limits)
        except ArtifactError as exc:
            self.error = exc
            return
        self.members = self._backend.members
        for member in self.members:
            self._by_name.setdefault(member.name, []).append(member)

    # ------------------------------------------------------------ members

    def member(self, name: str) -> Member | None:
        """The member stored as ``name``; ArtifactError if the name is stored twice
        (installers disagree on which copy wins)."""
        found = self._by_name.get(name)
        if not found:
            return None
        if len(found) > 1:
            raise ArtifactError(
                f"member {safe_text(repr(name))} is stored {len(found)} times", name
            )
        return found[0]

    def read(self, member: str, limit: int) -> bytes:
        """The whole content of a small member, refused if over ``limit`` bytes."""
        return b"".join(self._chunks(member, limit, "read limit"))

    def stream(self, member: str) -> Iterator[bytes]:
        """A member's content in CHUNK_SIZE pieces, bounded by ``max_member_size``."""
        return self._chunks(member, self.limits.max_member_size, "max_member_size")

    def _chunks(self, name: str, limit: int, limit_name: str) -> Iterator[bytes]:
        if self._backend is None:
            raise self.error or ArtifactError("the archive is closed", name)
        found = self.member(name)
        if found is None:
            raise ArtifactError(f"no member {safe_text(repr(name))}", name)
        if found.type is not MemberType.FILE:
            raise ArtifactError(
                f"member {safe_text(repr(name))} is a {found.type.value}, not a file", name
            )
        if found.size > limit:
            raise _refuse(
                f"member {safe_text(repr(name))} is {found.size} bytes (over {limit})",
                limit_name,
                name,
            )
        return self._read_chunks(found, self._backend)

    def _read_chunks(self, member: Member, backend: _Backend) -> Iterator[bytes]:
        name = member.name
        read = 0
        with _translated("read member", name), backend.open_member(name) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                if not read:
                    self._heads[name] = chunk[:HEAD_SIZE]
                read += len(chunk)
                if read > member.size:
                    raise ArtifactError(
                        f"member {safe_text(repr(name))} holds more than its declared "
                        f"{member.size} bytes",
                        name,
                    )
                yield chunk
            if read != member.size:
                raise ArtifactError(
                    f"member {safe_text(repr(name))} holds {read} bytes, "
                    f"not its declared {member.size}",
                    name,
                )

    def head(self, name: str, size: int = HEAD_SIZE) -> bytes:
        """The first ``size`` bytes of a file member (all of it if shorter), for magic
        numbers: only those are decompressed, and not CRC-checked. A member already
        streamed answers from memory. Cheap for a zip; a compressed tar must decompress
        everything before the member."""
        found = self.member(name)
        if found is None or found.type is not MemberType.FILE:
            raise ArtifactError(f"no file member {safe_text(repr(name))}", name)
        cached = self._heads.get(name)
        if cached is not None and (size <= len(cached) or len(cached) == found.size):
            return cached[:size]
        if self._backend is None:
            raise self.error or ArtifactError("the archive is closed", name)
        with _translated("read member", name), self._backend.open_member(name) as stream:
            data = stream.read(min(size, found.size))
        if size <= HEAD_SIZE or len(data) < size:
            self._heads[name] = data[:HEAD_SIZE]
        return data

    def link_target(self, name: str) -> str | None:
        """Where a link member points: a tar header's link name, or a zip symlink's
        content (its target, by the Info-ZIP convention; at most MAX_LINK_TARGET bytes,
        undecodable bytes escaped). None for members that are not links."""
        found = self.member(name)
        if found is None or found.type not in (MemberType.SYMLINK, MemberType.HARDLINK):
            return None
        if found.link_target is not None or self.container != "zip":
            return found.link_target
        if self._backend is None:
            raise self.error or ArtifactError("the archive is closed", name)
        with _translated("read link", name), self._backend.open_member(name) as stream:
            data = stream.read(MAX_LINK_TARGET)
        return safe_text(data.decode("utf-8", "surrogateescape"))

    def zip_layout(self) -> ZipLayout | None:
        """Where the zip's structures are and what each says (:func:`read_zip_layout`),
        read once; None for a tar, or an archive that did not open. ArtifactError when
        the structures cannot be read."""
        if self.container != "zip" or self.error is not None:
            return None
        if self._layout is None:
            try:
                self._layout = read_zip_layout(self.path, self.limits)
            except ArtifactError as exc:
                self._layout = exc
        if isinstance(self._layout, ArtifactError):
            raise self._layout
        return self._layout

    # ------------------------------------------------------------ layout

    @cached_property
    def _metadata_location(self) -> str:
        """Where the core metadata must be, or ArtifactError saying why there is no
        such place. Follows pip: one top-level .dist-info, matching the filename."""
        if self.error is not None:
            raise self.error
        if self.kind == "wheel":
            return f"{self.dist_info}/METADATA"
        if self.kind == "sdist":
            return f"{self.sdist_root}/PKG-INFO"
        raise ArtifactError(f"the filename is not a wheel or sdist: {self.filename_error}")

    @cached_property
    def dist_info(self) -> str:
        """The wheel's one top-level ``.dist-info`` directory (ArtifactError otherwise)."""
        found = sorted(
            {
                top
                for member in self.members
                if (top := member.name.partition("/")[0]).endswith(".dist-info")
                and "/" in member.name
            }
        )
        if not found:
            raise ArtifactError("the wheel has no .dist-info directory")
        if len(found) > 1:
            listed = ", ".join(safe_text(name) for name in found)
            raise ArtifactError(f"the wheel has {len(found)} .dist-info directories: {listed}")
        directory = found[0]
        dist, _, version = directory.removesuffix(".dist-info").rpartition("-")
        try:
            matches = canonicalize_name(dist) == self.name and Version(version) == self.version
        except InvalidVersion:
            matches = False
        if not matches:
            raise ArtifactError(
                f"the wheel's {safe_text(directory)} does not match its filename "
                f"({self.name} {self.version})",
                directory,
            )
        return directory

    @cached_property
    def sdist_root(self) -> str:
        """The sdist's one top-level directory (ArtifactError otherwise)."""
        tops = sorted({member.name.partition("/")[0] for member in self.members})
        if len(tops) != 1 or not tops[0]:
            shown = ", ".join(safe_text(top) for top in tops[:5])
            raise ArtifactError(
                f"the sdist has {len(tops)} top-level entries ({shown}), not one directory"
            )
        return tops[0]

    # ------------------------------------------------------------ metadata

    @cached_property
    def _core(self) -> CoreMetadata | ArtifactError:
        try:
            with _translated("read the core metadata"):
                path = self._metadata_location
                if self.member(path) is None:
                    raise ArtifactError(f"no {safe_text(path)} in the archive", path)
                limit = self.limits.max_metadata_size
                data = b"".join(self._chunks(path, limit, "max_metadata_size"))
                return parse_core_metadata(path, data)
        except ArtifactError as exc:
            return exc

    @property
    def core_metadata(self) -> CoreMetadata | None:
        """METADATA (wheel) or PKG-INFO (sdist), parsed; None when missing or unreadable
        (:attr:`core_metadata_error` says why)."""
        core = self._core
        return core if isinstance(core, CoreMetadata) else None

    @property
    def core_metadata_error(self) -> ArtifactError | None:
        core = self._core
        return core if isinstance(core, ArtifactError) else None

    def dist_info_file(self, name: str) -> bytes | None:
        """``<dist-info>/<name>`` of a wheel (WHEEL, RECORD, entry_points.txt...), or None
        if the wheel has no such member. ArtifactError if it cannot be read. RECORD may be
        ``max_record_size`` bytes, the others ``max_metadata_size``."""
        path = f"{self.dist_info}/{name}"
        if self.member(path) is None:
            return None
        if name == "RECORD":
            return b"".join(self._chunks(path, self.limits.max_record_size, "max_record_size"))
        return b"".join(self._chunks(path, self.limits.max_metadata_size, "max_metadata_size"))

    def wheel_file(self) -> bytes | None:
        return self.dist_info_file("WHEEL")

    def record(self) -> bytes | None:
        return self.dist_info_file("RECORD")

    def entry_points(self) -> bytes | None:
        return self.dist_info_file("entry_points.txt")


# ---------------------------------------------------------------- dist-info file formats


@dataclass(frozen=True, slots=True)
class RecordEntry:
    path: str
    hash: str  # "<algorithm>=<urlsafe-b64 digest>", or "" (RECORD itself, signatures)
    size: str  # as written; "" when absent


def parse_record(data: bytes) -> tuple[RecordEntry, ...]:
    """RECORD rows (PEP 376 CSV). ArtifactError if it is not UTF-8 CSV."""
    with _translated("parse RECORD"):
        rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
        entries = []
        for row in rows:
            if not row:
                continue
            padded = [*row, "", ""]
            entries.append(RecordEntry(padded[0], padded[1], padded[2]))
        return tuple(entries)


def parse_entry_points(data: bytes) -> dict[str, dict[str, str]]:
    """entry_points.txt as ``{group: {name: value}}``, read line by line the way
    installers (``importlib.metadata``) read it, not the way configparser would: an
    indented line or an odd header that configparser folds away is still an entry point
    to pip, so it must be one to the checks too."""
    groups: dict[str, dict[str, str]] = {}
    group: str | None = None
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line.strip("[]")
            groups.setdefault(group, {})
            continue
        name, equals, value = line.partition("=")
        if group is not None and equals:
            groups[group][name.strip()] = value.strip()
    return groups


def wheel_info(data: bytes) -> dict[str, list[str]]:
    """The WHEEL file's fields (email-header format), each a list of values."""
    with _translated("parse WHEEL"):
        message = email.parser.BytesHeaderParser().parsebytes(data)
        fields: dict[str, list[str]] = {}
        for key, value in message.items():
            fields.setdefault(key, []).append(str(value))
        return fields


__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_LIMITS",
    "HEAD_SIZE",
    "MAX_LINK_TARGET",
    "ZIP_SIGNATURES",
    "Artifact",
    "ArtifactError",
    "ArtifactKind",
    "CoreMetadata",
    "Limits",
    "Member",
    "MemberType",
    "RecordEntry",
    "ZipDescriptor",
    "ZipEntry",
    "ZipHeader",
    "ZipLayout",
    "ZipSpan",
    "digest_file",
    "parse_core_metadata",
    "parse_entry_points",
    "parse_record",
    "read_zip_layout",
    "safe_text",
    "wheel_info",
]
