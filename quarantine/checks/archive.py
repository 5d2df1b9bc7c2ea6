"""Whether the file can be read at all, within the limits that keep a bomb harmless."""

from __future__ import annotations

from typing import Final

from quarantine.artifact import Artifact
from quarantine.findings import CheckContext, Finding, Severity

ARCHIVE_UNREADABLE: Final = "archive-unreadable"


def archive_unreadable(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The file is not a readable zip or tar archive, or it exceeds a safety limit
    (a decompression bomb): nothing in it can be checked.

    The evidence says what failed and, for a bomb, which limit.
    """
    error = artifact.error
    if error is None:
        return []
    if error.limit is not None:
        message = (
            f"The archive exceeds the {error.limit} safety limit (a decompression bomb?), "
            "so it was not unpacked or checked."
        )
    else:
        message = "The file is not a readable zip or tar archive, so nothing in it was checked."
    return [Finding(ARCHIVE_UNREADABLE, Severity.CRITICAL, message, error.message, error.member)]
