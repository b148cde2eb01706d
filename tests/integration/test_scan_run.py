"""The scan of one repository, end to end: what it reads (and how few calls that takes), what it
keeps when its evidence is missing and why, and what its report and log lines say.

Each scenario is the promise seen from the scan's side: an index ECR will not serve keeps its
whole repository (and only it), a listing that came whole proves absences for the other
repositories, retention counts images as people mean them, the bytes-freed figure stays known
when someone else deletes a survivor, and the reads take as few BatchGetImage calls as the
manifests need (docs/performance.md, "The lower bound").
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID

from conftest import FUNCTION_PRINCIPAL, NOW, OLD, Invoke
from harness import FakeRegistry, oci
from harness.faults import Attempt, Inject, ServerError, Wire, fast_retries, intercept_clients
from harness.fresh import fresh_registry
from harness.lambda_output import captured, log_lines
from harness.retention import TRANSITIONED_90_DAYS
from harness.workloads import AwsEvents
from sweeper import ports
from sweeper.cli.commands import Finished
from sweeper.cli.parser import SHOW_ALL
from sweeper.cli.render import print_tables
from sweeper.clock import use_clock
from sweeper.explain import short
from sweeper.lifecycle import RetentionPolicy, parse_rules
from sweeper.model import HeldTag
from sweeper.registry import EcrRegistry, make_client
from sweeper.run import RunOptions, Sweeper
from sweeper.settings import Settings
from sweeper.store import DirectoryStore

REPO = "app"
OTHER = "web"
REGISTRY_HOST = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com"
REQUEST: dict[str, Any] = {"dry_run": False, "scope": "orphans"}


@pytest.fixture(autouse=True)
def _fixed_clock() -> Iterator[None]:
    with use_clock(lambda: NOW):  # ages are judged as of the pushes' `NOW`
        yield


def refuse(events: AwsEvents, *refused: str, code: str = "KmsError") -> None:
    """ECR answers BatchGetImage for `refused` with a per-item failure, as for a manifest
    encrypted with a KMS key the function may not use."""

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        images = parsed.get("images", [])
        parsed["images"] = [i for i in images if i["imageId"].get("imageDigest") not in refused]
        parsed["failures"] = [
            *parsed.get("failures", []),
            *(
                {"imageId": i["imageId"], "failureCode": code, "failureReason": "no"}
                for i in images
                if i["imageId"].get("imageDigest") in refused
            ),
        ]

    events.on("after-call.ecr.BatchGetImage", hook)


def sizes(registry: FakeRegistry, repo: str) -> dict[str, int]:
    """Each listed manifest's size, as the listing gives it."""
    return {
        d["imageDigest"]: d["imageSizeInBytes"]
        for page in registry.client.get_paginator("describe_images").paginate(repositoryName=repo)
        for d in page["imageDetails"]
    }


def decision_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(text) if line["message"] == "decision"]


# --- an index ECR will not serve ---------------------------------------------------------------


