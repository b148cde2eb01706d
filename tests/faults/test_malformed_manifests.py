"""Malformed manifests in the registry: each is kept with a reason, and the run completes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import Invoke
from harness import FakeRegistry, malformed, oci
from harness.generated import OLD, lost_children

REPO = "app"
REQUEST = {"dry_run": False, "scope": "orphans"}


def garbage_and_live(registry: FakeRegistry) -> tuple[frozenset[str], frozenset[str]]:
    """An old orphan build next to the tagged one: the run has real work besides the oddity."""
    old = datetime.now(UTC) - OLD
    orphan = registry.push_buildx(REPO, tag="latest", pushed_at=old, build_id="orphan", fast=True)
    live = registry.push_buildx(REPO, tag="latest", pushed_at=old, build_id="live", fast=True)
    return orphan.all - live.all, live.all


@pytest.mark.parametrize("name", sorted(malformed.MALFORMED))
def test_a_malformed_manifest_is_kept_as_unknown_and_the_run_completes(
    registry: FakeRegistry, invoke: Invoke, name: str
) -> None:
    orphans, live = garbage_and_live(registry)
    odd = registry.seed(REPO, malformed.MALFORMED[name]("odd"), pushed_at=datetime.now(UTC) - OLD)
    report = invoke(**REQUEST)
    assert report["complete"] is True, report["failures"]
    assert registry.digests(REPO) == live | {odd}
    assert report["kept"]["unknown-kind"] == 1
    assert report["deleted"]["manifests"] == len(orphans)


@pytest.mark.parametrize("name", sorted(malformed.RAW))
def test_bytes_too_hostile_for_a_json_parser_are_kept_and_the_run_completes(
    registry: FakeRegistry, invoke: Invoke, name: str
) -> None:
    _, live = garbage_and_live(registry)
    odd = malformed.store_raw(
        registry, REPO, malformed.RAW[name]("odd"), pushed_at=datetime.now(UTC) - OLD
    )
    report = invoke(**REQUEST)
    assert report["complete"] is True, report["failures"]
    assert registry.digests(REPO) == live | {odd}
    assert report["kept"]["unknown-kind"] == 1


def test_a_malformed_index_keeps_the_orphans_it_names(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Its entries are broken, but the digests are there: whatever it may list stays."""
    orphans, _ = garbage_and_live(registry)
    named = sorted(orphans)[:2]
    entries = [oci.Manifest(registry.manifest(REPO, d), oci.OCI_MANIFEST) for d in named]
    odd = registry.seed(
        REPO, malformed.index_with_bad_entry(entries), pushed_at=datetime.now(UTC) - OLD
    )
    before = registry.digests(REPO)
    report = invoke(**REQUEST)
    after = registry.digests(REPO)
    assert report["complete"] is True
    assert {odd, *named} <= after
    assert lost_children(registry, {REPO: before}, {REPO: after}) == []
    assert report["kept"]["unknown-kind"] == 1


def test_an_index_that_lists_itself_is_kept_as_unknown(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    _, live = garbage_and_live(registry)
    odd = malformed.index_listing_itself(registry, REPO, pushed_at=datetime.now(UTC) - OLD)
    report = invoke(**REQUEST)
    assert report["complete"] is True
    assert registry.digests(REPO) == live | {odd}
    assert report["kept"]["unknown-kind"] == 1


def test_indexes_that_list_each_other_are_kept_as_a_reference_cycle(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    orphans, live = garbage_and_live(registry)
    first, second = malformed.indexes_listing_each_other(
        registry, REPO, pushed_at=datetime.now(UTC) - OLD
    )
    report = invoke(**REQUEST)
    assert report["complete"] is True
    assert registry.digests(REPO) == live | {first, second}
    assert report["kept"]["reference-cycle"] == 2
    assert report["deleted"]["manifests"] == len(orphans)
