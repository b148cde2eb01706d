"""Two nights with the manifest store: API calls against the lower bound, and peak memory.

    python -m bench.store_bench --size small   # make bench (seconds)
    python -m bench.store_bench --size large   # make bench-large (100,000+ manifests)

What this benchmark measures is what the store saves across nights (the second night reads only
what the store lacks) and what it costs (its own requests). Its bound takes what each night must
read and delete from the product's own planner run over every manifest's bytes, so it says
nothing of the planner's correctness: `bench.registry_bench` checks that, one night without a
store, against an oracle that shares no code with `sweeper` (docs/testing.md).

Builds a synthetic registry of realistic shape (harness.bulk) straight into moto's backend, in
this process, then runs one real sweep (deleting) at the configured concurrency (by default
the setting's) through the real client (`registry.make_client`, botocore as shipped), which moto
answers in-process (the high-volume calls on the harness's short path, harness.fast_responses).
It prints, and writes to a JSON file: API calls per operation against the lower bound, the
bytes the run freed, and the run's peak memory.

Memory: the figure is the peak of Python memory allocated during the run and not yet freed
(tracemalloc, all threads), from making the client to the report, over the baseline of a
process that already holds the seeded registry. Memory the run reuses after moto freed it
(manifests deleted) still counts. The figure is an upper bound on the sweeper's own growth: it
also counts moto's answers in flight (about one page per worker) and moto's bookkeeping as it
deletes. The process's RSS before the run is printed alongside, for scale. The target: at the
large size (100,000 manifests over 1,000 repositories), at most 150 MiB.

The lower bound, per repository (plus ceil(repositories / 1000) DescribeRepositories pages, and
the pull-time exclusion check: one ListPullTimeUpdateExclusions, and one
RegisterPullTimeUpdateExclusion on this fresh registry; one GetAccountSetting where there are
several repositories: whether they share layers decides which blobs a deletion frees):

- listing: max(1, ceil(manifests / 1000)) DescribeImages pages (an empty repository still
  answers one call);
- the audit of ECR's own lifecycle policy: one GetLifecyclePolicy;
- fetches: ceil(R / 100) BatchGetImage calls, where R, the manifests whose content must be read, is
  (a) every manifest that may name others (an index, a manifest whose type ECR does not state, an
  artifact whose kind its listing does not tell: plan.may_mention_manifests),
  as soon as the repository holds one manifest that might be deleted (not a root, not out of scope
  by its listing): any index may list it and only the index's bytes say so; and (b) every manifest
  that (a) leaves a would-be deletion: the sweeper classifies what it deletes from the manifest's
  own bytes (docs/design.md, "The rules"), so each deletion is read, and so is each manifest whose
  kind only its bytes can tell (an orphaned OCI image manifest may be an image or a legacy
  attestation). A repository where nothing might be deleted needs no read at all.
- deletes: naive ceil(D / 100); wave-aware sum over waves of ceil(|wave| / 100), since an index goes
  in an earlier call than its children (ECR refuses to delete a listed child, and whether one call
  may hold both is undocumented) and a subject in an earlier call than its referrers, with the waves
  the planner orders (each manifest in the first wave after all its parents); strict max(ceil(D /
  100), number of waves), which no schedule under that rule can beat.
- re-verification: one DescribeImages(imageIds) right before each delete call, so as many as
  there are delete calls.
- bytes freed (docs/design.md, "Bytes: nominal and freed"): in a repository that deletes
  something, every manifest is read once, so R is all its manifests there: ceil(manifests / 100).
- the post-sweep check (docs/design.md, "The post-sweep check"): a real run lists a repository it
  deleted from again, max(1, ceil(survivors / 1000)) pages; the indexes it already read are not read
  again.

With the manifest store (sweeper.store, here a temporary directory), each night adds the store's
own requests: one load per repository, one save per repository whose stored manifests change
(new ones read, or ones gone since), and in a repository that deletes one more load (the
journal's bytes) and one journal write per delete call; and BatchGetImage reads
only what the store lacks of what the night must read.

Two nights: the first on the registry as seeded (the store empty), the second a day later after
5% new manifests (new builds pushed within the grace period, each moving a tag of its
repository, which leaves the tree it moved from to the sweep). The second night's bound counts
listing pages, the audit's policy reads, reads of unseen manifests, the store's requests, the
re-reads and deletes, and the post-sweep listings.

The call target (at most 1.1 x) is measured against the wave-aware bound, each night; the report
prints the naive and strict bounds too. The bound comes from an oracle that reads moto's backend
directly (no API) and plans with every manifest's bytes; the run must delete exactly what it
predicts.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from moto.ecr.models import ecr_backends

from harness import FakeRegistry
from harness import ecr as harness_ecr
from harness.bulk import load, realistic_registry
from harness.ecr import MOTO_USER
from harness.fast_responses import fast_responses
from sweeper import manifests
from sweeper.model import Pin
from sweeper.plan import Policy, make_plan, may_delete, may_mention_manifests
from sweeper.ports import BATCH_SIZE, JournalRecord, Stored
from sweeper.registry import PAGE_SIZE, EcrRegistry, image_from_detail, make_client
from sweeper.run import RunOptions, Sweeper
from sweeper.settings import Settings
from sweeper.settings import load as load_settings
from sweeper.store import DirectoryStore

from .measure import (
    LIST,
    LIST_EXCLUSIONS,
    OPERATIONS,
    REGISTER_EXCLUSION,
    STORE,
    VERIFY,
    CallMeter,
    Latency,
    growth,
    machine,
    rss_mib,
)
from .registry_bench import Timing, decision_log, rounded

SIZES: Mapping[str, tuple[int, int]] = {  # repositories, average builds per repository
    "small": (30, 6),
    "large": (1000, 28),
}
CALL_TARGET = 1.1
MEMORY_TARGET_MIB: Mapping[str, float] = {"large": 150.0}  # the run's peak above the baseline
NEW_SHARE = 0.05  # the second night: this share of the registry's manifests is new


@dataclass
class Bound:
    """The lower bound of API calls for one registry, by operation."""

    repositories: int = 0
    manifests: int = 0
    must_read: int = 0
    unseen: int = 0  # of what must be read, what the store lacks: read from ECR
    reads_without_store: int = 0  # the BatchGetImage calls the night would need without one
    deletions: int = 0
    waves: int = 0  # the most waves any one repository needs
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATIONS, 0))
    deletes_naive: int = 0
    deletes_strict: int = 0
    expected: dict[str, set[str]] = field(default_factory=dict)  # repository -> what goes
    stored_after: dict[str, set[str]] = field(default_factory=dict)  # the store, after the night

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
    holds: Mapping[str, set[str]] | None = None,
    exclusion_registered: bool = False,
) -> Bound:
    """The oracle: reads the backend directly (no API call) and plans with every byte.

    `holds`: what the manifest store holds, by repository (None: no store);
    `exclusion_registered`: a night before registered the sweeper's pull-time exclusion."""
    backend = ecr_backends[registry.account_id][registry.region]
    bound = Bound(repositories=len(backend.repositories))
    bound.calls["DescribeRepositories"] = max(1, math.ceil(bound.repositories / PAGE_SIZE))
    bound.calls["GetAccountSetting"] = 1 if bound.repositories > 1 else 0
    # The audit of ECR's own lifecycle policies reads each repository's (on by default).
    bound.calls["GetLifecyclePolicy"] = bound.repositories
    bound.calls[LIST_EXCLUSIONS] = 1
    # A new registry: nobody registered the sweeper yet, until its first night did.
    bound.calls[REGISTER_EXCLUSION] = 0 if exclusion_registered else 1
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
        first = [i.digest for i in images if may_mention_manifests(i)] if may_go else []
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
        read = must_read
        if deletions:
            # Bytes freed: every manifest of a repository that deletes is read once (its blobs
            # may be shared). The post-sweep check lists the repository again (real runs).
            read = {i.digest for i in images}
            if not dry_run:
                survivors = len(images) - len(deletions)
                bound.calls[LIST] += max(1, math.ceil(survivors / PAGE_SIZE))
        waves = sum(math.ceil(len(wave) / BATCH_SIZE) for wave in final.waves)
        unseen = read
        if holds is not None:
            held = holds.get(name, set())
            listed = {i.digest for i in images}
            unseen = read - held
            # One load; a save when something new was read or something stored is gone; in a
            # repository that deletes, one more load (the journal's bytes) and one journal write
            # before each delete call.
            journal = 0 if dry_run or not waves else 1 + waves
            bound.calls[STORE] += 1 + bool(unseen or held - listed) + journal
            bound.stored_after[name] = (held & listed) | read
        bound.unseen += len(unseen)
        bound.reads_without_store += math.ceil(len(read) / BATCH_SIZE)
        bound.calls["BatchGetImage"] += math.ceil(len(unseen) / BATCH_SIZE)
        bound.calls["BatchDeleteImage"] += waves
        bound.calls[VERIFY] += waves
        bound.deletes_naive += math.ceil(len(deletions) / BATCH_SIZE)
        bound.deletes_strict += max(math.ceil(len(deletions) / BATCH_SIZE), len(final.waves))
    return bound


