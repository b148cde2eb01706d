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

from .lifecycle import Action, CountType, LifecyclePolicy, Rule, evaluate
from .model import Image, Kind, Manifest, Pin, Reason, accessory_of
from .plan import Policy

MAX_ROUNDS = 8  # evaluations followed, each exposing the children of expired indexes
HAZARD_MESSAGE = "lifecycle hazard"  # the log line of each hazard; the dashboard queries it


class HazardReason(StrEnum):
    PINNED = Reason.PINNED.value  # a pin source names it
    PULLED = Reason.PULLED.value  # pulled within the pull window
    OTHER_TAG = "other-tag"  # it carries a tag the expiring rule does not select
    # A signature (referrer or tag-scheme accessory) of an image in use: verifying that image
    # fails once it is gone.
    SIGNATURE_OF_IN_USE = "signature-of-in-use"
    TAG_IN_USE = Reason.TAG_IN_USE.value  # a workload names one of its tags


UNEVALUATED_MESSAGE = "lifecycle rule not evaluated"  # the log line of each Unevaluated


@dataclass(frozen=True, slots=True)
class Unevaluated:
    """A rule of ECR's policy the audit cannot evaluate: reported, never silent."""

    repository: str
    rule: int  # its rulePriority
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "rule": self.rule, "why": self.why}


def unevaluated(repository: str, policy: LifecyclePolicy) -> list[Unevaluated]:
    """The rules whose expiries the audit cannot predict: `sinceImageTransitioned` counts from
    when an image was archived, which the listing does not carry."""
    return [
        Unevaluated(
            repository,
            rule.priority,
            f"{rule.label}: sinceImageTransitioned counts from the archiving, which the "
            "listing does not give; every archived image it selects may expire",
        )
        for rule in policy.rules
        if rule.count_type is CountType.SINCE_IMAGE_TRANSITIONED
    ]


@dataclass(frozen=True, slots=True)
class Prediction:
    """What ECR will do to one manifest: `rule` expires (or archives) it, once the index
    `after` is gone when that is what exposes it ("" when nothing has to go first)."""

    rule: Rule
    after: str = ""
    may: bool = False  # a rule the audit cannot evaluate (`unevaluated`) may expire it


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
        found = evaluate(
            policy, list(present.values()), now, every_tag=False, protected=listed, ties=True
        )
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
    predicted = predict(policy, images, manifests, now)
    # Rules the audit cannot evaluate (`unevaluated`): every archived image they select may go.
    for rule in policy.rules:
        if rule.count_type is CountType.SINCE_IMAGE_TRANSITIONED:
            for image in images:
                if image.archived and rule.selects(image.tags) and image.digest not in predicted:
                    predicted[image.digest] = Prediction(rule, may=True)

    def in_use(image: Image, rule: Rule | None) -> list[tuple[HazardReason, str]]:
        """What makes `image` in use: a pin, a recent pull, or a tag that `rule` (None: no
        rule expires it) does not select."""
        evidence: list[tuple[HazardReason, str]] = []
        if image.digest in pins:
            evidence.append((HazardReason.PINNED, f"pinned by {pins[image.digest].source}"))
        pulled = image.last_pulled
        if pulled is not None and settings.pulled_within_window(pulled, now):
            evidence.append((HazardReason.PULLED, f"last pulled {pulled.isoformat()}"))
        tags = [t for t in image.tags if accessory_of(t, image.digest) is None]
        other = [tag for tag in tags if rule is None or not rule.selects_tag(tag)]
        if other:
            listed = ", ".join(other)
            because = "is not one the rule selects" if rule else "stays"
            evidence.append((HazardReason.OTHER_TAG, f"tag {listed} {because}"))
        running = [tag for tag in image.tags if tag in tags_in_use]
        if running:
            tag = running[0]
            evidence.append((HazardReason.TAG_IN_USE, f"tag {tag} in use ({tags_in_use[tag]})"))
        return evidence

    found: list[Hazard] = []
    for digest, prediction in sorted(predicted.items()):
        image, rule = by_digest[digest], prediction.rule
        evidence = in_use(image, rule)
        for subject in _subjects(image, manifests.get(digest)):
            described = by_digest.get(subject)
            if described is None:
                continue
            later = predicted.get(subject)
            uses = in_use(described, later.rule if later else None)
            if uses:
                evidence.append(
                    (HazardReason.SIGNATURE_OF_IN_USE, f"describes {subject}, {uses[0][1]}")
                )
        does = "archives" if rule.action is Action.TRANSITION else "expires"
        if prediction.may:
            does = f"may expire (not evaluated: {rule.count_type.value})"
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


def _subjects(image: Image, parsed: Manifest | None) -> list[str]:
    """What a signature describes: a referrer's subject, an accessory tag's digest."""
    named = [parsed.subject if parsed is not None else image.subject]
    named += [accessory_of(tag, image.digest) for tag in image.tags]
    return [s for s in dict.fromkeys(named) if s is not None]
