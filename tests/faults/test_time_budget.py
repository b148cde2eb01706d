"""The Lambda's time budget: stop starting work under the margin, leave everything consistent,
say so, and cover every repository over successive nights."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, OLD, Invoke, LambdaContext
from harness import FakeRegistry
from harness.faults import Attempt, Wire, fast_retries, intercept_clients
from harness.fresh import fresh_registry
from harness.generated import History, build_history, lost_children, snapshot
from sweeper import ports
from sweeper import registry as ecr
from sweeper.clock import use_clock
from sweeper.model import Scope
from sweeper.registry import EcrRegistry, client_config, make_client
from sweeper.run import (
    SWEEP_SHARE,
    TIME_MARGIN_SECONDS,
    Report,
    RunOptions,
    StopReason,
    Sweeper,
    context,
    rotate,
)
from sweeper.settings import Settings

REPOS = ("r1", "r2", "r3", "r4", "r5", "r6")
MARGIN_MS = int(TIME_MARGIN_SECONDS * 1000)
NIGHT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def test_rotation_starts_one_repository_further_each_day() -> None:
    names = ["a", "b", "c", "d"]
    starts = [rotate(names, NIGHT + timedelta(days=d))[0] for d in range(8)]
    assert sorted(starts[:4]) == names  # four days, four different first repositories
    assert starts[4:] == starts[:4]  # and round again
    assert all(sorted(rotate(names, NIGHT + timedelta(days=d))) == names for d in range(8))
    assert rotate([], NIGHT) == []
    # The same whatever the hour: the offset is the UTC day.
    assert rotate(names, NIGHT) == rotate(names, NIGHT.replace(hour=23, minute=59))


@pytest.mark.parametrize(("n", "k"), [(1, 1), (5, 1), (7, 3), (10, 9), (12, 12)])
def test_runs_covering_k_of_n_reach_every_repository_within_n_minus_k_plus_one_nights(
    n: int, k: int
) -> None:
    names = [f"repo-{i:02}" for i in range(n)]
    for first in range(n):  # whatever night the series starts
        nights = [NIGHT + timedelta(days=first + d) for d in range(n - k + 1)]
        covered = {name for night in nights for name in rotate(names, night)[:k]}
        assert covered == set(names)


def history_of(registry: FakeRegistry) -> History:
    return build_history(registry, datetime.now(UTC), repos=REPOS, rebuilds=3)


def test_a_dry_run_out_of_time_stops_scanning_and_says_which_repositories(
    invoke: Invoke, lambda_context: LambdaContext
) -> None:
    # Each reading of the remaining time uses up 10 s: four repositories get scanned.
    lambda_context.remaining_ms = MARGIN_MS + 35_000
    lambda_context.step_ms = 10_000
    with fresh_registry() as registry:
        history_of(registry)
        started = datetime.now(UTC)
        with use_clock(lambda: started):
            report = invoke(dry_run=True, scope="orphans", concurrency=1)
    order = rotate(sorted(REPOS), started)
    skipped = [f["repository"] for f in report["failures"]]
    assert skipped == order[4:]
    assert report["complete"] is False
    assert report["stopped_early"] == "time budget"
    assert {f["code"] for f in report["failures"]} == {"TimeBudget"}
    assert {d["repository"] for d in report["deletions"]} == set(order[:4])


def per_call(context: LambdaContext, ms: int) -> Wire:
    """A wire on which every ECR call the function makes uses up `ms` of its time."""

    def spend(attempt: Attempt) -> None:
        context.spend(ms)

    return Wire(on_attempt=spend)


def test_a_real_run_out_of_time_deletes_what_it_can_and_the_next_run_finishes(
    invoke: Invoke, lambda_context: LambdaContext
) -> None:
    with fresh_registry() as registry:
        history = history_of(registry)
        before = snapshot(registry, REPOS)
        lambda_context.remaining_ms = MARGIN_MS + 12_000  # about a quarter of what all takes
        with intercept_clients(per_call(lambda_context, 1_000)):
            report = invoke(dry_run=False, scope="orphans", concurrency=1)
        after = snapshot(registry, REPOS)
        assert lost_children(registry, before, after) == []
        for repo in REPOS:
            assert history.live[repo] <= after[repo]
        assert report["complete"] is False
        assert report["stopped_early"] == "time budget"
        skipped = {f["repository"] for f in report["failures"]}
        assert {f["code"] for f in report["failures"]} == {"TimeBudget"}
        assert 0 < len(skipped) < len(REPOS)
        assert all(after[r] == before[r] for r in skipped)
        # The scan left time for the sweep (SWEEP_SHARE): what it reached, it deleted.
        gone = sum(len(before[r] - after[r]) for r in REPOS)
        assert report["deleted"]["manifests"] == gone > 0
        assert report["kept"]["not-reached"] > 0
        # The next run, with the time it needs, finishes the job.
        lambda_context.remaining_ms = 900_000
        with intercept_clients(per_call(lambda_context, 1_000)):
            report = invoke(dry_run=False, scope="orphans")
        assert report["complete"] is True
        for repo in REPOS:
            assert registry.digests(repo) == history.live[repo]


def test_a_batch_under_way_when_time_runs_out_is_finished_and_no_other_starts(
    invoke: Invoke, lambda_context: LambdaContext
) -> None:
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=("app",), rebuilds=4)
        before = snapshot(registry, ["app"])
        # The pull-time exclusion check (list, register) and planning cost 5 calls; the first
        # batch's re-read crosses the margin.
        lambda_context.remaining_ms = MARGIN_MS + 6_500
        wire = per_call(lambda_context, 1_000)
        with intercept_clients(wire):
            report = invoke(dry_run=False, scope="orphans", concurrency=1)
        after = snapshot(registry, ["app"])
        assert lost_children(registry, before, after) == []
        operations = [a.operation for a in wire.log]
        # The batch that was re-read was deleted too, and then nothing more was started.
        assert operations[-2:] == ["DescribeImages", "BatchDeleteImage"]
        assert wire.log[-1].digests == wire.log[-2].digests
        assert before["app"] - after["app"] == set(wire.log[-1].digests)
        assert report["deleted"]["manifests"] == len(wire.log[-1].digests)
        assert report["complete"] is False
        assert report["stopped_early"] == "time budget"
        assert report["kept"]["not-reached"] > 0
        assert history.live["app"] <= after["app"]


class Clock:
    """A Lambda's remaining time that passes only as ECR calls are made (one second each)."""

    def __init__(self, seconds: float) -> None:
        self.remaining = seconds

    def __call__(self) -> float:
        return self.remaining

    def tick(self, attempt: Attempt) -> None:
        self.remaining -= 1.0


