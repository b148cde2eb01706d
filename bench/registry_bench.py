"""The sweep at registry scale: API calls against the lower bound, and the run's peak memory.

    python -m bench.registry_bench --size small   # make bench (seconds)
    python -m bench.registry_bench --size large   # make bench-large (100,000+ manifests)

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
  artifact whose kind its listing does not tell),
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

The call target (at most 1.1 x) is measured against the wave-aware bound; the report prints the
naive and strict bounds too. The bound, and what the run must delete, come from an oracle that
shares no code with `sweeper` (so that a planner bug cannot be shared by the check):
harness.generated's Oracle, which derives what is live from the generator's own description of
the registry (harness.bulk.model: what each manifest is, what it lists and refers to), with its
own reading of the rules above and ECR's documented limits (1000 a page, 100 ids a call).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from harness import FakeRegistry
from harness.bulk import load, model, realistic_registry
from harness.ecr import MOTO_USER
from harness.fast_responses import fast_responses
from harness.generated import Model, Node, Oracle
from harness.oci import ATTESTATION_MANIFEST, DOCKER_MANIFEST
from log_format import DecisionLinesFormatter
from sweeper.ports import ManifestStore
from sweeper.registry import EcrRegistry, make_client
from sweeper.run import RunOptions, Sweeper
from sweeper.settings import Settings
from sweeper.settings import load as load_settings

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

SIZES: Mapping[str, tuple[int, int]] = {  # repositories, average builds per repository
    "small": (30, 6),
    "large": (1000, 28),
}
CALL_TARGET = 1.1
MEMORY_TARGET_MIB: Mapping[str, float] = {"large": 150.0}  # the run's peak above the baseline


@dataclass
class Bound:
    """The lower bound of API calls for one registry, by operation."""

    repositories: int = 0
    manifests: int = 0
    must_read: int = 0
    unseen: int = 0  # of what must be read, what no earlier night read (with a store)
    reads_without_store: int = 0  # the BatchGetImage calls of the bound without a store
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


# ECR's documented limits (not the sweeper's constants): a DescribeImages or DescribeRepositories
# page holds at most 1000 entries, a BatchGetImage or BatchDeleteImage call at most 100 ids.
ECR_PAGE = 1000
ECR_BATCH = 100
# The settings the oracle judges ages and pulls by; the run is given the same numbers.
GRACE = timedelta(hours=72)
PULLED_WITHIN = timedelta(days=30)
# What a run in each scope may delete, and what the listing alone tells of a manifest (the rest:
# an OCI image manifest may be an image or a legacy attestation, an artifact of unknown type
# anything); harness.generated's kinds.
SCOPE_KINDS: Mapping[str, frozenset[str]] = {
    "orphans": frozenset({"index", "image", "attestation", "referrer"}),
    "attestations": frozenset({"attestation"}),
}


def lower_bound(
    described: Model,
    scope: str,
    *,
    dry_run: bool = False,
    present: Mapping[str, set[str]] | None = None,
    seen: Mapping[str, set[str]] | None = None,
    exclusion_registered: bool = False,
) -> Bound:
    """The oracle: harness.generated's, over the generator's own description of the registry
    (harness.bulk.model), sharing no code with `sweeper`; the bound is counted from it.

    `present`: the manifests in the registry now, by repository (default: every one the model
    describes; after a night, what it left, and what was pushed since). `seen`: with a manifest
    store, what earlier nights read from ECR, by repository (the store holds it: None means no
    store). `exclusion_registered`: an earlier night registered the sweeper's pull-time
    exclusion."""
    oracle = Oracle(described)
    by_repo: dict[str, dict[str, Node]] = {}
    for node in described.nodes:
        by_repo.setdefault(node.repo, {})[node.digest] = node
    repositories = sorted(by_repo)
    bound = Bound(repositories=len(repositories))
    bound.calls["DescribeRepositories"] = max(1, math.ceil(bound.repositories / ECR_PAGE))
    bound.calls["GetAccountSetting"] = 1 if bound.repositories > 1 else 0
    # The audit of ECR's own lifecycle policies reads each repository's (on by default).
    bound.calls["GetLifecyclePolicy"] = bound.repositories
    bound.calls[LIST_EXCLUSIONS] = 1
    # A new registry: nobody registered the sweeper yet, until a night before did.
    bound.calls[REGISTER_EXCLUSION] = 0 if exclusion_registered else 1
    for name in repositories:
        here = set(by_repo[name]) if present is None else present.get(name, set())
        nodes = {digest: by_repo[name][digest] for digest in here}
        garbage = oracle.garbage(name, here, scope)  # type: ignore[arg-type]
        must_read = _must_read(oracle, name, nodes, scope)
        waves = _waves(oracle.edges(name, here), garbage)
        bound.manifests += len(here)
        bound.must_read += len(must_read)
        bound.deletions += len(garbage)
        bound.waves = max(bound.waves, len(waves))
        bound.expected[name] = garbage
        bound.calls[LIST] += max(1, math.ceil(len(here) / ECR_PAGE))
        read = must_read
        if garbage:
            # Bytes freed: every manifest of a repository that deletes is read once (its blobs
            # may be shared). The post-sweep check lists the repository again (real runs).
            read = here
            if not dry_run:
                survivors = len(here) - len(garbage)
                bound.calls[LIST] += max(1, math.ceil(survivors / ECR_PAGE))
        deletes = sum(math.ceil(len(wave) / ECR_BATCH) for wave in waves)
        unseen = read
        if seen is not None:
            held = seen.get(name, set())
            unseen = read - held
            # The store: one load; one save when something new was read or something it holds
            # is gone; where something is deleted, one more load (the bytes the journal
            # records) and one journal write before each delete call.
            journal = 1 + deletes if deletes and not dry_run else 0
            bound.calls[STORE] += 1 + bool(unseen or held - here) + journal
        bound.unseen += len(unseen)
        bound.reads_without_store += math.ceil(len(read) / ECR_BATCH)
        bound.calls["BatchGetImage"] += math.ceil(len(unseen) / ECR_BATCH)
        bound.calls["BatchDeleteImage"] += deletes
        bound.calls[VERIFY] += deletes
        bound.deletes_naive += math.ceil(len(garbage) / ECR_BATCH)
        bound.deletes_strict += max(math.ceil(len(garbage) / ECR_BATCH), len(waves))
    return bound


def _listing_kind(node: Node) -> str | None:
    """What ECR's listing of a manifest proves it is, without its bytes; None when only the
    bytes can tell (an OCI image manifest, an artifact whose type names no kind we know)."""
    doc = json.loads(node.manifest.text)
    if node.kind == "index":
        return "index"
    if node.kind == "attestation" and doc.get("artifactType") == ATTESTATION_MANIFEST:
        return "attestation"
    if node.subject is not None:
        return "referrer"
    if doc.get("mediaType") == DOCKER_MANIFEST:
        return "image"
    return None


def _must_read(oracle: Oracle, repo: str, nodes: Mapping[str, Node], scope: str) -> set[str]:
    """The manifests whose bytes any collector must read before it may delete in `repo`.

    None where nothing might be deleted: every manifest a root, or proven out of scope by its
    listing. Otherwise (a) every manifest that may name others (an index; an artifact of a kind
    its listing does not tell, since an unknown kind keeps what it names), and (b) every manifest
    that, once (a) is read, would still be deleted if each manifest whose kind only its bytes
    tell were deletable: each deletion is classified from its own bytes.
    """
    present = set(nodes)
    roots = oracle.roots(repo, present)
    kinds = SCOPE_KINDS[scope]
    listed = {digest: _listing_kind(node) for digest, node in nodes.items()}

    def may_go(digest: str) -> bool:
        # What the listing allows: an index entry may mark any plain manifest an attestation.
        kind = listed[digest]
        possible = {kind, "attestation"} if kind == "image" else {kind}
        return None in possible or not possible.isdisjoint(kinds)

    if not any(may_go(d) for d in present - roots):
        return set()
    first = {d for d, node in nodes.items() if node.kind in ("index", "unknown")}
    kept = set(roots)
    for digest, node in nodes.items():
        if digest in first:
            if node.kind not in kinds:
                kept.add(digest)  # read: its kind is known
        elif listed[digest] is not None and listed[digest] not in kinds:
            kept.add(digest)
    return first | (present - oracle.reach(repo, present, kept))


def _waves(edges: Mapping[str, set[str]], garbage: set[str]) -> list[set[str]]:
    """The garbage in delete waves: each manifest after every garbage manifest that keeps it
    (an index before its children, a subject before its referrers), as early as that allows."""
    level: dict[str, int] = {}
    parents: dict[str, set[str]] = {d: set() for d in garbage}
    for parent in garbage:
        for child in edges.get(parent, ()):
            if child in garbage:
                parents[child].add(parent)

    def depth(digest: str) -> int:
        if digest not in level:
            level[digest] = 1 + max((depth(p) for p in parents[digest]), default=-1)
        return level[digest]

    waves: list[set[str]] = []
    for digest in sorted(garbage):
        n = depth(digest)
        while len(waves) <= n:
            waves.append(set())
        waves[n].add(digest)
    return waves


@contextmanager
def decision_log() -> Iterator[None]:
    """Log every decision as the Lambda does (its formatter: one JSON line per decision), to
    /dev/null: the run's memory includes formatting them."""
    logger = logging.getLogger("ecr_sweeper")
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(DecisionLinesFormatter(service="ecr-sweeper"))
        saved = logger.level, logger.propagate
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


