"""PEP 740 provenance: read the publisher identity out of an upstream provenance object,
and verify its attestations when configured.

A provenance object is JSON: ``{"version": 1, "attestation_bundles": [{"publisher":
{"kind": "GitHub", "repository": "owner/name", "workflow": "release.yml", ...},
"attestations": [...]}]}``. Reading the publisher needs nothing but json; verifying the
Sigstore signatures needs ``pypi-attestations`` (the ``provenance`` extra), used offline
against the trust root that ``sigstore`` ships.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from quarantine.drift import Publisher

MAX_BUNDLES = 32  # PyPI attaches one bundle per publisher; a hostile upstream could send more


class ProvenanceError(Exception):
    """A provenance object that is not PEP 740; ``str()`` says what is wrong."""


class Verification(StrEnum):
    UNVERIFIED = "unverified"  # recorded, not checked (verify_provenance = false)
    VERIFIED = "verified"
    FAILED = "failed"


@dataclass(frozen=True)
class Provenance:
    data: bytes  # exactly what the upstream sent; served as-is on our index
    publishers: tuple[Publisher, ...]
    verification: Verification
    detail: str  # why verification failed, or what it checked


def parse(data: bytes) -> tuple[Publisher, ...]:
    """The publishers a provenance object names, in order."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ProvenanceError(f"not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("version") != 1:
        raise ProvenanceError("not a PEP 740 provenance object (version 1)")
    bundles = document.get("attestation_bundles")
    if not isinstance(bundles, list) or not bundles:
        raise ProvenanceError("attestation_bundles is missing or empty")
    if len(bundles) > MAX_BUNDLES:
        raise ProvenanceError(f"more than {MAX_BUNDLES} attestation bundles")
    publishers = []
    for index, bundle in enumerate(bundles):
        where = f"attestation_bundles[{index}]"
        if not isinstance(bundle, dict) or not isinstance(bundle.get("publisher"), dict):
            raise ProvenanceError(f"{where}.publisher is missing")
        if not isinstance(bundle.get("attestations"), list) or not bundle["attestations"]:
            raise ProvenanceError(f"{where}.attestations is missing or empty")
        publishers.append(_publisher(bundle["publisher"], where))
    return tuple(publishers)


def _publisher(raw: dict[str, Any], where: str) -> Publisher:
    def text(key: str) -> str:
        value = raw.get(key)
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > 500:
            raise ProvenanceError(f"{where}.publisher.{key} is not a short string")
        return value

    kind = text("kind")
    if not kind:
        raise ProvenanceError(f"{where}.publisher.kind is missing")
    if kind == "Google":
        return Publisher(kind, text("email"), "")
    return Publisher(
        kind=kind,
        repository=text("repository") or text("project"),
        workflow=text("workflow") or text("workflow_filepath"),
        environment=text("environment"),
    )


def record(
    data: bytes, *, filename: str, sha256: str, verify: bool
) -> tuple[Provenance | None, str | None]:
    """Parse (and when asked, verify) a provenance object for the file ``filename`` with
    digest ``sha256``. Returns the provenance, or None and why it is unusable."""
    try:
        publishers = parse(data)
    except ProvenanceError as error:
        return None, str(error)
    if not verify:
        return Provenance(data, publishers, Verification.UNVERIFIED, ""), None
    ok, detail = verify_attestations(data, filename=filename, sha256=sha256)
    status = Verification.VERIFIED if ok else Verification.FAILED
    return Provenance(data, publishers, status, detail), None


def verify_attestations(data: bytes, *, filename: str, sha256: str) -> tuple[bool, str]:
    """Check every attestation's Sigstore signature, certificate chain and transparency
    log entry, and that it attests exactly this file by this bundle's publisher."""
    try:
        import pypi_attestations
    except ImportError:  # pragma: no cover - config refuses verify_provenance without it
        return (
            False,
            "pypi-attestations is not installed (pip install 'quarantine-mirror[provenance]')",
        )
    try:
        provenance = pypi_attestations.Provenance.model_validate_json(data)
        dist = pypi_attestations.Distribution(name=filename, digest=sha256)
        checked = 0
        for bundle in provenance.attestation_bundles:
            for attestation in bundle.attestations:
                attestation.verify(bundle.publisher, dist, offline=True)
                checked += 1
    except Exception as error:  # the library raises pydantic, sigstore and its own errors
        return False, f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
    return True, f"{checked} attestation(s) verified"


def verification_available() -> bool:
    try:
        import pypi_attestations  # noqa: F401
    except ImportError:
        return False
    return True
