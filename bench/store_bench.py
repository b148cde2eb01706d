"""Two nights with the manifest store: API calls against the lower bound, and peak memory.

    python -m bench.store_bench --size small   # make bench (seconds)
    python -m bench.store_bench --size large   # make bench-large (100,000+ manifests)

What this benchmark measures is what the store saves across nights (the second night reads only
what the store lacks) and what it costs (its own requests), and the run's peak memory with it.

Builds a synthetic registry of realistic shape (harness.bulk) straight into moto's backend, in
this process, then sweeps it for real, with a manifest store in a temporary directory, on two
nights: the first on the registry as seeded (the store empty), the second a day later after 5%
new manifests (harness.bulk.later_builds: builds made as each repository makes them, pushed
within the grace period, each moving a tag of its repository, which leaves the tree it moved
from to the sweep). Each night runs through the real client (`registry.make_client`, botocore
as shipped), which moto answers in-process (the high-volume calls on the harness's short path,
harness.fast_responses). It prints, and writes to a JSON file, each night's API calls per
operation against the lower bound, what BatchGetImage asked for, and the run's peak memory
(measured as `bench.registry_bench` measures it).

The bound, and what each night must delete, come from `bench.registry_bench`'s oracle, which
shares no code with `sweeper` (harness.generated's Oracle over the generator's own description
of the registry, harness.bulk.model, the second night's builds included), counted with ECR's
documented limits: the same listing pages, policy reads, reads, re-reads, deletes and
post-sweep listings as one night without a store, except that BatchGetImage needs to read only
what no earlier night read from ECR (the benchmark's meter saw every id sent: the store holds
them), plus the store's own requests: one load per repository, one save per repository where
something new is read or something stored is gone, and in a repository that deletes one more
load (the bytes the journal records) and one journal write per delete call. The call target
(at most 1.1 x) is measured against the wave-aware bound, each night; the run must delete
exactly what the oracle predicts, each night.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from collections.abc import Container, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from harness import FakeRegistry
from harness.bulk import later_builds, load, model, realistic_registry
from harness.fast_responses import fast_responses
from sweeper.ports import JournalRecord, Stored
from sweeper.settings import Settings
from sweeper.store import DirectoryStore

from . import registry_bench
from .measure import (
    OPERATIONS,
    CallMeter,
    Latency,
    growth,
    rss_mib,
)
from .registry_bench import (
    CALL_TARGET,
    GRACE,
    PULLED_WITHIN,
    Bound,
    Timing,
    _check,
    decision_log,
    lower_bound,
    settings_for,
    sweep,
)

SIZES: Mapping[str, tuple[int, int]] = {  # repositories, average builds per repository
    "small": (30, 6),
    "large": (1000, 28),
}
# The run's peak above the baseline: with the store, within what a run without one measured.
MEMORY_TARGET_MIB: Mapping[str, float] = {"large": 120.0}
NEW_SHARE = 0.05  # the second night: this share of the registry's manifests is new


class CountedStore(DirectoryStore):
    """The manifest store in a directory, each request noted by the night's meter."""

    meter: CallMeter | None = None

    def _note(self, request: str) -> None:
        if self.meter is not None:
            self.meter.note_store(request)

    def load(self, repository: str, wanted: Container[str] | None = None) -> dict[str, Stored]:
        self._note("load")
        return super().load(repository, wanted)

    def save(self, repository: str, entries: Mapping[str, Stored]) -> None:
        self._note("save")
        super().save(repository, entries)

    def journal(self, records: Sequence[JournalRecord]) -> None:
        self._note("journal")
        super().journal(records)


@dataclass
class Measured(registry_bench.Measured):
    """A night's figures, and what the store changed about its reads."""

    new_manifests: int = 0  # pushed since the night before
    read_again: int = 0  # read from ECR though the store held them


