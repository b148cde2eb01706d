"""sweeper.opt_in: which repositories a required tag lets the run sweep (pure), and reading the
tags through the registry (the corrected moto registry)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import FakeRegistry
from harness.workloads import AwsEvents
from sweeper.opt_in import opted_in, read_opt_in
from sweeper.registry import EcrRegistry, make_client
from sweeper.settings import load

REQUIRED = ("ecr-sweeper", "enabled")


def test_without_a_required_tag_every_repository_is_selected_and_no_tag_is_read() -> None:
    outcome = opted_in(["a", "b"], {}, None)
    assert (outcome.selected, outcome.skipped, outcome.unreadable) == (["a", "b"], [], {})


def test_only_repositories_carrying_the_required_tag_are_selected_the_rest_skipped() -> None:
    tags = {
        "tagged": {"ecr-sweeper": "enabled", "team": "a"},
        "other-value": {"ecr-sweeper": "disabled"},
        "other-key": {"sweeper": "enabled"},
        "untagged": {},
        "case-differs": {"ECR-SWEEPER": "enabled"},  # tag keys are case-sensitive
    }
    outcome = opted_in(
        ["untagged", "tagged", "other-value", "other-key", "case-differs"], tags, REQUIRED
    )
    assert outcome.selected == ["tagged"]
    assert outcome.skipped == ["untagged", "other-value", "other-key", "case-differs"]


def test_a_repository_whose_tags_are_not_known_is_not_selected() -> None:
    assert opted_in(["unknown"], {}, REQUIRED).skipped == ["unknown"]


def test_the_setting_gives_the_requirement() -> None:
    assert load({}, {}).required_tag is None
    settings = load({}, {"REQUIRED_REPOSITORY_TAG": "ecr-sweeper=enabled"})
    assert settings.required_tag == REQUIRED
    assert load({"required_repository_tag": "team/x=a:b"}, {}).required_tag == ("team/x", "a:b")


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with FakeRegistry() as registry:
        yield registry


def test_the_registry_reads_each_repositorys_tags_through_its_arn(fake: FakeRegistry) -> None:
    fake.client.create_repository(
        repositoryName="opted-in", tags=[{"Key": "ecr-sweeper", "Value": "enabled"}]
    )
    fake.client.create_repository(repositoryName="left-alone")
    registry = EcrRegistry(make_client())
    arns = registry.repository_arns()
    assert arns == {
        "opted-in": "arn:aws:ecr:us-east-1:123456789012:repository/opted-in",
        "left-alone": "arn:aws:ecr:us-east-1:123456789012:repository/left-alone",
    }
    assert registry.repositories() == list(arns)
    assert registry.repository_tags(arns["opted-in"]) == {"ecr-sweeper": "enabled"}
    assert registry.repository_tags(arns["left-alone"]) == {}
    outcome = read_opt_in(registry, arns, ["left-alone", "opted-in"], REQUIRED, workers=2)
    assert (outcome.selected, outcome.skipped, outcome.unreadable) == (
        ["opted-in"],
        ["left-alone"],
        {},
    )


def test_tags_that_cannot_be_read_leave_the_repository_out_as_a_failure(fake: FakeRegistry) -> None:
    for name in ("app-a", "app-b"):
        fake.client.create_repository(
            repositoryName=name, tags=[{"Key": "ecr-sweeper", "Value": "enabled"}]
        )
    with AwsEvents() as events:  # before the client: a client copies the session's hooks
        events.fail("ecr", "ListTagsForResource", "AccessDeniedException", when=lambda n: n == 1)
        registry = EcrRegistry(make_client())
        arns = registry.repository_arns()
        outcome = read_opt_in(registry, arns, ["app-a", "app-b"], REQUIRED, workers=1)
    assert outcome.selected == ["app-b"]
    assert outcome.skipped == []
    assert list(outcome.unreadable) == ["app-a"]
    assert outcome.unreadable["app-a"].code == "AccessDeniedException"


def test_without_a_requirement_no_tag_is_read(fake: FakeRegistry) -> None:
    fake.client.create_repository(repositoryName="app")
    with AwsEvents() as events:
        events.count("before-call.ecr.ListTagsForResource")
        registry = EcrRegistry(make_client())
        outcome = read_opt_in(registry, registry.repository_arns(), ["app"], None)
    assert outcome.selected == ["app"]
    assert events.calls == {}
