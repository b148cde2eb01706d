"""The rotation: a registry larger than one night's budget is swept whole within about n / k
nights, the cursor kept in the stack's SSM parameter; a missing, unreadable or unwritable cursor
costs the run nothing; dry runs and requests for other repositories leave the real runs' alone."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from conftest import Invoke, LambdaContext
from harness import FakeRegistry
from harness.generated import History, build_history, lost_children, snapshot
from harness.lambda_output import captured, log_lines
from harness.workloads import AwsEvents
from sweeper import cursor
from sweeper.clock import use_clock
from sweeper.cursor import ParameterCursor
from sweeper.model import Image
from sweeper.ports import Deleted, Fetched, Stop
from sweeper.registry import EcrRegistry
from sweeper.run import RepositorySummary, RunOptions, StopReason, Sweeper, next_start, rotate
from sweeper.run.state import RetentionTally
from sweeper.settings import Settings, load

NIGHT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
PARAMETER = "/ecr-sweeper/test/rotation-cursor"
MARGIN = 60.0


# --- where a run starts, and where the next one does ---------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "start_at", "expected_first"),
    [
        ("a cursor on a repository starts there", "c", "c"),
        ("a cursor on a deleted repository starts at the next name", "bb", "c"),
        ("a cursor past the last name wraps round to the first", "zz", "a"),
        ("a cursor before the first name starts at the first", "0", "a"),
    ],
)
def test_a_run_starts_at_its_cursor(scenario: str, start_at: str, expected_first: str) -> None:
    names = ["d", "a", "c", "b"]
    order = rotate(names, NIGHT, start_at)
    assert order[0] == expected_first, scenario
    assert sorted(order) == sorted(names)
    # Whatever the day: the cursor, not the date, decides.
    assert rotate(names, NIGHT + timedelta(days=1), start_at) == order


def summary(name: str, reached: bool) -> RepositorySummary:
    return RepositorySummary(
        repository=name,
        scanned=reached,
        manifests=0,
        planned=0,
        planned_bytes=0,
        deleted=0,
        deleted_bytes=0,
        planned_bytes_freed=0,
        deleted_bytes_freed=0,
        bytes_freed_unknown="",
        already_gone=0,
        delete_failures=0,
        kept=Counter(),
        failures=[],
        complete=reached,
        out_of_time=not reached,
        validated=False,
        broken=[],
        deletions=[],
        retention=RetentionTally(),
        hazards=[],
        spared=[],
    )


@pytest.mark.parametrize(
    ("scenario", "reached", "expected"),
    [
        ("every repository reached: the cursor stays", "abcd", None),
        ("none reached: the cursor stays", "", None),
        ("a prefix reached: the next run starts after it", "ab", "c"),
        ("one reached after a gap: the gap comes first", "abd", "c"),
        ("the first too large for a run: the next one not reached", "bc", "d"),
        ("only the first not reached: it comes first again", "bcd", "a"),
    ],
)
def test_where_the_next_run_starts(scenario: str, reached: str, expected: str | None) -> None:
    order = ["a", "b", "c", "d"]
    summaries = [summary(name, name in reached) for name in order]
    assert next_start(order, summaries) == expected, scenario


# --- a registry larger than one night's budget ---------------------------------------------------


@dataclass
class NightlyBudget:
    """ECR (moto) where every first listing of a repository uses up `cost` of the night's
    `seconds`: a budget counted in repositories, the same however busy the machine is."""

    inner: EcrRegistry
    seconds: float
    cost: float
    listed: set[str] = field(default_factory=set)

    def remaining(self) -> float:
        return self.seconds - self.cost * len(self.listed)

    def images(self, repository: str, stop: Stop | None = None) -> list[Image]:
        self.listed.add(repository)
        return self.inner.images(repository, stop)

    def repositories(self) -> list[str]:
        return self.inner.repositories()

    def repository_arns(self) -> dict[str, str]:
        return self.inner.repository_arns()

    def repository_tags(self, arn: str) -> dict[str, str]:
        return self.inner.repository_tags(arn)

    def manifests(
        self, repository: str, digests: Sequence[str], stop: Stop | None = None
    ) -> Fetched:
        return self.inner.manifests(repository, digests, stop)

    def describe(self, repository: str, digests: Sequence[str]) -> dict[str, Image]:
        return self.inner.describe(repository, digests)

    def lifecycle_policy(self, repository: str) -> str | None:
        return self.inner.lifecycle_policy(repository)

    def delete(self, repository: str, digests: Sequence[str]) -> Deleted:
        return self.inner.delete(repository, digests)

    def blob_mounting(self) -> bool:
        return self.inner.blob_mounting()

    def pull_time_exclusions(self) -> list[str]:
        return self.inner.pull_time_exclusions()

    def register_pull_time_exclusion(self, principal: str) -> None:
        self.inner.register_pull_time_exclusion(principal)


def repository_names(n: int) -> list[str]:
    return [f"team-{i:02}/app" for i in range(n)]


@pytest.fixture
def ssm_cursor(registry: FakeRegistry) -> Iterator[ParameterCursor]:
    ssm = boto3.client("ssm", region_name=registry.region)
    ssm.put_parameter(Name=PARAMETER, Value=cursor.EMPTY, Type="String")
    yield ParameterCursor(ssm, PARAMETER)


def nights(
    registry: FakeRegistry, count: int, rotation: ParameterCursor | None, n: int
) -> list[list[str]]:
    """`count` real runs, a night apart, on a budget of 8 repositories a night (the scan stops
    with a quarter of the time beyond the margin left, for the sweep): the repositories each
    reached, in the order it took them."""
    reached: list[list[str]] = []
    # 8 first listings fit before the scan's margin: 1000 - 100 * 8 = 200 < 60 + 0.25 * 940.
    for night in range(count):
        budget = NightlyBudget(EcrRegistry(registry.client), seconds=1000.0, cost=100.0)
        options = RunOptions(remaining_seconds=budget.remaining, cursor=rotation)
        settings = Settings(dry_run=False, concurrency=1)
        report = Sweeper(budget, settings, NIGHT + timedelta(days=night), options).run()
        taken = [r.repository for r in report.repositories if not r.out_of_time]
        assert report.repositories_reached == len(taken) == 8
        assert report.repositories_left == n - 8
        reached.append(taken)
    return reached


def swept(registry: FakeRegistry, history: History, names: Sequence[str]) -> set[str]:
    return {name for name in names if registry.digests(name) == history.live[name]}


def test_a_registry_larger_than_a_night_is_swept_whole_within_n_over_k_plus_one_nights(
    registry: FakeRegistry, ssm_cursor: ParameterCursor
) -> None:
    n, k = 20, 8
    names = repository_names(n)
    history = build_history(registry, NIGHT, repos=names, rebuilds=2)
    before = snapshot(registry, names)
    limit = math.ceil(n / k) + 1
    reached = nights(registry, limit, ssm_cursor, n)
    # Each night starts where the last stopped: nobody waits for the day's offset to come round.
    order = rotate(names, NIGHT)
    assert reached[0] == order[:k]
    assert reached[1] == order[k : 2 * k]
    assert reached[2] == [*order[2 * k :], *order[: 3 * k - n]]
    assert {name for night in reached[: math.ceil(n / k)] for name in night} == set(names)
    # What is left in the registry: every repository swept, the live trees untouched.
    assert swept(registry, history, names) == set(names)
    assert lost_children(registry, before, snapshot(registry, names)) == []
    assert json.loads(ssm_cursor.client.get_parameter(Name=PARAMETER)["Parameter"]["Value"]) == {
        "next": order[(limit * k) % n]
    }


def test_without_a_cursor_the_same_nights_leave_repositories_unswept(
    registry: FakeRegistry,
) -> None:
    # The day's offset alone moves one repository a night: n - k + 1 nights, not n / k + 1.
    n, k = 20, 8
    names = repository_names(n)
    history = build_history(registry, NIGHT, repos=names, rebuilds=2)
    nights(registry, math.ceil(n / k) + 1, None, n)
    assert len(swept(registry, history, names)) == k + math.ceil(n / k)


# --- the cursor through the handler ---------------------------------------------------------------


REPOS = ("r1", "r2", "r3", "r4", "r5", "r6")
MARGIN_MS = int(MARGIN * 1000)


@pytest.fixture
def deployed(registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """The stack's parameter, as the template creates it, named in the function's environment."""
    monkeypatch.setenv(cursor.CURSOR_PARAMETER_ENV, PARAMETER)
    ssm = boto3.client("ssm", region_name=registry.region)
    ssm.put_parameter(Name=PARAMETER, Value=cursor.EMPTY, Type="String")
    build_history(registry, datetime.now(UTC), repos=REPOS, rebuilds=2)
    return registry


def cursor_value(registry: FakeRegistry) -> str:
    ssm = boto3.client("ssm", region_name=registry.region)
    value: str = ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]
    return value


def short_night(invoke: Invoke, context: LambdaContext, **request: Any) -> dict[str, Any]:
    """A dry run with time for four repositories (each reading of the time uses up 10 s)."""
    context.remaining_ms = MARGIN_MS + 35_000
    context.step_ms = 10_000
    with use_clock(lambda: NIGHT):
        return invoke(scope="orphans", concurrency=1, **request)


def planned_in(report: dict[str, Any]) -> set[str]:
    return {d["repository"] for d in report["deletions"]}


def test_the_next_invocation_starts_where_the_last_one_stopped(
    deployed: FakeRegistry, invoke: Invoke, lambda_context: LambdaContext
) -> None:
    order = rotate(REPOS, NIGHT)
    first = short_night(invoke, lambda_context)
    assert planned_in(first) == set(order[:4])
    assert (first["repositories_reached"], first["repositories_left"]) == (4, 2)
    assert json.loads(cursor_value(deployed)) == {"next": order[4]}
    second = short_night(invoke, lambda_context)  # the same day: the cursor, not the date, moved
    assert planned_in(second) == {*order[4:], *order[:2]}
    assert json.loads(cursor_value(deployed)) == {"next": order[2]}


def test_a_dry_run_on_a_deployment_that_deletes_previews_the_real_run_and_moves_nothing(
    deployed: FakeRegistry,
    invoke: Invoke,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    order = rotate(REPOS, NIGHT)
    boto3.client("ssm", region_name=deployed.region).put_parameter(
        Name=PARAMETER, Value=json.dumps({"next": order[3]}), Type="String", Overwrite=True
    )
    before = snapshot(deployed, REPOS)
    report = short_night(invoke, lambda_context, dry_run=True)
    assert planned_in(report) == {*order[3:], order[0]}  # where the next real run starts
    assert json.loads(cursor_value(deployed)) == {"next": order[3]}
    assert snapshot(deployed, REPOS) == before


def test_a_request_for_other_repositories_neither_reads_nor_moves_the_cursor(
    deployed: FakeRegistry,
    invoke: Invoke,
    lambda_context: LambdaContext,
    aws_events: AwsEvents,
) -> None:
    aws_events.count("before-call.ssm.GetParameter")
    order = rotate(REPOS[:5], NIGHT)
    report = short_night(invoke, lambda_context, exclude_repositories=["r6"])
    assert planned_in(report) == set(order[:4])  # the day's order, not the cursor's
    assert aws_events.calls.get("before-call.ssm.GetParameter", 0) == 0
    assert cursor_value(deployed) == cursor.EMPTY


@pytest.mark.parametrize(
    ("scenario", "value"),
    [
        ("hand-edited", "r4"),
        ("truncated", '{"next": "r'),
        ("not a name", '{"next": 4}'),
        ("missing", None),
    ],
)
def test_an_unreadable_cursor_starts_where_the_day_says_and_is_written_again(
    deployed: FakeRegistry,
    invoke: Invoke,
    lambda_context: LambdaContext,
    scenario: str,
    value: str | None,
) -> None:
    ssm = boto3.client("ssm", region_name=deployed.region)
    if value is None:
        ssm.delete_parameter(Name=PARAMETER)
    else:
        ssm.put_parameter(Name=PARAMETER, Value=value, Type="String", Overwrite=True)
    order = rotate(REPOS, NIGHT)
    with captured() as out:
        report = short_night(invoke, lambda_context)
    assert planned_in(report) == set(order[:4]), scenario
    assert report["failures"] and {f["code"] for f in report["failures"]} == {"TimeBudget"}
    warnings = [line for line in log_lines(out.getvalue()) if line["level"] == "WARNING"]
    assert [w["message"] for w in warnings] == [
        f"rotation cursor {'missing' if value is None else 'unreadable'}: starting where the "
        "day says"
    ], scenario
    assert json.loads(cursor_value(deployed)) == {"next": order[4]}, scenario


@pytest.mark.parametrize("operation", ["GetParameter", "PutParameter"])
def test_a_cursor_ssm_refuses_costs_the_run_nothing_but_its_start(
    deployed: FakeRegistry,
    invoke: Invoke,
    lambda_context: LambdaContext,
    aws_events: AwsEvents,
    operation: str,
) -> None:
    aws_events.fail("ssm", operation, "AccessDeniedException", status=400)
    order = rotate(REPOS, NIGHT)
    with captured() as out:
        report = short_night(invoke, lambda_context)
    assert planned_in(report) == set(order[:4])
    assert (report["repositories_reached"], report["repositories_left"]) == (4, 2)
    assert {f["code"] for f in report["failures"]} == {"TimeBudget"}
    warnings = [line for line in log_lines(out.getvalue()) if line["level"] == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0]["message"].startswith(
        "rotation cursor not read" if operation == "GetParameter" else "rotation cursor not written"
    )
    assert "AccessDeniedException" in warnings[0]["error"]


def test_a_run_that_reaches_everything_leaves_the_cursor_alone(
    deployed: FakeRegistry, invoke: Invoke
) -> None:
    with use_clock(lambda: NIGHT):
        report = invoke(scope="orphans")
    assert report["complete"] is True
    assert (report["repositories_reached"], report["repositories_left"]) == (len(REPOS), 0)
    assert cursor_value(deployed) == cursor.EMPTY


def test_a_deployment_without_a_cursor_parameter_runs_as_before(
    registry: FakeRegistry, invoke: Invoke, lambda_context: LambdaContext
) -> None:
    build_history(registry, datetime.now(UTC), repos=REPOS, rebuilds=2)
    report = short_night(invoke, lambda_context)
    assert planned_in(report) == set(rotate(REPOS, NIGHT)[:4])


def test_the_cursor_follows_the_deployments_selection_and_mode() -> None:
    deployed = load({}, {"DRY_RUN": "false", "REPOSITORIES": "team-*"})

    def client(service: str) -> str:
        return service

    def chosen(request: dict[str, Any]) -> ParameterCursor | None:
        found = cursor.for_run(
            load(request, {"DRY_RUN": "false", "REPOSITORIES": "team-*"}), deployed, "p", client
        )
        assert found is None or isinstance(found, ParameterCursor)
        return found

    scheduled = chosen({})
    assert scheduled is not None and scheduled.writable
    dry = chosen({"dry_run": True, "max_deletions": 10})
    assert dry is not None and not dry.writable
    assert chosen({"repositories": ["team-a"]}) is None
    assert chosen({"exclude_repositories": ["team-b"]}) is None
    assert chosen({"required_repository_tag": "sweep=yes"}) is None
    assert cursor.for_run(deployed, deployed, "", client) is None


def test_a_backlog_too_large_for_memory_is_planned_a_stretch_a_night(
    registry: FakeRegistry, ssm_cursor: ParameterCursor
) -> None:
    # The run stops scanning once its plans hold the limit (memory follows them); the rest waits
    # for the next run, which starts there.
    names = repository_names(6)
    history = build_history(registry, NIGHT, repos=names, rebuilds=2)
    per_repository = {len(history.orphans[name]) for name in names}
    assert len(per_repository) == 1  # the same backlog in each: two repositories fill a night
    limit = per_repository.pop() + 1
    order = rotate(names, NIGHT)
    for night in range(3):
        options = RunOptions(cursor=ssm_cursor, planned_deletions_limit=limit)
        settings = Settings(dry_run=False, concurrency=1)
        report = Sweeper(EcrRegistry(registry.client), settings, NIGHT, options).run()
        reached = [r.repository for r in report.repositories if not r.out_of_time]
        assert reached == order[2 * night : 2 * night + 2]
        assert report.stopped_early is StopReason.PLANNED_LIMIT
        assert report.complete is False
        left = report.all_failures
        assert {f.code for f in left} == {"PlannedDeletionsLimit"}
        assert {f.repository for f in left} == set(names) - set(reached)
    assert swept(registry, history, names) == set(names)
