"""End to end: the handler, in-process, against the corrected moto registry.

Each test is a scenario named for what it shows, and asserts on what is left in the registry.
"""

from __future__ import annotations

import json
import pathlib
from datetime import timedelta

import pytest

from conftest import NOW, OLD, Invoke
from harness import FakeRegistry, oci
from sweeper.settings import InvalidSettings

REPO = "app"


def test_tagged_index_keeps_its_children(registry: FakeRegistry, invoke: Invoke) -> None:
    build = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, sbom=True)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == build.all
    assert report["deleted"]["manifests"] == 0
    assert report["kept"] == {"listed-by-kept-index": 2, "tagged": 1}


def test_the_default_reclaims_the_old_tree_of_a_moved_tag_parents_first(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
    assert registry.digests(REPO) == old.all | new.all  # the move left the old tree untagged
    report = invoke(dry_run=False)  # no scope: the default
    assert registry.digests(REPO) == new.all
    assert report["deleted"]["manifests"] == 3
    # Parents first: the index is in the first listed (and deleted) position.
    assert report["deletions"][0]["digest"] == old.index


def test_after_a_tag_moves_attestations_scope_keeps_what_the_old_index_lists(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    report = invoke(dry_run=False, scope="attestations")
    assert registry.digests(REPO) == old.all | new.all
    assert report["kept"]["out-of-scope"] == 1


def test_parentless_old_attestation_goes_in_attestations_scope(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    build = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    image = oci.image_manifest("orphan")
    att = oci.legacy_attestation(image.digest, seed="orphan")
    registry.push(REPO, image, pushed_at=OLD)
    registry.push(REPO, att, pushed_at=OLD)
    report = invoke(dry_run=False, scope="attestations")
    assert registry.digests(REPO) == build.all | {image.digest}
    assert [d["kind"] for d in report["deletions"]] == ["attestation"]


def test_artifact_attestation_without_its_index_goes_with_its_subject_in_orphans_scope(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    image = oci.image_manifest("img")
    registry.push(REPO, image, pushed_at=OLD)
    att = registry.push(REPO, oci.artifact_attestation(image, seed="a"), pushed_at=OLD)
    invoke(dry_run=False, scope="attestations")
    assert registry.exists(REPO, att)  # its subject survives in attestations scope
    invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == set()


def test_child_shared_by_a_live_and_an_orphan_index_survives(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, shared_images_from=old)
    invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == new.all
    assert old.images["linux/amd64"] in registry.digests(REPO)


def test_pinned_untagged_index_keeps_its_children(registry: FakeRegistry, invoke: Invoke) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    uri = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPO}@{old.index}"
    report = invoke(dry_run=False, scope="orphans", pins=[uri])
    assert registry.digests(REPO) == old.all | new.all
    assert report["kept"]["pinned"] == 1


def test_pins_from_the_environment_are_honoured(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    monkeypatch.setenv("PINS", f"other@sha256:{'b' * 64}, {REPO}@{old.index}")
    invoke(dry_run=False, scope="orphans")
    assert old.all <= registry.digests(REPO)


def test_young_orphan_is_kept(registry: FakeRegistry, invoke: Invoke) -> None:
    young = registry.push_buildx(REPO, tag="latest", pushed_at=NOW - timedelta(hours=2))
    registry.push_buildx(REPO, tag="latest", pushed_at=NOW - timedelta(hours=1))
    report = invoke(dry_run=False, scope="orphans")
    assert young.all <= registry.digests(REPO)
    assert report["kept"] == {"tagged": 1, "within-grace-period": 5}
    invoke(dry_run=False, scope="orphans", min_age_hours=1)
    assert not young.all & registry.digests(REPO)


def test_referrer_of_a_live_subject_stays_and_of_an_orphan_subject_goes(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    live = oci.image_manifest("live")
    dead = oci.image_manifest("dead")
    registry.push(REPO, live, tags=["v1"], pushed_at=OLD)
    registry.push(REPO, dead, pushed_at=OLD)
    signatures = {
        registry.push(REPO, oci.cosign_signature(live), pushed_at=OLD),
        registry.push(REPO, oci.notation_signature(live), pushed_at=OLD),
    }
    doomed = {
        registry.push(REPO, oci.cosign_signature(dead), pushed_at=OLD),
        registry.push(REPO, oci.sbom_referrer(dead), pushed_at=OLD),
    }
    invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == {live.digest} | signatures
    assert not doomed & registry.digests(REPO)


def test_helm_charts_and_unknown_manifests_stay(registry: FakeRegistry, invoke: Invoke) -> None:
    kept = {
        registry.push(REPO, oci.helm_chart("web"), pushed_at=OLD),
        registry.seed(REPO, oci.unparseable(), pushed_at=OLD),
        registry.seed(REPO, oci.buildkit_cache_manifest(), pushed_at=OLD),
    }
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == kept
    assert report["kept"] == {"unknown-kind": 3}


def test_archived_manifests_stay_and_protect_their_children(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    build = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
    registry.set_archived(REPO, build.index)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == build.all
    assert report["kept"]["archived"] == 1


def test_docker_manifest_list_and_nested_index_go_parents_first(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    amd = oci.image_manifest("amd", docker=True)
    arm = oci.image_manifest("arm", docker=True, platform="linux/arm64")
    for image in (amd, arm):
        registry.push(REPO, image, pushed_at=OLD)
    listing = oci.manifest_list(
        [amd.descriptor(platform="linux/amd64"), arm.descriptor(platform="linux/arm64")]
    )
    registry.push(REPO, listing, pushed_at=OLD)
    outer = registry.push(REPO, oci.nested_index([listing]), pushed_at=OLD)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == set()
    order = [d["digest"] for d in report["deletions"]]
    assert order.index(outer) < order.index(listing.digest) < order.index(amd.digest)


def test_dry_run_plans_exactly_what_the_real_run_deletes(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    for i in range(4):
        registry.push_buildx(
            REPO,
            tag="latest",
            pushed_at=OLD,
            sbom=i % 2 == 0,
            attestation="artifact" if i % 2 else "legacy",
            platforms=("linux/amd64", "linux/arm64"),
        )
    before = registry.digests(REPO)
    dry = invoke(dry_run=True, scope="orphans")
    assert registry.digests(REPO) == before
    assert dry["deleted"] == {"manifests": 0, "bytes": 0, "bytes_freed": 0}
    real = invoke(dry_run=False, scope="orphans")
    planned = {d["digest"] for d in dry["deletions"]}
    assert planned == before - registry.digests(REPO)
    assert real["deleted"] == dry["planned"]
    again = invoke(dry_run=False, scope="orphans")
    assert again["planned"]["manifests"] == 0


def test_scheduled_event_runs_with_the_environment_settings(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    event = json.loads(pathlib.Path("events/scheduled.json").read_text())
    report = invoke(event)
    assert report["dry_run"] is True  # DRY_RUN unset: the default is a dry run
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("SCOPE", "orphans")
    invoke(event)
    assert registry.digests(REPO) == new.all


def test_repository_patterns_select_and_exclude(registry: FakeRegistry, invoke: Invoke) -> None:
    for repo in ("team-a/web", "team-a/api", "team-b/web"):
        registry.push_buildx(repo, tag="latest", pushed_at=OLD)
        registry.push_buildx(repo, tag="latest", pushed_at=OLD)
    report = invoke(
        dry_run=False, scope="orphans", repositories=["team-a/*"], exclude_repositories=["*/api"]
    )
    assert report["repositories"] == 1
    assert len(registry.digests("team-a/web")) == 3
    assert len(registry.digests("team-a/api")) == 6
    assert len(registry.digests("team-b/web")) == 6


@pytest.mark.parametrize(
    "event",
    [{"dry_run": "no"}, {"scope": "all"}, {"pins": ["latest"]}, {"surprise": 1}, [1, 2]],
    ids=["string-bool", "bad-scope", "bad-pin", "unknown-field", "not-an-object"],
)
def test_bad_input_deletes_nothing(registry: FakeRegistry, invoke: Invoke, event: object) -> None:
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    before = registry.digests(REPO)
    with pytest.raises(InvalidSettings):
        invoke(event)
    assert registry.digests(REPO) == before


def test_unreadable_archived_index_keeps_what_was_pushed_before_it_and_the_rest_goes(
    invoke: Invoke,
) -> None:
    """Whether ECR serves an archived manifest's bytes is undocumented. If it does not, the
    archived index may list anything pushed at or before it (ECR refuses an index whose children
    are missing), so that is kept; what was pushed after it cannot be its child, and goes."""
    with FakeRegistry(archived_manifests_readable=False) as fake:
        before = fake.push_buildx(REPO, tag=None, pushed_at=OLD - timedelta(days=2))
        archived = fake.push_buildx(REPO, tag=None, pushed_at=OLD - timedelta(days=1))
        fake.set_archived(REPO, archived.index)
        fake.push_buildx(REPO, tag=None, pushed_at=OLD)  # an orphan pushed after it
        fake.push_buildx("other", tag="latest", pushed_at=OLD)
        other_new = fake.push_buildx("other", tag="latest", pushed_at=OLD)
        report = invoke(dry_run=False, scope="orphans")
        assert fake.digests(REPO) == archived.all | before.all
        assert fake.digests("other") == other_new.all
        assert report["complete"] is True
        assert report["failures"] == []
        assert report["kept"]["unreadable"] == len(before.all | archived.all) - 1
