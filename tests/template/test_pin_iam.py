"""template.yaml grants each pin source exactly the IAM that sweeper.pins declares, only when the
source is configured, scoped by its parameters; and its parameters reach the function."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from samtranslator.translator.transform import transform

from sweeper import notify, pins, registry
from sweeper.settings import (
    EKS_CLUSTER_PATTERN,
    OBJECT_URI_PATTERN,
    PARAMETER_PATH_PATTERN,
    REGION_PATTERN,
    ROLE_ARN_PATTERN,
    InvalidSettings,
    load,
)

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "template.yaml"

# source -> (template condition, template parameter, environment variable)
SOURCES = {
    "ssm": ("PinsFromSsm", "PinParameterPath", "PIN_PARAMETER_PATH"),
    "s3": ("PinsFromS3", "PinObjectUris", "PIN_OBJECT_URIS"),
    "ecs": ("PinsFromEcs", "PinFromEcs", "PIN_FROM_ECS"),
    "lambda": ("PinsFromLambda", "PinFromLambda", "PIN_FROM_LAMBDA"),
    "sts": ("PinsFromOtherAccounts", "PinRoleArns", "PIN_ROLE_ARNS"),
    "eks": ("PinsFromEks", "PinFromEks", "PIN_FROM_EKS"),
    "inspector": ("PinsFromInspector", "PinFromInspector", "PIN_FROM_INSPECTOR"),
}
NO_VALUE = {"Ref": "AWS::NoValue"}


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !If, ...) as their long forms."""


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    return loaded


def function(template: Mapping[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"]["SweeperFunction"]["Properties"]
    return properties


def role_policies(template: Mapping[str, Any]) -> list[Any]:
    """The inline policies of the function's role (written out in the template, not by SAM)."""
    policies: list[Any] = template["Resources"]["SweeperFunctionRole"]["Properties"]["Policies"]
    return policies


# The manifest store's grants (its bucket's prefix only: tests/template/test_manifest_store_bucket)
STORE_SIDS = {"ManifestStoreObjects", "ManifestStoreListing"}


def actions(document: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for statement in document["Statement"]:
        action = statement["Action"]
        found.extend([action] if isinstance(action, str) else action)
    return found


def conditional_policies(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """condition -> the policy document the function gets only under that condition."""
    found: dict[str, dict[str, Any]] = {}
    for policy in role_policies(template):
        if isinstance(policy, dict) and "Fn::If" in policy:
            condition, granted, otherwise = policy["Fn::If"]
            assert otherwise == NO_VALUE, f"{condition}: the other branch must grant nothing"
            assert condition not in found, f"{condition}: one conditional policy per source"
            found[condition] = granted["PolicyDocument"]
    return found


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_each_source_gets_exactly_its_actions_only_when_configured(
    template: dict[str, Any], source: str
) -> None:
    condition = SOURCES[source][0]
    document = conditional_policies(template)[condition]
    assert sorted(actions(document)) == sorted(pins.REQUIRED_IAM_ACTIONS[source])


def test_no_unconditional_statement_grants_a_pin_source_action(template: dict[str, Any]) -> None:
    every_pin_action = {a for acts in pins.REQUIRED_IAM_ACTIONS.values() for a in acts}
    unconditional = [
        {
            "Statement": [
                s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] not in STORE_SIDS
            ]
        }
        for policy in role_policies(template)
        if not (isinstance(policy, dict) and "Fn::If" in policy)
    ]
    granted = [a for policy in unconditional for a in actions(policy)]
    assert not every_pin_action & set(granted)
    # The delete grant is a role policy of its own (it may carry a tag condition).
    delete = template["Resources"]["DeleteImagesPolicy"]["Properties"]["PolicyDocument"]
    granted += actions(delete["Fn::If"][2])
    # Registering the pull-time exclusion is the one ECR action granted on a condition
    # (RegisterPullTimeExclusion: test_repository_iam.py checks both of its values).
    assert sorted(granted) == sorted(
        [
            *(
                a
                for a in registry.REQUIRED_IAM_ACTIONS
                if a != "ecr:RegisterPullTimeUpdateExclusion"
            ),
            notify.PUT_EVENTS_ACTION,
        ]
    )
    assert set(conditional_policies(template)) == {c for c, _, _ in SOURCES.values()} | {
        "RegistersPullTimeExclusion"
    }


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_condition_environment_and_parameter_of_each_source(
    template: dict[str, Any], source: str
) -> None:
    condition, parameter, variable = SOURCES[source]
    assert parameter in template["Parameters"]
    assert function(template)["Environment"]["Variables"][variable] == {"Ref": parameter}
    assert variable.lower() in load({}, {}).__dataclass_fields__
    definition = template["Conditions"][condition]
    if template["Parameters"][parameter].get("AllowedValues") == ["true", "false"]:
        assert definition == {"Fn::Equals": [{"Ref": parameter}, "true"]}
    else:
        assert definition == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]}


# --- the resources, evaluated for real parameter values ------------------------------------------

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}


