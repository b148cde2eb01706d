"""Retention and the audit, end to end through the pure core, on CI repositories in the corrected
moto: listed and read by Registry as the run will, planned by make_plan with what retention
expired. (The run, the Lambda and the command wire these same calls; their end-to-end scenario
is theirs.)"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from harness import FakeRegistry
from harness.retention import (
    KEEP_CI,
    PINNED,
    PROMOTED,
    CiRepository,
    retention_request,
    seed_ci_repositories,
)
from sweeper import manifests as m
from sweeper.audit import hazards
from sweeper.lifecycle import (
    expire,
    parse_policy_text,
    policy_for,
    retention_section,
    top_level,
)
from sweeper.model import Image, Manifest, Reason, Verdict
from sweeper.plan import make_plan
from sweeper.registry import EcrRegistry, make_client
from sweeper.settings import Settings, load

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
BUILDS = 150
# The grace period (72 h) over a pace of 1.6 h: the 19 expired builds pushed within it are held.
YOUNG_EXPIRED = 19


@pytest.fixture
def ci(registry: FakeRegistry) -> list[CiRepository]:
    return seed_ci_repositories(registry, NOW, builds=BUILDS)


def snapshot(ecr: EcrRegistry, name: str) -> tuple[list[Image], dict[str, Manifest]]:
    images = ecr.images(name)
    by_digest = {i.digest: i for i in images}
    fetched = ecr.manifests(name, [i.digest for i in images])
    assert fetched.failures == {}
    return images, m.parse_all(fetched.content, by_digest)


def settings_for(repositories: list[CiRepository]) -> Settings:
    return load(retention_request(repositories), {})


def test_the_seed_is_what_the_scenario_says(registry: FakeRegistry, ci: list[CiRepository]) -> None:
    for repository in ci:
        tags = registry.tags(repository.name)
        assert len(repository.builds) == BUILDS
        assert tags["latest"] == tags[f"ci-{BUILDS - 1}"] == repository.latest.index
        assert tags["v1.4.0"] == tags[f"ci-{PROMOTED}"] == repository.promoted.index
        assert len(registry.digests(repository.name)) == 3 * BUILDS  # index, image, attestation
        images = {i.digest: i for i in EcrRegistry(make_client()).images(repository.name)}
        pushed = [images[b.index].pushed_at or NOW for b in repository.builds]
        assert pushed == sorted(pushed)
        assert pushed[0] == NOW - timedelta(days=10) and pushed[-1] < NOW
        assert images[repository.promoted.index].pushed_at == pushed[PROMOTED]  # tagging kept it
        assert images[repository.pulled.index].last_pulled == NOW - timedelta(days=1)
        assert [b.index for b in repository.pinned] == [repository.builds[r].index for r in PINNED]
        text = EcrRegistry(make_client()).lifecycle_policy(repository.name)
        assert (
            text is not None
            and parse_policy_text(text).rules[0].label == "rule 1: keep 25 CI builds"
        )


def test_retention_deletes_old_ci_builds_and_holds_what_is_in_use(ci: list[CiRepository]) -> None:
    ecr = EcrRegistry(make_client())
    settings = settings_for(ci)
    pins = {p.digest: p for p in settings.pins}
    outcomes = []
    for repository in ci:
        images, parsed = snapshot(ecr, repository.name)
        rules = policy_for(settings.retention, repository.name)
        assert rules is not None
        expired = expire(rules, top_level(images, parsed), NOW)
        plan = make_plan(
            repository.name, images, parsed, pins, settings.policy, NOW, expired=expired
        )
        outcomes.append((plan.decisions, expired))
        decisions = plan.decisions
        # 125 CI builds past the newest 25, less the promoted one: its release tag keeps it.
        assert len(expired) == BUILDS - KEEP_CI - 1
        assert repository.promoted.index not in expired
        assert decisions[repository.promoted.index].reason is Reason.TAGGED
        for build in repository.pinned:
            assert decisions[build.index].reason is Reason.PINNED
        assert decisions[repository.pulled.index].reason is Reason.PULLED
        deleted_indexes = {
            d for d, rule in expired.items() if decisions[d].verdict is Verdict.DELETE
        }
        assert {decisions[d].cause for d in deleted_indexes} == {"rule 1: keep 25 CI builds"}
        # Each deleted build goes whole, its index in the first wave, its children after.
        gone = {
            digest
            for build in repository.builds
            if build.index in deleted_indexes
            for digest in build.all
        }
        assert set(plan.deletions) == gone
        assert set(plan.waves[0]) == deleted_indexes
        assert Counter(
            decisions[d].verdict for d in {b.index for b in repository.builds[-KEEP_CI:]}
        ) == {Verdict.KEEP: KEEP_CI}
    section = retention_section(outcomes)
    per_repository_held = len(PINNED) + 1 + YOUNG_EXPIRED  # pins, the pull, the grace period
    assert section == {
        "expired": 2 * (BUILDS - KEEP_CI - 1),
        "deleted": 2 * (BUILDS - KEEP_CI - 1 - per_repository_held),
        "held": {
            "pinned": 2 * len(PINNED),
            "recently-pulled": 2,
            "within-grace-period": 2 * YOUNG_EXPIRED,
        },
    }


def test_the_audit_warns_of_what_ecrs_own_policy_would_take(ci: list[CiRepository]) -> None:
    ecr = EcrRegistry(make_client())
    settings = settings_for(ci)
    pins = {p.digest: p for p in settings.pins}
    for repository in ci:
        images, parsed = snapshot(ecr, repository.name)
        text = ecr.lifecycle_policy(repository.name)
        assert text is not None
        found = hazards(
            repository.name, images, parsed, parse_policy_text(text), pins, settings.policy, NOW
        )
        assert sorted((h.digest, h.reason.value) for h in found) == sorted(
            [(b.index, "pinned") for b in repository.pinned]
            + [
                (repository.pulled.index, "recently-pulled"),
                (repository.promoted.index, "other-tag"),
            ]
        )
        assert {h.rule for h in found} == {1}
        assert {h.repository for h in found} == {repository.name}
