"""Opening wheels and sdists: what an Artifact exposes, and the limits that keep hostile
archives harmless (small Limits here; the gigabyte bombs are in test_checks_archive)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from quarantine.artifact import (
    Artifact,
    ArtifactError,
    Limits,
    MemberType,
    digest_file,
    parse_core_metadata,
    parse_entry_points,
    parse_record,
    wheel_info,
)
from tests.support.builders import make_sdist, make_wheel

ENTRY_POINTS = "[console_scripts]\nDemo-Tool = demo.cli:main\n\n[demo.plugins]\nx = demo:x\n"


def open_artifact(path: Path, **kwargs) -> Artifact:
    return Artifact.open(path, **kwargs)


def write_zip(path: Path, members: list[tuple[str, bytes]], **zip_kwargs) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some tests
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **zip_kwargs) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def write_tar_gz(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    return path


# ---------------------------------------------------------------- what it exposes


def test_wheel_exposes_members_metadata_and_dist_info_files(tmp_path):
    path = make_wheel(
        tmp_path,
        "Demo.Pkg",
        "1.0",
        requires_dist=["requests>=2", 'tomli; python_version < "3.11"'],
        requires_python=">=3.9",
        entry_points=ENTRY_POINTS,
    )
    with open_artifact(path) as artifact:
        assert artifact.error is None
        assert (artifact.kind, artifact.name, artifact.version) == (
            "wheel",
            "demo-pkg",
            Version("1"),
        )
        assert artifact.container == "zip"
        assert artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert artifact.size == path.stat().st_size
        names = [member.name for member in artifact.members]
        assert "demo_pkg/__init__.py" in names
        init = artifact.member("demo_pkg/__init__.py")
        assert init is not None and init.type is MemberType.FILE and init.mode == 0o644
        assert artifact.read("demo_pkg/__init__.py", 1000) == b'__version__ = "1.0"\n'
        assert b"".join(artifact.stream("demo_pkg/__init__.py")) == b'__version__ = "1.0"\n'

        assert artifact.dist_info == "demo_pkg-1.0.dist-info"
        core = artifact.core_metadata
        assert core is not None and artifact.core_metadata_error is None
        assert core.path == "demo_pkg-1.0.dist-info/METADATA"
        with zipfile.ZipFile(path) as zf:
            assert core.data == zf.read(core.path)
        assert core.errors == () and core.metadata is not None
        assert core.requires_dist == ("requests>=2", 'tomli; python_version < "3.11"')
        assert core.requires_python == ">=3.9"
        assert (core.name, core.version) == ("Demo.Pkg", "1.0")

        assert wheel_info(artifact.wheel_file() or b"")["Tag"] == ["py3-none-any"]
        record = parse_record(artifact.record() or b"")
        assert {entry.path for entry in record} == set(names)
        assert record[0].hash.startswith("sha256=")
        assert parse_entry_points(artifact.entry_points() or b"") == {
            "console_scripts": {"Demo-Tool": "demo.cli:main"},
            "demo.plugins": {"x": "demo:x"},
        }


def test_wheel_without_entry_points_says_none(tmp_path):
    with open_artifact(make_wheel(tmp_path, "demo", "1.0")) as artifact:
        assert artifact.entry_points() is None


def test_sdist_exposes_pkg_info_from_its_root(tmp_path):
    path = make_sdist(tmp_path, "demo", "2.0", requires_dist=["click"], requires_python=">=3.10")
    with open_artifact(path) as artifact:
        assert artifact.error is None
        assert (artifact.kind, artifact.container, artifact.sdist_root) == (
            "sdist",
            "tar.gz",
            "demo-2.0",
        )
        core = artifact.core_metadata
        assert core is not None and core.path == "demo-2.0/PKG-INFO"
        assert core.requires_dist == ("click",) and core.requires_python == ">=3.10"
        assert artifact.read("demo-2.0/pyproject.toml", 10_000).startswith(b"[build-system]")


def test_legacy_zip_sdist_opens(tmp_path):
    pkg_info = b"Metadata-Version: 1.1\nName: Old\nVersion: 0.9\n\n"
    path = write_zip(tmp_path / "Old-0.9.zip", [("Old-0.9/PKG-INFO", pkg_info)])
    with open_artifact(path) as artifact:
        assert (artifact.kind, artifact.container, artifact.name) == ("sdist", "zip", "old")
        core = artifact.core_metadata
        assert core is not None and core.data == pkg_info


def test_filename_comes_from_the_listing_not_the_temporary_path(tmp_path):
    wheel = make_wheel(tmp_path, "demo", "1.0")
    temp = tmp_path / "download-1234-0"
    wheel.rename(temp)
    with open_artifact(temp, filename="demo-1.0-py3-none-any.whl") as artifact:
        assert artifact.kind == "wheel" and artifact.core_metadata is not None


def test_unknown_suffix_is_sniffed_but_filename_is_reported_invalid(tmp_path):
    temp = make_sdist(tmp_path, "demo", "1.0").rename(tmp_path / "blob")
    with open_artifact(temp, filename="demo") as artifact:
        assert artifact.kind is None and artifact.filename_error
        assert artifact.container == "tar.gz" and artifact.error is None
        assert artifact.core_metadata is None  # nowhere defined to look


def test_digests_cover_requested_algorithms_and_skip_unknown_ones(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    size, digests = digest_file(path, ["SHA512", "md5", "blake2b_256", "shake_128", "nope"])
    data = path.read_bytes()
    assert size == len(data)
    assert digests == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
    }


def test_entry_points_keep_case_and_do_not_interpolate():
    parsed = parse_entry_points(b"[console_scripts]\nPip = x:main %(home)s\n")
    assert parsed == {"console_scripts": {"Pip": "x:main %(home)s"}}
    # Like importlib.metadata: lines outside a [group] are ignored, never an error.
    assert parse_entry_points(b"not an ini file\n[g]\na = b\n") == {"g": {"a": "b"}}


# ---------------------------------------------------------------- metadata location


def test_two_dist_info_directories_leave_no_core_metadata(tmp_path):
    extra = {
        "other-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: other\nVersion: 1.0\n\n"
    }
    with open_artifact(make_wheel(tmp_path, "demo", "1.0", files=extra)) as artifact:
        assert artifact.core_metadata is None
        error = artifact.core_metadata_error
        assert error is not None and "2 .dist-info directories" in error.message


def test_nested_dist_info_directories_are_not_counted(tmp_path):
    vendored = {"demo/_vendor/x-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\n\n"}
    with open_artifact(make_wheel(tmp_path, "demo", "1.0", files=vendored)) as artifact:
        assert artifact.core_metadata is not None


def test_dist_info_must_match_the_filename(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0", filename="demo-2.0-py3-none-any.whl")
    with open_artifact(path) as artifact:
        error = artifact.core_metadata_error
        assert error is not None and "does not match its filename" in error.message


def test_legacy_dist_info_spelling_matches_by_normalized_name_and_version(tmp_path):
    metadata = b"Metadata-Version: 2.1\nName: Zope.Interface\nVersion: 5.0.0\n\n"
    path = write_zip(
        tmp_path / "zope.interface-5.0-py3-none-any.whl",
        [("zope.interface-5.0.0.dist-info/METADATA", metadata)],
    )
    with open_artifact(path) as artifact:
        core = artifact.core_metadata
        assert core is not None and core.data == metadata


def test_duplicated_metadata_member_is_refused(tmp_path):
    good = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n"
    evil = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: evil\n\n"
    path = write_zip(
        tmp_path / "demo-1.0-py3-none-any.whl",
        [("demo-1.0.dist-info/METADATA", good), ("demo-1.0.dist-info/METADATA", evil)],
    )
    with open_artifact(path) as artifact:
        error = artifact.core_metadata_error
        assert error is not None and "stored 2 times" in error.message
        with pytest.raises(ArtifactError, match="stored 2 times"):
            artifact.read("demo-1.0.dist-info/METADATA", 1000)


def test_sdist_needs_one_top_level_directory_with_pkg_info(tmp_path):
    pkg_info = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n"
    two = write_tar_gz(
        tmp_path / "demo-1.0.tar.gz", [("demo-1.0/PKG-INFO", pkg_info), ("evil/x.py", b"")]
    )
    with open_artifact(two) as artifact:
        error = artifact.core_metadata_error
        assert error is not None and "2 top-level entries" in error.message
    (tmp_path / "b").mkdir()
    none = write_tar_gz(tmp_path / "b" / "demo-1.0.tar.gz", [("demo-1.0/setup.py", b"")])
    with open_artifact(none) as artifact:
        error = artifact.core_metadata_error
        assert error is not None and "no demo-1.0/PKG-INFO" in error.message


def test_metadata_over_the_size_limit_is_not_parsed(tmp_path):
    path = make_wheel(tmp_path, "demo", "1.0")
    with open_artifact(path, limits=Limits(max_metadata_size=50)) as artifact:
        error = artifact.core_metadata_error
        assert error is not None and error.limit == "max_metadata_size"


def test_unknown_header_does_not_hide_an_invalid_requirement():
    core = parse_core_metadata(
        "M",
        b"Metadata-Version: 1.0\nName: a\nVersion: 1\nX-Evil: 1\nRequires-Dist: b >=< 1\n\n",
    )
    fields = {(getattr(error, "field", None), str(error)) for error in core.errors}
    assert ("x-evil", "unrecognized field: 'x-evil'") in fields
    assert ("requires-dist", "'b >=< 1' is invalid for 'requires-dist'") in fields
    assert core.requires_dist == ("b >=< 1",)  # raw, as installers would see it


# ---------------------------------------------------------------- hostile archives


def test_garbage_truncated_and_empty_files_become_errors_not_exceptions(tmp_path):
    wheel = make_wheel(tmp_path, "demo", "1.0").read_bytes()
    sdist = make_sdist(tmp_path, "demo", "1.0").read_bytes()
    cases = {
        "demo-1.0-py3-none-any.whl": b"this is not a zip file at all" * 10,
        "demo-1.1-py3-none-any.whl": wheel[: len(wheel) // 2],
        "demo-1.2-py3-none-any.whl": b"",
        "demo-1.0.tar.gz": sdist[: len(sdist) // 2],
        "demo-1.1.tar.gz": b"\x1f\x8b" + b"\x00" * 100,
        "demo-1.2.tar.gz": gzip.compress(b"not a tar" * 100),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with open_artifact(path) as artifact:
            assert isinstance(artifact.error, ArtifactError), name
            assert artifact.members == () and artifact.core_metadata is None
            with pytest.raises(ArtifactError):
                artifact.read("anything", 10)


def test_too_many_members(tmp_path):
    members = [(f"demo/m{i}.py", b"") for i in range(20)]
    path = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    with open_artifact(path, limits=Limits(max_members=10)) as artifact:
        assert artifact.error is not None and artifact.error.limit == "max_members"
    tar = write_tar_gz(tmp_path / "demo-1.0.tar.gz", members)
    with open_artifact(tar, limits=Limits(max_members=10)) as artifact:
        assert artifact.error is not None and artifact.error.limit == "max_members"


@pytest.mark.parametrize(
    ("limits", "limit"),
    [
        (Limits(max_member_size=1000), "max_member_size"),
        (Limits(max_total_size=1500), "max_total_size"),
        (Limits(max_compression_ratio=10, ratio_floor=100), "max_compression_ratio"),
    ],
)
def test_declared_sizes_are_judged_before_decompressing(tmp_path, limits, limit):
    members = [("demo/a.txt", b"a" * 1200), ("demo/b.txt", b"b" * 1200)]
    wheel = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    sdist = write_tar_gz(tmp_path / "demo-1.0.tar.gz", members)
    for path in (wheel, sdist):
        with open_artifact(path, limits=limits) as artifact:
            assert artifact.error is not None and artifact.error.limit == limit, path.name
            assert artifact.error.member in ("demo/a.txt", "demo/b.txt", None)


def test_zip_central_directory_is_sized_before_it_is_parsed(tmp_path):
    members = [(f"demo/{i:04}.py", b"") for i in range(200)]
    path = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    with open_artifact(path, limits=Limits(max_central_directory_size=4096)) as artifact:
        assert artifact.error is not None
        assert artifact.error.limit == "max_central_directory_size"


def test_zip64_central_directory_is_sized_too(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(70_000):  # over 0xFFFF entries: the end record defers to zip64
            zf.writestr(zipfile.ZipInfo(f"{i}"), b"")
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 12 : end + 16] = b"\xff\xff\xff\xff"  # size: "see the zip64 record"
    path.write_bytes(bytes(data))
    with open_artifact(path, limits=Limits(max_central_directory_size=1_000_000)) as artifact:
        assert artifact.error is not None
        assert "central directory is 3" in artifact.error.message  # ~3.5 MB, from zip64


def test_member_larger_than_declared_fails_its_crc(tmp_path):
    path = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", [("demo/a.txt", b"a" * 5000)])
    data = bytearray(path.read_bytes())
    # Shrink the declared size in the central directory: the data behind it is longer.
    at = data.rfind(b"PK\x01\x02")
    data[at + 24 : at + 28] = (100).to_bytes(4, "little")
    local = data.find(b"PK\x03\x04")
    data[local + 22 : local + 26] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with open_artifact(path) as artifact:
        assert artifact.error is None
        assert artifact.members[0].size == 100
        with pytest.raises(ArtifactError, match=r"demo/a\.txt"):
            artifact.read("demo/a.txt", 10_000)


def test_encrypted_or_bzip2_members_are_refused(tmp_path):
    bz = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bz, "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("demo/a.py", b"x = 1\n")
    with open_artifact(bz) as artifact:
        assert artifact.error is not None and "compression method 12" in artifact.error.message
    encrypted = tmp_path / "demo-1.1-py3-none-any.whl"
    write_zip(encrypted, [("demo/a.py", b"x = 1\n")])
    data = bytearray(encrypted.read_bytes())
    at = data.rfind(b"PK\x01\x02")
    data[at + 8] |= 0x1  # general purpose flag bit 0: encrypted
    encrypted.write_bytes(bytes(data))
    with open_artifact(encrypted) as artifact:
        assert artifact.error is not None and "encrypted" in artifact.error.message


def test_links_and_directories_are_listed_but_not_read(tmp_path):
    link = tarfile.TarInfo("demo-1.0/evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    directory = tarfile.TarInfo("demo-1.0/pkg")
    directory.type = tarfile.DIRTYPE
    path = write_tar_gz(tmp_path / "demo-1.0.tar.gz", [link, directory])
    with open_artifact(path) as artifact:
        evil = artifact.member("demo-1.0/evil")
        assert evil is not None and evil.type is MemberType.SYMLINK
        assert evil.link_target == "/etc/passwd"
        with pytest.raises(ArtifactError, match="symlink, not a file"):
            artifact.read("demo-1.0/evil", 100)
        pkg = artifact.member("demo-1.0/pkg")
        assert pkg is not None and pkg.type is MemberType.DIRECTORY


def test_read_limit_is_enforced(tmp_path):
    path = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", [("demo/a.txt", b"a" * 5000)])
    with open_artifact(path) as artifact:
        with pytest.raises(ArtifactError) as caught:
            artifact.read("demo/a.txt", 4999)
        assert caught.value.member == "demo/a.txt" and "over 4999" in caught.value.message
        with pytest.raises(ArtifactError, match="no member"):
            artifact.read("demo/missing.txt", 10)


def test_huge_tar_header_is_not_read_into_memory(tmp_path):
    # A pax header claiming 100 MB: tarfile would read it whole; the stream refuses.
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 100_000_000
    raw = header.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * 1024
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_bytes(gzip.compress(raw))
    with open_artifact(path) as artifact:
        assert artifact.error is not None and artifact.error.limit == "max_header_size"


def test_tar_stream_is_bounded_by_the_ratio_even_where_headers_hide_it(tmp_path):
    # A 4 MB GNU long name (under max_header_size) of zeros: tarfile reads it whole, but
    # the decompressed stream may not run past the ratio budget.
    header = tarfile.TarInfo("././@LongLink")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = 4_000_000
    raw = header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 4_000_512
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_bytes(gzip.compress(raw, compresslevel=9))
    limits = Limits(ratio_floor=1_000_000, max_compression_ratio=50)
    with open_artifact(path, limits=limits) as artifact:
        assert artifact.error is not None
        assert artifact.error.limit == "max_compression_ratio"