def evaluate(node: Any, parameters: Mapping[str, str]) -> Any:
    """The few intrinsic functions the pin statements use, as CloudFormation evaluates them
    (the one condition they test, PinsInOtherRegions, from the PinRegions given)."""
    names = {"PinRegions": "", **PSEUDO, **parameters}
    if isinstance(node, list):
        return [evaluate(item, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return names[node["Ref"]]
    if set(node) == {"Fn::If"}:
        condition, then, otherwise = node["Fn::If"]
        assert condition == "PinsInOtherRegions", condition
        return evaluate(then if names["PinRegions"] else otherwise, parameters)
    if set(node) == {"Fn::Sub"}:
        text, variables = (
            node["Fn::Sub"]
            if isinstance(node["Fn::Sub"], list)
            else (
                node["Fn::Sub"],
                {},
            )
        )
        values = {**names, **{k: evaluate(v, parameters) for k, v in variables.items()}}
        return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)
    if set(node) == {"Fn::Split"}:
        separator, value = node["Fn::Split"]
        return str(evaluate(value, parameters)).split(separator)
    if set(node) == {"Fn::Join"}:
        separator, values = node["Fn::Join"]
        return separator.join(evaluate(values, parameters))
    return {key: evaluate(value, parameters) for key, value in node.items()}


def statement(template: Mapping[str, Any], condition: str, sid: str) -> dict[str, Any]:
    document = conditional_policies(template)[condition]
    found: list[dict[str, Any]] = [s for s in document["Statement"] if s.get("Sid") == sid]
    assert len(found) == 1, sid
    return found[0]


@pytest.mark.parametrize(
    ("uris", "arns"),
    [
        ("s3://deploy-configs/prod.yaml", ["arn:*:s3:::deploy-configs/prod.yaml"]),
        (
            "s3://deploy-configs/prod/compose.yaml,s3://pins.example.com/a/b/list.txt",
            [
                "arn:*:s3:::deploy-configs/prod/compose.yaml",
                "arn:*:s3:::pins.example.com/a/b/list.txt",
            ],
        ),
    ],
)
def test_s3_grant_is_exactly_the_configured_objects(
    template: dict[str, Any], uris: str, arns: list[str]
) -> None:
    granted = statement(template, "PinsFromS3", "ReadPinObjects")
    assert evaluate(granted["Resource"], {"PinObjectUris": uris}) == arns


def test_ssm_grant_is_the_path_and_decryption_only_through_ssm_for_it(
    template: dict[str, Any],
) -> None:
    values = {"PinParameterPath": "/deploy/prod"}
    read = evaluate(statement(template, "PinsFromSsm", "ReadPinParameters"), values)
    assert read["Resource"] == "arn:aws:ssm:eu-west-1:123456789012:parameter/deploy/prod"
    assert read["Condition"] == {"StringEquals": {"aws:RequestedRegion": ["eu-west-1", ""]}}
    decrypt = evaluate(statement(template, "PinsFromSsm", "DecryptPinParameters"), values)
    assert decrypt["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": ["eu-west-1", ""]},
        "StringLike": {
            "kms:ViaService": "ssm.eu-west-1.amazonaws.com",
            "kms:EncryptionContext:PARAMETER_ARN": (
                "arn:aws:ssm:eu-west-1:123456789012:parameter/deploy/prod/*"
            ),
        },
    }


