"""The planner on hand-built graphs: each test is a scenario, named for what it shows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from sweeper.model import Descriptor, Image, Kind, Manifest, Pin, Reason, Scope, Verdict
from sweeper.plan import Policy, make_plan

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=30)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ATTESTATION_ENTRY = {
    "vnd.docker.reference.type": "attestation-manifest",
    "vnd.docker.reference.digest": "",
}


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class Repo:
    """A tiny registry description: images (listing) and manifests (parsed bytes)."""

    def __init__(self) -> None:
        self.images: dict[str, Image] = {}
        self.manifests: dict[str, Manifest] = {}

    def image(
        self,
        name: str,
        *,
        tags: tuple[str, ...] = (),
        pushed: datetime = OLD,
        pulled: datetime | None = None,
        archived: bool = False,
    ) -> str:
        digest = d(name)
        self.images[digest] = Image(
            digest, tags, pushed, 100, OCI_MANIFEST, last_pulled=pulled, archived=archived
        )
        self.manifests[digest] = Manifest(Kind.IMAGE, OCI_MANIFEST, note="container image")
        return digest

    def attestation(self, name: str, *, subject: str | None = None, **kw: object) -> str:
        digest = self.image(name, **kw)  # type: ignore[arg-type]
        self.manifests[digest] = Manifest(Kind.ATTESTATION, OCI_MANIFEST, subject=subject)
        return digest

    def index(
        self,
        name: str,
        children: list[str],
        *,
        attestations: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        pushed: datetime = OLD,
    ) -> str:
        digest = d(name)
        self.images[digest] = Image(digest, tags, pushed, 100, OCI_INDEX)
        refs = tuple(
            Descriptor(c, OCI_MANIFEST, annotations=ATTESTATION_ENTRY if c in attestations else {})
            for c in children
        )
        self.manifests[digest] = Manifest(Kind.INDEX, OCI_INDEX, references=refs)
        return digest

    def unknown(self, name: str, mentions: tuple[str, ...] = ()) -> str:
        digest = self.image(name)
        self.manifests[digest] = Manifest(
            Kind.UNKNOWN, OCI_MANIFEST, references=tuple(Descriptor(m) for m in mentions)
        )
        return digest

    def plan(self, scope: Scope = Scope.ORPHANS, pins: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
        return make_plan(
            "repo",
            list(self.images.values()),
            self.manifests,
            {p: Pin(p, "test") for p in pins},
            Policy(scope=scope),
            NOW,
        )


def verdicts(plan) -> dict[str, Verdict]:  # type: ignore[no-untyped-def]
    return {digest: decision.verdict for digest, decision in plan.decisions.items()}


def test_tagged_index_keeps_its_children() -> None:
    r = Repo()
    img, att = r.image("img"), r.attestation("att")
    idx = r.index("idx", [img, att], attestations=(att,), tags=("latest",))
    plan = r.plan()
    assert plan.deletions == []
    assert plan.decisions[idx].reason is Reason.TAGGED
    assert plan.decisions[att].reason is Reason.LISTED_BY_KEPT_INDEX
    assert plan.decisions[att].cause == idx
    assert plan.decisions[att].live


def test_orphan_tree_goes_parents_first_in_orphans_scope() -> None:
    r = Repo()
    img, att = r.image("img"), r.attestation("att")
    idx = r.index("idx", [img, att], attestations=(att,))
    plan = r.plan()
    assert plan.waves == ((idx,), tuple(sorted([img, att])))


def test_attestations_scope_keeps_attestations_an_orphan_index_still_lists() -> None:
    r = Repo()
    img, att = r.image("img"), r.attestation("att")
    idx = r.index("idx", [img, att], attestations=(att,))
    plan = r.plan(Scope.ATTESTATIONS)
    assert plan.deletions == []
    assert plan.decisions[idx].reason is Reason.OUT_OF_SCOPE
    assert plan.decisions[att].reason is Reason.LISTED_BY_KEPT_INDEX


def test_parentless_old_attestation_goes_in_attestations_scope() -> None:
    r = Repo()
    att = r.attestation("att")
    r.image("img")
    assert r.plan(Scope.ATTESTATIONS).deletions == [att]


def test_child_shared_by_live_and_orphan_index_survives() -> None:
    r = Repo()
    shared = r.image("shared")
    old = r.index("old", [shared])
    r.index("new", [shared], tags=("latest",))
    plan = r.plan()
    assert plan.deletions == [old]
    assert plan.decisions[shared].verdict is Verdict.KEEP


def test_pinned_untagged_index_keeps_its_children() -> None:
    r = Repo()
    img = r.image("img")
    idx = r.index("idx", [img])
    plan = r.plan(pins=(idx,))
    assert plan.deletions == []
    assert plan.decisions[idx].reason is Reason.PINNED


def test_young_orphan_is_kept_and_protects_what_it_lists() -> None:
    r = Repo()
    img = r.image("img")
    idx = r.index("idx", [img], pushed=NOW - timedelta(hours=1))
    plan = r.plan()
    assert plan.deletions == []
    assert plan.decisions[idx].reason is Reason.YOUNG


def test_recently_pulled_manifest_is_a_root() -> None:
    r = Repo()
    img = r.image("img", pulled=NOW - timedelta(days=2))
    assert r.plan().decisions[img].reason is Reason.PULLED


def test_archived_manifest_is_a_root() -> None:
    r = Repo()
    img = r.image("img")
    idx = r.index("idx", [img])
    r.images[idx] = Image(idx, (), OLD, 100, OCI_INDEX, archived=True)
    plan = r.plan()
    assert plan.deletions == []
    assert plan.decisions[idx].reason is Reason.ARCHIVED


def test_referrer_of_live_subject_stays_and_of_orphan_subject_goes() -> None:
    r = Repo()
    live = r.image("live", tags=("v1",))
    dead = r.image("dead")
    sig_live = r.attestation("sig-live", subject=live)
    sig_dead = r.attestation("sig-dead", subject=dead)
    r.manifests[sig_live] = Manifest(Kind.REFERRER, OCI_MANIFEST, subject=live)
    r.manifests[sig_dead] = Manifest(Kind.REFERRER, OCI_MANIFEST, subject=dead)
    plan = r.plan()
    assert plan.decisions[sig_live].reason is Reason.SUBJECT_KEPT
    assert set(plan.deletions) == {dead, sig_dead}


def test_unknown_manifest_is_kept_and_keeps_every_digest_it_mentions() -> None:
    r = Repo()
    img = r.image("img")
    unknown = r.unknown("helm", mentions=(img,))
    plan = r.plan()
    assert plan.deletions == []
    assert plan.decisions[unknown].reason is Reason.UNKNOWN_KIND
    assert plan.decisions[img].cause == unknown


def test_nested_index_children_are_ordered_after_every_parent() -> None:
    r = Repo()
    img = r.image("img")
    inner = r.index("inner", [img])
    outer = r.index("outer", [inner])
    assert r.plan().waves == ((outer,), (inner,), (img,))


def test_manifest_without_bytes_is_kept_as_unreadable() -> None:
    r = Repo()
    img = r.image("img")
    del r.manifests[img]
    plan = r.plan()
    assert plan.decisions[img].reason is Reason.UNREADABLE


@pytest.mark.parametrize("scope", list(Scope))
def test_every_candidate_is_untagged_and_not_live(scope: Scope) -> None:
    r = Repo()
    a = r.image("a", tags=("t",))
    b = r.attestation("b")
    r.index("i", [a, b], attestations=(b,))
    plan = r.plan(scope)
    for digest in plan.deletions:
        assert not r.images[digest].tags
        assert not plan.decisions[digest].live