# The principal the bench's credentials call as (the harness's stand-in), as SWEEPER_ROLE_ARN names
# the function's role: the run registers it, and its reads are not pulls.
SWEEPER_ROLE = MOTO_USER.format(account="123456789012")


def sweep(
    session: boto3.Session,
    meter: CallMeter,
    settings: Settings,
    now: datetime,
    latency: Latency | None = None,
    store: ManifestStore | None = None,
    run_id: str = "",
) -> dict[str, Any]:
    """One run as the Lambda makes it, from the client to the report (the one place the
    benchmarks call the sweeper). `latency`, if any, is hooked onto the run's own client;
    `store` and `run_id` are the run's manifest store and journal name (store_bench)."""
    client = make_client(session)
    meter.attach(client)
    if latency is not None:
        latency.attach(client)
    options = RunOptions(principal=SWEEPER_ROLE, store=store, run_id=run_id)
    return Sweeper(EcrRegistry(client), settings, now, options).run().as_dict()


@dataclass
class Timing:
    """How long the run took, and how busy it kept the pool and the process's CPU."""

    latency_ms: float
    wall_seconds: float
    cpu_seconds: float  # the whole process's: moto answering in-process included
    server_cpu_seconds: float  # moto's share of it (Latency.server_cpu_seconds)
    calls: int  # HTTP attempts that got an answer
    in_flight: float  # calls under way at once, on average over the run

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "wall_seconds": round(self.wall_seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "calls": self.calls,
            "calls_per_second": round(self.calls / max(self.wall_seconds, 1e-9), 1),
            "cpu_ms_per_call": round(1000 * self.cpu_seconds / max(self.calls, 1), 3),
            "client_cpu_ms_per_call": round(
                1000 * (self.cpu_seconds - self.server_cpu_seconds) / max(self.calls, 1), 3
            ),
            "in_flight": round(self.in_flight, 2),
        }


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
            "min_age_hours": GRACE / timedelta(hours=1),
            "keep_pulled_within_days": PULLED_WITHIN / timedelta(days=1),
        },
        {},
    )