def test_an_index_ecr_will_not_serve_keeps_its_repository_whole_and_says_which(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Missing evidence: an index that cannot be read may list anything, so its repository
    deletes nothing this run, every manifest of it logged as kept for that; the failure names
    the index and ECR's answer. The other repository is swept as usual."""
    orphan = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
    tagged = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    gone = registry.push(OTHER, oci.image_manifest("web orphan"), pushed_at=OLD)
    release = registry.push(OTHER, oci.image_manifest("web release"), tags=["v1"], pushed_at=OLD)
    listed = sizes(registry, REPO)
    with AwsEvents() as events, captured() as out:
        refuse(events, orphan.index)
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == orphan.all | tagged.all
    assert registry.digests(OTHER) == {release} and gone not in registry.digests(OTHER)
    assert report["failures"] == [
        {
            "repository": REPO,
            "digest": orphan.index,
            "code": "KmsError",
            "message": "cannot read a manifest that may list others: no",
        }
    ]
    assert report["kept"]["unreadable"] == len(listed)
    lines = decision_lines(out.getvalue())
    kept_here = {
        line["digest"]: (
            line["kind"],
            line["verdict"],
            line["reason"],
            line["cause"],
            line["size"],
        )
        for line in lines
        if line["repository"] == REPO
    }
    assert kept_here == {
        digest: ("unclassified", "keep", "unreadable", "repository incomplete", size)
        for digest, size in listed.items()
    }
    # The other repository's keeps are logged under its own name.
    assert {
        (line["repository"], line["reason"]) for line in lines if line["digest"] == release
    } == {(OTHER, "tagged")}


def test_the_commands_tables_show_every_manifest_of_a_repository_kept_whole(
    registry: FakeRegistry,
) -> None:
    """The command keeps every decision for its tables (`plan --show all`): those of a
    repository kept whole for an unreadable index as well as those of a planned one."""
    orphan = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
    tagged = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    gone = registry.push(OTHER, oci.image_manifest("web orphan"), pushed_at=OLD)
    release = registry.push(OTHER, oci.image_manifest("web release"), tags=["v1"], pushed_at=OLD)
    finished = Finished()
    options = RunOptions(
        pins={},
        principal=FUNCTION_PRINCIPAL,
        retain_decisions=True,
        on_repository_done=finished.add,
    )
    with AwsEvents() as events:
        refuse(events, orphan.index)
        report = Sweeper(EcrRegistry(make_client()), Settings(), NOW, options).run()
    out = io.StringIO()
    print_tables(out, finished.ordered(report), NOW, SHOW_ALL)

    # KIND DIGEST AGE SIZE (number unit) VERDICT REASON CAUSE
    rows = {
        line.split()[1]: line.split() for line in out.getvalue().splitlines() if "sha256:" in line
    }
    assert set(rows) == {short(d) for d in orphan.all | tagged.all | {gone, release}}
    for digest in orphan.all | tagged.all:
        assert rows[short(digest)][5:] == ["keep", "unreadable", "repository", "incomplete"]
        assert rows[short(digest)][2] == "30d"  # its age, from the listing
    assert rows[short(release)][5:8] == ["keep", "tagged", "v1"]
    assert rows[short(gone)][5:7] == ["delete", "unreachable"]


def test_a_listing_that_came_whole_proves_an_absence_though_a_later_read_failed(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """A repository whose reads failed after its listing came whole is incomplete, but what it
    holds is known: a signature elsewhere whose subject no repository holds still goes (a
    listing that failed would have kept it, as its subject could be there)."""
    signed = oci.image_manifest("deleted long ago")
    signature = registry.push("sigs", oci.notation_signature(signed), pushed_at=OLD)
    untagged = registry.push(REPO, oci.image_manifest("app orphan"), pushed_at=OLD)
    wire = Wire(Inject("BatchGetImage", ServerError(), repository=REPO))
    with intercept_clients(wire), fast_retries():
        report = invoke(**REQUEST)

    assert registry.digests(REPO) == {untagged}
    assert signature not in registry.digests("sigs")
    assert [(f["repository"], f["code"]) for f in report["failures"]] == [(REPO, "ServerException")]


# --- what the scan reads -----------------------------------------------------------------------

KEEP_ONE_CI = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "keep the newest CI build",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        }
    ]
}


BATCH = 4  # BatchGetImage's limit, made small so that a few manifests fill a call


def _count_reads(
    registry: FakeRegistry, read_limit: int, settings: Settings, held: tuple[HeldTag, ...]
) -> tuple[int, int]:
    """A dry run of the registry: (BatchGetImage calls, manifests planned)."""
    options = RunOptions(
        pins={},
        principal=FUNCTION_PRINCIPAL,
        freed_bytes_read_limit=read_limit,
        held_tags=held,
    )
    with intercept_clients(Wire()) as wire:
        report = Sweeper(EcrRegistry(make_client()), settings, NOW, options).run()
    assert report.complete
    assert report.bytes_freed_unknown == 0  # every manifest the figure needs was read
    return wire.calls["BatchGetImage"], report.planned.manifests


def nothing_could_go(registry: FakeRegistry) -> int:
    registry.push_buildx(REPO, tag="latest", pushed_at=NOW - timedelta(hours=1))
    registry.push(REPO, oci.image_manifest("release"), tags=["v1"], pushed_at=OLD)
    return 0  # every manifest tagged or young, no rule to judge, no policy: no bytes needed


