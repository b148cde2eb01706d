"""template.yaml, translated to CloudFormation offline, and the means to read what it says.

The translation is SAM's own (`samtranslator.transform`, as `sam deploy` runs it server-side), with
a stub managed-policy loader (no IAM call), a fixed region and `CodeUri` swapped for an `s3://`
placeholder. `resolve_sub` turns an `Fn::Sub` into the text CloudFormation would produce, with
stand-ins for values only a deployed stack knows (names, ARNs).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import intrinsics_multi_constructor

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "ecr-sweeper-test"
CODE_URI = "s3://placeholder-bucket/ecr-sweeper.zip"
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": STACK,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
Template = dict[str, Any]


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsics (!Ref, !Sub, ...), on a private loader class."""


_Loader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_sam(path: Path = TEMPLATE) -> Template:
    template: Template = yaml.load(path.read_text(), Loader=_Loader)
    return template


class _StubPolicyLoader:
    """The template names no managed policy by name; SAM adds the ones it needs as ARNs."""

    def load(self) -> dict[str, str]:
        return {}


def translate(sam: Template) -> Template:
    """CloudFormation for a SAM template, offline; the input is not modified."""
    template = copy.deepcopy(sam)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = CODE_URI
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}):
        translated: Template = transform(template, {}, _StubPolicyLoader())
    return translated


def resources_of_type(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def parameter_defaults(template: Template) -> dict[str, str]:
    """Each parameter's default as CloudFormation passes it on: a string."""
    return {
        name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()
    }


@dataclass(frozen=True)
class Stand:
    """What a resource's Ref or GetAtt stands for in resolved text."""

    refs: Mapping[str, str]

    def ref(self, template: Template, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.refs:
            return self.refs[name]
        if name in template.get("Parameters", {}):
            return parameter_defaults(template)[name]
        if name in template["Resources"]:
            return f"{name}-ref"
        raise KeyError(f"${{{name}}} names no parameter, resource or pseudo parameter")

    def get_att(self, template: Template, resource: str, attribute: str) -> str:
        if resource not in template["Resources"]:
            raise KeyError(f"${{{resource}.{attribute}}} names no resource")
        return f"arn:aws:placeholder:{REGION}:{ACCOUNT}:{resource}/{attribute}"


_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def resolve_sub(template: Template, value: Any, refs: Mapping[str, str] | None = None) -> str:
    """The text of an `Fn::Sub` (short or long form) with every `${...}` replaced.

    `${Name}` is a parameter (its default), a resource (`refs[Name]` or a stand-in) or a pseudo
    parameter; `${Resource.Attribute}` a GetAtt stand-in; `${!Literal}` stays `${Literal}`. Any
    other name fails, as CloudFormation would.
    """
    stand = Stand(refs or {})
    if not (isinstance(value, dict) and set(value) == {"Fn::Sub"}):
        raise TypeError(f"not an Fn::Sub: {value!r}")
    body = value["Fn::Sub"]
    variables: Mapping[str, Any] = {}
    if isinstance(body, list):
        body, variables = body
    if not isinstance(body, str):
        raise TypeError(f"Fn::Sub text is not a string: {body!r}")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            variable = variables[name]
            if isinstance(variable, str):
                return variable
            if isinstance(variable, dict) and "Ref" in variable:
                return stand.ref(template, variable["Ref"])
            raise TypeError(f"cannot resolve Fn::Sub variable {name}: {variable!r}")
        if "." in name and not name.startswith("AWS::"):
            resource, attribute = name.split(".", 1)
            return stand.get_att(template, resource, attribute)
        return stand.ref(template, name)

    return _PLACEHOLDER.sub(replace, body)


# --- a template's values for given parameters --------------------------------------------------


def evaluate(
    template: Template,
    node: Any,
    parameters: Mapping[str, str] | None = None,
    pseudo: Mapping[str, str] | None = None,
) -> Any:
    """`node` with its intrinsic functions evaluated as CloudFormation would for `parameters`
    (the others at their defaults) and the `pseudo` parameters (default PSEUDO): Ref, Fn::Sub
    (both forms), Fn::Split, Fn::Select, Fn::Join, Fn::If (over the template's Conditions),
    Fn::Equals, Fn::Not. An `AWS::NoValue` leaves its key or list item out."""
    names: dict[str, Any] = {
        **PSEUDO,
        **(pseudo or {}),
        **parameter_defaults(template),
        **(parameters or {}),
    }
    no_value = object()

    def condition(name: str) -> bool:
        return bool(value(template["Conditions"][name], names))

    def value(item: Any, scope: Mapping[str, Any]) -> Any:
        if isinstance(item, list):
            return [v for v in (value(i, scope) for i in item) if v is not no_value]
        if not isinstance(item, dict):
            return item
        if len(item) == 1:
            ((key, args),) = item.items()
            if key == "Ref":
                return no_value if args == "AWS::NoValue" else scope[args]
            if key == "Fn::Sub":
                text, variables = (args, {}) if isinstance(args, str) else args
                local = {**scope, **{k: value(v, scope) for k, v in variables.items()}}
                return _PLACEHOLDER.sub(lambda m: str(_name(local, m.group(1))), text)
            if key == "Fn::Split":
                separator, text = args
                return str(value(text, scope)).split(separator)
            if key == "Fn::Select":
                index, items = args
                return value(items, scope)[int(value(index, scope))]
            if key == "Fn::Join":
                separator, items = args
                return separator.join(value(items, scope))
            if key == "Fn::If":
                name, then, otherwise = args
                return value(then if condition(name) else otherwise, scope)
            if key == "Fn::Equals":
                left, right = args
                return value(left, scope) == value(right, scope)
            if key == "Fn::Not":
                return not value(args[0], scope)
            if key == "Condition":
                return condition(args)
            if key == "Fn::GetAtt":  # a resource's attribute, known once deployed
                return f"<{args[0]}.{args[1]}>"
        return {
            k: v for k, v in ((k, value(v, scope)) for k, v in item.items()) if v is not no_value
        }

    return value(node, names)


def _name(scope: Mapping[str, Any], name: str) -> Any:
    """A name of `${...}`: a parameter, or a resource's attribute (known once deployed)."""
    if name in scope or "." not in name:
        return scope[name]
    return f"<{name}>"
