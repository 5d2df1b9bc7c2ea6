"""Build real wheels and sdists for tests: valid METADATA, WHEEL and RECORD, written with
the stdlib so a test controls every byte (and can poison any of them)."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.utils import canonicalize_name


def dist_name(name: str) -> str:
    """The escaped project name used in wheel/sdist filenames (PEP 427 / PEP 625)."""
    return canonicalize_name(name).replace("-", "_")


def metadata_text(
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    summary: str = "A test project",
    extras: Iterable[str] = (),
    extra_headers: Mapping[str, str] | None = None,
    metadata_version: str = "2.1",
) -> str:
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Provides-Extra: {extra}" for extra in extras)
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    for key, value in (extra_headers or {}).items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n\n"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Iterable[str] = (),
    files: Mapping[str, bytes] | None = None,
    entry_points: str | None = None,
    metadata: str | None = None,
    filename: str | None = None,
    build_tag: str | None = None,
) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` into ``directory`` and return its path.

    ``files`` are extra members (path -> bytes); by default the wheel holds one module,
    ``<name>/__init__.py``. ``metadata`` replaces the generated METADATA text whole.
    """
    dist = dist_name(name)
    dist_info = f"{dist}-{version}.dist-info"
    members: dict[str, bytes] = {}
    if files is None:
        members[f"{dist}/__init__.py"] = f'__version__ = "{version}"\n'.encode()
    else:
        members.update(files)
    members[f"{dist_info}/METADATA"] = (
        metadata
        if metadata is not None
        else metadata_text(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            extras=extras,
        )
    ).encode()
    root_is_purelib = "true" if tag.endswith("-none-any") else "false"
    members[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: quarantine-mirror-tests\n"
        f"Root-Is-Purelib: {root_is_purelib}\nTag: {tag}\n\n"
    ).encode()
    if entry_points:
        members[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record_lines = [f"{path},{_record_hash(data)},{len(data)}" for path, data in members.items()]
    record_lines.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()

    build = f"-{build_tag}" if build_tag else ""
    path = Path(directory) / (filename or f"{dist}-{version}{build}-{tag}.whl")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


def make_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    files: Mapping[str, bytes] | None = None,
    metadata: str | None = None,
    filename: str | None = None,
) -> Path:
    """Write ``<name>-<version>.tar.gz`` (a PEP 517 sdist buildable by setuptools)."""
    dist = dist_name(name)
    root = f"{dist}-{version}"
    members: dict[str, bytes] = {
        "PKG-INFO": (
            metadata
            if metadata is not None
            else metadata_text(
                name,
                version,
                requires_dist=requires_dist,
                requires_python=requires_python,
                metadata_version="2.1",
            )
        ).encode(),
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
            + (
                "dependencies = [" + ", ".join(f'"{r}"' for r in requires_dist) + "]\n"
                if requires_dist
                else ""
            )
        ).encode(),
        f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    if files:
        members.update(files)
    path = Path(directory) / (filename or f"{root}.tar.gz")
    with tarfile.open(path, "w:gz") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(f"{root}/{member}")
            info.size = len(data)
            info.mtime = int(time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, -1)))
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def make_provenance(
    publishers: Iterable[Mapping[str, str]] = (
        {"kind": "GitHub", "repository": "acme/widget", "workflow": "release.yml"},
    ),
    *,
    subject: tuple[str, str] | None = None,
) -> bytes:
    """A PEP 740 provenance object naming ``publishers``, one attestation bundle each.

    The attestations are well-formed but not signed by Sigstore (that cannot be done
    offline): a self-signed certificate, an in-toto statement for ``subject``
    (filename, sha256), and a signature of random bytes — what a forger could make.
    """
    import datetime as _dt
    import json
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-intermediate")])
    now = _dt.datetime.now(_dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(minutes=10))
        .sign(key, hashes.SHA256())
    )
    filename, sha256 = subject or ("widget-1.0-py3-none-any.whl", "0" * 64)
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": filename, "digest": {"sha256": sha256}}],
        "predicateType": "https://docs.pypi.org/attestations/publish/v1",
        "predicate": None,
    }
    attestation = {
        "version": 1,
        "verification_material": {
            "certificate": base64.b64encode(
                certificate.public_bytes(serialization.Encoding.DER)
            ).decode(),
            "transparency_entries": [
                {
                    "logIndex": "1",
                    "logId": {"keyId": base64.b64encode(os.urandom(32)).decode()},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(int(now.timestamp())),
                    "inclusionPromise": {
                        "signedEntryTimestamp": base64.b64encode(os.urandom(64)).decode()
                    },
                    "canonicalizedBody": base64.b64encode(b"{}").decode(),
                }
            ],
        },
        "envelope": {
            "statement": base64.b64encode(json.dumps(statement).encode()).decode(),
            "signature": base64.b64encode(os.urandom(64)).decode(),
        },
    }
    return json.dumps(
        {
            "version": 1,
            "attestation_bundles": [
                {"publisher": dict(publisher), "attestations": [attestation]}
                for publisher in publishers
            ],
        }
    ).encode()
