"""The run's summary event: one per run on the account's default EventBridge bus. An edge: it is
given an EventBridge client, and building the event's detail is pure.

Whoever wants to hear about every run subscribes with an EventBridge rule on `source` EVENT_SOURCE
(the template's `SummaryEmail` does it for an address; docs/operations.md routes it to Slack).
`detail-type` is DETAIL_COMPLETED for every run that returned a report, dry or real, complete or
not, and DETAIL_FAILED for an invocation that failed after its settings were read (invalid
settings fail before anything runs: the FunctionErrorsAlarm says so). The event's `resources`
hold the function's ARN, so a rule can pick one stack's events out of an account with several.

The detail's fields are documented in docs/operations.md ("The summary event"); its counts take
the shape users of Harbor's tag-retention webhook know (`total`, `retained`, `deleted`).

Publishing is best effort: a failed PutEvents is logged and counted (metric
`SummaryEventFailures`), and never fails the run: the report, the logs and the metrics are the
record, the event a courtesy to subscribers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .run import HELD_BY_CIRCUIT_BREAKER, Report

log = logging.getLogger("ecr_sweeper")

EVENT_SOURCE = "ecr-sweeper"
DETAIL_COMPLETED = "Sweep Completed"
DETAIL_FAILED = "Sweep Failed"
EVENT_BUS = "default"
PUT_EVENTS_ACTION = "events:PutEvents"  # the template grants it on the default bus only
TOP_REPOSITORIES = 50  # listed one by one, the most bytes first; the rest are summed
# EventBridge refuses an event over 256 KB (its whole entry). The detail stays far below: 50
# repositories of at most 256-character names, and an error message cut to MAX_ERROR_CHARS.
MAX_EVENT_BYTES = 256 * 1024
MAX_ERROR_CHARS = 2000


def _figures(
    manifests: int, planned: int, deleted: int, planned_bytes: int, freed: int | None
) -> dict[str, Any]:
    return {
        "manifests": manifests,
        "planned": planned,
        "deleted": deleted,
        "bytes": planned_bytes,
        "bytes_freed": freed,
    }


def repositories_section(report: Report) -> dict[str, Any]:
    """`top`: the TOP_REPOSITORIES repositories with the most bytes (freed, then nominal) planned,
    by name on a tie; `rest`: the others summed (`repositories` of them). A repository's
    `bytes_freed` is null when unknown (it is then left out of the rest's sum)."""
    ranked = sorted(
        report.repositories,
        key=lambda r: (-(r.planned_bytes_freed or 0), -r.planned_bytes, r.repository),
    )
    top, rest = ranked[:TOP_REPOSITORIES], ranked[TOP_REPOSITORIES:]
    return {
        "count": len(report.repositories),
        "top": [
            {
                "repository": r.repository,
                **_figures(
                    r.manifests, r.planned, r.deleted, r.planned_bytes, r.planned_bytes_freed
                ),
                "complete": r.complete,
            }
            for r in top
        ],
        "rest": {
            "repositories": len(rest),
            **_figures(
                sum(r.manifests for r in rest),
                sum(r.planned for r in rest),
                sum(r.deleted for r in rest),
                sum(r.planned_bytes for r in rest),
                sum(r.planned_bytes_freed or 0 for r in rest),
            ),
        },
    }


def completed_detail(
    report: Report,
    *,
    run_id: str,
    dashboard_url: str | None,
) -> dict[str, Any]:
    """The detail of a `Sweep Completed` event (fields: docs/operations.md)."""
    planned, deleted = report.planned, report.deleted
    breaker = report.circuit_breaker
    return {
        "run_id": run_id,
        "dry_run": report.dry_run,
        "complete": report.complete,
        "stopped_early": report.stopped_early.value if report.stopped_early else None,
        # Harbor's tag-retention shape: manifests seen, left in place, deleted (confirmed).
        "total": report.manifests,
        "retained": report.manifests - deleted.manifests,
        "deleted": deleted.manifests,
        "planned": planned.manifests,
        "bytes": {
            "planned": planned.bytes,
            "planned_freed": planned.bytes_freed,
            "deleted": deleted.bytes,
            "deleted_freed": deleted.bytes_freed,
            "freed_unknown_repositories": report.bytes_freed_unknown,
        },
        "held_by": HELD_BY_CIRCUIT_BREAKER if breaker else None,
        "circuit_breaker": (
            {"planned": breaker.planned, "max_deletions": breaker.max_deletions}
            if breaker
            else None
        ),
        "retention": report.retention.as_dict(),
        "hazards": len(report.lifecycle_hazards),
        "pull_time_exclusion": (
            report.pull_time_exclusion.state.value if report.pull_time_exclusion else None
        ),
        "failures": len(report.all_failures),
        "repositories": repositories_section(report),
        "dashboard_url": dashboard_url,
    }


def failed_detail(
    error: BaseException, *, run_id: str, dry_run: bool, dashboard_url: str | None
) -> dict[str, Any]:
    """The detail of a `Sweep Failed` event: the invocation raised after its settings loaded."""
    return {
        "run_id": run_id,
        "dry_run": dry_run,
        "complete": False,
        "error": type(error).__name__,
        "message": str(error)[:MAX_ERROR_CHARS],
        "dashboard_url": dashboard_url,
    }


def entry(detail_type: str, detail: dict[str, Any], resource: str | None) -> dict[str, Any]:
    """The PutEvents entry. Over MAX_EVENT_BYTES (it should never be), the repositories' list
    goes first: the totals are what a subscriber needs."""
    document = {
        "Source": EVENT_SOURCE,
        "DetailType": detail_type,
        "Detail": json.dumps(detail, separators=(",", ":")),
        "EventBusName": EVENT_BUS,
        "Resources": [resource] if resource else [],
    }
    if len(json.dumps(document).encode()) > MAX_EVENT_BYTES and "repositories" in detail:
        trimmed = {**detail, "repositories": {**detail["repositories"], "top": []}}
        document["Detail"] = json.dumps(trimmed, separators=(",", ":"))
    return document


def publish(client: Any, detail_type: str, detail: dict[str, Any], resource: str | None) -> bool:
    """Put one event; True when EventBridge accepted it. A failure (a refused call, a failed
    entry) is logged and returned as False, never raised."""
    try:
        answer = client.put_events(Entries=[entry(detail_type, detail, resource)])
    except Exception as exc:  # best effort: any failure is logged, not raised
        log.warning(
            "summary event not published",
            extra={"detail_type": detail_type, "error": f"{type(exc).__name__}: {exc}"},
        )
        return False
    if answer.get("FailedEntryCount", 0):
        failed = (answer.get("Entries") or [{}])[0]
        log.warning(
            "summary event not published",
            extra={
                "detail_type": detail_type,
                "error": f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}",
            },
        )
        return False
    return True
