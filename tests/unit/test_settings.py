"""The event contract: defaults, environment, and a clear error naming the field for bad input."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest

from conftest import FUNCTION_PRINCIPAL
from sweeper.model import Scope
from sweeper.run import select_repositories
from sweeper.settings import ENVIRONMENT_VARIABLES, FIELDS, MERGE, InvalidSettings, Settings, load

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
    env = {"DRY_RUN": "false", "MIN_AGE_HOURS": "24", "SCOPE": "orphans", "REPOSITORIES": "a,b/*"}
    settings = load({"min_age_hours": 36.5, "scope": "attestations"}, env)
    assert settings.dry_run is False
    assert settings.min_age_hours == 36.5
    assert settings.scope is Scope.ATTESTATIONS
    assert settings.repositories == ("a", "b/*")
    assert load({"repositories": ["c"]}, env).repositories == ("c",)


# --- a request tightens the deployment, never loosens it ---------------------------------------

DEPLOYED = {
    "PINS": f"app@{DIGEST}",
    "PIN_PARAMETER_PATH": "/deploy/prod",
    "PIN_OBJECT_URIS": "s3://deploy-configs/prod.yaml",
    "PIN_FROM_ECS": "true",
    "PIN_FROM_LAMBDA": "true",
    "EXCLUDE_REPOSITORIES": "prod/*",
    "MIN_AGE_HOURS": "72",
    "KEEP_PULLED_WITHIN_DAYS": "30",
    "MAX_DELETIONS": "100",
    "REQUIRED_REPOSITORY_TAG": "ecr-sweeper=enabled",
}
OTHER = "sha256:" + "b" * 64


def test_every_field_has_a_rule_for_meeting_the_deployment() -> None:
    assert set(MERGE) == set(FIELDS)


def test_every_setting_has_an_environment_variable_that_load_reads_and_names() -> None:
    # The suite clears ENVIRONMENT_VARIABLES (conftest): each must be one load reads, and every
    # field a deployment can set must have one, or a shell's stray export reaches the tests.
    fields = {f.name for f in dataclasses.fields(Settings)} - {"within_repositories"}
    assert {name.lower() for name in ENVIRONMENT_VARIABLES} == fields
    for variable in ENVIRONMENT_VARIABLES:
        with pytest.raises(InvalidSettings) as refused:
            load({}, {variable: "\x01"})
        assert refused.value.field.split("[")[0] == variable


def test_no_setting_of_the_developers_shell_reaches_a_test() -> None:
    # Only what the suite itself sets (conftest: the function's role, for pull-time exclusions).
    found = {name: os.environ[name] for name in ENVIRONMENT_VARIABLES if name in os.environ}
    assert found == {"SWEEPER_ROLE_ARN": FUNCTION_PRINCIPAL}


def test_a_request_adds_to_the_deployments_pins_sources_and_exclusions() -> None:
    settings = load(
        {
            "pins": [OTHER],
            "pin_parameter_path": "/deploy/staging",
            "pin_object_uris": ["s3://deploy-configs/staging.yaml"],
            "exclude_repositories": ["keep-*"],
        },
        DEPLOYED,
    )
    assert [p.digest for p in settings.pins] == [DIGEST, OTHER]
    assert settings.pin_parameter_path == ("/deploy/prod", "/deploy/staging")
    assert settings.pin_object_uris == (
        "s3://deploy-configs/prod.yaml",
        "s3://deploy-configs/staging.yaml",
    )
    assert settings.exclude_repositories == ("prod/*", "keep-*")


def test_a_request_adds_workload_roles_and_regions_never_removes_them() -> None:
    role = "arn:aws:iam::222222222222:role/ecr-sweeper-reader"
    other = "arn:aws:iam::333333333333:role/ecr-sweeper-reader"
    env = {"PIN_ROLE_ARNS": role, "PIN_REGIONS": "eu-west-1"}
    settings = load({"pin_role_arns": [other, role], "pin_regions": ["us-west-2"]}, env)
    assert settings.pin_role_arns == (role, other)
    assert settings.pin_regions == ("eu-west-1", "us-west-2")
    assert load({"pin_role_arns": [], "pin_regions": []}, env) == load({}, env)


@pytest.mark.parametrize(
    ("env", "request_", "field"),
    [
        ({"PIN_FROM_EKS": "true"}, {"eks_clusters": ["prod"]}, "eks_clusters"),
        ({"PIN_FROM_EKS": "true"}, {"eks_skip_clusters": ["prod"]}, "eks_skip_clusters"),
        (
            {"PIN_FROM_EKS": "true", "EKS_SKIP_CLUSTERS": "lab"},
            {"eks_skip_clusters": ["lab", "prod"]},
            "eks_skip_clusters",
        ),
    ],
    ids=["narrow-every-cluster", "skip-one-more", "skip-beyond-the-deployments"],
)
def test_a_request_may_not_read_fewer_eks_clusters(
    env: dict[str, str], request_: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSettings) as raised:
        load(request_, env)
    assert raised.value.field == field


def test_a_request_may_add_eks_clusters_to_a_deployments_list() -> None:
    env = {"PIN_FROM_EKS": "true", "EKS_CLUSTERS": "prod", "EKS_SKIP_CLUSTERS": "lab"}
    settings = load({"eks_clusters": ["staging"], "eks_skip_clusters": ["lab"]}, env)
    assert settings.eks_clusters == ("prod", "staging")
    assert settings.eks_skip_clusters == ("lab",)
    assert load({"pin_from_eks": True, "eks_clusters": ["prod"]}, {}).eks_clusters == ("prod",)


def test_a_request_cannot_switch_off_what_the_deployment_protects() -> None:
    off = {
        "pins": [],
        "pin_parameter_path": "",
        "pin_object_uris": [],
        "pin_from_ecs": False,
        "pin_from_lambda": False,
        "exclude_repositories": [],
        "required_repository_tag": "",
    }
    assert load(off, DEPLOYED) == load({}, DEPLOYED)
    settings = load(off, DEPLOYED)
    assert (settings.pin_from_ecs, settings.pin_from_lambda) == (True, True)
    assert settings.required_tag == ("ecr-sweeper", "enabled")


@pytest.mark.parametrize(
    ("field", "value", "floor"),
    [
        ("min_age_hours", 71.5, "72 (MIN_AGE_HOURS)"),
        ("min_age_hours", 1, "72 (MIN_AGE_HOURS)"),
        ("keep_pulled_within_days", 29, "30 (KEEP_PULLED_WITHIN_DAYS)"),
        ("keep_pulled_within_days", 0, "30 (KEEP_PULLED_WITHIN_DAYS)"),
    ],
)
def test_a_request_below_the_deployments_floor_names_the_field_and_the_floor(
    field: str, value: float, floor: str
) -> None:
    with pytest.raises(InvalidSettings) as raised:
        load({field: value}, DEPLOYED)
    assert raised.value.field == field
    assert floor in str(raised.value)


def test_a_request_may_lengthen_the_guards_and_move_the_circuit_breaker_either_way() -> None:
    settings = load(
        {"min_age_hours": 96, "keep_pulled_within_days": 60, "max_deletions": 6210}, DEPLOYED
    )
    assert (settings.min_age_hours, settings.keep_pulled_within_days) == (96, 60)
    assert settings.max_deletions == 6210  # past the breaker, once: the documented way
    assert load({"max_deletions": 5}, DEPLOYED).max_deletions == 5


def test_a_request_may_add_a_required_tag_but_not_change_the_deployments() -> None:
    assert load({"required_repository_tag": "team=a"}, {}).required_tag == ("team", "a")
    same = {"required_repository_tag": "ecr-sweeper=enabled"}
    assert load(same, DEPLOYED).required_tag == ("ecr-sweeper", "enabled")
    with pytest.raises(InvalidSettings, match="ecr-sweeper=enabled") as raised:
        load({"required_repository_tag": "team=a"}, DEPLOYED)
    assert raised.value.field == "required_repository_tag"


def test_without_an_environment_only_the_absolute_minimums_hold() -> None:
    # The command line passes no environment: an operator's own credentials, their own floors.
    settings = load({"min_age_hours": 1, "keep_pulled_within_days": 0}, {})
    assert (settings.min_age_hours, settings.keep_pulled_within_days) == (1, 0)


@pytest.mark.parametrize("hours", [0, 0.5, 0.999])
def test_the_grace_period_is_at_least_one_hour_in_a_request_and_the_environment(
    hours: float,
) -> None:
    with pytest.raises(InvalidSettings, match="at least 1") as raised:
        load({"min_age_hours": hours}, {})
    assert raised.value.field == "min_age_hours"
    with pytest.raises(InvalidSettings) as raised:
        load({}, {"MIN_AGE_HOURS": str(hours)})
    assert raised.value.field == "MIN_AGE_HOURS"


def test_an_empty_repository_list_is_refused_not_every_repository() -> None:
    with pytest.raises(InvalidSettings, match="omit the field for every repository") as raised:
        load({"repositories": []}, {})
    assert raised.value.field == "repositories"
    assert load({}, {}).repositories == ()  # omitted: every repository


@pytest.mark.parametrize(
    "pattern", ["keep-*\n", "keep-*\r", "\tkeep", "keep\x00", "keep\x7f", "keep-*\n\n"]
)
def test_patterns_with_control_characters_are_refused(pattern: str) -> None:
    for field in ("repositories", "exclude_repositories"):
        with pytest.raises(InvalidSettings, match="control characters") as raised:
            load({field: ["ok", pattern]}, {})
        assert raised.value.field == f"{field}[1]"


def test_upper_case_digests_are_normalised_in_the_pins_setting() -> None:
    upper = "sha256:" + "AbCd" * 16
    expected = upper.lower()
    assert [p.digest for p in load({"pins": [f"app@{upper}"]}, {}).pins] == [expected]
    assert [p.digest for p in load({}, {"PINS": upper}).pins] == [expected]
    with pytest.raises(InvalidSettings):
        load({"pins": ["sha256:" + "A" * 63]}, {})  # still broken: 63 digits


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
    ("upper-case short digest pin", {"pins": ["sha256:" + "A" * 63]}, "pins[0]"),
    ("max_deletions fractional", {"max_deletions": 1.5}, "max_deletions"),
    ("concurrency zero", {"concurrency": 0}, "concurrency"),
    ("max_deletions negative", {"max_deletions": -1}, "max_deletions"),
    ("pull window as a string", {"keep_pulled_within_days": "30"}, "keep_pulled_within_days"),
    ("parameter path not a string", {"pin_parameter_path": 7}, "pin_parameter_path"),
    (
        "parameter paths with a bad one",
        {"pin_parameter_path": ["/a", "b"]},
        "pin_parameter_path[1]",
    ),
    ("object uri with a wildcard", {"pin_object_uris": ["s3://bucket/*"]}, "pin_object_uris[0]"),
    ("object uri with a ?", {"pin_object_uris": ["s3://bucket/a?"]}, "pin_object_uris[0]"),
    ("object uri with a control", {"pin_object_uris": ["s3://bucket/a\x01"]}, "pin_object_uris[0]"),
    ("required tag without '='", {"required_repository_tag": "enabled"}, "required_repository_tag"),
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
    (
        "role arn with a wildcard",
        {"pin_role_arns": ["arn:aws:iam::222222222222:role/*"]},
        "pin_role_arns[0]",
    ),
    (
        "role arn of a user",
        {"pin_role_arns": ["arn:aws:iam::222222222222:user/u"]},
        "pin_role_arns[0]",
    ),
    ("role arn short account", {"pin_role_arns": ["arn:aws:iam::2222:role/r"]}, "pin_role_arns[0]"),
    (
        "role arns not a list",
        {"pin_role_arns": "arn:aws:iam::222222222222:role/r"},
        "pin_role_arns",
    ),
    (
        "too many role arns",
        {"pin_role_arns": ["arn:aws:iam::222222222222:role/r"] * 51},
        "pin_role_arns",
    ),
    ("region misspelt", {"pin_regions": ["eu-west"]}, "pin_regions[0]"),
    ("region upper case", {"pin_regions": ["EU-WEST-1"]}, "pin_regions[0]"),
    ("region not a string", {"pin_regions": [1]}, "pin_regions[0]"),
    ("eks cluster with a slash", {"eks_clusters": ["a/b"]}, "eks_clusters[0]"),
    ("eks skip not a list", {"eks_skip_clusters": "sandbox"}, "eks_skip_clusters"),
    ("pin_from_eks as a string", {"pin_from_eks": "yes"}, "pin_from_eks"),
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
        ({"PIN_ROLE_ARNS": "arn:aws:iam::222222222222:role/r,role/r"}, "PIN_ROLE_ARNS[1]"),
        ({"PIN_REGIONS": "eu-west-1 mars-1"}, "PIN_REGIONS[1]"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidSettings) as raised:
        load({}, env)
    assert raised.value.field == field


def test_guards_follow_the_event_over_environment_rule() -> None:
    env = {"MAX_DELETIONS": "100", "KEEP_PULLED_WITHIN_DAYS": "7"}
    assert (load({}, env).max_deletions, load({}, env).keep_pulled_within_days) == (100, 7)
    settings = load({"max_deletions": 5, "keep_pulled_within_days": 7.5}, env)
    assert (settings.max_deletions, settings.keep_pulled_within_days) == (5, 7.5)
    assert load(SCHEDULED, env).max_deletions == 100
    assert Settings().max_deletions == 5000
    assert Settings().keep_pulled_within_days == 30


def test_pin_sources_are_off_by_default_and_follow_the_same_rule() -> None:
    settings = load({}, {})
    assert settings.pin_parameter_path == ()
    assert settings.pin_object_uris == ()
    assert (settings.pin_from_ecs, settings.pin_from_lambda) == (False, False)
    env = {
        "PIN_PARAMETER_PATH": "/deploy/prod",
        "PIN_OBJECT_URIS": "s3://deploy-configs/prod.yaml, s3://pins.example/a/b.json",
        "PIN_FROM_ECS": "true",
        "PIN_FROM_LAMBDA": "yes",
    }
    settings = load(SCHEDULED, env)
    assert settings.pin_parameter_path == ("/deploy/prod",)
    assert settings.pin_object_uris == (
        "s3://deploy-configs/prod.yaml",
        "s3://pins.example/a/b.json",
    )
    assert (settings.pin_from_ecs, settings.pin_from_lambda) == (True, True)
    # A request switches a source on, or points one elsewhere too, for one invocation.
    request = {"pin_parameter_path": "/deploy/canary", "pin_from_ecs": True}
    settings = load(request, {})
    assert (settings.pin_parameter_path, settings.pin_from_ecs) == (("/deploy/canary",), True)
    assert load({"pin_parameter_path": ["/a", "/b", "/a"]}, {}).pin_parameter_path == ("/a", "/b")


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


def test_a_request_narrowing_to_attestations_runs_without_the_deployments_retention() -> None:
    """Narrowing drops rules (retention only deletes more): the README's "a request may
    narrow" holds on a deployment with retention."""
    env = {"SCOPE": "orphans", "RETENTION": json.dumps([{"rules": [KEEP_25_CI]}])}
    settings = load({"dry_run": False, "scope": "attestations"}, env)
    assert settings.scope is Scope.ATTESTATIONS
    assert settings.retention == ()
    assert load({"scope": "orphans"}, env).retention != ()
    assert load({}, {k: v for k, v in env.items() if k != "SCOPE"}).retention != ()


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


