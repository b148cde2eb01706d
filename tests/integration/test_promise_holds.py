"""The promise, scenario by scenario, where a review found it unguarded.

A review changed the core by hand, one line at a time, and half of the changes to what the promise
rests on passed every test. Each test here is written from the promise (what must be left in the
registry, or refused) and fails under one of those changes (docs/testing.md lists them):

- a manifest with no push time is judged old, not kept ("unknown means keep");
- a request that gives `retention` and omits `dry_run` applies the rules in a real run;
- a pending ECS container whose task definition is inactive pins nothing;
- retention's "every tag selected" treats a tag pattern as a prefix, and so does the audit's
  `other-tag`.

The others are in the tables of their neighbours: tests/integration/test_pins.py (one unreadable
item among several ECS task definitions, clusters or Lambda functions, read on threads) and
tests/integration/test_accessories.py (a repository of signatures where one signs another).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from conftest import OLD, Builds, Invoke
from harness import FakeRegistry, oci
from harness.workloads import AwsEvents, Workloads
from sweeper.settings import InvalidSettings

REPO = "app"
# ECR's own rule for release candidates: keep the newest one, expire the others.
RC_RULE = {
    "rulePriority": 1,
    "description": "keep the newest release candidate",
    "selection": {
        "tagStatus": "tagged",
        "tagPatternList": ["*-rc"],
        "countType": "imageCountMoreThan",
        "countNumber": 1,
    },
    "action": {"type": "expire"},
}


def test_a_manifest_without_a_push_time_is_kept_with_what_it_lists(
    registry: FakeRegistry, builds: Builds, invoke: Invoke, aws_events: AwsEvents
) -> None:
    # The old build's index is listed without `imagePushedAt`: nothing proves it is old.
    def no_push_time(parsed: dict[str, Any], **_: Any) -> None:
        for detail in parsed.get("imageDetails", []):
            if detail["imageDigest"] == builds.old.index:
                detail.pop("imagePushedAt", None)

    aws_events.on("after-call.ecr.DescribeImages", no_push_time)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["kept"]["within-grace-period"] == 1
    assert report["complete"] is True


def test_a_request_with_retention_and_no_dry_run_is_refused_by_a_real_deployment(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidates = [
        registry.push(REPO, oci.image_manifest(n), tags=[f"1.{n}-rc"], pushed_at=OLD + timedelta(n))
        for n in range(3)
    ]
    request = {"scope": "orphans", "retention": [{"rules": [RC_RULE]}]}
    # The rules would expire two candidates: a preview shows them.
    preview = invoke(dry_run=True, **request)
    assert {d["digest"] for d in preview["deletions"]} == set(candidates[:2])
    monkeypatch.setenv("DRY_RUN", "false")  # the deployment deletes; the request says nothing
    with pytest.raises(InvalidSettings) as refused:
        invoke(**request)
    assert refused.value.field == "retention"
    assert registry.digests(REPO) == set(candidates)


def test_a_pending_container_of_an_inactive_task_definition_pins_its_image(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
) -> None:
    # A task started from `app@<old index>`, whose definition was deregistered since, with its
    # container still pending: no `imageDigest` yet, only the reference in `image`.
    definition = workloads.register_task_definition(
        "web", [workloads.image_uri(REPO, builds.old.index)]
    )
    workloads.run_task("prod", definition)
    workloads.deregister_task_definition(definition)

    def pending(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            task["lastStatus"] = "PENDING"
            for container in task.get("containers", []):
                container["lastStatus"] = "PENDING"
                container.pop("imageDigest", None)

    aws_events.on("after-call.ecs.DescribeTasks", pending)
    report = invoke(dry_run=False, scope="orphans", pin_from_ecs=True)
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == {"ecs": 1}
    assert report["kept"]["pinned"] == 1


def release_candidates(registry: FakeRegistry) -> tuple[str, str, str]:
    """Three candidates, oldest first; the middle one was approved for production with a tag the
    rule's pattern `*-rc` does not match, though the tag starts with one it does."""
    first = registry.push(REPO, oci.image_manifest("1.0"), tags=["1.0-rc"], pushed_at=OLD)
    approved = registry.push(
        REPO,
        oci.image_manifest("1.1"),
        tags=["1.1-rc", "1.1-rc-approved"],
        pushed_at=OLD + timedelta(days=1),
    )
    newest = registry.push(
        REPO, oci.image_manifest("1.2"), tags=["1.2-rc"], pushed_at=OLD + timedelta(days=2)
    )
    return first, approved, newest


def test_retention_keeps_an_image_with_a_tag_its_pattern_does_not_match_whole(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first, approved, newest = release_candidates(registry)
    monkeypatch.setenv("SCOPE", "orphans")
    monkeypatch.setenv("RETENTION", json.dumps([{"rules": [RC_RULE]}]))
    report = invoke(dry_run=False)
    assert registry.digests(REPO) == {approved, newest}
    assert registry.tags(REPO)["1.1-rc-approved"] == approved
    assert report["retention"]["expired"] == 1


def test_the_audit_names_a_tag_the_rule_pattern_does_not_match_whole(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    _, approved, _ = release_candidates(registry)
    registry.put_lifecycle_policy(REPO, {"rules": [RC_RULE]})
    report = invoke(dry_run=True)
    found = {(h["digest"], h["reason"]) for h in report["lifecycle_hazards"]}
    assert found == {(approved, "other-tag")}
    (hazard,) = report["lifecycle_hazards"]
    assert "tag 1.1-rc-approved is not one the rule selects" in hazard["cause"]
