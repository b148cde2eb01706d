"""The audit of ECR's own lifecycle policies: what ECR will expire that is still in use.

ECR counts every manifest as an image, expires an image with all its tags, and leaves what an
index lists until the index is gone. Each scenario is a repository, a policy ECR would run, and
the hazards expected (or none)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sweeper.audit import Hazard, HazardReason, hazards, predict, unevaluated
from sweeper.lifecycle import parse_policy_text
from sweeper.model import Descriptor, Image, Kind, Manifest, Pin
from sweeper.plan import Policy

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PIN_SOURCE = "ecs:task-definition/web:7"
SETTINGS = Policy(keep_pulled_within=timedelta(days=30))


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def selection(status: str, count: int, count_type: str = "imageCountMoreThan", **lists: Any) -> Any:
    chosen = {"tagStatus": status, "countType": count_type, "countNumber": count, **lists}
    if count_type != "imageCountMoreThan":
        chosen["countUnit"] = "days"
    return chosen


def ecr_policy(*selections: Any, action: str = "expire") -> str:
    """The policy text ECR stores: one rule per selection, priorities 1, 2, ..."""
    rules = []
    for priority, chosen in enumerate(selections, start=1):
        done = {"type": action}
        if action == "transition":
            done["targetStorageClass"] = "archive"
        rules.append({"rulePriority": priority, "selection": chosen, "action": done})
    return json.dumps({"rules": rules})


KEEP_2_CI = selection("tagged", 2, tagPrefixList=["ci-"])
UNTAGGED_AFTER_3_DAYS = selection("untagged", 3, "sinceImagePushed")


class Repo:
    def __init__(self) -> None:
        self.images: dict[str, Image] = {}
        self.manifests: dict[str, Manifest] = {}

    def build(self, name: str, *tags: str, days: float, pulled: float | None = None) -> str:
        """A buildx build: an index (tagged) listing its platform image and attestation."""
        pushed = NOW - timedelta(days=days)
        kids = (d(f"{name}/image"), d(f"{name}/attestation"))
        for kid in kids:
            self.images[kid] = Image(kid, (), pushed, 1, OCI_MANIFEST)
        index = d(f"{name}/index")
        last_pulled = NOW - timedelta(days=pulled) if pulled is not None else None
        self.images[index] = Image(index, tags, pushed, 1, OCI_INDEX, last_pulled=last_pulled)
        self.manifests[index] = Manifest(Kind.INDEX, OCI_INDEX, tuple(Descriptor(k) for k in kids))
        return index

    def ci(self, count: int) -> None:
        """`count` recent CI builds, a day apart (ci-new-0 oldest, four days old or less)."""
        for i in range(count):
            self.build(f"new-{i}", f"ci-new-{i}", days=count - i)

    def hazards(self, text: str, *pinned: str) -> list[Hazard]:
        return hazards(
            "app",
            list(self.images.values()),
            self.manifests,
            parse_policy_text(text),
            {p: Pin(p, PIN_SOURCE) for p in pinned},
            SETTINGS,
            NOW,
        )


def rows(found: list[Hazard]) -> list[tuple[str, int, str]]:
    return [(h.digest, h.rule, h.reason.value) for h in found]


def test_a_pinned_ci_build_that_the_count_expires() -> None:
    repo = Repo()
    old = repo.build("old", "ci-old", days=9)
    repo.ci(2)
    found = repo.hazards(ecr_policy(KEEP_2_CI), old)
    assert found == [
        Hazard(
            "app",
            old,
            ("ci-old",),
            1,
            HazardReason.PINNED,
            f"pinned by {PIN_SOURCE}; rule 1 expires it",
        )
    ]
    assert found[0].as_dict() == {
        "repository": "app",
        "digest": old,
        "tags": ["ci-old"],
        "rule": 1,
        "reason": "pinned",
        "cause": f"pinned by {PIN_SOURCE}; rule 1 expires it",
    }


HAZARDS: list[tuple[str, dict[str, Any], tuple[str, ...], list[tuple[str, int, str]]]] = [
    # scenario, the old build (tags, pulled), how its digests are pinned, expected hazards
    ("not in use: nothing to report", {"tags": ("ci-old",)}, (), []),
    (
        "pulled inside the pull window",
        {"tags": ("ci-old",), "pulled": 2},
        (),
        [(d("old/index"), 1, "recently-pulled")],
    ),
    ("pulled before the pull window", {"tags": ("ci-old",), "pulled": 40}, (), []),
    (
        "a release tag on a CI build",
        {"tags": ("ci-old", "v1.4.0")},
        (),
        [(d("old/index"), 1, "other-tag")],
    ),
    (
        "pinned, pulled and promoted: one row per reason",
        {"tags": ("ci-old", "v1.4.0"), "pulled": 1},
        (d("old/index"),),
        [
            (d("old/index"), 1, "pinned"),
            (d("old/index"), 1, "recently-pulled"),
            (d("old/index"), 1, "other-tag"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("scenario", "old", "pinned", "expected"), HAZARDS, ids=[case[0] for case in HAZARDS]
)
def test_what_makes_an_expiry_a_hazard(
    scenario: str,
    old: dict[str, Any],
    pinned: tuple[str, ...],
    expected: list[tuple[str, int, str]],
) -> None:
    repo = Repo()
    repo.build("old", *old["tags"], days=9, pulled=old.get("pulled"))
    repo.ci(2)
    assert rows(repo.hazards(ecr_policy(KEEP_2_CI), *pinned)) == expected


def test_the_other_tag_cause_names_the_tags_the_rule_does_not_select() -> None:
    repo = Repo()
    repo.build("old", "ci-old", "v1.4.0", "stable", days=9)
    repo.ci(2)
    (found,) = repo.hazards(ecr_policy(KEEP_2_CI))
    assert found.cause == "tag v1.4.0, stable is not one the rule selects; rule 1 expires it"


def test_an_any_rule_selects_every_tag_so_nothing_is_another_tag() -> None:
    repo = Repo()
    repo.build("old", "v1.4.0", days=90)
    found = repo.hazards(ecr_policy(selection("any", 60, "sinceImagePushed")))
    assert found == []


def test_a_pinned_child_of_a_live_index_is_safe_from_an_untagged_rule() -> None:
    """ECR counts the untagged children of a tagged index but does not expire them."""
    repo = Repo()
    repo.build("live", "latest", days=30)
    found = repo.hazards(ecr_policy(UNTAGGED_AFTER_3_DAYS), d("live/image"))
    assert found == []


def test_a_pinned_child_goes_at_the_evaluation_after_its_index() -> None:
    repo = Repo()
    old = repo.build("old", "ci-old", days=9)
    repo.ci(2)
    found = repo.hazards(ecr_policy(KEEP_2_CI, UNTAGGED_AFTER_3_DAYS), d("old/image"))
    assert rows(found) == [(d("old/image"), 2, "pinned")]
    assert (
        found[0].cause == f"pinned by {PIN_SOURCE}; rule 2 expires it once index {old} is expired"
    )


def test_ecr_counts_children_and_attestations_as_images() -> None:
    """ "Keep 3 images" over buildx builds keeps one build in ECR's counting: the second newest
    build, pinned, is a hazard that retention's counting would never have made."""
    repo = Repo()
    second = repo.build("second", "v2", days=2)
    repo.build("first", "v3", days=1)
    predicted = predict(
        parse_policy_text(ecr_policy(selection("any", 3))),
        list(repo.images.values()),
        repo.manifests,
        NOW,
    )
    assert second in predicted
    assert rows(repo.hazards(ecr_policy(selection("any", 3)), second)) == [(second, 1, "pinned")]