# (condition, statement) -> its resource in the stack's region only, and with PinRegions
REGIONAL: dict[tuple[str, str], str | list[str]] = {
    ("PinsFromSsm", "ReadPinParameters"): "arn:aws:ssm:{}:123456789012:parameter/deploy",
    ("PinsFromSsm", "DecryptPinParameters"): "arn:aws:kms:{}:123456789012:key/*",
    ("PinsFromEcs", "ListEcsWorkloads"): "*",
    ("PinsFromEcs", "DescribeEcsTasks"): "arn:aws:ecs:{}:123456789012:task/*",
    ("PinsFromEcs", "DescribeEcsServices"): [
        "arn:aws:ecs:{}:123456789012:service/*",
        "arn:aws:ecs:{}:123456789012:service-revision/*",
    ],
    ("PinsFromLambda", "ListLambdaFunctions"): "*",
    ("PinsFromEks", "ListEksClusters"): "*",
    ("PinsFromEks", "DescribeEksClusters"): "arn:aws:eks:{}:123456789012:cluster/*",
    ("PinsFromLambda", "ReadLambdaFunctionImages"): "arn:aws:lambda:{}:123456789012:function:*",
}


@pytest.mark.parametrize(("condition", "sid"), sorted(REGIONAL))
@pytest.mark.parametrize(
    ("regions", "requested", "region"),
    [
        ("", ["eu-west-1", ""], "eu-west-1"),
        ("us-east-1,ap-southeast-2", ["eu-west-1", "us-east-1", "ap-southeast-2"], "*"),
    ],
)
def test_home_account_reads_are_granted_in_exactly_the_pin_regions(
    template: dict[str, Any],
    condition: str,
    sid: str,
    regions: str,
    requested: list[str],
    region: str,
) -> None:
    values = {"PinParameterPath": "/deploy", "PinRegions": regions}
    granted = evaluate(statement(template, condition, sid), values)
    expected = REGIONAL[condition, sid]
    if isinstance(expected, str):
        assert granted["Resource"] == expected.format(region)
    else:
        assert granted["Resource"] == [arn.format(region) for arn in expected]
    assert granted["Condition"]["StringEquals"] == {"aws:RequestedRegion": requested}


def test_only_the_configured_roles_may_be_assumed(template: dict[str, Any]) -> None:
    roles = "arn:aws:iam::222222222222:role/ecr-sweeper-reader,arn:aws:iam::333333333333:role/r"
    granted = evaluate(
        statement(template, "PinsFromOtherAccounts", "AssumePinReaderRoles"),
        {"PinRoleArns": roles},
    )
    assert granted["Resource"] == roles.split(",")
    assert granted["Action"] == ["sts:AssumeRole"]
    variables = function(template)["Environment"]["Variables"]
    assert variables["PIN_REGIONS"] == {"Ref": "PinRegions"}
    assert variables["EKS_CLUSTERS"] == {"Ref": "EksClusters"}
    assert variables["EKS_SKIP_CLUSTERS"] == {"Ref": "EksSkipClusters"}
    assert template["Conditions"]["PinsInOtherRegions"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PinRegions"}, ""]}]
    }


