"""Pin-aware retention and the audit of ECR's own lifecycle policies, end to end through the Lambda.

The registry that motivated them: two repositories of single-platform buildx builds with
provenance, 150 CI builds each over ten days, `latest` on the newest, one old build promoted with a
release tag, two runtime pins (in SSM), one old build pulled yesterday, each repository carrying
ECR's "keep 25 CI builds" + "expire untagged after 3 days" (harness.retention).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, Invoke
from harness import FakeRegistry
from harness.faults import Wire, intercept_clients
from harness.generated import lost_children, snapshot
from harness.retention import CI_POLICY, KEEP_CI, PINNED, CiRepository, seed_ci_repositories
from harness.workloads import Workloads
from sweeper.clock import use_clock
from sweeper.model import Pin
from sweeper.registry import EcrRegistry, make_client
from sweeper.run import RunOptions, Sweeper
from sweeper.settings import Settings

GRACE = timedelta(hours=72)


@pytest.fixture
def ci(registry: FakeRegistry, workloads: Workloads) -> Iterator[list[CiRepository]]:
    repositories = seed_ci_repositories(registry, NOW)
    for repository in repositories:
        for n, pin in enumerate(repository.pins):
            workloads.put_parameter(f"/deploy/{repository.name}/{n}", pin)
    with use_clock(lambda: NOW):  # the runs judge ages as of the seed's `now`
        yield repositories


def deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment's environment: retention is the platform team's setting, not a request's."""
    monkeypatch.setenv("SCOPE", "orphans")
    monkeypatch.setenv("RETENTION", json.dumps([{"rules": CI_POLICY["rules"]}]))
    monkeypatch.setenv("PIN_PARAMETER_PATH", "/deploy")


def expected_deletions(repository: CiRepository) -> set[str]:
    """The trees of the CI builds past the newest 25 that nothing holds: not promoted, pinned,
    pulled, or inside the grace period (harness.retention pushes them at an even pace)."""
    held = {repository.promoted.index, repository.pulled.index}
    held |= {build.index for build in repository.pinned}
    total = len(repository.builds)
    pace = timedelta(days=10) / total
    return {
        digest
        for rank, build in enumerate(repository.builds[:-KEEP_CI])
        if build.index not in held and (total - rank) * pace >= GRACE
        for digest in build.all
    }


def test_the_audit_reports_exactly_the_builds_ecr_would_expire_that_are_in_use(
    ci: list[CiRepository], invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIN_PARAMETER_PATH", "/deploy")
    report = invoke(dry_run=True)
    found = {(h["repository"], h["digest"], h["reason"]) for h in report["lifecycle_hazards"]}
    expected = set()
    for repository in ci:
        name = repository.name
        expected |= {(name, build.index, "pinned") for build in repository.pinned}
        expected.add((name, repository.pulled.index, "recently-pulled"))
        expected.add((name, repository.promoted.index, "other-tag"))
    assert found == expected
    rules = {h["rule"] for h in report["lifecycle_hazards"]}
    assert rules == {1}  # "keep 25 CI builds" expires each of them
    assert report["deleted"]["manifests"] == 0


def test_the_audit_alone_reads_the_listing_the_policy_and_the_indexes_and_finds_the_same(
    ci: list[CiRepository], registry: FakeRegistry
) -> None:
    # `ecr-sweeper audit`: the same hazards as a dry run's audit, from fewer reads. A repository
    # without a policy is listed and nothing of it is read; one with a policy has its indexes
    # read (to count images as people mean them), not its platform images or attestations.
    bare = registry.push_buildx("bare", tag=None, pushed_at=NOW - timedelta(days=30), fast=True)
    pins = {build.index: Pin(build.index, "test") for r in ci for build in r.pinned}
    found: dict[bool, list[tuple[str, str, str]]] = {}
    reads: dict[bool, Counter[str]] = {}
    calls: dict[bool, Counter[str]] = {}
    for audit_only in (False, True):
        # As the function's role: the first run registers it, so its reads are not pulls that
        # the second run's audit would count as "recently pulled".
        options = RunOptions(pins=pins, audit_only=audit_only, principal=FUNCTION_PRINCIPAL)
        with intercept_clients(Wire()) as wire:
            report = Sweeper(EcrRegistry(make_client()), Settings(), NOW, options).run()
        assert report.complete
        assert report.planned.manifests == (0 if audit_only else len(bare.all))  # plans nothing
        found[audit_only] = sorted(
            (h.repository, h.digest, h.reason.value) for h in report.lifecycle_hazards
        )
        calls[audit_only] = wire.calls
        reads[audit_only] = Counter(
            image["imageDigest"]
            for attempt in wire.log
            if attempt.operation == "BatchGetImage"
            for image in attempt.params["imageIds"]
        )
    assert found[True] == found[False] and len(found[True]) == 2 * (len(PINNED) + 2)
    indexes = {build.index for r in ci for build in r.builds}
    assert set(reads[True]) == indexes  # each once, and nothing else
    assert set(reads[True].values()) == {1}
    assert not set(reads[True]) & bare.all
    assert calls[True]["GetLifecyclePolicy"] == calls[False]["GetLifecyclePolicy"] == 3
    assert calls[True]["BatchGetImage"] < calls[False]["BatchGetImage"]


def test_retention_deletes_exactly_the_old_build_trees_nothing_holds(
    registry: FakeRegistry,
    ci: list[CiRepository],
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment(monkeypatch)
    names = [repository.name for repository in ci]
    before = snapshot(registry, names)
    expected = {(r.name, d) for r in ci for d in expected_deletions(r)}

    dry = invoke(dry_run=True)
    assert snapshot(registry, names) == before
    assert {(d["repository"], d["digest"]) for d in dry["deletions"]} == expected
    held = dry["retention"]["held"]
    assert held["pinned"] == 2 * len(ci) and held["recently-pulled"] == len(ci)
    assert set(held) == {"pinned", "recently-pulled", "within-grace-period"}

    real = invoke(dry_run=False, max_deletions=len(expected))
    after = snapshot(registry, names)
    assert real["complete"] is True, real["failures"]
    assert {(r, d) for r in names for d in before[r] - after[r]} == expected
    assert real["retention"] == dry["retention"]
    assert lost_children(registry, before, after) == []
    for repository in ci:  # what held a build kept its tags
        tags = registry.tags(repository.name)
        assert tags[repository.release_tag] == repository.promoted.index
        assert tags["latest"] == repository.latest.index
        for build in (*repository.pinned, repository.pulled):
            assert build.all <= after[repository.name]


def test_a_request_previews_retention_in_a_dry_run_and_may_not_apply_it(
    registry: FakeRegistry, ci: list[CiRepository], invoke: Invoke
) -> None:
    rules = [{"rules": CI_POLICY["rules"]}]
    pins = [pin for repository in ci for pin in repository.pins]
    preview = invoke(dry_run=True, scope="orphans", retention=rules, pins=pins)
    assert preview["retention"]["deleted"] > 0
    before = snapshot(registry, [r.name for r in ci])
    with pytest.raises(ValueError, match="retention"):
        invoke(dry_run=False, scope="orphans", retention=rules, pins=pins)
    assert snapshot(registry, [r.name for r in ci]) == before
