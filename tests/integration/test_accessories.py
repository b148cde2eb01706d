"""Tag-scheme accessories end to end: cosign's `sha256-<hex>.sig|.att|.sbom` and the referrers
tag schema's fallback index `sha256-<hex>` follow their subject, in the default scope.

Each scenario builds a registry and says what must go; the dry run must plan exactly that, and
the real run must leave exactly the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from conftest import NOW, OLD, Invoke
from harness import FakeRegistry, oci
from sweeper.model import Verdict
from sweeper.registry import EcrRegistry
from sweeper.run import RepositoryRun, RunOptions, Sweeper
from sweeper.settings import Settings

REPO = "app"
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SUFFIXES = (".sig", ".att", ".sbom")


@dataclass
class Outcome:
    """What a scenario expects of a run in the default scope."""

    goes: set[str] = field(default_factory=set)
    kept: dict[str, int] = field(default_factory=dict)  # kept reasons that must be counted
    causes: dict[str, str] = field(default_factory=dict)  # deletion -> text its cause holds
    request: dict[str, Any] = field(default_factory=dict)


def sign(
    reg: FakeRegistry, subject: str, *, suffixes: tuple[str, ...] = SUFFIXES, **kw: Any
) -> set[str]:
    """cosign's accessories of `subject`, each under its tag."""
    return {
        reg.push(
            REPO,
            oci.cosign_legacy(subject, suffix, seed=subject),
            tags=[oci.accessory_tag(subject, suffix)],
            **{"pushed_at": OLD, **kw},
        )
        for suffix in suffixes
    }


def signature_of_a_live_image_stays(reg: FakeRegistry) -> Outcome:
    build = reg.push_buildx(REPO, tag="v1", pushed_at=OLD)
    sign(reg, build.index)
    return Outcome(kept={"accessory-of-kept": 3, "tagged": 1})


def accessories_of_a_collected_build_go_with_it(reg: FakeRegistry) -> Outcome:
    old = reg.push_buildx(REPO, tag="latest", pushed_at=OLD)
    old_signatures = sign(reg, old.index)
    new = reg.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
    sign(reg, new.index)
    causes = dict.fromkeys(old_signatures, f"accessory of {old.index}, deleted first")
    return Outcome(goes=set(old.all) | old_signatures, causes=causes)


def accessory_whose_subject_is_long_gone_goes(reg: FakeRegistry) -> Outcome:
    build = reg.push_buildx(REPO, tag="v1", pushed_at=OLD)
    sign(reg, build.index, suffixes=(".sig",))
    gone = oci.sha256_digest("an image deleted long ago")
    orphans = sign(reg, gone)
    causes = dict.fromkeys(orphans, f"accessory of {gone}, not in the repository")
    return Outcome(goes=orphans, causes=causes)


def young_or_pinned_accessory_stays(reg: FakeRegistry) -> Outcome:
    old = reg.push_buildx(REPO, tag="latest", pushed_at=OLD)
    reg.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
    sign(reg, old.index, suffixes=(".sig",), pushed_at=NOW - timedelta(hours=1))
    (pinned,) = sign(reg, old.index, suffixes=(".att",))
    return Outcome(
        goes=set(old.all),
        kept={"within-grace-period": 1, "pinned": 1},
        request={"pins": [f"{HOST}/{REPO}@{pinned}"]},
    )


def accessory_of_a_platform_child_of_a_live_index_stays(reg: FakeRegistry) -> Outcome:
    build = reg.push_buildx(REPO, tag="v1", pushed_at=OLD, platforms=("linux/amd64", "linux/arm64"))
    sign(reg, build.images["linux/arm64"], suffixes=(".sig",))
    return Outcome(kept={"accessory-of-kept": 1})


def referrers_fallback_index_and_what_it_lists_follow_their_subject(reg: FakeRegistry) -> Outcome:
    def attach(build: Any) -> set[str]:
        subject = oci.Manifest(reg.manifest(REPO, build.index), oci.OCI_INDEX)
        signature = oci.cosign_signature(subject, seed=build.index)
        reg.push(REPO, signature, pushed_at=OLD)
        fallback = reg.push(
            REPO,
            oci.referrers_fallback_index([signature]),
            tags=[oci.accessory_tag(build.index, "")],
            pushed_at=OLD,
        )
        return {signature.digest, fallback}

    old = reg.push_buildx(REPO, tag="latest", pushed_at=OLD)
    old_attached = attach(old)
    new = reg.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
    attach(new)
    return Outcome(goes=set(old.all) | old_attached, kept={"accessory-of-kept": 1})