def one_orphan_tree(registry: FakeRegistry) -> int:
    registry.push_buildx(REPO, tag=None, pushed_at=OLD)  # index, image, attestation
    registry.push(REPO, oci.image_manifest("release"), tags=["v1"], pushed_at=OLD)
    return 3  # four manifests: the index and, in its call's room, all the others


def two_orphan_trees(registry: FakeRegistry) -> int:
    registry.push_buildx(REPO, tag=None, pushed_at=OLD)
    registry.push_buildx(REPO, tag=None, pushed_at=OLD)
    registry.push(REPO, oci.image_manifest("release"), tags=["v1"], pushed_at=OLD)
    # Seven manifests, two calls: both indexes and two children, then the two other children
    # with the tagged image (a survivor the bytes-freed figure needs) in the same call.
    return 6


def an_expired_build_a_workload_runs(registry: FakeRegistry) -> int:
    for n in (1, 2):
        registry.push(
            REPO,
            oci.image_manifest(f"ci {n}"),
            tags=[f"ci-{n}"],
            pushed_at=OLD + timedelta(hours=n),
        )
    return 0  # ci-1 is expired, but a workload runs it: nothing could go, nothing is read


RETAIN_ONE_CI = Settings(
    retention=(RetentionPolicy(parse_rules(KEEP_ONE_CI["rules"], "retention[0].rules")),)
)
RUNS_CI_1 = (HeldTag(REGISTRY_HOST, REPO, "ci-1", "ecs"),)

# scenario -> (builds the registry and returns the deletions planned, BatchGetImage calls,
# the run's read limit for the bytes-freed figure, the settings, tags something runs by)
READS: dict[str, tuple[Any, int, int, Settings, tuple[HeldTag, ...]]] = {
    "nothing could go": (nothing_could_go, 0, 50_000, Settings(), ()),
    "one orphan tree and a tagged image fill one call": (
        one_orphan_tree,
        1,
        50_000,
        Settings(),
        (),
    ),
    "two orphan trees and a tagged image fill two calls": (
        two_orphan_trees,
        2,
        50_000,
        Settings(),
        (),
    ),
    "the read limit has room for exactly the one survivor": (
        two_orphan_trees,
        2,
        1,
        Settings(),
        (),
    ),
    "an expired build whose tag a workload runs": (
        an_expired_build_a_workload_runs,
        0,
        50_000,
        RETAIN_ONE_CI,
        RUNS_CI_1,
    ),
}


@pytest.mark.parametrize(
    ("build", "calls", "limit", "settings", "held"), READS.values(), ids=READS.keys()
)
def test_the_scan_reads_in_as_few_calls_as_the_manifests_need(
    registry: FakeRegistry,
    monkeypatch: pytest.MonkeyPatch,
    build: Any,
    calls: int,
    limit: int,
    settings: Settings,
    held: tuple[HeldTag, ...],
) -> None:
    monkeypatch.setattr(ports, "BATCH_SIZE", BATCH)
    planned = build(registry)
    assert _count_reads(registry, limit, settings, held) == (calls, planned)


# --- retention and the audit -------------------------------------------------------------------

KEEP_ONE = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "keep the newest image",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"},
        }
    ]
}


