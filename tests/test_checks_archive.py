"""archive-unreadable: garbage, truncation and decompression bombs become a finding, fast
and in bounded memory. The bombs are real (a gigabyte of zeros each, valid CRCs) but are
written from one compressed megabyte repeated, so building them allocates nothing big."""

from __future__ import annotations

import struct
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks.archive import ARCHIVE_UNREADABLE
from quarantine.checks.metadata import METADATA_MISSING
from tests.support.builders import make_sdist, make_wheel

CHUNK = 1 << 20
GIB_CHUNKS = 1024  # 1 GiB of zeros


def raw_deflate(data: bytes, *, final: bool = False) -> bytes:
    """A self-contained run of deflate blocks; runs made this way concatenate into one
    valid stream (a full flush byte-aligns and leaves no back-references)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH
    )


ZEROS = raw_deflate(bytes(CHUNK))  # about 1 KB


def crc_of_zeros(chunks: int, crc: int = 0) -> int:
    zeros = bytes(CHUNK)
    for _ in range(chunks):
        crc = zlib.crc32(zeros, crc)
    return crc


def write_zip(path: Path, name: str, chunks: int, *, declared_size: int | None = None) -> Path:
    """One deflated member of ``chunks`` MiB of zeros, written by hand so the data can be
    streamed in (zipfile would compress a gigabyte itself) and the declared size can lie."""
    encoded = name.encode()
    compressed_size = len(ZEROS) * chunks + 2
    size = chunks * CHUNK if declared_size is None else declared_size
    crc = crc_of_zeros(chunks) if declared_size is None else 0
    with path.open("wb") as out:
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc,
                              compressed_size, size, len(encoded), 0) + encoded)  # fmt: skip
        for _ in range(chunks):
            out.write(ZEROS)
        out.write(raw_deflate(b"", final=True))
        directory_at = out.tell()
        central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc,
                              compressed_size, size, len(encoded), 0, 0, 0, 0, 0, 0)  # fmt: skip
        out.write(central + encoded)
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1,
                              len(central) + len(encoded), directory_at, 0))  # fmt: skip
    return path


def write_tar_gz(path: Path, name: str, chunks: int) -> Path:
    info = tarfile.TarInfo(name)
    info.size = chunks * CHUNK
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    end = bytes(1024)
    crc = zlib.crc32(end, crc_of_zeros(chunks, zlib.crc32(header)))
    length = len(header) + info.size + len(end)
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        out.write(raw_deflate(header))
        for _ in range(chunks):
            out.write(ZEROS)
        out.write(raw_deflate(end, final=True))
        out.write(struct.pack("<2L", crc, length & 0xFFFFFFFF))
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "wheel": write_zip(folder / "demo-1.0-py3-none-any.whl", "demo/zeros.bin", GIB_CHUNKS),
        "sdist": write_tar_gz(folder / "demo-1.0.tar.gz", "demo-1.0/zeros.bin", GIB_CHUNKS),
    }


def test_the_bombs_are_real(bombs):
    with zipfile.ZipFile(bombs["wheel"]) as zf:
        (info,) = zf.infolist()
        assert info.file_size == 1 << 30 and info.compress_size < 2 << 20
        with zf.open(info) as member:
            assert member.read(CHUNK) == bytes(CHUNK)
    with tarfile.open(bombs["sdist"], "r:gz") as tar:
        member = tar.next()
        assert member is not None and member.size == 1 << 30
        assert bombs["sdist"].stat().st_size < 2 << 20


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_gigabyte_bomb_is_refused_fast_in_bounded_memory(bombs, kind):
    path = bombs[kind]
    tracemalloc.start()
    started = time.perf_counter()
    try:
        inspection = inspect_file(path, CheckContext(filename=path.name, project="demo"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 16 << 20
    (finding,) = [f for f in inspection.findings if f.check == ARCHIVE_UNREADABLE]
    assert finding.severity is Severity.CRITICAL
    assert "max_compression_ratio" in finding.message
    assert "zeros.bin" in finding.evidence and finding.path is not None
    assert inspection.core_metadata is None
    assert {f.check for f in inspection.findings} == {ARCHIVE_UNREADABLE}


def test_metadata_that_lies_about_its_size_is_read_only_as_far_as_declared(tmp_path):
    # METADATA declares 100 bytes but holds a gigabyte of zeros behind them.
    path = write_zip(
        tmp_path / "demo-1.0-py3-none-any.whl",
        "demo-1.0.dist-info/METADATA",
        GIB_CHUNKS,
        declared_size=100,
    )
    started = time.perf_counter()
    inspection = inspect_file(path, CheckContext(filename=path.name))
    assert time.perf_counter() - started < 5
    (finding,) = inspection.findings
    assert finding.check == METADATA_MISSING
    assert "CRC" in finding.evidence and finding.path == "demo-1.0.dist-info/METADATA"


def test_compressible_but_small_members_are_fine(tmp_path):
    # 4 MiB of zeros compresses 1000:1 but is under the ratio floor: real data does this.
    path = make_wheel(tmp_path, "demo", "1.0", files={"demo/blank.bin": bytes(4 * CHUNK)})
    assert inspect_file(path, CheckContext(filename=path.name)).findings == ()


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("demo-1.0-py3-none-any.whl", b"MZ\x90\x00 not a zip"),
        ("demo-1.0-py3-none-any.whl", b""),
        ("demo-1.0.tar.gz", b"\x1f\x8b\x08\x00garbage"),
        ("demo-1.0.zip", b"PK\x03\x04 truncated"),
    ],
)
def test_garbage_is_a_critical_finding_not_an_exception(tmp_path, filename, data):
    path = tmp_path / filename
    path.write_bytes(data)
    inspection = inspect_file(path, CheckContext(filename=filename))
    (finding,) = inspection.findings
    assert (finding.check, finding.severity) == (ARCHIVE_UNREADABLE, Severity.CRITICAL)
    assert "not a readable zip or tar archive" in finding.message
    assert inspection.kind is not None and inspection.core_metadata is None


def test_truncated_real_files_are_findings(tmp_path):
    for built in (make_wheel(tmp_path, "demo", "1.0"), make_sdist(tmp_path, "demo", "1.0")):
        data = built.read_bytes()
        built.write_bytes(data[: len(data) // 2])
        inspection = inspect_file(built, CheckContext(filename=built.name))
        assert [f.check for f in inspection.findings] == [ARCHIVE_UNREADABLE], built.name


def test_readable_archives_have_no_finding(tmp_path):
    for built in (make_wheel(tmp_path, "demo", "1.0"), make_sdist(tmp_path, "demo", "1.0")):
        assert inspect_file(built, CheckContext(filename=built.name)).findings == ()
