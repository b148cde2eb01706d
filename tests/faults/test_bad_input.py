"""Bad input, end to end: the invocation fails naming the field, and nothing reaches ECR.

Every ECR client the handler makes is on a counting wire, so "nothing reaches ECR" is measured
(no call at all, so in particular no BatchDeleteImage or PutImage), besides the registry being
left as it was.
"""

from __future__ import annotations

import json
import pathlib
from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import Invoke
from harness import FakeRegistry
from harness.faults import Wire, intercept_clients
from harness.generated import OLD
from sweeper.settings import MAX_PINS, InvalidSettings

DIGEST = "sha256:" + "c" * 64
KEEP_1 = {  # an ECR lifecycle rule: keep the newest image
    "rulePriority": 1,
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
    "action": {"type": "expire"},
}
SCHEDULED = json.loads(pathlib.Path("events/scheduled.json").read_text())

# scenario -> event, the field the error must name
BAD_EVENTS: list[tuple[str, Any, str]] = [
    ("a list instead of an object", [{"dry_run": False}], "event"),
    ("a string instead of an object", "dry_run=false", "event"),
    ("a number instead of an object", 42, "event"),
    ("an unknown field", {"dry_run": False, "dryrun": True}, "dryrun"),
    ("a misspelt field next to good ones", {"scope": "orphans", "max_deletion": 1}, "max_deletion"),
    ("dry_run as a string", {"dry_run": "false"}, "dry_run"),
    ("dry_run as a number", {"dry_run": 0}, "dry_run"),
    ("dry_run null", {"dry_run": None}, "dry_run"),
    ("an unknown scope", {"dry_run": False, "scope": "everything"}, "scope"),
    ("scope in capitals", {"scope": "ORPHANS"}, "scope"),
    ("scope as a list", {"scope": ["orphans"]}, "scope"),
    ("a negative grace period", {"dry_run": False, "min_age_hours": -1}, "min_age_hours"),
    # buildx pushes children before their index: no grace period deletes in-flight pushes.
    ("no grace period", {"dry_run": False, "min_age_hours": 0}, "min_age_hours"),
    ("a grace period under an hour", {"dry_run": False, "min_age_hours": 0.5}, "min_age_hours"),
    ("an absurd grace period", {"min_age_hours": 1e12}, "min_age_hours"),
    ("an infinite grace period", {"min_age_hours": float("inf")}, "min_age_hours"),
    ("a grace period as a string", {"min_age_hours": "72"}, "min_age_hours"),
    ("a negative pull window", {"keep_pulled_within_days": -0.5}, "keep_pulled_within_days"),
    ("an absurd pull window", {"keep_pulled_within_days": 10**7}, "keep_pulled_within_days"),
    ("a negative circuit breaker", {"dry_run": False, "max_deletions": -1}, "max_deletions"),
    ("an absurd circuit breaker", {"max_deletions": 10**12}, "max_deletions"),
    ("a fractional circuit breaker", {"max_deletions": 2.5}, "max_deletions"),
    # Past a float's range: refused naming the field, not an OverflowError.
    ("a grace period past any float", {"min_age_hours": 10**400}, "min_age_hours"),
    (
        "a pull window past any float",
        {"keep_pulled_within_days": 10**400},
        "keep_pulled_within_days",
    ),
    ("a circuit breaker past any float", {"max_deletions": 10**400}, "max_deletions"),
    ("concurrency past any float", {"concurrency": 10**400}, "concurrency"),
    (
        "a retention count past any float",
        {
            "scope": "orphans",
            "retention": [
                {
                    "rules": [
                        {
                            **KEEP_1,
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": 10**400,
                            },
                        }
                    ]
                }
            ],
        },
        "retention[0].rules[0]",
    ),
    ("no concurrency", {"concurrency": 0}, "concurrency"),
    ("too much concurrency", {"concurrency": 1000}, "concurrency"),
    ("concurrency as a bool", {"concurrency": True}, "concurrency"),
    ("repositories as a string", {"repositories": "app"}, "repositories"),
    ("repositories as an object", {"repositories": {"app": True}}, "repositories"),
    ("a pattern that is a number", {"repositories": ["app", 7]}, "repositories[1]"),
    ("an unclosed bracket", {"repositories": ["app-[ab"]}, "repositories[0]"),
    ("a bracket closed twice", {"exclude_repositories": ["a]b"]}, "exclude_repositories[0]"),
    ("nested brackets", {"exclude_repositories": ["[[ab]]"]}, "exclude_repositories[0]"),
    ("a pattern in capitals", {"exclude_repositories": ["App/*"]}, "exclude_repositories[0]"),
    ("a pattern with spaces", {"repositories": ["my app"]}, "repositories[0]"),
    ("an empty pattern", {"repositories": [""]}, "repositories[0]"),
    # A coordinator's empty shard: [] is not "every repository".
    ("an empty repository list", {"dry_run": False, "repositories": []}, "repositories"),
    # "$" matches before a final newline: this pattern would pass, match nothing, and sweep
    # the repositories it meant to exclude.
    (
        "an exclude pattern ending in a newline",
        {"dry_run": False, "exclude_repositories": ["keep-*\n"]},
        "exclude_repositories[0]",
    ),
    ("a pattern with a tab", {"repositories": ["app\t"]}, "repositories[0]"),
    ("a pattern with a NUL", {"exclude_repositories": ["a\x00"]}, "exclude_repositories[0]"),
    ("an SSM path with a newline", {"pin_parameter_path": "/deploy\n"}, "pin_parameter_path"),
    ("an object key with a newline", {"pin_object_uris": ["s3://b-1/k\n"]}, "pin_object_uris[0]"),
    ("an object key with a wildcard", {"pin_object_uris": ["s3://b-1/*"]}, "pin_object_uris[0]"),
    ("an overlong pattern", {"repositories": ["a" * 300]}, "repositories[0]"),
    ("too many patterns", {"repositories": [f"r{i}" for i in range(101)]}, "repositories"),
    ("pins as a string", {"pins": DIGEST}, "pins"),
    ("a pin that is a number", {"pins": [DIGEST, 12]}, "pins[1]"),
    ("a pin with no digest", {"pins": ["app:latest"]}, "pins[0]"),
    ("a pin with a short digest", {"pins": [DIGEST, "app@sha256:abc"]}, "pins[1]"),
    ("a pin with an upper-case short digest", {"pins": ["sha256:" + "C" * 63]}, "pins[0]"),
    ("a pin with a too long digest", {"pins": [DIGEST + "0"]}, "pins[0]"),
    ("a pin with another algorithm", {"pins": ["sha512:" + "c" * 128]}, "pins[0]"),
    ("too many pins", {"pins": [DIGEST] * (MAX_PINS + 1)}, "pins"),
    (
        "retention with the attestations scope",
        {"dry_run": False, "scope": "attestations", "retention": [{"rules": [KEEP_1]}]},
        "retention",
    ),
    (
        "retention rules with one priority twice",
        {"dry_run": False, "scope": "orphans", "retention": [{"rules": [KEEP_1, KEEP_1]}]},
        "retention[0].rules[1]",
    ),
    (
        "a retention rule without its count",
        {
            "scope": "orphans",
            "retention": [{"rules": [{**KEEP_1, "selection": {"tagStatus": "any"}}]}],
        },
        "retention[0].rules[0]",
    ),
    (
        "the audit switch as a string",
        {"audit_lifecycle_policies": "off"},
        "audit_lifecycle_policies",
    ),
]