def measure(
    args: argparse.Namespace, repositories: int, builds: int, now: datetime
) -> tuple[Measured, Bound, Settings]:
    """Build the registry, sweep it once (for real), and check the outcome against the oracle."""
    estate = realistic_registry(repositories, builds, now=now, seed=args.seed)
    settings = settings_for(estate.pins, args.scope, args.concurrency)
    with ExitStack() as stack:
        registry = stack.enter_context(FakeRegistry())
        if args.moto == "short":
            stack.enter_context(fast_responses())
        started = time.perf_counter()
        load(registry, estate.pushes)
        seed_seconds = time.perf_counter() - started
        described = model(estate, now, grace=GRACE, pulled_within=PULLED_WITHIN)
        del estate
        bound = lower_bound(described, args.scope, dry_run=settings.dry_run)
        del described
        before = {name: registry.digests(name) for name in bound.expected}
        session = boto3.Session(region_name=registry.region)
        meter = CallMeter()
        stack.enter_context(decision_log())

        # What the harness derives from the stored bytes, it keeps: not the run's memory.
        registry.derive_details()
        gc.collect()  # the baseline without the garbage of seeding
        rss_before = rss_mib()
        latency = Latency(args.latency_ms / 1000)
        with ExitStack() as traced:
            # Tracing every allocation slows the run down: timing runs may leave it out.
            grown = traced.enter_context(growth()) if args.memory else None
            wall, cpu = time.perf_counter(), time.process_time()
            report = sweep(session, meter, settings, now, latency)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        meter.tally()
        after = {name: registry.digests(name) for name in bound.expected}
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
    )
    return measured, bound, settings


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
    size: str,
    bound: Bound,
    measured: Measured,
    settings: Settings,
    moto: str,
    benchmark: str = "registry",
    memory_targets: Mapping[str, float] = MEMORY_TARGET_MIB,
) -> dict[str, Any]:
    """One run's figures against its bound and the targets (store_bench: one night's, under its
    own name and memory target, to which it adds the store's figures)."""
    report = measured.report
    memory_target = memory_targets.get(size)
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "size": size,
        "command": " ".join([os.path.basename(sys.executable), "-m", f"bench.{benchmark}_bench"])
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
            "calls_vs_bound": round(measured.total_calls / max(1, bound.total), 4),
            "calls_vs_strict_bound": round(measured.total_calls / max(1, bound.strict_total), 4),
            "complete": report["complete"],
            "stopped_early": report["stopped_early"],
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


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def render(result: Mapping[str, Any]) -> str:
    """The figures as a person reads them."""
    reg, bound, run = result["registry"], result["bound"], result["run"]
    memory = run["memory_mib"]
    lines = [
        f"ecr-sweeper registry benchmark ({result['size']}): {reg['repositories']} repositories, "
        f"{reg['manifests']} manifests, scope {result['settings']['scope']}, "
        f"concurrency {run['concurrency']}",
        f"  registry seeded in {reg['seed_seconds']} s; must read {reg['must_read']} manifests, "
        f"delete {reg['deletions']} (at most {reg['max_waves']} waves in one repository)",
        "",
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
        "",
        f"  memory: the run's peak is {memory['peak_growth']} MiB above the baseline"
        + (f" (target at most {target:g} MiB)" if target is not None else ""),
        f"    ({memory['measured_by']}; the process held {memory['rss_before_run']} MiB RSS "
        "before it, the seeded registry included)",
        "",
        "  targets: " + ", ".join(f"{k}={v}" for k, v in result["targets"].items()),
    ]
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
    parser.add_argument("--json", type=Path, help="where to write the figures (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    repositories, builds = SIZES[args.size]
    repositories = args.repositories or repositories
    builds = args.builds or builds
    now = datetime.now(UTC).replace(microsecond=0)
    measured, bound, settings = measure(args, repositories, builds, now)
    result = summarise(args.size, bound, measured, settings, args.moto)
    print(render(result), flush=True)
    path = args.json or Path(f"bench-results-{args.size}.json")
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"  figures written to {path}")
    return result


if __name__ == "__main__":
    main()
