"""ECR lifecycle policies: the language `retention` speaks, parsed, validated and evaluated. Pure;
no I/O.

One evaluator, used two ways:

- **Retention** (`expire`): the rules a user gives the sweeper, evaluated over the top-level
  images of a repository (`top_level`). What it returns is only a wish: the plan stops treating
  the tags of an expired image as roots and the graph decides (plan.make_plan, `expired`).
- **Audit** (`audit.predict`, `audit.hazards`): the policy ECR itself runs on a repository,
  evaluated as ECR evaluates it, to warn about what it will expire that something still uses.

ECR's semantics, as AWS documents them ("Lifecycle policy properties in Amazon ECR", "Examples of
lifecycle policies in Amazon ECR", "How lifecycle policies work"):

- Rules are applied in `rulePriority` order, lowest first; an `any` rule must come last.
- A rule selects the images that meet its tag requirements: `untagged` ones, `any`, or `tagged`
  ones where *every* entry of its `tagPrefixList` / `tagPatternList` matches *some* tag of the
  image (`*` in a pattern matches any run of characters). Then its count: `imageCountMoreThan`
  keeps the newest `countNumber` of them by push time and marks the rest; `sinceImagePushed` /
  `sinceImagePulled` mark those older than `countNumber` days by that time.
- A rule counts every image it selects, even one a higher rule already expires ("identifies them
  as if they haven't been expired"), but expires none that meets the tag requirements of a
  higher-priority rule. So each image is expired by one rule or none.

Retention departs from ECR in three ways, each towards keeping more:

1. It counts images as people mean them: top-level manifests, not the children of an index,
   attestations, signatures or other referrers, nor tag-scheme accessories (containers-roadmap
   #2613 is the complaint that ECR counts all of those).
2. An expired image is not deleted outright: its tags stop being roots, and a pin, a recent pull,
   the grace period or a kept index still holds it (plan.py).
3. An image expires only when the rule that expires it selects *every* one of its tags: a release
   tag added to a CI build keeps the build, even where another rule would select that tag.

Where the evidence is missing the evaluator keeps: an image without a push time is never counted
nor expired; `sinceImagePulled` measures from the push time when ECR recorded no pull (the image
has not been pulled since it was pushed); `sinceImageTransitioned` expires nothing, since the
listing has no transition time.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeGuard

from .manifests import attestation_entries
from .model import Decision, Image, Kind, Manifest, Verdict, accessory_of
from .plan import metadata_kind

MAX_RULES = 100  # per policy: ECR's own limit is lower; anything above is a mistake
MAX_WILDCARDS = 4  # per tagPatternList entry, as ECR allows
MAX_COUNT = 2**31 - 1  # countNumber is a 32-bit integer in ECR's API


class TagStatus(StrEnum):
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    ANY = "any"


class CountType(StrEnum):
    IMAGE_COUNT_MORE_THAN = "imageCountMoreThan"
    SINCE_IMAGE_PUSHED = "sinceImagePushed"
    SINCE_IMAGE_PULLED = "sinceImagePulled"
    SINCE_IMAGE_TRANSITIONED = "sinceImageTransitioned"


class StorageClass(StrEnum):
    STANDARD = "standard"
    ARCHIVE = "archive"


class Action(StrEnum):
    EXPIRE = "expire"
    TRANSITION = "transition"  # to the archive storage class


class PolicyError(ValueError):
    """A policy or rule is wrong; `field` says where (`retention[0].rules[2]`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a lifecycle policy, as ECR reads it."""

    priority: int
    tag_status: TagStatus
    count_type: CountType
    count: int
    description: str = ""
    prefixes: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    storage_class: StorageClass = StorageClass.STANDARD
    action: Action = Action.EXPIRE
    _compiled: tuple[re.Pattern[str], ...] = field(
        init=False, default=(), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        # `*` matches any run of characters, everything else itself; a pattern matches a whole tag.
        compiled = tuple(
            re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
            for pattern in self.patterns
        )
        object.__setattr__(self, "_compiled", compiled)

    @property
    def label(self) -> str:
        """How decisions and hazards name the rule: `rule 1: keep 25 CI builds`."""
        if self.description:
            return f"rule {self.priority}: {self.description}"
        return f"rule {self.priority}"

    def selects(self, tags: Sequence[str]) -> bool:
        """Whether an image with these tags meets the rule's tag requirements: for a tagged
        rule, every entry of its list matches some tag."""
        if self.tag_status is TagStatus.ANY:
            return True
        if self.tag_status is TagStatus.UNTAGGED:
            return not tags
        if not tags:
            return False
        if self.prefixes:
            return all(any(tag.startswith(p) for tag in tags) for p in self.prefixes)
        return all(any(rx.fullmatch(tag) for tag in tags) for rx in self._compiled)

    def selects_tag(self, tag: str) -> bool:
        """Whether the rule speaks about this one tag (an `any` rule about every tag)."""
        if self.tag_status is TagStatus.ANY:
            return True
        if self.tag_status is TagStatus.UNTAGGED:
            return False
        return any(tag.startswith(p) for p in self.prefixes) or any(
            rx.fullmatch(tag) for rx in self._compiled
        )


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """Rules in the order ECR applies them (lowest `rulePriority` first)."""

    rules: tuple[Rule, ...]

    def selects_tag(self, tag: str) -> bool:
        """Whether some rule speaks about this tag (plan.make_plan's `rule_tags`)."""
        return any(rule.selects_tag(tag) for rule in self.rules)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """One entry of the `retention` setting: rules, and the repositories they apply to."""

    policy: LifecyclePolicy
    repositories: tuple[str, ...] = ()  # glob patterns; empty means every swept repository

    def applies_to(self, repository: str) -> bool:
        return not self.repositories or any(
            fnmatch.fnmatchcase(repository, pattern) for pattern in self.repositories
        )


def policy_for(retention: Sequence[RetentionPolicy], repository: str) -> LifecyclePolicy | None:
    """The rules for one repository: those of the first entry whose patterns match it."""
    for entry in retention:
        if entry.applies_to(repository):
            return entry.policy
    return None


# --- parsing and validation, as ECR validates a policy ---------------------------------------

_RULE_FIELDS = ("rulePriority", "description", "selection", "action")
_SELECTION_FIELDS = (
    "tagStatus",
    "tagPrefixList",
    "tagPatternList",
    "countType",
    "countUnit",
    "countNumber",
    "storageClass",
)
_ACTION_FIELDS = ("type", "targetStorageClass")
_DAYS = "days"


def parse_rules(value: object, field: str, *, ecr: bool = False) -> LifecyclePolicy:
    """The `rules` list of a lifecycle policy, checked as ECR checks it; `field` names it in
    errors (`retention[0].rules`), each rule by its index and its `rulePriority`.

    `ecr=False` (retention) refuses what the sweeper cannot do yet: the `transition` action and
    rules over the archive storage class. `ecr=True` (the audit) accepts every rule ECR runs.
    """
    if not isinstance(value, list) or not value:
        raise PolicyError(field, "must be a non-empty list of lifecycle policy rules")
    if len(value) > MAX_RULES:
        raise PolicyError(field, f"at most {MAX_RULES} rules, got {len(value)}")
    rules = [_rule(item, f"{field}[{i}]", ecr) for i, item in enumerate(value)]
    first_with: dict[int, int] = {}
    for i, rule in enumerate(rules):
        if rule.priority in first_with:
            raise PolicyError(
                f"{field}[{i}]",
                f"rulePriority {rule.priority}: {field}[{first_with[rule.priority]}] has the same "
                "priority; every rule needs its own",
            )
        first_with[rule.priority] = i
    ordered = sorted(rules, key=lambda r: r.priority)
    for rule in ordered:
        if rule.tag_status is TagStatus.ANY and rule is not ordered[-1]:
            index = rules.index(rule)
            raise PolicyError(
                f"{field}[{index}]",
                f"rulePriority {rule.priority}: a rule with tagStatus 'any' must have the highest "
                f"rulePriority (rulePriority {ordered[-1].priority} is higher), and there may be "
                "only one",
            )
    return LifecyclePolicy(tuple(ordered))


def parse_policy_text(text: str) -> LifecyclePolicy:
    """A policy as GetLifecyclePolicy returns it (`lifecyclePolicyText`), every rule ECR runs."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError("lifecyclePolicyText", f"not JSON: {exc}") from None
    if not isinstance(document, dict) or "rules" not in document:
        raise PolicyError("lifecyclePolicyText", "must be an object with a 'rules' list")
    return parse_rules(document["rules"], "lifecyclePolicyText.rules", ecr=True)


def _rule(item: object, where: str, ecr: bool) -> Rule:
    if not isinstance(item, dict):
        raise PolicyError(where, f"must be a lifecycle policy rule (an object), got {item!r}")
    priority = item.get("rulePriority")
    if not _whole(priority):
        raise PolicyError(where, f"rulePriority must be a whole number from 1, got {priority!r}")

    def fail(message: str) -> PolicyError:
        return PolicyError(where, f"rulePriority {priority}: {message}")

    _known_fields(item, _RULE_FIELDS, "", fail)
    description = item.get("description", "")
    if not isinstance(description, str):
        raise fail(f"description must be a string, got {description!r}")
    selection = item.get("selection")
    if not isinstance(selection, dict):
        raise fail(f"selection must be an object, got {selection!r}")
    _known_fields(selection, _SELECTION_FIELDS, "selection.", fail)
    action = item.get("action")
    if not isinstance(action, dict):
        raise fail(f"action must be an object, got {action!r}")
    _known_fields(action, _ACTION_FIELDS, "action.", fail)

    tag_status = TagStatus(_choice(selection, "tagStatus", TagStatus, fail))
    prefixes = _tag_list(selection, "tagPrefixList", fail)
    patterns = _tag_list(selection, "tagPatternList", fail)
    if tag_status is TagStatus.TAGGED and (prefixes is None) == (patterns is None):
        raise fail("tagStatus 'tagged' needs a tagPrefixList or a tagPatternList (one of them)")
    if tag_status is not TagStatus.TAGGED and (prefixes is not None or patterns is not None):
        raise fail(f"tagStatus {tag_status.value!r} takes no tagPrefixList or tagPatternList")
    for pattern in patterns or ():
        if pattern.count("*") > MAX_WILDCARDS:
            raise fail(f"tagPatternList entry {pattern!r} has more than {MAX_WILDCARDS} '*'")

    count_type = CountType(_choice(selection, "countType", CountType, fail))
    unit = selection.get("countUnit")
    if count_type is CountType.IMAGE_COUNT_MORE_THAN:
        if unit is not None:
            raise fail("countType 'imageCountMoreThan' takes no countUnit")
    elif unit != _DAYS:
        raise fail(f"countType {count_type.value!r} needs countUnit 'days', got {unit!r}")
    count = selection.get("countNumber")
    if not _whole(count):
        raise fail(f"countNumber must be a whole number from 1, got {count!r}")

    storage = StorageClass(
        _choice(selection, "storageClass", StorageClass, fail, StorageClass.STANDARD)
    )
    if (count_type is CountType.SINCE_IMAGE_TRANSITIONED) != (storage is StorageClass.ARCHIVE):
        raise fail(
            "countType 'sinceImageTransitioned' goes with storageClass 'archive', and only it"
        )
    kind = Action(_choice(action, "type", Action, fail))
    target = action.get("targetStorageClass")
    if kind is Action.TRANSITION and target != StorageClass.ARCHIVE.value:
        raise fail(f"action 'transition' needs targetStorageClass 'archive', got {target!r}")
    if kind is Action.EXPIRE and target is not None:
        raise fail("action 'expire' takes no targetStorageClass")
    if kind is Action.TRANSITION and storage is StorageClass.ARCHIVE:
        raise fail("action 'transition' applies to standard images, not archived ones")
    if not ecr and kind is Action.TRANSITION:
        raise fail("action 'transition' (to archive) is not supported by retention: use 'expire'")
    if not ecr and storage is StorageClass.ARCHIVE:
        raise fail("storageClass 'archive' is not supported by retention: archived images are kept")
    return Rule(
        priority,
        tag_status,
        count_type,
        count,
        description,
        tuple(prefixes or ()),
        tuple(patterns or ()),
        storage,
        kind,
    )


def _whole(value: object) -> TypeGuard[int]:
    """A whole number from 1 to MAX_COUNT (JSON's `true` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_COUNT


def _known_fields(value: Mapping[str, Any], known: Sequence[str], prefix: str, fail: Any) -> None:
    unknown = sorted(str(key) for key in value if key not in known)
    if unknown:
        raise fail(f"unknown field {prefix}{unknown[0]} (known: {', '.join(known)})")


def _choice(
    value: Mapping[str, Any], key: str, choices: Any, fail: Any, default: Any = None
) -> str:
    chosen = value.get(key, default)
    allowed = [c.value for c in choices]
    if chosen not in allowed:
        missing = "is missing" if chosen is None else f"is {chosen!r}"
        raise fail(f"{key} {missing}: use one of {', '.join(allowed)}")
    return str(chosen)


def _tag_list(selection: Mapping[str, Any], key: str, fail: Any) -> list[str] | None:
    value = selection.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise fail(f"{key} must be a non-empty list of strings, got {value!r}")
    for entry in value:
        if not isinstance(entry, str) or not entry:
            raise fail(f"{key} entries must be non-empty strings, got {entry!r}")
    return value


# --- evaluation -------------------------------------------------------------------------------


def evaluate(
    policy: LifecyclePolicy,
    images: Sequence[Image],
    now: datetime,
    *,
    every_tag: bool,
    protected: Collection[str] = frozenset(),
    ties: bool = False,
) -> dict[str, Rule]:
    """digest -> the rule that expires (or archives) it, in ECR's priority order.

    `every_tag` (retention) expires an image only when its rule selects every one of its tags.
    `protected` digests are counted like any other but never expired (the audit: ECR does not
    expire what an index still lists). `ties` (the audit): ECR does not document the order of
    images pushed within the same second (buildx pushes an index and its children within one),
    so every image of a tie that straddles a count's boundary may be the one expired, and all
    are returned. O(r * n log n) for r rules and n images.
    """
    claimed: set[str] = set()  # met the tag requirements of a higher-priority rule
    expired: dict[str, Rule] = {}
    for rule in policy.rules:
        archive = rule.storage_class is StorageClass.ARCHIVE
        selected = [i for i in images if i.archived == archive and rule.selects(i.tags)]
        for image in _marked(rule, selected, now, ties):
            digest = image.digest
            if digest in claimed or digest in protected:
                continue
            if every_tag and not all(rule.selects_tag(tag) for tag in image.tags):
                continue
            expired[digest] = rule
        claimed.update(image.digest for image in selected)
    return expired


def _marked(rule: Rule, selected: list[Image], now: datetime, ties: bool = False) -> list[Image]:
    """What the rule's count marks among the images it selects (with `ties`, what it may mark
    in some order of the images pushed within the same second: `evaluate`)."""
    if rule.count_type is CountType.IMAGE_COUNT_MORE_THAN:
        dated = [i for i in selected if i.pushed_at is not None]
        dated.sort(key=lambda i: (i.pushed_at, i.digest), reverse=True)  # newest first
        marked = dated[rule.count :]
        if ties and marked and rule.count:
            boundary = _second(marked[0])
            marked = [i for i in dated[: rule.count] if _second(i) == boundary] + marked
        return marked
    if rule.count_type is CountType.SINCE_IMAGE_TRANSITIONED:
        return []  # the listing carries no transition time
    try:
        cutoff = now - timedelta(days=rule.count)
    except OverflowError:
        return []  # before year 1: nothing is that old
    if rule.count_type is CountType.SINCE_IMAGE_PULLED:
        return [i for i in selected if (i.last_pulled or i.pushed_at or now) < cutoff]
    return [i for i in selected if i.pushed_at is not None and i.pushed_at < cutoff]


def _second(image: Image) -> datetime | None:
    return image.pushed_at.replace(microsecond=0) if image.pushed_at is not None else None


def top_level(images: Sequence[Image], manifests: Mapping[str, Manifest]) -> list[Image]:
    """The images retention counts: what people mean by an image (retention's difference 1).

    Left out: every manifest some other manifest lists (an index's children, whatever an
    unknown manifest mentions), referrers and attestations (by their bytes, their `subject` or
    their listing), and tag-scheme accessories. An untagged manifest counts only when it is
    proven an image or an index; leaving one out never expires anything more, since fewer images
    counted means fewer past any count. `manifests` must hold every index's parsed bytes.
    """
    listed = {ref.digest for parsed in manifests.values() for ref in parsed.references}
    marked: set[str] = set()
    for parsed in manifests.values():
        if parsed.kind is Kind.INDEX:
            marked.update(attestation_entries(parsed))
    chosen: list[Image] = []
    for image in images:
        digest = image.digest
        own = manifests.get(digest)
        subject = own.subject if own is not None else None
        if digest in listed or subject is not None or image.subject is not None:
            continue
        if any(accessory_of(tag, digest) for tag in image.tags):
            continue
        kind = own.kind if own is not None else metadata_kind(image, digest in marked)
        if kind in (Kind.ATTESTATION, Kind.REFERRER):
            continue
        if kind in (Kind.INDEX, Kind.IMAGE) or image.tags:
            chosen.append(image)
    return chosen


def expire(policy: LifecyclePolicy, images: Sequence[Image], now: datetime) -> dict[str, str]:
    """Retention: digest -> the label of the rule that expires it. `images` are the top-level
    images of the repository (`top_level`); pass the result to plan.make_plan as `expired`."""
    return {
        digest: rule.label for digest, rule in evaluate(policy, images, now, every_tag=True).items()
    }


def held(
    expired: Mapping[str, str], images: Sequence[Image], in_use: Mapping[str, str]
) -> dict[str, str]:
    """Of the digests retention expired, those carrying a tag something runs by (`in_use`: tag ->
    where it was found): digest -> the decision's cause. Retention never expires a held tag; the
    plan keeps these as `tag-in-use`, still naming the rule that expired them."""
    if not in_use or not expired:
        return {}
    found: dict[str, str] = {}
    for image in images:
        if image.digest not in expired:
            continue
        tags = [tag for tag in image.tags if tag in in_use]
        if tags:
            found[image.digest] = f"tag {tags[0]} in use ({in_use[tags[0]]})"
    return found


def retention_section(
    repositories: Iterable[tuple[Mapping[str, Decision], Collection[str]]],
) -> dict[str, Any]:
    """The report's `retention`: for each repository its final decisions and its expired
    digests. `deleted` counts expired images whose final verdict is delete (in a dry run, what
    the real run deletes); `held` counts the others by the reason of their final decision."""
    expired = deleted = 0
    held: dict[str, int] = {}
    for decisions, digests in repositories:
        for digest in digests:
            decision = decisions.get(digest)
            if decision is None:
                continue
            expired += 1
            if decision.verdict is Verdict.DELETE:
                deleted += 1
            else:
                held[decision.reason.value] = held.get(decision.reason.value, 0) + 1
    return {"expired": expired, "deleted": deleted, "held": dict(sorted(held.items()))}
