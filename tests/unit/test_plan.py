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


# --- tag-scheme accessories (cosign `sha256-<hex>.sig|.att|.sbom`, referrers tag schema) --------


def accessory_tag(subject: str, suffix: str = ".sig") -> str:
    return f"sha256-{subject.removeprefix('sha256:')}{suffix}"


def referrer(r: Repo, name: str, subject: str, **kw: object) -> str:
    digest = r.image(name, **kw)  # type: ignore[arg-type]
    r.manifests[digest] = Manifest(Kind.REFERRER, OCI_MANIFEST, subject=subject)
    return digest


@pytest.mark.parametrize("suffix", [".sig", ".att", ".sbom"])
def test_accessory_of_a_live_image_stays(suffix: str) -> None:
    r = Repo()
    live = r.index("live", [r.image("img")], tags=("v1",))
    sig = r.image("sig", tags=(accessory_tag(live, suffix),))
    plan = r.plan()
    decision = plan.decisions[sig]
    assert (decision.verdict, decision.reason, decision.cause) == (
        Verdict.KEEP,
        Reason.ACCESSORY_OF_KEPT,
        live,
    )
    assert decision.live
    assert decision.accessory == accessory_tag(live, suffix)


def test_accessories_of_a_collected_build_go_with_it() -> None:
    r = Repo()
    live = r.index("live", [r.image("img-new")], tags=("latest",))
    r.image("sig-live", tags=(accessory_tag(live),))
    old = r.index("old", [r.image("img-old")])
    sig, att = (
        r.image("sig-old", tags=(accessory_tag(old),)),
        r.image("att-old", tags=(accessory_tag(old, ".att"),)),
    )
    plan = r.plan()
    assert {sig, att} <= set(plan.deletions)
    assert plan.decisions[sig].cause == f"accessory of {old}, deleted first"
    assert plan.decisions[sig].accessory == accessory_tag(old)
    assert plan.absent_subjects == {}  # its subject is listed: no read needed to know


def test_accessory_whose_subject_is_long_gone_goes_once_its_absence_is_confirmed() -> None:
    r = Repo()
    live = r.index("live", [r.image("img")], tags=("v1",))
    r.image("sig-live", tags=(accessory_tag(live),))
    gone = d("deleted long ago")
    sig = r.image("sig-gone", tags=(accessory_tag(gone),))
    plan = r.plan()
    assert plan.deletions == [sig]
    assert plan.decisions[sig].cause == f"accessory of {gone}, not in the repository"
    assert plan.absent_subjects == {sig: (gone,)}


def test_dangling_referrer_rests_on_its_subject_being_absent() -> None:
    r = Repo()
    gone = d("gone")
    sig = referrer(r, "sig", gone)
    plan = r.plan()
    assert plan.deletions == [sig]
    assert plan.absent_subjects == {sig: (gone,)}
    assert plan.decisions[sig].cause.endswith(f"subject {gone} not in the repository")


@pytest.mark.parametrize(
    ("own", "reason"),
    [
        ({"pushed": NOW - timedelta(hours=1)}, Reason.YOUNG),
        ({"pulled": NOW - timedelta(days=2)}, Reason.PULLED),
        ({"archived": True}, Reason.ARCHIVED),
        ({"pinned": True}, Reason.PINNED),
        ({"tags": ("signed-by-ci",)}, Reason.TAGGED),  # an ordinary tag beside the accessory tag
    ],
    ids=["young", "recently-pulled", "archived", "pinned", "also-tagged"],
)
def test_an_accessory_with_a_root_of_its_own_stays(own: dict[str, object], reason: Reason) -> None:
    r = Repo()
    r.index("live", [r.image("img-new")], tags=("latest",))
    old = r.index("old", [r.image("img-old")])
    pinned = bool(own.pop("pinned", False))
    tags = (accessory_tag(old), *own.pop("tags", ()))  # type: ignore[misc]
    sig = r.image("sig", tags=tags, **own)  # type: ignore[arg-type]
    plan = r.plan(pins=(sig,) if pinned else ())
    assert old in plan.deletions
    assert plan.decisions[sig].reason is reason
    assert plan.decisions[sig].live


