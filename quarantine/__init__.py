"""The judge: pure inspection of wheels and sdists (no Flask, no database, no network).

``inspect_file(path, CheckContext(...))`` runs the check catalogue over a file on disk;
``decide(Policy(), findings, ...)`` turns the findings into a verdict.
"""

from quarantine.artifact import DEFAULT_LIMITS, Artifact, ArtifactError, Limits
from quarantine.findings import CheckContext, Finding, Severity
from quarantine.inspection import Inspection, inspect_file
from quarantine.policy import Policy, Verdict, decide

__all__ = [
    "DEFAULT_LIMITS",
    "Artifact",
    "ArtifactError",
    "CheckContext",
    "Finding",
    "Inspection",
    "Limits",
    "Policy",
    "Severity",
    "Verdict",
    "decide",
    "inspect_file",
]
