"""explain.path and render on plans made by the planner: the chain back to what settles it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sweeper.explain import path, render, short
from sweeper.model import Descriptor, Image, Kind, Manifest, Pin, Scope
from sweeper.plan import Policy, make_plan

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=30)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def test_kept_child_walks_back_through_nested_indexes_to_the_tag() -> None:
    images = [
        Image(d("outer"), ("v1",), OLD, media_type=OCI_INDEX),
        Image(d("inner"), (), OLD, media_type=OCI_INDEX),
        Image(d("img"), (), OLD, media_type=OCI_MANIFEST),
        Image(d("sig"), (), OLD, media_type=OCI_MANIFEST, subject=d("img")),
    ]
    manifests = {
        d("outer"): Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(d("inner")),)),
        d("inner"): Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(d("img")),)),
        d("img"): Manifest(Kind.IMAGE, OCI_MANIFEST),
        d("sig"): Manifest(Kind.REFERRER, OCI_MANIFEST, subject=d("img")),
    }
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    chain = path(plan.decisions, d("sig"), plan.children)
    assert [c.digest for c in chain] == [d("sig"), d("img"), d("inner"), d("outer")]
    assert render(chain) == (
        f"{short(d('sig'))} (referrer) <- refers to image {short(d('img'))} <- listed by index "
        f"{short(d('inner'))} <- listed by index {short(d('outer'))} <- tagged 'v1'"
    )


def test_deletable_child_walks_to_its_deletable_index() -> None:
    images = [
        Image(d("index"), (), OLD, media_type=OCI_INDEX),
        Image(d("img"), (), OLD, media_type=OCI_MANIFEST),
    ]
    manifests = {
        d("index"): Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(d("img")),)),
        d("img"): Manifest(Kind.IMAGE, OCI_MANIFEST),
    }
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    chain = path(plan.decisions, d("img"), plan.children)
    assert [c.digest for c in chain] == [d("img"), d("index")]
    assert render(chain).startswith(
        f"{short(d('img'))} (image) <- listed only by index {short(d('index'))}, deleted first"
        " <- unreachable"
    )


def test_a_root_is_its_own_explanation() -> None:
    images = [Image(d("img"), (), OLD, media_type=OCI_MANIFEST)]
    manifests = {d("img"): Manifest(Kind.IMAGE, OCI_MANIFEST)}
    pins = {d("img"): Pin(d("img"), "ecs:task-definition/web:7")}
    plan = make_plan("app", images, manifests, pins, Policy(Scope.ORPHANS), NOW)
    chain = path(plan.decisions, d("img"))
    assert render(chain) == f"{short(d('img'))} (image) <- pinned (ecs:task-definition/web:7)"


def test_unread_child_of_an_out_of_scope_index_is_kept_by_that_index() -> None:
    """Attestations scope: the platform image of an orphaned index is not read (the index keeps
    it); it is explained by the index, not as `unreadable`. One nothing lists stays unreadable."""
    images = [
        Image(d("index"), (), OLD, media_type=OCI_INDEX),
        Image(d("img"), (), OLD, media_type=OCI_MANIFEST),
        Image(d("loose"), (), OLD, media_type=OCI_MANIFEST),
    ]
    manifests = {d("index"): Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(d("img")),))}
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ATTESTATIONS), NOW)
    assert render(path(plan.decisions, d("img"))) == (
        f"{short(d('img'))} (unclassified) <- listed by index {short(d('index'))}"
        " <- out-of-scope (index not in scope attestations)"
    )
    assert render(path(plan.decisions, d("loose"))) == (
        f"{short(d('loose'))} (unclassified) <- unreadable (content not read)"
    )
