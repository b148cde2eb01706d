"""The small registry benchmark, as a smoke run: it runs, its figures are complete, the sweep
deletes what the oracle predicts, and the API calls stay within 1.1 x the lower bound.

No timing is asserted (timings on a shared machine are noise); zero latency keeps it quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import registry_bench

OPERATIONS = {
    "DescribeRepositories",
    "DescribeImages(listing)",
    "BatchGetImage",
    "DescribeImages(imageIds)",
    "BatchDeleteImage",
}


@pytest.mark.parametrize("scope", ["orphans", "attestations"])
def test_small_benchmark_stays_within_the_call_bound(tmp_path: Path, scope: str) -> None:
    out = tmp_path / "figures.json"
    result = registry_bench.main(
        ["--size", "small", "--latency-ms", "0", "--scope", scope, "--json", str(out)]
    )

    assert json.loads(out.read_text()) == json.loads(json.dumps(result, default=str))
    registry, bound = result["registry"], result["bound"]
    assert registry["manifests"] > 500
    assert registry["deletions"] > 0
    assert set(bound["calls"]) == OPERATIONS
    assert bound["naive"] <= bound["strict"] <= bound["wave_aware"]
    assert [run["concurrency"] for run in result["runs"]] == [1, 16]
    for run in result["runs"]:
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
        for figure in ("wall_seconds", "cpu_seconds", "moto_cpu_seconds", "peak_rss_mib"):
            assert run[figure] is not None
    assert result["targets"]["calls_at_most_1_1_x_bound"]
    assert result["targets"]["deleted_as_predicted"]
