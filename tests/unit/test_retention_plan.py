"""Retention in the plan: an expired image's tags stop being roots, and the graph decides.

Each scenario builds buildx builds (a tagged index listing its platform image and attestation),
runs the evaluator on the top-level images as the run will, and plans with what it expired."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sweeper.explain import path, render, short
from sweeper.lifecycle import expire, parse_rules, retention_section, top_level
from sweeper.model import (
    Decision,
    Descriptor,
    Image,
    Kind,
    Manifest,
    Pin,
    Plan,
    Reason,
    Scope,
    Verdict,
)
from sweeper.plan import Policy, make_plan, may_delete

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
KEEP_2 = "rule 1: keep 2 CI builds"
RULES = parse_rules(
    [
        {
            "rulePriority": 1,
            "description": "keep 2 CI builds",
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": ["ci-"],
                "countType": "imageCountMoreThan",
                "countNumber": 2,
            },
            "action": {"type": "expire"},
        }
    ],
    "retention[0].rules",
)
ATTESTATION_ENTRY = {"vnd.docker.reference.type": "attestation-manifest"}


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class Repo:
    """Builds in push order; `build(n)` is n days old unless `days` says otherwise."""

    def __init__(self) -> None:
        self.images: dict[str, Image] = {}
        self.manifests: dict[str, Manifest] = {}

    def build(
        self,
        name: str,
        *tags: str,
        days: float,
        pulled: float | None = None,
        shares_image_with: str | None = None,
    ) -> str:
        pushed = NOW - timedelta(days=days)
        image = d(f"{shares_image_with or name}/image")
        attestation = d(f"{name}/attestation")
        if image not in self.images:
            self.images[image] = Image(image, (), pushed, 100, OCI_MANIFEST)
            self.manifests[image] = Manifest(Kind.IMAGE, OCI_MANIFEST)
        self.images[attestation] = Image(attestation, (), pushed, 10, OCI_MANIFEST)
        self.manifests[attestation] = Manifest(Kind.ATTESTATION, OCI_MANIFEST)
        index = d(f"{name}/index")
        last_pulled = NOW - timedelta(days=pulled) if pulled is not None else None
        self.images[index] = Image(index, tags, pushed, 100, OCI_INDEX, last_pulled=last_pulled)
        self.manifests[index] = Manifest(
            Kind.INDEX,
            OCI_INDEX,
            (Descriptor(image), Descriptor(attestation, annotations=ATTESTATION_ENTRY)),
        )
        return index

    def nest(self, name: str, child: str, *tags: str) -> str:
        """An index listing another index (as `docker buildx imagetools create` can make)."""
        outer = d(name)
        self.images[outer] = Image(outer, tags, NOW - timedelta(days=20), 100, OCI_INDEX)
        self.manifests[outer] = Manifest(Kind.INDEX, OCI_INDEX, (Descriptor(child),))
        return outer

    def children(self, index: str) -> list[str]:
        return [ref.digest for ref in self.manifests[index].references]

    def expired(self) -> dict[str, str]:
        images = list(self.images.values())
        return expire(RULES, top_level(images, self.manifests), NOW)

    def plan(self, pins: tuple[str, ...] = (), expired: dict[str, str] | None = None) -> Plan:
        return make_plan(
            "app",
            list(self.images.values()),
            self.manifests,
            {p: Pin(p, "ecs:task-definition/web:7") for p in pins},
            Policy(Scope.ORPHANS, keep_pulled_within=timedelta(days=30)),
            NOW,
            expired=self.expired() if expired is None else expired,
        )


def ci_builds(repo: Repo, count: int, *, newest_days: float = 5) -> list[str]:
    """`count` more CI builds (`ci-new-<i>`), a day apart, the newest `newest_days` old; oldest
    first."""
    return [
        repo.build(f"new-{i}", f"ci-new-{i}", days=newest_days + count - 1 - i)
        for i in range(count)
    ]


def test_an_expired_ci_build_goes_with_its_children_parents_first() -> None:
    repo = Repo()
    old, *kept = ci_builds(repo, 3)
    plan = repo.plan()
    assert plan.waves == ((old,), tuple(sorted(repo.children(old))))
    index = plan.decisions[old]
    assert (index.verdict, index.reason, index.cause) == (Verdict.DELETE, Reason.EXPIRED, KEEP_2)
    assert index.expired_by == KEEP_2
    for child in repo.children(old):
        decision = plan.decisions[child]
        assert (decision.reason, decision.cause) == (
            Reason.UNREACHABLE,
            f"listed only by {old}, deleted first",
        )
    assert all(plan.decisions[k].reason is Reason.TAGGED for k in kept)


HOLDS: list[tuple[str, float | None, bool, bool, Reason, str]] = [
    # scenario, pulled (days ago), pinned, young, the reason that holds it, its cause
    ("pinned", None, True, False, Reason.PINNED, "ecs:task-definition/web:7"),
    ("pulled yesterday", 1, False, False, Reason.PULLED, "2026-11-25T03:00:00+00:00"),
    ("in the grace period", None, False, True, Reason.YOUNG, "2026-11-24T03:00:00+00:00"),
]


def test_an_expired_build_that_something_holds_keeps_its_tags_and_children() -> None:
    for scenario, pulled, pinned, young, reason, cause in HOLDS:
        repo = Repo()
        held = repo.build("ci-0", "ci-0", days=2 if young else 40, pulled=pulled)
        ci_builds(repo, 2, newest_days=0.1 if young else 5)  # two newer builds: ci-0 is third
        assert repo.expired() == {held: KEEP_2}, scenario
        plan = repo.plan(pins=(held,) if pinned else ())
        decision = plan.decisions[held]
        assert (decision.verdict, decision.reason, decision.cause) == (
            Verdict.KEEP,
            reason,
            cause,
        ), scenario
        assert decision.expired_by == KEEP_2, scenario
        for child in repo.children(held):  # kept by the index, or young themselves
            assert plan.decisions[child].verdict is Verdict.KEEP, scenario
        assert plan.deletions == [], scenario
        assert repo.images[held].tags == ("ci-0",), scenario  # nothing untags it


def test_an_expired_index_listed_by_a_kept_index_is_held_by_it() -> None:
    repo = Repo()
    inner = repo.build("ci-0", "ci-0", days=30)
    outer = repo.nest("release", inner, "v1")
    plan = repo.plan(expired={inner: KEEP_2})
    decision = plan.decisions[inner]
    assert (decision.reason, decision.cause, decision.expired_by) == (
        Reason.LISTED_BY_KEPT_INDEX,
        outer,
        KEEP_2,
    )
    assert plan.deletions == []


def test_a_release_tag_on_a_ci_build_keeps_the_build() -> None:
    repo = Repo()
    promoted = repo.build("ci-0", "ci-0", "v1.4.0", days=40)
    plain = repo.build("ci-1", "ci-1", days=30)
    ci_builds(repo, 2)
    assert repo.expired() == {plain: KEEP_2}
    plan = repo.plan()
    assert plan.decisions[promoted].reason is Reason.TAGGED
    assert plan.decisions[promoted].expired_by == ""
    assert set(plan.deletions) == {plain, *repo.children(plain)}


def test_a_child_shared_with_a_kept_build_stays() -> None:
    repo = Repo()
    old = repo.build("ci-0", "ci-0", days=30)
    repo.build("ci-1", "ci-1", days=20)
    repo.build("ci-2", "ci-2", days=10, shares_image_with="ci-0")  # a rebuild, same platform image
    plan = repo.plan()
    shared = d("ci-0/image")
    assert plan.decisions[old].reason is Reason.EXPIRED
    assert plan.decisions[shared].reason is Reason.LISTED_BY_KEPT_INDEX
    assert set(plan.deletions) == {old, d("ci-0/attestation")}


def test_without_retention_nothing_tagged_is_deletable() -> None:
    repo = Repo()
    old, *_ = ci_builds(repo, 3)
    plan = repo.plan(expired={})
    assert plan.deletions == []
    image = repo.images[old]
    policy = Policy(Scope.ORPHANS)
    assert not may_delete(image, {}, policy, NOW)
    assert may_delete(image, {}, policy, NOW, expired={old})


def test_the_retention_section_counts_what_went_and_what_held_it() -> None:
    repo = Repo()
    pinned = repo.build("ci-0", "ci-0", days=40)
    pulled = repo.build("ci-1", "ci-1", days=39, pulled=2)
    gone = repo.build("ci-2", "ci-2", days=38)
    ci_builds(repo, 2)
    plan = repo.plan(pins=(pinned,))
    expired = repo.expired()
    assert set(expired) == {pinned, pulled, gone}
    section = retention_section([(plan.decisions, expired), ({}, {})])
    assert section == {
        "expired": 3,
        "deleted": 1,
        "held": {"pinned": 1, "recently-pulled": 1},
    }


def test_an_expired_digest_the_plan_has_no_decision_on_hides_none_of_the_others() -> None:
    """Gone between the listing and the plan: not counted, and what follows it still is."""
    deleted = Decision(d("b"), Kind.INDEX, Verdict.DELETE, Reason.EXPIRED)
    pinned = Decision(d("c"), Kind.INDEX, Verdict.KEEP, Reason.PINNED)
    decisions = {d("b"): deleted, d("c"): pinned}
    section = retention_section([(decisions, [d("a"), d("b"), d("c")])])
    assert section == {"expired": 2, "deleted": 1, "held": {"pinned": 1}}


def test_explain_says_an_expired_image_is_held_and_by_what() -> None:
    repo = Repo()
    held = repo.build("ci-0", "ci-0", days=40)
    gone = repo.build("ci-1", "ci-1", days=39)
    ci_builds(repo, 2)
    plan = repo.plan(pins=(held,))
    assert render(path(plan.decisions, held)) == (
        f"{short(held)} (index, expired by {KEEP_2}, held) <- pinned (ecs:task-definition/web:7)"
    )
    child = repo.children(held)[0]
    assert render(path(plan.decisions, child)).endswith(
        f"{short(held)} <- pinned (ecs:task-definition/web:7)"
    )
    assert render(path(plan.decisions, gone, plan.children)) == (
        f"{short(gone)} (index) <- expired by {KEEP_2}, and no other tag, pin, grace period, "
        "pull or kept manifest holds it"
    )
    attestation = d("ci-1/attestation")
    assert render(path(plan.decisions, attestation, plan.children)).startswith(
        f"{short(attestation)} (attestation) <- listed only by index {short(gone)}, deleted first"
        f" <- expired by {KEEP_2}"
    )
