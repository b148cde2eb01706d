"""The pure planning step at a million manifests: CPU and peak memory, no moto, no API.

    python -m bench.plan_bench                        # 1,000,000 manifests in one repository
    python -m bench.plan_bench --blobs                # ... with the blob descriptors parse keeps
    python -m bench.plan_bench --repositories 1000    # the same million over 1,000 repositories

Builds `Image` and `Manifest` objects directly, shaped as a sweep hands them to
`sweeper.plan.make_plan`: every manifest listed; parsed content (kind, children, subject) for
every index and every would-be deletion. The mix is that of harness.bulk: buildx builds of one
to three platforms with legacy or OCI-artifact attestations, a `latest` tag that moves on every
build, release tags that stay, rebuilds sharing their platform images, cosign signatures,
indexes whose parent was deleted elsewhere, pins, recent pulls and young builds. Then it times
the two `make_plan` calls of a sweep (the provisional plan from the indexes alone, and the final
one) and prints CPU seconds and peak memory (the process's, inputs included); the figures also
go to a JSON file.

One repository of a million is ten times ECR's per-repository quota: the worst case for memory,
since a sweep plans one repository at a time. `--blobs` adds the config and layer descriptors
`manifests.parse` returns, which a sweep holds for the repository it is planning although the
planner never reads them.

`make_plan` runs with Python's garbage collector as a sweep leaves it: on, with its default
thresholds (the sweeper tunes no process-wide interpreter state). The benchmark collects
garbage itself between repositories (`gc.collect()`), so one repository's leftovers do not
count in the next one's peak; that is its own housekeeping, not the product's.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sweeper.manifests import (
    ATTESTATION_ARTIFACT,
    ATTESTATION_REFERENCE,
    IMAGE_CONFIG_TYPES,
    IN_TOTO_LAYER,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    REFERENCE_DIGEST,
    REFERENCE_TYPE,
)
from sweeper.model import NO_ANNOTATIONS, Descriptor, Image, Kind, Manifest, Pin, Scope
from sweeper.plan import Policy, make_plan, may_delete, needs_content

from .measure import machine, peak_mib, reset_peak, rss_mib

OCI_CONFIG = sorted(IMAGE_CONFIG_TYPES)[-1]  # application/vnd.oci.image.config.v1+json
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
COSIGN = "application/vnd.dev.sigstore.bundle.v0.3+json"
PROVENANCE = {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}
CPU_TARGET_SECONDS = 60.0
MEMORY_TARGET_MIB = 1.5 * 1024


@dataclass
class Estate:
    """One repository's listing and the parsed content a sweep would hand the planner."""

    name: str
    images: list[Image] = field(default_factory=list)
    content: dict[str, Manifest] = field(default_factory=dict)


class _Digests:
    """Distinct sha256 digests, fast: a counter hashed once each."""

    def __init__(self, salt: str) -> None:
        self._counter = itertools.count()
        self._salt = salt.encode()

    def __call__(self) -> str:
        data = self._salt + next(self._counter).to_bytes(8, "big")
        return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(
    digest: _Digests, media_type: str, annotations: dict[str, str] | None = None
) -> Descriptor:
    # As manifests.parse makes them: no annotations is the one shared empty mapping.
    return Descriptor(digest(), media_type, 30_000_000, None, annotations or NO_ANNOTATIONS)


def build(
    manifests: int, repositories: int, now: datetime, *, blobs: bool = False, seed: int = 0
) -> Iterator[Estate]:
    """Repositories of `manifests // repositories` manifests each, one at a time.

    With `blobs`, parsed manifests carry their config and layer descriptors as
    `manifests.parse` returns them (what a sweep holds while it plans one repository); the
    planner itself never reads them.
    """
    per_repository = manifests // repositories
    for number in range(repositories):
        rng = random.Random(f"{seed}:{number}")
        yield _repository(f"service-{number:05d}", per_repository, now, rng, blobs)