def test_an_archiving_rule_is_a_hazard_too() -> None:
    """An archived image cannot be pulled."""
    repo = Repo()
    old = repo.build("old", "ci-old", days=9)
    repo.ci(2)
    (found,) = repo.hazards(ecr_policy(KEEP_2_CI, action="transition"), old)
    assert found.cause == f"pinned by {PIN_SOURCE}; rule 1 archives it"


def test_hazards_come_in_digest_order_for_every_repository_alike() -> None:
    repo = Repo()
    olds = [repo.build(f"old-{i}", f"ci-old-{i}", days=20 + i) for i in range(5)]
    repo.ci(2)
    found = repo.hazards(ecr_policy(KEEP_2_CI), *olds)
    assert [h.digest for h in found] == sorted(olds)


def test_ecr_protects_what_an_index_lists_not_what_an_unknown_manifest_mentions() -> None:
    image = Image(d("image"), (), NOW - timedelta(days=10), media_type=OCI_MANIFEST)
    unknown = Image(d("unknown"), ("chart",), NOW, media_type=OCI_MANIFEST)
    manifests = {unknown.digest: Manifest(Kind.UNKNOWN, OCI_MANIFEST, (Descriptor(image.digest),))}
    policy = parse_policy_text(ecr_policy(UNTAGGED_AFTER_3_DAYS))
    predicted = predict(policy, [image, unknown], manifests, NOW)
    assert list(predicted) == [image.digest]
    assert predicted[image.digest].after == ""  # expired at the first evaluation, by itself


