"""The sweeper's template as plain CloudFormation, for StackSets (which refuse the
`AWS::Serverless` transform): a packaged SAM template (`sam package` output, the function's
code already in S3) translated offline by SAM's own translator, as `sam deploy` has
CloudFormation do it, and written as JSON.

    python scripts/stackset_template.py build/sweeper-packaged.yaml build/sweeper-stackset.json

Run by `make stackset-template BUCKET=...`; docs/operations.md says how to deploy the result.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import intrinsics_multi_constructor


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsics (!Ref, !Sub, ...)."""


_Loader.add_multi_constructor("!", intrinsics_multi_constructor)


class _NoManagedPolicies:
    """The template names no managed policy by name (SAM adds its own as ARNs): no IAM call."""

    def load(self) -> dict[str, str]:
        return {}


def transformed(text: str) -> dict[str, Any]:
    """CloudFormation for a SAM template's text; every function's CodeUri must be in S3."""
    template: dict[str, Any] = yaml.load(text, Loader=_Loader)
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            code = resource["Properties"].get("CodeUri")
            if not (isinstance(code, str) and code.startswith("s3://")):
                raise SystemExit(
                    f"{name}: CodeUri {code!r} is not in S3: translate `sam package` output"
                )
    # The translator wants a region; the result refers to ${AWS::Region}, not to this one.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = Path(argv[1]), Path(argv[2])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(transformed(source.read_text()), indent=1) + "\n")
    print(f"{target}: plain CloudFormation (no transform), for StackSets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