def _repository(name: str, size: int, now: datetime, rng: random.Random, blobs: bool) -> Estate:
    def kept(descriptors: tuple[Descriptor, ...]) -> tuple[Descriptor, ...]:
        return descriptors if blobs else ()

    estate = Estate(name)
    digest = _Digests(name)
    previous: list[tuple[str, Descriptor]] = []
    releases = 0
    build = 0
    while len(estate.images) < size:
        build += 1
        when = now - timedelta(days=180 * (1 - len(estate.images) / size), hours=rng.random())
        platforms = rng.choices((1, 2, 3), weights=(60, 30, 10))[0]
        legacy = rng.random() < 0.6
        entries: list[Descriptor] = []
        shared = bool(previous) and rng.random() < 0.15
        images = previous if shared else []
        if not shared:
            base = [_layer(digest, OCI_LAYER) for _ in range(2)]
            for _ in range(platforms):
                image = digest()
                layers = kept((_layer(digest, OCI_CONFIG), *base, _layer(digest, OCI_LAYER)))
                estate.images.append(Image(image, (), when, 60_000_000, OCI_MANIFEST, OCI_CONFIG))
                estate.content[image] = Manifest(
                    Kind.IMAGE, OCI_MANIFEST, (), None, None, layers, "container image"
                )
                images.append((image, Descriptor(image, OCI_MANIFEST, 1_200, "linux/amd64")))
        previous = images
        entries.extend(entry for _, entry in images)
        for image, _ in images:
            attestation = digest()
            layers = kept(
                (
                    _layer(digest, OCI_EMPTY if not legacy else OCI_CONFIG),
                    _layer(digest, IN_TOTO_LAYER, PROVENANCE),
                )
            )
            if legacy:
                estate.images.append(Image(attestation, (), when, 9_000, OCI_MANIFEST, OCI_CONFIG))
                parsed = Manifest(
                    Kind.ATTESTATION,
                    OCI_MANIFEST,
                    (),
                    None,
                    None,
                    layers,
                    "buildx attestation (in-toto layers)",
                )
            else:
                estate.images.append(
                    Image(attestation, (), when, 9_000, OCI_MANIFEST, ATTESTATION_ARTIFACT, image)
                )
                parsed = Manifest(
                    Kind.ATTESTATION,
                    OCI_MANIFEST,
                    (),
                    image,
                    ATTESTATION_ARTIFACT,
                    layers,
                    "buildx attestation (OCI artifact)",
                )
            estate.content[attestation] = parsed
            entries.append(
                Descriptor(
                    attestation,
                    OCI_MANIFEST,
                    800,
                    "unknown/unknown",
                    {REFERENCE_TYPE: ATTESTATION_REFERENCE, REFERENCE_DIGEST: image},
                )
            )
        if rng.random() < 0.03:
            continue  # the index was deleted elsewhere: its children have no parent
        index = digest()
        tags: tuple[str, ...] = ()
        if rng.random() < 0.1:
            releases += 1
            tags = (f"v1.{releases}",)
        pulled = now - timedelta(days=rng.uniform(0, 20)) if rng.random() < 0.04 else None
        estate.images.append(Image(index, tags, when, 60_000_000, OCI_INDEX, None, None, pulled))
        estate.content[index] = Manifest(
            Kind.INDEX, OCI_INDEX, tuple(entries), None, None, (), f"index of {len(entries)}"
        )
        if rng.random() < 0.25:
            signature = digest()
            estate.images.append(Image(signature, (), when, 5_000, OCI_MANIFEST, COSIGN, index))
            estate.content[signature] = Manifest(
                Kind.REFERRER,
                OCI_MANIFEST,
                (),
                index,
                COSIGN,
                kept((_layer(digest, OCI_EMPTY), _layer(digest, COSIGN))),
                f"{COSIGN} referrer",
            )
    # The newest build is tagged latest (the tag moved on every build) and young.
    last = next(i for i in reversed(estate.images) if i.media_type == OCI_INDEX)
    estate.images[estate.images.index(last)] = Image(
        last.digest, ("latest", *last.tags), now - timedelta(hours=1), last.size, last.media_type
    )
    return estate


