"""Throttling storms: botocore's real retries ride them out, and the run ends as a calm one does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings

from conftest import Invoke
from harness.faults import Wire, fast_retries, intercept_clients, throttle_storm
from harness.fresh import fresh_registry
from harness.generated import (
    Model,
    Oracle,
    broken_promises,
    build_history,
    lost_children,
    registries,
    seed_into,
    snapshot,
)
from sweeper import ports
from sweeper import registry as ecr

SHARED_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
REQUEST: dict[str, Any] = {"dry_run": False, "scope": "orphans"}


def figures(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("complete", "manifests", "planned", "deleted", "already_gone", "kept", "failures")
    return {k: report[k] for k in keys}


def test_a_throttling_storm_ends_where_a_calm_run_ends(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small pages and more than one delete batch per wave: every kind of call gets throttled.
    monkeypatch.setattr(ecr, "PAGE_SIZE", 7)
    monkeypatch.setattr(ecr, "BATCH_SIZE", 5)
    monkeypatch.setattr(ports, "BATCH_SIZE", 5)
    now = datetime.now(UTC)
    outcomes: list[tuple[dict[str, set[str]], dict[str, Any], Wire, float]] = []
    for storm in (False, True):
        with fresh_registry() as registry:
            history = build_history(registry, now, rebuilds=6)
            before = snapshot(registry, history.repos)
            wire = Wire(*([throttle_storm(share=3)] if storm else []))
            with intercept_clients(wire), fast_retries() as sleeps:
                report = invoke(**REQUEST)
            after = snapshot(registry, history.repos)
            assert lost_children(registry, before, after) == []
            for repo in history.repos:
                assert after[repo] == history.live[repo]
            outcomes.append((after, figures(report), wire, sleeps.seconds))
    (calm_after, calm_report, calm_wire, _), (after, report, wire, slept) = outcomes
    assert after == calm_after
    assert report == calm_report
    assert report["complete"] is True
    # The storm was real: about a third of the attempts throttled, on every operation, and
    # botocore retried each one (same logical calls, more HTTP attempts, back-off asked for).
    assert wire.calls == calm_wire.calls
    throttled = {key.split(":")[0] for key in wire.faults}
    assert throttled == {
        "DescribeRepositories",
        "DescribeImages",
        "BatchGetImage",
        "BatchDeleteImage",
        "GetLifecyclePolicy",  # the audit's read, one per repository
        # Before the first read, the run's principal among the pull-time exclusions: listed,
        # and registered on the first run.
        "ListPullTimeUpdateExclusions",
        "RegisterPullTimeUpdateExclusion",
    }
    total = sum(wire.attempts.values())
    assert sum(wire.faults.values()) == total - sum(wire.calls.values())
    assert 0.2 < sum(wire.faults.values()) / total < 0.45
    assert slept > 0


@SHARED_FIXTURES
@given(model=registries())
def test_throttling_storms_change_nothing_on_random_registries(
    model: Model, invoke: Invoke
) -> None:
    note(model.describe())
    oracle = Oracle(model)
    with fresh_registry() as registry:
        seed_into(registry, model, datetime.now(UTC))
        repos = model.repositories
        before = snapshot(registry, repos)
        with intercept_clients(Wire(throttle_storm(share=2))), fast_retries():
            report = invoke(**REQUEST, pins=model.pins)
        after = snapshot(registry, repos)
        assert broken_promises(oracle, before, after) == []
        for repo in repos:
            assert after[repo] == before[repo] - oracle.garbage(repo, before[repo], "orphans")
        assert report["complete"] is True, report["failures"]
        assert report["deleted"]["manifests"] == sum(len(before[r] - after[r]) for r in repos)