def test_nightly_runs_that_cannot_cover_everything_reach_every_repository() -> None:
    """Each night has time to scan half of the repositories and delete one batch; the same
    date-less order would sweep the same repository every night. Rotation moves the start."""
    settings = Settings(dry_run=False, scope=Scope.ORPHANS, concurrency=1)
    with fresh_registry() as registry:
        history = history_of(registry)
        scanned: list[set[str]] = []
        for night in range(3 * len(REPOS)):
            clock = Clock(TIME_MARGIN_SECONDS + 10)
            wire = Wire(on_attempt=clock.tick)
            client: Any = boto3.client("ecr", region_name="us-east-1", config=client_config())
            wire.attach(client)
            sweeper = Sweeper(
                EcrRegistry(client),
                settings,
                NIGHT + timedelta(days=night),
                RunOptions(remaining_seconds=clock, principal=FUNCTION_PRINCIPAL),
            )
            result = sweeper.run()
            scanned.append({r.repository for r in result.repositories if r.scanned})
            assert 1 <= len(scanned[-1]) < len(REPOS), "the budget should cover some, not all"
            if all(registry.digests(r) == history.live[r] for r in REPOS):
                break
        for repo in REPOS:
            assert registry.digests(repo) == history.live[repo], f"{repo} never swept"
        assert len({frozenset(s) for s in scanned}) > 1, "every night scanned the same ones"


