"""Where the rotation's cursor lives: an SSM parameter the stack owns (run.rotation says what the
cursor is for).

This module is an edge, like pins.py: it gets a boto3 SSM client and the parameter's name from
the handler, and implements `ports.RotationCursor`. The parameter holds a small JSON document,
`{"next": "<repository>"}`; the stack creates it holding `{}` (no cursor yet). Anything else in it
(hand-edited, truncated) reads as no cursor, with a warning: the run starts where the day says.

Which runs use it (`for_run`): the cursor belongs to the deployment's own selection of
repositories and to its own mode. A request that chose other repositories (`repositories`,
`exclude_repositories`, a required tag) neither reads nor moves it: its order says nothing about
the deployment's. A dry run on a deployment that deletes reads it, so it previews the next real
run's repositories, and leaves it where it is: a dry run never moves the real runs' rotation.
On a dry-run deployment the dry runs are the deployment's runs, and move it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .ports import RotationCursor
from .settings import Settings

log = logging.getLogger("ecr_sweeper")

# The environment variable naming the parameter (the stack sets it), and what the function may
# do to that parameter alone; tests/template compares both with the template.
CURSOR_PARAMETER_ENV = "ROTATION_CURSOR_PARAMETER"
CURSOR_ACTIONS = ("ssm:GetParameter", "ssm:PutParameter")
EMPTY = "{}"  # the value the stack creates the parameter with: no cursor yet
NOT_FOUND = "ParameterNotFound"


class ParameterCursor:
    """The cursor in one SSM String parameter. `writable=False`: reads only (see `for_run`)."""

    def __init__(self, client: Any, name: str, *, writable: bool = True) -> None:
        self.client = client
        self.name = name
        self.writable = writable

    def read(self) -> str | None:
        try:
            value = self.client.get_parameter(Name=self.name)["Parameter"]["Value"]
        except self.client.exceptions.ParameterNotFound:
            log.warning(
                "rotation cursor missing: starting where the day says",
                extra={"parameter": self.name},
            )
            return None
        if value.strip() == EMPTY:
            return None
        try:
            document = json.loads(value)
        except ValueError:
            document = None
        start = document.get("next") if isinstance(document, dict) else None
        if not isinstance(start, str) or not start:
            log.warning(
                "rotation cursor unreadable: starting where the day says",
                extra={"parameter": self.name, "value": value[:200]},
            )
            return None
        return start

    def write(self, repository: str) -> None:
        if not self.writable:
            return
        self.client.put_parameter(
            Name=self.name,
            Value=json.dumps({"next": repository}),
            Type="String",
            Overwrite=True,
        )
        log.info("rotation cursor", extra={"parameter": self.name, "next_repository": repository})


def selection(settings: Settings) -> tuple[object, ...]:
    """What decides which repositories a run takes."""
    return (
        settings.repositories,
        settings.within_repositories,
        settings.exclude_repositories,
        settings.required_repository_tag,
    )


def for_run(
    settings: Settings,
    deployed: Settings,
    parameter: str,
    client: Callable[[str], Any],
) -> RotationCursor | None:
    """The cursor a run with `settings` uses on the deployment `deployed` (its settings without a
    request), or None: no parameter configured, or a request that chose other repositories."""
    if not parameter or selection(settings) != selection(deployed):
        return None
    return ParameterCursor(client("ssm"), parameter, writable=settings.dry_run == deployed.dry_run)
