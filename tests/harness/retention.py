"""CI repositories under an ECR lifecycle policy: the state issue 13's end-to-end scenario starts
from (retention, and the audit of the policy ECR runs).

Each repository holds single-platform buildx builds with provenance (an index tagged `ci-<n>`,
its platform image and its legacy attestation), pushed at an even pace over `days` up to `now`;
the newest also carries `latest`. One old build was promoted with a release tag, two old builds
are pinned by what runs them, one old build was pulled yesterday. Every repository carries the
same ECR lifecycle policy, "keep 25 CI builds" and "expire untagged after 3 days", and
`retention_request` gives the same rules as the sweeper's `retention`.

Seeded through `FakeRegistry.push_buildx(fast=True)`: a few hundred manifests per repository in
well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .ecr import BuildxPush, FakeRegistry

__all__ = [
    "CI_POLICY",
    "TRANSITIONED_90_DAYS",
    "CiRepository",
    "retention_request",
    "seed_ci_repositories",
]

KEEP_CI = 25
UNTAGGED_DAYS = 3

# A rule the audit cannot evaluate: `sinceImageTransitioned` counts from when an image was
# archived, which the listing does not carry.
TRANSITIONED_90_DAYS: dict[str, Any] = {
    "rules": [
        {
            "rulePriority": 1,
            "selection": {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 90,
            },
            "action": {"type": "expire"},
        }
    ]
}

CI_POLICY: dict[str, Any] = {
    "rules": [
        {
            "rulePriority": 1,
            "description": f"keep {KEEP_CI} CI builds",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "imageCountMoreThan",
                "countNumber": KEEP_CI,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"expire untagged after {UNTAGGED_DAYS} days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": UNTAGGED_DAYS,
            },
            "action": {"type": "expire"},
        },
    ]
}
# Which old builds (by age rank, 0 the oldest) play which part: all older than the newest 25
# and than the grace period, so ECR's policy would expire every one of them.
PROMOTED, PINNED, PULLED = 10, (20, 40), 30


@dataclass(frozen=True)
class CiRepository:
    """What was seeded in one repository; `builds` oldest first."""

    name: str
    builds: tuple[BuildxPush, ...]
    release_tag: str  # on builds[PROMOTED], beside its CI tag
    pinned: tuple[BuildxPush, ...]  # their index digests are in `pins`
    pulled: BuildxPush  # its index was pulled a day before `now`

    @property
    def latest(self) -> BuildxPush:
        return self.builds[-1]

    @property
    def promoted(self) -> BuildxPush:
        return self.builds[PROMOTED]

    @property
    def pins(self) -> list[str]:
        """The runtime pins, as the `pins` setting takes them (`repository@digest`)."""
        return [f"{self.name}@{build.index}" for build in self.pinned]


def seed_ci_repositories(
    registry: FakeRegistry,
    now: datetime,
    *,
    names: Sequence[str] = ("web", "api"),
    builds: int = 150,
    days: float = 10,
) -> list[CiRepository]:
    """`builds` CI builds per repository over `days` before `now` (the newest one pace before
    `now`), with the parts above, and `CI_POLICY` as each repository's ECR lifecycle policy."""
    if builds <= max(PROMOTED, *PINNED, PULLED) + KEEP_CI:
        raise ValueError(f"at least {max(PROMOTED, *PINNED, PULLED) + KEEP_CI + 1} builds")
    pace = timedelta(days=days) / builds
    seeded: list[CiRepository] = []
    for name in names:
        pushed = [
            registry.push_buildx(
                name,
                tag=f"ci-{number}",
                pushed_at=now - (builds - number) * pace,
                build_id=f"{name}:{number}",
                fast=True,
            )
            for number in range(builds)
        ]
        release = "v1.4.0"
        registry.tag(name, release, pushed[PROMOTED].index)
        registry.tag(name, "latest", pushed[-1].index)
        registry.set_last_pulled(name, pushed[PULLED].index, now - timedelta(days=1))
        registry.put_lifecycle_policy(name, CI_POLICY)
        seeded.append(
            CiRepository(
                name,
                tuple(pushed),
                release,
                tuple(pushed[rank] for rank in PINNED),
                pushed[PULLED],
            )
        )
    return seeded


def retention_request(repositories: Sequence[CiRepository], **request: Any) -> dict[str, Any]:
    """A request applying `CI_POLICY`'s rules as retention, pinning what the repositories pin."""
    return {
        "scope": "orphans",
        "retention": [{"rules": CI_POLICY["rules"]}],
        "pins": [pin for repository in repositories for pin in repository.pins],
        **request,
    }
