"""What the filename claims: that packaging can parse it, and that it names the project
the file was listed under."""

from __future__ import annotations

from typing import Final

from packaging.utils import canonicalize_name

from quarantine.artifact import Artifact, safe_text
from quarantine.findings import CheckContext, Finding, Severity

FILENAME_INVALID: Final = "filename-invalid"
PROJECT_NAME_MISMATCH: Final = "project-name-mismatch"


def filename_invalid(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """packaging cannot parse the filename as a wheel or sdist (PEP 427 / PEP 625), so
    installers could not agree on its name, version or tags."""
    if artifact.filename_error is None:
        return []
    return [
        Finding(
            FILENAME_INVALID,
            Severity.CRITICAL,
            "The filename is not a valid wheel or sdist filename.",
            artifact.filename_error,
        )
    ]


def project_name_mismatch(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The project named by the filename is not the project the file was listed under
    (a file slipped into another project's listing)."""
    if context.project is None or artifact.name is None:
        return []
    listed = canonicalize_name(context.project)
    if artifact.name == listed:
        return []
    return [
        Finding(
            PROJECT_NAME_MISMATCH,
            Severity.CRITICAL,
            f"The filename names project {artifact.name!r}, but the file was listed "
            f"under project {safe_text(listed)!r}.",
            safe_text(artifact.filename),
        )
    ]
