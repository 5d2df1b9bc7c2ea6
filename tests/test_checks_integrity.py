"""Integrity checks on what a wheel or sdist holds: RECORD against the members, member
names and links, and native code in wheels tagged pure Python. Each check catches a
poisoned fixture built here (inert payloads) and lets a real look-alike through."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import re
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from quarantine import CheckContext, Finding, Severity, inspect_file
from quarantine.artifact import Artifact, Limits
from quarantine.checks import CATALOGUE, Check, archive, layout, native, record, zipformat
from quarantine.checks.layout import DUPLICATE_MEMBER, UNSAFE_LINK, UNSAFE_MEMBER_PATH
from quarantine.checks.native import NATIVE_CODE_IN_PURE_WHEEL, binary_format
from quarantine.checks.record import (
    BATCH_BYTES,
    RECORD_ABSENT_MEMBER,
    RECORD_HASH_MISMATCH,
    RECORD_INVALID,
    RECORD_UNLISTED_MEMBER,
)
from tests.support.builders import make_sdist, make_wheel

INTEGRITY = [
    Check(record.RECORD_INVALID, record.record_invalid),
    Check(record.RECORD_HASH_MISMATCH, record.record_hash_mismatch),
    Check(record.RECORD_UNLISTED_MEMBER, record.record_unlisted_member),
    Check(record.RECORD_ABSENT_MEMBER, record.record_absent_member),
    Check(layout.DUPLICATE_MEMBER, layout.duplicate_member),
    Check(layout.UNSAFE_MEMBER_PATH, layout.unsafe_member_path),
    Check(layout.UNSAFE_LINK, layout.unsafe_link),
    Check(zipformat.ZIP_HEADER_MISMATCH, zipformat.zip_header_mismatch),
    Check(zipformat.ZIP_OVERLAPPING_MEMBERS, zipformat.zip_overlapping_members),
    Check(zipformat.ZIP_HIDDEN_DATA, zipformat.zip_hidden_data),
    Check(zipformat.ZIP_END_RECORD_MISMATCH, zipformat.zip_end_record_mismatch),
    Check(native.NATIVE_CODE_IN_PURE_WHEEL, native.native_code_in_pure_wheel),
]
# The integrity family alone (others' findings would only blur the assertions), plus
# archive-unreadable, which a member that cannot be read turns into.
CHECKS = [Check(archive.ARCHIVE_UNREADABLE, archive.archive_unreadable), *INTEGRITY]

# Inert stand-ins for binaries: only the headers the magic numbers are read from.
ELF = b"\x7fELF\x02\x01\x01" + bytes(57) + b"inert"
MACH_O = b"\xcf\xfa\xed\xfe" + bytes(60) + b"inert"
PE = b"MZ" + bytes(58) + struct.pack("<L", 0x80) + bytes(0x80 - 64) + b"PE\0\0" + bytes(64)


def findings(path: Path, **context) -> list[Finding]:
    inspection = inspect_file(path, CheckContext(filename=path.name, **context), checks=CHECKS)
    return list(inspection.findings)


def only(found: list[Finding], check: str) -> Finding:
    matching = [finding for finding in found if finding.check == check]
    assert len(matching) == 1, found
    return matching[0]


def rewrite(path: Path, *, replace=None, drop=(), add=None, modes=None) -> Path:
    """Rewrite a built wheel member by member, keeping RECORD as it was (so it lies)."""
    with zipfile.ZipFile(path) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    members = [(name, (replace or {}).get(name, data)) for name, data in members]
    members = [(name, data) for name, data in members if name not in drop]
    members += list((add or {}).items())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some tests
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                info.external_attr = (modes or {}).get(name, 0o100644) << 16
                zf.writestr(info, data)
    return path


def record_of(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        return zf.read(name).decode()


def test_the_integrity_checks_are_in_the_catalogue():
    catalogue = {check.id: check.run for check in CATALOGUE}
    for check in INTEGRITY:
        assert catalogue.get(check.id) is check.run, check.id
        assert check.description, check.id
    # RECORD is hashed before the native-code check reads members' first bytes.
    ids = list(catalogue)
    assert ids.index(RECORD_HASH_MISMATCH) < ids.index(NATIVE_CODE_IN_PURE_WHEEL)


# ---------------------------------------------------------------- RECORD


@pytest.mark.parametrize(
    ("member", "severity"),
    [("demo/__init__.py", Severity.HIGH), ("demo/data.txt", Severity.MEDIUM)],
)
def test_member_changed_after_the_build_is_caught(tmp_path, member, severity):
    files = {"demo/__init__.py": b"x = 1\n", "demo/data.txt": b"hello\n"}
    path = rewrite(make_wheel(tmp_path, "demo", "1.0", files=files),
                   replace={member: b"import os; os.system('echo inert')\n"})  # fmt: skip
    finding = only(findings(path), RECORD_HASH_MISMATCH)
    assert finding.severity is severity and finding.path == member
    assert "actual sha256=" in finding.evidence


def test_wrong_size_with_the_right_hash_only_warns(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    record = record_of(path).replace(",20\n", ",21\n", 1)  # demo/__init__.py is 20 bytes
    path = rewrite(path, replace={"demo-1.0.dist-info/RECORD": record.encode()})
    finding = only(findings(path), RECORD_HASH_MISMATCH)
    assert finding.severity is Severity.LOW and "size 21, actual 20" in finding.evidence


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("evil.pth", Severity.HIGH),
        ("demo-1.0.data/scripts/tool", Severity.HIGH),
        ("demo/__pycache__/x.cpython-311.pyc", Severity.LOW),
        ("demo/extra.json", Severity.MEDIUM),
    ],
)
def test_member_missing_from_record_is_caught(tmp_path, name, severity):
    path = rewrite(make_wheel(tmp_path, "demo", "1.0"), add={name: b"import os\n"})
    finding = only(findings(path), RECORD_UNLISTED_MEMBER)
    assert finding.severity is severity and finding.path == name


def test_member_listed_without_a_hash_is_unvouched(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    lines = record_of(path).splitlines()
    lines[0] = "demo/__init__.py,,"
    path = rewrite(path, replace={"demo-1.0.dist-info/RECORD": "\n".join(lines).encode()})
    finding = only(findings(path), RECORD_UNLISTED_MEMBER)
    assert finding.severity is Severity.HIGH and "without a hash" in finding.evidence


@pytest.mark.parametrize(
    ("row", "severity"),
    [
        ("requests/__init__.py,sha256=AAAA,1", Severity.MEDIUM),
        ("../../../bin/python,,", Severity.HIGH),
    ],
)
def test_record_naming_an_absent_member_is_caught(tmp_path, row, severity):
    path = make_wheel(tmp_path, "demo", "1.0")
    record = record_of(path) + row + "\n"
    path = rewrite(path, replace={"demo-1.0.dist-info/RECORD": record.encode()})
    found = findings(path)
    finding = only(found, RECORD_ABSENT_MEMBER)
    assert finding.severity is severity and finding.evidence.startswith(row.split(",")[0])


@pytest.mark.parametrize(
    ("record", "severity", "evidence"),
    [
        (None, Severity.HIGH, "no demo-1.0.dist-info/RECORD"),
        (b"\xff\xfe not utf-8", Severity.HIGH, "parse RECORD"),
    ],
)
def test_missing_or_unreadable_record_is_caught(tmp_path, record, severity, evidence):
    path = make_wheel(tmp_path, "demo", "1.0")
    if record is None:
        path = rewrite(path, drop=["demo-1.0.dist-info/RECORD"])
    else:
        path = rewrite(path, replace={"demo-1.0.dist-info/RECORD": record})
    found = findings(path)
    finding = only(found, RECORD_INVALID)
    assert finding.severity is severity and evidence in finding.evidence
    assert not {RECORD_UNLISTED_MEMBER, RECORD_HASH_MISMATCH} & {f.check for f in found}


@pytest.mark.parametrize(
    "change",
    [
        lambda row: row.replace("sha256=", "md5="),  # forbidden algorithm (wrong length too)
        lambda row: row.replace("sha256=", "crc32="),  # unknown
        lambda row: row + "\n" + row.replace("sha256=", "sha256=AAAA"),  # listed twice
    ],
)
def test_unverifiable_record_rows_are_reported(tmp_path, change):
    path = make_wheel(tmp_path, "demo", "1.0")
    first, rest = record_of(path).split("\n", 1)
    record = change(first) + "\n" + rest
    path = rewrite(path, replace={"demo-1.0.dist-info/RECORD": record.encode()})
    found = [f for f in findings(path) if f.check == RECORD_INVALID]
    assert found and all(f.severity is Severity.MEDIUM for f in found)


def test_weak_but_correct_hashes_are_reported(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    data = b'__version__ = "1.0"\n'
    digest = base64.urlsafe_b64encode(hashlib.sha1(data).digest()).rstrip(b"=").decode()
    rest = record_of(path).split("\n", 1)[1]
    record = f"demo/__init__.py,sha1={digest},{len(data)}\n{rest}"
    path = rewrite(path, replace={"demo-1.0.dist-info/RECORD": record.encode()})
    found = findings(path)
    assert only(found, RECORD_INVALID).severity is Severity.MEDIUM
    assert RECORD_HASH_MISMATCH not in {f.check for f in found}


def test_real_record_habits_pass(tmp_path):
    # What real wheels do: zip directory entries, RECORD rows for directories, padded
    # digests, hex digests (gmsh), unhashed signature files, big members streamed in
    # several chunks.
    big = bytes(range(256)) * 12_000  # 3 MB: more than one read chunk
    files = {"demo/__init__.py": b"", "demo/big.bin": big, "demo/hex.txt": b"hex\n"}
    path = make_wheel(tmp_path, "demo", "1.0", files=files)
    record = record_of(path)
    record = record.replace("demo/__init__.py,sha256=", "demo/,,\ndemo/__init__.py,sha256=")
    record = record.replace(",0\n", "=,0\n", 1)  # pad one digest
    hexdigest = hashlib.sha256(b"hex\n").hexdigest()
    record = re.sub(r"demo/hex.txt,sha256=[^,]*,", f"demo/hex.txt,sha256={hexdigest},", record)
    path = rewrite(
        path,
        replace={"demo-1.0.dist-info/RECORD": record.encode()},
        add={"demo/": b"", "demo-1.0.dist-info/RECORD.jws": b"{}"},
        modes={"demo/": 0o40755},
    )
    assert "=," in record_of(path) and hexdigest in record_of(path)
    assert findings(path) == []


def test_big_members_are_hashed_on_threads_and_their_heads_kept(tmp_path):
    # Each member over BATCH_BYTES gets a thread; a mismatch in any is still caught.
    files = {f"demo/m{i}.bin": random.Random(i).randbytes(BATCH_BYTES + 1) for i in range(3)}
    path = make_wheel(tmp_path, "demo", "1.0", files=files)
    with Artifact.open(path) as artifact:
        assert record.record_hash_mismatch(artifact, CheckContext(filename=path.name)) == []
        assert artifact.head("demo/m2.bin", 4) == files["demo/m2.bin"][:4]
    path = rewrite(path, replace={"demo/m1.bin": files["demo/m2.bin"]})
    assert only(findings(path), RECORD_HASH_MISMATCH).path == "demo/m1.bin"


# ---------------------------------------------------------------- names and links


def test_duplicate_zip_member_is_caught(tmp_path):
    path = rewrite(make_wheel(tmp_path, "demo", "1.0"), add={"demo/__init__.py": b"evil\n"})
    finding = only(findings(path), DUPLICATE_MEMBER)
    assert finding.severity is Severity.HIGH and "stored 2 times" in finding.evidence


def test_duplicate_tar_member_is_caught(tmp_path):
    path = make_sdist(tmp_path, "demo", "1.0")
    with tarfile.open(path) as tar:
        members = [(info, tar.extractfile(info)) for info in tar.getmembers()]
        copies = [(info, None if f is None else f.read()) for info, f in members]
    with tarfile.open(path, "w:gz") as tar:
        for info, data in [*copies, copies[0]]:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    finding = only(findings(path), DUPLICATE_MEMBER)
    assert finding.severity is Severity.HIGH and finding.path == "demo-1.0/PKG-INFO"


@pytest.mark.parametrize(
    ("extra", "severity"),
    [("demo//__init__.py", Severity.HIGH), ("demo/./__init__.py", Severity.HIGH),
     ("demo/__INIT__.py", Severity.LOW)],
)  # fmt: skip
def test_names_that_collide_once_normalized_are_caught(tmp_path, extra, severity):
    path = rewrite(make_wheel(tmp_path, "demo", "1.0"), add={extra: b"evil\n"})
    finding = only(findings(path), DUPLICATE_MEMBER)
    assert finding.severity is severity and extra in finding.evidence


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("../evil.pth", Severity.CRITICAL),
        ("/etc/cron.d/evil", Severity.CRITICAL),
        ("C:/Windows/evil.dll", Severity.CRITICAL),
        ("demo\\..\\..\\evil.pth", Severity.CRITICAL),
        ("demo\\helper.py", Severity.MEDIUM),
    ],
)
def test_unsafe_member_paths_are_caught(tmp_path, name, severity):
    path = rewrite(make_wheel(tmp_path, "demo", "1.0"), add={name: b"inert\n"})
    finding = only(findings(path), UNSAFE_MEMBER_PATH)
    assert finding.severity is severity and finding.path == name


def test_unsafe_sdist_path_is_caught(tmp_path):
    path = make_sdist(tmp_path, "demo", "1.0", files={"../../.bashrc": b"echo inert\n"})
    finding = only(findings(path), UNSAFE_MEMBER_PATH)
    assert finding.severity is Severity.CRITICAL and finding.path == "demo-1.0/../../.bashrc"


def test_dots_inside_names_are_fine(tmp_path):
    files = {"demo/a..b.py": b"", "demo/..hidden": b"", "demo/v1...py": b""}
    assert findings(make_wheel(tmp_path, "demo", "1.0", files=files)) == []


def tar_with(path: Path, *entries: tarfile.TarInfo) -> Path:
    """An sdist from the builder with extra tar entries appended."""
    with tarfile.open(path) as tar:
        copies = [(info, tar.extractfile(info)) for info in tar.getmembers()]
        copies = [(info, None if f is None else f.read()) for info, f in copies]
    with tarfile.open(path, "w:gz") as tar:
        for info, data in copies:
            tar.addfile(info, None if data is None else io.BytesIO(data))
        for entry in entries:
            tar.addfile(entry)
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "entry",
    [
        link("demo-1.0/demo/conf", "/etc/passwd"),
        link("demo-1.0/demo/conf", "../../../home/user/.ssh"),
        link("demo-1.0/conf", "../elsewhere"),  # out of the top directory pip strips
        link("demo-1.0/demo/conf", "/etc/passwd", tarfile.LNKTYPE),
        link("demo-1.0/demo/conf", "../../etc/passwd", tarfile.LNKTYPE),
    ],
)
def test_links_out_of_an_sdist_are_caught(tmp_path, entry):
    path = tar_with(make_sdist(tmp_path, "demo", "1.0"), entry)
    finding = only(findings(path), UNSAFE_LINK)
    assert finding.severity is Severity.CRITICAL and entry.linkname in finding.evidence


def test_device_entries_are_caught(tmp_path):
    fifo = tarfile.TarInfo("demo-1.0/pipe")
    fifo.type = tarfile.FIFOTYPE
    path = tar_with(make_sdist(tmp_path, "demo", "1.0"), fifo)
    assert only(findings(path), UNSAFE_LINK).severity is Severity.MEDIUM


def test_links_inside_an_sdist_are_fine(tmp_path):
    # Real sdists link docs to the top-level README, and hardlink identical files.
    path = make_sdist(tmp_path, "demo", "1.0", files={"README.md": b"# demo\n"})
    docs = link("demo-1.0/docs/README.md", "../README.md")
    hard = link("demo-1.0/docs/COPY.md", "demo-1.0/README.md", tarfile.LNKTYPE)
    assert findings(tar_with(path, docs, hard)) == []


@pytest.mark.parametrize(
    ("target", "severity"), [("/etc/passwd", Severity.CRITICAL), ("x.py", Severity.MEDIUM)]
)
def test_zip_symlinks_in_a_wheel_are_caught(tmp_path, target, severity):
    path = rewrite(
        make_wheel(tmp_path, "demo", "1.0"),
        add={"demo/conf": target.encode()},
        modes={"demo/conf": 0o120777},
    )
    finding = only(findings(path), UNSAFE_LINK)
    assert finding.severity is severity and finding.evidence == f"demo/conf -> {target}"


# ---------------------------------------------------------------- native code


@pytest.mark.parametrize(
    ("name", "data", "severity"),
    [
        ("demo/_speedups.so", ELF, Severity.HIGH),  # loads on import
        ("demo/_speedups.pyd", PE, Severity.HIGH),
        ("demo-1.0.data/scripts/demo", ELF, Severity.HIGH),  # onto PATH
        ("demo/logo.png", ELF, Severity.HIGH),  # disguised
        ("demo/bin/helper", ELF, Severity.MEDIUM),
        ("demo/lib/libhelper.dylib", MACH_O, Severity.MEDIUM),
        ("demo/lib/libz.so.1.2.13", ELF, Severity.MEDIUM),
        ("demo/launcher.exe", PE, Severity.LOW),
        ("demo/placeholder.dll", b"not really a dll\n", Severity.INFO),
    ],
)
def test_native_code_in_a_pure_wheel_is_graded(tmp_path, name, data, severity):
    path = rewrite(make_wheel(tmp_path, "demo", "1.0"), add={name: data})
    found = findings(path)
    finding = only(found, NATIVE_CODE_IN_PURE_WHEEL)
    assert finding.severity is severity and finding.path == name


def test_native_code_in_a_platform_wheel_is_expected(tmp_path):
    files = {"demo/__init__.py": b"", "demo/_speedups.cpython-311-x86_64-linux-gnu.so": ELF}
    path = make_wheel(tmp_path, "demo", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64",
                      files=files)  # fmt: skip
    assert findings(path) == []


@pytest.mark.parametrize(
    "data",
    [
        b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(64),  # a Java class file, not fat Mach-O
        b"MZ is where the notes start. " * 4,  # text that starts with MZ
        b"\x7fEL" + bytes(10),
    ],
)
def test_look_alike_magic_numbers_are_not_native(tmp_path, data):
    assert binary_format(data[:64]) is None
    path = make_wheel(
        tmp_path, "demo", "1.0", files={"demo/__init__.py": b"", "demo/x.class": data}
    )
    assert findings(path) == []


def test_native_formats_are_recognized():
    assert binary_format(ELF) == "ELF"
    assert binary_format(PE[:64]) == "PE"
    assert binary_format(MACH_O) == "Mach-O"
    assert binary_format(b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + bytes(56)) == "Mach-O"


def test_many_windows_binaries_make_one_finding(tmp_path):
    files = {"demo/__init__.py": b""} | {f"demo/cli-{i}.exe": PE for i in range(12)}
    finding = only(findings(make_wheel(tmp_path, "demo", "1.0", files=files)),
                   NATIVE_CODE_IN_PURE_WHEEL)  # fmt: skip
    assert finding.severity is Severity.LOW
    assert finding.evidence.startswith("12 file(s)") and "and 2 more" in finding.evidence


@pytest.mark.parametrize(
    ("name", "grade"),
    [
        ("setuptools-80.9.0-py3-none-any.whl", Severity.LOW),  # cli-*.exe launchers
        ("distlib-0.4.3-py2.py3-none-any.whl", Severity.LOW),
        ("pip-26.2.1-py3-none-any.whl", Severity.LOW),
        ("pyopengl-3.1.10-py3-none-any.whl", Severity.LOW),  # ctypes DLLs
        ("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", None),
        ("flask-3.1.3-py3-none-any.whl", None),
    ],
)
def test_real_wheels_pass_the_integrity_checks(corpus: Path, name, grade):
    found = findings(corpus / name)
    assert [f.severity for f in found] == ([] if grade is None else [grade]), found
    assert all(f.check == NATIVE_CODE_IN_PURE_WHEEL for f in found)


def test_real_sdists_pass_the_integrity_checks(corpus: Path):
    for path in sorted(corpus.glob("*.tar.gz")):
        assert findings(path) == [], path.name


# ---------------------------------------------------------------- the artifact


def test_a_central_directory_far_into_the_file_is_sized_correctly(tmp_path):
    # The end record's size field, not its offset field, is the directory's size.
    big = bytes(range(256)) * 64  # 16 KiB stored: the directory starts past 16 KiB
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("demo/big.bin", big)
    with Artifact.open(path, limits=Limits(max_central_directory_size=4096)) as artifact:
        assert artifact.error is None
        layout = artifact.zip_layout()
        assert layout is not None and layout.directory_start > 16_384


def test_link_targets_and_heads(tmp_path):
    path = rewrite(
        make_wheel(tmp_path, "demo", "1.0"),
        add={"demo/conf": b"../x.py", "demo/bin": ELF},
        modes={"demo/conf": 0o120777},
    )
    with Artifact.open(path) as artifact:
        assert artifact.link_target("demo/conf") == "../x.py"
        assert artifact.link_target("demo/bin") is None
        assert artifact.head("demo/bin") == ELF[:64]
        assert artifact.head("demo/bin", 4) == b"\x7fELF"
