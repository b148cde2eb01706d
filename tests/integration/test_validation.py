"""After sweeping, the run checks the repositories it changed: scenarios, in-process handler.

The sweeper never leaves an index without a child; these states are made behind ECR's back
(harness.breakage), as another tool or an incident would, to show that the run reports them.
"""

from __future__ import annotations

from datetime import timedelta

from conftest import NOW, OLD, Invoke
from harness import FakeRegistry, oci
from harness.breakage import remove_behind_ecr

REPO = "app"


def test_a_sweep_reports_a_broken_index_in_the_repository_it_swept(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    release = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    lost = release.attestations["linux/amd64"]
    remove_behind_ecr(registry, REPO, lost)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == new.all | release.all - {lost}  # reported, not "repaired"
    assert report["validated"] == 1
    assert report["broken"] == [
        {
            "repository": REPO,
            "digest": release.index,
            "kind": "index",
            "problem": "missing-child",
            "missing": [lost],
        }
    ]
    assert report["complete"] is True  # not this run's doing: the run itself went as planned


def test_a_clean_sweep_validates_and_finds_nothing(registry: FakeRegistry, invoke: Invoke) -> None:
    builds = [
        registry.push_buildx(
            REPO, tag="latest", pushed_at=OLD, platforms=("linux/amd64", "linux/arm64"),
            attestation="artifact",
        )
        for _ in range(3)
    ]  # fmt: skip
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds[-1].all  # the two untagged trees went, whole
    assert report["deleted"]["manifests"] == 10
    assert (report["validated"], report["broken"]) == (1, [])


def test_dry_runs_and_untouched_repositories_are_not_rechecked(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    quiet = registry.push_buildx("quiet", tag="latest", pushed_at=OLD)
    remove_behind_ecr(registry, "quiet", quiet.attestations["linux/amd64"])
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    quiet_before = registry.digests("quiet")
    dry = invoke(dry_run=True, scope="orphans")
    assert (dry["validated"], dry["broken"]) == (0, [])
    assert registry.digests(REPO) == old.all | new.all
    real = invoke(dry_run=False, scope="orphans")
    assert (real["validated"], real["broken"]) == (1, [])  # "quiet" lost nothing: not re-listed
    assert registry.digests(REPO) == new.all
    assert registry.digests("quiet") == quiet_before


def test_a_young_referrer_of_a_deleted_subject_is_reported_dangling(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    image = oci.image_manifest("old")
    registry.push(REPO, image, pushed_at=OLD)
    signature = registry.push(REPO, oci.cosign_signature(image), pushed_at=NOW - timedelta(hours=1))
    report = invoke(dry_run=False, scope="orphans")
    # A referrer does not keep its subject alive; the young one stays, and is reported.
    assert registry.digests(REPO) == {signature}
    assert [(b["digest"], b["problem"]) for b in report["broken"]] == [
        (signature, "missing-subject")
    ]
