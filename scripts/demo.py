"""`make demo`: the ecr-sweeper command against an embedded registry, no AWS account needed.

The registry is moto's ECR as the test harness corrects it (tests/harness), seeded with what a
few months of `docker buildx build --push` leave behind. The command runs in this process, so
the same mock serves it: plan (a dry run, with the table of what would go and why), sweep, a
summary of what was reclaimed and kept, explain (why five manifests stayed) and validate.

    PYTHONPATH=src/handler:tests python scripts/demo.py

With arguments, it runs that one command of yours on the same registry instead (`make demo-cli
CMD='plan --repository shop/web'`): seeded afresh each time, with the same digests, so a digest
from one command's table can be explained by the next; a sweep's deletions do not persist.

    PYTHONPATH=src/handler:tests python scripts/demo.py explain shop/web <digest>
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from harness import FakeRegistry, oci
from harness.retention import CI_POLICY, seed_ci_repositories
from sweeper import clock
from sweeper.cli import human_bytes, main
from sweeper.explain import short

REGION = "us-east-1"
ACCOUNT = "123456789012"
REGISTRY_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)

REPOSITORIES = ("shop/web", "shop/api", "charts/shop")
MEANINGS = {
    "tagged": "has a tag",
    "pinned": "a pin names it (the old release production runs, given with --pin)",
    "within-grace-period": "pushed less than 72 hours ago",
    "listed-by-kept-index": "a kept index lists it",
    "subject-kept": "signs or describes a kept manifest",
    "accessory-of-kept": "a cosign signature (tag sha256-<digest>.sig) of a kept manifest",
    "unknown-kind": "not something ecr-sweeper collects (Helm charts)",
}


def seed(reg: FakeRegistry, now: datetime) -> dict[str, str]:
    """A realistic registry; returns the digests the demo explains afterwards."""
    web = "shop/web"
    both = ("linux/amd64", "linux/arm64")
    # v1.2.0 went out 45 days ago; `latest` has moved on since, but production still runs it by
    # digest (the demo passes that image URI with --pin).
    release = reg.push_buildx(
        web, tag="latest", platforms=both, sbom=True, pushed_at=now - 45 * DAY
    )
    # Nightly-ish builds of `latest`: BuildKit wrote legacy attestations until the upgrade 20
    # days ago, OCI-artifact attestations (with a subject) since. Each push moves the tag.
    for days in (40, 34, 28, 22):
        reg.push_buildx(web, tag="latest", platforms=both, pushed_at=now - days * DAY)
    v13 = reg.push_buildx(
        web, tag="v1.3.0", platforms=both, sbom=True, attestation="artifact",
        pushed_at=now - 18 * DAY,
    )  # fmt: skip
    # The release is signed with cosign's tag scheme: a manifest tagged sha256-<its digest>.sig.
    v13_signature = reg.push(
        web,
        oci.cosign_legacy(v13.index, ".sig"),
        tags=[oci.accessory_tag(v13.index, ".sig")],
        pushed_at=now - 18 * DAY + HOUR,
    )
    for days in (12, 6):
        reg.push_buildx(
            web, tag="latest", platforms=both, attestation="artifact", pushed_at=now - days * DAY
        )
    # This morning's build took `latest`; CI is pushing another one right now (no tag yet).
    reg.push_buildx(
        web, tag="latest", platforms=both, attestation="artifact", pushed_at=now - 2 * HOUR
    )
    in_flight = reg.push_buildx(
        web, tag=None, platforms=both, attestation="artifact", pushed_at=now - 20 * MINUTE
    )

    api = "shop/api"
    # Single-platform builds, each signed with cosign (an OCI 1.1 referrer of the index).
    signed: dict[str, str] = {}
    for days, tag in ((30, "stable"), (16, "stable"), (9, "v2.0.0"), (4, "stable")):
        build = reg.push_buildx(api, tag=tag, pushed_at=now - days * DAY)
        index = oci.Manifest(reg.manifest(api, build.index), oci.OCI_INDEX)
        signed[tag] = reg.push(
            api, oci.cosign_signature(index, seed=days), pushed_at=now - days * DAY + HOUR
        )

    charts = "charts/shop"
    chart = reg.push(charts, oci.helm_chart("shop", "0.9.0"), pushed_at=now - 60 * DAY)
    reg.push(charts, oci.helm_chart("shop", "1.0.0"), tags=["1.0.0"], pushed_at=now - 10 * DAY)

    return {
        "release": release.index,
        "release-attestation": release.attestations["linux/arm64"],
        "v1.3.0": v13.index,
        "release-signature": v13_signature,
        "in-flight-attestation": in_flight.attestations["linux/amd64"],
        "signature": signed["v2.0.0"],
        "chart": chart,
    }


def command(args: Sequence[str], *, shown: Sequence[str] | None = None) -> int:
    print(f"\n$ ecr-sweeper {' '.join(shown if shown is not None else args)}", flush=True)
    return main([*args, "--region", REGION])


def captured(args: Sequence[str]) -> tuple[int, Any]:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main([*args, "--region", REGION])
    return code, json.loads(buffer.getvalue())


def summary(report: dict[str, Any], reg: FakeRegistry) -> None:
    deleted = report["deleted"]
    exclusion = report["pull_time_exclusions"]
    print(
        f"Pull-time exclusion: {report['pull_time_exclusion']} ({exclusion['principal']}): the "
        "sweeper's reads did not count as pulls."
    )
    print(
        f"Reclaimed {deleted['manifests']} manifests in {report['repositories']} repositories "
        f"of {report['manifests']} manifests: {human_bytes(deleted['bytes_freed'])} of blobs "
        f"really freed (layers and configs no kept manifest uses), "
        f"{human_bytes(deleted['bytes'])} nominal (the sum of imageSizeInBytes)."
    )
    print("Kept, and why:")
    for reason, count in sorted(report["kept"].items(), key=lambda item: -item[1]):
        print(f"  {count:3}  {reason:22} {MEANINGS.get(reason, '')}")
    print("Left in the registry:")
    for repo in REPOSITORIES:
        print(f"  {repo:12} {len(reg.digests(repo)):3} manifests, tags: {sorted(reg.tags(repo))}")
    if report["broken"]:
        print(f"Broken after the sweep: {report['broken']}")


def lifecycle_act(reg: FakeRegistry, now: datetime) -> list[int]:
    """CI builds under ECR's own "keep 25 CI builds" policy: the audit says what that policy would
    break, then the same rules as pin-aware retention reclaim what nothing holds."""
    (ci,) = seed_ci_repositories(reg, now, names=("shop/ci",), builds=80, days=5)
    print(
        f"\n# shop/ci: {len(ci.builds)} CI builds (ci-0 ... ci-{len(ci.builds) - 1}) under ECR's "
        "lifecycle policy 'keep 25 CI builds, expire untagged after 3 days'; two old builds are "
        f"pinned by what runs them, one was pulled yesterday, one was promoted to "
        f"{ci.release_tag}."
    )
    pins = [arg for pin in ci.pins for arg in ("--pin", f"{REGISTRY_HOST}/{pin}")]
    shown = ["--repository", "shop/ci", "--pin", "...", "--pin", "..."]
    # Exit 1 is the audit's answer here: ECR's policy is about to expire builds in use.
    audit = command(["audit", "--repository", "shop/ci", *pins], shown=["audit", *shown])
    with tempfile.TemporaryDirectory() as folder:
        rules = Path(folder, "retention.json")
        rules.write_text(json.dumps([{"rules": CI_POLICY["rules"]}]))
        print(
            f"\n$ ecr-sweeper sweep --yes {' '.join(shown)} --retention @retention.json --json"
            "  (summarised; the same rules, pin-aware)"
        )
        retain = ["--retention", f"@{rules}", "--json"]
        code, report = captured(["sweep", "--yes", "--repository", "shop/ci", *pins, *retain])
    retention = report["retention"]
    held = ", ".join(f"{n} {reason}" for reason, n in sorted(retention["held"].items()))
    print(
        f"Retention expired {retention['expired']} builds: {retention['deleted']} deleted with "
        f"what only they reach ({report['deleted']['manifests']} manifests, "
        f"{human_bytes(report['deleted']['bytes_freed'])} really freed); held: {held}."
    )
    tags = reg.tags("shop/ci")
    print(
        f"Left in shop/ci: {len(reg.digests('shop/ci'))} manifests; {ci.release_tag} and latest "
        f"still tagged: {ci.release_tag in tags and 'latest' in tags}."
    )
    return [0 if audit == 1 else 1, code]


def one_command(args: Sequence[str]) -> int:
    """`ecr-sweeper ARGS` on the demo's registry: the tour's repositories and shop/ci."""
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_DEFAULT_REGION"] = REGION
    now = clock.now()
    with FakeRegistry(region=REGION, account_id=ACCOUNT) as reg:
        notable = seed(reg, now)
        seed_ci_repositories(reg, now, names=("shop/ci",), builds=80, days=5)
        # As after the tour: its first command registered the operator as a pull-time update
        # exclusion (a fresh registry each time, so registered again here).
        reg.exclude()
        print(
            f"demo registry: {', '.join((*REPOSITORIES, 'shop/ci'))}; production runs "
            f"{REGISTRY_HOST}/shop/web@{notable['release']} (pin it with --pin)",
            file=sys.stderr,
        )
        return main([*args, "--region", REGION])


def run() -> int:
    # Everything stays inside the mock: no profile of the operator's may steer boto3 elsewhere.
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_DEFAULT_REGION"] = REGION
    now = clock.now()  # the command reads the same clock
    with (
        tempfile.TemporaryDirectory() as cache,
        FakeRegistry(region=REGION, account_id=ACCOUNT) as reg,
    ):
        # The command's manifest store and journal (by default under the user's cache): a
        # temporary one, gone with the demo.
        os.environ["XDG_CACHE_HOME"] = cache
        notable = seed(reg, now)
        pin_uri = f"{REGISTRY_HOST}/shop/web@{notable['release']}"
        settings = ["--pin", pin_uri]
        # Reading a manifest is a pull: the first command registers the operator as a pull-time
        # update exclusion (asked at a terminal; this flag answers yes), so what the demo reads
        # does not look recently pulled afterwards.
        codes = [command(["plan", "--register-pull-time-exclusion", *settings])]

        print(f"\n$ ecr-sweeper sweep --yes {' '.join(settings)} --json  (summarised)")
        code, report = captured(["sweep", "--yes", *settings, "--json"])
        codes.append(code)
        summary(report, reg)
        # Every deletion was journaled first, with its bytes: it can be put back.
        codes.append(command(["journal"]))
        index = next(d["digest"] for d in report["deletions"] if d["kind"] == "index")
        codes.append(
            command(
                ["restore", "--run", report["run_id"], "--digest", index, "--dry-run"],
                shown=["restore", "--run", report["run_id"], "--digest", short(index), "--dry-run"],
            )
        )

        for name in (
            "release-attestation",
            "release-signature",
            "in-flight-attestation",
            "signature",
            "chart",
        ):
            repo = (
                "charts/shop"
                if name == "chart"
                else "shop/api"
                if name == "signature"
                else "shop/web"
            )
            codes.append(
                command(
                    ["explain", repo, notable[name], *settings],
                    shown=["explain", repo, short(notable[name]), "--pin", "..."],
                )
            )
        codes.append(command(["validate"]))
        codes += lifecycle_act(reg, now)
    if any(codes):
        print(f"\ndemo: a command failed (exit codes {codes})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(one_command(sys.argv[1:]) if sys.argv[1:] else run())