def test_retention_counts_images_as_people_mean_them_when_nothing_could_go(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three young multi-platform builds (Docker manifest lists, whose platform images the
    listing alone proves images): a rule keeping the newest image expires the two older
    builds (held by the grace period), not their platform images, although nothing could be
    deleted today and no lifecycle policy is audited: the lists are read to tell."""
    for n in range(3):
        when = NOW - timedelta(hours=3 - n)
        entries = []
        for arch in ("linux/amd64", "linux/arm64"):
            child = oci.image_manifest(f"{n} {arch}", docker=True, platform=arch)
            registry.push(REPO, child, pushed_at=when)
            entries.append(child.descriptor(platform=arch))
        listing = oci.manifest_list(entries)
        registry.push(REPO, listing, tags=[f"v{n}"], pushed_at=when)
    monkeypatch.setenv("RETENTION", json.dumps([KEEP_ONE]))
    report = invoke(dry_run=True)
    assert report["retention"] == {
        "expired": 2,
        "deleted": 0,
        "held": {"within-grace-period": 2},
    }


def test_retention_for_some_repositories_applies_only_to_them(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = {
        repo: [
            registry.push(
                repo,
                oci.image_manifest(f"{repo} {n}"),
                tags=[f"ci-{n}"],
                pushed_at=OLD + timedelta(hours=n),
            )
            for n in range(3)
        ]
        for repo in ("ci/app", "prod/app")
    }
    monkeypatch.setenv("RETENTION", json.dumps([{"repositories": ["ci/*"], **KEEP_ONE}]))
    report = invoke(**REQUEST)
    assert registry.digests("ci/app") == {builds["ci/app"][-1]}
    assert registry.digests("prod/app") == set(builds["prod/app"])
    assert report["retention"] == {"expired": 2, "deleted": 2, "held": {}}


def test_a_build_a_rule_selects_and_a_release_tag_names_is_kept_for_the_release_tag(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cause of a tagged build is the tag that keeps it for good (the release), not the CI
    tag a rule will expire once newer builds come."""
    registry.push(REPO, oci.image_manifest("ci 1"), tags=["ci-1"], pushed_at=OLD)
    promoted = registry.push(
        REPO,
        oci.image_manifest("ci 2"),
        tags=["ci-2", "release-2"],
        pushed_at=OLD + timedelta(hours=1),
    )
    monkeypatch.setenv("RETENTION", json.dumps([KEEP_ONE_CI]))
    with captured() as out:
        report = invoke(**REQUEST)
    assert registry.tags(REPO) == {"ci-2": promoted, "release-2": promoted}
    assert report["retention"] == {"expired": 1, "deleted": 1, "held": {}}
    (line,) = [line for line in decision_lines(out.getvalue()) if line["digest"] == promoted]
    assert (line["verdict"], line["reason"], line["cause"]) == ("keep", "tagged", "release-2")


@pytest.mark.parametrize("audit", [True, False], ids=["audit on", "audit off"])
def test_the_audit_logs_each_hazard_and_each_rule_it_cannot_evaluate_and_off_reads_no_policy(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch, audit: bool
) -> None:
    """docs/operations.md: one `lifecycle hazard` line per hazard, with the report entry's keys;
    a rule the audit cannot evaluate is never silent either. With the audit off, the policy is
    not even read."""
    archived = registry.push(
        REPO, oci.image_manifest("archived"), tags=["v1"], pushed_at=OLD, archived=True
    )
    registry.put_lifecycle_policy(REPO, TRANSITIONED_90_DAYS)
    if not audit:
        monkeypatch.setenv("AUDIT_LIFECYCLE_POLICIES", "false")
    with intercept_clients(Wire()) as wire, captured() as out:
        report = invoke(dry_run=True, pins=[archived])
    assert report["complete"] is True
    lines = log_lines(out.getvalue())
    hazards = [line for line in lines if line["message"] == "lifecycle hazard"]
    rules = [line for line in lines if line["message"] == "lifecycle rule not evaluated"]
    if not audit:
        assert wire.calls["GetLifecyclePolicy"] == 0
        assert report["lifecycle_hazards"] == report["lifecycle_unevaluated"] == []
        assert hazards == rules == []
        return
    assert [(h["digest"], h["reason"]) for h in report["lifecycle_hazards"]] == [
        (archived, "pinned")
    ]
    (hazard,) = report["lifecycle_hazards"]
    assert [{k: line[k] for k in hazard} for line in hazards] == [hazard]
    assert hazards[0]["level"] == "WARNING"
    (rule,) = report["lifecycle_unevaluated"]
    assert [{k: line[k] for k in rule} for line in rules] == [rule]
    assert rules[0]["level"] == "WARNING"


# --- what an archived index may list -----------------------------------------------------------


def test_what_an_archived_index_ecr_will_not_serve_may_list_is_kept_as_unreadable_and_says_so(
    invoke: Invoke,
) -> None:
    """The children of an archived index ECR will not serve are kept as unreadable, the cause
    naming that index; those of a tagged index pushed later are kept as what it lists."""
    with fresh_registry(archived_manifests_readable=False) as registry:
        archived = registry.push_buildx(REPO, tag=None, pushed_at=OLD)
        registry.set_archived(REPO, archived.index)
        tagged = registry.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
        with captured() as out:
            report = invoke(**REQUEST)
        assert registry.digests(REPO) == archived.all | tagged.all
    assert report["complete"] is True
    decided = {
        line["digest"]: (line["verdict"], line["reason"], line["cause"])
        for line in decision_lines(out.getvalue())
    }
    for child in archived.all - {archived.index}:
        assert decided[child] == (
            "keep",
            "unreadable",
            f"may be listed by {archived.index} (archived, unreadable)",
        )
    for child in tagged.all - {tagged.index}:
        assert decided[child] == ("keep", "listed-by-kept-index", tagged.index)


# --- the bytes-freed figure --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refused", "why"), [(1, "1 manifest unreadable"), (2, "2 manifests unreadable")]
)
def test_the_bytes_freed_figure_says_how_many_manifests_could_not_be_read(
    registry: FakeRegistry, invoke: Invoke, refused: int, why: str
) -> None:
    orphans = [
        registry.push(REPO, oci.image_manifest(f"orphan {n}"), pushed_at=OLD) for n in range(3)
    ]
    registry.push(REPO, oci.image_manifest("release"), tags=["v1"], pushed_at=OLD)
    with AwsEvents() as events, captured() as out:
        refuse(events, *orphans[:refused])
        report = invoke(dry_run=True)
    assert report["planned"]["manifests"] == 3 - refused
    assert report["bytes_freed_unknown"] == 1
    (line,) = [line for line in log_lines(out.getvalue()) if line["message"] == "repository"]
    assert line["bytes_freed_unknown"] == why
    assert line.get("planned_bytes_freed") is None  # null: unknown, not zero


