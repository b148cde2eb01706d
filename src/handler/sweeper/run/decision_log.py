"""The run's structured log: one line per decision, once final, and one line per repository."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..model import Decision, Verdict
from .state import RepositorySummary

log = logging.getLogger("ecr_sweeper")

# A decision record: its message, and the extra key holding its lines (see `log_decisions`).
DECISION_MESSAGE = "decision"
DECISION_LINES = "decisions"


def log_decisions(repository: str, decisions: Iterable[Decision], held_by: str = "") -> None:
    """One record for many decisions of a repository, one structured line per decision in the
    Lambda's log.

    The record carries the decisions as a list under `DECISION_LINES`; the Lambda's formatter
    (`log_format.DecisionLinesFormatter`) writes it as one JSON line per decision, each with the
    record's keys (run id, level, time), as if each had been logged alone; formatting a whole
    record per manifest through Powertools would cost the run more than its API calls. Any other
    formatter sees one record with the list.

    `held_by` ("circuit-breaker") marks the deletions a run held back: their verdict stays
    `delete`, with its reason and cause; on every other line it is "".
    """
    if not log.isEnabledFor(logging.INFO):
        return
    lines = [
        {
            "repository": repository,
            "digest": d.digest,
            "kind": d.kind.value,
            "verdict": d.verdict.value,
            "reason": d.reason.value,
            "cause": d.cause,
            "size": d.size,
            "live": d.live,
            "expired_by": d.expired_by,
            "held_by": held_by if d.verdict is Verdict.DELETE else "",
        }
        for d in decisions
    ]
    if lines:
        log.info(DECISION_MESSAGE, extra={DECISION_LINES: lines})


def log_repository(summary: RepositorySummary) -> None:
    log.info(
        "repository",
        extra={
            "repository": summary.repository,
            "manifests": summary.manifests,
            "planned": summary.planned,
            "planned_bytes": summary.planned_bytes,
            "deleted": summary.deleted,
            "deleted_bytes": summary.deleted_bytes,
            "planned_bytes_freed": summary.planned_bytes_freed,
            "deleted_bytes_freed": summary.deleted_bytes_freed,
            # Why the figures are null; "" when known (a dropped null would leave the
            # dashboard's column without its field).
            "bytes_freed_unknown": summary.bytes_freed_unknown or "",
            "delete_failures": summary.delete_failures,
            "kept": dict(summary.kept),
            "failures": len(summary.failures),
            "complete": summary.complete,
            "held_by": summary.held_by or None,
        },
    )
