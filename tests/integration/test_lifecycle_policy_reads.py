"""Registry.lifecycle_policy against the corrected moto: one GetLifecyclePolicy per repository;
no policy is None, anything else that goes wrong is a RegistryError naming the operation."""

from __future__ import annotations

import json

import pytest

from harness import FakeRegistry
from harness.faults import Inject, ServerError, Throttle, Wire, fast_retries, intercept_clients
from sweeper.lifecycle import parse_policy_text
from sweeper.ports import RegistryError
from sweeper.registry import EcrRegistry, make_client

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