def test_a_survivor_deleted_by_someone_else_after_the_listing_leaves_the_figure_known(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    """Found gone when read, a survivor holds no blob: the figure is still known."""
    orphan = registry.push(REPO, oci.image_manifest("orphan"), pushed_at=OLD)
    kept = registry.push(REPO, oci.image_manifest("kept"), tags=["v1"], pushed_at=OLD)
    other = registry.push(REPO, oci.image_manifest("deleted meanwhile"), tags=["v2"], pushed_at=OLD)
    done: list[bool] = []

    def delete_before_the_first_read(attempt: Attempt) -> None:
        if attempt.operation == "BatchGetImage" and not done:
            done.append(True)
            registry.client.batch_delete_image(
                repositoryName=REPO, imageIds=[{"imageDigest": other}]
            )

    with intercept_clients(Wire(on_attempt=delete_before_the_first_read)):
        report = invoke(dry_run=True)
    assert done and registry.digests(REPO) == {orphan, kept}
    assert report["already_gone"] == {"manifests": 1}
    assert report["planned"]["manifests"] == 1
    assert report["bytes_freed_unknown"] == 0
    assert report["planned"]["bytes_freed"] > 0


# --- the manifest store ------------------------------------------------------------------------


def test_a_listing_that_fails_leaves_the_stored_manifests_of_its_repository_alone(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    """Nothing was read, so nothing is saved: the next run still takes the repository's
    manifests from the store instead of reading them from ECR again."""
    for _ in range(2):
        registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    store = DirectoryStore(tmp_path)

    def run(*rules: Inject) -> tuple[int, int]:
        options = RunOptions(pins={}, principal=FUNCTION_PRINCIPAL, store=store)
        with intercept_clients(Wire(*rules)) as wire, fast_retries():
            report = Sweeper(EcrRegistry(make_client()), Settings(), NOW, options).run()
        assert report.complete is (not rules)
        return wire.calls["BatchGetImage"], report.manifests_from_store

    first_reads, _ = run()
    assert first_reads > 0
    listing = Inject("DescribeImages", ServerError(), repository=REPO)
    assert run(listing) == (0, 0)
    assert run() == (0, len(registry.digests(REPO)))
