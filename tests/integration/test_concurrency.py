"""Many repositories at once: threads share one client and one moto backend, and the outcome is
the one a single thread reaches, decision for decision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conftest import Invoke
from harness import FakeRegistry
from harness.bulk import SyntheticRegistry, load, realistic_registry

NOW = datetime.now(UTC)
ESTATE = realistic_registry(24, 5, now=NOW, seed=3)


def _sweep(estate: SyntheticRegistry, invoke: Invoke, concurrency: int) -> tuple[Any, ...]:
    with FakeRegistry() as registry:
        load(registry, estate.pushes)
        dry = invoke(dry_run=True, scope="orphans", pins=estate.pins, concurrency=concurrency)
        real = invoke(dry_run=False, scope="orphans", pins=estate.pins, concurrency=concurrency)
        left = {name: registry.digests(name) for name in estate.repositories}
    for report in (dry, real):
        report.pop("duration_seconds")
    return dry, real, left


def test_sixteen_threads_leave_the_registry_one_thread_leaves(invoke: Invoke) -> None:
    dry, real, left = _sweep(ESTATE, invoke, concurrency=16)
    assert real["complete"] and real["deleted"]["manifests"] > 100
    assert real["deleted"] == dry["planned"]
    assert (dry, real, left) == _sweep(ESTATE, invoke, concurrency=1)
