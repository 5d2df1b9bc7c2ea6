"""The bytes are the bytes the upstream index declared."""

from __future__ import annotations

from typing import Final

from quarantine.artifact import Artifact, safe_text
from quarantine.findings import CheckContext, Finding, Severity

UPSTREAM_HASH_MISMATCH: Final = "upstream-hash-mismatch"


def upstream_hash_mismatch(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The file's digest differs from a digest the upstream index declared for it.

    Every algorithm hashlib knows is compared (computed in the one pass over the file);
    a name it does not know, such as PyPI's ``blake2b_256``, cannot be compared and is
    skipped.
    """
    findings = []
    for algorithm, declared in sorted(context.expected_hashes.items()):
        actual = artifact.digests.get(str(algorithm).strip().lower())
        if actual is None:
            continue
        if str(declared).strip().lower() != actual:
            findings.append(
                Finding(
                    UPSTREAM_HASH_MISMATCH,
                    Severity.CRITICAL,
                    f"The file's {safe_text(algorithm)} digest differs from the one the "
                    "upstream index declared: these are not the bytes it published.",
                    safe_text(f"declared {algorithm}={declared}; actual {actual}"),
                )
            )
    return findings