def sweep_with_budget(seconds: float) -> tuple[Sweeper, Wire, Any]:
    settings = Settings(dry_run=False, scope=Scope.ORPHANS, concurrency=1)
    with fresh_registry() as registry:
        history_of(registry)
        clock = Clock(TIME_MARGIN_SECONDS + seconds)
        wire = Wire(on_attempt=clock.tick)
        client: Any = boto3.client("ecr", region_name="us-east-1", config=client_config())
        wire.attach(client)
        sweeper = Sweeper(EcrRegistry(client), settings, NIGHT, RunOptions(remaining_seconds=clock))
        return sweeper, wire, sweeper.run()


def test_the_scan_stops_early_enough_to_leave_time_for_deleting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 20 s of calls beyond the margin: enough to scan all but one repository while keeping a
    # quarter for deleting (the figure depends on how many calls a scan makes).
    sweeper, wire, result = sweep_with_budget(20)
    assert sweeper.ctx.budget.scan_margin == TIME_MARGIN_SECONDS + SWEEP_SHARE * 20
    assert result.stopped_early is StopReason.TIME_BUDGET
    assert [f.code for f in result.failures] == []
    assert [r.failures[0].code for r in result.repositories if not r.scanned] == ["TimeBudget"]
    # Without the share kept for deleting, the scan eats the budget and fewer batches go.
    monkeypatch.setattr(context, "SWEEP_SHARE", 0.0)
    _, greedy, greedy_result = sweep_with_budget(20)
    assert all(r.scanned for r in greedy_result.repositories)
    assert 0 < greedy.sent["BatchDeleteImage"] < wire.sent["BatchDeleteImage"]


