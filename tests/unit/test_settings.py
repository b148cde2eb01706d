"""The event contract: defaults, environment, and a clear error naming the field for bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sweeper.model import Scope
from sweeper.run import select_repositories
from sweeper.settings import FIELDS, MERGE, InvalidSettings, Settings, load

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