def stocked(registry: FakeRegistry) -> set[str]:
    """Orphans a real run would delete: a failed validation must not let it get that far."""
    for _ in range(3):
        registry.push_buildx("app", tag="latest", pushed_at=datetime.now(UTC) - OLD, fast=True)
    return registry.digests("app")


@pytest.mark.parametrize(
    ("event", "field"), [(e, f) for _, e, f in BAD_EVENTS], ids=[n for n, _, _ in BAD_EVENTS]
)
def test_a_bad_event_names_the_field_and_reaches_no_ecr(
    registry: FakeRegistry, invoke: Invoke, event: Any, field: str
) -> None:
    before = stocked(registry)
    wire = Wire()
    with intercept_clients(wire), pytest.raises(InvalidSettings) as raised:
        invoke(event)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}:")
    assert sum(wire.calls.values()) == 0, dict(wire.calls)
    assert wire.mutating_calls == 0
    assert registry.digests("app") == before


# scenario -> environment of a scheduled run, the variable the error must name
BAD_ENVIRONMENTS: list[tuple[str, dict[str, str], str]] = [
    ("DRY_RUN not a boolean", {"DRY_RUN": "nope"}, "DRY_RUN"),
    ("SCOPE unknown", {"DRY_RUN": "false", "SCOPE": "all"}, "SCOPE"),
    (
        "MIN_AGE_HOURS not a number",
        {"DRY_RUN": "false", "MIN_AGE_HOURS": "3 days"},
        "MIN_AGE_HOURS",
    ),
    ("MIN_AGE_HOURS negative", {"DRY_RUN": "false", "MIN_AGE_HOURS": "-5"}, "MIN_AGE_HOURS"),
    ("MIN_AGE_HOURS zero", {"DRY_RUN": "false", "MIN_AGE_HOURS": "0"}, "MIN_AGE_HOURS"),
    ("MAX_DELETIONS fractional", {"DRY_RUN": "false", "MAX_DELETIONS": "1.5"}, "MAX_DELETIONS"),
    ("CONCURRENCY too high", {"CONCURRENCY": "65"}, "CONCURRENCY"),
    ("a broken pin among good ones", {"PINS": f"{DIGEST},sha256:dead"}, "PINS[1]"),
    ("a bad pattern", {"REPOSITORIES": "app,Team/*"}, "REPOSITORIES[1]"),
    ("RETENTION not JSON", {"SCOPE": "orphans", "RETENTION": "keep 25"}, "RETENTION"),
    (
        "RETENTION with SCOPE attestations",
        {
            "DRY_RUN": "false",
            "SCOPE": "attestations",
            "RETENTION": json.dumps([{"rules": [KEEP_1]}]),
        },
        "retention",
    ),
]