def test_a_scan_that_runs_out_of_time_between_pages_is_abandoned(
    invoke: Invoke, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository too large to list within the margin: no partial listing is trusted."""
    monkeypatch.setattr(ecr, "PAGE_SIZE", 5)
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=("app",), rebuilds=6)
        before = registry.digests("app")
        lambda_context.remaining_ms = MARGIN_MS + 5_000
        wire = per_call(lambda_context, 1_000)
        with intercept_clients(wire):
            report = invoke(dry_run=False, scope="orphans")
        assert registry.digests("app") == before
        assert wire.calls["DescribeImages"] < len(before) / 5  # it stopped before the end
        assert wire.calls["BatchDeleteImage"] == 0
        assert report["complete"] is False
        assert report["stopped_early"] == "time budget"
        [failure] = report["failures"]
        assert (failure["repository"], failure["code"]) == ("app", "TimeBudget")
        assert "between pages" in failure["message"]
        # With time, the same repository is listed page by page to the end and swept.
        lambda_context.remaining_ms = 900_000
        invoke(dry_run=False, scope="orphans")
        assert registry.digests("app") == history.live["app"]


def test_a_scan_that_runs_out_of_time_between_manifest_fetches_is_abandoned(
    invoke: Invoke, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pairs(items: Any, size: int = 2) -> Any:
        for start in range(0, len(items), size):
            yield list(items[start : start + size])

    monkeypatch.setattr(ecr, "_batches", pairs)  # many BatchGetImage calls per repository
    with fresh_registry() as registry:
        build_history(registry, datetime.now(UTC), repos=("app",), rebuilds=6)
        before = registry.digests("app")
        lambda_context.remaining_ms = MARGIN_MS + 5_000
        wire = per_call(lambda_context, 1_000)
        with intercept_clients(wire):
            report = invoke(dry_run=False, scope="orphans")
        assert registry.digests("app") == before
        assert wire.calls["BatchDeleteImage"] == 0
        [failure] = report["failures"]
        assert (failure["code"], failure["message"]) == (
            "TimeBudget",
            "BatchGetImage: TimeBudget: stopped between batches",
        )
        assert report["stopped_early"] == "time budget"


# --- a repository the run has no time or room for, and a scan stopped between its reads -----


def run_over(registry: FakeRegistry, wire: Wire | None = None, **options: Any) -> Report:
    """One real run over `registry` (moto), driven as the edges drive it."""
    settings = Settings(dry_run=False, scope=Scope.ORPHANS, concurrency=1)
    run_options = RunOptions(principal=FUNCTION_PRINCIPAL, **options)
    with intercept_clients(wire or Wire()), fast_retries():
        return Sweeper(EcrRegistry(make_client()), settings, NOW, run_options).run()


def failures_of(report: Report) -> list[tuple[str, str, str, str]]:
    return [(f.repository, f.digest, f.code, f.message) for f in report.all_failures]


TIME_UP = "the time budget ran out first"


@dataclass(frozen=True)
class Unscanned:
    options: dict[str, Any]
    code: str
    message: str
    stopped: StopReason
    left: int  # how many of the two repositories are not scanned


UNSCANNED = {
    "the time budget ran out before the scan": Unscanned(
        {"remaining_seconds": lambda: 0.0},
        "TimeBudget",
        f"not scanned: {TIME_UP}",
        StopReason.TIME_BUDGET,
        2,
    ),
    "the time budget ran out before the audit": Unscanned(
        {"remaining_seconds": lambda: 0.0, "audit_only": True},
        "TimeBudget",
        f"not audited: {TIME_UP}",
        StopReason.TIME_BUDGET,
        2,
    ),
    "an operator stopped the run before the scan": Unscanned(
        {"interrupted": lambda: True},
        "Interrupted",
        "not scanned: the run was interrupted first",
        StopReason.INTERRUPTED,
        2,
    ),
    "an operator stopped the run before the audit": Unscanned(
        {"interrupted": lambda: True, "audit_only": True},
        "Interrupted",
        "not audited: the run was interrupted first",
        StopReason.INTERRUPTED,
        2,
    ),
    "the first repository's plan filled the run's planned deletions": Unscanned(
        {"planned_deletions_limit": 1},
        "PlannedDeletionsLimit",
        "not scanned: the run holds 1 planned deletions already",
        StopReason.PLANNED_LIMIT,
        1,
    ),
}


@pytest.mark.parametrize("case", UNSCANNED.values(), ids=UNSCANNED.keys())
def test_a_repository_the_run_leaves_unscanned_deletes_nothing_and_says_why(
    registry: FakeRegistry, case: Unscanned
) -> None:
    for name in ("web", "api"):
        registry.push_buildx(name, tag="latest", pushed_at=OLD)
        registry.push_buildx(name, tag="latest", pushed_at=OLD)
    before = {name: registry.digests(name) for name in ("web", "api")}

    report = run_over(registry, **case.options)

    left = [r.repository for r in report.repositories if not r.scanned]
    assert len(left) == case.left
    for name in left:
        assert registry.digests(name) == before[name]
    # Each one left says so, with no digest: the repository, not a manifest of it, was left.
    assert failures_of(report) == [(name, "", case.code, case.message) for name in left]
    # The run says it stopped early, and why: the next run starts where this one stopped.
    assert report.stopped_early is case.stopped
    assert report.complete is False


STOPS: dict[str, tuple[str, StopReason]] = {
    "the time budget": ("TimeBudget", StopReason.TIME_BUDGET),
    "an operator's stop": ("Interrupted", StopReason.INTERRUPTED),
}


@pytest.mark.parametrize("stop", STOPS, ids=STOPS.keys())
def test_a_scan_stopped_between_its_reads_keeps_the_repository_and_says_why(
    registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """Between two of the scan's manifest reads, the run's time ran out or its operator
    stopped it: what the repository holds is not all known, so it deletes nothing."""
    for _ in range(3):
        registry.push_buildx("app", tag="latest", pushed_at=OLD, fast=True)
    before = registry.digests("app")
    monkeypatch.setattr(ports, "BATCH_SIZE", 2)  # several reads of the scan's own
    wire = Wire()

    def read_once() -> bool:
        return wire.calls["BatchGetImage"] > 0

    code, reason = STOPS[stop]
    options: dict[str, Any] = (
        {"remaining_seconds": lambda: 0.0 if read_once() else 900.0}
        if code == "TimeBudget"
        else {"interrupted": read_once}
    )
    report = run_over(registry, wire, **options)

    assert registry.digests("app") == before
    assert wire.calls["BatchDeleteImage"] == 0
    assert failures_of(report) == [
        ("app", "", code, f"BatchGetImage: {code}: stopped between batches")
    ]
    assert report.stopped_early is reason
    [repo] = report.repositories
    assert repo.kept == {"unreadable": len(before)}