def measure(
    args: argparse.Namespace, repositories: int, builds: int, now: datetime
) -> tuple[list[tuple[Measured, Bound]], Settings]:
    """Build the registry, sweep it for real on each night (5% new manifests between), with a
    manifest store, and check each night's outcome against the oracle."""
    estate = realistic_registry(repositories, builds, now=now, seed=args.seed)
    settings = settings_for(estate.pins, args.scope, args.concurrency)
    nights: list[tuple[Measured, Bound]] = []
    with ExitStack() as stack:
        registry = stack.enter_context(FakeRegistry())
        if args.moto == "short":
            stack.enter_context(fast_responses())
        started = time.perf_counter()
        load(registry, estate.pushes)
        seed_seconds = time.perf_counter() - started
        store = CountedStore(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        session = boto3.Session(region_name=registry.region)
        stack.enter_context(decision_log())
        seen: dict[str, set[str]] = {}  # what earlier nights read from ECR: the store holds it
        for night in range(1, args.nights + 1):
            when = now + timedelta(days=night - 1)
            new = 0
            if night > 1:
                present = {name: registry.digests(name) for name in estate.repositories}
                pushes = later_builds(estate, present, now=when, share=NEW_SHARE, seed=args.seed)
                load(registry, pushes)
                estate.pushes.extend(pushes)
                new = len(pushes)
            before = {name: registry.digests(name) for name in estate.repositories}
            described = model(estate, when, grace=GRACE, pulled_within=PULLED_WITHIN)
            bound = lower_bound(
                described,
                args.scope,
                dry_run=settings.dry_run,
                present=before,
                seen=seen,
                exclusion_registered=night > 1,
            )
            del described
            meter = CallMeter()
            # What the harness derives from the stored bytes, it keeps: not the run's memory.
            registry.derive_details()
            gc.collect()  # the baseline without the garbage of seeding (or the night before)
            rss_before = rss_mib()
            latency = Latency(args.latency_ms / 1000)
            with ExitStack() as traced:
                # Tracing every allocation slows the run down: timing runs may leave it out.
                grown = traced.enter_context(growth()) if args.memory else None
                wall, cpu = time.perf_counter(), time.process_time()
                store.meter = meter
                report = sweep(
                    session,
                    meter,
                    settings,
                    when,
                    latency,
                    store=store,
                    run_id=f"bench-night-{night}",
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            meter.tally()
            after = {name: registry.digests(name) for name in estate.repositories}
            # Manifests read from ECR although an earlier night had read them (the store's).
            again = sum(1 for name, digest in meter.fetched if digest in seen.get(name, ()))
            fetched: dict[str, set[str]] = {}
            for name, digest in meter.fetched:
                fetched.setdefault(name, set()).add(digest)
            # The store keeps what it held of what was listed, and what this night read.
            seen = {
                name: (seen.get(name, set()) & before[name]) | fetched.get(name, set())
                for name in estate.repositories
            }
            measured = Measured(
                seed_seconds=seed_seconds,
                calls={op: meter.calls.get(op, 0) for op in OPERATIONS},
                ids={op: meter.ids.get(op, 0) for op in OPERATIONS},
                retries=meter.retries,
                fetched_twice=meter.fetched_twice,
                rss_before_mib=rss_before,
                peak_growth_mib=grown.peak_mib if grown is not None else None,
                report={k: v for k, v in report.items() if k != "deletions"},
                surprises=_check(report, before, after, bound),
                timing=Timing(
                    args.latency_ms,
                    wall,
                    cpu,
                    latency.server_cpu_seconds,
                    latency.calls,
                    latency.in_flight(wall),
                ),
                new_manifests=new,
                read_again=again,
            )
            nights.append((measured, bound))
    return nights, settings


def summarise(
    size: str, nights: Sequence[tuple[Measured, Bound]], settings: Settings, moto: str
) -> dict[str, Any]:
    """The first night's figures at the top (registry, bound, run, targets), and each later
    night's in `nights` (new manifests, bound, run, targets)."""
    measured, bound = nights[0]
    result = summarise_night(size, bound, measured, settings, moto)
    result["nights"] = []
    for number, (later, later_bound) in enumerate(nights[1:], start=2):
        night = summarise_night(size, later_bound, later, settings, moto)
        result["nights"].append(
            {
                "night": number,
                "new_manifests": later.new_manifests,
                "manifests": later_bound.manifests,
                "must_read": later_bound.must_read,
                "unseen": later_bound.unseen,
                "reads_without_store": later_bound.reads_without_store,
                "deletions": later_bound.deletions,
                "bound": night["bound"],
                "run": night["run"],
                "targets": night["targets"],
            }
        )
        result["targets"][f"night_{number}_calls_at_most_1_1_x_bound"] = night["targets"][
            "calls_at_most_1_1_x_bound"
        ]
        result["targets"][f"night_{number}_deleted_as_predicted"] = night["targets"][
            "deleted_as_predicted"
        ]
        # BatchGetImage asks only for what the store lacks: nothing it held, at most the new.
        result["targets"][f"night_{number}_reads_only_what_the_store_lacks"] = (
            later.read_again == 0
            and night["run"]["ids_sent"]["BatchGetImage"] <= later.new_manifests
        )
    return result


def summarise_night(
    size: str, bound: Bound, measured: Measured, settings: Settings, moto: str
) -> dict[str, Any]:
    """registry_bench's figures of the night, and what the store changed."""
    result = registry_bench.summarise(
        size, bound, measured, settings, moto, "store", MEMORY_TARGET_MIB
    )
    report = measured.report
    result["registry"]["unseen"] = bound.unseen
    result["run"].update(
        {
            "read_again_though_stored": measured.read_again,
            "store": report["store"],
            "manifests_from_store": report["manifests_from_store"],
        }
    )
    return result


def render(result: Mapping[str, Any]) -> str:
    """The figures as a person reads them."""
    reg, bound, run = result["registry"], result["bound"], result["run"]
    lines = [
        f"ecr-sweeper store benchmark ({result['size']}): {reg['repositories']} repositories, "
        f"{reg['manifests']} manifests, scope {result['settings']['scope']}, "
        f"concurrency {run['concurrency']}",
        f"  registry seeded in {reg['seed_seconds']} s",
        "",
        f"  night 1 (store empty): must read {reg['must_read']} manifests, delete "
        f"{reg['deletions']} (at most {reg['max_waves']} waves in one repository)",
        *_render_night(bound, run),
    ]
    for night in result["nights"]:
        lines += [
            "",
            f"  night {night['night']}: {night['new_manifests']} new manifests of "
            f"{night['manifests']}; must read {night['must_read']}, of which the store lacks "
            f"{night['unseen']}; delete {night['deletions']}; without the store, "
            f"{night['reads_without_store']} BatchGetImage calls",
            *_render_night(night["bound"], night["run"]),
        ]
    lines += [
        "",
        "  targets: " + ", ".join(f"{k}={v}" for k, v in result["targets"].items()),
    ]
    m = result["machine"]
    lines.append(
        f"  machine: nproc {m['nproc']}, {m['cpu']}, python {m['python']}, "
        f"load average at start {m['load_average_at_start']}"
    )
    return "\n".join(lines)


def _render_night(bound: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    memory = run["memory_mib"]
    lines = [
        f"  {'operation':<32}{'bound':>8}{'calls':>8}",
    ]
    for op in OPERATIONS:
        lines.append(f"  {op:<32}{bound['calls'][op]:>8}{run['calls'][op]:>8}")
    lines.append(
        f"  {'total (wave-aware bound)':<32}{bound['wave_aware']:>8}{run['calls_total']:>8}"
    )
    lines += [
        f"  {run['calls_vs_bound']:.3f} x the wave-aware bound (target at most {CALL_TARGET}); "
        f"naive bound {bound['naive']}, strict bound {bound['strict']}",
        f"  retries {run['retries']}, manifests read twice {run['fetched_twice']}",
        f"  deleted {run['deleted']} manifests: {run['bytes']['deleted_nominal']:,} bytes "
        f"nominal, {run['bytes']['freed']:,} bytes freed; as the oracle predicted: "
        f"{run['as_predicted']}",
    ]
    lines += [f"    ! {surprise}" for surprise in run["surprises"]]
    timing = run["timing"]
    lines += [
        "",
        f"  time: {timing['wall_seconds']} s wall at {timing['latency_ms']:g} ms a call, "
        f"{timing['calls']} calls ({timing['calls_per_second']} a second), "
        f"{timing['in_flight']} in flight on average; {timing['cpu_seconds']} s CPU "
        f"({timing['cpu_ms_per_call']} ms a call, moto's answers included; "
        f"{timing['client_cpu_ms_per_call']} ms without them)",
    ]
    target = memory["target"]
    lines += [
        f"  BatchGetImage asked for {run['ids_sent']['BatchGetImage']} manifests "
        f"({run['read_again_though_stored']} the store held); "
        f"{run['manifests_from_store']} taken from the store",
        f"  memory: the run's peak is {memory['peak_growth']} MiB above the baseline"
        + (f" (target at most {target:g} MiB)" if target is not None else ""),
        f"    ({memory['measured_by']}; the process held {memory['rss_before_run']} MiB RSS "
        "before it, the seeded registry included)",
    ]
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.store_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repositories", type=int, help="override the size's repositories")
    parser.add_argument("--builds", type=int, help="override the size's builds per repository")
    parser.add_argument(
        "--concurrency", type=int, default=Settings().concurrency, help="default: the setting's"
    )
    parser.add_argument("--scope", choices=("orphans", "attestations"), default="orphans")
    parser.add_argument(
        "--moto",
        choices=("short", "full"),
        default="short",
        help="short: the high-volume calls take a short path through moto "
        "(harness.fast_responses); full: moto as it is (much slower)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="wait this long before every ECR call (a botocore hook on the run's client), "
        "standing in for the network's round trip",
    )
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the run's peak memory (tracemalloc, which slows the run: "
        "--no-memory for timings)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--nights", type=int, choices=(1, 2), default=2, help="nights swept (default 2)"
    )
    parser.add_argument("--json", type=Path, help="where to write the figures (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    repositories, builds = SIZES[args.size]
    repositories = args.repositories or repositories
    builds = args.builds or builds
    now = datetime.now(UTC).replace(microsecond=0)
    nights, settings = measure(args, repositories, builds, now)
    result = summarise(args.size, nights, settings, args.moto)
    print(render(result), flush=True)
    path = args.json or Path(f"bench-results-store-{args.size}.json")
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"  figures written to {path}")
    return result


if __name__ == "__main__":
    main()
