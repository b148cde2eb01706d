"""The audit of ECR's own lifecycle policies: what a repository's policy will expire next,
counted as ECR counts (every manifest is an image; an expired image goes with all its tags), and
what of that is in use. Pure; the evaluator is lifecycle.evaluate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from .lifecycle import Action, LifecyclePolicy, Rule, evaluate
from .model import Image, Kind, Manifest, Pin, Reason
from .plan import Policy

MAX_ROUNDS = 8  # evaluations followed, each exposing the children of expired indexes
HAZARD_MESSAGE = "lifecycle hazard"  # the log line of each hazard; the dashboard queries it


class HazardReason(StrEnum):
    PINNED = Reason.PINNED.value  # a pin source names it
    PULLED = Reason.PULLED.value  # pulled within the pull window
    OTHER_TAG = "other-tag"  # it carries a tag the expiring rule does not select
    TAG_IN_USE = Reason.TAG_IN_USE.value  # a workload names one of its tags


@dataclass(frozen=True, slots=True)
class Prediction:
    """What ECR will do to one manifest: `rule` expires (or archives) it, once the index
    `after` is gone when that is what exposes it ("" when nothing has to go first)."""

    rule: Rule
    after: str = ""


@dataclass(frozen=True, slots=True)
class Hazard:
    """Something in use that ECR's own lifecycle policy will expire (or archive)."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    rule: int  # its rulePriority
    reason: HazardReason
    cause: str

    def as_dict(self) -> dict[str, Any]:
        """The report's entry, and the keys of its log line (message HAZARD_MESSAGE)."""
        return {
            "repository": self.repository,
            "digest": self.digest,
            "tags": list(self.tags),
            "rule": self.rule,
            "reason": self.reason.value,
            "cause": self.cause,
        }


def predict(
    policy: LifecyclePolicy,
    images: Sequence[Image],
    manifests: Mapping[str, Manifest],
    now: datetime,
) -> dict[str, Prediction]:
    """What ECR's policy will expire or archive over its next evaluations, counting as ECR does:
    every manifest is an image, and an expired image goes with all its tags.

    ECR does not expire a manifest an index lists (though its rules count it); once the index is
    expired, its children are ordinary images at the next evaluation. So evaluations follow each
    other, with the clock held at `now`, until one expires nothing new (at most MAX_ROUNDS).
    `manifests` holds the parsed indexes.
    """
    children = {
        digest: [ref.digest for ref in parsed.references]
        for digest, parsed in manifests.items()
        if parsed.kind in (Kind.INDEX, Kind.REFERRER) and parsed.references
    }
    present = {image.digest: image for image in images}
    exposed_by: dict[str, str] = {}
    predicted: dict[str, Prediction] = {}
    for _ in range(MAX_ROUNDS):
        listed = {c for parent in present if parent in children for c in children[parent]}
        found = evaluate(policy, list(present.values()), now, every_tag=False, protected=listed)
        new = {d: rule for d, rule in found.items() if d not in predicted}
        if not new:
            break
        for digest, rule in new.items():
            predicted[digest] = Prediction(rule, exposed_by.get(digest, ""))
            if rule.action is Action.TRANSITION:
                present[digest] = replace(present[digest], archived=True)
                continue
            del present[digest]
            for child in children.get(digest, ()):
                exposed_by.setdefault(child, digest)
    return predicted


def hazards(
    repository: str,
    images: Sequence[Image],
    manifests: Mapping[str, Manifest],
    policy: LifecyclePolicy,
    pins: Mapping[str, Pin],
    settings: Policy,
    now: datetime,
    *,
    tags_in_use: Mapping[str, str] | None = None,
) -> list[Hazard]:
    """What of ECR's predicted expiries is in use: pinned (any pin source), recently pulled
    (inside the pull window of `settings`), or carrying a tag the expiring rule does not select
    (a promoted release that ECR would expire for its CI tag), or carrying a tag something runs by
    (`tags_in_use`: tag -> where it was found; a Deployment naming `repo:ci-50` fails to start
    once ECR expires `ci-50`). One hazard per manifest and reason, in digest order."""
    tags_in_use = tags_in_use or {}
    by_digest = {image.digest: image for image in images}
    window = settings.keep_pulled_within
    found: list[Hazard] = []
    for digest, prediction in sorted(predict(policy, images, manifests, now).items()):
        image, rule = by_digest[digest], prediction.rule
        evidence: list[tuple[HazardReason, str]] = []
        if digest in pins:
            evidence.append((HazardReason.PINNED, f"pinned by {pins[digest].source}"))
        pulled = image.last_pulled
        if window is not None and pulled is not None and pulled > now - window:
            evidence.append((HazardReason.PULLED, f"last pulled {pulled.isoformat()}"))
        other = [tag for tag in image.tags if not rule.selects_tag(tag)]
        if other:
            listed = ", ".join(other)
            evidence.append((HazardReason.OTHER_TAG, f"tag {listed} is not one the rule selects"))
        running = [tag for tag in image.tags if tag in tags_in_use]
        if running:
            tag = running[0]
            evidence.append((HazardReason.TAG_IN_USE, f"tag {tag} in use ({tags_in_use[tag]})"))
        does = "archives" if rule.action is Action.TRANSITION else "expires"
        then = f" once index {prediction.after} is expired" if prediction.after else ""
        found.extend(
            Hazard(
                repository,
                digest,
                image.tags,
                rule.priority,
                reason,
                f"{because}; {rule.label} {does} it{then}",
            )
            for reason, because in evidence
        )
    return found
