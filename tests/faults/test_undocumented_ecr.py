"""Where ECR's behaviour is undocumented, the sweep is safe under every plausible behaviour.

Two corners of the API touch archived manifests, and the documentation says nothing of either:

- `DescribeImages` with `imageIds` and a `filter` together (the re-read of each delete batch):
  ECR may honour the filter, refuse the pair (`InvalidParameterException`), or accept it and
  ignore it, answering by id as it lists and so hiding what is not ACTIVE (as a missing id, or
  by leaving it out of the answer);
- `BatchGetImage` of an archived manifest: served, or refused per item (as `ImageInaccessible`,
  or as `ImageNotFound`: an archived image cannot be pulled).

The harness plays every combination (`FakeRegistry` arguments, harness.ecr). Safe means: no
archived manifest, nor anything it lists, is ever deleted; nothing that is there is counted as
gone; and where the run cannot read what it needs, it deletes nothing there and says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from conftest import OLD, Invoke
from harness import FakeRegistry
from harness.fresh import fresh_registry
from harness.workloads import AwsEvents
from sweeper.registry import EcrRegistry, make_client

REPO = "app"

# name -> FakeRegistry arguments
WORLDS: dict[str, dict[str, Any]] = {
    f"ids-filter-{accepted}-archived-by-id-{by_id}-batch-get-{served}": {
        "describe_ids_filter": accepted,
        "describe_ids_archived": by_id,
        "archived_manifests_readable": served == "served",
        "archived_manifest_failure": served if served != "served" else "ImageInaccessible",
    }
    for accepted, by_id, served in itertools.product(
        ("accepted", "refused"),
        ("shown", "not-found", "omitted"),
        ("served", "ImageInaccessible", "ImageNotFound"),
    )
}
WORLD = pytest.mark.parametrize("world", WORLDS.values(), ids=WORLDS.keys())


@contextmanager
def world_registry(world: dict[str, Any]) -> Iterator[FakeRegistry]:
    with fresh_registry(**world) as registry:
        yield registry


def on_verify(events: AwsEvents, digest: str, action: Any) -> None:
    """Run `action()` once, right before the handler re-reads a batch holding `digest` (the
    DescribeImages by ids that precedes each BatchDeleteImage)."""
    done: list[bool] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        ids = [i["imageDigest"] for i in params.get("imageIds", [])]
        if digest in ids and not done:
            done.append(True)
            action()

    events.on("before-parameter-build.ecr.DescribeImages", hook)


@WORLD
def test_describe_tells_gone_from_archived_in_every_world(world: dict[str, Any]) -> None:
    with world_registry(world) as registry:
        build = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
        gone = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
        registry.set_archived(REPO, build.index)
        registry.client.batch_delete_image(
            repositoryName=REPO, imageIds=[{"imageDigest": gone.index}]
        )
        image = build.images["linux/amd64"]
        found = EcrRegistry(make_client()).describe(REPO, [build.index, image, gone.index])
    assert set(found) == {build.index, image}  # only the deleted one reads as gone
    assert found[build.index].archived is True
    assert found[image].archived is False


def test_a_refused_filter_is_asked_for_once_then_the_ids_go_alone() -> None:
    with world_registry({"describe_ids_filter": "refused"}) as registry, AwsEvents() as events:
        build = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
        sent: list[bool] = []
        events.on(
            "before-parameter-build.ecr.DescribeImages",
            lambda params, **_: sent.append("filter" in params),
        )
        ecr = EcrRegistry(make_client())
        first = ecr.describe(REPO, [build.index])
        second = ecr.describe(REPO, sorted(build.all))
    assert set(first) == {build.index}
    assert set(second) == build.all
    assert sent == [True, False, False]  # refused once; the documented form from then on


@WORLD
def test_a_candidate_archived_between_scan_and_delete_is_kept_with_its_tree(
    invoke: Invoke, world: dict[str, Any]
) -> None:
    with world_registry(world) as registry, AwsEvents() as events:
        old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        on_verify(events, old.index, lambda: registry.set_archived(REPO, old.index))
        report = invoke(dry_run=False, scope="orphans")
        assert registry.digests(REPO) == old.all | new.all
        assert registry.is_archived(REPO, old.index)
    assert report["deleted"]["manifests"] == 0
    assert report["already_gone"]["manifests"] == 0  # it is there: never counted as gone
    assert report["kept"]["archived"] == 1
    assert report["kept"]["parent-not-deleted"] == 2  # what the archived index lists stays
    entries = {e["digest"]: e for e in report["deletions"]}
    assert (entries[old.index]["reason"], entries[old.index]["cause"]) == (
        "archived",
        "archived since the scan",
    )


@WORLD
def test_an_archived_index_and_what_it_lists_are_never_deleted(
    invoke: Invoke, world: dict[str, Any]
) -> None:
    with world_registry(world) as registry:
        archived = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
        registry.set_archived(REPO, archived.index)
        orphan = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
        tagged = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        report = invoke(dry_run=False, scope="orphans")
        left = registry.digests(REPO)
    assert archived.all <= left
    if world["archived_manifests_readable"]:
        assert left == archived.all | tagged.all
        assert report["complete"] is True
    else:
        # The archived index cannot be read, so what it lists is unknown: everything pushed at
        # or before it stays (here, everything), and says why; the rest of the repository is
        # swept, so no failure stops it night after night.
        assert left == archived.all | orphan.all | tagged.all
        assert report["complete"] is True
        assert report["failures"] == []
        assert report["kept"]["unreadable"] >= len(orphan.all)
        assert report["already_gone"]["manifests"] == 0


@WORLD
def test_a_candidate_deleted_by_someone_else_still_counts_as_gone(
    invoke: Invoke, world: dict[str, Any]
) -> None:
    with world_registry(world) as registry, AwsEvents() as events:
        old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        on_verify(
            events,
            old.index,
            lambda: registry.client.batch_delete_image(
                repositoryName=REPO, imageIds=[{"imageDigest": old.index}]
            ),
        )
        report = invoke(dry_run=False, scope="orphans")
        assert registry.digests(REPO) == new.all
    assert report["already_gone"]["manifests"] == 1
    assert report["deleted"]["manifests"] == 2
    assert report["complete"] is True


def test_a_manifest_deleted_by_someone_else_before_the_scan_reads_it_counts_as_gone(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Listed, then gone when the scan asks for its bytes (ECR answers `ImageNotFound` for it):
    it counts as already gone, and the rest of its tree is planned without it."""
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    deleted: list[str] = []

    def someone_deletes(**_: Any) -> None:
        if not deleted:
            deleted.append(old.index)
            registry.client.batch_delete_image(
                repositoryName=REPO, imageIds=[{"imageDigest": old.index}]
            )

    with AwsEvents() as events:
        events.on("before-parameter-build.ecr.BatchGetImage", someone_deletes)
        report = invoke(dry_run=False, scope="orphans")

    assert deleted == [old.index]
    assert registry.digests(REPO) == new.all
    assert report["complete"] is True, report["failures"]
    assert report["already_gone"]["manifests"] == 1
    assert report["deleted"]["manifests"] == len(old.all) - 1
