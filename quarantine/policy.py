"""Findings + settings -> verdict. Pure: time comes in as arguments, never from a clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from quarantine.checks import ADVISORY_MALICIOUS, ADVISORY_VULNERABILITY
from quarantine.findings import Finding, Severity


class Action(StrEnum):
    """What a finding does to a file, and (for the three strongest) what the verdict is."""

    REJECT = "reject"
    HOLD = "hold"
    WARN = "warn"
    IGNORE = "ignore"


class Verdict(StrEnum):
    APPROVE = "approve"
    HOLD = "hold"
    REJECT = "reject"


DEFAULT_SEVERITY_ACTIONS: Mapping[Severity, Action] = {
    Severity.CRITICAL: Action.REJECT,
    Severity.HIGH: Action.HOLD,
    Severity.MEDIUM: Action.HOLD,
    Severity.LOW: Action.WARN,
    Severity.INFO: Action.WARN,
}

# Checks whose default is not their severity's: a known vulnerability in a release is
# worth showing, not a reason to stop serving it (most releases of most projects have
# one); a release an advisory calls malicious is refused whatever severity says.
DEFAULT_CHECK_ACTIONS: Mapping[str, Action] = {
    ADVISORY_MALICIOUS: Action.REJECT,
    ADVISORY_VULNERABILITY: Action.WARN,
}

COOLDOWN_REASON = "cooldown"


@dataclass(frozen=True)
class Policy:
    """Severity defaults, per-check overrides and per-project check allowances."""

    severity_actions: Mapping[Severity, Action] = field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_ACTIONS)
    )
    check_actions: Mapping[str, Action] = field(default_factory=lambda: dict(DEFAULT_CHECK_ACTIONS))
    # project (normalized) -> check ids that are ignored for that project
    project_allow: Mapping[str, frozenset[str]] = field(default_factory=dict)
    cooldown: timedelta = timedelta(days=3)
    project_cooldown: Mapping[str, timedelta] = field(default_factory=dict)

    def action_for(self, finding: Finding, project: str | None = None) -> Action:
        if project is not None and finding.check in self.project_allow.get(project, frozenset()):
            return Action.IGNORE
        if finding.check in self.check_actions:
            return self.check_actions[finding.check]
        return self.severity_actions[finding.severity]

    def cooldown_for(self, project: str | None) -> timedelta:
        if project is not None and project in self.project_cooldown:
            return self.project_cooldown[project]
        return self.cooldown


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...]
    # When the verdict is HOLD only because of the cooldown: the moment it ends.
    cooldown_until: datetime | None = None


def decide(
    policy: Policy,
    findings: Iterable[Finding],
    *,
    project: str | None,
    uploaded_at: datetime | None,
    now: datetime,
) -> Decision:
    """Reject beats hold beats approve; a clean file younger than the cooldown is held."""
    rejecting: list[str] = []
    holding: list[str] = []
    for finding in findings:
        action = policy.action_for(finding, project)
        reason = f"{finding.check} ({finding.severity.value}): {finding.message}"
        if action is Action.REJECT:
            rejecting.append(reason)
        elif action is Action.HOLD:
            holding.append(reason)
    if rejecting:
        return Decision(Verdict.REJECT, tuple(rejecting + holding))
    if holding:
        return Decision(Verdict.HOLD, tuple(holding))
    cooldown = policy.cooldown_for(project)
    if cooldown > timedelta(0) and uploaded_at is not None and now - uploaded_at < cooldown:
        until = uploaded_at + cooldown
        uploaded, held = uploaded_at.isoformat(), until.isoformat()
        return Decision(
            Verdict.HOLD,
            (f"{COOLDOWN_REASON}: uploaded {uploaded}, held until {held}",),
            cooldown_until=until,
        )
    return Decision(Verdict.APPROVE, ())
