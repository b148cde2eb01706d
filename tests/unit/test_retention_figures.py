"""The run's retention and audit figures, from the report's retention tally and hazards."""

from __future__ import annotations

from dataclasses import replace

from sweeper import metrics
from sweeper.audit import Hazard, HazardReason
from sweeper.model import Decision, Kind, Reason, Verdict
from sweeper.run import Report, RepositoryRun


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


HAZARD = Hazard("app", digest(0), ("ci-1",), 1, HazardReason.PINNED, "pinned by env; rule 1")


def figures(report: Report) -> dict[str, float]:
    return {f.name: f.value for f in metrics.run_figures(report)}


def test_expired_held_and_hazards_come_from_the_report() -> None:
    repo = RepositoryRun("app")
    verdicts = [(Verdict.DELETE, Reason.EXPIRED)] * 4 + [
        (Verdict.KEEP, Reason.PINNED),
        (Verdict.KEEP, Reason.PINNED),
        (Verdict.KEEP, Reason.PULLED),
    ]
    for n, (verdict, reason) in enumerate(verdicts):
        repo.decisions[digest(n)] = Decision(digest(n), Kind.INDEX, verdict, reason, "rule 1")
        repo.expired.add(digest(n))
    repo.hazards = [HAZARD, replace(HAZARD, reason=HazardReason.OTHER_TAG)]
    report = Report(dry_run=True, repositories=[repo.summary(0)])
    got = figures(report)
    assert (got["RetentionExpired"], got["RetentionHeld"], got["LifecycleHazards"]) == (7, 3, 2)
    assert report.as_dict()["retention"] == {
        "expired": 7,
        "deleted": 4,
        "held": {"pinned": 2, "recently-pulled": 1},
    }


def test_a_run_without_retention_or_audit_reports_zeros_rather_than_nothing() -> None:
    got = figures(Report(dry_run=True))
    assert (got["RetentionExpired"], got["RetentionHeld"], got["LifecycleHazards"]) == (0, 0, 0)
    # ManifestsKept has a figure per reason; SummaryEventFailures is counted by the handler,
    # once it has put the summary event (the template tests see both emitted).
    assert set(got) == set(metrics.ALL_METRICS) - {
        metrics.MANIFESTS_KEPT,
        metrics.SUMMARY_EVENT_FAILURES,
    }