class CountedStore(DirectoryStore):
    """The manifest store in a directory, each request noted by the night's meter."""

    meter: CallMeter | None = None

    def _note(self, request: str) -> None:
        if self.meter is not None:
            self.meter.note_store(request)

    def load(self, repository: str) -> dict[str, Stored]:
        self._note("load")
        return super().load(repository)

    def save(self, repository: str, entries: Mapping[str, Stored]) -> None:
        self._note("save")
        super().save(repository, entries)

    def journal(self, records: Sequence[JournalRecord]) -> None:
        self._note("journal")
        super().journal(records)


# The principal the bench's credentials call as (the harness's stand-in), as SWEEPER_ROLE_ARN names
# the function's role: the run registers it, and its reads are not pulls.
SWEEPER_ROLE = MOTO_USER.format(account="123456789012")


def sweep(
    session: boto3.Session,
    meter: CallMeter,
    settings: Settings,
    now: datetime,
    store: CountedStore,
    run_id: str,
    latency: Latency | None = None,
) -> dict[str, Any]:
    """One run as the Lambda makes it, from the client to the report (the one place this
    benchmark calls the sweeper). `latency`, if any, is hooked onto the run's own client."""
    client = make_client(session)
    meter.attach(client)
    store.meter = meter
    if latency is not None:
        latency.attach(client)
    options = RunOptions(principal=SWEEPER_ROLE, store=store, run_id=run_id)
    return Sweeper(EcrRegistry(client), settings, now, options).run().as_dict()


