"""The lifecycle-policy evaluator and validator: one scenario per documented behaviour of ECR's
policy language, then retention's departures from it, then the rules ECR refuses."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sweeper.lifecycle import (
    Action,
    LifecyclePolicy,
    PolicyError,
    RetentionPolicy,
    evaluate,
    expire,
    parse_policy_text,
    parse_rules,
    policy_for,
    top_level,
)
from sweeper.model import Descriptor, Image, Kind, Manifest

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def image(
    name: str,
    *tags: str,
    days: float = 30,
    pulled: float | None = None,
    archived: bool = False,
    pushed: bool = True,
) -> Image:
    """An image pushed `days` ago (and pulled `pulled` days ago, if ever)."""
    return Image(
        d(name),
        tags,
        NOW - timedelta(days=days) if pushed else None,
        100,
        OCI_INDEX,
        last_pulled=NOW - timedelta(days=pulled) if pulled is not None else None,
        archived=archived,
    )


def rule(
    priority: int,
    status: str = "tagged",
    *,
    prefixes: list[str] | None = None,
    patterns: list[str] | None = None,
    count: int = 1,
    count_type: str = "imageCountMoreThan",
    description: str | None = None,
) -> dict[str, Any]:
    """A rule as a user writes it (ECR's JSON)."""
    selection: dict[str, Any] = {"tagStatus": status, "countType": count_type, "countNumber": count}
    if prefixes is not None:
        selection["tagPrefixList"] = prefixes
    if patterns is not None:
        selection["tagPatternList"] = patterns
    if count_type != "imageCountMoreThan":
        selection["countUnit"] = "days"
    written: dict[str, Any] = {"rulePriority": priority, "selection": selection}
    if description is not None:
        written["description"] = description
    written["action"] = {"type": "expire"}
    return written


def policy(*rules: dict[str, Any]) -> LifecyclePolicy:
    return parse_rules(list(rules), "rules")


def ecr_expires(rules: LifecyclePolicy, images: list[Image]) -> dict[str, int]:
    """ECR's evaluation: digest -> the priority of the rule that expires it."""
    found = evaluate(rules, images, NOW, every_tag=False)
    return {digest: r.priority for digest, r in found.items()}


def names(images: list[Image], found: dict[str, Any]) -> set[str]:
    by_digest = {i.digest: i for i in images}
    return {by_digest[digest].tags[0] if by_digest[digest].tags else digest for digest in found}


# --- ECR's language -----------------------------------------------------------------------------


def test_count_keeps_the_newest_and_expires_every_older_one() -> None:
    builds = [image(f"b{i}", f"ci-{i}", days=10 - i) for i in range(6)]  # ci-5 is the newest
    found = ecr_expires(policy(rule(1, prefixes=["ci-"], count=2)), builds)
    assert names(builds, found) == {"ci-0", "ci-1", "ci-2", "ci-3"}


def test_since_pushed_expires_only_images_older_than_the_days() -> None:
    images = [image("a", "ci-a", days=2), image("b", "ci-b", days=4), image("c", "ci-c", days=9)]
    found = ecr_expires(
        policy(rule(1, prefixes=["ci-"], count=3, count_type="sinceImagePushed")), images
    )
    assert names(images, found) == {"ci-b", "ci-c"}


def test_since_pulled_counts_from_the_last_pull_or_from_the_push_when_never_pulled() -> None:
    images = [
        image("pulled-lately", "a", days=60, pulled=1),
        image("pulled-long-ago", "b", days=60, pulled=20),
        image("never-pulled-old", "c", days=60),
        image("never-pulled-new", "d", days=2),
    ]
    found = ecr_expires(policy(rule(1, "any", count=7, count_type="sinceImagePulled")), images)
    assert names(images, found) == {"b", "c"}


def test_rules_apply_in_priority_order_whatever_order_they_are_written_in() -> None:
    rules = policy(
        rule(20, prefixes=["ci-"], count=1, description="keep 1 CI build"),
        rule(3, patterns=["ci-*"], count=2, description="keep 2 CI builds"),
    )
    assert [r.priority for r in rules.rules] == [3, 20]
    builds = [image(f"b{i}", f"ci-{i}", days=10 - i) for i in range(4)]
    found = evaluate(rules, builds, NOW, every_tag=False)
    # Rule 3 selects every CI build first: rule 20, lower in priority, may expire none of them.
    assert {r.label for r in found.values()} == {"rule 3: keep 2 CI builds"}
    assert names(builds, found) == {"ci-0", "ci-1"}


def test_an_image_matched_by_a_higher_rule_is_never_expired_by_a_lower_one() -> None:
    """AWS's example: rule 1 keeps one prod image, rule 2 one beta image. Rule 2 counts A and B
    past its one, but B is prod's one: only A goes, by rule 1."""
    images = [
        image("A", "beta-1", "prod-1", days=10),
        image("B", "beta-2", "prod-2", days=9),
        image("C", "beta-3", days=8),
    ]
    rules = policy(rule(1, prefixes=["prod"], count=1), rule(2, prefixes=["beta"], count=1))
    assert ecr_expires(rules, images) == {d("A"): 1}


def test_a_lower_rule_counts_what_a_higher_rule_expires() -> None:
    """Rule 2 (any, keep 2) counts the untagged images rule 1 expires: it keeps two images in
    all, not two besides them."""
    images = [
        image("new-untagged", days=1),
        image("old-untagged", days=20),
        image("release", "v1", days=5),
        image("older-release", "v0", days=15),
    ]
    rules = policy(
        rule(1, "untagged", count=10, count_type="sinceImagePushed"),
        rule(2, "any", count=2),
    )
    assert ecr_expires(rules, images) == {d("old-untagged"): 1, d("older-release"): 2}


def test_an_any_rule_selects_tagged_and_untagged_images_alike() -> None:
    images = [image("t", "v1", days=40), image("u", days=40), image("young", "v2", days=1)]
    found = ecr_expires(policy(rule(1, "any", count=30, count_type="sinceImagePushed")), images)
    assert found == {d("t"): 1, d("u"): 1}


def test_untagged_and_tagged_rules_select_only_their_own() -> None:
    images = [image("t", "v1", days=40), image("u", days=40)]
    untagged = policy(rule(1, "untagged", count=1, count_type="sinceImagePushed"))
    tagged = policy(rule(1, patterns=["*"], count=1, count_type="sinceImagePushed"))
    assert ecr_expires(untagged, images) == {d("u"): 1}
    assert ecr_expires(tagged, images) == {d("t"): 1}


PREFIX_AND_PATTERN_CASES: list[tuple[str, dict[str, list[str]], tuple[str, ...], bool]] = [
    # scenario, the rule's list, the image's tags, selected?
    ("a prefix matches the start of a tag", {"prefixes": ["ci-"]}, ("ci-42",), True),
    ("a prefix does not match inside a tag", {"prefixes": ["ci-"]}, ("pr-ci-42",), False),
    ("every prefix must match some tag", {"prefixes": ["alpha", "beta"]}, ("alpha-1",), False),
    (
        "several prefixes, matched by different tags",
        {"prefixes": ["alpha", "beta"]},
        ("alpha-1", "beta-1", "gamma-1"),
        True,
    ),
    ("one tag of several is enough for one prefix", {"prefixes": ["ci"]}, ("v1", "ci-7"), True),
    ("a pattern matches a whole tag", {"patterns": ["prod*"]}, ("prod-7",), True),
    ("a pattern is anchored at the start", {"patterns": ["prod*"]}, ("preprod",), False),
    ("a pattern is anchored at the end", {"patterns": ["*-rc"]}, ("1.0-rc1",), False),
    ("a wildcard in the middle", {"patterns": ["v*.*-rc*"]}, ("v1.2-rc3",), True),
    ("a pattern without wildcard is the tag", {"patterns": ["latest"]}, ("latest-1",), False),
    ("regex characters are literal", {"patterns": ["1.0"]}, ("1x0",), False),
    ("every pattern must match some tag", {"patterns": ["ci-*", "*-amd64"]}, ("ci-1",), False),
    ("patterns matched by different tags", {"patterns": ["ci-*", "*-x"]}, ("ci-1", "a-x"), True),
    ("an untagged image meets no tagged rule", {"prefixes": ["ci"]}, (), False),
]


@pytest.mark.parametrize(
    ("scenario", "entries", "tags", "selected"),
    PREFIX_AND_PATTERN_CASES,
    ids=[case[0] for case in PREFIX_AND_PATTERN_CASES],
)
def test_tag_lists(
    scenario: str, entries: dict[str, list[str]], tags: tuple[str, ...], selected: bool
) -> None:
    (parsed,) = policy(rule(1, **entries)).rules  # type: ignore[arg-type]
    assert parsed.selects(tags) is selected


def test_images_without_a_push_time_are_neither_counted_nor_expired() -> None:
    images = [
        image("undated", "ci-0", pushed=False),
        image("new", "ci-2", days=1),
        image("old", "ci-1", days=5),
    ]
    found = ecr_expires(policy(rule(1, prefixes=["ci"], count=1)), images)
    assert found == {d("old"): 1}  # the undated one took no place among the newest, nor went


def test_rules_over_standard_images_pass_over_archived_ones() -> None:
    images = [image("archived", "ci-1", days=50, archived=True), image("a", "ci-2", days=40)]
    found = ecr_expires(
        policy(rule(1, prefixes=["ci"], count=30, count_type="sinceImagePushed")), images
    )
    assert found == {d("a"): 1}


def test_an_age_past_any_date_expires_nothing() -> None:
    rules = policy(rule(1, "any", count=2**31 - 1, count_type="sinceImagePushed"))
    assert ecr_expires(rules, [image("ancient", "v1", days=36_500)]) == {}


def test_a_rule_is_named_by_its_priority_and_description() -> None:
    described, bare = policy(rule(1, "untagged", description="drop untagged"), rule(2, "any")).rules
    assert described.label == "rule 1: drop untagged"
    assert bare.label == "rule 2"


# --- retention's departures -----------------------------------------------------------------


def test_retention_keeps_a_build_carrying_a_tag_its_rule_does_not_select() -> None:
    """A release tag added to a CI build keeps the build (ECR would expire it, release and all),
    even where another rule selects the release tag."""
    builds = [
        image("promoted", "ci-1", "v1.0", days=9),
        image("plain", "ci-2", days=8),
        image("newest", "ci-3", days=1),
    ]
    rules = policy(
        rule(1, prefixes=["ci-"], count=1, description="keep 1 CI build"),
        rule(2, "any", count=1000, count_type="sinceImagePushed"),
    )
    assert expire(rules, builds, NOW) == {d("plain"): "rule 1: keep 1 CI build"}
    assert ecr_expires(rules, builds) == {d("promoted"): 1, d("plain"): 1}


def test_an_any_rule_selects_every_tag_so_retention_follows_it() -> None:
    builds = [image("old", "ci-1", "v1.0", days=9), image("new", "ci-2", days=1)]
    assert expire(policy(rule(1, "any", count=1)), builds, NOW) == {d("old"): "rule 1"}


def test_the_first_policy_whose_patterns_match_applies() -> None:
    web = policy(rule(1, "any", count=5))
    rest = policy(rule(1, "any", count=50))
    retention = [RetentionPolicy(web, ("web", "web-*")), RetentionPolicy(rest)]
    assert policy_for(retention, "web-api") is web
    assert policy_for(retention, "batch") is rest
    assert policy_for(retention[:1], "batch") is None


# --- top-level images: what retention counts ------------------------------------------------


def test_top_level_images_are_what_people_push() -> None:
    tagged_index = Image(d("index"), ("ci-1",), NOW, 1, OCI_INDEX)
    child = Image(d("child"), (), NOW, 1, OCI_MANIFEST)
    attestation = Image(d("att"), (), NOW, 1, OCI_MANIFEST)
    orphan_index = Image(d("orphan"), (), NOW, 1, OCI_INDEX)
    signature = Image(d("sig"), (), NOW, 1, OCI_MANIFEST, subject=d("index"))
    cosign = Image(d("cosign"), (f"sha256-{d('index')[7:]}.sig",), NOW, 1, OCI_MANIFEST)
    docker_image = Image(d("docker"), (), NOW, 1, OCI_MANIFEST, DOCKER_CONFIG)
    unread = Image(d("unread"), (), NOW, 1, OCI_MANIFEST)
    tagged_single = Image(d("single"), ("v2",), NOW, 1, OCI_MANIFEST)
    images = [
        tagged_index,
        child,
        attestation,
        orphan_index,
        signature,
        cosign,
        docker_image,
        unread,
        tagged_single,
    ]
    entry = {"vnd.docker.reference.type": "attestation-manifest"}
    manifests = {
        d("index"): Manifest(
            Kind.INDEX,
            OCI_INDEX,
            (Descriptor(d("child")), Descriptor(d("att"), annotations=entry)),
        ),
        d("orphan"): Manifest(Kind.INDEX, OCI_INDEX, ()),
    }
    counted = {i.digest for i in top_level(images, manifests)}
    assert counted == {d("index"), d("orphan"), d("docker"), d("single")}


def test_retention_counts_builds_where_ecr_counts_every_manifest() -> None:
    """Three buildx builds (index, image, attestation each): "keep 3 images" keeps three builds
    for retention, one build for ECR (containers-roadmap #2613)."""
    images: list[Image] = []
    manifests: dict[str, Manifest] = {}
    for build in range(3):
        pushed = NOW - timedelta(days=10 - build)
        kids = (d(f"img{build}"), d(f"att{build}"))
        images.append(Image(d(f"idx{build}"), (f"ci-{build}",), pushed, 1, OCI_INDEX))
        images += [Image(kid, (), pushed, 1, OCI_MANIFEST) for kid in kids]
        manifests[d(f"idx{build}")] = Manifest(
            Kind.INDEX, OCI_INDEX, tuple(Descriptor(k) for k in kids)
        )
    rules = policy(rule(1, "any", count=3))
    assert expire(rules, top_level(images, manifests), NOW) == {}
    assert d("idx0") in ecr_expires(rules, images)


# --- validation: what ECR refuses, and what retention does not do yet --------------------------


def bad(**changes: Any) -> dict[str, Any]:
    """rule 7 (keep 5 CI builds), with the selection or action keys changed (None removes)."""
    written = rule(7, prefixes=["ci-"], count=5)
    for key, value in changes.items():
        part = "action" if key in ("type", "targetStorageClass") else "selection"
        if value is None:
            written[part].pop(key, None)
        else:
            written[part][key] = value
    return written


BAD_RULES: list[tuple[str, Any, str, str]] = [
    # scenario, the rules, the field the error names, what it says
    ("rules not a list", {"rulePriority": 1}, "retention[0].rules", "non-empty list"),
    ("no rules", [], "retention[0].rules", "non-empty list"),
    ("a rule that is not an object", ["keep 5"], "retention[0].rules[0]", "object"),
    ("no rulePriority", [{"selection": {}}], "retention[0].rules[0]", "rulePriority"),
    ("rulePriority 0", [{**bad(), "rulePriority": 0}], "retention[0].rules[0]", "rulePriority"),
    ("rulePriority text", [{**bad(), "rulePriority": "7"}], "retention[0].rules[0]", "'7'"),
    ("rulePriority true", [{**bad(), "rulePriority": True}], "retention[0].rules[0]", "True"),
    ("duplicate priority", [bad(), bad()], "retention[0].rules[1]", "rulePriority 7: retention"),
    (
        "any not last",
        [rule(9, "any"), rule(10, "untagged")],
        "retention[0].rules[0]",
        "rulePriority 9: a rule with tagStatus 'any' must have the highest",
    ),
    (
        "two any rules",
        [rule(9, "any"), rule(10, "any")],
        "retention[0].rules[0]",
        "rulePriority 9: a rule with tagStatus 'any'",
    ),
    ("unknown rule field", [{**bad(), "priority": 1}], "retention[0].rules[0]", "priority"),
    ("unknown selection field", [bad(tagPrefix=["x"])], "retention[0].rules[0]", "tagPrefix "),
    ("no tagStatus", [bad(tagStatus=None)], "retention[0].rules[0]", "tagStatus is missing"),
    ("tagStatus in capitals", [bad(tagStatus="TAGGED")], "retention[0].rules[0]", "'TAGGED'"),
    ("tagged without a list", [bad(tagPrefixList=None)], "retention[0].rules[0]", "needs a"),
    ("tagged with both lists", [bad(tagPatternList=["a*"])], "retention[0].rules[0]", "one of"),
    (
        "untagged with a list",
        [bad(tagStatus="untagged")],
        "retention[0].rules[0]",
        "rulePriority 7: tagStatus 'untagged' takes no tagPrefixList",
    ),
    ("any with a list", [bad(tagStatus="any")], "retention[0].rules[0]", "'any' takes no"),
    ("an empty prefix list", [bad(tagPrefixList=[])], "retention[0].rules[0]", "non-empty"),
    ("a prefix that is a number", [bad(tagPrefixList=[7])], "retention[0].rules[0]", "got 7"),
    ("an empty prefix", [bad(tagPrefixList=[""])], "retention[0].rules[0]", "non-empty"),
    (
        "five wildcards",
        [bad(tagPrefixList=None, tagPatternList=["a*b*c*d*e*f"])],
        "retention[0].rules[0]",
        "more than 4 '*'",
    ),
    ("no countType", [bad(countType=None)], "retention[0].rules[0]", "countType is missing"),
    ("unknown countType", [bad(countType="count")], "retention[0].rules[0]", "'count'"),
    ("a count with a unit", [bad(countUnit="days")], "retention[0].rules[0]", "takes no countUnit"),
    (
        "an age without a unit",
        [bad(countType="sinceImagePushed")],
        "retention[0].rules[0]",
        "needs countUnit 'days'",
    ),
    (
        "an age in hours",
        [bad(countType="sinceImagePushed", countUnit="hours")],
        "retention[0].rules[0]",
        "'hours'",
    ),
    ("countNumber 0", [bad(countNumber=0)], "retention[0].rules[0]", "countNumber"),
    ("countNumber text", [bad(countNumber="5")], "retention[0].rules[0]", "'5'"),
    ("countNumber fraction", [bad(countNumber=2.5)], "retention[0].rules[0]", "2.5"),
    ("countNumber true", [bad(countNumber=True)], "retention[0].rules[0]", "True"),
    ("no countNumber", [bad(countNumber=None)], "retention[0].rules[0]", "countNumber"),
    (
        "no action",
        [{k: v for k, v in bad().items() if k != "action"}],
        "retention[0].rules[0]",
        "action",
    ),
    ("no action type", [bad(type=None)], "retention[0].rules[0]", "type is missing"),
    ("action delete", [bad(type="delete")], "retention[0].rules[0]", "'delete'"),
    ("description a number", [{**bad(), "description": 5}], "retention[0].rules[0]", "description"),
    (
        "transition",
        [bad(type="transition", targetStorageClass="archive")],
        "retention[0].rules[0]",
        "rulePriority 7: action 'transition' (to archive) is not supported by retention",
    ),
    (
        "rules over archived images",
        [bad(storageClass="archive", countType="sinceImageTransitioned", countUnit="days")],
        "retention[0].rules[0]",
        "rulePriority 7: storageClass 'archive' is not supported by retention",
    ),
    (
        "an archive age over standard images",
        [bad(countType="sinceImageTransitioned", countUnit="days")],
        "retention[0].rules[0]",
        "goes with storageClass 'archive'",
    ),
    (
        "expire with a target storage class",
        [bad(targetStorageClass="archive")],
        "retention[0].rules[0]",
        "takes no targetStorageClass",
    ),
]


@pytest.mark.parametrize(
    ("scenario", "rules", "field", "message"), BAD_RULES, ids=[case[0] for case in BAD_RULES]
)
def test_bad_rules_are_refused_naming_where(
    scenario: str, rules: Any, field: str, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_rules(rules, "retention[0].rules")
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_every_rule_ecr_runs_is_read_by_the_audit() -> None:
    """The policy text ECR returns may hold rules retention refuses: the audit reads them all."""
    text = json.dumps(
        {
            "rules": [
                rule(1, prefixes=["ci-"], count=25, description="keep 25 CI builds"),
                {
                    "rulePriority": 2,
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": ["rc-*"],
                        "countType": "sinceImagePulled",
                        "countUnit": "days",
                        "countNumber": 30,
                    },
                    "action": {"type": "transition", "targetStorageClass": "archive"},
                },
                {
                    "rulePriority": 3,
                    "selection": {
                        "tagStatus": "any",
                        "storageClass": "archive",
                        "countType": "sinceImageTransitioned",
                        "countUnit": "days",
                        "countNumber": 90,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )
    parsed = parse_policy_text(text)
    assert [(r.priority, r.action) for r in parsed.rules] == [
        (1, Action.EXPIRE),
        (2, Action.TRANSITION),
        (3, Action.EXPIRE),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "lifecyclePolicyText: not JSON"),
        ("[]", "lifecyclePolicyText: must be an object"),
        ('{"rules": [{"rulePriority": 1}]}', "lifecyclePolicyText.rules[0]: rulePriority 1"),
    ],
)
def test_a_policy_text_ecr_could_not_have_stored_is_an_error(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policy_text(text)


# --- boundaries, limits and exact errors: found by mutation testing (docs/testing.md) ----------


def test_an_image_exactly_as_old_as_the_rule_says_is_not_yet_expired() -> None:
    """ECR expires images *older* than countNumber days: the boundary itself stays."""
    day = timedelta(days=1)
    second = timedelta(seconds=1)
    at = Image(d("at"), ("ci-at",), NOW - 3 * day, 1, OCI_INDEX)
    past = Image(d("past"), ("ci-past",), NOW - 3 * day - second, 1, OCI_INDEX)
    pushed = policy(rule(1, prefixes=["ci-"], count=3, count_type="sinceImagePushed"))
    assert names([at, past], ecr_expires(pushed, [at, past])) == {"ci-past"}
    pulled_at = Image(d("pa"), ("p-at",), NOW - 9 * day, 1, OCI_INDEX, last_pulled=NOW - 3 * day)
    pulled_past = Image(
        d("pp"), ("p-past",), NOW - 9 * day, 1, OCI_INDEX, last_pulled=NOW - 3 * day - second
    )
    pulled = policy(rule(1, "any", count=3, count_type="sinceImagePulled"))
    both = [pulled_at, pulled_past]
    assert names(both, ecr_expires(pulled, both)) == {"p-past"}


def test_retention_keeps_exactly_the_count_when_builds_share_a_second() -> None:
    """Ties straddling a count's boundary are the audit's worry (`ties=True`), not retention's:
    retention keeps the count it was given, newest by push time then digest."""
    same = NOW - timedelta(days=5)
    builds = [Image(d(f"t{i}"), (f"ci-{i}",), same, 1, OCI_INDEX) for i in range(3)]
    expired = expire(policy(rule(1, prefixes=["ci-"], count=2)), builds, NOW)
    assert len(expired) == 1


def test_the_limits_of_a_policy_are_accepted_up_to_the_last_allowed_value() -> None:
    many = [rule(p, prefixes=[f"p{p}-"]) for p in range(1, 101)]
    assert len(parse_rules(many, "rules").rules) == 100
    with pytest.raises(PolicyError) as caught:
        parse_rules([*many, rule(101, prefixes=["x-"])], "rules")
    assert (caught.value.field, caught.value.message) == ("rules", "at most 100 rules, got 101")
    four = policy(rule(1, patterns=["a*b*c*d*"]))
    assert four.selects_tag("aXbXcXdX")


def test_an_untagged_rule_speaks_about_no_tag() -> None:
    assert not policy(rule(1, "untagged")).selects_tag("latest")


EXACT_ERRORS: list[tuple[str, Any, str, str]] = [
    # scenario, the rules, the field the error names, the whole message (after the field)
    (
        "rules not a list",
        {"rulePriority": 1},
        "retention[0].rules",
        "must be a non-empty list of lifecycle policy rules",
    ),
    (
        "unknown rule field",
        [{**bad(), "priority": 1}],
        "retention[0].rules[0]",
        "rulePriority 7: unknown field priority (known: rulePriority, description, selection, "
        "action)",
    ),
    (
        "unknown selection field",
        [bad(tagPrefix=["x"])],
        "retention[0].rules[0]",
        "rulePriority 7: unknown field selection.tagPrefix (known: tagStatus, tagPrefixList, "
        "tagPatternList, countType, countUnit, countNumber, storageClass)",
    ),
    (
        "unknown action field",
        [{**bad(), "action": {"type": "expire", "when": "now"}}],
        "retention[0].rules[0]",
        "rulePriority 7: unknown field action.when (known: type, targetStorageClass)",
    ),
    (
        "duplicate priority names the first rule with it",
        [rule(3, prefixes=["a"]), rule(7, prefixes=["b"]), rule(7, prefixes=["c"])],
        "retention[0].rules[2]",
        "rulePriority 7: retention[0].rules[1] has the same priority; every rule needs its own",
    ),
    (
        "any not last names the highest priority",
        [rule(9, "any"), rule(10, "untagged"), rule(12, prefixes=["b"])],
        "retention[0].rules[0]",
        "rulePriority 9: a rule with tagStatus 'any' must have the highest rulePriority "
        "(rulePriority 12 is higher), and there may be only one",
    ),
    (
        "selection not an object",
        [{**bad(), "selection": ["tagged"]}],
        "retention[0].rules[0]",
        "rulePriority 7: selection must be an object, got ['tagged']",
    ),
    (
        "a pattern list that is no list",
        [bad(tagPrefixList=None, tagPatternList="ci-*")],
        "retention[0].rules[0]",
        "rulePriority 7: tagPatternList must be a non-empty list of strings, got 'ci-*'",
    ),
    (
        "an unknown storage class",
        [bad(storageClass="glacier")],
        "retention[0].rules[0]",
        "rulePriority 7: storageClass is 'glacier': use one of standard, archive",
    ),
    (
        "expire with a target storage class",
        [bad(targetStorageClass="archive")],
        "retention[0].rules[0]",
        "rulePriority 7: action 'expire' takes no targetStorageClass",
    ),
    (
        "an archive age over standard images",
        [bad(countType="sinceImageTransitioned", countUnit="days")],
        "retention[0].rules[0]",
        "rulePriority 7: countType 'sinceImageTransitioned' goes with storageClass 'archive', "
        "and only it",
    ),
    (
        "a count with a unit",
        [bad(countUnit="days")],
        "retention[0].rules[0]",
        "rulePriority 7: countType 'imageCountMoreThan' takes no countUnit",
    ),
    (
        "tagged without a list",
        [bad(tagPrefixList=None)],
        "retention[0].rules[0]",
        "rulePriority 7: tagStatus 'tagged' needs a tagPrefixList or a tagPatternList (one of "
        "them)",
    ),
]


@pytest.mark.parametrize(
    ("scenario", "rules", "field", "message"), EXACT_ERRORS, ids=[c[0] for c in EXACT_ERRORS]
)
def test_an_error_that_names_another_field_names_it_exactly(
    scenario: str, rules: Any, field: str, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_rules(rules, "retention[0].rules")
    assert caught.value.field == field
    assert str(caught.value) == f"{field}: {caught.value.message}"
    assert caught.value.message == message


ECR_ERRORS: list[tuple[str, str, str]] = [
    ("no rules key", "{}", "lifecyclePolicyText: must be an object with a 'rules' list"),
    (
        "a transition to standard",
        json.dumps(
            {
                "rules": [
                    {
                        **bad(type="transition"),
                        "action": {"type": "transition", "targetStorageClass": "standard"},
                    }
                ]
            }
        ),
        "lifecyclePolicyText.rules[0]: rulePriority 7: action 'transition' needs "
        "targetStorageClass 'archive', got 'standard'",
    ),
    (
        "a transition of archived images",
        json.dumps(
            {
                "rules": [
                    {
                        **bad(
                            storageClass="archive",
                            countType="sinceImageTransitioned",
                            countUnit="days",
                        ),
                        "action": {"type": "transition", "targetStorageClass": "archive"},
                    }
                ]
            }
        ),
        "lifecyclePolicyText.rules[0]: rulePriority 7: action 'transition' applies to standard "
        "images, not archived ones",
    ),
]


@pytest.mark.parametrize(("scenario", "text", "error"), ECR_ERRORS, ids=[c[0] for c in ECR_ERRORS])
def test_a_policy_ecr_would_refuse_is_refused_by_the_audit_with_its_reason(
    scenario: str, text: str, error: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy_text(text)
    assert str(caught.value) == error


def test_the_audit_reads_a_rule_over_archived_images_as_one() -> None:
    text = json.dumps(
        {
            "rules": [
                {
                    **bad(
                        storageClass="archive", countType="sinceImageTransitioned", countUnit="days"
                    ),
                    "action": {"type": "expire"},
                }
            ]
        }
    )
    (only,) = parse_policy_text(text).rules
    assert only.storage_class.value == "archive"


def test_top_level_leaves_out_what_only_the_bytes_show_to_describe_another() -> None:
    """Tagged, and the listing says nothing: the bytes say referrer (a subject) or attestation.
    Neither is counted, nor a manifest not read whose listing names a subject, nor a proven
    image an index lists. An image tagged with its own digest's tag-scheme name is counted."""
    referrer = Image(d("ref"), ("sbom",), NOW, 1, OCI_MANIFEST)
    attestation = Image(d("att"), ("prov",), NOW, 1, OCI_MANIFEST)
    own = Image(d("own"), (f"sha256-{d('own')[7:]}.sig",), NOW, 1, OCI_MANIFEST)
    listed = Image(d("child"), (), NOW, 1, OCI_MANIFEST, DOCKER_CONFIG)
    later = Image(d("later"), ("v1",), NOW, 1, OCI_MANIFEST)
    unread = Image(d("unread"), ("sig",), NOW, 1, None, subject=d("later"))  # only listed
    images = [attestation, referrer, listed, own, unread, later]
    manifests = {
        d("ref"): Manifest(Kind.REFERRER, OCI_MANIFEST, subject=d("later")),
        d("att"): Manifest(Kind.ATTESTATION, OCI_MANIFEST),
        d("index"): Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(d("child")),)),
    }
    assert {i.digest for i in top_level(images, manifests)} == {d("own"), d("later")}
