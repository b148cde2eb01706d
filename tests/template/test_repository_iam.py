"""The ECR grants of template.yaml, evaluated for real parameter values: every one on the
repositories of RepositoryArnPattern in the stack's own account and region, the delete grant
conditional on RequiredRepositoryTag, and one run at a time (reserved concurrency)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from conftest import OLD, Invoke
from harness import FakeRegistry
from harness.faults import Attempt, Wire, intercept_clients
from sweeper.registry import EXCLUSION_ACTIONS, REQUIRED_IAM_ACTIONS
from sweeper.settings import MIN_AGE_HOURS, REQUIRED_TAG_PATTERN, InvalidSettings, load

from .cfn import Template, evaluate

FUNCTION = "SweeperFunction"
HERE = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
EVERY_REPOSITORY = "arn:aws:ecr:eu-west-1:123456789012:repository/*"


def ecr_statements(
    sam: Template, parameters: dict[str, str], here: dict[str, str] = HERE
) -> list[dict[str, Any]]:
    """Every statement granting an ECR action, as deployed with `parameters`: the function's
    policies (the pin sources' conditional ones included when configured) and the delete grant."""
    policies = evaluate(
        sam, sam["Resources"]["SweeperFunctionRole"]["Properties"]["Policies"], parameters, here
    )
    documents: list[Any] = [policy["PolicyDocument"] for policy in policies]
    delete = sam["Resources"]["DeleteImagesPolicy"]["Properties"]
    document = evaluate(sam, delete["PolicyDocument"], parameters, here)
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
def test_every_ecr_grant_but_the_listing_is_on_the_patterns_repositories_here(
    sam: Template, pattern: str, resource: str, tag: str
) -> None:
    parameters = {"RepositoryArnPattern": pattern, "RequiredRepositoryTag": tag}
    statements = ecr_statements(sam, parameters)
    listing = [s for s in statements if _actions(s) == ["ecr:DescribeRepositories"]]
    # ECR authorises DescribeRepositories without names against repository/*: names only.
    assert [s["Resource"] for s in listing] == [EVERY_REPOSITORY]
    unscoped = [s for s in statements if s["Resource"] == "*"]  # account and registry level
    scoped = [s for s in statements if s not in listing + unscoped]
    assert {s["Resource"] for s in scoped} == {resource}
    assert {a for s in scoped for a in _actions(s)} == set(REQUIRED_IAM_ACTIONS) - {
        "ecr:DescribeRepositories",
        "ecr:GetAccountSetting",
        *EXCLUSION_ACTIONS,
    }


@pytest.mark.parametrize("pattern", ["", "arn:aws:ecr:eu-west-1:123456789012:repository/team-a/*"])
@pytest.mark.parametrize(
    ("register", "exclusion_actions"),
    [("true", set(EXCLUSION_ACTIONS)), ("false", {"ecr:ListPullTimeUpdateExclusions"})],
)
def test_the_account_and_registry_level_grants_are_on_everything_and_only_those_actions(
    sam: Template, pattern: str, register: str, exclusion_actions: set[str]
) -> None:
    """ListPullTimeUpdateExclusions and RegisterPullTimeUpdateExclusion act on the registry, and
    GetAccountSetting on the account, not a repository: they take no resource-level
    permissions, so their grants alone are on `*`. With RegisterPullTimeExclusion=false the
    function may only check the exclusions, not register itself."""
    parameters = {"RepositoryArnPattern": pattern, "RegisterPullTimeExclusion": register}
    statements = ecr_statements(sam, parameters)
    on_everything = {a for s in statements if s["Resource"] == "*" for a in _actions(s)}
    assert on_everything == {"ecr:GetAccountSetting", *exclusion_actions}


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


# value -> whether a deployment may require it (an empty value requires no tag)
REQUIRED_TAGS = {
    "": True,
    "ecr-sweeper=enabled": True,
    "team/sweep=yes": True,
    "k.e_y:x+y@z-1=v.a_l:u+e@s-2": True,
    "a=b=c": False,  # "=" in the value: the IAM condition's key and value would shift
    "=enabled": False,
    "key=": False,
    "aws:cloudformation=x": False,  # AWS reserves the aws: prefix
    'k"=v': False,
    "k=v\\": False,
    "key=two words": False,
    "key=v\n": False,
    "k" * 129 + "=v": False,
    "k=" + "v" * 257: False,
}


def test_the_template_checks_the_required_tag_with_the_settings_pattern(sam: Template) -> None:
    allowed = sam["Parameters"]["RequiredRepositoryTag"]["AllowedPattern"]
    assert allowed == f"^$|{REQUIRED_TAG_PATTERN}"


@pytest.mark.parametrize(("value", "accepted"), REQUIRED_TAGS.items(), ids=repr)
def test_required_tag_pattern_is_the_settings_rule(
    sam: Template, value: str, accepted: bool
) -> None:
    # The template and the settings each judge the value; both must give the table's answer (the
    # same pattern compared with itself would agree on whatever it accepts).
    allowed = sam["Parameters"]["RequiredRepositoryTag"]["AllowedPattern"]
    assert bool(re.fullmatch(allowed, value)) is accepted
    try:
        load({"required_repository_tag": value}, {})
        settings_accept = True
    except InvalidSettings:
        settings_accept = False
    assert settings_accept is accepted


def test_the_tag_setting_reaches_the_function(sam: Template) -> None:
    variables = sam["Resources"][FUNCTION]["Properties"]["Environment"]["Variables"]
    assert variables["REQUIRED_REPOSITORY_TAG"] == {"Ref": "RequiredRepositoryTag"}
    assert sam["Parameters"]["RequiredRepositoryTag"]["Default"] == ""


def test_one_run_at_a_time(cfn: Template) -> None:
    # The nightly run and a manual one never overlap: the second is throttled.
    assert cfn["Resources"][FUNCTION]["Properties"]["ReservedConcurrentExecutions"] == 1


def test_the_grace_period_parameter_has_the_settings_floor(sam: Template) -> None:
    assert sam["Parameters"]["MinAgeHours"]["MinValue"] == MIN_AGE_HOURS


# --- every call of a run, evaluated against the grants as IAM would -----------------------------

ACCOUNT = "123456789012"
REGISTRY_HERE = {"AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
ARN = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/"


def iam_matches(pattern: str, arn: str) -> bool:
    """IAM's resource matching: `*` any run of characters (`/` too), `?` any one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def resources_of(attempt: Attempt) -> list[str]:
    """The resources ECR authorises a call against: DescribeRepositories without names is
    authorised against `repository/*` (the literal text), with names against each one."""
    params = attempt.params
    if attempt.operation == "DescribeRepositories":
        names = params.get("repositoryNames") or []
        return [ARN + n for n in names] if names else [ARN + "*"]
    if attempt.operation == "ListTagsForResource":
        return [params["resourceArn"]]
    if f"ecr:{attempt.operation}" in {"ecr:GetAccountSetting", *EXCLUSION_ACTIONS}:
        return ["*"]  # account- and registry-level actions
    return [ARN + params["repositoryName"]]


def denied(statements: list[dict[str, Any]], attempt: Attempt) -> list[str]:
    action = f"ecr:{attempt.operation}"
    return [
        resource
        for resource in resources_of(attempt)
        if not any(
            s["Effect"] == "Allow"
            and "Condition" not in s
            and action in _actions(s)
            and any(
                iam_matches(p, resource)
                for p in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
            )
            for s in statements
        )
    ]


@pytest.mark.parametrize("pattern", ["", f"{ARN}team-a/*", f"{ARN}team-?/api"])
def test_every_call_of_a_run_is_granted_and_only_the_patterns_repositories_are_swept(
    sam: Template,
    registry: FakeRegistry,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    pattern: str,
) -> None:
    """moto checks no IAM: each call the run makes is evaluated against the translated
    template's grants for that RepositoryArnPattern, and the run leaves alone what they do not
    cover (the listing shows every repository: it is granted on repository/*)."""
    orphans = {}
    for name in ("team-a/api", "team-a/web", "team-b/api"):
        old = registry.push_buildx(name, tag="latest", pushed_at=OLD)
        registry.push_buildx(name, tag="latest", pushed_at=OLD)
        orphans[name] = set(old.all)
    monkeypatch.setenv("REPOSITORY_ARN_PATTERN", pattern)
    statements = ecr_statements(sam, {"RepositoryArnPattern": pattern}, REGISTRY_HERE)

    wire = Wire()
    with intercept_clients(wire):
        report = invoke(dry_run=False, audit_lifecycle_policies=True)

    refused = {(a.operation, r) for a in wire.log for r in denied(statements, a)}
    assert refused == set()
    assert report["complete"], report["failures"]
    name_glob = pattern.partition(":repository/")[2] or "*"
    for name, digests in orphans.items():
        swept = not digests & registry.digests(name)
        assert swept is iam_matches(name_glob, name), name