def new_builds(registry: FakeRegistry, when: datetime, share: float, seed: int) -> int:
    """The second night's new manifests: builds pushed in the last day, each moving a tag of its
    repository (the tree it moved from is left to the sweep), until `share` of the registry is
    new. Returns how many manifests are new."""
    backend = ecr_backends[registry.account_id][registry.region]
    names = sorted(backend.repositories)
    before = sum(len(registry.digests(n)) for n in names)
    rng = random.Random(f"{seed}:second-night")
    added = 0
    while added < share * before:
        name = rng.choice(names)
        tags = sorted(t for t in registry.tags(name) if not t.startswith("sha256-")) or ["latest"]
        old = registry.digests(name)
        hours = rng.uniform(1, 20)
        registry.push_buildx(
            name, tag=rng.choice(tags), pushed_at=when - timedelta(hours=hours), fast=True
        )
        added += len(registry.digests(name) - old)
    return added


@dataclass
class Measured:
    seed_seconds: float
    calls: dict[str, int]
    ids: dict[str, int]
    retries: int
    fetched_twice: int
    rss_before_mib: float | None
    peak_growth_mib: float | None
    report: dict[str, Any]
    surprises: list[str]
    timing: Timing
    new_manifests: int = 0  # pushed since the night before
    read_again: int = 0  # read from ECR though the store held them

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def settings_for(pins: Sequence[str], scope: str, concurrency: int) -> Settings:
    """A real run's settings, with the pins a deployment would pass."""
    return load_settings(
        {
            "dry_run": False,
            "scope": scope,
            "pins": list(pins),
            "max_deletions": 1_000_000,
            "concurrency": concurrency,
        },
        {},
    )


