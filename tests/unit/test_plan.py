"""The planner on hand-built graphs: each test is a scenario, named for what it shows."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sweeper.model import Descriptor, Image, Kind, Manifest, Pin, Reason, Scope, Verdict
from sweeper.plan import (
    Policy,
    make_plan,
    may_delete,
    may_mention_manifests,
    metadata_kind,
    needs_content,
)

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
    own = dict(own)  # the parameter is shared: popping from it would change a second run
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


# --- what the listing alone proves (no bytes read) ----------------------------------------------

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
ATTESTATION_ARTIFACT = "application/vnd.docker.attestation.manifest.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
SUBJECT = d("subject")

# listing -> (kind unmarked, kind when an index entry marks it an attestation, bytes needed
# whatever else is known, bytes may name other manifests)
LISTINGS: dict[str, tuple[Image, Kind | None, Kind | None, bool, bool]] = {
    "index": (Image(d("x"), media_type=OCI_INDEX), Kind.INDEX, Kind.INDEX, True, True),
    "referrers-index": (
        Image(d("x"), media_type=OCI_INDEX, subject=SUBJECT),
        Kind.REFERRER,
        Kind.REFERRER,
        True,
        True,
    ),
    "type-not-stated": (Image(d("x")), None, None, True, True),
    "docker-image": (
        Image(d("x"), media_type=DOCKER_MANIFEST, artifact_media_type=DOCKER_CONFIG),
        Kind.IMAGE,
        Kind.ATTESTATION,
        False,
        False,
    ),
    "oci-image-or-legacy-attestation": (
        Image(d("x"), media_type=OCI_MANIFEST, artifact_media_type=OCI_CONFIG),
        None,
        Kind.ATTESTATION,
        False,
        False,
    ),
    "artifact-attestation": (
        Image(d("x"), media_type=OCI_MANIFEST, artifact_media_type=ATTESTATION_ARTIFACT),
        Kind.ATTESTATION,
        Kind.ATTESTATION,
        False,
        False,
    ),
    "referrer": (
        Image(d("x"), media_type=OCI_MANIFEST, artifact_media_type=HELM_CONFIG, subject=SUBJECT),
        Kind.REFERRER,
        Kind.ATTESTATION,
        False,
        False,
    ),
    "artifact-of-unknown-type": (
        Image(d("x"), media_type=OCI_MANIFEST, artifact_media_type=HELM_CONFIG),
        None,
        Kind.ATTESTATION,
        False,
        True,
    ),
}


@pytest.mark.parametrize(
    ("image", "unmarked", "marked", "content", "mentions"), LISTINGS.values(), ids=LISTINGS.keys()
)
def test_what_a_listing_proves_without_the_bytes(
    image: Image, unmarked: Kind | None, marked: Kind | None, content: bool, mentions: bool
) -> None:
    assert metadata_kind(image, False) is unmarked
    assert metadata_kind(image, True) is marked
    assert needs_content(image) is content
    assert may_mention_manifests(image) is mentions


# listing -> scope -> whether an old untagged manifest of it may be deleted
MAY_DELETE: dict[str, tuple[Image, dict[Scope, bool]]] = {
    "index": (LISTINGS["index"][0], {Scope.ORPHANS: True, Scope.ATTESTATIONS: False}),
    "referrers-index": (
        LISTINGS["referrers-index"][0],
        {Scope.ORPHANS: True, Scope.ATTESTATIONS: False},
    ),
    "type-not-stated": (LISTINGS["type-not-stated"][0], dict.fromkeys(Scope, True)),
    # an index entry may mark any plain manifest an attestation
    "docker-image": (LISTINGS["docker-image"][0], dict.fromkeys(Scope, True)),
    "artifact-attestation": (LISTINGS["artifact-attestation"][0], dict.fromkeys(Scope, True)),
}


@pytest.mark.parametrize(("image", "scopes"), MAY_DELETE.values(), ids=MAY_DELETE.keys())
def test_which_listings_may_be_deleted_in_each_scope(
    image: Image, scopes: dict[Scope, bool]
) -> None:
    old = replace(image, pushed_at=OLD)
    for scope, expected in scopes.items():
        assert may_delete(old, {}, Policy(scope=scope), NOW) is expected
        assert may_delete(replace(old, tags=("v1",)), {}, Policy(scope=scope), NOW) is False
        assert may_delete(old, {}, Policy(scope=scope), NOW, expired={old.digest}) is expected


def test_a_plain_manifest_an_index_marks_an_attestation_is_planned_as_one() -> None:
    r = Repo()
    img, marked = r.image("img"), r.image("looks-like-an-image")
    r.index("old", [img, marked], attestations=(marked,))
    orphan = r.image("orphan")
    plan = r.plan()
    assert plan.decisions[marked].kind is Kind.ATTESTATION
    assert plan.decisions[img].kind is Kind.IMAGE
    assert plan.decisions[orphan].cause == "container image"  # what its bytes said it is


def test_a_kept_decision_carries_the_manifests_size() -> None:
    r = Repo()
    img = r.image("img", tags=("v1",))
    assert r.plan().decisions[img].size == 100


def test_a_manifest_whose_bytes_could_not_be_read_is_kept_with_what_describes_it() -> None:
    unread = Image(d("unread"), (), OLD, 100, OCI_MANIFEST, OCI_CONFIG)
    sig = Image(d("sig"), (), OLD, 100, OCI_MANIFEST, HELM_CONFIG, subject=unread.digest)
    plan = make_plan(
        "repo", [unread, sig], {}, {}, Policy(), NOW, unreadable={unread.digest: "AccessDenied: no"}
    )
    assert (plan.decisions[unread.digest].reason, plan.decisions[unread.digest].cause) == (
        Reason.UNREADABLE,
        "AccessDenied: no",
    )
    assert plan.decisions[sig.digest].reason is Reason.SUBJECT_KEPT
    assert plan.deletions == []


def test_a_referrer_judged_from_its_listing_follows_its_listed_subject() -> None:
    live, old, gone = d("live"), d("old"), d("gone")
    images = [
        Image(live, ("v1",), OLD, 100, OCI_MANIFEST),
        Image(old, (), OLD, 100, OCI_MANIFEST),
        *(
            Image(d(f"sig-{n}"), (), OLD, 100, OCI_MANIFEST, HELM_CONFIG, subject=s)
            for n, s in (("live", live), ("old", old), ("gone", gone))
        ),
    ]
    parsed = {live: Manifest(Kind.IMAGE, OCI_MANIFEST), old: Manifest(Kind.IMAGE, OCI_MANIFEST)}
    plan = make_plan("repo", images, parsed, {}, Policy(), NOW)
    assert plan.decisions[d("sig-live")].reason is Reason.SUBJECT_KEPT
    assert plan.decisions[d("sig-old")].cause == f"refers to {old}, deleted first"
    assert plan.decisions[d("sig-gone")].cause == (
        f"judged from the listing; subject {gone} not in the repository"
    )


def test_a_provisional_plan_deletes_what_only_bytes_can_tell_as_not_read() -> None:
    unread = Image(d("unread"), (), OLD, 100, OCI_MANIFEST, OCI_CONFIG)
    plan = make_plan("repo", [unread], {}, {}, Policy(), NOW, provisional=True)
    assert plan.deletions == [unread.digest]
    assert plan.decisions[unread.digest].cause == "not read"
    final = make_plan("repo", [unread], {}, {}, Policy(), NOW)
    assert (final.decisions[unread.digest].reason, final.decisions[unread.digest].cause) == (
        Reason.UNREADABLE,
        "content not read",
    )


def test_a_kept_accessory_names_the_tag_of_the_subject_that_keeps_it() -> None:
    r = Repo()
    live = r.image("live", tags=("v1",))
    # One manifest tagged as the accessory of two subjects: one gone, then the live one.
    both = r.image("both", tags=(accessory_tag(d("gone")), accessory_tag(live, ".att")))
    decision = r.plan().decisions[both]
    assert (decision.reason, decision.cause) == (Reason.ACCESSORY_OF_KEPT, live)
    assert decision.accessory == accessory_tag(live, ".att")


def test_what_is_kept_for_what_it_is_is_not_live_nor_what_it_keeps() -> None:
    """`live` is for what a root reaches; a manifest kept because it is unknown, out of scope,
    unreadable, not read or on a cycle is not live, and neither is what it keeps."""
    gone = Image(d("gone"), (), OLD, 100, OCI_MANIFEST, OCI_CONFIG)
    unread = Image(d("unread"), (), OLD, 100, OCI_MANIFEST, OCI_CONFIG)
    helm = Image(d("helm"), (), OLD, 100, OCI_MANIFEST, HELM_CONFIG)
    index = Image(d("index"), (), OLD, 100, OCI_INDEX)
    child = Image(d("child"), (), OLD, 100, OCI_MANIFEST, OCI_CONFIG)
    a, b = (Image(d(n), (), OLD, 100, OCI_INDEX) for n in "ab")
    parsed = {
        helm.digest: Manifest(Kind.UNKNOWN, OCI_MANIFEST, note="Helm chart"),
        index.digest: Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(child.digest),)),
        child.digest: Manifest(Kind.ATTESTATION, OCI_MANIFEST),
        # forged: two indexes listing each other
        a.digest: Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(b.digest), Descriptor(child.digest))),
        b.digest: Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(a.digest),)),
    }
    # what describes a manifest kept as not read is kept with it
    described = Image(
        d("described"), (), OLD, 100, OCI_MANIFEST, ATTESTATION_ARTIFACT, subject=unread.digest
    )
    images = [gone, unread, described, helm, index, child, a, b]
    plan = make_plan(
        "repo", images, parsed, {}, Policy(Scope.ATTESTATIONS), NOW, unreadable={gone.digest: "x"}
    )
    decisions = plan.decisions
    assert {d: (decisions[d].reason, decisions[d].cause) for d in (gone.digest, helm.digest)} == {
        gone.digest: (Reason.UNREADABLE, "x"),
        helm.digest: (Reason.UNKNOWN_KIND, "Helm chart"),
    }
    assert decisions[unread.digest].reason is Reason.UNREADABLE
    assert decisions[described.digest].reason is Reason.SUBJECT_KEPT
    assert decisions[index.digest].reason is Reason.OUT_OF_SCOPE
    assert decisions[child.digest].reason is Reason.LISTED_BY_KEPT_INDEX
    assert all(decision.live is False for decision in decisions.values())
    # What only the cycle lists is on it too, and so is what describes a manifest on it.
    sig = Image(d("sig"), (), OLD, 100, OCI_MANIFEST, HELM_CONFIG, subject=a.digest)
    cyclic = make_plan("repo", [a, b, child, sig], parsed, {}, Policy(), NOW).decisions
    assert {d: (cyclic[d].reason, cyclic[d].cause) for d in cyclic} == {
        a.digest: (Reason.REFERENCE_CYCLE, ""),
        b.digest: (Reason.REFERENCE_CYCLE, ""),
        child.digest: (Reason.REFERENCE_CYCLE, ""),
        sig.digest: (Reason.REFERENCE_CYCLE, ""),
    }
    assert all(decision.live is False for decision in cyclic.values())


def test_a_child_an_index_marks_an_attestation_goes_with_the_index_unread() -> None:
    r = Repo()
    img, att = r.image("img"), r.image("att")
    idx = r.index("old", [img, att], attestations=(att,))
    del r.manifests[att]  # the listing and the index entry say enough
    plan = r.plan()
    assert set(plan.deletions) == {idx, img, att}
    assert plan.decisions[att].kind is Kind.ATTESTATION


def test_the_grace_period_ends_exactly_min_age_after_the_push() -> None:
    policy = Policy(min_age=timedelta(hours=72))
    at_the_end = Image(d("at-the-end"), (), NOW - timedelta(hours=72), 100, OCI_MANIFEST)
    just_inside = Image(d("inside"), (), NOW - timedelta(hours=72) + timedelta(seconds=1))
    no_time = Image(d("no-time"), (), None, 100, OCI_MANIFEST)
    parsed = {
        i.digest: Manifest(Kind.IMAGE, OCI_MANIFEST) for i in (at_the_end, just_inside, no_time)
    }
    plan = make_plan("repo", [at_the_end, just_inside, no_time], parsed, {}, policy, NOW)
    assert plan.repository == "repo"
    assert plan.deletions == [at_the_end.digest]
    gone = plan.decisions[at_the_end.digest]
    assert (gone.size, gone.live, gone.expired_by, gone.accessory) == (100, False, "", "")
    assert plan.decisions[just_inside.digest].reason is Reason.YOUNG
    assert (plan.decisions[no_time.digest].reason, plan.decisions[no_time.digest].cause) == (
        Reason.YOUNG,
        "unknown push time",
    )


def test_the_pull_window_ends_exactly_keep_pulled_within_after_the_pull() -> None:
    r = Repo()
    at_the_end = r.image("at-the-end", pulled=NOW - timedelta(days=30))
    inside = r.image("inside", pulled=NOW - timedelta(days=30) + timedelta(seconds=1))
    archived = r.image("archived", archived=True)
    plan = r.plan()
    assert plan.deletions == [at_the_end]
    assert plan.decisions[inside].reason is Reason.PULLED
    assert (plan.decisions[archived].reason, plan.decisions[archived].cause) == (
        Reason.ARCHIVED,
        "",
    )


def test_a_subject_goes_in_a_wave_before_what_describes_it() -> None:
    r = Repo()
    img = r.image("img")
    sig = referrer(r, "sig", img)
    acc = r.image("acc", tags=(accessory_tag(img),))
    plan = r.plan()
    assert plan.waves == ((img,), tuple(sorted((sig, acc))))
    assert plan.referrers == {img: (sig, acc)}


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


# --- what mutation testing found unguarded in code merged from issues 19 and 20 -----------------


def test_an_expired_index_whose_tag_is_in_use_keeps_what_it_lists_live() -> None:
    r = Repo()
    img, att = r.image("img"), r.attestation("att")
    idx = r.index("idx", [img, att], attestations=(att,), tags=("ci-7",))
    held = {idx: "tag ci-7 in use (ecs:task-definition/web:3 container c0)"}
    images = list(r.images.values())
    plan = make_plan(
        "repo", images, r.manifests, {}, Policy(), NOW, expired={idx: "rule 1"}, held=held
    )
    assert plan.deletions == []
    kept = plan.decisions[idx]
    assert (kept.reason, kept.cause, kept.live) == (Reason.TAG_IN_USE, held[idx], True)
    for child in (img, att):
        listed = plan.decisions[child]
        assert (listed.reason, listed.cause, listed.live) == (
            Reason.LISTED_BY_KEPT_INDEX,
            idx,
            True,
        )


@pytest.mark.parametrize(
    ("tags", "rule_selects", "cause"),
    [
        (("v2", "latest"), None, "v2"),  # no retention: the first tag, as listed
        (("ci-9", "release"), "ci-", "release"),  # the tag no rule selects, though listed second
        (("release", "ci-9"), "ci-", "release"),
        (("ci-9", "ci-1"), "ci-", "ci-9"),  # every tag selected: the first, as listed
    ],
    ids=["without-retention", "selected-first", "selected-second", "all-selected"],
)
def test_a_tagged_root_names_the_tag_that_keeps_it(
    tags: tuple[str, ...], rule_selects: str | None, cause: str
) -> None:
    r = Repo()
    img = r.image("img", tags=tags)
    rule_tags = None if rule_selects is None else (lambda tag: tag.startswith(rule_selects))
    images = list(r.images.values())
    plan = make_plan("repo", images, r.manifests, {}, Policy(), NOW, rule_tags=rule_tags)
    assert (plan.decisions[img].reason, plan.decisions[img].cause) == (Reason.TAGGED, cause)


def test_an_image_tagged_with_its_own_digest_is_a_tagged_root_not_an_accessory() -> None:
    # A mirror's convention, in a repository that holds a real accessory: the own-digest tag is
    # an ordinary tag (model.accessory_of), so the image is a root and no accessory of itself.
    r = Repo()
    mirrored = r.image("mirrored")
    own = accessory_tag(mirrored, "")
    r.images[mirrored] = replace(r.images[mirrored], tags=(own,))
    subject = r.image("subject")
    signature = r.image("signature", tags=(accessory_tag(subject),))
    plan = r.plan()
    kept = plan.decisions[mirrored]
    assert (kept.verdict, kept.reason, kept.cause, kept.accessory) == (
        Verdict.KEEP,
        Reason.TAGGED,
        own,
        "",
    )
    assert set(plan.deletions) == {subject, signature}


def test_a_subject_with_a_signature_and_a_looping_referrer_index_goes_in_order() -> None:
    """The looping referrer is the subject's second describer: the cycle is found however many
    edges leave the subject before the one that closes it."""
    r = Repo()
    subject = r.image("subject")
    signature = referrer(r, "signature", subject)
    looped = r.index("referrer index", [subject])
    r.manifests[looped] = Manifest(
        Kind.REFERRER, OCI_INDEX, references=(Descriptor(subject, OCI_MANIFEST),), subject=subject
    )
    plan = r.plan()
    wave = {digest: n for n, members in enumerate(plan.waves) for digest in members}
    assert set(plan.deletions) == {subject, signature, looped}
    assert wave[looped] < wave[subject] < wave[signature]


def test_components_finished_earlier_are_not_joined_by_a_later_edge_into_them() -> None:
    """A cycle elsewhere makes the planner look for cycles: an index listing an image whose
    signature was ordered first must still be its own component, and go before its child."""
    r = Repo()
    image = r.image("image")
    signature = referrer(r, "signature", image)
    index = r.index("index", [image])
    index_signature = referrer(r, "index signature", index)
    subject = r.image("subject")
    looped = r.index("referrer index", [subject])
    r.manifests[looped] = Manifest(
        Kind.REFERRER, OCI_INDEX, references=(Descriptor(subject, OCI_MANIFEST),), subject=subject
    )
    plan = r.plan()
    wave = {digest: n for n, members in enumerate(plan.waves) for digest in members}
    assert set(plan.deletions) == {image, signature, index, index_signature, subject, looped}
    assert wave[index] < wave[image] < wave[signature]
    assert wave[index] < wave[index_signature]
    assert wave[looped] < wave[subject]


def test_referrers_naming_each_other_go_together_and_neither_claims_the_other_went_first() -> None:
    r = Repo()
    first, second = d("first"), d("second")
    referrer(r, "first", second)
    referrer(r, "second", first)
    plan = r.plan()
    assert set(plan.deletions) == {first, second}
    assert plan.waves == (tuple(sorted((first, second))),)
    for digest in (first, second):
        assert "deleted first" not in plan.decisions[digest].cause


def test_an_accessory_a_mirror_also_tagged_with_its_own_digest_is_a_tagged_root() -> None:
    r = Repo()
    subject = r.image("subject")
    signature = r.image("signature")
    own = accessory_tag(signature, "")
    r.images[signature] = replace(r.images[signature], tags=(accessory_tag(subject), own))
    plan = r.plan()
    kept = plan.decisions[signature]
    assert (kept.verdict, kept.reason, kept.cause) == (Verdict.KEEP, Reason.TAGGED, own)
    assert plan.deletions == [subject]
