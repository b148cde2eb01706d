"""What the sweeper reports, measured against the registry: honest bytes, metrics that are the
report's figures, log lines that carry the run, and the cost of measuring.

Expected byte figures are computed here from the stored manifests' JSON, independently of the
sweeper's parser: a blob is freed when a deleted manifest lists it and no surviving one does.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

import boto3
import pytest

from conftest import NOW, OLD, Invoke, LambdaContext
from harness import FakeRegistry, oci
from harness.breakage import remove_behind_ecr
from harness.lambda_output import captured, emf_metrics, log_lines
from harness.reads import ManifestReads
from sweeper import metrics
from sweeper.model import Scope
from sweeper.ports import BATCH_SIZE, Registry
from sweeper.registry import EcrRegistry
from sweeper.run import RunOptions, Sweeper
from sweeper.settings import Settings

REPO = "app"
ORPHANS = Settings(dry_run=False, scope=Scope.ORPHANS)


def blobs(registry: FakeRegistry, repo: str, digests: Iterable[str]) -> dict[str, int]:
    """Config and layer blobs (digest -> size) the given stored manifests list."""
    found: dict[str, int] = {}
    for digest in digests:
        doc = json.loads(registry.manifest(repo, digest))
        for blob in [doc["config"], *doc["layers"]] if "layers" in doc else []:
            found[blob["digest"]] = blob["size"]
    return found


def expected_freed(registry: FakeRegistry, repo: str, gone: set[str], kept: set[str]) -> int:
    held = blobs(registry, repo, kept)
    return sum(size for digest, size in blobs(registry, repo, gone).items() if digest not in held)


def sweeper(registry: Registry, settings: Settings = ORPHANS, **kwargs: Any) -> Sweeper:
    return Sweeper(registry, settings, NOW, RunOptions(**kwargs))


# --- honest bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize("attestation", ["legacy", "artifact"])
def test_after_a_tag_moves_freed_bytes_leave_out_the_layers_the_new_build_shares(
    registry: FakeRegistry, invoke: Invoke, attestation: Literal["legacy", "artifact"]
) -> None:
    platforms = ("linux/amd64", "linux/arm64")
    old = registry.push_buildx(
        REPO, tag="latest", pushed_at=OLD, platforms=platforms, attestation=attestation
    )
    new = registry.push_buildx(
        REPO, tag="latest", pushed_at=OLD, platforms=platforms, attestation=attestation
    )
    expected = expected_freed(registry, REPO, set(old.all), set(new.all))
    shared = set(blobs(registry, REPO, old.all)) & set(blobs(registry, REPO, new.all))
    assert shared  # the base layers (and, for artifacts, the empty config): not freed

    dry = invoke(dry_run=True, scope="orphans")
    assert dry["planned"]["bytes_freed"] == expected
    assert dry["planned"]["bytes"] > expected  # nominal: indexes and shared layers count again
    assert dry["deleted"]["bytes_freed"] == 0
    assert dry["bytes_freed_unknown"] == 0

    real = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == new.all
    assert real["deleted"]["bytes_freed"] == expected == real["planned"]["bytes_freed"]


def test_a_blob_a_tagged_image_still_uses_is_not_freed(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    base = [oci.layer("base:0", 5_000_000), oci.layer("base:1", 7_000_000)]
    tagged = oci.image_manifest("tagged", base_layers=base)
    orphan = oci.image_manifest("orphan", base_layers=base, layer_sizes=[123_456])
    registry.push(REPO, tagged, tags=["v1"], pushed_at=OLD)
    registry.push(REPO, orphan, pushed_at=OLD)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == {tagged.digest}
    config: dict[str, Any] = orphan.json["config"]
    layers: list[dict[str, Any]] = orphan.json["layers"]
    assert [layer["digest"] for layer in layers[:2]] == [layer["digest"] for layer in base]
    assert report["deleted"]["bytes_freed"] == config["size"] + 123_456  # its own blobs only
    nominal = config["size"] + sum(layer["size"] for layer in layers)
    assert report["deleted"]["bytes"] == nominal


def test_survivors_are_read_once_each_and_at_most_100_per_call(registry: FakeRegistry) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)
    tagged = {
        registry.seed(REPO, oci.image_manifest(f"release-{i}"), tags=[f"r{i}"], pushed_at=OLD)
        for i in range(250)
    }
    everything = registry.digests(REPO)
    reads = ManifestReads(registry.client)

    report = sweeper(EcrRegistry(registry.client), Settings(scope=Scope.ORPHANS)).run().as_dict()

    assert all(len(call) <= BATCH_SIZE for call in reads.calls)
    assert max(Counter(reads.digests).values()) == 1  # manifests are immutable: read once per run
    assert set(reads.digests) == everything  # every survivor's blobs were seen
    # Planning reads the 2 indexes and, in that call's spare room, the candidates and then
    # survivors; the rest of the survivors follow, 100 a call: no call more than the bytes need.
    assert len(reads.calls) == math.ceil(len(everything) / BATCH_SIZE)
    assert report["planned"]["bytes_freed"] == expected_freed(
        registry, REPO, set(old.all), set(new.all) | tagged
    )


def test_a_repository_past_the_read_limit_is_left_out_and_still_swept(
    registry: FakeRegistry,
) -> None:
    releases: set[str] = set()
    for repo, count in (("big", 150), ("small", 0)):
        registry.push_buildx(repo, tag="latest", pushed_at=OLD, fast=True)
        registry.push_buildx(repo, tag="latest", pushed_at=OLD, fast=True)
        for i in range(count):
            manifest = oci.image_manifest(f"{repo}-{i}")
            releases.add(registry.seed(repo, manifest, tags=[f"r{i}"], pushed_at=OLD))
    reads = ManifestReads(registry.client)
    run = sweeper(EcrRegistry(registry.client), freed_bytes_read_limit=10).run()
    report = run.as_dict()

    assert len(registry.digests("big")) == 150 + 3  # the sweep does not wait for the figure
    assert len(registry.digests("small")) == 3
    assert report["complete"] is True
    assert report["bytes_freed_unknown"] == 1
    big = next(r for r in run.repositories if r.repository == "big")
    assert big.bytes_freed_unknown is not None and "read limit" in big.bytes_freed_unknown
    assert big.deleted_bytes_freed is None
    # The figure's own reads are all or nothing: none here. Planning's one call to "big" had
    # spare room, filled with releases at no cost; no call was made for releases alone.
    assert not [call for call in reads.calls if set(call) <= releases]
    assert 0 < len(releases & set(reads.digests)) < BATCH_SIZE
    small = next(r for r in run.repositories if r.repository == "small")
    small_freed = small.deleted_bytes_freed
    assert small_freed is not None and small_freed > 0
    assert report["deleted"]["bytes_freed"] == small_freed


def test_an_unreadable_survivor_makes_freed_bytes_unknown_not_the_run_incomplete(
    invoke: Invoke,
) -> None:
    with FakeRegistry(archived_manifests_readable=False) as registry:
        old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
        archived = registry.push(REPO, oci.image_manifest("cold"), pushed_at=OLD, archived=True)
        report = invoke(dry_run=False, scope="orphans")
        assert registry.digests(REPO) == new.all | {archived}
        assert not old.all & registry.digests(REPO)
    assert report["complete"] is True
    assert report["bytes_freed_unknown"] == 1
    assert report["deleted"]["bytes_freed"] == 0  # left out, not guessed
    assert report["deleted"]["manifests"] == 3


def test_a_delete_refused_because_a_new_index_lists_it_is_a_delete_failure(
    registry: FakeRegistry,
) -> None:
    doomed = oci.image_manifest("doomed")
    reused = oci.image_manifest("reused")
    registry.push(REPO, doomed, pushed_at=OLD)
    registry.push(REPO, reused, pushed_at=OLD)
    pushed: list[str] = []

    def rebuild_lists_it(params: dict[str, Any], **_: Any) -> None:
        # Between the scan and the delete, a build pushes a new index that reuses `reused`.
        if params.get("imageIds") and not pushed:
            index = oci.index([reused.descriptor(platform="linux/amd64")])
            pushed.append(registry.push(REPO, index, tags=["latest"]))

    client = boto3.client("ecr", region_name=registry.region)
    client.meta.events.register("before-parameter-build.ecr.DescribeImages", rebuild_lists_it)
    result = sweeper(EcrRegistry(client)).run()
    report = result.as_dict()

    assert registry.digests(REPO) == {reused.digest, *pushed}
    assert report["delete_failures"] == 1
    assert report["kept"] == {"delete-failed": 1}
    assert [f["code"] for f in report["failures"]] == ["ImageReferencedByManifestList"]
    assert report["deleted"]["manifests"] == 1
    assert report["complete"] is False
    # Only the confirmed deletion counts; the refused manifest still holds its blobs.
    doomed_blobs = [doomed.json["config"], *doomed.json["layers"]]  # none shared with `reused`
    assert report["deleted"]["bytes_freed"] == sum(blob["size"] for blob in doomed_blobs)
    figures = {figure.name: figure.value for figure in metrics.run_figures(result)}
    assert figures[metrics.DELETE_FAILURES] == 1
    assert figures[metrics.RUN_COMPLETED] == 0


# --- metrics and logs -------------------------------------------------------------------------

# scenario -> (request, RunCompleted, CircuitBreakerTripped): what NoSuccessfulRunAlarm sees
RUN_OUTCOMES: dict[str, tuple[dict[str, Any], int, int]] = {
    "a-dry-run-that-planned-everything": ({"dry_run": True}, 1, 0),
    "a-real-run-that-deleted-everything": ({"dry_run": False}, 1, 0),
    # A dry-run deployment with a backlog works as intended: the breaker says the real run would
    # stop (its own alarm), and NoSuccessfulRunAlarm stays quiet.
    "a-dry-run-over-the-breaker": ({"dry_run": True, "max_deletions": 1}, 1, 1),
    # A real run stopped by the breaker did not do its work: both alarms.
    "a-real-run-over-the-breaker": ({"dry_run": False, "max_deletions": 1}, 0, 1),
    "a-dry-run-with-a-pattern-matching-nothing": (
        {"dry_run": True, "repositories": ["nosuch", REPO]},
        0,
        0,
    ),
}


@pytest.mark.parametrize(
    ("request_", "completed", "tripped"), RUN_OUTCOMES.values(), ids=list(RUN_OUTCOMES)
)
def test_run_completed_is_what_no_successful_run_alarm_watches(
    registry: FakeRegistry,
    invoke: Invoke,
    request_: dict[str, Any],
    completed: int,
    tripped: int,
) -> None:
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    with captured() as out:
        invoke(scope="orphans", **request_)
    figures = {m.name: m.value for m in emf_metrics(out.getvalue())}
    assert (figures[metrics.RUN_COMPLETED], figures[metrics.CIRCUIT_BREAKER_TRIPPED]) == (
        completed,
        tripped,
    )
    assert len(registry.digests(REPO)) == (3 if request_ == {"dry_run": False} else 6)


def test_the_metrics_are_the_report_figures(
    registry: FakeRegistry, invoke: Invoke, lambda_context: LambdaContext
) -> None:
    first = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, sbom=True)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push(REPO, oci.helm_chart("web"), pushed_at=OLD)
    before = registry.digests(REPO)
    with captured() as out:
        report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == before - first.all  # the chart is out of scope: it stays
    emitted = emf_metrics(out.getvalue())
    run_dimensions = frozenset(
        {("service", metrics.SERVICE), ("FunctionName", lambda_context.function_name)}
    )
    assert {m.namespace for m in emitted} == {metrics.NAMESPACE}

    figures = {m.name: m for m in emitted if m.name != metrics.MANIFESTS_KEPT}
    assert {name: m.value for name, m in figures.items()} == {
        metrics.REPOSITORIES_SCANNED: 1,
        metrics.MANIFESTS_SCANNED: report["manifests"],
        metrics.MANIFESTS_PLANNED: 3,
        metrics.MANIFESTS_DELETED: 3,
        metrics.NOMINAL_BYTES_PLANNED: report["planned"]["bytes"],
        metrics.NOMINAL_BYTES_DELETED: report["deleted"]["bytes"],
        metrics.BYTES_FREED_PLANNED: report["planned"]["bytes_freed"],
        metrics.BYTES_FREED: report["deleted"]["bytes_freed"],
        metrics.BYTES_FREED_UNKNOWN: 0,
        metrics.DELETE_FAILURES: 0,
        metrics.FAILURES: 0,
        metrics.RUN_COMPLETED: 1,
        metrics.DRY_RUNS: 0,
        metrics.REAL_RUNS: 1,
        metrics.CIRCUIT_BREAKER_TRIPPED: 0,
        metrics.STOPPED_EARLY: 0,
        metrics.BROKEN_INDEXES: 0,
        metrics.RUN_DURATION: report["duration_seconds"],
        # No retention rules, no ECR lifecycle policy: zeros, emitted all the same.
        metrics.RETENTION_EXPIRED: 0,
        metrics.RETENTION_HELD: 0,
        # The run registered its principal before its first read.
        metrics.PULL_TIME_EXCLUSION_MISSING: 0,
        metrics.LIFECYCLE_HAZARDS: 0,
        # No manifest store configured: it is neither unavailable nor rejecting anything.
        metrics.STORE_UNAVAILABLE: 0,
        metrics.STORE_REJECTED: 0,
        metrics.SUMMARY_EVENT_FAILURES: 0,  # the run's summary event went out
    }
    assert report["deleted"]["bytes_freed"] > 0
    assert all(m.dimensions == run_dimensions for m in figures.values())
    assert figures[metrics.BYTES_FREED].unit == "Bytes"
    assert figures[metrics.RUN_DURATION].unit == "Seconds"

    kept = [m for m in emitted if m.name == metrics.MANIFESTS_KEPT]
    by_reason = {dict(m.dimensions)[metrics.REASON_DIMENSION]: m.value for m in kept}
    assert len(kept) == len(by_reason) == len(metrics.KEPT_REASONS)  # one each, zeros too
    assert {r: v for r, v in by_reason.items() if v} == report["kept"]
    assert report["kept"] == {"listed-by-kept-index": 2, "tagged": 1, "unknown-kind": 1}
    for m in kept:
        assert m.dimensions == run_dimensions | {("Reason", dict(m.dimensions)["Reason"])}


@pytest.mark.parametrize(
    ("scenario", "event", "deleted"),
    [
        ("a real run that deletes", {"dry_run": False, "scope": "orphans"}, 6),
        ("a dry run", {"dry_run": True, "scope": "orphans"}, 0),
        (
            "a tripped circuit breaker",
            {"dry_run": False, "scope": "orphans", "max_deletions": 2},
            0,
        ),
    ],
)
def test_each_manifest_has_one_decision_line_with_the_verdict_the_run_gave_it(
    registry: FakeRegistry, invoke: Invoke, scenario: str, event: dict[str, Any], deleted: int
) -> None:
    for _ in range(3):
        registry.push_buildx(REPO, tag="latest", pushed_at=OLD)  # two orphaned trees of three
    before = registry.digests(REPO)
    with captured() as out:
        report = invoke(**event)
    gone = before - registry.digests(REPO)
    assert len(gone) == report["deleted"]["manifests"] == deleted, scenario
    lines = [line for line in log_lines(out.getvalue()) if line["message"] == "decision"]
    assert Counter(line["digest"] for line in lines) == Counter(before)  # one line each
    verdicts = {line["digest"]: line["verdict"] for line in lines}
    # A tripped breaker holds the run: its planned deletions keep verdict `delete`, held.
    held = {line["digest"] for line in lines if line["held_by"]}
    planned = {d["digest"] for d in report["deletions"]}
    assert held == (planned if "max_deletions" in event else set()), scenario
    assert {d for d, verdict in verdicts.items() if verdict == "delete"} - held == (
        gone if not event["dry_run"] else planned
    )


def test_every_log_line_carries_the_run_and_each_repository_has_one_line_of_figures(
    registry: FakeRegistry, invoke: Invoke, lambda_context: LambdaContext
) -> None:
    for repo in ("web", "api"):
        registry.push_buildx(repo, tag="latest", pushed_at=OLD)
        registry.push_buildx(repo, tag="latest", pushed_at=OLD)
    with captured() as out:
        report = invoke(dry_run=True, scope="orphans")
    lines = log_lines(out.getvalue())
    assert {line["run_id"] for line in lines} == {lambda_context.aws_request_id}
    assert {line["dry_run"] for line in lines} == {True}
    assert Counter(line["message"] for line in lines) == {
        "decision": report["manifests"],
        "repository": 2,
        "pins": 1,  # how many pins each source gave (none configured here)
        "run": 1,
    }
    per_repository = [line for line in lines if line["message"] == "repository"]
    assert (
        sum(line["planned_bytes_freed"] for line in per_repository)
        == report["planned"]["bytes_freed"]
    )
    assert all(line["bytes_freed_unknown"] == "" for line in per_repository)  # all known
    (run,) = (line for line in lines if line["message"] == "run")
    assert run["report"]["planned"] == report["planned"]


def test_an_index_broken_by_someone_else_is_reported_and_counted(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    latest = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)  # the first is an orphan
    kept = registry.push_buildx(REPO, tag="stable", pushed_at=OLD)
    lost = kept.attestations["linux/amd64"]
    remove_behind_ecr(registry, REPO, lost)  # not through ECR's API
    with captured() as out:
        report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == latest.all | (kept.all - {lost})
    assert report["deleted"]["manifests"] == 3
    assert [(b["digest"], b["problem"]) for b in report["broken"]] == [
        (kept.index, "missing-child")
    ]
    figures = {m.name: m.value for m in emf_metrics(out.getvalue())}
    assert figures[metrics.BROKEN_INDEXES] == 1
