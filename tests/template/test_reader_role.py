"""reader-role.yaml, the role of a workload account, and the StackSet form of the sweeper.

The reader role grants exactly what the sources call there (sweeper.pins' actions), each source's
statements only when switched on, trusts only the sweeper's role, and is plain CloudFormation
(StackSets refuse transforms). scripts/stackset_template.py turns the packaged sweeper template
into plain CloudFormation that keeps every grant the SAM template makes.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint

from sweeper import pins
from sweeper.settings import PARAMETER_PATH_PATTERN, ROLE_ARN_PATTERN

from .cfn import REGION, ROOT, Template, load_sam

READER = ROOT / "reader-role.yaml"
# source -> the reader role's condition for it
SOURCES = {"ssm": "ReadsSsm", "ecs": "ReadsEcs", "lambda": "ReadsLambda", "eks": "ReadsEks"}


@pytest.fixture(scope="module")
def reader() -> Template:
    return load_sam(READER)


def role(reader: Template) -> dict[str, Any]:
    properties: dict[str, Any] = reader["Resources"]["ReaderRole"]["Properties"]
    return properties


def test_the_reader_role_is_plain_cloudformation_and_lints_clean(reader: Template) -> None:
    assert "Transform" not in reader
    assert {r["Type"] for r in reader["Resources"].values()} == {"AWS::IAM::Role"}
    matches = lint(READER.read_text(), regions=[REGION])
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_each_source_gets_exactly_its_actions_only_when_switched_on(
    reader: Template, source: str
) -> None:
    conditional = {p["Fn::If"][0]: p["Fn::If"] for p in role(reader)["Policies"] if "Fn::If" in p}
    assert set(conditional) == set(SOURCES.values())
    _, policy, otherwise = conditional[SOURCES[source]]
    assert otherwise == {"Ref": "AWS::NoValue"}
    granted = [
        action
        for statement in policy["PolicyDocument"]["Statement"]
        for action in statement["Action"]
    ]
    assert sorted(granted) == sorted(pins.REQUIRED_IAM_ACTIONS[source])


def test_every_source_that_reads_a_workload_account_has_a_switch() -> None:
    # sts is the sweeper's own (it assumes this role); s3 and inspector (which covers the
    # registry's account) are read with the sweeper's own credentials.
    assert set(pins.REQUIRED_IAM_ACTIONS) - {"sts", "s3", "inspector"} == set(SOURCES)


def test_only_the_sweepers_role_may_assume_it(reader: Template) -> None:
    (statement,) = role(reader)["AssumeRolePolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"AWS": {"Ref": "SweeperRoleArn"}},
        "Action": "sts:AssumeRole",
    }
    parameters = reader["Parameters"]
    assert parameters["SweeperRoleArn"]["AllowedPattern"] == ROLE_ARN_PATTERN
    assert parameters["ParameterPath"]["AllowedPattern"] == f"^$|{PARAMETER_PATH_PATTERN}"
    sam = load_sam()
    assert sam["Outputs"]["SweeperRoleArn"]["Value"] == {
        "Fn::GetAtt": ["SweeperFunctionRole", "Arn"]
    }


def test_its_default_name_matches_what_the_docs_tell_to_put_in_pin_role_arns(
    reader: Template,
) -> None:
    name = reader["Parameters"]["RoleName"]["Default"]
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert f"arn:aws:iam::<account>:role/{name}" in operations
    assert re.fullmatch(ROLE_ARN_PATTERN, f"arn:aws:iam::222222222222:role/{name}")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "stackset_template", ROOT / "scripts" / "stackset_template.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stackset_template_is_the_sweeper_without_the_transform(tmp_path: Path) -> None:
    packaged = (
        (ROOT / "template.yaml")
        .read_text()
        .replace("CodeUri: src/handler/", "CodeUri: s3://artifacts/ecr-sweeper.zip")
    )
    source = tmp_path / "packaged.yaml"
    source.write_text(packaged)
    target = tmp_path / "out" / "sweeper-stackset.json"
    assert _script().main(["stackset_template.py", str(source), str(target)]) == 0
    template = json.loads(target.read_text())
    assert "Transform" not in template
    assert not any(
        r["Type"].startswith("AWS::Serverless::") for r in template["Resources"].values()
    )
    function = template["Resources"]["SweeperFunction"]["Properties"]
    assert function["Code"] == {"S3Bucket": "artifacts", "S3Key": "ecr-sweeper.zip"}
    policies = template["Resources"]["SweeperFunctionRole"]["Properties"]["Policies"]
    conditions = {p["Fn::If"][0] for p in policies if "Fn::If" in p}
    assert "PinsFromOtherAccounts" in conditions
    errors = [
        str(m) for m in lint(json.dumps(template), regions=[REGION]) if m.rule.id.startswith("E")
    ]
    assert errors == []


def test_the_stackset_script_refuses_code_not_in_s3(tmp_path: Path) -> None:
    source = tmp_path / "template.yaml"
    source.write_text((ROOT / "template.yaml").read_text())
    with pytest.raises(SystemExit, match="CodeUri 'src/handler/' is not in S3"):
        _script().main(["stackset_template.py", str(source), str(tmp_path / "out.json")])
