"""The event contract: defaults, environment, and a clear error naming the field for bad input."""

from __future__ import annotations

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
    assert settings.scope is Scope.ORPHANS  # the default reclaims what buildx leaves behind
    assert settings.policy.scope is Scope.ORPHANS
    assert settings.min_age_hours == 72


def test_environment_gives_defaults_and_the_request_overrides_them() -> None:
    env = {
        "DRY_RUN": "false",
        "MIN_AGE_HOURS": "24",
        "SCOPE": "attestations",
        "REPOSITORIES": "a,b/*",
    }
    settings = load({"min_age_hours": 1.5}, env)
    assert settings.dry_run is False
    assert settings.min_age_hours == 1.5
    assert settings.scope is Scope.ATTESTATIONS  # not the default: the environment set it
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