def test_the_pull_window_of_the_audit_ends_exactly_keep_pulled_within_after_the_pull() -> None:
    policy = parse_policy_text(ecr_policy(UNTAGGED_AFTER_3_DAYS))
    edge, inside = (
        Image(d(n), (), NOW - timedelta(days=10), media_type=OCI_MANIFEST, last_pulled=when)
        for n, when in (
            ("edge", NOW - timedelta(days=30)),
            ("inside", NOW - timedelta(days=30) + timedelta(seconds=1)),
        )
    )
    found = hazards("app", [edge, inside], {}, policy, {}, SETTINGS, NOW)
    assert [(h.digest, h.reason) for h in found] == [(inside.digest, HazardReason.PULLED)]


def test_every_image_one_evaluation_archives_is_predicted() -> None:
    # More than MAX_ROUNDS of them at once: each is predicted, not one per evaluation.
    images = [
        Image(d(f"old-{i}"), (), NOW - timedelta(days=10 + i), media_type=OCI_MANIFEST)
        for i in range(12)
    ]
    policy = parse_policy_text(ecr_policy(UNTAGGED_AFTER_3_DAYS, action="transition"))
    predicted = predict(policy, images, {}, NOW)
    assert set(predicted) == {image.digest for image in images}


def test_a_buildx_push_within_one_second_is_a_hazard_in_any_order_of_the_tie() -> None:
    """Item 11 of issue 19: ECR does not document the order of images pushed in the same second;
    a buildx build pushes its index and children within one. "Keep 1 image" may then rank a
    child newest and expire the pinned index, whatever order a tie-break by digest gives."""
    pushed = NOW - timedelta(days=1, microseconds=-250_000)
    kids = (d("tie/image"), d("tie/attestation"))
    index = "sha256:" + "f" * 64  # sorts after its children: ranked newest by digest
    images = [Image(k, (), pushed.replace(microsecond=0), 1, OCI_MANIFEST) for k in kids]
    images.append(Image(index, ("v1",), pushed, 1, OCI_INDEX))
    manifests = {index: Manifest(Kind.INDEX, OCI_INDEX, tuple(Descriptor(k) for k in kids))}
    found = hazards(
        "app",
        images,
        manifests,
        parse_policy_text(ecr_policy(selection("any", 1))),
        {index: Pin(index, PIN_SOURCE)},
        SETTINGS,
        NOW,
    )
    assert rows(found) == [(index, 1, "pinned")]


@pytest.mark.parametrize("form", ["referrer", "accessory"])
def test_the_expired_signature_of_a_pinned_image_is_a_hazard(form: str) -> None:
    """Item 12 of issue 19: verifying the pinned image fails once ECR expires its signature."""
    old = NOW - timedelta(days=30)
    image = d("signed/image")
    signature = d("signed/signature")
    images = [Image(image, (), old, 1, OCI_MANIFEST)]
    if form == "referrer":
        images.append(Image(signature, (), old, 1, OCI_MANIFEST, subject=image))
        policy = ecr_policy(UNTAGGED_AFTER_3_DAYS)
    else:
        tag = "sha256-" + image.removeprefix("sha256:") + ".sig"
        images.append(Image(signature, (tag,), old, 1, OCI_MANIFEST))
        policy = ecr_policy(selection("tagged", 3, "sinceImagePushed", tagPrefixList=["sha256-"]))
    found = hazards(
        "app",
        images,
        {},
        parse_policy_text(policy),
        {image: Pin(image, PIN_SOURCE)},
        SETTINGS,
        NOW,
    )
    signatures = [h for h in found if h.digest == signature]
    assert rows(signatures) == [(signature, 1, "signature-of-in-use")]
    assert signatures[0].cause.startswith(f"describes {image}, pinned by {PIN_SOURCE}")


