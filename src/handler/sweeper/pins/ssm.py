"""SSM Parameter Store: every parameter under a path."""

from __future__ import annotations

from typing import Any

from ..model import HeldTag, Pin, digests_in
from .core import PinSourceError, held_in, pages

ACTIONS = ("ssm:GetParametersByPath",)
KMS_ACTIONS = ("kms:Decrypt",)  # SecureString under a customer managed key, via SSM only


class ParameterPins:
    """Every parameter under an SSM path, recursively, SecureStrings decrypted.

    An empty answer is an error: GetParametersByPath cannot tell a path with no parameter from a
    path that does not exist, and a misspelt path would silently protect nothing. So is a path
    whose parameters name no digest (nor an ECR image by tag) at all: what was meant to pin
    something pins nothing. ECR image references by tag are held tags (`held`).
    """

    name = "ssm"

    def __init__(self, client: Any, path: str) -> None:
        self._client = client
        self.path = path
        self.held: list[HeldTag] = []

    def read(self) -> list[Pin]:
        source = f"ssm:{self.path}"
        pins: list[Pin] = []
        held: list[HeldTag] = []
        count = 0
        for parameter in pages(
            source,
            self._client,
            "GetParametersByPath",
            "get_parameters_by_path",
            "Parameters",
            Path=self.path,
            Recursive=True,
            WithDecryption=True,
        ):
            count += 1
            name = parameter.get("Name", "")
            pins.extend(Pin(d, f"ssm:{name}") for d in digests_in(parameter.get("Value", "")))
            held.extend(held_in(parameter.get("Value", ""), f"ssm:{name}"))
        if not count:
            raise PinSourceError(source, "no parameter under this path (missing or misspelt?)")
        self.held = held
        if not pins and not held:
            raise PinSourceError(
                source, f"no sha256 digest in any of the {count} parameters under this path"
            )
        return pins