def sha256_latest_is_an_ordinary_tag(reg: FakeRegistry) -> Outcome:
    build = reg.push_buildx(REPO, tag="v1", pushed_at=OLD)
    sign(reg, build.index, suffixes=(".sig",))  # accessory tags count in this repository
    reg.push(REPO, oci.image_manifest("odd"), tags=["sha256-latest"], pushed_at=OLD)
    return Outcome(kept={"tagged": 2, "accessory-of-kept": 1})


def a_repository_of_signatures_only_keeps_them(reg: FakeRegistry) -> Outcome:
    """cosign's COSIGN_REPOSITORY: the subjects live in another repository."""
    for i in range(3):
        sign(reg, oci.sha256_digest(f"an image of another repository {i}"))
    return Outcome(kept={"tagged": 9})


def a_countersigned_signature_in_a_repository_of_signatures_keeps_both(
    reg: FakeRegistry,
) -> Outcome:
    """COSIGN_REPOSITORY again, where one signature is itself signed: its subject is in the
    repository, but is an accessory too, so no subject of this repository's accessories lives
    here and every tag stays an ordinary tag."""
    (signature,) = sign(
        reg, oci.sha256_digest("an image of another repository"), suffixes=(".sig",)
    )
    sign(reg, signature, suffixes=(".sig",))
    return Outcome(kept={"tagged": 2})


Scenario = Callable[[FakeRegistry], Outcome]
SCENARIOS: list[Scenario] = [
    signature_of_a_live_image_stays,
    accessories_of_a_collected_build_go_with_it,
    accessory_whose_subject_is_long_gone_goes,
    young_or_pinned_accessory_stays,
    accessory_of_a_platform_child_of_a_live_index_stays,
    referrers_fallback_index_and_what_it_lists_follow_their_subject,
    sha256_latest_is_an_ordinary_tag,
    a_repository_of_signatures_only_keeps_them,
    a_countersigned_signature_in_a_repository_of_signatures_keeps_both,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_dry_run_plans_what_follows_the_subjects(
    registry: FakeRegistry, invoke: Invoke, scenario: Scenario
) -> None:
    outcome = scenario(registry)
    before = registry.digests(REPO)
    report = invoke(dry_run=True, **outcome.request)
    assert registry.digests(REPO) == before
    assert report["complete"], report["failures"]
    planned = {entry["digest"]: entry for entry in report["deletions"]}
    assert set(planned) == outcome.goes
    assert {r: report["kept"].get(r, 0) for r in outcome.kept} == outcome.kept
    for digest, text in outcome.causes.items():
        assert planned[digest]["cause"] == text


@pytest.mark.parametrize(
    "scenario",
    SCENARIOS,
    ids=lambda s: s.__name__,
)
def test_real_run_leaves_what_follows_the_subjects(
    registry: FakeRegistry, invoke: Invoke, scenario: Scenario
) -> None:
    outcome = scenario(registry)
    before = registry.digests(REPO)
    report = invoke(dry_run=False, **outcome.request)
    assert registry.digests(REPO) == before - outcome.goes
    assert report["complete"], report["failures"]
    assert report["broken"] == []
    again = invoke(dry_run=True, **outcome.request)
    assert again["planned"]["manifests"] == 0


@pytest.mark.parametrize("form", ["accessory", "referrer"])
def test_a_subject_pushed_after_the_scan_keeps_what_rests_on_its_absence(
    registry: FakeRegistry, form: str
) -> None:
    """The listing said the subject was absent; it is there by the time the batch goes (pushed
    between the scan and the delete): the plan's `absent_subjects` make the sweep read it first,
    find it, and keep the manifest that rests on its absence, naming it."""
    live = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    sign(registry, live.index, suffixes=(".sig",))
    late = oci.image_manifest("pushed after the scan")
    if form == "accessory":
        (waiting,) = sign(registry, late.digest, suffixes=(".sig",))
    else:
        waiting = registry.push(REPO, oci.cosign_signature(late), pushed_at=OLD)

    def push_the_subject(repos: list[RepositoryRun]) -> bool:
        (repo,) = repos
        assert repo.absent_subjects == {waiting: (late.digest,)}
        registry.push(REPO, late, pushed_at=OLD)
        return True

    finished: list[RepositoryRun] = []
    options = RunOptions(confirm=push_the_subject, on_repository_done=finished.append)
    Sweeper(EcrRegistry(registry.client), Settings(dry_run=False), NOW, options).run()
    assert registry.exists(REPO, waiting)
    (repo,) = finished
    decision = repo.decisions[waiting]
    assert (decision.verdict, decision.cause) == (Verdict.KEEP, late.digest)
