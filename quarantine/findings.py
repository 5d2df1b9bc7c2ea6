"""The vocabulary every check speaks: severities, findings, and the context a check sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from packaging.utils import NormalizedName


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse; lets callers pick the worst finding with max()."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check noticed. ``message`` is one sentence a reviewer understands;
    ``evidence`` is the exact field, line or value (attacker-written: escape it when shown)."""

    check: str
    severity: Severity
    message: str
    evidence: str = ""
    path: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "message": self.message,
            "evidence": self.evidence,
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the caller knows about a file beyond its bytes.

    ``project`` is the normalized name the file was listed under upstream (None when a
    file is scanned from disk on its own); ``expected_hashes`` are the upstream's
    declared digests (algorithm -> hex); ``filename`` is the name the file was listed as.
    """

    filename: str
    project: NormalizedName | None = None
    expected_hashes: Mapping[str, str] = field(default_factory=dict)
    # Projects the mirror already carries (normalized): dependencies outside this set are
    # reported, and other projects' top-level names are protected from hijack.
    known_projects: frozenset[str] = frozenset()
    # Extra legitimate .pth file names (``[checks] pth_allowlist``), beyond the shipped list.
    pth_allowlist: frozenset[str] = frozenset()
    # Internal project names or prefixes (``[policy] internal = ["acme-*"]``).
    internal_patterns: tuple[str, ...] = ()