def refused_before_any_call(
    registry: FakeRegistry,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    event: Any,
) -> InvalidSettings:
    """Invoke with `env` as the deployment's environment; the invocation must fail with
    InvalidSettings before any ECR call, leaving the registry as it was."""
    before = stocked(registry)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wire = Wire()
    with intercept_clients(wire), pytest.raises(InvalidSettings) as raised:
        invoke(event)
    assert sum(wire.calls.values()) == 0
    assert registry.digests("app") == before
    return raised.value


@pytest.mark.parametrize(
    ("env", "field"),
    [(e, f) for _, e, f in BAD_ENVIRONMENTS],
    ids=[n for n, _, _ in BAD_ENVIRONMENTS],
)
def test_a_scheduled_run_with_a_bad_environment_names_the_variable_and_reaches_no_ecr(
    registry: FakeRegistry,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    field: str,
) -> None:
    refused = refused_before_any_call(registry, invoke, monkeypatch, env, SCHEDULED)
    assert refused.field == field


def test_the_counting_wire_sees_a_good_run(registry: FakeRegistry, invoke: Invoke) -> None:
    """The control: the same wire does count the calls of a valid real run."""
    before = stocked(registry)
    wire = Wire()
    with intercept_clients(wire):
        report = invoke(dry_run=False, scope="orphans")
    assert wire.calls["BatchDeleteImage"] > 0
    assert wire.mutating_calls == wire.calls["BatchDeleteImage"]
    assert len(before - registry.digests("app")) == report["deleted"]["manifests"] > 0


# scenario -> the deployment's environment, a request that would loosen it, the field named
BELOW_THE_DEPLOYMENT: list[tuple[str, dict[str, str], dict[str, Any], str]] = [
    (
        "a shorter grace period",
        {"MIN_AGE_HOURS": "72"},
        {"dry_run": False, "min_age_hours": 1},
        "min_age_hours",
    ),
    (
        "a shorter pull window",
        {"KEEP_PULLED_WITHIN_DAYS": "30"},
        {"dry_run": False, "keep_pulled_within_days": 0},
        "keep_pulled_within_days",
    ),
    (
        "another required tag",
        {"REQUIRED_REPOSITORY_TAG": "ecr-sweeper=enabled"},
        {"dry_run": False, "required_repository_tag": "team=any"},
        "required_repository_tag",
    ),
]


@pytest.mark.parametrize(
    ("env", "event", "field"),
    [(e, r, f) for _, e, r, f in BELOW_THE_DEPLOYMENT],
    ids=[n for n, _, _, _ in BELOW_THE_DEPLOYMENT],
)
def test_a_request_that_loosens_the_deployment_names_the_field_and_reaches_no_ecr(
    registry: FakeRegistry,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    event: dict[str, Any],
    field: str,
) -> None:
    refused = refused_before_any_call(registry, invoke, monkeypatch, env, event)
    assert refused.field == field
    assert env[field.upper()] in str(refused)  # the floor, or the deployment's tag