@pytest.mark.parametrize(
    ("parameter", "field", "one", "values"),
    [
        (
            "PinRoleArns",
            "pin_role_arns",
            ROLE_ARN_PATTERN,
            [
                [],
                ["arn:aws:iam::222222222222:role/reader"],
                ["arn:aws:iam::222222222222:role/a/b", "arn:aws-cn:iam::333333333333:role/x"],
                ["arn:aws:iam::222222222222:role/*"],
                ["arn:aws:iam::2222:role/reader"],
                ["arn:aws:iam::222222222222:user/reader"],
                ["arn:aws:iam::222222222222:role/a b"],
            ],
        ),
        (
            "PinRegions",
            "pin_regions",
            REGION_PATTERN,
            [[], ["eu-west-1"], ["us-gov-west-1", "ap-southeast-2"], ["EU-west-1"], ["eu"], ["*"]],
        ),
        (
            "EksClusters",
            "eks_clusters",
            EKS_CLUSTER_PATTERN,
            [[], ["prod"], ["prod-eu_1", "Staging2"], ["-prod"], ["a b"], ["*"], ["x" * 101]],
        ),
        (
            "EksSkipClusters",
            "eks_skip_clusters",
            EKS_CLUSTER_PATTERN,
            [[], ["sandbox"], ["sandbox", "lab"], ["_lab"], ["la/b"]],
        ),
    ],
)
def test_role_and_region_patterns_are_the_settings_rules(
    template: dict[str, Any], parameter: str, field: str, one: str, values: list[list[str]]
) -> None:
    pattern = template["Parameters"][parameter]["AllowedPattern"]
    bare = one.removeprefix("^").removesuffix("$")
    assert pattern == f"^$|^{bare}(,{bare})*$"
    for value in values:
        joined = ",".join(value)
        assert bool(re.fullmatch(pattern, joined)) == _accepted_by_settings(field, value), value


# --- the template's parameter patterns accept what the settings accept ------------------------


def _accepted_by_settings(field: str, value: Any) -> bool:
    try:
        load({field: value}, {})
    except InvalidSettings:
        return False
    return True


@pytest.mark.parametrize(
    "path",
    ["", "/deploy", "/deploy/prod", "/a.b/c-d/e_f/G9", "deploy", "/", "/deploy/", "//x", "/a b"],
)
def test_parameter_path_pattern_is_the_settings_rule(template: dict[str, Any], path: str) -> None:
    pattern = template["Parameters"]["PinParameterPath"]["AllowedPattern"]
    assert pattern == f"^$|{PARAMETER_PATH_PATTERN}"
    assert bool(re.fullmatch(pattern, path)) == _accepted_by_settings("pin_parameter_path", path)


@pytest.mark.parametrize(
    "uris",
    [
        [],
        ["s3://bucket/key"],
        ["s3://bucket/a/b.yaml", "s3://other.bucket/c"],
        ["s3://Bucket/key"],
        ["s3://bucket"],
        ["s3://bucket/"],
        ["https://bucket/key"],
        ["s3://bucket/key", "s3://x/y"],
        ["s3://bucket/*"],  # would grant the whole bucket
        ["s3://bucket/pins-?.txt"],
        ["s3://bucket/ok", "s3://bucket/prod/*"],
        ["s3://bucket/k\x01"],
        ["s3://bucket/k\x7f"],
    ],
)
def test_object_uris_pattern_is_the_settings_rule(
    template: dict[str, Any], uris: list[str]
) -> None:
    pattern = template["Parameters"]["PinObjectUris"]["AllowedPattern"]
    one = OBJECT_URI_PATTERN.removeprefix("^").removesuffix("$")
    assert pattern == f"^$|^{one}(,{one})*$"
    joined = ",".join(uris)
    assert bool(re.fullmatch(pattern, joined)) == _accepted_by_settings("pin_object_uris", uris)


def test_sam_translation_keeps_each_source_policy_conditional() -> None:
    """The role's conditional policies stay Fn::Ifs through SAM's translation."""

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    loaded = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    loaded["Resources"]["SweeperFunction"]["Properties"]["CodeUri"] = "s3://bucket/code.zip"
    translated = transform(loaded, {}, NoManagedPolicies())
    role = translated["Resources"]["SweeperFunctionRole"]["Properties"]
    conditions = [p["Fn::If"][0] for p in role["Policies"] if "Fn::If" in p]
    assert sorted(conditions) == sorted(
        [*(c for c, _, _ in SOURCES.values()), "RegistersPullTimeExclusion"]
    )