def measure(
    args: argparse.Namespace, repositories: int, builds: int, now: datetime
) -> tuple[list[tuple[Measured, Bound]], Settings]:
    """Build the registry, sweep it for real on two nights (5% new manifests between), with a
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
        del estate
        pins = {p.digest: p for p in settings.pins}
        store = CountedStore(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        session = boto3.Session(region_name=registry.region)
        stack.enter_context(decision_log())
        stored: dict[str, set[str]] = {}
        for night in range(1, args.nights + 1):
            when = now + timedelta(days=night - 1)
            new = new_builds(registry, when, NEW_SHARE, args.seed) if night > 1 else 0
            bound = lower_bound(
                registry,
                pins,
                settings.policy,
                when,
                dry_run=settings.dry_run,
                holds=stored,
                exclusion_registered=night > 1,
            )
            before = {name: registry.digests(name) for name in bound.expected}
            meter = CallMeter()
            gc.collect()  # the baseline without the garbage of seeding (or the night before)
            rss_before = rss_mib()
            latency = Latency(args.latency_ms / 1000)
            with ExitStack() as traced:
                # Tracing every allocation slows the run down: timing runs may leave it out.
                grown = traced.enter_context(growth()) if args.memory else None
                wall, cpu = time.perf_counter(), time.process_time()
                report = sweep(
                    session, meter, settings, when, store, f"bench-night-{night}", latency
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            meter.tally()
            after = {name: registry.digests(name) for name in bound.expected}
            # Manifests read from ECR although the store held them (the night before read them).
            again = sum(1 for name, digest in meter.fetched if digest in stored.get(name, ()))
            stored = bound.stored_after
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


def _check(
    report: Mapping[str, Any],
    before: Mapping[str, set[str]],
    after: Mapping[str, set[str]],
    bound: Bound,
) -> list[str]:
    """What the run did that the oracle did not predict (empty when all is as it should be)."""
    surprises: list[str] = []
    if not report["complete"]:
        surprises.append(f"run incomplete: {report['failures'][:3]}")
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
    report = measured.report
    memory_target = MEMORY_TARGET_MIB.get(size)
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
            "concurrency": settings.concurrency,
            "moto": moto,
        },
        "registry": {
            "repositories": bound.repositories,
            "manifests": bound.manifests,
            "must_read": bound.must_read,
            "unseen": bound.unseen,
            "deletions": bound.deletions,
            "max_waves": bound.waves,
            "kept": report.get("kept", {}),
            "seed_seconds": round(measured.seed_seconds, 2),
        },
        "bound": {
            "calls": dict(bound.calls),
            "wave_aware": bound.total,
            "naive": bound.naive_total,
            "strict": bound.strict_total,
            "measured_against": "wave_aware",
        },
        "run": {
            "concurrency": settings.concurrency,
            "calls": measured.calls,
            "calls_total": measured.total_calls,
            "ids_sent": measured.ids,
            "retries": measured.retries,
            "fetched_twice": measured.fetched_twice,
            "read_again_though_stored": measured.read_again,
            "calls_vs_bound": round(measured.total_calls / max(1, bound.total), 4),
            "calls_vs_strict_bound": round(measured.total_calls / max(1, bound.strict_total), 4),
            "complete": report["complete"],
            "stopped_early": report["stopped_early"],
            "store": report["store"],
            "manifests_from_store": report["manifests_from_store"],
            "deleted": report["deleted"]["manifests"],
            "bytes": {
                "deleted_nominal": report["deleted"]["bytes"],
                "freed": report["deleted"]["bytes_freed"],
                "freed_unknown_repositories": report["bytes_freed_unknown"],
            },
            "memory_mib": {
                "rss_before_run": rounded(measured.rss_before_mib),
                "peak_growth": rounded(measured.peak_growth_mib),
                "measured_by": "tracemalloc peak of the run"
                if measured.peak_growth_mib is not None
                else "not measured (--no-memory)",
                "target": memory_target,
            },
            "as_predicted": not measured.surprises,
            "surprises": measured.surprises[:10],
            "timing": measured.timing.as_dict(),
        },
    }
    run = result["run"]
    result["targets"] = {
        "calls_at_most_1_1_x_bound": run["calls_vs_bound"] <= CALL_TARGET,
        "deleted_as_predicted": run["as_predicted"],
    }
    if memory_target is not None and measured.peak_growth_mib is not None:
        result["targets"][f"memory_at_most_{memory_target:g}_mib"] = (
            measured.peak_growth_mib <= memory_target
        )
    return result


def render(result: Mapping[str, Any]) -> str:
    """The figures as a person reads them."""
    reg, bound, run = result["registry"], result["bound"], result["run"]
    lines = [
        f"ecr-sweeper registry benchmark ({result['size']}): {reg['repositories']} repositories, "
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
