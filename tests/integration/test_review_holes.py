"""The third review's hostile scenarios (issue 19), each end to end through the handler.

Ordering under cycles, a manifest tagged with its own digest, signatures of images in another
repository, re-reads past 100 ids, and an unexpected exception contained to its repository.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import pytest

from conftest import NOW, OLD, Invoke
from harness import FakeRegistry, oci
from harness.faults import Attempt, Inject, ServerError, Wire, intercept_clients
from harness.fresh import fresh_registry
from harness.retention import TRANSITIONED_90_DAYS

REPO = "app"
REQUEST: dict[str, Any] = {"dry_run": False, "scope": "orphans"}


def once(action: Callable[[], object], when: Callable[[Attempt], bool]) -> Wire:
    done: list[bool] = []

    def on_attempt(attempt: Attempt) -> None:
        if not done and when(attempt):
            done.append(True)
            action()

    return Wire(on_attempt=on_attempt)


def re_read(attempt: Attempt, digest: str) -> bool:
    return (
        attempt.operation == "DescribeImages"
        and "imageIds" in attempt.params
        and digest in attempt.digests
    )


def signed_image_sorting_after_its_signature() -> tuple[oci.Manifest, oci.Manifest]:
    """An image and its cosign signature whose digest sorts first: read in one batch, the
    signature would come before the subject that keeps it."""
    for seed in range(100):
        image = oci.image_manifest(f"rollback {seed}")
        signature = oci.cosign_signature(image)
        if signature.digest < image.digest:
            return image, signature
    raise AssertionError("no such pair in 100 seeds")


def test_a_cycle_elsewhere_keeps_subject_before_referrer_for_the_rest_of_the_repository(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 1: an index-form referrer listing its own subject is a cycle of the two orders; only
    its own edge is broken, so an image tagged after the scan still keeps its signature."""
    image, signature = signed_image_sorting_after_its_signature()
    registry.push(REPO, image, pushed_at=OLD)
    registry.push(REPO, signature, pushed_at=OLD)
    subject = oci.image_manifest("listed by its own referrer")
    looped = oci.index([subject.descriptor()], subject=subject)
    registry.push(REPO, subject, pushed_at=OLD)
    registry.push(REPO, looped, pushed_at=OLD)

    tag_it = once(
        lambda: registry.tag(REPO, "v2", image.digest), lambda a: re_read(a, image.digest)
    )
    with intercept_clients(tag_it):
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == {image.digest, signature.digest}
    reasons = {e["digest"]: (e["reason"], e["cause"]) for e in report["deletions"]}
    assert reasons[image.digest] == ("gained-tag", "v2")
    assert reasons[signature.digest] == ("subject-kept", image.digest)
    assert reasons[looped.digest][0] == reasons[subject.digest][0] == "unreachable"
    assert report["broken"] == []


