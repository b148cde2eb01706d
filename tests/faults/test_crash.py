"""The Lambda killed mid-run: the promise holds wherever it stops, and the next run finishes."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from conftest import Invoke
from harness import oci
from harness.faults import Attempt, Crash, Inject, Killed, Wire, intercept_clients
from harness.fresh import fresh_registry
from harness.generated import (
    OLD,
    Model,
    Oracle,
    broken_promises,
    lost_children,
    registries,
    seed_into,
    snapshot,
)
from sweeper import registry as ecr
from sweeper import run

SHARED_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@SHARED_FIXTURES
@given(
    # Accessories once the sweep deletes the ones it plans (tests/property, the strict xfail).
    model=registries(accessories=False),
    batches=st.integers(min_value=0, max_value=4),
    concurrency=st.sampled_from([1, 8]),
)
def test_a_run_killed_after_k_delete_batches_keeps_the_promise(
    model: Model, batches: int, concurrency: int, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    note(model.describe())
    # Batches of 3: random registries are small, and a crash needs batches to fall between.
    monkeypatch.setattr(ecr, "BATCH_SIZE", 3)
    monkeypatch.setattr(run, "BATCH_SIZE", 3)
    oracle = Oracle(model)
    request: dict[str, Any] = {
        "dry_run": False,
        "scope": "orphans",
        "pins": model.pins,
        "concurrency": concurrency,
    }
    with fresh_registry() as registry:
        seed_into(registry, model, datetime.now(UTC))
        repos = model.repositories
        before = snapshot(registry, repos)
        garbage = {r: oracle.garbage(r, before[r], "orphans") for r in repos}
        wire = Wire(Inject("BatchDeleteImage", Crash(), calls={batches + 1}))
        with intercept_clients(wire), contextlib.suppress(Killed):  # too few batches: no crash
            invoke(**request)
        event("killed" if wire.dead else "fewer batches than the crash point")
        after = snapshot(registry, repos)
        assert broken_promises(oracle, before, after) == []
        for repo in repos:
            assert before[repo] - after[repo] <= garbage[repo]
        assert wire.sent["BatchDeleteImage"] <= batches
        # The next run finishes the job, as if nothing had happened.
        report = invoke(**request)
        assert report["complete"] is True, report["failures"]
        for repo in repos:
            assert registry.digests(repo) == before[repo] - garbage[repo]


# where the Lambda dies -> (operation, which call of it)
CRASH_POINTS = [
    ("while listing", "DescribeImages", 1),
    ("while reading manifests", "BatchGetImage", 1),
    ("while re-reading the first batch", "DescribeImages", 2),
    ("on the first delete", "BatchDeleteImage", 1),
    ("between the index wave and the children", "BatchDeleteImage", 3),
    ("in the middle of the children", "BatchDeleteImage", 5),
]


@pytest.mark.parametrize(
    ("operation", "call"),
    [(op, n) for _, op, n in CRASH_POINTS],
    ids=[name for name, _, _ in CRASH_POINTS],
)
def test_nested_indexes_survive_a_crash_anywhere(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, operation: str, call: int
) -> None:
    """Outer index -> two inner indexes -> images and attestations; three delete waves, small
    batches: a crash can land between any two of them."""
    monkeypatch.setattr(ecr, "BATCH_SIZE", 2)
    monkeypatch.setattr(run, "BATCH_SIZE", 2)
    now = datetime.now(UTC)
    with fresh_registry() as registry:
        kept = registry.push_buildx("app", tag="latest", pushed_at=now - OLD, fast=True)
        inner = []
        for i in range(2):
            build = registry.push_buildx(
                "app",
                tag=None,
                pushed_at=now - OLD,
                platforms=("linux/amd64", "linux/arm64"),
                build_id=f"inner-{i}",
                fast=True,
            )
            inner.append(oci.Manifest(registry.manifest("app", build.index), oci.OCI_INDEX))
        registry.seed("app", oci.nested_index(inner), pushed_at=now - OLD)
        before = {"app": registry.digests("app")}
        wire = Wire(Inject(operation, Crash(), calls={call}))
        with intercept_clients(wire), pytest.raises(Killed):
            invoke(dry_run=False, scope="orphans", concurrency=1)
        after = {"app": registry.digests("app")}
        assert kept.all <= after["app"]
        assert lost_children(registry, before, after) == []
        report = invoke(dry_run=False, scope="orphans")
        assert report["complete"] is True
        assert registry.digests("app") == kept.all


def test_a_crash_mid_run_is_seen_by_nothing_that_follows(invoke: Invoke) -> None:
    """Once killed, no thread of the dead invocation reaches ECR again."""
    now = datetime.now(UTC)
    with fresh_registry() as registry:
        for repo in ("a1", "a2", "a3", "a4"):
            registry.push_buildx(repo, tag="latest", pushed_at=now - OLD, fast=True)
            registry.push_buildx(repo, tag="latest", pushed_at=now - OLD, fast=True)
        seen: list[Attempt] = []
        wire = Wire(Inject("BatchDeleteImage", Crash(), calls={2}), on_attempt=seen.append)
        with intercept_clients(wire), pytest.raises(Killed):
            invoke(dry_run=False, scope="orphans", concurrency=4)
        deletes = [a for a in seen if a.operation == "BatchDeleteImage"]
        assert len(deletes) == wire.sent["BatchDeleteImage"] == 1  # the second one died first
        assert sum(wire.sent.values()) == len(seen)
        assert wire.dead
