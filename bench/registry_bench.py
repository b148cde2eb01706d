"""The sweep at registry scale, measured against the API-call lower bound.

    python -m bench.registry_bench --size small                      # make bench (seconds)
    python -m bench.registry_bench --size large --concurrency 8,16   # make bench-large

Builds a synthetic registry of realistic shape (harness.bulk) straight into moto's backend, in
a process of its own that answers the sweeper's requests (stand_in.py says how and why), runs
one real sweep (deleting) with concurrency 1 and one with each configured concurrency (16 by
default; the last one is judged against the targets), each on a freshly built identical
registry, and prints for each: API calls per operation against the lower bound, wall time
against the latency floor, manifests per second, peak memory of the sweeper's process, and
its CPU by where it went (the stand-in's apart). The figures also go to a JSON file. Every
HTTP call takes a fixed latency (50 ms by default) to stand in for the network.

The lower bound, per repository (plus ceil(repositories / 1000) DescribeRepositories pages):

- listing: max(1, ceil(manifests / 1000)) DescribeImages pages (an empty repository still
  answers one call);
- fetches: ceil(R / 100) BatchGetImage calls, where R, the manifests whose content must be read,
  is (a) every manifest that may list others (an index, or a manifest whose type ECR does not
  state), as soon as the repository holds one manifest that might be deleted (not a root, not out
  of scope by its listing): any index may list it and only the index's bytes say so; and (b)
  every manifest that (a) leaves a would-be deletion: the sweeper classifies what it deletes
  from the manifest's own bytes (README, "The rules"), so each deletion is read, and so is each
  manifest whose kind only its bytes can tell (an orphaned OCI image manifest may be an image or
  a legacy attestation). A repository where nothing might be deleted needs no read at all.
- deletes: naive ceil(D / 100); wave-aware sum over waves of ceil(|wave| / 100), since an index
  goes in an earlier call than its children (ECR refuses to delete a listed child, and whether
  one call may hold both is undocumented), with the waves the planner orders (each manifest in
  the first wave after all its parents); strict max(ceil(D / 100), number of waves), which no
  schedule under that rule can beat.
- re-verification: one DescribeImages(imageIds) right before each delete call, so as many as
  there are delete calls.
- bytes freed (README, "Bytes: nominal and freed"): in a repository that deletes something,
  every manifest is read once, so R is all its manifests there: ceil(manifests / 100).
- the post-sweep check (README, `validated`): a real run lists a repository it deleted from
  again, max(1, ceil(survivors / 1000)) pages; the indexes it already read are not read again.

The call target (at most 1.1 x) is measured against the wave-aware bound; the report prints the
naive and strict bounds too. The bound comes from an oracle that reads moto's backend directly
(no API) and plans with every manifest's bytes; the run must delete exactly what it predicts.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.parsers
from moto.ecr.models import ecr_backends

import sweeper.run.scan
from harness import FakeRegistry
from harness import ecr as harness_ecr
from harness.bulk import realistic_registry
from log_format import DecisionLinesFormatter
from sweeper import manifests
from sweeper.model import Pin
from sweeper.plan import Policy, make_plan, may_delete, needs_content
from sweeper.ports import BATCH_SIZE
from sweeper.registry import PAGE_SIZE, EcrRegistry, image_from_detail, make_client
from sweeper.run import Report, RunOptions, Sweeper
from sweeper.settings import Settings
from sweeper.settings import load as load_settings

from .measure import (
    LIST,
    OPERATIONS,
    VERIFY,
    CallMeter,
    CpuLedger,
    GcClock,
    machine,
    peak_mib,
    release_free_memory,
    reset_peak,
    rss_mib,
)
from .stand_in import EstateSpec, serving

LAMBDA_SECONDS = 900.0  # one invocation at most
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SIZES: Mapping[str, tuple[int, int]] = {  # repositories, average builds per repository
    "small": (30, 6),
    "large": (1000, 28),
}
CALL_TARGET = 1.1
WALL_TARGET = 1.5


@dataclass
class Bound:
    """The lower bound of API calls for one registry, by operation."""

    repositories: int = 0
    manifests: int = 0
    must_read: int = 0
    deletions: int = 0
    waves: int = 0  # the most waves any one repository needs
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATIONS, 0))
    deletes_naive: int = 0
    deletes_strict: int = 0
    expected: dict[str, set[str]] = field(default_factory=dict)  # repository -> what goes

    @property
    def total(self) -> int:
        """The wave-aware bound: the target is measured against it."""
        return sum(self.calls.values())

    @property
    def naive_total(self) -> int:
        return self.total - 2 * (self.calls["BatchDeleteImage"] - self.deletes_naive)

    @property
    def strict_total(self) -> int:
        return self.total - 2 * (self.calls["BatchDeleteImage"] - self.deletes_strict)


def lower_bound(
    registry: FakeRegistry,
    pins: Mapping[str, Pin],
    policy: Policy,
    now: datetime,
    *,
    dry_run: bool = False,
) -> Bound:
    """The oracle: reads the backend directly (no API call) and plans with every byte."""
    backend = ecr_backends[registry.account_id][registry.region]
    bound = Bound(repositories=len(backend.repositories))
    bound.calls["DescribeRepositories"] = max(1, math.ceil(bound.repositories / PAGE_SIZE))
    for name, repo in backend.repositories.items():
        stored = list(harness_ecr._state(repo).by_digest.values())
        images = [image_from_detail(harness_ecr._image_detail(repo, img)) for img in stored]
        parsed = {
            img.get_image_digest(): manifests.parse(
                img.image_manifest.encode(),
                media_type=img.image_manifest_media_type,
                digest=img.get_image_digest(),
            )
            for img in stored
        }
        final = make_plan(name, images, parsed, pins, policy, now)
        may_go = any(may_delete(i, pins, policy, now) for i in images)
        first = [i.digest for i in images if needs_content(i)] if may_go else []
        provisional = make_plan(
            name, images, {d: parsed[d] for d in first}, pins, policy, now, provisional=True
        )
        must_read = set(first).union(provisional.deletions)
        deletions = final.deletions
        bound.manifests += len(images)
        bound.must_read += len(must_read)
        bound.deletions += len(deletions)
        bound.waves = max(bound.waves, len(final.waves))
        bound.expected[name] = set(deletions)
        bound.calls[LIST] += max(1, math.ceil(len(images) / PAGE_SIZE))
        reads = len(must_read)
        if deletions:
            # Bytes freed: every manifest of a repository that deletes is read once (its blobs
            # may be shared). The post-sweep check lists the repository again (real runs).
            reads = len(images)
            if not dry_run:
                survivors = len(images) - len(deletions)
                bound.calls[LIST] += max(1, math.ceil(survivors / PAGE_SIZE))
        bound.calls["BatchGetImage"] += math.ceil(reads / BATCH_SIZE)
        waves = sum(math.ceil(len(wave) / BATCH_SIZE) for wave in final.waves)
        bound.calls["BatchDeleteImage"] += waves
        bound.calls[VERIFY] += waves
        bound.deletes_naive += math.ceil(len(deletions) / BATCH_SIZE)
        bound.deletes_strict += max(math.ceil(len(deletions) / BATCH_SIZE), len(final.waves))
    return bound


class _TimedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that adds up the CPU its threads spend formatting and writing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.cpu = 0.0
        self._sum = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        started = time.thread_time()
        super().emit(record)
        spent = time.thread_time() - started
        with self._sum:
            self.cpu += spent


@contextmanager
def decision_log() -> Iterator[_TimedHandler]:
    """Log every decision as the Lambda does (its formatter: Powertools JSON lines, one per
    decision), to /dev/null: formatting 100,000 log lines is part of the sweeper's real cost, so
    it is measured, not skipped."""
    logger = logging.getLogger("ecr_sweeper")
    with open(os.devnull, "w") as sink:
        handler = _TimedHandler(sink)
        handler.setFormatter(DecisionLinesFormatter(service="ecr-sweeper"))
        saved = logger.level, logger.propagate
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


@dataclass
class Measured:
    concurrency: int
    wall_seconds: float
    cpu_seconds: float
    moto_cpu_seconds: float
    moto_wall_seconds: float
    log_cpu_seconds: float
    gc_seconds: float
    gc_collections: dict[int, int]
    ledger: dict[str, float]
    calls: dict[str, int]
    ids: dict[str, int]
    retries: int
    fetched_twice: int
    schedule_floor: float
    peak_rss_mib: float | None
    rss_before_mib: float | None
    report: dict[str, Any]
    as_predicted: bool
    surprises: list[str]

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def run_once(
    spec: EstateSpec,
    settings: Settings,
    now: datetime,
    latency: float,
) -> tuple[Measured, Bound, float]:
    """Build the registry (in the stand-in's process), sweep it once (for real), and check the
    outcome against the oracle."""
    with ExitStack() as stack:
        stand_in, bound, seed_seconds = stack.enter_context(
            serving(spec, latency, settings.concurrency)
        )
        before = stand_in.ask("digests", sorted(bound.expected))
        # The client signs requests as against AWS; no request leaves the process but to the
        # stand-in, and these keys are not anyone's.
        stack.enter_context(mock.patch.dict(os.environ, _FAKE_CREDENTIALS))
        client = make_client(stand_in.region)
        meter = CallMeter(latency, sleeps=False)  # the stand-in waits the latency out
        meter.attach(client)
        stand_in.attach(client)
        log = stack.enter_context(decision_log())
        ledger = stack.enter_context(CpuLedger().watching(_LEDGER))
        sweeper = Sweeper(
            EcrRegistry(client), settings, now, RunOptions(remaining_seconds=_lambda_clock())
        )

        release_free_memory()
        rss_before = rss_mib()
        reset_peak()
        with GcClock().installed() as collector:  # the run's collections, none after it
            wall, cpu = time.perf_counter(), time.process_time()
            run = sweeper.run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = peak_mib()
        moto_cpu, moto_wall = stand_in.ask("clock")
        meter.tally()
        after = stand_in.ask("digests", sorted(bound.expected))

        surprises = _check(run, before, after, bound)
        measured = Measured(
            concurrency=settings.concurrency,
            wall_seconds=wall,
            cpu_seconds=cpu,
            moto_cpu_seconds=moto_cpu,
            moto_wall_seconds=moto_wall,
            log_cpu_seconds=log.cpu,
            gc_seconds=collector.total,
            gc_collections=dict(collector.collections),
            ledger=ledger.total(),
            calls={op: meter.calls.get(op, 0) for op in OPERATIONS},
            ids={op: meter.ids.get(op, 0) for op in OPERATIONS},
            retries=meter.retries,
            fetched_twice=meter.fetched_twice,
            schedule_floor=meter.schedule_floor(settings.concurrency),
            peak_rss_mib=peak,
            rss_before_mib=rss_before,
            report={k: v for k, v in run.as_dict().items() if k != "deletions"},
            as_predicted=not surprises,
            surprises=surprises[:10],
        )
    return measured, bound, seed_seconds


# Where the CPU goes: each label adds up the thread CPU spent inside these functions.
_LEDGER: list[tuple[str, Any, str]] = [
    *(
        ("registry calls", EcrRegistry, name)
        for name in ("images", "manifests", "describe", "delete")
    ),
    ("botocore response parsing", botocore.parsers.ResponseParser, "parse"),
    ("manifest parsing", manifests, "parse_all"),
    ("make_plan", sweeper.run.scan, "make_plan"),
]


def cpu_breakdown(measured: Measured) -> dict[str, float]:
    """The sweeper process's CPU by where it went (seconds, all threads); the stand-in's own is
    in its process and apart (`moto_cpu_seconds`)."""
    ledger = measured.ledger
    calls = ledger.get("registry calls", 0.0)
    parsing = ledger.get("botocore response parsing", 0.0)
    parts = {
        # Inside the Registry's methods, less botocore's response parsing: botocore's request
        # path (building, signing), the transport to the stand-in, answers into Images.
        "registry calls: botocore's request path, transport, reading answers": calls - parsing,
        "botocore: parsing responses": parsing,
        "sweeper: parsing manifests": ledger.get("manifest parsing", 0.0),
        "sweeper: make_plan (twice per repository)": ledger.get("make_plan", 0.0),
        "decision log (Powertools JSON lines)": measured.log_cpu_seconds,
    }
    parts["everything else (threads, bookkeeping, log records)"] = measured.cpu_seconds - sum(
        parts.values()
    )
    return {k: round(v, 2) for k, v in parts.items()}


def _lambda_clock() -> Any:
    started = time.monotonic()
    return lambda: LAMBDA_SECONDS - (time.monotonic() - started)


def _check(
    run: Report, before: Mapping[str, set[str]], after: Mapping[str, set[str]], bound: Bound
) -> list[str]:
    """What the run did that the oracle did not predict (empty when all is as it should be)."""
    surprises: list[str] = []
    if not run.complete:
        surprises.append(f"run incomplete: {run.all_failures[:3]}")
    for name, digests in before.items():
        gone = digests - after[name]
        expected = bound.expected.get(name, set())
        if gone != expected:
            surprises.append(
                f"{name}: deleted {len(gone)}, expected {len(expected)} "
                f"({len(gone - expected)} unexpected, {len(expected - gone)} missed)"
            )
    return surprises


def summarise(
    size: str,
    bound: Bound,
    runs: Sequence[Measured],
    latency: float,
    seed_seconds: float,
    settings: Settings,
) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for measured in runs[-1:]:
        reasons.update(measured.report.get("kept", {}))
    kinds["planned"] = runs[-1].report["planned"]["manifests"]
    result: dict[str, Any] = {
        "benchmark": "registry",
        "size": size,
        "command": " ".join([os.path.basename(sys.executable), "-m", "bench.registry_bench"])
        + " "
        + " ".join(sys.argv[1:]),
        "machine": machine(),
        "settings": {
            "scope": settings.scope.value,
            "dry_run": settings.dry_run,
            "min_age_hours": settings.min_age_hours,
            "keep_pulled_within_days": settings.keep_pulled_within_days,
            "pins": len(settings.pins),
            "latency_ms": latency * 1000,
            "concurrency": settings.concurrency,
        },
        "registry": {
            "repositories": bound.repositories,
            "manifests": bound.manifests,
            "must_read": bound.must_read,
            "deletions": bound.deletions,
            "max_waves": bound.waves,
            "kept": dict(sorted(reasons.items())),
            "build_seconds": round(seed_seconds, 2),
        },
        "bound": {
            "calls": dict(bound.calls),
            "wave_aware": bound.total,
            "naive": bound.naive_total,
            "strict": bound.strict_total,
            "measured_against": "wave_aware",
        },
        "runs": [],
    }
    for measured in runs:
        ideal = measured.total_calls * latency / measured.concurrency
        manifests_total = max(1, bound.manifests)
        result["runs"].append(
            {
                "concurrency": measured.concurrency,
                "calls": measured.calls,
                "calls_total": measured.total_calls,
                "ids_sent": measured.ids,
                "retries": measured.retries,
                "fetched_twice": measured.fetched_twice,
                "calls_vs_bound": round(measured.total_calls / max(1, bound.total), 4),
                "calls_vs_strict_bound": round(
                    measured.total_calls / max(1, bound.strict_total), 4
                ),
                "wall_seconds": round(measured.wall_seconds, 2),
                "latency_floor_seconds": round(ideal, 2),
                "wall_vs_floor": round(measured.wall_seconds / ideal, 3) if ideal else None,
                # Repository by repository, calls follow each other: with few repositories per
                # worker that chain, not the average, bounds the wall time.
                "schedule_floor_seconds": round(measured.schedule_floor, 2),
                # One Python process runs one thread at a time (the GIL): the run cannot be
                # faster than its CPU time either.
                "cpu_floor_seconds": round(measured.cpu_seconds, 2),
                "wall_vs_larger_floor": round(
                    measured.wall_seconds
                    / max(ideal, measured.schedule_floor, measured.cpu_seconds, 1e-9),
                    3,
                ),
                "manifests_per_second": round(manifests_total / measured.wall_seconds, 1),
                "cpu_seconds": round(measured.cpu_seconds, 2),
                "moto_cpu_seconds": round(measured.moto_cpu_seconds, 2),
                "moto_wall_seconds": round(measured.moto_wall_seconds, 2),
                "log_cpu_seconds": round(measured.log_cpu_seconds, 2),
                # Spread over the parts above (the collector runs wherever an allocation
                # triggers it); the stand-in registry's own heap is frozen out of it.
                "gc_seconds": round(measured.gc_seconds, 2),
                "gc_collections_by_generation": measured.gc_collections,
                "cpu_breakdown_seconds": cpu_breakdown(measured),
                "peak_rss_mib": _round(measured.peak_rss_mib),
                "rss_before_mib": _round(measured.rss_before_mib),
                "peak_growth_mib": _round(
                    measured.peak_rss_mib - measured.rss_before_mib
                    if measured.peak_rss_mib is not None and measured.rss_before_mib is not None
                    else None
                ),
                "complete": measured.report["complete"],
                "stopped_early": measured.report["stopped_early"],
                "deleted": measured.report["deleted"]["manifests"],
                "as_predicted": measured.as_predicted,
                "surprises": measured.surprises,
            }
        )
    configured = result["runs"][-1]
    result["targets"] = {
        "calls_at_most_1_1_x_bound": configured["calls_vs_bound"] <= CALL_TARGET,
        "wall_at_most_1_5_x_floor": (configured["wall_vs_floor"] or 0) <= WALL_TARGET,
        "inside_one_invocation": all(
            r["wall_seconds"] < LAMBDA_SECONDS and not r["stopped_early"] for r in result["runs"]
        ),
        "deleted_as_predicted": all(r["as_predicted"] for r in result["runs"]),
    }
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def render(result: Mapping[str, Any]) -> str:
    """The figures as a person reads them."""
    reg, bound = result["registry"], result["bound"]
    lines = [
        f"ecr-sweeper registry benchmark ({result['size']}): {reg['repositories']} repositories, "
        f"{reg['manifests']} manifests, scope {result['settings']['scope']}, "
        f"{result['settings']['latency_ms']:g} ms per call",
        f"  registry built in {reg['build_seconds']} s; must read {reg['must_read']} manifests, "
        f"delete {reg['deletions']} (at most {reg['max_waves']} waves in one repository)",
        "",
        f"  {'operation':<26}{'bound':>8}"
        + "".join(f"{'c=' + str(r['concurrency']):>10}" for r in result["runs"]),
    ]
    for op in OPERATIONS:
        row = f"  {op:<26}{bound['calls'][op]:>8}"
        row += "".join(f"{r['calls'][op]:>10}" for r in result["runs"])
        lines.append(row)
    lines.append(
        f"  {'total (wave-aware bound)':<26}{bound['wave_aware']:>8}"
        + "".join(f"{r['calls_total']:>10}" for r in result["runs"])
    )
    lines.append(
        f"  naive bound {bound['naive']}, strict bound {bound['strict']}; target measured "
        f"against the wave-aware bound"
    )
    lines.append("")
    for r in result["runs"]:
        lines.append(
            f"  concurrency {r['concurrency']:>2}: {r['calls_vs_bound']:.3f} x bound, "
            f"wall {r['wall_seconds']} s = {r['wall_vs_floor']} x floor "
            f"({r['latency_floor_seconds']} s; schedule floor {r['schedule_floor_seconds']} s), "
            f"{r['manifests_per_second']} manifests/s, "
            f"cpu {r['cpu_seconds']} s (decision log {r['log_cpu_seconds']} s; the stand-in's, "
            f"in its own process, {r['moto_cpu_seconds']} s), "
            f"peak rss {r['peak_rss_mib']} MiB (+{r['peak_growth_mib']} MiB during the run), "
            f"retries {r['retries']}, as predicted: {r['as_predicted']}"
        )
        for surprise in r["surprises"]:
            lines.append(f"    ! {surprise}")
    last = result["runs"][-1]
    lines.append("")
    lines.append(
        f"  where the CPU went at concurrency {last['concurrency']} (seconds, all threads):"
    )
    for part, seconds in last["cpu_breakdown_seconds"].items():
        lines.append(f"    {seconds:>7.2f}  {part}")
    lines.append(
        f"    (of all of which garbage collection {last['gc_seconds']:.2f} s, "
        f"{sum(last['gc_collections_by_generation'].values())} collections)"
    )
    lines.append("")
    lines.append("  targets: " + ", ".join(f"{k}={v}" for k, v in result["targets"].items()))
    m = result["machine"]
    lines.append(
        f"  machine: nproc {m['nproc']}, {m['cpu']}, python {m['python']}, "
        f"load average at start {m['load_average_at_start']}"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.registry_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repositories", type=int, help="override the size's repositories")
    parser.add_argument("--builds", type=int, help="override the size's builds per repository")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--concurrency",
        default="16",
        help="the configured concurrency, or several separated by commas (the last one is "
        "judged against the targets); a run at concurrency 1 comes first",
    )
    parser.add_argument("--scope", choices=("orphans", "attestations"), default="orphans")
    parser.add_argument("--no-serial", action="store_true", help="skip the concurrency-1 run")
    parser.add_argument(
        "--moto",
        choices=("short", "full"),
        default="short",
        help="short: the high-volume calls take a short path through moto "
        "(harness.fast_responses); full: moto as it is (its CPU then dominates)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="where to write the figures (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    repositories, builds = SIZES[args.size]
    repositories = args.repositories or repositories
    builds = args.builds or builds
    levels = [int(level) for level in str(args.concurrency).split(",")]
    now = datetime.now(UTC).replace(microsecond=0)
    # The pins a deployment would pass; the stand-in builds the same estate again in its process.
    pins = realistic_registry(repositories, builds, now=now, seed=args.seed).pins
    settings = load_settings(
        {
            "dry_run": False,
            "scope": args.scope,
            "pins": pins,
            "max_deletions": 1_000_000,
            "concurrency": levels[-1],
        },
        {},
    )
    latency = args.latency_ms / 1000
    concurrencies = levels if args.no_serial else [1, *levels]
    runs: list[Measured] = []
    bound: Bound | None = None
    seed_seconds = 0.0
    spec = EstateSpec(
        repositories=repositories,
        builds=builds,
        now=now,
        seed=args.seed,
        pins={p.digest: p for p in settings.pins},
        policy=settings.policy,
        dry_run=settings.dry_run,
        short_path=args.moto == "short",
    )
    for concurrency in dict.fromkeys(concurrencies):
        measured, found, seeded = run_once(
            spec, replace(settings, concurrency=concurrency), now, latency
        )
        runs.append(measured)
        bound = bound or found
        seed_seconds = seed_seconds or seeded
    assert bound is not None
    result = summarise(args.size, bound, runs, latency, seed_seconds, settings)
    result["settings"]["moto"] = args.moto
    print(render(result), flush=True)
    path = args.json or Path(f"bench-results-{args.size}.json")
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"  figures written to {path}")
    return result


if __name__ == "__main__":
    main()