def test_accessory_of_a_platform_child_of_a_live_index_stays() -> None:
    r = Repo()
    img = r.image("img")
    r.index("idx", [img], tags=("latest",))
    sig = r.image("sig", tags=(accessory_tag(img),))
    plan = r.plan()
    assert plan.decisions[sig].reason is Reason.ACCESSORY_OF_KEPT
    assert plan.decisions[sig].cause == img
    assert plan.decisions[sig].live


def test_referrers_fallback_index_and_what_it_lists_follow_their_subject() -> None:
    r = Repo()
    live = r.image("live", tags=("v1",))
    live_sig = referrer(r, "live-sig", live)
    live_fallback = r.index("live-fallback", [live_sig], tags=(accessory_tag(live, ""),))
    old = r.image("old")
    old_sig = referrer(r, "old-sig", old)
    old_fallback = r.index("old-fallback", [old_sig], tags=(accessory_tag(old, ""),))
    plan = r.plan()
    assert plan.decisions[live_fallback].reason is Reason.ACCESSORY_OF_KEPT
    assert plan.decisions[live_sig].verdict is Verdict.KEEP
    assert set(plan.deletions) == {old, old_sig, old_fallback}
    # What the fallback index lists goes after it, as any index's children.
    assert plan.children[old_fallback] == (old_sig,)


@pytest.mark.parametrize(
    "tag",
    [
        "sha256-latest",
        "sha256-" + "a" * 63,
        "sha256-" + "A" * 64,
        "sha256-" + "a" * 64 + ".sig.bak",
        "sha256-" + "a" * 64 + ".att2",
        "v1-sha256-" + "a" * 64,
    ],
)
def test_a_tag_that_only_starts_like_an_accessory_is_an_ordinary_tag(tag: str) -> None:
    r = Repo()
    r.image("subject", tags=("v1",))  # some subject is listed, so accessory tags count here
    r.image("subject-sig", tags=(accessory_tag(d("subject")),))
    other = r.image("other", tags=(tag,))
    decision = r.plan().decisions[other]
    assert (decision.reason, decision.cause, decision.accessory) == (Reason.TAGGED, tag, "")


def test_in_a_repository_of_accessories_only_the_subjects_live_elsewhere() -> None:
    """cosign's COSIGN_REPOSITORY: signatures in a repository of their own. No subject is here,
    so absence proves nothing: the accessory tags stay ordinary tags."""
    r = Repo()
    sigs = [r.image(f"sig-{i}", tags=(accessory_tag(d(f"image-{i}")),)) for i in range(3)]
    plan = r.plan()
    assert plan.deletions == []
    assert {plan.decisions[s].reason for s in sigs} == {Reason.TAGGED}


def test_an_accessory_is_kept_out_of_scope_in_attestations_scope() -> None:
    r = Repo()
    r.index("live", [r.image("img-new")], tags=("latest",))
    old = r.index("old", [r.image("img-old")])
    sig = r.image("sig", tags=(accessory_tag(old),))
    plan = r.plan(Scope.ATTESTATIONS)
    assert plan.decisions[sig].reason is Reason.OUT_OF_SCOPE
    assert plan.decisions[sig].accessory == accessory_tag(old)


def test_a_cycle_gives_way_only_on_its_own_edges() -> None:
    """Issue 19, item 1: an index-form referrer listing its own subject is a cycle of the two
    orders; index before child wins on that edge alone, and an unrelated signature still goes
    after its subject, in a later wave."""
    r = Repo()
    subject = r.image("listed by its referrer")
    looped = r.index("referrer index", [subject])
    r.manifests[looped] = Manifest(
        Kind.REFERRER, OCI_INDEX, references=(Descriptor(subject, OCI_MANIFEST),), subject=subject
    )
    image = r.image("signed")
    signature = r.attestation("signature of signed")
    r.manifests[signature] = Manifest(Kind.REFERRER, OCI_MANIFEST, subject=image)
    plan = r.plan()
    wave = {digest: n for n, members in enumerate(plan.waves) for digest in members}
    assert set(wave) == {subject, looped, image, signature}
    assert wave[looped] < wave[subject]  # index before child, on the cycle
    assert wave[image] < wave[signature]  # subject before referrer, everywhere else
    assert plan.referrers[image] == (signature,)
