"""The small two-night benchmark with the manifest store (bench.store_bench), as a smoke run: it
runs, its figures are complete, the sweep deletes what its bound predicts, and the API calls stay
within 1.1 x the lower bound, on both nights; on the second, BatchGetImage asks only for what the
manifest store lacks.

No timing is asserted; the memory figure must be there, its target is the large size's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import store_bench

from sweeper.settings import Settings

OPERATIONS = {
    "ListPullTimeUpdateExclusions",
    "RegisterPullTimeUpdateExclusion",
    "DescribeRepositories",
    "GetAccountSetting",
    "DescribeImages(listing)",
    "GetLifecyclePolicy",
    "BatchGetImage",
    "DescribeImages(imageIds)",
    "BatchDeleteImage",
    "ManifestStore",
}


@pytest.mark.parametrize("scope", ["orphans", "attestations"])
def test_two_small_nights_stay_within_the_call_bound_and_the_second_reads_only_what_is_new(
    tmp_path: Path, scope: str
) -> None:
    out = tmp_path / "figures.json"
    result = store_bench.main(["--size", "small", "--scope", scope, "--json", str(out)])

    assert json.loads(out.read_text()) == json.loads(json.dumps(result, default=str))
    registry, bound, run = result["registry"], result["bound"], result["run"]
    assert registry["manifests"] > 500
    assert registry["deletions"] > 0
    assert set(bound["calls"]) == OPERATIONS
    assert bound["naive"] <= bound["strict"] <= bound["wave_aware"]
    assert run["concurrency"] == Settings().concurrency
    assert run["as_predicted"], run["surprises"]
    assert run["complete"]
    assert run["deleted"] == registry["deletions"]
    assert set(run["calls"]) == OPERATIONS
    assert run["calls_total"] <= 1.1 * bound["wave_aware"]
    # Every manifest is read at most once and deleted once; botocore never had to retry.
    assert run["fetched_twice"] == 0
    assert registry["must_read"] <= run["ids_sent"]["BatchGetImage"] <= registry["manifests"]
    assert run["ids_sent"]["BatchDeleteImage"] == registry["deletions"]
    assert run["retries"] == 0
    assert 0 < run["bytes"]["freed"] <= run["bytes"]["deleted_nominal"]
    assert run["memory_mib"]["peak_growth"] > 0
    assert result["targets"]["calls_at_most_1_1_x_bound"]
    assert result["targets"]["deleted_as_predicted"]
    [second] = result["nights"]
    assert second["new_manifests"] > 0.04 * second["manifests"]
    assert second["run"]["complete"] and second["run"]["as_predicted"], second["run"]["surprises"]
    assert second["run"]["calls_total"] <= 1.1 * second["bound"]["wave_aware"]
    # Nothing the store held is read again: at most the new manifests are.
    assert second["run"]["read_again_though_stored"] == 0
    assert second["run"]["ids_sent"]["BatchGetImage"] <= second["new_manifests"]
    assert second["run"]["manifests_from_store"] > 0
    assert all(result["targets"].values()), result["targets"]
