"""A repository larger than every page and batch size: paging and batching, end to end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from conftest import OLD, Invoke
from harness import FakeRegistry

REPO = "big"


@pytest.fixture
def ecr_calls() -> Iterator[Counter[str]]:
    """Logical ECR calls (one per page) made through boto3's default session, by operation."""
    boto3.setup_default_session()
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call.ecr", count)
    yield calls
    boto3.DEFAULT_SESSION = None


def test_repository_of_2500_manifests_is_fully_handled(
    registry: FakeRegistry, invoke: Invoke, ecr_calls: Counter[str]
) -> None:
    builds = [
        registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True) for _ in range(834)
    ]
    assert len(registry.digests(REPO)) == 2502
    dry = invoke(dry_run=True, scope="orphans")
    assert dry["manifests"] == 2502
    assert dry["planned"]["manifests"] == 2499
    assert ecr_calls["DescribeImages"] == 3  # pages of 1000
    assert ecr_calls["BatchDeleteImage"] == 0

    ecr_calls.clear()
    real = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds[-1].all
    assert real["deleted"]["manifests"] == 2499
    assert real["complete"] is True
    # 833 indexes in one wave (9 calls of at most 100), then 1666 children (17 calls).
    assert ecr_calls["BatchDeleteImage"] == 9 + 17
