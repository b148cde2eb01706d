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


def sig_tag(subject: str, suffix: str = ".sig") -> str:
    return f"sha256-{subject.removeprefix('sha256:')}{suffix}"


def signed_builds() -> tuple[list[Image], dict[str, Manifest]]:
    """`v1` on a live index with its .sig; an old untagged index with its .att; a .sbom of a
    digest the repository does not hold."""
    images = [
        Image(d("live"), ("v1",), OLD, media_type=OCI_INDEX),
        Image(d("old"), (), OLD, media_type=OCI_INDEX),
        Image(d("sig"), (sig_tag(d("live")),), OLD, media_type=OCI_MANIFEST),
        Image(d("att"), (sig_tag(d("old"), ".att"),), OLD, media_type=OCI_MANIFEST),
        Image(d("sbom"), (sig_tag(d("gone"), ".sbom"),), OLD, media_type=OCI_MANIFEST),
    ]
    manifests = {
        d("live"): Manifest(Kind.INDEX, OCI_INDEX),
        d("old"): Manifest(Kind.INDEX, OCI_INDEX),
        **{d(n): Manifest(Kind.IMAGE, OCI_MANIFEST) for n in ("sig", "att", "sbom")},
    }
    return images, manifests


def test_accessory_chain_of_a_kept_signature_leads_to_the_tag_of_its_subject() -> None:
    images, manifests = signed_builds()
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    assert render(path(plan.decisions, d("sig"), plan.children)) == (
        f"{short(d('sig'))} (accessory .sig) <- of index {short(d('live'))} <- tagged 'v1'"
    )


def test_accessory_chain_of_a_deletable_attestation_leads_to_its_deletable_subject() -> None:
    images, manifests = signed_builds()
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    chain = path(plan.decisions, d("att"), plan.children)
    assert [c.digest for c in chain] == [d("att"), d("old")]
    assert render(chain).startswith(
        f"{short(d('att'))} (accessory .att) <- of index {short(d('old'))}, deleted first"
        " <- unreachable"
    )


def test_accessory_chain_of_an_absent_subject_says_so() -> None:
    images, manifests = signed_builds()
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    assert render(path(plan.decisions, d("sbom"), plan.children)) == (
        f"{short(d('sbom'))} (accessory .sbom) <- of {short(d('gone'))}, which is not in the"
        " repository"
    )


def test_referrers_fallback_index_is_labelled_as_such() -> None:
    images = [
        Image(d("live"), ("v1",), OLD, media_type=OCI_MANIFEST),
        Image(d("fallback"), (sig_tag(d("live"), ""),), OLD, media_type=OCI_INDEX),
    ]
    manifests = {
        d("live"): Manifest(Kind.IMAGE, OCI_MANIFEST),
        d("fallback"): Manifest(Kind.INDEX, OCI_INDEX),
    }
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    assert render(path(plan.decisions, d("fallback"))) == (
        f"{short(d('fallback'))} (accessory referrers index) <- of image {short(d('live'))}"
        " <- tagged 'v1'"
    )


def test_accessories_naming_each_other_end_without_claiming_an_absent_subject() -> None:
    """Forged tags (two manifests each tagged as the other's signature): the chain stops at the
    loop and says what settles it, not that a subject is missing."""
    images = [
        Image(d("live"), ("v1",), OLD, media_type=OCI_MANIFEST),
        Image(d("sig"), (sig_tag(d("live")),), OLD, media_type=OCI_MANIFEST),
        Image(d("a"), (sig_tag(d("b")),), OLD, media_type=OCI_MANIFEST),
        Image(d("b"), (sig_tag(d("a")),), OLD, media_type=OCI_MANIFEST),
    ]
    manifests = {i.digest: Manifest(Kind.IMAGE, OCI_MANIFEST) for i in images}
    plan = make_plan("app", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    text = render(path(plan.decisions, d("a"), plan.children))
    assert "not in the repository" not in text
    # The chain stops at `b` (whose own accessory is `a`) with what settles `b`: nothing holds it.
    assert text == (
        f"{short(d('a'))} (accessory .sig) <- of image {short(d('b'))}, deleted first <- "
        "unreachable: no tag, pin, grace period, pull or kept manifest reaches it"
    )
