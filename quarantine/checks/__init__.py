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
    code,
    entrypoints,
    filename,
    hashes,
    layout,
    metadata,
    modelconfig,
    names,
    namespace,
    native,
    pickles,
    record,
    startup,
    unicode,
    urls,
    zipformat,
)
from quarantine.findings import CheckContext, Finding

CheckFunction = Callable[[Artifact, CheckContext], list[Finding]]

# Reported by inspect_file, not by a check: a check raised instead of returning findings.
CHECK_CRASHED: Final = "check-crashed"
# Reported by the mirror's sync, which alone sees the upstream's listing of a file.
CORE_METADATA_MISMATCH: Final = "core-metadata-mismatch"
UPSTREAM_HASH_MISSING: Final = "upstream-hash-missing"
PROVENANCE_INVALID: Final = "provenance-invalid"
# Reported by the mirror from outside knowledge: OSV advisories naming the release
# (quarantine/advisories.py), and a file the upstream stopped listing (PyPI deletes malware).
ADVISORY_MALICIOUS: Final = "advisory-malicious"
ADVISORY_VULNERABILITY: Final = "advisory-vulnerability"
UPSTREAM_DELETED: Final = "upstream-deleted"

# What each of those ids means, for `qmirror checks` and the reviewer.
REPORTED_OUTSIDE_CATALOGUE: Final[dict[str, str]] = {
    CHECK_CRASHED: "(inspection) A check raised an error on this file instead of judging it.",
    CORE_METADATA_MISMATCH: (
        "(sync) The upstream's PEP 658 metadata hash differs from the wheel's METADATA."
    ),
    UPSTREAM_HASH_MISSING: "(sync) The upstream listed the file without a sha256 hash.",
    PROVENANCE_INVALID: (
        "(sync) The file's PEP 740 provenance is malformed or fails verification."
    ),
    ADVISORY_MALICIOUS: (
        "(advisories) An OSV MAL- record, or a record of a compromised release, names it."
    ),
    ADVISORY_VULNERABILITY: "(advisories) An OSV vulnerability record names the release.",
    UPSTREAM_DELETED: "(sync) The upstream no longer lists the file (PyPI deletes malware).",
}


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
    Check(zipformat.ZIP_HEADER_MISMATCH, zipformat.zip_header_mismatch),
    Check(zipformat.ZIP_OVERLAPPING_MEMBERS, zipformat.zip_overlapping_members),
    Check(zipformat.ZIP_HIDDEN_DATA, zipformat.zip_hidden_data),
    Check(zipformat.ZIP_END_RECORD_MISMATCH, zipformat.zip_end_record_mismatch),
    Check(layout.DUPLICATE_MEMBER, layout.duplicate_member),
    Check(layout.UNSAFE_MEMBER_PATH, layout.unsafe_member_path),
    Check(layout.UNSAFE_LINK, layout.unsafe_link),
    Check(record.RECORD_INVALID, record.record_invalid),
    Check(record.RECORD_HASH_MISMATCH, record.record_hash_mismatch),
    Check(record.RECORD_UNLISTED_MEMBER, record.record_unlisted_member),
    Check(record.RECORD_ABSENT_MEMBER, record.record_absent_member),
    Check(native.NATIVE_CODE_IN_PURE_WHEEL, native.native_code_in_pure_wheel),
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
    Check(names.DEPENDENCY_CONFUSION, names.dependency_confusion),
    Check(names.TYPOSQUAT, names.typosquat),
    Check(names.COMBOSQUAT, names.combosquat),
    Check(pickles.PICKLE_DANGEROUS_IMPORT, pickles.pickle_dangerous_import),
    Check(pickles.PICKLE_UNKNOWN_IMPORT, pickles.pickle_unknown_import),
    Check(pickles.PICKLE_UNVERIFIED, pickles.pickle_unverified),
    Check(modelconfig.CONFIG_DANGEROUS_TARGET, modelconfig.config_dangerous_target),
    Check(modelconfig.CONFIG_UNKNOWN_TARGET, modelconfig.config_unknown_target),
    Check(modelconfig.CONFIG_INTERPOLATION, modelconfig.config_interpolation),
    Check(modelconfig.SAFETENSORS_HEADER_INVALID, modelconfig.safetensors_header_invalid),
    Check(code.SETUP_SCRIPT_CHAIN, code.setup_script_chain),
    Check(code.SETUP_SCRIPT_PATTERN, code.setup_script_pattern),
    Check(code.IMPORT_TIME_CHAIN, code.import_time_chain),
    Check(code.IMPORT_TIME_PATTERN, code.import_time_pattern),
    Check(code.OBFUSCATED_CODE, code.obfuscated_code),
    Check(code.CODE_UNINSPECTABLE, code.code_uninspectable),
]


def known_check_ids() -> frozenset[str]:
    """Every id a finding can carry: what config may name in overrides and allow lists."""
    from quarantine.drift import DRIFT_CHECK_IDS  # drift reads the catalogue's constants

    return (
        frozenset(check.id for check in CATALOGUE)
        | frozenset(REPORTED_OUTSIDE_CATALOGUE)
        | DRIFT_CHECK_IDS
    )


__all__ = [
    "ADVISORY_MALICIOUS",
    "ADVISORY_VULNERABILITY",
    "CATALOGUE",
    "CHECK_CRASHED",
    "CORE_METADATA_MISMATCH",
    "PROVENANCE_INVALID",
    "REPORTED_OUTSIDE_CATALOGUE",
    "UPSTREAM_DELETED",
    "UPSTREAM_HASH_MISSING",
    "Check",
    "CheckFunction",
    "known_check_ids",
]
