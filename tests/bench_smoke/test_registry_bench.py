"""The small registry benchmark, as a smoke run: it runs, its figures are complete, the sweep
deletes what the oracle predicts, and the API calls stay within 1.1 x the lower bound.

No timing is asserted; the memory figure must be there, its target is the large size's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import registry_bench

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
    "ManifestStore",  # the store's requests: none here, store_bench counts them
}


@pytest.mark.parametrize("scope", ["orphans", "attestations"])
def test_small_benchmark_stays_within_the_call_bound(tmp_path: Path, scope: str) -> None:
    out = tmp_path / "figures.json"
    result = registry_bench.main(["--size", "small", "--scope", scope, "--json", str(out)])

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


def test_latency_is_added_to_every_call_and_the_pool_overlaps_them(tmp_path: Path) -> None:
    latency_ms, concurrency = 5.0, 8
    result = registry_bench.main(
        [
            "--size",
            "small",
            "--latency-ms",
            str(latency_ms),
            "--concurrency",
            str(concurrency),
            "--no-memory",
            "--json",
            str(tmp_path / "figures.json"),
        ]
    )
    run, timing = result["run"], result["run"]["timing"]
    assert run["as_predicted"], run["surprises"]
    assert timing["latency_ms"] == latency_ms
    assert timing["calls"] == run["calls_total"]  # every attempt waited, and was timed
    # However busy the machine: no call is quicker than the wait, and at most `concurrency` wait
    # at once.
    assert timing["wall_seconds"] >= timing["calls"] * latency_ms / 1000 / concurrency
    assert 0 < timing["in_flight"] <= concurrency
    assert 0 < timing["client_cpu_ms_per_call"] <= timing["cpu_ms_per_call"]
    assert run["memory_mib"]["peak_growth"] is None  # --no-memory: not measured, not made up
