"""CloudWatch metric names and the figures of one run (the template's dashboard and alarms are
checked against these constants by tests/template).

Namespace `EcrSweeper` (`POWERTOOLS_METRICS_NAMESPACE` overrides it), one data point per metric
per run. Every run emits every metric, zeros included, so a graph shows a zero rather than a gap
and an alarm sees the value it is about.

Dimensions, chosen for cost and for honesty:
- `service` (`ecr-sweeper`) and `FunctionName` on every metric. `FunctionName` keeps the stacks of
  one account apart (staging and prod both write to `EcrSweeper`): without it a prod dashboard
  would add up staging's figures and staging's nightly run would hold off prod's "no successful
  run" alarm. It has one value per stack, so it costs nothing extra.
- No repository dimension: custom metrics are billed per name x dimension set, and a registry
  holds up to 10,000 repositories. Per-repository figures are in one structured log line per
  repository and run (message `repository`), which Logs Insights queries.
- `Reason` on `ManifestsKept` only: one metric with a `Reason` dimension (Powertools
  `single_metric`, one EMF line per reason) rather than one metric name per reason. Both cost the
  same (one custom metric per reason), but the dimension keeps each value identical to the
  report's `kept` keys, the decision log's `reason` field and the table in docs/design.md, with
  no second spelling to keep in step; a graph can still pick single reasons. Every keep reason is
  emitted, zeros included, so the set of metrics is fixed and known to the dashboard.

Bytes come in two figures, and the names say which (see docs/design.md, "Bytes: nominal and freed"):
`NominalBytes*` is the sum of ECR's `imageSizeInBytes` of the manifests (an upper bound: layers
are shared); `BytesFreed*` counts the config and layer blobs that only deleted manifests
referenced, each once (what storage really loses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .model import DELETE_REASONS, Reason
from .run.state import StopReason
from .validate import MISSING_CHILD

if TYPE_CHECKING:
    from .run.report import Report

NAMESPACE = "EcrSweeper"
SERVICE = "ecr-sweeper"
SERVICE_DIMENSION = "service"  # the name Powertools gives it
FUNCTION_DIMENSION = "FunctionName"
REASON_DIMENSION = "Reason"

COUNT, BYTES, SECONDS = "Count", "Bytes", "Seconds"  # CloudWatch units

REPOSITORIES_SCANNED = "RepositoriesScanned"
MANIFESTS_SCANNED = "ManifestsScanned"
MANIFESTS_PLANNED = "ManifestsPlanned"  # deletions planned (a dry run's "would delete")
MANIFESTS_DELETED = "ManifestsDeleted"  # deletions ECR confirmed
NOMINAL_BYTES_PLANNED = "NominalBytesPlanned"
NOMINAL_BYTES_DELETED = "NominalBytesDeleted"
BYTES_FREED_PLANNED = "BytesFreedPlanned"
BYTES_FREED = "BytesFreed"  # what confirmed deletions freed: "bytes reclaimed"
BYTES_FREED_UNKNOWN = "RepositoriesBytesFreedUnknown"  # left out of the BytesFreed* figures
MANIFESTS_KEPT = "ManifestsKept"  # dimension Reason
DELETE_FAILURES = "DeleteFailures"  # manifests whose delete was tried and not confirmed
FAILURES = "Failures"  # every failure of the report: listing, reading, deleting, pins
RUN_COMPLETED = "RunCompleted"  # 1: the run did all it set out to do (see `run_completed`)
DRY_RUNS = "DryRuns"
REAL_RUNS = "RealRuns"
CIRCUIT_BREAKER_TRIPPED = "CircuitBreakerTripped"
STOPPED_EARLY = "StoppedEarly"  # the time budget (or a pin change) stopped the run
BROKEN_INDEXES = "BrokenIndexes"  # indexes missing a child, found by the post-sweep check
RUN_DURATION = "RunDuration"
# Retention (report `retention`): images a rule expired, and those of them something still holds
# (a pin, a pull, the grace period, a kept index); the rest were deleted with the others.
RETENTION_EXPIRED = "RetentionExpired"
RETENTION_HELD = "RetentionHeld"
# The manifest store (sweeper.store): 1 when a load or save failed this run (it then read from
# ECR as without one), and the stored entries whose bytes did not hash to their digest.
STORE_UNAVAILABLE = "StoreUnavailable"
STORE_REJECTED = "StoreRejected"
# The audit of ECR's own lifecycle policies (report `lifecycle_hazards`): manifests in use that
# ECR will expire. The template alarms on any.
LIFECYCLE_HAZARDS = "LifecycleHazards"
# 1 when the run's principal is not a pull-time update exclusion (report `pull_time_exclusion`
# missing or unknown): its own reads then feed the pull window. The template alarms on it.
PULL_TIME_EXCLUSION_MISSING = "PullTimeExclusionMissing"
# The summary event (sweeper/notify.py): 1 when PutEvents failed, which never fails the run.
SUMMARY_EVENT_FAILURES = "SummaryEventFailures"

# The reasons ManifestsKept is emitted for: every reason a manifest can be kept for.
KEPT_REASONS = tuple(reason.value for reason in Reason if reason not in DELETE_REASONS)


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    unit: str
    value: float


def run_completed(report: Report) -> bool:
    """Whether the run did all it set out to do, which NoSuccessfulRunAlarm watches: a complete
    report or, for a dry run, one that only the circuit breaker stopped. A dry run deletes
    nothing either way; that its real run would stop is CircuitBreakerTripped's to say, and a
    dry-run deployment with a backlog must not page every night for working as intended."""
    if report.complete:
        return True
    return (
        report.dry_run
        and report.stopped_early is StopReason.CIRCUIT_BREAKER
        and not report.all_failures
        and all(r.complete for r in report.repositories)
    )


def run_figures(report: Report) -> list[Figure]:
    """The run's metrics (without dimensions)."""
    planned, deleted = report.planned, report.deleted
    # The breaker has a metric of its own; StoppedEarly is the run that ran out of time, was
    # interrupted or found a new pin.
    stopped = report.stopped_early not in (None, StopReason.CIRCUIT_BREAKER)
    retention = report.retention
    exclusion_in_place = report.pull_time_exclusion is not None and (
        report.pull_time_exclusion.in_place
    )
    return [
        Figure(REPOSITORIES_SCANNED, COUNT, len(report.repositories)),
        Figure(MANIFESTS_SCANNED, COUNT, report.manifests),
        Figure(MANIFESTS_PLANNED, COUNT, planned.manifests),
        Figure(MANIFESTS_DELETED, COUNT, deleted.manifests),
        Figure(NOMINAL_BYTES_PLANNED, BYTES, planned.bytes),
        Figure(NOMINAL_BYTES_DELETED, BYTES, deleted.bytes),
        Figure(BYTES_FREED_PLANNED, BYTES, planned.bytes_freed),
        Figure(BYTES_FREED, BYTES, deleted.bytes_freed),
        Figure(BYTES_FREED_UNKNOWN, COUNT, report.bytes_freed_unknown),
        Figure(DELETE_FAILURES, COUNT, sum(r.delete_failures for r in report.repositories)),
        Figure(FAILURES, COUNT, len(report.all_failures)),
        Figure(RUN_COMPLETED, COUNT, 1 if run_completed(report) else 0),
        Figure(DRY_RUNS, COUNT, 1 if report.dry_run else 0),
        Figure(REAL_RUNS, COUNT, 0 if report.dry_run else 1),
        Figure(CIRCUIT_BREAKER_TRIPPED, COUNT, 1 if report.circuit_breaker else 0),
        Figure(STOPPED_EARLY, COUNT, 1 if stopped else 0),
        Figure(
            BROKEN_INDEXES,
            COUNT,
            sum(1 for problem in report.broken if problem.problem == MISSING_CHILD),
        ),
        Figure(RUN_DURATION, SECONDS, round(report.duration_seconds, 3)),
        # Zeros from a run without retention rules or without policies to audit.
        Figure(RETENTION_EXPIRED, COUNT, retention.expired),
        Figure(RETENTION_HELD, COUNT, sum(retention.held.values())),
        Figure(LIFECYCLE_HAZARDS, COUNT, len(report.lifecycle_hazards)),
        Figure(STORE_UNAVAILABLE, COUNT, 1 if report.store == "unavailable" else 0),
        Figure(STORE_REJECTED, COUNT, report.store_rejected),
        Figure(PULL_TIME_EXCLUSION_MISSING, COUNT, 0 if exclusion_in_place else 1),
    ]


def kept_figures(report: Report) -> list[tuple[str, int]]:
    """(reason, manifests kept for it) for every keep reason, zeros included."""
    kept = report.kept
    return [(reason, kept.get(reason, 0)) for reason in KEPT_REASONS]


ALL_METRICS = (
    REPOSITORIES_SCANNED,
    MANIFESTS_SCANNED,
    MANIFESTS_PLANNED,
    MANIFESTS_DELETED,
    NOMINAL_BYTES_PLANNED,
    NOMINAL_BYTES_DELETED,
    BYTES_FREED_PLANNED,
    BYTES_FREED,
    BYTES_FREED_UNKNOWN,
    MANIFESTS_KEPT,
    DELETE_FAILURES,
    FAILURES,
    RUN_COMPLETED,
    DRY_RUNS,
    REAL_RUNS,
    CIRCUIT_BREAKER_TRIPPED,
    STOPPED_EARLY,
    BROKEN_INDEXES,
    RUN_DURATION,
    RETENTION_EXPIRED,
    RETENTION_HELD,
    LIFECYCLE_HAZARDS,
    STORE_UNAVAILABLE,
    STORE_REJECTED,
    PULL_TIME_EXCLUSION_MISSING,
    SUMMARY_EVENT_FAILURES,
)
