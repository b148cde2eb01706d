"""The event contract: defaults, environment, and a clear error naming the field for bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sweeper.model import Scope
from sweeper.settings import InvalidSettings, Settings, load

DIGEST = "sha256:" + "a" * 64
SCHEDULED = {
    "version": "0",
    "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-26T03:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/nightly"],
    "detail": {},
}


def test_defaults_are_a_safe_dry_run() -> None:
    settings = load({}, {})
    assert settings == Settings()
    assert settings.dry_run is True
    assert settings.scope is Scope.ATTESTATIONS
    assert settings.min_age_hours == 72


def test_environment_gives_defaults_and_the_request_overrides_them() -> None:
    env = {"DRY_RUN": "false", "MIN_AGE_HOURS": "24", "SCOPE": "orphans", "REPOSITORIES": "a,b/*"}
    settings = load({"min_age_hours": 1.5}, env)
    assert settings.dry_run is False
    assert settings.min_age_hours == 1.5
    assert settings.scope is Scope.ORPHANS
    assert settings.repositories == ("a", "b/*")


def test_scheduled_event_envelope_takes_everything_from_the_environment() -> None:
    settings = load(SCHEDULED, {"DRY_RUN": "false", "PINS": f"repo@{DIGEST}, {DIGEST}"})
    assert settings.dry_run is False
    assert [p.digest for p in settings.pins] == [DIGEST, DIGEST]


def test_pins_accept_full_image_uris() -> None:
    uri = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{DIGEST}"
    assert [p.digest for p in load({"pins": [uri]}, {}).pins] == [DIGEST]


BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("non-object event", ["dry_run"], "event"),
    ("unknown field", {"dryrun": True}, "dryrun"),
    ("dry_run as a string", {"dry_run": "false"}, "dry_run"),
    ("negative grace period", {"min_age_hours": -1}, "min_age_hours"),
    ("absurd grace period", {"min_age_hours": 10**9}, "min_age_hours"),
    ("grace period as a string", {"min_age_hours": "72"}, "min_age_hours"),
    ("grace period as a bool", {"min_age_hours": True}, "min_age_hours"),
    ("NaN grace period", {"min_age_hours": float("nan")}, "min_age_hours"),
    ("unknown scope", {"scope": "everything"}, "scope"),
    ("repositories not a list", {"repositories": "app"}, "repositories"),
    ("repository pattern not a string", {"repositories": [1]}, "repositories[0]"),
    ("unclosed bracket pattern", {"repositories": ["app[ab"]}, "repositories[0]"),
    ("upper-case pattern", {"exclude_repositories": ["App"]}, "exclude_repositories[0]"),
    ("empty pattern", {"repositories": [""]}, "repositories[0]"),
    ("huge pattern list", {"repositories": ["a"] * 101}, "repositories"),
    ("pin without a digest", {"pins": ["app:latest"]}, "pins[0]"),
    ("short digest pin", {"pins": ["sha256:abc"]}, "pins[0]"),
    ("upper-case digest pin", {"pins": ["sha256:" + "A" * 64]}, "pins[0]"),
    ("max_deletions fractional", {"max_deletions": 1.5}, "max_deletions"),
    ("concurrency zero", {"concurrency": 0}, "concurrency"),
    ("max_deletions negative", {"max_deletions": -1}, "max_deletions"),
    ("pull window as a string", {"keep_pulled_within_days": "30"}, "keep_pulled_within_days"),
    ("parameter path not a string", {"pin_parameter_path": ["/a"]}, "pin_parameter_path"),
    ("parameter path without '/'", {"pin_parameter_path": "deploy/prod"}, "pin_parameter_path"),
    ("parameter path ending in '/'", {"pin_parameter_path": "/deploy/"}, "pin_parameter_path"),
    ("parameter path root only", {"pin_parameter_path": "/"}, "pin_parameter_path"),
    ("parameter path with a space", {"pin_parameter_path": "/de ploy"}, "pin_parameter_path"),
    ("parameter path with a newline", {"pin_parameter_path": "/deploy\n"}, "pin_parameter_path"),
    ("parameter path too long", {"pin_parameter_path": "/a" * 1025}, "pin_parameter_path"),
    ("object uris not a list", {"pin_object_uris": "s3://b/k"}, "pin_object_uris"),
    ("object uri of another scheme", {"pin_object_uris": ["https://b/k"]}, "pin_object_uris[0]"),
    ("object uri without a key", {"pin_object_uris": ["s3://bucket"]}, "pin_object_uris[0]"),
    ("object uri with an empty key", {"pin_object_uris": ["s3://bucket/"]}, "pin_object_uris[0]"),
    ("object uri upper-case bucket", {"pin_object_uris": ["s3://Bucket/k"]}, "pin_object_uris[0]"),
    ("object uri short bucket", {"pin_object_uris": ["s3://ab/k"]}, "pin_object_uris[0]"),
    ("object uri with a newline", {"pin_object_uris": ["s3://bucket/k\n"]}, "pin_object_uris[0]"),
    ("object uri with a comma", {"pin_object_uris": ["s3://bucket/a,b"]}, "pin_object_uris[0]"),
    ("too many object uris", {"pin_object_uris": ["s3://bucket/k"] * 51}, "pin_object_uris"),
    ("pin_from_ecs as a string", {"pin_from_ecs": "true"}, "pin_from_ecs"),
    ("pin_from_lambda as a number", {"pin_from_lambda": 1}, "pin_from_lambda"),
]


@pytest.mark.parametrize(
    ("event", "field"), [(e, f) for _, e, f in BAD_REQUESTS], ids=[n for n, _, _ in BAD_REQUESTS]
)
def test_bad_request_names_the_field(event: Any, field: str) -> None:
    with pytest.raises(InvalidSettings) as raised:
        load(event, {})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}:")


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"DRY_RUN": "maybe"}, "DRY_RUN"),
        ({"MIN_AGE_HOURS": "soon"}, "MIN_AGE_HOURS"),
        ({"SCOPE": "all"}, "SCOPE"),
        ({"PINS": "sha256:123"}, "PINS[0]"),
        ({"REPOSITORIES": "ok,Bad"}, "REPOSITORIES[1]"),
        ({"MAX_DELETIONS": "lots"}, "MAX_DELETIONS"),
        ({"KEEP_PULLED_WITHIN_DAYS": "-1"}, "KEEP_PULLED_WITHIN_DAYS"),
        ({"PIN_PARAMETER_PATH": "deploy"}, "PIN_PARAMETER_PATH"),
        ({"PIN_OBJECT_URIS": "s3://bucket/k, s3:/bucket/k"}, "PIN_OBJECT_URIS[1]"),
        ({"PIN_FROM_ECS": "sometimes"}, "PIN_FROM_ECS"),
        ({"PIN_FROM_LAMBDA": "2"}, "PIN_FROM_LAMBDA"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidSettings) as raised:
        load({}, env)
    assert raised.value.field == field


def test_guards_follow_the_event_over_environment_rule() -> None:
    env = {"MAX_DELETIONS": "100", "KEEP_PULLED_WITHIN_DAYS": "7"}
    assert (load({}, env).max_deletions, load({}, env).keep_pulled_within_days) == (100, 7)
    settings = load({"max_deletions": 5, "keep_pulled_within_days": 0.5}, env)
    assert (settings.max_deletions, settings.keep_pulled_within_days) == (5, 0.5)
    assert load(SCHEDULED, env).max_deletions == 100
    assert Settings().max_deletions == 5000
    assert Settings().keep_pulled_within_days == 30


def test_pin_sources_are_off_by_default_and_follow_the_same_rule() -> None:
    settings = load({}, {})
    assert settings.pin_parameter_path == ""
    assert settings.pin_object_uris == ()
    assert (settings.pin_from_ecs, settings.pin_from_lambda) == (False, False)
    env = {
        "PIN_PARAMETER_PATH": "/deploy/prod",
        "PIN_OBJECT_URIS": "s3://deploy-configs/prod.yaml, s3://pins.example/a/b.json",
        "PIN_FROM_ECS": "true",
        "PIN_FROM_LAMBDA": "yes",
    }
    settings = load(SCHEDULED, env)
    assert settings.pin_parameter_path == "/deploy/prod"
    assert settings.pin_object_uris == (
        "s3://deploy-configs/prod.yaml",
        "s3://pins.example/a/b.json",
    )
    assert (settings.pin_from_ecs, settings.pin_from_lambda) == (True, True)
    request = {"pin_parameter_path": "", "pin_object_uris": [], "pin_from_ecs": False}
    settings = load(request, env)  # the request switches sources off for one invocation
    assert (settings.pin_parameter_path, settings.pin_object_uris) == ("", ())
    assert (settings.pin_from_ecs, settings.pin_from_lambda) == (False, True)


# --- retention and the audit of ECR's lifecycle policies ----------------------------------------

KEEP_25_CI: dict[str, Any] = {
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
UNTAGGED_3_DAYS: dict[str, Any] = {
    "rulePriority": 2,
    "selection": {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 3,
    },
    "action": {"type": "expire"},
}


def test_retention_takes_ecr_rules_verbatim_per_repository_pattern() -> None:
    retention = [
        {"repositories": ["web", "api-*"], "rules": [UNTAGGED_3_DAYS, KEEP_25_CI]},
        {"rules": [KEEP_25_CI]},  # every other swept repository
    ]
    settings = load({"scope": "orphans", "retention": retention}, {})
    first, rest = settings.retention
    assert first.repositories == ("web", "api-*")
    assert [r.priority for r in first.policy.rules] == [1, 2]
    assert first.policy.rules[0].label == "rule 1: keep 25 CI builds"
    assert rest.repositories == ()
    env = {"SCOPE": "orphans", "RETENTION": json.dumps(retention)}
    assert load(SCHEDULED, env).retention == settings.retention


def test_retention_and_the_audit_default_to_none_and_on() -> None:
    settings = load({}, {})
    assert settings.retention == ()
    assert settings.audit_lifecycle_policies is True
    assert load({"audit_lifecycle_policies": False}, {}).audit_lifecycle_policies is False
    assert load({}, {"AUDIT_LIFECYCLE_POLICIES": "false"}).audit_lifecycle_policies is False


def test_retention_needs_scope_orphans_and_the_error_names_both() -> None:
    with pytest.raises(InvalidSettings) as raised:
        load({"scope": "attestations", "retention": [{"rules": [KEEP_25_CI]}]}, {})
    assert raised.value.field == "retention"
    assert "scope 'orphans'" in str(raised.value)
    assert "scope is 'attestations'" in str(raised.value)
    with pytest.raises(InvalidSettings, match="retention: needs scope"):
        load({}, {"SCOPE": "attestations", "RETENTION": json.dumps([{"rules": [KEEP_25_CI]}])})
    assert load({"scope": "attestations", "retention": []}, {}).retention == ()


BAD_RETENTION: list[tuple[str, Any, str, str]] = [
    # scenario, retention, the field the error names, what it says
    ("an object instead of a list", {"rules": [KEEP_25_CI]}, "retention", "list of policies"),
    ("a policy that is a list", [[KEEP_25_CI]], "retention[0]", "must be an object"),
    ("a misspelt key", [{"rule": [KEEP_25_CI]}], "retention[0]", "unknown field 'rule'"),
    ("no rules", [{"repositories": ["web"]}], "retention[0].rules", "non-empty list"),
    (
        "a bad pattern",
        [{"repositories": ["Web"], "rules": [KEEP_25_CI]}],
        "retention[0].repositories[0]",
        "Web",
    ),
    (
        "the second policy's duplicate priority",
        [{"rules": [KEEP_25_CI]}, {"rules": [KEEP_25_CI, KEEP_25_CI]}],
        "retention[1].rules[1]",
        "rulePriority 1: retention[1].rules[0] has the same priority",
    ),
    (
        "an untagged rule with a prefix list",
        [
            {
                "rules": [
                    {
                        **UNTAGGED_3_DAYS,
                        "selection": {**UNTAGGED_3_DAYS["selection"], "tagPrefixList": ["x"]},
                    }
                ]
            }
        ],
        "retention[0].rules[0]",
        "rulePriority 2: tagStatus 'untagged' takes no",
    ),
    (
        "a transition",
        [
            {
                "rules": [
                    {
                        **KEEP_25_CI,
                        "action": {"type": "transition", "targetStorageClass": "archive"},
                    }
                ]
            }
        ],
        "retention[0].rules[0]",
        "rulePriority 1: action 'transition' (to archive) is not supported by retention",
    ),
    ("the audit as a string", None, "audit_lifecycle_policies", "true or false"),
]


@pytest.mark.parametrize(
    ("retention", "field", "message"),
    [case[1:] for case in BAD_RETENTION],
    ids=[case[0] for case in BAD_RETENTION],
)
def test_bad_retention_names_retention_and_the_rule(
    retention: Any, field: str, message: str
) -> None:
    request = (
        {"audit_lifecycle_policies": "yes"}
        if retention is None
        else {"scope": "orphans", "retention": retention}
    )
    with pytest.raises(InvalidSettings) as raised:
        load(request, {})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert message in str(raised.value)


def test_retention_in_the_environment_must_be_json() -> None:
    with pytest.raises(InvalidSettings) as raised:
        load({}, {"SCOPE": "orphans", "RETENTION": "keep 25 ci builds"})
    assert raised.value.field == "RETENTION"
    with pytest.raises(InvalidSettings) as raised:
        load({}, {"SCOPE": "orphans", "RETENTION": json.dumps([{"rules": [{}]}])})
    assert raised.value.field == "RETENTION[0].rules[0]"
