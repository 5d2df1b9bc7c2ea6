"""ZIP confusion (uv's CVE-2025-54368 class): zips that Python's zipfile (pip) reads one
way and a streaming or signature-scanning reader another. Each fixture is a valid wheel
from the builder, altered byte by byte; zipfile still opens every one of them."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from quarantine import CheckContext, Finding, Severity, inspect_file
from quarantine.artifact import Artifact
from quarantine.checks import Check, zipformat
from quarantine.checks.zipformat import (
    MAX_COMMENT,
    ZIP_END_RECORD_MISMATCH,
    ZIP_HEADER_MISMATCH,
    ZIP_HIDDEN_DATA,
    ZIP_OVERLAPPING_MEMBERS,
)
from tests.support.builders import make_sdist, make_wheel

CHECKS = [
    Check(ZIP_HEADER_MISMATCH, zipformat.zip_header_mismatch),
    Check(ZIP_OVERLAPPING_MEMBERS, zipformat.zip_overlapping_members),
    Check(ZIP_HIDDEN_DATA, zipformat.zip_hidden_data),
    Check(ZIP_END_RECORD_MISMATCH, zipformat.zip_end_record_mismatch),
]
CENTRAL = struct.Struct("<4s6H3L5H2L")
LOCAL = struct.Struct("<4s5H3L2H")
END = struct.Struct("<4s4H2LH")

FILES = {"demo/__init__.py": b"import demo.core\n", "demo/core.py": b"x = 1\n" * 50}


def findings(path: Path) -> list[Finding]:
    return list(inspect_file(path, CheckContext(filename=path.name), checks=CHECKS).findings)


def only(found: list[Finding], check: str) -> Finding:
    matching = [finding for finding in found if finding.check == check]
    assert len(matching) == 1, found
    return matching[0]


def wheel(tmp_path: Path) -> tuple[Path, bytearray]:
    path = make_wheel(tmp_path, "demo", "1.0", files=FILES)
    return path, bytearray(path.read_bytes())


def save(path: Path, data: bytes | bytearray) -> Path:
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:  # every fixture still opens for pip
        zf.infolist()
    return path


def local_at(data: bytearray, name: bytes) -> int:
    at = data.find(b"PK\x03\x04")
    while data[at + 30 : at + 30 + len(name)] != name:
        at = data.find(b"PK\x03\x04", at + 1)
    return at


def central_at(data: bytearray, name: bytes) -> int:
    at = data.find(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(name)] != name:
        at = data.find(b"PK\x01\x02", at + 1)
    return at


def end_at(data: bytearray) -> int:
    return data.rfind(b"PK\x05\x06")


def test_a_clean_wheel_has_no_findings(tmp_path):
    path, _ = wheel(tmp_path)
    assert findings(path) == []


# ---------------------------------------------------------------- local vs central


@pytest.mark.parametrize(
    ("offset", "value", "evidence"),
    [
        (8, struct.pack("<H", 0), "compression method central 8, local 0"),  # stored!
        (22, struct.pack("<L", 999), "size 300 in the directory, 999 in the local header"),
        (14, struct.pack("<L", 0), "CRC"),
        (6, struct.pack("<H", 0x0001), "flags"),  # encrypted, locally
    ],
)
def test_local_header_that_disagrees_with_the_directory_is_caught(
    tmp_path, offset, value, evidence
):
    path, data = wheel(tmp_path)
    at = local_at(data, b"demo/core.py")
    data[at + offset : at + offset + len(value)] = value
    finding = only(findings(save(path, data)), ZIP_HEADER_MISMATCH)
    assert finding.severity is Severity.CRITICAL and finding.path == "demo/core.py"
    assert evidence in finding.evidence


def test_local_header_with_another_name_is_caught(tmp_path):
    path, data = wheel(tmp_path)
    at = local_at(data, b"demo/core.py")
    data[at + 30 : at + 42] = b"demo/evil.py"  # what a streaming installer writes
    path.write_bytes(bytes(data))
    found = findings(path)
    finding = only(found, ZIP_HEADER_MISMATCH)
    assert "local header names it 'demo/evil.py'" in finding.evidence


def test_a_directory_offset_with_no_local_header_is_caught(tmp_path):
    path, data = wheel(tmp_path)
    central = central_at(data, b"demo/core.py")
    local = local_at(data, b"demo/core.py")
    data[central + 42 : central + 46] = struct.pack("<L", local + 3)
    path.write_bytes(bytes(data))
    finding = only(findings(path), ZIP_HEADER_MISMATCH)
    assert "no local header at offset" in finding.evidence


def test_unicode_path_field_naming_another_file_is_caught(tmp_path):
    # Info-ZIP's Unicode Path extra field: readers that honour it see another name.
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    info = zipfile.ZipInfo("demo/core.py")
    name = b"demo/evil.pth"
    info.extra = struct.pack("<2HBL", 0x7075, 5 + len(name), 1, zlib.crc32(b"demo/core.py")) + name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, b"x = 1\n")
    finding = only(findings(path), ZIP_HEADER_MISMATCH)
    assert "Unicode Path field names it 'demo/evil.pth'" in finding.evidence


def test_streamed_zip_with_data_descriptors_is_fine(tmp_path):
    # Written to a pipe, zipfile defers CRC and sizes to data descriptors (flag bit 3).
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            self.data += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in FILES.items():
            zf.writestr(name, content)
    with zipfile.ZipFile(io.BytesIO(bytes(out.data))) as zf:
        assert all(info.flag_bits & 0x08 for info in zf.infolist())
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(bytes(out.data))
    assert findings(path) == []
    with Artifact.open(path) as artifact:
        layout = artifact.zip_layout()
        assert layout is not None
        assert all(entry.descriptor is not None for entry in layout.entries)


def test_descriptor_that_disagrees_is_caught(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        with zf.open("demo/core.py", "w", force_zip64=False) as member:
            member.write(b"x = 1\n")
    data = bytearray(out.getvalue())
    local = local_at(data, b"demo/core.py")
    data[local + 6] |= 0x08  # defer to a descriptor, and write a lying one after the data
    data[local + 14 : local + 26] = bytes(12)
    central = central_at(data, b"demo/core.py")
    data[central + 8] |= 0x08
    end = local + 30 + 12 + 6
    lie = b"PK\x07\x08" + struct.pack("<3L", 0, 6, 6)
    data[end:end] = lie
    central += len(lie)
    e = end_at(data)
    data[e + 16 : e + 20] = struct.pack("<L", central)
    path = save(tmp_path / "demo-1.0-py3-none-any.whl", data)
    finding = only(findings(path), ZIP_HEADER_MISMATCH)
    assert "in the data descriptor" in finding.evidence


def test_zip64_members_are_fine(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in FILES.items():
            with zf.open(name, "w", force_zip64=True) as member:
                member.write(content)
    assert findings(path) == []


# ---------------------------------------------------------------- hidden bytes


def drop_from_directory(data: bytearray, name: bytes) -> bytearray:
    """Remove a member from the central directory only: its local header and data stay,
    visible to a reader that walks local headers (the CVE's shape)."""
    at = central_at(data, name)
    fields = CENTRAL.unpack_from(data, at)
    length = CENTRAL.size + fields[10] + fields[11] + fields[12]
    del data[at : at + length]
    e = end_at(data)
    sig, disk, disk_cd, n_disk, n, size, offset, comment = END.unpack_from(data, e)
    data[e : e + END.size] = END.pack(sig, disk, disk_cd, n_disk - 1, n - 1, size - length,
                                      offset, comment)  # fmt: skip
    return data


def test_member_only_a_streaming_reader_sees_is_caught(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0", files={**FILES, "demo/evil.pth": b"import os\n"})
    data = drop_from_directory(bytearray(path.read_bytes()), b"demo/evil.pth")
    found = findings(save(path, data))
    finding = only(found, ZIP_HIDDEN_DATA)
    assert finding.severity is Severity.CRITICAL and "local file header" in finding.message
    with zipfile.ZipFile(path) as zf:
        assert "demo/evil.pth" not in zf.namelist()


@pytest.mark.parametrize(
    ("where", "payload", "severity"),
    [
        ("prepended", b"#!/bin/sh\necho inert\n", Severity.HIGH),
        ("appended", b"\x00" * 100, Severity.HIGH),
        ("appended", b"PK\x03\x04" + bytes(40), Severity.CRITICAL),
    ],
)
def test_bytes_outside_the_archive_are_caught(tmp_path, where, payload, severity):
    path, data = wheel(tmp_path)
    data = payload + data if where == "prepended" else data + payload
    found = findings(save(path, data))
    finding = only(found, ZIP_HIDDEN_DATA)
    assert finding.severity is severity and f"{len(payload)} bytes" in finding.evidence
    if where == "prepended":  # the declared offsets are now all wrong for other readers
        assert only(found, ZIP_END_RECORD_MISMATCH).severity is Severity.CRITICAL


def test_a_zip_hidden_in_the_comment_is_caught(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("demo/evil.pth", b"import os\n")
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in FILES.items():
            zf.writestr(name, content)
        zf.comment = inner.getvalue()[:-22]  # a whole archive but its end record
    finding = only(findings(path), ZIP_HIDDEN_DATA)
    assert finding.severity is Severity.CRITICAL and "comment" in finding.evidence


def test_long_comment_is_caught_and_short_one_is_fine(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    for comment, expected in (
        (b"built by a zip tool", []),
        (b"x" * (MAX_COMMENT + 1), [Severity.HIGH]),
    ):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("demo/__init__.py", b"")
            zf.comment = comment
        assert [f.severity for f in findings(path)] == expected


def test_gap_between_members_is_caught(tmp_path):
    path, data = wheel(tmp_path)
    at = local_at(data, b"demo/core.py")
    gap = b"\x00" * 64
    data[at:at] = gap
    # Shift every later offset: the core.py entry onwards, and the directory itself.
    for name in (b"demo/core.py", b"demo-1.0.dist-info/METADATA", b"demo-1.0.dist-info/WHEEL",
                 b"demo-1.0.dist-info/RECORD"):  # fmt: skip
        c = central_at(data, name)
        (offset,) = struct.unpack_from("<L", data, c + 42)
        data[c + 42 : c + 46] = struct.pack("<L", offset + len(gap))
    e = end_at(data)
    (directory,) = struct.unpack_from("<L", data, e + 16)
    data[e + 16 : e + 20] = struct.pack("<L", directory + len(gap))
    finding = only(findings(save(path, data)), ZIP_HIDDEN_DATA)
    assert finding.severity is Severity.HIGH and "between members" in finding.evidence


# ---------------------------------------------------------------- overlaps and end records


def test_two_entries_sharing_one_local_header_are_caught(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/a.py", b"x = 1\n")
    data = bytearray(path.read_bytes())
    c = central_at(data, b"demo/a.py")
    entry = bytes(data[c : end_at(data)])
    data[c:c] = entry  # a second directory entry for the same bytes
    e = end_at(data)
    sig, disk, disk_cd, _, _, size, offset, comment = END.unpack_from(data, e)
    data[e : e + END.size] = END.pack(sig, disk, disk_cd, 2, 2, size * 2, offset, comment)
    found = findings(save(path, data))
    assert only(found, ZIP_OVERLAPPING_MEMBERS).severity is Severity.CRITICAL


def test_entry_count_that_lies_is_caught(tmp_path):
    path, data = wheel(tmp_path)
    e = end_at(data)
    data[e + 8 : e + 12] = struct.pack("<2H", 3, 3)  # five entries are there
    finding = only(findings(save(path, data)), ZIP_END_RECORD_MISMATCH)
    assert finding.severity is Severity.CRITICAL and "declared 3" in finding.evidence


def test_classic_end_record_contradicting_zip64_is_caught(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/a.py", b"a = 1\n")
        zf.writestr("demo/b.py", b"b = 1\n")
    data = bytearray(path.read_bytes())
    e = end_at(data)
    sig, disk, disk_cd, n_disk, n, size, offset, comment = END.unpack_from(data, e)
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n_disk, n, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, e, 1)
    classic = END.pack(sig, disk, disk_cd, 1, 1, size, offset, comment)  # "one entry"
    data[e:] = zip64 + locator + classic
    finding = only(findings(save(path, data)), ZIP_END_RECORD_MISMATCH)
    assert finding.severity is Severity.CRITICAL and "entries 1 (zip64: 2)" in finding.evidence


def test_second_end_record_inside_the_directory_is_caught(tmp_path):
    # A forward-scanning reader stops at the first end record it meets.
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("demo/__init__.py")
        info.comment = END.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)
        zf.writestr(info, b"")
    finding = only(findings(path), ZIP_END_RECORD_MISMATCH)
    assert finding.severity is Severity.CRITICAL and "others at" in finding.evidence


def test_tar_archives_are_not_zip_checked(tmp_path):
    assert findings(make_sdist(tmp_path, "demo", "1.0")) == []


def test_real_wheels_have_a_clean_layout(corpus: Path):
    for path in sorted(corpus.glob("*.whl")):
        assert findings(path) == [], path.name
