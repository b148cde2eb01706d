"""Registry.lifecycle_policy against the corrected moto: one GetLifecyclePolicy per repository;
no policy is None, anything else that goes wrong is a RegistryError naming the operation."""

from __future__ import annotations

import json

import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, OLD
from harness import FakeRegistry
from harness.faults import Inject, ServerError, Throttle, Wire, fast_retries, intercept_clients
from sweeper.lifecycle import parse_policy_text
from sweeper.model import Pin
from sweeper.ports import RegistryError
from sweeper.registry import EcrRegistry, make_client
from sweeper.run import Report, RunOptions, Sweeper
from sweeper.settings import Settings

POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "keep 25 CI builds",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "imageCountMoreThan",
                "countNumber": 25,
            },
            "action": {"type": "expire"},
        }
    ]
}


def test_a_repository_without_a_policy_has_none_and_one_with_gives_its_text(
    registry: FakeRegistry,
) -> None:
    registry.create_repository("bare")
    registry.put_lifecycle_policy("ruled", POLICY)
    wire = Wire()
    with intercept_clients(wire):
        ecr = EcrRegistry(make_client())
        assert ecr.lifecycle_policy("bare") is None
        text = ecr.lifecycle_policy("ruled")
    assert text is not None and json.loads(text) == POLICY
    assert parse_policy_text(text).rules[0].label == "rule 1: keep 25 CI builds"
    assert dict(wire.calls) == {"GetLifecyclePolicy": 2}


@pytest.mark.parametrize(
    ("fault", "code"),
    [(ServerError(), "ServerException"), (Throttle(), "ThrottlingException")],
    ids=["server error", "throttled past every retry"],
)
def test_a_failed_read_is_a_registry_error_never_no_policy(
    registry: FakeRegistry, fault: ServerError | Throttle, code: str
) -> None:
    registry.put_lifecycle_policy("ruled", POLICY)
    wire = Wire(Inject("GetLifecyclePolicy", fault))
    with intercept_clients(wire), fast_retries(), pytest.raises(RegistryError) as raised:
        EcrRegistry(make_client()).lifecycle_policy("ruled")
    assert (raised.value.operation, raised.value.code) == ("GetLifecyclePolicy", code)
    assert wire.attempts["GetLifecyclePolicy"] > 1  # botocore retried before giving up


def test_a_missing_repository_is_an_error_not_an_empty_policy(registry: FakeRegistry) -> None:
    with pytest.raises(RegistryError) as raised:
        EcrRegistry(make_client()).lifecycle_policy("gone")
    assert raised.value.code == "RepositoryNotFoundException"


def test_a_throttled_read_that_recovers_gives_the_policy(registry: FakeRegistry) -> None:
    registry.put_lifecycle_policy("ruled", POLICY)
    wire = Wire(Inject("GetLifecyclePolicy", Throttle(), attempts={1, 2}))
    with intercept_clients(wire), fast_retries():
        text = EcrRegistry(make_client()).lifecycle_policy("ruled")
    assert text is not None and json.loads(text) == POLICY
    assert (wire.calls["GetLifecyclePolicy"], wire.attempts["GetLifecyclePolicy"]) == (1, 3)


# --- the command's `audit`: each repository listed, its policy and indexes read, nothing planned


def audit_only(registry: FakeRegistry, wire: Wire, pins: dict[str, Pin]) -> Report:
    options = RunOptions(pins=pins, audit_only=True, principal=FUNCTION_PRINCIPAL)
    with intercept_clients(wire), fast_retries():
        return Sweeper(EcrRegistry(make_client()), Settings(), NOW, options).run()


EXPIRE_UNTAGGED = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "expire untagged after a day",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        }
    ]
}

# scenario -> the fault, and the one failure it leaves (code, message), or none
AUDITS = [
    ("the policy would expire a pinned build", None, None),
    (
        "the listing fails",
        Inject("DescribeImages", ServerError()),
        ("ServerException", "DescribeImages: ServerException: injected"),
    ),
    (
        "the policy cannot be read",
        Inject("GetLifecyclePolicy", ServerError()),
        (
            "ServerException",
            "lifecycle policy not audited: GetLifecyclePolicy: ServerException: injected",
        ),
    ),
    (
        "the indexes cannot be read",
        Inject("BatchGetImage", ServerError()),
        ("ServerException", "BatchGetImage: ServerException: injected"),
    ),
]


@pytest.mark.parametrize(
    ("fault", "failure"), [(f, e) for _, f, e in AUDITS], ids=[n for n, _, _ in AUDITS]
)
def test_the_audit_alone_reports_what_the_policy_would_take_or_why_it_could_not_tell(
    registry: FakeRegistry, fault: Inject | None, failure: tuple[str, str] | None
) -> None:
    pinned = registry.push_buildx("ruled", tag=None, pushed_at=OLD, fast=True)
    registry.push_buildx("ruled", tag="latest", pushed_at=OLD, fast=True)
    registry.put_lifecycle_policy("ruled", EXPIRE_UNTAGGED)
    before = registry.digests("ruled")

    wire = Wire(*([fault] if fault else []))
    report = audit_only(registry, wire, {pinned.index: Pin(pinned.index, "ecs")})

    assert registry.digests("ruled") == before  # the audit deletes nothing
    assert wire.calls["BatchDeleteImage"] == 0
    [repo] = report.repositories
    assert repo.manifests == (0 if fault and fault.operation == "DescribeImages" else len(before))
    assert repo.planned == 0
    if failure is None:
        assert repo.scanned and report.complete
        assert [(h.digest, h.reason.value, h.rule) for h in repo.hazards] == [
            (pinned.index, "pinned", 1)
        ]
        assert repo.failures == []
    else:
        assert not repo.scanned and not report.complete
        assert repo.hazards == []
        assert [(f.digest, f.code, f.message) for f in repo.failures] == [("", *failure)]