def pins_for(estate: Estate, rng: random.Random) -> dict[str, Pin]:
    indexes = [i.digest for i in estate.images if i.media_type == OCI_INDEX]
    chosen = rng.sample(indexes, max(1, len(indexes) // 500))
    return {d: Pin(d, f"bench:{estate.name}@{d}") for d in chosen}


def plan_one(estate: Estate, policy: Policy, now: datetime) -> dict[str, float]:
    """The two make_plan calls of a sweep, timed; returns CPU seconds and what was planned."""
    pins = pins_for(estate, random.Random(estate.name))
    may_go = any(may_delete(i, pins, policy, now) for i in estate.images)
    indexes = {
        i.digest: estate.content[i.digest] for i in estate.images if may_go and needs_content(i)
    }
    started = time.process_time()
    first = make_plan(estate.name, estate.images, indexes, pins, policy, now, provisional=True)
    provisional = time.process_time() - started
    del indexes
    wanted = set(first.deletions)
    del first
    content = {d: m for d, m in estate.content.items() if d in wanted or m.kind is Kind.INDEX}
    started = time.process_time()
    plan = make_plan(estate.name, estate.images, content, pins, policy, now)
    final = time.process_time() - started
    return {
        "provisional_cpu_seconds": provisional,
        "final_cpu_seconds": final,
        "deletions": len(plan.deletions),
        "waves": len(plan.waves),
        "decisions": len(plan.decisions),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench.plan_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--manifests", type=int, default=1_000_000)
    parser.add_argument("--repositories", type=int, default=1)
    parser.add_argument("--scope", choices=("orphans", "attestations"), default="orphans")
    parser.add_argument(
        "--blobs",
        action="store_true",
        help="parsed manifests with their config and layer descriptors, as a sweep holds them "
        "for the repository it plans (the planner never reads them)",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results-plan.json"))
    args = parser.parse_args(argv)
    now = datetime.now(UTC).replace(microsecond=0)
    policy = Policy(scope=Scope(args.scope))
    totals: dict[str, float] = dict.fromkeys(
        ("provisional_cpu_seconds", "final_cpu_seconds", "deletions", "decisions", "build_seconds"),
        0.0,
    )
    waves = 0
    peak_input = peak_plan = 0.0
    baseline = rss_mib() or 0.0
    for estate in _timed(build(args.manifests, args.repositories, now, blobs=args.blobs), totals):
        input_rss = rss_mib() or 0.0
        peak_input = max(peak_input, input_rss)
        reset_peak()
        figures = plan_one(estate, policy, now)
        peak_plan = max(peak_plan, peak_mib() or 0.0)
        for key in ("provisional_cpu_seconds", "final_cpu_seconds", "deletions", "decisions"):
            totals[key] += figures[key]
        waves = max(waves, int(figures["waves"]))
        del estate
        gc.collect()  # the benchmark's own housekeeping (see the module's docstring)
    cpu = totals["provisional_cpu_seconds"] + totals["final_cpu_seconds"]
    result: dict[str, Any] = {
        "benchmark": "plan",
        "command": f"{os.path.basename(sys.executable)} -m bench.plan_bench "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "manifests": int(totals["decisions"]),
        "repositories": args.repositories,
        "scope": args.scope,
        "blobs_in_inputs": args.blobs,
        "deletions": int(totals["deletions"]),
        "max_waves": waves,
        "build_seconds": round(totals["build_seconds"], 1),
        "make_plan_cpu_seconds": {
            "provisional": round(totals["provisional_cpu_seconds"], 2),
            "final": round(totals["final_cpu_seconds"], 2),
            "total": round(cpu, 2),
        },
        "memory_mib": {
            "interpreter": round(baseline, 1),
            "with_inputs": round(peak_input, 1),
            "peak_while_planning": round(peak_plan, 1),
            "planning_growth": round(peak_plan - peak_input, 1),
        },
        "targets": {
            "cpu_under_60_s": cpu < CPU_TARGET_SECONDS,
            "peak_under_1_5_gib": peak_plan < MEMORY_TARGET_MIB,
        },
    }
    cpu_figures = result["make_plan_cpu_seconds"]
    memory = result["memory_mib"]
    print(
        f"ecr-sweeper plan benchmark: {result['manifests']} manifests in {args.repositories} "
        f"repositories, scope {args.scope}: {result['deletions']} deletions in at most {waves} "
        f"waves\n"
        f"  make_plan CPU: provisional {cpu_figures['provisional']} s + final "
        f"{cpu_figures['final']} s = {cpu_figures['total']} s (target < {CPU_TARGET_SECONDS:g} s)\n"
        f"  memory: {memory['with_inputs']} MiB with the inputs built, peak "
        f"{memory['peak_while_planning']} MiB while planning (+{memory['planning_growth']} MiB; "
        f"target < {MEMORY_TARGET_MIB:g} MiB)\n"
        f"  inputs built in {result['build_seconds']} s; targets: "
        + ", ".join(f"{k}={v}" for k, v in result["targets"].items()),
        flush=True,
    )
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  figures written to {args.json}")
    return result


def _timed(estates: Iterator[Estate], totals: dict[str, float]) -> Iterator[Estate]:
    while True:
        started = time.perf_counter()
        estate = next(estates, None)
        totals["build_seconds"] += time.perf_counter() - started
        if estate is None:
            return
        yield estate


if __name__ == "__main__":
    main()
