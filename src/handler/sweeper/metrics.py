"""CloudWatch metric names (constants the template's dashboard and alarms are checked against).

No per-repository dimension: custom metrics are billed per name x dimension set, and a registry
can hold thousands of repositories. Per-repository figures go into one log line per repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

NAMESPACE = "EcrSweeper"
SERVICE = "ecr-sweeper"

REPOSITORIES_SCANNED = "RepositoriesScanned"
MANIFESTS_SCANNED = "ManifestsScanned"
MANIFESTS_PLANNED = "ManifestsPlanned"
MANIFESTS_DELETED = "ManifestsDeleted"
BYTES_PLANNED = "BytesPlanned"
BYTES_RECLAIMED = "BytesReclaimed"
MANIFESTS_KEPT = "ManifestsKept"  # one metric per reason, dimension Reason
DELETE_FAILURES = "DeleteFailures"
FAILURES = "Failures"
RUN_COMPLETED = "RunCompleted"
SUCCESSFUL_RUN = "SuccessfulRun"  # 1 per run that completed; the "no run in 26 h" alarm reads it
DRY_RUNS = "DryRuns"
REAL_RUNS = "RealRuns"
CIRCUIT_BREAKER_TRIPPED = "CircuitBreakerTripped"
RUN_DURATION = "RunDuration"

KEPT_REASON_DIMENSION = "Reason"

ALL_METRICS = (
    REPOSITORIES_SCANNED,
    MANIFESTS_SCANNED,
    MANIFESTS_PLANNED,
    MANIFESTS_DELETED,
    BYTES_PLANNED,
    BYTES_RECLAIMED,
    MANIFESTS_KEPT,
    DELETE_FAILURES,
    FAILURES,
    RUN_COMPLETED,
    SUCCESSFUL_RUN,
    DRY_RUNS,
    REAL_RUNS,
    CIRCUIT_BREAKER_TRIPPED,
    RUN_DURATION,
)


class MetricSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def publish(sink: MetricSink, report: Mapping[str, Any], unit: Any) -> None:
    """Emit the run's figures. `unit` is Powertools' MetricUnit enum (passed in: the core does not
    import Powertools). Kept-by-reason figures are emitted separately with a Reason dimension."""
    failures = report["failures"]
    delete_failures = sum(1 for f in failures if f["digest"])
    sink.add_metric(REPOSITORIES_SCANNED, unit.Count, report["repositories"])
    sink.add_metric(MANIFESTS_SCANNED, unit.Count, report["manifests"])
    sink.add_metric(MANIFESTS_PLANNED, unit.Count, report["planned"]["manifests"])
    sink.add_metric(MANIFESTS_DELETED, unit.Count, report["deleted"]["manifests"])
    sink.add_metric(BYTES_PLANNED, unit.Bytes, report["planned"]["bytes"])
    sink.add_metric(BYTES_RECLAIMED, unit.Bytes, report["deleted"]["bytes"])
    sink.add_metric(DELETE_FAILURES, unit.Count, delete_failures)
    sink.add_metric(FAILURES, unit.Count, len(failures))
    sink.add_metric(RUN_COMPLETED, unit.Count, 1 if report["complete"] else 0)
    sink.add_metric(SUCCESSFUL_RUN, unit.Count, 1 if report["complete"] else 0)
    sink.add_metric(DRY_RUNS if report["dry_run"] else REAL_RUNS, unit.Count, 1)
    tripped = bool(report.get("circuit_breaker"))
    sink.add_metric(CIRCUIT_BREAKER_TRIPPED, unit.Count, 1 if tripped else 0)
    sink.add_metric(RUN_DURATION, unit.Seconds, report["duration_seconds"])
