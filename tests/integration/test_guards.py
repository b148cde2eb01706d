"""The guards that make unattended deletes safe, end to end through the handler.

Pull guard, circuit breaker, re-verification of each batch right before it is deleted, and the
re-read of the pin sources right before the first delete. Changes "between the scan and the
delete" are injected from botocore event hooks on the clients the handler creates (harness
`AwsEvents`), at the exact call where they matter; assertions are on what is left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from conftest import NOW, OLD, Builds, Invoke
from harness import FakeRegistry
from harness.lambda_output import captured, log_lines
from harness.workloads import AwsEvents, Workloads

REPO = "app"
PLATFORM = "linux/amd64"


# --- pull guard -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pulled:
    pulled: Callable[[Builds], str]  # which manifest was pulled
    days_ago: float
    request: dict[str, Any]
    environment: dict[str, str]
    survivors: Callable[[Builds], set[str]]
    kept_pulled: int


def whole_old_tree(b: Builds) -> set[str]:
    return set(b.old.all | b.new.all)


def nothing_old(b: Builds) -> set[str]:
    return set(b.new.all)


PULLS: dict[str, Pulled] = {
    "index-pulled-yesterday-keeps-its-tree": Pulled(
        lambda b: b.old.index, 1, {}, {}, whole_old_tree, 1
    ),
    "index-pulled-forty-days-ago-goes": Pulled(lambda b: b.old.index, 40, {}, {}, nothing_old, 0),
    "a-shorter-window-from-the-request": Pulled(
        lambda b: b.old.index, 2, {"keep_pulled_within_days": 1}, {}, nothing_old, 0
    ),
    "a-longer-window-from-the-environment": Pulled(
        lambda b: b.old.index, 40, {}, {"KEEP_PULLED_WITHIN_DAYS": "60"}, whole_old_tree, 1
    ),
    # A request may lengthen the deployment's window (never shorten it: see test_bad_input).
    "a-request-lengthens-the-environments-window": Pulled(
        lambda b: b.old.index,
        40,
        {"keep_pulled_within_days": 45},
        {"KEEP_PULLED_WITHIN_DAYS": "30"},
        whole_old_tree,
        1,
    ),
    "zero-days-turns-the-guard-off": Pulled(
        lambda b: b.old.index, 1 / 24, {"keep_pulled_within_days": 0}, {}, nothing_old, 0
    ),
    # Pulled by its own digest: the image stays; the index that nobody pulled does not.
    "a-pulled-child-stays-while-its-unused-index-goes": Pulled(
        lambda b: b.old.images[PLATFORM],
        3,
        {},
        {},
        lambda b: set(b.new.all) | {b.old.images[PLATFORM]},
        1,
    ),
}


@pytest.mark.parametrize("case", PULLS.values(), ids=PULLS.keys())
def test_pull_guard(
    registry: FakeRegistry,
    builds: Builds,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    case: Pulled,
) -> None:
    registry.set_last_pulled(REPO, case.pulled(builds), NOW - timedelta(days=case.days_ago))
    for name, value in case.environment.items():
        monkeypatch.setenv(name, value)
    report = invoke(dry_run=False, scope="orphans", **case.request)
    assert registry.digests(REPO) == case.survivors(builds)
    assert report["kept"].get("recently-pulled", 0) == case.kept_pulled


# --- circuit breaker ------------------------------------------------------------------------------


def test_circuit_breaker_deletes_nothing_and_says_how_to_run_once_with_a_higher_limit(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The nightly run: everything from the environment, the request is {}.
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("SCOPE", "orphans")
    monkeypatch.setenv("MAX_DELETIONS", "8")
    for _ in range(4):
        latest = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    before = registry.digests(REPO)
    report = invoke({})
    assert registry.digests(REPO) == before
    assert report["deleted"]["manifests"] == 0
    assert report["planned"]["manifests"] == 9
    assert report["complete"] is False
    # Held, not kept: each planned deletion keeps its verdict, reason and cause.
    assert "circuit-breaker" not in report["kept"]
    assert len(report["deletions"]) == 9
    assert {d["held_by"] for d in report["deletions"]} == {"circuit-breaker"}
    assert {d["reason"] for d in report["deletions"]} == {"unreachable"}
    assert not any(d["deleted"] for d in report["deletions"])
    breaker = report["circuit_breaker"]
    assert breaker["tripped"] is True
    assert (breaker["planned"], breaker["max_deletions"]) == (9, 8)
    # The hint carries the event to invoke once; it works as written.
    hinted = re.search(r"(\{.*\})", breaker["hint"])
    assert hinted is not None
    event = json.loads(hinted.group(1))
    assert event == {"dry_run": False, "max_deletions": 9}
    again = invoke(event)
    assert again["circuit_breaker"] is None
    assert again["deleted"]["manifests"] == 9
    assert registry.digests(REPO) == latest.all


def test_circuit_breaker_counts_every_repository_of_the_run(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    for repo in ("team-a/web", "team-b/web"):
        registry.push_buildx(repo, tag="latest", pushed_at=OLD)
        registry.push_buildx(repo, tag="latest", pushed_at=OLD)
    before = {repo: registry.digests(repo) for repo in ("team-a/web", "team-b/web")}
    report = invoke(dry_run=False, scope="orphans", max_deletions=5)  # 3 + 3 planned
    assert {repo: registry.digests(repo) for repo in before} == before
    assert report["circuit_breaker"]["planned"] == 6


def test_a_dry_run_shows_the_circuit_breaker_exactly_as_the_real_run_trips_it(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    for _ in range(3):
        registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    before = registry.digests(REPO)
    dry = invoke(dry_run=True, scope="orphans", max_deletions=5)  # 6 planned
    real = invoke(dry_run=False, scope="orphans", max_deletions=5)
    assert registry.digests(REPO) == before
    for key in ("planned", "deleted", "kept", "complete"):
        assert dry[key] == real[key], key
    assert dry["deletions"] == real["deletions"]
    assert [d["held_by"] for d in dry["deletions"]] == ["circuit-breaker"] * 6
    assert "a real run deletes nothing" in dry["circuit_breaker"]["hint"]
    assert "nothing was deleted" in real["circuit_breaker"]["hint"]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real-run"])
def test_a_tripped_breaker_logs_each_planned_deletion_with_its_real_reason_held(
    registry: FakeRegistry, invoke: Invoke, dry_run: bool
) -> None:
    # The dashboard's planned-deletions table reads these lines: it must not come up empty.
    for _ in range(3):
        registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    before = registry.digests(REPO)
    with captured() as out:
        report = invoke(dry_run=dry_run, scope="orphans", max_deletions=5)  # 6 planned
    assert registry.digests(REPO) == before
    lines = [line for line in log_lines(out.getvalue()) if line["message"] == "decision"]
    held = [line for line in lines if line["held_by"]]
    assert sorted(line["digest"] for line in held) == sorted(
        d["digest"] for d in report["deletions"]
    )
    assert {(line["verdict"], line["reason"], line["held_by"]) for line in held} == {
        ("delete", "unreachable", "circuit-breaker")
    }
    assert all(line["cause"] for line in held)
    assert {line["verdict"] for line in lines if not line["held_by"]} == {"keep"}
    (summary,) = [line for line in log_lines(out.getvalue()) if line["message"] == "repository"]
    assert (summary["planned"], summary["deleted"], summary["held_by"]) == (6, 0, "circuit-breaker")


def test_a_run_planning_exactly_the_limit_deletes(
    registry: FakeRegistry, builds: Builds, invoke: Invoke
) -> None:
    report = invoke(dry_run=False, scope="orphans", max_deletions=3)
    assert report["circuit_breaker"] is None
    assert registry.digests(REPO) == builds.new.all


# --- re-verification right before each delete batch -----------------------------------------------


def on_verify(
    events: AwsEvents, action: Callable[[list[str]], object], *, when: Callable[[list[str]], bool]
) -> None:
    """Run `action(digests)` before the handler re-reads a batch (DescribeImages by imageIds,
    which only the verification step calls) whose digests satisfy `when`, once."""
    done: list[bool] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        digests = [i["imageDigest"] for i in params.get("imageIds", [])]
        if digests and not done and when(digests):
            done.append(True)
            action(digests)

    events.on("before-parameter-build.ecr.DescribeImages", hook)


def test_index_tagged_between_scan_and_delete_keeps_its_whole_tree(
    registry: FakeRegistry, builds: Builds, invoke: Invoke, aws_events: AwsEvents
) -> None:
    on_verify(
        aws_events,
        lambda digests: registry.tag(REPO, "hotfix", builds.old.index),
        when=lambda digests: builds.old.index in digests,
    )
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert registry.tags(REPO)["hotfix"] == builds.old.index  # deleting would have taken it
    assert report["deleted"]["manifests"] == 0
    assert report["kept"]["gained-tag"] == 1
    assert report["kept"]["parent-not-deleted"] == 2


def test_child_tagged_after_its_index_went_stays_and_its_sibling_goes(
    registry: FakeRegistry, builds: Builds, invoke: Invoke, aws_events: AwsEvents
) -> None:
    image = builds.old.images[PLATFORM]
    on_verify(
        aws_events,
        lambda digests: registry.tag(REPO, "debug", image),
        when=lambda digests: image in digests,
    )
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.new.all | {image}
    assert registry.tags(REPO)["debug"] == image
    assert report["deleted"]["manifests"] == 2
    assert report["kept"]["gained-tag"] == 1


def test_candidate_deleted_by_someone_else_counts_as_gone_not_as_a_failure(
    registry: FakeRegistry, builds: Builds, invoke: Invoke, aws_events: AwsEvents
) -> None:
    on_verify(
        aws_events,
        lambda digests: registry.client.batch_delete_image(
            repositoryName=REPO, imageIds=[{"imageDigest": builds.old.index}]
        ),
        when=lambda digests: builds.old.index in digests,
    )
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.new.all
    assert report["failures"] == []
    assert report["complete"] is True
    assert report["deleted"]["manifests"] == 2  # the children; the index was already gone


# --- pin sources re-read right before the first delete --------------------------------------------


@dataclass(frozen=True)
class NewPin:
    settings: dict[str, Any]
    operation: str  # the first call of the source's read: the second one is the re-read
    prepare: Callable[[Workloads, Builds], object]
    pin: Callable[[Workloads, Builds], object]  # what appears between the plan and the delete
    source: str  # the pin's source, as the failure names it


NEW_PINS: dict[str, NewPin] = {
    "ssm-parameter-written-by-a-deploy": NewPin(
        {"pin_parameter_path": "/deploy"},
        "ssm.GetParametersByPath",
        lambda aws, b: aws.put_parameter("/deploy/web", aws.image_uri(REPO, b.new.index)),
        lambda aws, b: aws.put_parameter("/deploy/api", aws.image_uri(REPO, b.old.index)),
        "ssm:/deploy/api",
    ),
    "s3-deploy-config-rewritten": NewPin(
        {"pin_object_uris": ["s3://deploy/prod.env"]},
        "s3.GetObject",
        lambda aws, b: aws.put_object(
            "s3://deploy/prod.env", f"IMAGE={aws.image_uri(REPO, b.new.index)}\n"
        ),
        lambda aws, b: aws.put_object(
            "s3://deploy/prod.env", f"IMAGE={aws.image_uri(REPO, b.old.index)}\n"
        ),
        "s3://deploy/prod.env",
    ),
    "ecs-rollback-task-definition-registered": NewPin(
        {"pin_from_ecs": True},
        "ecs.ListTaskDefinitions",
        lambda aws, b: None,
        lambda aws, b: aws.register_task_definition("web", [aws.image_uri(REPO, b.old.index)]),
        "ecs:task-definition/web:1 container c0",
    ),
    "lambda-rollback-published": NewPin(
        {"pin_from_lambda": True},
        "lambda.ListFunctions",
        lambda aws, b: aws.create_image_function("worker", aws.image_uri(REPO, "latest")),
        lambda aws, b: aws.update_image_function("worker", aws.image_uri(REPO, b.old.index)),
        "lambda:worker:",  # $LATEST or version 2, whichever is read first
    ),
}


@pytest.mark.parametrize("case", NEW_PINS.values(), ids=NEW_PINS.keys())
def test_pin_appearing_between_plan_and_first_delete_stops_the_deletes(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
    case: NewPin,
) -> None:
    case.prepare(workloads, builds)
    reads = [0]

    def between_plan_and_delete(**_: Any) -> None:
        reads[0] += 1
        if reads[0] == 2:  # the re-read: the plan is made, nothing is deleted yet
            case.pin(workloads, builds)

    aws_events.on(f"before-parameter-build.{case.operation}", between_plan_and_delete)
    before = registry.digests(REPO)
    report = invoke(dry_run=False, scope="orphans", **case.settings)
    assert reads[0] == 2
    assert registry.digests(REPO) == before
    assert report["deleted"]["manifests"] == 0
    assert report["kept"]["newly-pinned"] == 3
    assert report["stopped_early"] == "a pin source now protects a planned deletion"
    assert report["complete"] is False
    [failure] = report["failures"]
    assert (failure["digest"], failure["code"]) == (builds.old.index, "NewlyPinned")
    assert failure["message"].startswith(case.source)
    # The next run plans with the new pin and leaves the tree alone.
    again = invoke(dry_run=False, scope="orphans", **case.settings)
    assert again["kept"]["pinned"] == 1
    assert registry.digests(REPO) == before


def test_unchanged_pins_on_the_re_read_let_the_deletes_go_ahead(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
) -> None:
    workloads.put_parameter("/deploy/web", workloads.image_uri(REPO, builds.new.index))
    aws_events.count("before-call.ssm.GetParametersByPath")
    dry = invoke(dry_run=True, scope="orphans", pin_parameter_path="/deploy")
    assert aws_events.calls["before-call.ssm.GetParametersByPath"] == 1  # a dry run deletes nothing
    report = invoke(dry_run=False, scope="orphans", pin_parameter_path="/deploy")
    assert aws_events.calls["before-call.ssm.GetParametersByPath"] == 1 + 2  # read, then re-read
    assert registry.digests(REPO) == builds.new.all
    assert report["deleted"] == dry["planned"]
