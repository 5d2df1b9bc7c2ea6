"""The check catalogue: small named units, each ``(artifact, context) -> [Finding]``.

A check reports under one stable kebab-case id (a constant in its module), returns an
empty list when it has nothing to say or when what it looks at is missing (another check
reports that), and never raises for hostile input. :func:`quarantine.inspection.inspect_file`
runs every check in :data:`CATALOGUE`, in order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from quarantine.artifact import Artifact
from quarantine.checks import (
    archive,
    entrypoints,
    filename,
    hashes,
    metadata,
    namespace,
    startup,
    unicode,
    urls,
)
from quarantine.findings import CheckContext, Finding

CheckFunction = Callable[[Artifact, CheckContext], list[Finding]]

# Reported by inspect_file, not by a check: a check raised instead of returning findings.
CHECK_CRASHED: Final = "check-crashed"


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    run: CheckFunction

    @property
    def description(self) -> str:
        """What the check looks for: the first paragraph of its docstring."""
        return (inspect.getdoc(self.run) or "").split("\n\n", 1)[0].replace("\n", " ")


CATALOGUE: Final[list[Check]] = [
    Check(archive.ARCHIVE_UNREADABLE, archive.archive_unreadable),
    Check(filename.FILENAME_INVALID, filename.filename_invalid),
    Check(filename.PROJECT_NAME_MISMATCH, filename.project_name_mismatch),
    Check(hashes.UPSTREAM_HASH_MISMATCH, hashes.upstream_hash_mismatch),
    Check(metadata.METADATA_MISSING, metadata.metadata_missing),
    Check(metadata.METADATA_NAME_MISMATCH, metadata.metadata_name_mismatch),
    Check(metadata.METADATA_VERSION_MISMATCH, metadata.metadata_version_mismatch),
    Check(metadata.METADATA_INVALID, metadata.metadata_invalid),
    Check(metadata.METADATA_VERSION_UNKNOWN, metadata.metadata_version_unknown),
    Check(metadata.METADATA_OVERSIZED, metadata.metadata_oversized),
    Check(metadata.REQUIRES_DIST_DIRECT_URL, metadata.requires_dist_direct_url),
    Check(metadata.DEPENDENCY_NOT_MIRRORED, metadata.dependency_not_mirrored),
    Check(unicode.CONTROL_CHARACTERS, unicode.control_characters),
    Check(unicode.BIDI_CONTROL_CHARACTERS, unicode.bidi_control_characters),
    Check(unicode.INVISIBLE_CHARACTERS, unicode.invisible_characters),
    Check(unicode.MIXED_SCRIPT_CONFUSABLE, unicode.mixed_script_confusable),
    Check(urls.URL_SCRIPT_SCHEME, urls.url_script_scheme),
    Check(urls.URL_IP_HOST, urls.url_ip_host),
    Check(urls.URL_SHORTENER, urls.url_shortener),
    Check(urls.URL_PLAIN_HTTP, urls.url_plain_http),
    Check(startup.PTH_IMPORT, startup.pth_import),
    Check(startup.PTH_ALLOWLISTED, startup.pth_allowlisted),
    Check(startup.PTH_PATH, startup.pth_path),
    Check(startup.SITECUSTOMIZE, startup.sitecustomize_installed),
    Check(entrypoints.SCRIPT_SHADOWS_COMMAND, entrypoints.script_shadows_command),
    Check(entrypoints.PLUGIN_ENTRY_POINT, entrypoints.plugin_entry_point),
    Check(namespace.NAMESPACE_HIJACK, namespace.namespace_hijack),
    Check(namespace.STDLIB_SHADOWING, namespace.stdlib_shadowing),
]

__all__ = ["CATALOGUE", "CHECK_CRASHED", "Check", "CheckFunction"]
