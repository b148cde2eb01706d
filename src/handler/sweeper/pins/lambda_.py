"""Lambda: the image every container-image function version runs."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..model import Pin, digests_in
from .core import DEFAULT_WORKERS, PinSourceError, error, pages, parallel

ACTIONS = (
    "lambda:GetFunction",
    "lambda:ListFunctions",
    "lambda:ListVersionsByFunction",
)


class LambdaPins:
    """The resolved image digest of every container-image function, for `$LATEST` and every
    published version (aliases point at versions, so they add nothing).

    Lambda resolves a tag to a digest when the code is deployed and keeps running that digest,
    even after the tag moves; only GetFunction's `ResolvedImageUri` says which one.
    """

    name = "lambda"

    def __init__(self, client: Any, workers: int = DEFAULT_WORKERS) -> None:
        self._client = client
        self.workers = workers

    def read(self) -> list[Pin]:
        functions = [
            f["FunctionName"]
            for f in pages("lambda", self._client, "ListFunctions", "list_functions", "Functions")
            if f.get("PackageType") == "Image"
        ]
        return [pin for pins in parallel(self.workers, self._function, functions) for pin in pins]

    def _function(self, name: str) -> list[Pin]:
        versions = [
            v["Version"]
            for v in pages(
                "lambda",
                self._client,
                f"ListVersionsByFunction {name}",
                "list_versions_by_function",
                "Versions",
                FunctionName=name,
            )
        ]
        pins: list[Pin] = []
        for version in versions:
            try:
                code = self._client.get_function(FunctionName=name, Qualifier=version)["Code"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    continue  # deleted since it was listed: it runs nothing any more
                raise error("lambda", f"GetFunction {name}:{version}", exc) from exc
            except BotoCoreError as exc:
                raise error("lambda", f"GetFunction {name}:{version}", exc) from exc
            found = digests_in(code.get("ResolvedImageUri", ""))
            if not found:
                # An image function always has one; without it we cannot tell what runs.
                raise PinSourceError(
                    "lambda", f"GetFunction {name}:{version}: no digest in ResolvedImageUri"
                )
            pins.extend(Pin(digest, f"lambda:{name}:{version}") for digest in found)
        return pins