# --- a request tightens, never loosens: dry run, scope, retention, repositories ----------------

LOOSENING = [
    ("a real run on a dry-run deployment", {"dry_run": False}, {"DRY_RUN": "true"}, "dry_run"),
    (
        "orphans on an attestations deployment",
        {"scope": "orphans"},
        {"SCOPE": "attestations"},
        "scope",
    ),
    (
        "retention rules in a real run",
        {"dry_run": False, "scope": "orphans", "retention": [{"rules": [KEEP_25_CI]}]},
        {"DRY_RUN": "false"},
        "retention",
    ),
]


@pytest.mark.parametrize(
    ("request_", "environ", "field"),
    [case[1:] for case in LOOSENING],
    ids=[case[0] for case in LOOSENING],
)
def test_a_request_that_would_loosen_the_deployment_is_refused_naming_the_field(
    request_: dict[str, Any], environ: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidSettings) as raised:
        load(request_, environ)
    assert raised.value.field == field


def test_what_a_request_may_still_do_tightens_or_previews() -> None:
    assert load({"dry_run": True}, {"DRY_RUN": "false"}).dry_run is True
    assert load({"scope": "attestations"}, {"SCOPE": "orphans"}).scope is Scope.ATTESTATIONS
    preview = load({"scope": "orphans", "retention": [{"rules": [KEEP_25_CI]}]}, {"A": "b"})
    assert preview.dry_run and preview.retention
    # The command line reads no environment: its operator is the deployment.
    request = {"dry_run": False, "scope": "orphans", "retention": [{"rules": [KEEP_25_CI]}]}
    assert load(request, {}).retention


