"""The rotation cursor's parameter: the stack owns it, names it in the function's environment,
and lets the function read and write that parameter and no other (sweeper/cursor.py)."""

from __future__ import annotations

from typing import Any

from sweeper import cursor

from .cfn import STACK, Template, resolve_sub, resources_of_type

PARAMETER = "RotationCursor"


def test_the_stack_creates_the_cursor_parameter_empty_and_per_stack(cfn: Template) -> None:
    assert list(resources_of_type(cfn, "AWS::SSM::Parameter")) == [PARAMETER]
    props = cfn["Resources"][PARAMETER]["Properties"]
    assert props["Type"] == "String"
    assert props["Value"] == cursor.EMPTY  # no cursor yet: the first run starts where the day says
    # One per stack: staging and prod in one account keep their own rotations.
    assert resolve_sub(cfn, props["Name"]) == f"/ecr-sweeper/{STACK}/rotation-cursor"


def test_the_function_is_told_the_parameter_by_name(cfn: Template) -> None:
    variables = cfn["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert variables[cursor.CURSOR_PARAMETER_ENV] == {"Ref": PARAMETER}


def test_the_function_may_read_and_write_exactly_that_parameter(cfn: Template) -> None:
    granted: list[dict[str, Any]] = [
        statement
        for resource in resources_of_type(cfn, "AWS::IAM::RolePolicy").values()
        for statement in resource["Properties"]["PolicyDocument"].get("Statement", [])
        if isinstance(statement, dict)
        and any(str(a).startswith("ssm:") for a in statement.get("Action", []))
    ]
    assert len(granted) == 1
    (statement,) = granted
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == sorted(cursor.CURSOR_ACTIONS)
    assert statement["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
        "${RotationCursor}"
    }
    name = resolve_sub(cfn, cfn["Resources"][PARAMETER]["Properties"]["Name"])
    assert resolve_sub(cfn, statement["Resource"], {PARAMETER: name}) == (
        f"arn:aws:ssm:us-east-1:123456789012:parameter/ecr-sweeper/{STACK}/rotation-cursor"
    )
    role = cfn["Resources"]["SweeperFunctionRole"]["Properties"]
    inline = [s for p in role["Policies"] for s in p.get("PolicyDocument", {}).get("Statement", [])]
    assert not any(
        a in cursor.CURSOR_ACTIONS
        for s in inline
        if isinstance(s, dict)
        for a in ([s["Action"]] if isinstance(s.get("Action"), str) else s.get("Action", []))
    )