def test_an_unevaluable_rule_is_reported_and_an_archived_pinned_image_is_a_hazard() -> None:
    """Item 13 of issue 19: `sinceImageTransitioned` counts from the archiving, which the
    listing does not carry: the rule is reported, and what it may expire that is in use too."""
    archived = d("archived/pinned")
    idle = d("archived/idle")
    images = [
        Image(archived, ("v1",), NOW - timedelta(days=400), 1, OCI_MANIFEST, archived=True),
        Image(idle, (), NOW - timedelta(days=400), 1, OCI_MANIFEST, archived=True),
    ]
    text = json.dumps(
        {
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
    )
    policy = parse_policy_text(text)
    assert [u.as_dict() for u in unevaluated("app", policy)] == [
        {
            "repository": "app",
            "rule": 1,
            "why": "rule 1: sinceImageTransitioned counts from the archiving, which the listing "
            "does not give; every archived image it selects may expire",
        }
    ]
    found = hazards("app", images, {}, policy, {archived: Pin(archived, PIN_SOURCE)}, SETTINGS, NOW)
    assert rows(found) == [(archived, 1, "pinned")]
    assert "may expire (not evaluated: sinceImageTransitioned)" in found[0].cause


# --- what mutation testing found unguarded in code merged from issues 19 and 20 -----------------

OLD = NOW - timedelta(days=30)


def accessory(subject: str) -> str:
    return "sha256-" + subject.removeprefix("sha256:") + ".sig"


def audit(images: list[Image], text: str, *pinned: str, **manifests: Manifest) -> list[Hazard]:
    return hazards(
        "app",
        images,
        {d(name): manifest for name, manifest in manifests.items()},
        parse_policy_text(text),
        {p: Pin(p, PIN_SOURCE) for p in pinned},
        SETTINGS,
        NOW,
    )


def test_a_rule_over_archived_images_may_expire_only_archived_images_it_selects() -> None:
    selected, other, standard = d("archived ci"), d("archived release"), d("standard ci")
    images = [
        Image(selected, ("ci-1",), OLD, 1, OCI_MANIFEST, archived=True),
        Image(other, ("release",), OLD, 1, OCI_MANIFEST, archived=True),
        Image(standard, ("ci-2",), OLD, 1, OCI_MANIFEST),
    ]
    rule = {
        "rulePriority": 1,
        "selection": {
            "tagStatus": "tagged",
            "tagPatternList": ["ci-*"],
            "storageClass": "archive",
            "countType": "sinceImageTransitioned",
            "countUnit": "days",
            "countNumber": 90,
        },
        "action": {"type": "expire"},
    }
    found = audit(images, json.dumps({"rules": [rule]}), selected, other, standard)
    assert rows(found) == [(selected, 1, "pinned")]


def test_a_tag_naming_the_images_own_digest_is_another_tag_not_a_subject() -> None:
    # A mirror's convention: the image is no accessory of itself (model.accessory_of).
    image = d("mirrored")
    own = "sha256-" + image.removeprefix("sha256:")
    images = [Image(image, ("ci-1", own), OLD, 1, OCI_MANIFEST)]
    found = audit(
        images, ecr_policy(selection("tagged", 3, "sinceImagePushed", tagPrefixList=["ci-"]))
    )
    assert rows(found) == [(image, 1, "other-tag")]
    assert found[0].cause.startswith(f"tag {own} is not one the rule selects; ")


def test_the_expired_signature_of_an_image_whose_tag_stays_says_so() -> None:
    image, signature = d("release"), d("signature")
    images = [
        Image(image, ("release",), OLD, 1, OCI_MANIFEST),
        Image(signature, (accessory(image),), OLD, 1, OCI_MANIFEST),
    ]
    found = audit(
        images, ecr_policy(selection("tagged", 3, "sinceImagePushed", tagPrefixList=["sha256-"]))
    )
    assert rows(found) == [(signature, 1, "signature-of-in-use")]
    assert found[0].cause.startswith(f"describes {image}, tag release stays; ")


def test_a_signature_and_the_image_it_describes_expiring_together_is_no_hazard() -> None:
    image, signature = d("ci"), d("ci signature")
    images = [
        Image(image, ("ci-1",), OLD, 1, OCI_MANIFEST),
        Image(signature, (accessory(image),), OLD, 1, OCI_MANIFEST),
    ]
    text = ecr_policy(
        selection("tagged", 3, "sinceImagePushed", tagPrefixList=["ci-"]),
        selection("tagged", 3, "sinceImagePushed", tagPrefixList=["sha256-"]),
    )
    assert set(predict(parse_policy_text(text), images, {}, NOW)) == {image, signature}
    assert audit(images, text) == []


def test_a_referrer_whose_subject_only_its_bytes_name_describes_it() -> None:
    image, signature = d("signed"), d("signature")
    images = [
        Image(image, ("v1",), OLD, 1, OCI_MANIFEST),
        Image(signature, (), OLD, 1, OCI_MANIFEST),
    ]
    bytes_say = Manifest(Kind.REFERRER, OCI_MANIFEST, subject=image)
    found = audit(images, ecr_policy(UNTAGGED_AFTER_3_DAYS), image, signature=bytes_say)
    assert rows(found) == [(signature, 1, "signature-of-in-use")]
    assert found[0].cause.startswith(f"describes {image}, pinned by {PIN_SOURCE}; ")


def test_a_signature_whose_first_subject_is_gone_still_describes_the_next() -> None:
    image, signature = d("signed"), d("signature")
    images = [
        Image(image, ("v1",), OLD, 1, OCI_MANIFEST),
        Image(signature, (accessory(image),), OLD, 1, OCI_MANIFEST),
    ]
    bytes_say = Manifest(Kind.REFERRER, OCI_MANIFEST, subject=d("gone"))
    text = ecr_policy(selection("tagged", 3, "sinceImagePushed", tagPrefixList=["sha256-"]))
    found = audit(images, text, image, signature=bytes_say)
    assert rows(found) == [(signature, 1, "signature-of-in-use")]
    assert found[0].cause.startswith(f"describes {image}, pinned by {PIN_SOURCE}; ")