def test_a_manifest_tagged_with_its_own_digest_tag_is_a_tagged_root(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 2: `sha256-<its own hex>` (a mirror's convention) is an ordinary tag, in a
    repository where accessory tags count; what the index lists stays with it."""
    live = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    registry.push(
        REPO,
        oci.cosign_legacy(live.index),
        tags=[oci.accessory_tag(live.index)],
        pushed_at=OLD,
    )
    child = oci.image_manifest("mirrored")
    mirrored = oci.index([child.descriptor(platform="linux/amd64")])
    registry.push(REPO, child, pushed_at=OLD)
    registry.push(REPO, mirrored, tags=[oci.accessory_tag(mirrored.digest, "")], pushed_at=OLD)
    before = registry.digests(REPO)

    report = invoke(**REQUEST)

    assert registry.digests(REPO) == before
    assert report["complete"], report["failures"]
    assert report["kept"]["tagged"] == 2
    assert "reference-cycle" not in report["kept"]


def test_signatures_of_images_in_another_repository_stay_beside_an_image_signed_in_place(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 3: one repository holds cosign's signatures of images elsewhere (COSIGN_REPOSITORY)
    and an image signed in place: only the signatures whose subject no repository of the
    registry holds go."""
    deployed = registry.push_buildx("service", tag="v1", pushed_at=OLD)
    in_place = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    kept = {
        registry.push(
            REPO,
            oci.cosign_legacy(subject),
            tags=[oci.accessory_tag(subject)],
            pushed_at=OLD,
        )
        for subject in (in_place.index, deployed.index)
    }
    referrer = oci.cosign_signature(
        oci.Manifest(registry.manifest("service", deployed.index), oci.OCI_INDEX)
    )
    kept.add(registry.push(REPO, referrer, pushed_at=OLD))
    gone_subject = oci.sha256_digest("an image no repository holds")
    gone = registry.push(
        REPO, oci.cosign_legacy(gone_subject), tags=[oci.accessory_tag(gone_subject)], pushed_at=OLD
    )
    before = registry.digests(REPO)

    dry = invoke(dry_run=True)
    assert {e["digest"] for e in dry["deletions"]} == {gone}
    report = invoke(**REQUEST)

    assert registry.digests(REPO) == before - {gone}
    assert kept <= registry.digests(REPO)
    assert report["complete"], report["failures"]


def test_a_manifest_with_101_accessory_tags_is_re_read_100_ids_a_call(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 5: identical empty fallback indexes share one digest, which then carries an
    accessory tag for each of 101 absent subjects; the re-read before its delete asks for them
    100 at a time, and the run (another repository too) finishes."""
    live = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    registry.push(
        REPO, oci.cosign_legacy(live.index), tags=[oci.accessory_tag(live.index)], pushed_at=OLD
    )
    empty = oci.referrers_fallback_index([])
    subjects = [oci.sha256_digest(f"deleted long ago {i}") for i in range(101)]
    shared = registry.push(
        REPO, empty, tags=[oci.accessory_tag(s, "") for s in subjects], pushed_at=OLD
    )
    registry.push_buildx("other", tag="latest", pushed_at=OLD)
    orphan = registry.push_buildx("other", tag="latest", pushed_at=OLD)
    assert orphan  # the first build of "other" is now untagged

    wire = Wire()
    with intercept_clients(wire):
        report = invoke(**REQUEST)

    assert report["complete"], report["failures"]
    assert not registry.exists(REPO, shared)
    assert report["deleted"]["manifests"] == 1 + 3  # the shared index, the old build of "other"
    assert all(len(a.digests) <= 100 for a in wire.log if a.operation == "DescribeImages")


class Boom(RuntimeError):
    """An exception nobody foresaw."""


def explode(operation: str, repository: str) -> Wire:
    def on_attempt(attempt: Attempt) -> None:
        if attempt.operation == operation and attempt.repository == repository:
            raise Boom(f"unexpected answer to {operation}")

    return Wire(on_attempt=on_attempt)


@pytest.mark.parametrize(
    ("phase", "operation"),
    [("planning", "BatchGetImage"), ("sweep", "BatchDeleteImage")],
)
def test_an_unexpected_exception_is_contained_to_its_repository(
    registry: FakeRegistry, invoke: Invoke, phase: str, operation: str
) -> None:
    """Item 6: the repository it happened in deletes nothing more and is reported (code
    Internal, the exception's type and message); the others finish; the run reports."""
    builds = {}
    for name in ("broken", "fine"):
        old = registry.push_buildx(name, tag="latest", pushed_at=OLD)
        registry.push_buildx(name, tag="latest", pushed_at=OLD)
        builds[name] = old
    before = registry.digests("broken")

    with intercept_clients(explode(operation, "broken")):
        report = invoke(**REQUEST, concurrency=1)

    assert report["complete"] is False
    assert registry.digests("broken") == before
    assert not set(builds["fine"].all) & registry.digests("fine")
    (failure,) = [f for f in report["failures"] if f["repository"] == "broken"]
    assert failure["code"] == "Internal"
    assert failure["message"] == f"Boom: unexpected answer to {operation}"
    assert report["deleted"]["manifests"] == 3


@pytest.mark.parametrize("shape", ["listed", "omitted"])
def test_a_delete_answer_with_or_without_the_untagged_digests_clears_the_tree_in_one_run(
    invoke: Invoke, shape: Literal["listed", "omitted"]
) -> None:
    """Item 10: whether ECR lists a deleted untagged digest in `imageIds` is undocumented. A
    digest it does not confirm never counts as deleted; a read shows it gone, so it counts as
    already gone and the children it listed go in the same run (not one level per night)."""
    with fresh_registry(delete_untagged_answer=shape) as registry:
        old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        report = invoke(**REQUEST)

        assert not set(old.all) & registry.digests(REPO)
        assert report["complete"], report["failures"]
        assert report["broken"] == []
        confirmed = len(old.all) if shape == "listed" else 0
        assert report["deleted"]["manifests"] == confirmed
        assert report["already_gone"]["manifests"] == len(old.all) - confirmed


def test_an_untagged_image_restored_for_a_rollback_is_young_again(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 9: ECR says a restored image "behaves like a newly pushed image" and reports
    `lastActivatedAt`; the grace period counts from the later of push and restore."""
    restored = registry.push(REPO, oci.image_manifest("rollback"), pushed_at=OLD, archived=True)
    registry.restore(REPO, restored, NOW - timedelta(hours=2))
    never = registry.push(REPO, oci.image_manifest("never archived"), pushed_at=OLD)

    report = invoke(**REQUEST)

    assert registry.digests(REPO) == {restored}
    assert never not in registry.digests(REPO)
    assert report["kept"] == {"within-grace-period": 1}


def test_a_lifecycle_rule_the_audit_cannot_evaluate_is_in_the_report(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 13: never silent; and an archived pinned image it may expire is a hazard."""
    archived = registry.push(
        REPO, oci.image_manifest("archived"), tags=["v1"], pushed_at=OLD, archived=True
    )
    registry.put_lifecycle_policy(REPO, TRANSITIONED_90_DAYS)

    report = invoke(dry_run=True, pins=[archived])

    (rule,) = report["lifecycle_unevaluated"]
    assert (rule["repository"], rule["rule"]) == (REPO, 1)
    assert "sinceImageTransitioned" in rule["why"]
    assert [(h["digest"], h["reason"]) for h in report["lifecycle_hazards"]] == [
        (archived, "pinned")
    ]


@pytest.mark.parametrize(
    ("mounting", "request_", "freed"),
    [
        ("off", {}, "own and shared"),  # each repository stores its layers: both are freed
        ("on", {}, "own only"),  # the base layer stays for the other repository
        ("on", {"exclude_repositories": ["base"]}, "unknown"),  # its blobs were not read
    ],
    ids=["without-blob-mounting", "with-blob-mounting", "with-blob-mounting-unread"],
)
def test_bytes_freed_counts_a_layer_shared_between_repositories_once_no_repository_uses_it(
    invoke: Invoke, mounting: str, request_: dict[str, Any], freed: str
) -> None:
    """Item 15: with BLOB_MOUNTING (an account setting) layers are shared between the
    registry's repositories; a blob is freed only when no manifest of any repository uses it,
    and where the run lacks that evidence the report says so (`bytes_freed_unknown`)."""
    base = oci.layer("shared base", 10_000)
    own = oci.layer("only the orphan", 2_000)
    orphan = oci.image_manifest("orphan", base_layers=[base], layer_sizes=[own["size"]])
    with fresh_registry(blob_mounting=mounting == "on") as registry:
        registry.push("base", oci.image_manifest("base", base_layers=[base]), tags=["v1"])
        registry.push(REPO, orphan, pushed_at=OLD)
        registry.push(REPO, oci.image_manifest("kept"), tags=["v1"], pushed_at=OLD)

        report = invoke(dry_run=True, **request_)

    assert [d["digest"] for d in report["deletions"]] == [orphan.digest]
    config = orphan.json["config"]["size"]
    layer_bytes = sum(layer["size"] for layer in orphan.json["layers"])
    if freed == "unknown":
        assert report["bytes_freed_unknown"] == 1
        assert report["planned"]["bytes_freed"] == 0
    else:
        assert report["bytes_freed_unknown"] == 0
        shared = base["size"] if freed == "own and shared" else 0
        assert report["planned"]["bytes_freed"] == config + layer_bytes - base["size"] + shared


def test_bytes_freed_is_unknown_when_blob_mounting_cannot_be_read(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 15: a refused GetAccountSetting makes the figure unknown, never the run fail."""
    registry.push_buildx("other", tag="v1", pushed_at=OLD)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    refused = ServerError(status=400, code="AccessDeniedException")
    with intercept_clients(Wire(Inject("GetAccountSetting", refused))):
        report = invoke(dry_run=True)

    assert report["complete"], report["failures"]
    assert report["planned"]["manifests"] == 3
    assert report["bytes_freed_unknown"] == 1


def test_a_repository_whose_listing_failed_keeps_every_signature_resting_on_an_absent_subject(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Item 3: a selected repository that could not be listed could hold any subject."""
    registry.push_buildx("broken", tag="v1", pushed_at=OLD)
    live = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    registry.push(
        REPO, oci.cosign_legacy(live.index), tags=[oci.accessory_tag(live.index)], pushed_at=OLD
    )
    elsewhere = oci.sha256_digest("an image of a repository not listed")
    waiting = registry.push(
        REPO, oci.cosign_legacy(elsewhere), tags=[oci.accessory_tag(elsewhere)], pushed_at=OLD
    )
    refused = ServerError(status=400, code="AccessDeniedException")
    listing = Inject("DescribeImages", refused, repository="broken")
    with intercept_clients(Wire(listing)):
        report = invoke(**REQUEST)

    assert registry.exists(REPO, waiting)
    assert report["deleted"]["manifests"] == 0
    assert report["kept"]["unreadable"] == 1
    assert report["complete"] is False  # the failed listing