def test_a_requests_repositories_narrow_the_deployments_never_widen_them() -> None:
    settings = load({"repositories": ["team-a-*", "other"]}, {"REPOSITORIES": "team-*"})
    assert settings.within_repositories == ("team-*",)
    names = ["team-a-web", "team-b-web", "other"]
    selected = select_repositories(
        names,
        settings.repositories,
        settings.exclude_repositories,
        settings.within_repositories,
    )
    assert selected == ["team-a-web"]


# --- limits, exactly (what mutation testing found unguarded) -------------------------------------


RETENTION_ENTRY = {
    "rules": [
        {
            "rulePriority": 1,
            "selection": {
                "tagStatus": "untagged",
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        }
    ]
}
# field -> (the largest or smallest value accepted, the first refused)
LIMITS: dict[str, tuple[Any, Any]] = {
    "max_deletions": (0, -1),
    "concurrency": (1, 0),
    "keep_pulled_within_days": (365 * 10, 365 * 10 + 0.5),
    "min_age_hours": (24 * 365 * 10, 24 * 365 * 10 + 1),
    "exclude_repositories": (["a"] * 100, ["a"] * 101),
    "pins": ([DIGEST] * 10_000, [DIGEST] * 10_001),
    "pin_parameter_path": ("/" + "p" * 2047, "/" + "p" * 2048),
    "retention": ([RETENTION_ENTRY] * 100, [RETENTION_ENTRY] * 101),
}


@pytest.mark.parametrize(("field", "values"), LIMITS.items(), ids=LIMITS.keys())
def test_each_limit_accepts_its_last_value_and_refuses_the_next(
    field: str, values: tuple[Any, Any]
) -> None:
    accepted, refused = values
    load({field: accepted}, {})
    with pytest.raises(InvalidSettings) as error:
        load({field: refused}, {})
    assert error.value.field == field


def test_a_pattern_has_at_most_256_characters_and_brackets_that_close_once() -> None:
    for fine in ("a" * 256, "[ab]c[de]", "x[!a]"):
        assert load({"exclude_repositories": [fine]}, {}).exclude_repositories == (fine,)
    for bad, why in (("a" * 257, "1 to 256"), ("[a[b]]", "nested"), ("a]", "without")):
        with pytest.raises(InvalidSettings, match=why):
            load({"exclude_repositories": [bad]}, {})
    assert len(load({}, {"PINS": " ".join([DIGEST] * 10_000)}).pins) == 10_000
    with pytest.raises(InvalidSettings, match="at most 10000 entries"):
        load({}, {"PINS": " ".join([DIGEST] * 10_001)})


def test_the_upper_limits_of_whole_numbers_are_accepted() -> None:
    settings = load({"concurrency": 64, "max_deletions": 1_000_000}, {})
    assert (settings.concurrency, settings.max_deletions) == (64, 1_000_000)
    with pytest.raises(InvalidSettings) as error:
        load({"pin_parameter_path": [f"/p{i}" for i in range(11)]}, {})
    assert error.value.field == "pin_parameter_path"


def test_a_request_equal_to_the_deployments_floor_or_scope_is_no_loosening() -> None:
    deployed = {"MIN_AGE_HOURS": "72", "KEEP_PULLED_WITHIN_DAYS": "30", "SCOPE": "orphans"}
    settings = load(
        {"min_age_hours": 72, "keep_pulled_within_days": 30, "scope": "orphans"}, deployed
    )
    assert (settings.min_age_hours, settings.keep_pulled_within_days) == (72, 30)
    assert load({"scope": "attestations"}, deployed).scope is Scope.ATTESTATIONS


def test_only_an_eventbridge_schedule_is_an_envelope_without_settings() -> None:
    assert load(None, {"SCOPE": "attestations"}).scope is Scope.ATTESTATIONS
    for half in ({"detail-type": "Scheduled Event"}, {"source": "aws.events"}):
        with pytest.raises(InvalidSettings, match="unknown field"):
            load(half, {})


def test_every_pin_says_where_it_came_from() -> None:
    uri = f"app@{DIGEST}"
    settings = load({"pins": [uri]}, {"PINS": f"other@{OTHER}"})
    assert [(p.digest, p.source) for p in settings.pins] == [
        (OTHER, f"env:other@{OTHER}"),
        (DIGEST, f"event:{uri}"),
    ]


# --- every error, word for word -----------------------------------------------------------------
# The contract of bad input is a clear error naming the field: these are the errors, in full,
# so that a change to what one says (a limit, the value shown, the field named) is a decision.

ROLE = "arn:aws:iam::222222222222:role/r"
KNOWN_FIELDS = (
    "audit_lifecycle_policies, concurrency, dry_run, eks_clusters, eks_skip_clusters, "
    "exclude_repositories, keep_pulled_within_days, max_deletions, min_age_hours, pin_from_ecs, "
    "pin_from_eks, pin_from_inspector, pin_from_lambda, pin_object_uris, pin_parameter_path, "
    "pin_regions, pin_role_arns, pins, repositories, required_repository_tag, retention, scope"
)
PATTERN_WORDS = "use lower-case repository names with the globs * ? [...]"
DIGEST_WORDS = "does not contain a valid digest (sha256:[0-9a-f]{64})"
OBJECT_WORDS = (
    "is not s3://bucket/key (a bucket name and an object key, without white space, commas, "
    "control characters or the wildcards * and ?)"
)
ROLE_WORDS = "is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>, no wildcards)"
SKIP_WORDS = (
    "a request may not leave out a cluster the deployment reads (EKS_SKIP_CLUSTERS is the "
    "deployment's)"
)
YOUNG_WORDS = "must be at least 1 (children of an in-flight push arrive before their index)"
RULE = RETENTION_ENTRY["rules"][0]

# scenario, request, environment, the full error
ERRORS: list[tuple[str, Any, dict[str, str], str]] = [
    ("an event that is a list", ["dry_run"], {}, "event: must be a JSON object, got list"),
    (
        "two unknown fields",
        {"dryrun": True, "zz": 1},
        {},
        f"dryrun: unknown field (known: {KNOWN_FIELDS})",
    ),
    (
        "dry_run as a string",
        {"dry_run": "false"},
        {},
        'dry_run: must be true or false (a JSON boolean), got a string ("false")',
    ),
    (
        "dry_run as a number",
        {"dry_run": 0},
        {},
        "dry_run: must be true or false (a JSON boolean), got 0",
    ),
    ("DRY_RUN misspelt", {}, {"DRY_RUN": "maybe"}, "DRY_RUN: must be true or false, got 'maybe'"),
    (
        "REGISTER_PULL_TIME_EXCLUSION misspelt",
        {},
        {"REGISTER_PULL_TIME_EXCLUSION": "y"},
        "REGISTER_PULL_TIME_EXCLUSION: must be true or false, got 'y'",
    ),
    (
        "grace period as a string",
        {"min_age_hours": "72"},
        {},
        "min_age_hours: must be a number, got '72'",
    ),
    (
        "grace period NaN",
        {"min_age_hours": float("nan")},
        {},
        "min_age_hours: must be a number, got nan",
    ),
    (
        "grace period negative",
        {"min_age_hours": -1},
        {},
        "min_age_hours: must be between 0 and 87600, got -1",
    ),
    (
        "grace period past any float",
        {"min_age_hours": 10**400},
        {},
        "min_age_hours: must be between 0 and 87600, got 10000000000000000000... (401 digits)",
    ),
    (
        "grace period of 40 digits",
        {"min_age_hours": 10**39},
        {},
        "min_age_hours: must be between 0 and 87600, got 1" + "0" * 39,
    ),
    (
        "grace period of 41 digits",
        {"min_age_hours": 10**40},
        {},
        "min_age_hours: must be between 0 and 87600, got 10000000000000000000... (41 digits)",
    ),
    (
        "grace period under an hour",
        {"min_age_hours": 0.5},
        {},
        f"min_age_hours: {YOUNG_WORDS}, got 0.5",
    ),
    (
        "MIN_AGE_HOURS not a number",
        {},
        {"MIN_AGE_HOURS": "soon"},
        "MIN_AGE_HOURS: must be a number, got 'soon'",
    ),
    (
        "MIN_AGE_HOURS under an hour",
        {},
        {"MIN_AGE_HOURS": "0.5"},
        f"MIN_AGE_HOURS: {YOUNG_WORDS}, got 0.5",
    ),
    (
        "pull window too long",
        {"keep_pulled_within_days": 3650.5},
        {},
        "keep_pulled_within_days: must be between 0 and 3650, got 3650.5",
    ),
    (
        "KEEP_PULLED_WITHIN_DAYS negative",
        {},
        {"KEEP_PULLED_WITHIN_DAYS": "-1"},
        "KEEP_PULLED_WITHIN_DAYS: must be between 0 and 3650, got -1",
    ),
    (
        "max_deletions fractional",
        {"max_deletions": 1.5},
        {},
        "max_deletions: must be a whole number, got 1.5",
    ),
    (
        "max_deletions negative",
        {"max_deletions": -1},
        {},
        "max_deletions: must be between 0 and 1000000, got -1",
    ),
    (
        "MAX_DELETIONS fractional",
        {},
        {"MAX_DELETIONS": "2.5"},
        "MAX_DELETIONS: must be a whole number, got 2.5",
    ),
    (
        "MAX_DELETIONS not a number",
        {},
        {"MAX_DELETIONS": "lots"},
        "MAX_DELETIONS: must be a number, got 'lots'",
    ),
    ("concurrency zero", {"concurrency": 0}, {}, "concurrency: must be between 1 and 64, got 0"),
    (
        "CONCURRENCY too many",
        {},
        {"CONCURRENCY": "65"},
        "CONCURRENCY: must be between 1 and 64, got 65",
    ),
    (
        "JOURNAL_RETENTION_DAYS zero",
        {},
        {"JOURNAL_RETENTION_DAYS": "0"},
        "JOURNAL_RETENTION_DAYS: must be between 1 and 3650, got 0",
    ),
    (
        "JOURNAL_RETENTION_DAYS not a number",
        {},
        {"JOURNAL_RETENTION_DAYS": "month"},
        "JOURNAL_RETENTION_DAYS: must be a number, got 'month'",
    ),
    (
        "scope unknown",
        {"scope": "everything"},
        {},
        "scope: must be 'attestations' or 'orphans', got 'everything'",
    ),
    (
        "SCOPE unknown",
        {},
        {"SCOPE": "all"},
        "SCOPE: must be 'attestations' or 'orphans', got 'all'",
    ),
    (
        "repositories not a list",
        {"repositories": "app"},
        {},
        "repositories: must be a list of strings, got str",
    ),
    (
        "repositories too many",
        {"repositories": ["a"] * 101},
        {},
        "repositories: at most 100 entries, got 101",
    ),
    (
        "a repository not a string",
        {"repositories": ["a", 1]},
        {},
        "repositories[1]: must be a string, got 1",
    ),
    (
        "repositories empty",
        {"repositories": []},
        {},
        "repositories: an empty list: omit the field for every repository",
    ),
    (
        "pattern too long",
        {"exclude_repositories": ["a" * 257]},
        {},
        "exclude_repositories[0]: a pattern has 1 to 256 characters",
    ),
    (
        "pattern with a control character",
        {"exclude_repositories": ["a\x01"]},
        {},
        "exclude_repositories[0]: 'a\\x01': control characters are not allowed",
    ),
    (
        "pattern in upper case",
        {"exclude_repositories": ["ok", "App"]},
        {},
        f"exclude_repositories[1]: 'App': {PATTERN_WORDS}",
    ),
    (
        "pattern with nested brackets",
        {"exclude_repositories": ["[a[b]]"]},
        {},
        "exclude_repositories[0]: '[a[b]]': nested '['",
    ),
    (
        "pattern closing a bracket it did not open",
        {"exclude_repositories": ["a]"]},
        {},
        "exclude_repositories[0]: 'a]': ']' without '['",
    ),
    (
        "pattern with an unclosed bracket",
        {"exclude_repositories": ["a[b"]},
        {},
        "exclude_repositories[0]: 'a[b': unclosed '['",
    ),
    (
        "REPOSITORIES with a bad one",
        {},
        {"REPOSITORIES": "ok, Bad"},
        f"REPOSITORIES[1]: 'Bad': {PATTERN_WORDS}",
    ),
    (
        "EXCLUDE_REPOSITORIES with a bad one",
        {},
        {"EXCLUDE_REPOSITORIES": "ok Bad"},
        f"EXCLUDE_REPOSITORIES[1]: 'Bad': {PATTERN_WORDS}",
    ),
    ("pin without a digest", {"pins": ["app:latest"]}, {}, f"pins[0]: 'app:latest' {DIGEST_WORDS}"),
    (
        "pin with a short digest",
        {"pins": [DIGEST, "app@sha256:abc"]},
        {},
        f"pins[1]: 'app@sha256:abc' {DIGEST_WORDS}",
    ),
    (
        "PINS with a short digest",
        {},
        {"PINS": f"{DIGEST},sha256:abc"},
        f"PINS[1]: 'sha256:abc' {DIGEST_WORDS}",
    ),
    (
        "PINS too many",
        {},
        {"PINS": " ".join([DIGEST] * 10_001)},
        "PINS: at most 10000 entries, got 10001",
    ),
    (
        "parameter path not a string",
        {"pin_parameter_path": 7},
        {},
        "pin_parameter_path: must be a path (or a list of paths), got 7",
    ),
    (
        "parameter path with a control character",
        {"pin_parameter_path": "/a\x01"},
        {},
        "pin_parameter_path: '/a\\x01': control characters are not allowed",
    ),
    (
        "parameter path without '/'",
        {"pin_parameter_path": "deploy"},
        {},
        "pin_parameter_path: 'deploy': an SSM parameter path starts with '/'",
    ),
    (
        "parameter path too long",
        {"pin_parameter_path": "/" + "p" * 2048},
        {},
        "pin_parameter_path: at most 2048 characters, got 2049",
    ),
    (
        "parameter path ending in '/'",
        {"pin_parameter_path": ["/a", "/b/"]},
        {},
        "pin_parameter_path[1]: '/b/': use names of letters, digits, '_', '.' and '-' separated "
        "by '/', without a trailing '/'",
    ),
    (
        "parameter paths too many",
        {"pin_parameter_path": [f"/p{i}" for i in range(11)]},
        {},
        "pin_parameter_path: at most 10 entries, got 11",
    ),
    (
        "PIN_PARAMETER_PATH without '/'",
        {},
        {"PIN_PARAMETER_PATH": "deploy"},
        "PIN_PARAMETER_PATH: 'deploy': an SSM parameter path starts with '/'",
    ),
    (
        "object uri with a wildcard",
        {"pin_object_uris": ["s3://bucket/*"]},
        {},
        f"pin_object_uris[0]: 's3://bucket/*' {OBJECT_WORDS}",
    ),
    (
        "PIN_OBJECT_URIS with a bad one",
        {},
        {"PIN_OBJECT_URIS": "s3://bucket/k, s3:/bucket/k"},
        f"PIN_OBJECT_URIS[1]: 's3:/bucket/k' {OBJECT_WORDS}",
    ),
    (
        "role arn with a wildcard",
        {"pin_role_arns": [ROLE, "arn:aws:iam::222222222222:role/*"]},
        {},
        f"pin_role_arns[1]: 'arn:aws:iam::222222222222:role/*' {ROLE_WORDS}",
    ),
    (
        "PIN_ROLE_ARNS with a bad one",
        {},
        {"PIN_ROLE_ARNS": f"{ROLE},role/r"},
        f"PIN_ROLE_ARNS[1]: 'role/r' {ROLE_WORDS}",
    ),
    (
        "region misspelt",
        {"pin_regions": ["eu-west"]},
        {},
        "pin_regions[0]: 'eu-west' is not an AWS region (eu-west-1)",
    ),
    (
        "PIN_REGIONS with a bad one",
        {},
        {"PIN_REGIONS": "eu-west-1 mars-1"},
        "PIN_REGIONS[1]: 'mars-1' is not an AWS region (eu-west-1)",
    ),
    (
        "eks cluster with a slash",
        {"eks_clusters": ["a/b"]},
        {},
        "eks_clusters[0]: 'a/b' is not an EKS cluster name (letters, digits, '-' and '_')",
    ),
    (
        "EKS_SKIP_CLUSTERS with a bad one",
        {},
        {"EKS_SKIP_CLUSTERS": "lab,a/b"},
        "EKS_SKIP_CLUSTERS[1]: 'a/b' is not an EKS cluster name (letters, digits, '-' and '_')",
    ),
    (
        "required tag without '='",
        {"required_repository_tag": "enabled"},
        {},
        "required_repository_tag: 'enabled' is not key=value (letters, digits and _ . : / + @ -; "
        "a key not starting with 'aws:')",
    ),
    (
        "required tag not a string",
        {"required_repository_tag": 1},
        {},
        "required_repository_tag: must be a string, got 1",
    ),
    (
        "retention not a list",
        {"retention": {"rules": [RULE]}},
        {},
        "retention: must be a list of policies, got dict",
    ),
    (
        "retention too many policies",
        {"retention": [RETENTION_ENTRY] * 101},
        {},
        "retention: at most 100 policies, got 101",
    ),
    (
        "retention policy not an object",
        {"retention": ["keep"]},
        {},
        'retention[0]: must be an object {"repositories": [...], "rules": [...]}, got \'keep\'',
    ),
    (
        "retention policy with misspelt keys",
        {"retention": [{"zz": 1, "rule": [RULE]}]},
        {},
        "retention[0]: unknown field 'rule' (known: repositories, rules)",
    ),
    (
        "retention rule without a priority",
        {"retention": [{"rules": [{**RULE, "rulePriority": None}]}]},
        {},
        "retention[0].rules[0]: rulePriority must be a whole number from 1, got None",
    ),
    (
        "RETENTION not JSON",
        {},
        {"RETENTION": "keep 25"},
        "RETENTION: must be JSON (a list of policies): Expecting value: line 1 column 1 (char 0)",
    ),
    (
        "RETENTION with a bad pattern",
        {},
        {"RETENTION": json.dumps([{"repositories": ["Web"], "rules": [RULE]}])},
        f"RETENTION[0].repositories[0]: 'Web': {PATTERN_WORDS}",
    ),
    (
        "retention with scope attestations",
        {"scope": "attestations", "retention": [RETENTION_ENTRY]},
        {},
        "retention: needs scope 'orphans', but scope is 'attestations': set \"scope\": "
        '"orphans" or leave retention out',
    ),
    (
        "SWEEPER_ROLE_ARN not an ARN",
        {},
        {"SWEEPER_ROLE_ARN": "sweeper"},
        "SWEEPER_ROLE_ARN: 'sweeper' is not an IAM role or user ARN "
        "(arn:aws:iam::<account>:role/<name>)",
    ),
    (
        "REPOSITORY_ARN_PATTERN with a wildcard account",
        {},
        {"REPOSITORY_ARN_PATTERN": "arn:aws:ecr:us-east-1:*:repository/*"},
        "REPOSITORY_ARN_PATTERN: 'arn:aws:ecr:us-east-1:*:repository/*' is not an ECR "
        "repository ARN with wildcards (* ?) only in the repository name",
    ),
    (
        "MANIFEST_STORE with a trailing '/'",
        {},
        {"MANIFEST_STORE": "s3://bucket/prefix/"},
        "MANIFEST_STORE: 's3://bucket/prefix/' is not s3://bucket or s3://bucket/prefix (no "
        "trailing '/', white space or wildcards)",
    ),
    # a request meeting the deployment
    (
        "a real run on a dry-run deployment",
        {"dry_run": False},
        {"DRY_RUN": "true"},
        "dry_run: the deployment is a dry run (DRY_RUN=true): a request cannot make it delete; "
        "deploy with DryRun=false for real runs",
    ),
    (
        "orphans on an attestations deployment",
        {"scope": "orphans"},
        {"SCOPE": "attestations"},
        "scope: the deployment's scope is 'attestations' (SCOPE): a request may not widen it to "
        "'orphans'",
    ),
    (
        "a grace period below the deployment's",
        {"min_age_hours": 71.5},
        {"MIN_AGE_HOURS": "72"},
        "min_age_hours: may not be below the deployment's 72 (MIN_AGE_HOURS) in a request, "
        "got 71.5",
    ),
    (
        "a pull window below the deployment's",
        {"keep_pulled_within_days": 7},
        {"KEEP_PULLED_WITHIN_DAYS": "30"},
        "keep_pulled_within_days: may not be below the deployment's 30 "
        "(KEEP_PULLED_WITHIN_DAYS) in a request, got 7",
    ),
    (
        "another required tag",
        {"required_repository_tag": "team=a"},
        {"REQUIRED_REPOSITORY_TAG": "ecr-sweeper=enabled"},
        "required_repository_tag: the deployment requires 'ecr-sweeper=enabled' "
        "(REQUIRED_REPOSITORY_TAG); a request cannot change it",
    ),
    (
        "retention rules in a real run",
        {"dry_run": False, "retention": [RETENTION_ENTRY]},
        {"DRY_RUN": "false"},
        "retention: a request may give retention rules in a dry run only; a real run applies "
        "the deployment's (RETENTION)",
    ),
    (
        "fewer eks clusters than every one",
        {"eks_clusters": ["prod"]},
        {"PIN_FROM_EKS": "true"},
        "eks_clusters: the deployment reads every EKS cluster (PIN_FROM_EKS, no EKS_CLUSTERS): a "
        "request may not read fewer",
    ),
    (
        "skipping a cluster the deployment reads",
        {"eks_skip_clusters": ["prod"]},
        {"PIN_FROM_EKS": "true"},
        f"eks_skip_clusters: {SKIP_WORDS}",
    ),
    (
        "skipping more clusters than the deployment",
        {"eks_skip_clusters": ["lab", "prod"]},
        {"EKS_SKIP_CLUSTERS": "lab"},
        f"eks_skip_clusters: 'prod': {SKIP_WORDS}",
    ),
]


@pytest.mark.parametrize(
    ("request_", "environ", "message"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_each_bad_input_is_refused_with_its_whole_message(
    request_: Any, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidSettings) as raised:
        load(request_, environ)
    assert str(raised.value) == message
    assert raised.value.field == message.partition(": ")[0]


def test_a_deployment_that_sets_no_scope_drops_its_retention_when_a_request_narrows() -> None:
    # No SCOPE: the deployment's scope is the default, orphans, and a request narrowing it to
    # attestations runs without the deployment's rules, as with SCOPE=orphans.
    env = {"RETENTION": json.dumps([RETENTION_ENTRY])}
    settings = load({"scope": "attestations"}, env)
    assert (settings.scope, settings.retention) == (Scope.ATTESTATIONS, ())


def test_a_deployment_with_retention_and_scope_attestations_is_refused_whatever_the_request() -> (
    None
):
    # Dropping rules is for a request that narrows; repeating the deployment's own scope narrows
    # nothing: the deployment's contradiction is still an error.
    env = {"SCOPE": "attestations", "RETENTION": json.dumps([RETENTION_ENTRY])}
    for request in ({}, {"scope": "attestations"}):
        with pytest.raises(InvalidSettings) as raised:
            load(request, env)
        assert str(raised.value).startswith("retention: needs scope 'orphans'")


def test_the_deployments_own_settings_come_from_its_environment_alone() -> None:
    env = {
        "MANIFEST_STORE": "s3://sweeper-bucket/journal",
        "JOURNAL_RETENTION_DAYS": "3650",
        "SWEEPER_ROLE_ARN": FUNCTION_PRINCIPAL,
        "REPOSITORY_ARN_PATTERN": "arn:aws:ecr:us-east-1:123456789012:repository/team-*",
        "REGISTER_PULL_TIME_EXCLUSION": "false",
    }
    settings = load({}, env)
    assert settings.manifest_store == "s3://sweeper-bucket/journal"
    assert settings.journal_retention_days == 3650
    assert settings.sweeper_role_arn == FUNCTION_PRINCIPAL
    assert settings.granted_repositories == "team-*"
    assert settings.register_pull_time_exclusion is False
    assert load({}, {"JOURNAL_RETENTION_DAYS": "1.0"}).journal_retention_days == 1
    assert (
        load({}, {"MANIFEST_STORE": "s3://sweeper-bucket"}).manifest_store == "s3://sweeper-bucket"
    )
    with pytest.raises(InvalidSettings, match="unknown field"):
        load({"manifest_store": "s3://elsewhere"}, env)
