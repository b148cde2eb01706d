"""Reading is pulling (facts §10): the sweeper's own reads stay out of its pull window.

The harness plays ECR: every BatchGetImage refreshes `lastRecordedPullTime` of what it returns,
unless the caller is a pull-time update exclusion. These scenarios run the handler night after
night (the clock moved with freezegun, which the harness's pull times follow too) and check what
is left in the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from conftest import FUNCTION_PRINCIPAL, NOW, OLD, Invoke
from harness import BuildxPush, FakeRegistry
from harness.faults import Attempt, Wire, intercept_clients
from harness.fresh import fresh_registry
from harness.lambda_output import captured, emf_metrics
from sweeper import metrics

REPO = "app"
NIGHT = timedelta(days=1)
CI_ROLE = "arn:aws:iam::123456789012:role/ci-scanner"


def night(n: int) -> Any:
    """The n-th night's run, a day apart (the first night is the suite's NOW)."""
    return freeze_time(NOW + n * NIGHT)


def moved_tag(registry: FakeRegistry) -> tuple[BuildxPush, BuildxPush]:
    """`latest` pushed twice a month ago: the first tree is an orphan of three manifests."""
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(hours=1))
    return old, new


@pytest.fixture
def refusing_registry(request: pytest.FixtureRequest) -> Iterator[FakeRegistry]:
    """A registry whose exclusion calls are refused as the parameter says."""
    with fresh_registry(exclusion_api=request.param) as registry:
        yield registry


def test_the_readmes_rollout_two_dry_nights_then_a_real_night_deletes_what_was_planned(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old, new = moved_tag(registry)
    planned = []
    for n in (0, 1):
        with night(n):
            report = invoke(dry_run=True)
        planned.append({d["digest"] for d in report["deletions"]})
        assert registry.digests(REPO) == old.all | new.all
    assert planned == [old.all, old.all]
    with night(2):
        report = invoke(dry_run=False)
    assert report["pull_time_exclusion"] == "registered"  # by the first dry night
    assert {d["digest"] for d in report["deletions"]} == old.all
    assert registry.digests(REPO) == new.all
    # The dry runs read the old tree, and nobody else pulled it: its pull time never moved.
    assert registry.exclusions() == {FUNCTION_PRINCIPAL}


def test_without_the_exclusion_the_dry_nights_reads_hold_everything_they_read(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What this project did before: a deployment that may not register, and none registered."""
    monkeypatch.setenv("REGISTER_PULL_TIME_EXCLUSION", "false")
    old, new = moved_tag(registry)
    with night(0):
        dry = invoke(dry_run=True)
    assert {d["digest"] for d in dry["deletions"]} == old.all
    with night(1):
        real = invoke(dry_run=False)
    assert real["pull_time_exclusion"] == "missing"
    assert any("pull_time_exclusion missing" in w for w in real["warnings"])
    # The dry night's reads were pulls: the real night keeps all it read as recently pulled.
    assert real["deleted"]["manifests"] == 0
    assert registry.digests(REPO) == old.all | new.all
    assert real["kept"]["recently-pulled"] >= 1


