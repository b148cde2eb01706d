"""Benchmark: how long the ECS and Lambda pin sources take, and how many calls they make.

    PYTHONPATH=src/handler:tests python tests/benchmarks/pin_sources.py [--latency-ms 20]

Builds an account in moto (harness.workloads): task definitions, running tasks, services (half
scaled to zero), image functions with published versions; then reads the sources with 1 and with 8
workers. `--latency-ms` adds a fixed delay to every HTTP attempt (a before-send hook) to model the
API's round trip, which is what the workers overlap; moto alone answers in well under a
millisecond of that.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from typing import Any

import boto3

from harness import FakeRegistry, oci
from harness.workloads import AwsEvents, Workloads, shared_botocore_loader
from sweeper.pins import EcsPins, LambdaPins, PinSource, collect


def build(
    aws: Workloads, definitions: int, tasks: int, functions: int, versions: int, services: int = 0
) -> None:
    digests = [aws.registry.push("app", oci.image_manifest(f"bench-{i}")) for i in range(20)]
    uris = [aws.image_uri("app", d) for d in digests]
    for i in range(definitions):
        aws.register_task_definition(f"service-{i % 50}", [uris[i % 20]], fast=True)
    arn = aws.register_task_definition("web", [uris[0]])
    for i in range(tasks):
        aws.run_task(f"cluster-{i % 3}", arn)
    for i in range(services):  # each with its current revision (harness.workloads)
        aws.create_service(f"cluster-{i % 3}", f"service-{i:03}", arn, desired=i % 2)
    for i in range(functions):
        aws.create_image_function(f"fn-{i:03}", uris[i % 20], publish=False)
        aws.publish_versions(f"fn-{i:03}", [uris[(i + v) % 20] for v in range(versions)])


def measure(
    kind: type[EcsPins | LambdaPins], service: str, workers: int, latency: float
) -> tuple[float, int, Counter[str]]:
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    def wait(**_: Any) -> None:
        time.sleep(latency)

    with AwsEvents() as events:
        events.on(f"before-call.{service}", count)
        if latency:
            events.on(f"before-send.{service}", wait)
        source: PinSource = kind(boto3.client(service), workers=workers)  # type: ignore[call-overload]
        started = time.perf_counter()
        _, counts = collect([source])
        elapsed = time.perf_counter() - started
    return elapsed, counts[service], calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--definitions", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=150)
    parser.add_argument("--functions", type=int, default=100)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--services", type=int, default=60)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with shared_botocore_loader(), FakeRegistry() as registry, Workloads(registry) as aws:
        started = time.perf_counter()
        build(aws, args.definitions, args.tasks, args.functions, args.versions, args.services)
        print(
            f"account: {args.definitions + 1} task definitions, {args.tasks} running tasks, "
            f"{args.services} services, "
            f"{args.functions} image functions x ({args.versions} versions + $LATEST) "
            f"built in {time.perf_counter() - started:.1f}s; latency {args.latency_ms:g} ms/call"
        )
        for workers in (1, 8):
            for kind, service in ((EcsPins, "ecs"), (LambdaPins, "lambda")):
                elapsed, pins, calls = measure(kind, service, workers, args.latency_ms / 1000)
                detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
                print(
                    f"{service:<6} workers={workers}: {elapsed:6.2f}s  {pins} pins  "
                    f"{sum(calls.values())} calls ({detail})"
                )


if __name__ == "__main__":
    main()
