"""Amazon Inspector: ECR images its coverage says are in use.

With enhanced scanning, Inspector records for each ECR image of the account how many ECS tasks and
EKS pods run it (`inUseCount`) and when one last did (`lastInUseAt`). This source pins every image
whose coverage shows `inUseCount > 0`, or `lastInUseAt` inside the pull window: two `ListCoverage`
listings, filtered by Inspector (`ecrImageInUseCount`, `ecrImageLastInUseAt`), every page.

It sees only what Inspector monitors: images of the registry's account that enhanced scanning
covers, run by ECS and EKS where Inspector tracks them. It is a second opinion beside the ECS and
EKS sources, not a replacement for them (docs/operations.md). A listing that fails fails closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..model import Pin, digests_in
from .core import pages

ACTIONS = ("inspector2:ListCoverage",)
ECR_IMAGE = "AWS_ECR_CONTAINER_IMAGE"


class InspectorPins:
    """ECR images Inspector's coverage shows in use now, or within `window` before `now`."""

    name = "inspector"

    def __init__(self, client: Any, now: datetime, window: timedelta | None) -> None:
        self._client = client
        self.now = now
        self.window = window

    def read(self) -> list[Pin]:
        image = {"resourceType": [{"comparison": "EQUALS", "value": ECR_IMAGE}]}
        filters = [
            ("in use", {**image, "ecrImageInUseCount": [{"lowerInclusive": 1}]}),
        ]
        if self.window is not None:
            since = {"startInclusive": self.now - self.window, "endInclusive": self.now}
            filters.append(
                (
                    f"in use since {since['startInclusive']:%Y-%m-%d}",
                    {**image, "ecrImageLastInUseAt": [since]},
                )
            )
        pins: list[Pin] = []
        for why, criteria in filters:
            for resource in pages(
                "inspector",
                self._client,
                "ListCoverage",
                "list_coverage",
                "coveredResources",
                filterCriteria=criteria,
            ):
                where = f"inspector:{resource.get('resourceId', '?')} ({why})"
                pins.extend(Pin(d, where) for d in digests_in(str(resource.get("resourceId", ""))))
        return pins