def test_a_build_untagged_after_a_night_goes_the_next_night(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    first = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    with night(0):
        report = invoke(dry_run=False)  # reads the tagged index: nothing to delete
    assert report["deleted"]["manifests"] == 0
    with night(0):
        second = registry.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
    with night(1):
        report = invoke(dry_run=False)
    assert registry.digests(REPO) == second.all
    assert report["deleted"]["manifests"] == len(first.all)


def test_a_build_a_workload_pulled_two_days_ago_stays(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old, new = moved_tag(registry)
    registry.pull(REPO, old.index, NOW - 2 * NIGHT)
    with night(0):
        report = invoke(dry_run=False)
    assert registry.digests(REPO) == old.all | new.all
    assert report["kept"]["recently-pulled"] == 1
    assert report["kept"]["listed-by-kept-index"] == len(old.all) - 1 + len(new.all) - 1


def test_an_exclusion_already_registered_is_used_not_rewritten(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    registry.exclude(CI_ROLE)  # a scanner someone excluded: its pulls never count
    registry.exclude(FUNCTION_PRINCIPAL)
    _old, new = moved_tag(registry)
    wire = Wire()
    with night(0), intercept_clients(wire):
        report = invoke(dry_run=False)
    assert wire.calls["ListPullTimeUpdateExclusions"] == 1
    assert wire.calls["RegisterPullTimeUpdateExclusion"] == 0
    assert report["pull_time_exclusion"] == "registered"
    assert report["pull_time_exclusions"] == {
        "principal": FUNCTION_PRINCIPAL,
        "others": 1,
        "detail": "",
    }
    assert registry.exclusions() == {CI_ROLE, FUNCTION_PRINCIPAL}
    assert registry.digests(REPO) == new.all


def test_the_first_run_registers_its_role_before_its_first_read(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old, _ = moved_tag(registry)
    wire = Wire()
    with night(0), intercept_clients(wire):
        report = invoke(dry_run=True)
    operations = [attempt.operation for attempt in wire.log]
    first_read = operations.index("BatchGetImage")
    assert operations.index("ListPullTimeUpdateExclusions") < first_read
    assert operations.index("RegisterPullTimeUpdateExclusion") < first_read
    assert operations.count("RegisterPullTimeUpdateExclusion") == 1
    assert report["pull_time_exclusion"] == "registered-now"
    assert registry.last_pulled(REPO, old.index) is None  # read, and not recorded as pulled


@pytest.mark.parametrize(
    ("refusing_registry", "state"),
    [("register-refused", "missing"), ("refused", "unknown")],
    indirect=["refusing_registry"],
    ids=["registering refused", "even the list refused"],
)
def test_a_refused_exclusion_is_reported_and_alarmed_and_the_run_goes_on(
    refusing_registry: FakeRegistry, invoke: Invoke, state: str
) -> None:
    registry = refusing_registry
    _old, new = moved_tag(registry)
    with night(0), captured() as out:
        report = invoke(dry_run=False)
    assert report["pull_time_exclusion"] == state
    assert "AccessDeniedException" in report["pull_time_exclusions"]["detail"]
    assert report["complete"] is True  # a warning, not a failure: the alarm has its own metric
    assert any(f"pull_time_exclusion {state}" in w for w in report["warnings"])
    figures = {m.name: m.value for m in emf_metrics(out.getvalue())}
    assert figures[metrics.PULL_TIME_EXCLUSION_MISSING] == 1
    assert "pull-time exclusion not in place" in out.getvalue()
    # Nothing had pulled the old tree before this run: it went, pull times honoured as always.
    assert registry.digests(REPO) == new.all
    assert registry.last_pulled(REPO, new.index) is not None  # this run's own read


def test_a_manifest_pulled_during_the_run_is_kept_with_what_it_lists(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old, new = moved_tag(registry)
    pulled: list[datetime] = []

    def workload_pulls_before_the_re_read(attempt: Attempt) -> None:
        # The re-read before the delete (DescribeImages by id): a deploy pulls the old index.
        if attempt.operation == "DescribeImages" and attempt.params.get("imageIds") and not pulled:
            pulled.append(NOW + timedelta(minutes=5))
            registry.pull(REPO, old.index, pulled[0])

    with night(0), intercept_clients(Wire(on_attempt=workload_pulls_before_the_re_read)):
        report = invoke(dry_run=False)
    assert pulled
    assert registry.digests(REPO) == old.all | new.all
    kept = {d["digest"]: d for d in report["deletions"]}
    assert report["kept"]["pulled-since-scan"] == 1
    assert report["kept"]["parent-not-deleted"] == len(old.all) - 1
    assert report["deleted"]["manifests"] == 0
    assert set(kept) == old.all  # the plan, as the report lists it, with its final verdicts
    assert (kept[old.index]["reason"], kept[old.index]["cause"]) == (
        "pulled-since-scan",
        # the pull time as the re-read gave it, to the millisecond (as the API answers)
        f"pulled at {pulled[0].replace(microsecond=pulled[0].microsecond // 1000 * 1000)}",
    )
