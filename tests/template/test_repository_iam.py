"""The ECR grants of template.yaml, evaluated for real parameter values: every one on the
repositories of RepositoryArnPattern in the stack's own account and region, the delete grant
conditional on RequiredRepositoryTag, and one run at a time (reserved concurrency)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sweeper.registry import EXCLUSION_ACTIONS, REQUIRED_IAM_ACTIONS
from sweeper.settings import MIN_AGE_HOURS, REQUIRED_TAG_PATTERN, InvalidSettings, load

from .cfn import Template, evaluate

FUNCTION = "SweeperFunction"
HERE = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
EVERY_REPOSITORY = "arn:aws:ecr:eu-west-1:123456789012:repository/*"


def ecr_statements(sam: Template, parameters: dict[str, str]) -> list[dict[str, Any]]:
    """Every statement granting an ECR action, as deployed with `parameters`: the function's
    policies (the pin sources' conditional ones included when configured) and the delete grant."""
    documents: list[Any] = [
        evaluate(sam, policy, parameters, HERE)
        for policy in sam["Resources"][FUNCTION]["Properties"]["Policies"]
    ]
    delete = sam["Resources"]["DeleteImagesPolicy"]["Properties"]
    document = evaluate(sam, delete["PolicyDocument"], parameters, HERE)
    documents.append(json.loads(document) if isinstance(document, str) else document)
    return [
        statement
        for document in documents
        if isinstance(document, dict)
        for statement in document["Statement"]
        if any(action.startswith("ecr:") for action in _actions(statement))
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_the_delete_grant_is_a_policy_of_the_function_role(sam: Template, cfn: Template) -> None:
    delete = cfn["Resources"]["DeleteImagesPolicy"]
    assert delete["Type"] == "AWS::IAM::RolePolicy"
    assert delete["Properties"]["RoleName"] == {"Ref": f"{FUNCTION}Role"}
    assert cfn["Resources"][FUNCTION]["Properties"]["Role"] == {
        "Fn::GetAtt": [f"{FUNCTION}Role", "Arn"]
    }


@pytest.mark.parametrize("tag", ["", "ecr-sweeper=enabled"])
def test_ecr_grants_are_exactly_the_actions_the_registry_calls(sam: Template, tag: str) -> None:
    statements = ecr_statements(sam, {"RequiredRepositoryTag": tag})
    assert sorted(a for s in statements for a in _actions(s)) == sorted(REQUIRED_IAM_ACTIONS)
    assert all(s["Effect"] == "Allow" for s in statements)


@pytest.mark.parametrize(
    ("pattern", "resource"),
    [
        ("", EVERY_REPOSITORY),
        (
            "arn:aws:ecr:eu-west-1:123456789012:repository/team-a/*",
            "arn:aws:ecr:eu-west-1:123456789012:repository/team-a/*",
        ),
        (
            "arn:aws:ecr:eu-west-1:123456789012:repository/app",
            "arn:aws:ecr:eu-west-1:123456789012:repository/app",
        ),
        # Another account or region named by mistake: the grant stays in the stack's own.
        (
            "arn:aws:ecr:us-east-1:999999999999:repository/app-?",
            "arn:aws:ecr:eu-west-1:123456789012:repository/app-?",
        ),
    ],
)
@pytest.mark.parametrize("tag", ["", "ecr-sweeper=enabled"])
def test_every_repository_grant_is_on_the_patterns_repositories_in_this_account_and_region(
    sam: Template, pattern: str, resource: str, tag: str
) -> None:
    parameters = {"RepositoryArnPattern": pattern, "RequiredRepositoryTag": tag}
    repository_grants = [
        s for s in ecr_statements(sam, parameters) if not set(_actions(s)) <= set(EXCLUSION_ACTIONS)
    ]
    assert {s["Resource"] for s in repository_grants} == {resource}


@pytest.mark.parametrize("pattern", ["", "arn:aws:ecr:eu-west-1:123456789012:repository/team-a/*"])
def test_the_pull_time_exclusion_grant_is_registry_wide_and_only_those_two_actions(
    sam: Template, pattern: str
) -> None:
    """ListPullTimeUpdateExclusions and RegisterPullTimeUpdateExclusion act on the registry, not
    a repository: they take no resource-level permissions, so their grant alone is on `*`."""
    statements = ecr_statements(sam, {"RepositoryArnPattern": pattern})
    on_everything = [s for s in statements if s["Resource"] == "*"]
    assert [sorted(_actions(s)) for s in on_everything] == [sorted(EXCLUSION_ACTIONS)]


@pytest.mark.parametrize(
    ("pattern", "accepted"),
    [
        ("", True),
        ("arn:aws:ecr:us-east-1:123456789012:repository/app", True),
        ("arn:aws:ecr:us-east-1:123456789012:repository/team-a/*", True),
        ("arn:aws-cn:ecr:cn-north-1:123456789012:repository/app-?", True),
        ("arn:aws:ecr:us-east-1:123456789012:repository/*", True),
        ("*", False),
        ("arn:aws:ecr:*:123456789012:repository/app", False),  # a wildcard region
        ("arn:aws:ecr:us-east-1:*:repository/app", False),  # a wildcard account
        ("arn:aws:ecr:us-east-1:123456789012:*", False),
        ("arn:aws:ecr:us-east-1:123456789012:repository/", False),
        ("arn:aws:s3:::bucket/*", False),
        ("arn:aws:ecr:us-east-1:123456789012:repository/App", False),
        ("arn:aws:ecr:us-east-1:123456789012:repository/app\n", False),
    ],
)
def test_repository_arn_pattern_is_an_ecr_repository_arn_with_wildcards_only_in_the_name(
    sam: Template, pattern: str, accepted: bool
) -> None:
    allowed = sam["Parameters"]["RepositoryArnPattern"]["AllowedPattern"]
    assert bool(re.fullmatch(allowed, pattern)) is accepted


def test_the_delete_grant_carries_the_tag_condition_only_when_a_tag_is_required(
    sam: Template,
) -> None:
    (without,) = [s for s in ecr_statements(sam, {}) if "ecr:BatchDeleteImage" in _actions(s)]
    assert "Condition" not in without
    tagged = ecr_statements(sam, {"RequiredRepositoryTag": "team/ecr-sweeper=opt.in"})
    (delete,) = [s for s in tagged if "ecr:BatchDeleteImage" in _actions(s)]
    assert _actions(delete) == ["ecr:BatchDeleteImage"]  # reading stays as it was
    assert delete["Condition"] == {"StringEquals": {"ecr:ResourceTag/team/ecr-sweeper": "opt.in"}}
    assert [s for s in tagged if "Condition" in s] == [delete]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ecr-sweeper=enabled",
        "team/sweep=yes",
        "a=b=c",
        "=enabled",
        "key=",
        "aws:cloudformation=x",
        'k"=v',
        "k=v\\",
        "key=two words",
        "key=v\n",
    ],
)
def test_required_tag_pattern_is_the_settings_rule(sam: Template, value: str) -> None:
    allowed = sam["Parameters"]["RequiredRepositoryTag"]["AllowedPattern"]
    assert allowed == f"^$|{REQUIRED_TAG_PATTERN}"
    try:
        load({"required_repository_tag": value}, {})
        settings_accept = True
    except InvalidSettings:
        settings_accept = False
    assert bool(re.fullmatch(allowed, value)) is settings_accept


def test_the_tag_setting_reaches_the_function(sam: Template) -> None:
    variables = sam["Resources"][FUNCTION]["Properties"]["Environment"]["Variables"]
    assert variables["REQUIRED_REPOSITORY_TAG"] == {"Ref": "RequiredRepositoryTag"}
    assert sam["Parameters"]["RequiredRepositoryTag"]["Default"] == ""


def test_one_run_at_a_time(cfn: Template) -> None:
    # The nightly run and a manual one never overlap: the second is throttled.
    assert cfn["Resources"][FUNCTION]["Properties"]["ReservedConcurrentExecutions"] == 1


def test_the_grace_period_parameter_has_the_settings_floor(sam: Template) -> None:
    assert sam["Parameters"]["MinAgeHours"]["MinValue"] == MIN_AGE_HOURS
