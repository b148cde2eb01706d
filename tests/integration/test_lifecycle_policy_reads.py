"""Registry.lifecycle_policy against the corrected moto: one GetLifecyclePolicy per repository;
no policy is None, anything else that goes wrong is a RegistryError naming the operation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, OLD
from harness import FakeRegistry
from harness.faults import Inject, ServerError, Throttle, Wire, fast_retries, intercept_clients
from harness.lambda_output import recorded
from harness.workloads import AwsEvents
from sweeper import audit
from sweeper import registry as ecr
from sweeper.lifecycle import parse_policy_text
from sweeper.model import HeldTag, Pin, Scope
from sweeper.ports import RegistryError
from sweeper.registry import EcrRegistry, make_client
from sweeper.run import Report, RunOptions, StopReason, Sweeper
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


# --- the command's audit alone finds what a dry run's audit finds, or says why it cannot


def run_over(
    registry: FakeRegistry,
    wire: Wire | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> Report:
    """One run over `registry`, driven as the command drives it."""
    run_options = RunOptions(principal=FUNCTION_PRINCIPAL, **options)
    with intercept_clients(wire or Wire()), fast_retries():
        return Sweeper(EcrRegistry(make_client()), settings or Settings(), NOW, run_options).run()


def failures_of(report: Report) -> list[tuple[str, str, str, str]]:
    return [(f.repository, f.digest, f.code, f.message) for f in report.all_failures]


AUDITED_POLICY = {
    "rules": [
        EXPIRE_UNTAGGED["rules"][0],
        {
            "rulePriority": 2,
            "description": "keep one CI build",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "description": "expire what was archived a year ago",
            "selection": {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 365,
            },
            "action": {"type": "expire"},
        },
    ]
}
RULED = "ruled"
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@dataclass
class Audited:
    pinned: str = ""
    pulled: str = ""
    running: str = ""  # ci-1: a workload runs it by its tag
    pins: dict[str, Pin] = field(default_factory=dict)
    held: list[HeldTag] = field(default_factory=list)


@pytest.fixture
def audited(registry: FakeRegistry) -> Iterator[Audited]:
    """ECR's policy would expire a pinned build, a build pulled yesterday and a CI build a
    workload runs by its tag; its third rule counts from when an image was archived, which no
    listing says."""
    pinned = registry.push_buildx(RULED, tag=None, pushed_at=OLD, fast=True)
    pulled = registry.push_buildx(RULED, tag=None, pushed_at=OLD, fast=True)
    registry.set_last_pulled(RULED, pulled.index, NOW - timedelta(days=1))
    running = registry.push_buildx(RULED, tag="ci-1", pushed_at=OLD, fast=True)
    registry.push_buildx(RULED, tag="ci-2", pushed_at=OLD + timedelta(days=1), fast=True)
    registry.put_lifecycle_policy(RULED, AUDITED_POLICY)
    yield Audited(
        pinned.index,
        pulled.index,
        running.index,
        {pinned.index: Pin(pinned.index, "ecs")},
        [HeldTag(HOST, RULED, "ci-1", "ecs:task-definition/web:1")],
    )


def test_the_audit_alone_reports_what_the_dry_runs_audit_reports(
    registry: FakeRegistry, audited: Audited
) -> None:
    """The command's `audit` reads only what the prediction needs, and finds what a dry run
    with the audit on finds: every hazard (a pin, a recent pull, a tag in use), the rules it
    cannot evaluate, each in the report and in the log the dashboard queries."""
    before = registry.digests(RULED)
    with recorded() as records:
        alone = run_over(registry, pins=audited.pins, held_tags=audited.held, audit_only=True)
    logged = [
        (r.getMessage(), getattr(r, "repository", None), getattr(r, "digest", None))
        for r in records
        if r.getMessage() in (audit.HAZARD_MESSAGE, audit.UNEVALUATED_MESSAGE)
    ]
    settings = Settings(dry_run=True, scope=Scope.ORPHANS, audit_lifecycle_policies=True)
    dry = run_over(registry, settings=settings, pins=audited.pins, held_tags=audited.held)

    assert registry.digests(RULED) == before
    assert alone.complete and failures_of(alone) == []
    hazards = [(h.repository, h.digest, h.reason.value, h.rule) for h in alone.lifecycle_hazards]
    assert hazards == sorted(
        [
            (RULED, audited.pinned, "pinned", 1),
            (RULED, audited.pulled, "recently-pulled", 1),
            (RULED, audited.running, "tag-in-use", 2),
        ]
    )
    unevaluated = [(u.repository, u.rule) for u in alone.lifecycle_unevaluated]
    assert unevaluated == [(RULED, 3)]
    assert [h.as_dict() for h in alone.lifecycle_hazards] == [
        h.as_dict() for h in dry.lifecycle_hazards
    ]
    assert [u.as_dict() for u in alone.lifecycle_unevaluated] == [
        u.as_dict() for u in dry.lifecycle_unevaluated
    ]
    assert sorted(logged) == sorted(
        [("lifecycle hazard", RULED, digest) for _, digest, _, _ in hazards]
        + [("lifecycle rule not evaluated", RULED, None)]
    )


def _refuse_index(index: str) -> Callable[..., None]:
    def refuse(parsed: dict[str, Any], **_: Any) -> None:
        images = parsed.get("images", [])
        parsed["images"] = [i for i in images if i["imageId"].get("imageDigest") != index]
        if len(parsed["images"]) < len(images):
            parsed["failures"] = [
                *parsed.get("failures", []),
                {
                    "imageId": {"imageDigest": index},
                    "failureCode": "KmsError",
                    "failureReason": "no",
                },
            ]

    return refuse


def _newer_policy(parsed: dict[str, Any], **_: Any) -> None:
    # A field ECR may add after this version: the audit cannot tell what the rule selects.
    document = json.loads(parsed["lifecyclePolicyText"])
    document["rules"][0]["selection"]["imageKind"] = "any"
    parsed["lifecyclePolicyText"] = json.dumps(document)


UNAUDITED = ["an index ECR refuses", "a policy with a field newer than the sweeper", "no time"]


@pytest.mark.parametrize("scenario", UNAUDITED)
def test_an_audit_that_cannot_read_what_it_needs_reports_no_hazard_and_says_why(
    registry: FakeRegistry,
    audited: Audited,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
) -> None:
    before = registry.digests(RULED)
    wire = Wire()
    options: dict[str, Any] = {}
    expected: tuple[str, str, str]
    with AwsEvents() as events:
        if scenario == "an index ECR refuses":
            events.on("after-call.ecr.BatchGetImage", _refuse_index(audited.pinned))
            message = "not audited: cannot read a manifest that may list others: no"
            expected = (audited.pinned, "KmsError", message)
        elif scenario == "a policy with a field newer than the sweeper":
            events.on("after-call.ecr.GetLifecyclePolicy", _newer_policy)
            expected = ("", "LifecyclePolicyNotUnderstood", "")
        else:
            # The listing takes pages; the time runs out after the first.
            monkeypatch.setattr(ecr, "PAGE_SIZE", 2)
            options["remaining_seconds"] = lambda: 0.0 if wire.calls["DescribeImages"] else 900.0
            expected = ("", "TimeBudget", "DescribeImages: TimeBudget: stopped between pages")
        report = run_over(
            registry, wire, pins=audited.pins, held_tags=audited.held, audit_only=True, **options
        )

    assert registry.digests(RULED) == before
    [repo] = report.repositories
    assert not repo.scanned and report.complete is False
    assert report.lifecycle_hazards == []
    [(name, digest, code, message)] = failures_of(report)
    assert (name, digest, code) == (RULED, *expected[:2])
    if code == "LifecyclePolicyNotUnderstood":
        assert message.startswith(
            "not audited: lifecyclePolicyText.rules[0]: rulePriority 1: "
            "unknown field selection.imageKind"
        )
    else:
        assert message == expected[2]
    if code == "TimeBudget":
        assert report.stopped_early is StopReason.TIME_BUDGET
        assert wire.calls["GetLifecyclePolicy"] == 0
