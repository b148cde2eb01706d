"""The run's retention and audit figures, from the report sections the lead's run fills in."""

from __future__ import annotations

from typing import Any

from sweeper import metrics

REPORT: dict[str, Any] = {  # the keys run_figures reads of every report, all zero
    "repositories": 0,
    "manifests": 0,
    "planned": {"manifests": 0, "bytes": 0, "bytes_freed": 0},
    "deleted": {"manifests": 0, "bytes": 0, "bytes_freed": 0},
    "bytes_freed_unknown": 0,
    "delete_failures": 0,
    "failures": [],
    "complete": True,
    "dry_run": True,
    "duration_seconds": 1.0,
}
HAZARD = {
    "repository": "app",
    "digest": "sha256:" + "0" * 64,
    "tags": ["ci-1"],
    "rule": 1,
    "reason": "pinned",
    "cause": "pinned by env:app@sha256:...; rule 1 expires it",
}


def figures(report: dict[str, Any]) -> dict[str, float]:
    return {f.name: f.value for f in metrics.run_figures(report)}


def test_expired_held_and_hazards_come_from_the_report_sections() -> None:
    report = {
        **REPORT,
        "retention": {"expired": 7, "deleted": 4, "held": {"pinned": 2, "recently-pulled": 1}},
        "lifecycle_hazards": [HAZARD, {**HAZARD, "reason": "other-tag"}],
    }
    got = figures(report)
    assert (got["RetentionExpired"], got["RetentionHeld"], got["LifecycleHazards"]) == (7, 3, 2)


def test_a_run_without_retention_or_audit_reports_zeros_rather_than_nothing() -> None:
    got = figures(REPORT)
    assert (got["RetentionExpired"], got["RetentionHeld"], got["LifecycleHazards"]) == (0, 0, 0)
    assert set(got) == set(metrics.ALL_METRICS) - {metrics.MANIFESTS_KEPT}
