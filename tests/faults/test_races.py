"""Races between the scan and the delete: whatever makes a manifest live at the last moment keeps
what describes it too, a dangling referrer goes only once its subject's absence is confirmed, and
a tag lost in the unclosable window is reported.

Each scenario changes the registry from the wire, at the moment named, as another client would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import OLD, Invoke
from harness import FakeRegistry, oci
from harness.faults import Attempt, Wire, intercept_clients

REPO = "app"
REQUEST: dict[str, Any] = {"dry_run": False, "scope": "orphans"}


def re_read(attempt: Attempt, digest: str) -> bool:
    """The re-read right before a delete batch holding `digest`."""
    return (
        attempt.operation == "DescribeImages"
        and "imageIds" in attempt.params
        and digest in attempt.digests
    )


def once(action: Callable[[], object], when: Callable[[Attempt], bool]) -> Wire:
    done: list[bool] = []

    def on_attempt(attempt: Attempt) -> None:
        if not done and when(attempt):
            done.append(True)
            action()

    return Wire(on_attempt=on_attempt)


def test_an_image_tagged_after_the_scan_keeps_its_cosign_signature(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    image = oci.image_manifest("rollback")
    signature = oci.cosign_signature(image)
    registry.push(REPO, image, pushed_at=OLD)
    registry.push(REPO, signature, pushed_at=OLD)

    tag_it = once(
        lambda: registry.tag(REPO, "v2", image.digest), lambda a: re_read(a, image.digest)
    )
    with intercept_clients(tag_it):
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == {image.digest, signature.digest}
    reasons = {e["digest"]: (e["reason"], e["cause"]) for e in report["deletions"]}
    assert reasons == {
        image.digest: ("gained-tag", "v2"),
        signature.digest: ("subject-kept", image.digest),
    }


def test_an_index_tagged_after_the_scan_keeps_the_signature_made_on_the_index(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)  # `latest` moves on
    index = oci.Manifest(registry.manifest(REPO, old.index), oci.OCI_INDEX)
    signature = oci.cosign_signature(index)
    registry.push(REPO, signature, pushed_at=OLD)
    before = registry.digests(REPO)

    tag_it = once(lambda: registry.tag(REPO, "v1.4", old.index), lambda a: re_read(a, old.index))
    with intercept_clients(tag_it):
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == before  # the index, its children and its signature
    assert report["deleted"]["manifests"] == 0
    reasons = {e["digest"]: e["reason"] for e in report["deletions"]}
    assert reasons[old.index] == "gained-tag"
    assert reasons[signature.digest] == "subject-kept"


def test_a_new_tagged_index_listing_a_planned_image_keeps_that_images_signature(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    image = oci.image_manifest("reused")
    signature = oci.sbom_referrer(image)
    registry.push(REPO, image, pushed_at=OLD)
    registry.push(REPO, signature, pushed_at=OLD)
    newcomer = oci.index([image.descriptor(platform="linux/amd64")])

    def deleting(attempt: Attempt) -> bool:
        return attempt.operation == "BatchDeleteImage" and image.digest in attempt.digests

    push_it = once(lambda: registry.seed(REPO, newcomer, tags=["v3"]), deleting)
    with intercept_clients(push_it):
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == {image.digest, signature.digest, newcomer.digest}
    assert [f["code"] for f in report["failures"]] == ["ImageReferencedByManifestList"]
    assert report["complete"] is False
    reasons = {e["digest"]: e["reason"] for e in report["deletions"]}
    assert reasons == {image.digest: "delete-failed", signature.digest: "subject-kept"}


def test_a_dangling_referrer_goes_once_a_read_confirms_its_subject_absent(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    gone = oci.image_manifest("deleted-long-ago")
    signature = oci.notation_signature(gone)
    registry.push(REPO, signature, pushed_at=OLD)

    wire = Wire()
    with intercept_clients(wire):
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == set()
    re_reads = [a for a in wire.log if a.operation == "DescribeImages" and "imageIds" in a.params]
    # One re-read asks for both; ECR refuses a read naming an absent manifest, so it is split
    # until the absent one is alone.
    assert sorted(re_reads[0].digests) == sorted([signature.digest, gone.digest])
    assert [a.digests for a in re_reads[1:]] == [[signature.digest], [gone.digest]]
    assert report["deletions"][0]["cause"].endswith(f"subject {gone.digest} not in the repository")


@pytest.mark.parametrize("how", ["pushed during the run", "archived"])
def test_a_dangling_referrer_whose_subject_turns_out_present_stays(
    registry: FakeRegistry, invoke: Invoke, how: str
) -> None:
    subject = oci.image_manifest("late")
    signature = oci.cosign_signature(subject)
    registry.push(REPO, signature, pushed_at=OLD)

    def arrive() -> None:
        registry.seed(REPO, subject, pushed_at=OLD)
        if how == "archived":
            registry.set_archived(REPO, subject.digest)

    with intercept_clients(once(arrive, lambda a: re_read(a, signature.digest))):
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == {subject.digest, signature.digest}
    assert report["deleted"]["manifests"] == 0
    assert report["deletions"][0]["reason"] == "subject-kept"
    assert report["deletions"][0]["cause"] == subject.digest


@pytest.mark.parametrize(
    ("added", "said"),
    [
        (["hotfix"], "'hotfix'"),
        (["hotfix", "hotfix-2"], "'hotfix', 'hotfix-2'"),
    ],
    ids=["one tag added", "two tags added"],
)
def test_a_tag_added_between_the_re_read_and_the_delete_is_reported_as_lost(
    registry: FakeRegistry, invoke: Invoke, added: list[str], said: str
) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)

    def deleting(attempt: Attempt) -> bool:
        return attempt.operation == "BatchDeleteImage" and old.index in attempt.digests

    def tag() -> None:
        for name in added:
            registry.tag(REPO, name, old.index)

    tag_it = once(tag, deleting)
    with intercept_clients(tag_it):
        report = invoke(**REQUEST)

    # No collector can close that window; the index went with its tags, and it is said.
    failures = [(f["digest"], f["code"], f["message"]) for f in report["failures"]]
    message = f"deleted with tag {said}, added after the re-read"
    assert failures == [(old.index, "TagLost", message)]
    assert report["complete"] is False
    # What it listed stays, so the same index can be pushed again.
    assert registry.digests(REPO) == new.all | (old.all - {old.index})
    # The index is reported as what it was: planned, and deleted.
    entries = {e["digest"]: e for e in report["deletions"]}
    assert (entries[old.index]["reason"], entries[old.index]["deleted"]) == ("unreachable", True)
    assert report["deleted"]["manifests"] == 1


def test_a_tagged_artifact_of_unknown_kind_protects_the_manifests_its_bytes_mention(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    image = oci.image_manifest("bundled")
    # A vendor artifact that names the image it ships only in an annotation.
    document = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": oci.blob("application/vnd.example.bundle.config.v1+json", "bundle", 200),
        "layers": [],
        "annotations": {"example.com/images": f"app@{image.digest}"},
    }
    bundle = oci.Manifest(json.dumps(document).encode(), oci.OCI_MANIFEST)
    registry.push(REPO, image, pushed_at=OLD)
    registry.push(REPO, bundle, tags=["bundle-1"], pushed_at=OLD)
    orphan = registry.push(REPO, oci.image_manifest("orphan"), pushed_at=OLD)

    report = invoke(**REQUEST)

    assert registry.digests(REPO) == {image.digest, bundle.digest}
    assert report["deleted"]["manifests"] == 1
    assert report["deletions"][0]["digest"] == orphan
