"""Tags something runs by: retention never expires them, the audit reports a rule that would.

One repository of CI builds `ci-1` ... `ci-6`, each a buildx tree pushed a day apart, all old; a
retention rule (and ECR's own policy, for the audit) keeps the newest two `ci-*`. A workload names
`app:ci-2` by tag: it starts `ci-2` again on its next deploy, so `ci-2` must stay.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from conftest import NOW, Invoke
from harness import FakeRegistry
from harness.ecr import BuildxPush
from harness.workloads import Workloads
from sweeper.clock import use_clock

REPO = "app"
KEEP_TWO_CI = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "keep two CI builds",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "imageCountMoreThan",
                "countNumber": 2,
            },
            "action": {"type": "expire"},
        }
    ]
}


@pytest.fixture
def builds(registry: FakeRegistry) -> Iterator[dict[str, BuildxPush]]:
    pushed = {
        f"ci-{n}": registry.push_buildx(REPO, tag=f"ci-{n}", pushed_at=NOW - timedelta(days=10 - n))
        for n in range(1, 7)
    }
    with use_clock(lambda: NOW):
        yield pushed


# scenario -> (sets the workload up and returns the environment, the report's held_tags)
Setup = Callable[[Workloads], dict[str, str]]


def ecs_task_definition(aws: Workloads) -> dict[str, str]:
    aws.register_task_definition("web", [aws.image_uri(REPO, "ci-2")])
    return {"PIN_FROM_ECS": "true"}


def ssm_deploy_config(aws: Workloads) -> dict[str, str]:
    aws.put_parameter("/deploy/web/image", aws.image_uri(REPO, "ci-2"))
    return {"PIN_PARAMETER_PATH": "/deploy"}


def s3_compose_file(aws: Workloads) -> dict[str, str]:
    aws.put_object(
        "s3://deploy-configs/compose.yaml",
        f"services:\n  web:\n    image: {aws.image_uri(REPO, 'ci-2')}\n",
    )
    return {"PIN_OBJECT_URIS": "s3://deploy-configs/compose.yaml"}


def ecs_service_deployed_from_a_tag(aws: Workloads) -> dict[str, str]:
    definition = aws.register_task_definition("web", [aws.image_uri(REPO, "ci-2")])
    aws.create_service("prod", "web", definition, desired=0)
    aws.deregister_task_definition(definition)
    return {"PIN_FROM_ECS": "true"}


SCENARIOS: dict[str, tuple[Setup, dict[str, int]]] = {
    "ecs-task-definition": (ecs_task_definition, {"ecs": 1}),
    "ssm-parameter": (ssm_deploy_config, {"ssm": 1}),
    "s3-compose-file": (s3_compose_file, {"s3": 1}),
    "ecs-service-revision-on-a-deregistered-definition": (
        ecs_service_deployed_from_a_tag,
        {"ecs": 1},
    ),
}


@pytest.mark.parametrize(("setup", "counts"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_retention_keeps_a_tag_a_workload_names(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: dict[str, BuildxPush],
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    setup: Setup,
    counts: dict[str, int],
) -> None:
    for name, value in setup(workloads).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RETENTION", json.dumps([{"rules": KEEP_TWO_CI["rules"]}]))
    report = invoke(dry_run=False, scope="orphans")
    kept = {"ci-2", "ci-5", "ci-6"}
    assert registry.tags(REPO) == {tag: builds[tag].index for tag in kept}
    assert registry.digests(REPO) == {d for tag in kept for d in builds[tag].all}
    assert report["held_tags"] == counts
    assert report["retention"] == {"expired": 4, "deleted": 3, "held": {"tag-in-use": 1}}
    assert report["kept"]["tag-in-use"] == 1


def test_a_dry_run_says_why_the_tag_stays_and_where_it_is_used(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: dict[str, BuildxPush],
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ecs_task_definition(workloads)
    monkeypatch.setenv("PIN_FROM_ECS", "true")
    report = invoke(dry_run=True, scope="orphans", retention=[{"rules": KEEP_TWO_CI["rules"]}])
    planned = {d["digest"] for d in report["deletions"]}
    assert builds["ci-2"].index not in planned
    assert builds["ci-1"].index in planned
    assert report["retention"]["held"] == {"tag-in-use": 1}


def test_a_tag_of_another_registry_holds_nothing(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: dict[str, BuildxPush],
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = workloads.image_uri(REPO, "ci-2").replace(registry.account_id, "999999999999")
    workloads.put_parameter("/deploy/web/image", other)
    monkeypatch.setenv("PIN_PARAMETER_PATH", "/deploy")
    monkeypatch.setenv("RETENTION", json.dumps([{"rules": KEEP_TWO_CI["rules"]}]))
    report = invoke(dry_run=False, scope="orphans")
    assert set(registry.tags(REPO)) == {"ci-5", "ci-6"}
    assert report["held_tags"] == {}


def test_the_audit_reports_an_ecr_rule_that_would_expire_a_tag_in_use(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: dict[str, BuildxPush],
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.put_lifecycle_policy(REPO, KEEP_TWO_CI)
    ecs_task_definition(workloads)
    monkeypatch.setenv("PIN_FROM_ECS", "true")
    report = invoke(dry_run=True, scope="orphans")
    hazards = [(h["digest"], h["reason"], h["rule"]) for h in report["lifecycle_hazards"]]
    assert hazards == [(builds["ci-2"].index, "tag-in-use", 1)]
    cause = report["lifecycle_hazards"][0]["cause"]
    assert cause.startswith("tag ci-2 in use (ecs:task-definition/web:1 container c0)")
