"""The scan's edges: a repository the run leaves unscanned, a scan cut short or failed, the
command's audit alone, and the reads they rest on. Each scenario checks what is left in the
registry and what the report and the log tell the operator (the failure's digest, code and
message, the cause of every keep, the hazards)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, OLD, Invoke
from harness import FakeRegistry, oci
from harness.faults import Attempt, Inject, ServerError, Wire, fast_retries, intercept_clients
from harness.lambda_output import captured, log_lines
from harness.workloads import AwsEvents
from sweeper import audit, ports
from sweeper import registry as ecr
from sweeper.model import HeldTag, Pin, Scope
from sweeper.registry import EcrRegistry, make_client
from sweeper.run import Report, RunOptions, StopReason, Sweeper
from sweeper.settings import Settings

REPO = "app"
BROKEN = "broken"
REQUEST: dict[str, Any] = {"dry_run": False, "scope": "orphans"}


def sweep(
    registry: FakeRegistry,
    wire: Wire | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> Report:
    """One run of the sweeper over `registry`, as the edges drive it."""
    settings = settings or Settings(dry_run=False, scope=Scope.ORPHANS, concurrency=1)
    run_options = RunOptions(principal=FUNCTION_PRINCIPAL, **options)
    with intercept_clients(wire or Wire()), fast_retries():
        return Sweeper(EcrRegistry(make_client()), settings, NOW, run_options).run()


def failures(report: Report) -> list[tuple[str, str, str, str]]:
    return [(f.repository, f.digest, f.code, f.message) for f in report.all_failures]


# --- a repository the run has no time or room for ------------------------------------------

TIME_UP = "the time budget ran out first"


@dataclass(frozen=True)
class Unscanned:
    options: dict[str, Any]
    code: str
    message: str
    stopped: StopReason
    left: int  # how many of the two repositories are not scanned


UNSCANNED = {
    "the time budget ran out before the scan": Unscanned(
        {"remaining_seconds": lambda: 0.0},
        "TimeBudget",
        f"not scanned: {TIME_UP}",
        StopReason.TIME_BUDGET,
        2,
    ),
    "the time budget ran out before the audit": Unscanned(
        {"remaining_seconds": lambda: 0.0, "audit_only": True},
        "TimeBudget",
        f"not audited: {TIME_UP}",
        StopReason.TIME_BUDGET,
        2,
    ),
    "an operator stopped the run before the audit": Unscanned(
        {"interrupted": lambda: True, "audit_only": True},
        "Interrupted",
        f"not audited: {TIME_UP}",
        StopReason.INTERRUPTED,
        2,
    ),
    "the first repository's plan filled the run's planned deletions": Unscanned(
        {"planned_deletions_limit": 1},
        "PlannedDeletionsLimit",
        "not scanned: the run holds 1 planned deletions already",
        StopReason.PLANNED_LIMIT,
        1,
    ),
}


@pytest.mark.parametrize("case", UNSCANNED.values(), ids=UNSCANNED.keys())
def test_a_repository_the_run_leaves_unscanned_deletes_nothing_and_says_why(
    registry: FakeRegistry, case: Unscanned
) -> None:
    for name in ("web", "api"):
        registry.push_buildx(name, tag="latest", pushed_at=OLD)
        registry.push_buildx(name, tag="latest", pushed_at=OLD)
    before = {name: registry.digests(name) for name in ("web", "api")}

    report = sweep(registry, **case.options)

    left = [r.repository for r in report.repositories if not r.scanned]
    assert len(left) == case.left
    for name in left:
        assert registry.digests(name) == before[name]
    # Each one left says so, with no digest: the repository, not a manifest of it, was left.
    assert failures(report) == [(name, "", case.code, case.message) for name in left]
    # The run says it stopped early, and why: the next run starts where this one stopped.
    assert report.stopped_early is case.stopped
    assert report.complete is False


# --- a scan that failed: the repository keeps everything, and the others' signatures -------


class Boom(RuntimeError):
    """An exception nobody foresaw."""


def explode(operation: str) -> Wire:
    def on_attempt(attempt: Attempt) -> None:
        if attempt.operation == operation and attempt.repository == BROKEN:
            raise Boom(f"unexpected answer to {operation}")

    return Wire(on_attempt=on_attempt)


def refuse(operation: str, code: str = "ServerException", status: int = 500) -> Wire:
    return Wire(Inject(operation, ServerError(status, code), repository=BROKEN))


@dataclass(frozen=True)
class Failed:
    wire: Callable[[], Wire]
    code: str
    message: str
    cause: str  # of every manifest of BROKEN, kept as unreadable
    listed: bool  # BROKEN's listing came whole: a subject absent from it is absent


FAILED = {
    "its manifests cannot be read": Failed(
        lambda: refuse("BatchGetImage"),
        "ServerException",
        "BatchGetImage: ServerException: injected",
        "repository incomplete",
        True,
    ),
    "its listing is refused": Failed(
        lambda: refuse("DescribeImages", "AccessDeniedException", 400),
        "AccessDeniedException",
        "DescribeImages: AccessDeniedException: injected",
        "repository incomplete",
        False,
    ),
    "an unexpected exception while reading its manifests": Failed(
        lambda: explode("BatchGetImage"),
        "Internal",
        "Boom: unexpected answer to BatchGetImage",
        "planning failed",
        True,
    ),
    "an unexpected exception while listing it": Failed(
        lambda: explode("DescribeImages"),
        "Internal",
        "Boom: unexpected answer to DescribeImages",
        "planning failed",
        False,
    ),
}


@pytest.mark.parametrize("case", FAILED.values(), ids=FAILED.keys())
def test_a_repository_whose_scan_failed_keeps_everything_and_the_others_know_if_it_was_listed(
    registry: FakeRegistry, invoke: Invoke, case: Failed
) -> None:
    """A failed scan keeps its whole repository, each manifest with the cause. Another
    repository's signature whose subject no repository holds goes, unless a repository could
    not be listed: its subject may be there (a listing that came whole, then a failed read, is
    evidence that it is not)."""
    registry.push_buildx(BROKEN, tag="v1", pushed_at=OLD)
    registry.push_buildx(BROKEN, tag="v1", pushed_at=OLD)
    live = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    registry.push(
        REPO, oci.cosign_legacy(live.index), tags=[oci.accessory_tag(live.index)], pushed_at=OLD
    )
    elsewhere = oci.sha256_digest("an image no repository holds")
    waiting = registry.push(
        REPO, oci.cosign_legacy(elsewhere), tags=[oci.accessory_tag(elsewhere)], pushed_at=OLD
    )
    broken = registry.digests(BROKEN)

    with intercept_clients(case.wire()), fast_retries(), captured() as out:
        report = invoke(**REQUEST, concurrency=1)
    lines = log_lines(out.getvalue())

    assert registry.digests(BROKEN) == broken
    assert [
        (f["repository"], f["digest"], f["code"], f["message"]) for f in report["failures"]
    ] == [(BROKEN, "", case.code, case.message)]
    assert report["complete"] is False
    decided = {
        (line["repository"], line["digest"]): (line["verdict"], line["reason"], line["cause"])
        for line in lines
        if line["message"] == "decision"
    }
    if case.listed:
        assert {d for r, d in decided if r == BROKEN} == broken
    for digest in broken & {d for r, d in decided if r == BROKEN}:
        assert decided[BROKEN, digest] == ("keep", "unreadable", case.cause)
    if case.code == "Internal":
        [failed] = [line for line in lines if line["message"] == "planning failed"]
        assert failed["repository"] == BROKEN
        assert failed["level"] == "ERROR"
    if case.listed:
        assert not registry.exists(REPO, waiting)
        assert report["deleted"]["manifests"] == 1
    else:
        assert registry.exists(REPO, waiting)
        assert report["deleted"]["manifests"] == 0
        assert decided[REPO, waiting] == (
            "keep",
            "unreadable",
            f"subject {elsewhere} may be in {BROKEN}, not listed",
        )
    assert registry.exists(REPO, live.index)


# --- the command's audit alone -------------------------------------------------------------

POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "expire untagged after a day",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "keep one CI build",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "description": "expire what was archived a year ago",
            "selection": {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 365,
            },
            "action": {"type": "expire"},
        },
    ]
}
RULED = "ruled"
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@dataclass
class Audited:
    pinned: str = ""
    pulled: str = ""
    running: str = ""  # ci-1: a workload runs it by its tag
    pins: dict[str, Pin] = field(default_factory=dict)
    held: list[HeldTag] = field(default_factory=list)


@pytest.fixture
def audited(registry: FakeRegistry) -> Iterator[Audited]:
    """ECR's policy would expire a pinned build, a build pulled yesterday and a CI build a
    workload runs by its tag; its third rule counts from when an image was archived, which no
    listing says."""
    pinned = registry.push_buildx(RULED, tag=None, pushed_at=OLD, fast=True)
    pulled = registry.push_buildx(RULED, tag=None, pushed_at=OLD, fast=True)
    registry.set_last_pulled(RULED, pulled.index, NOW - timedelta(days=1))
    running = registry.push_buildx(RULED, tag="ci-1", pushed_at=OLD, fast=True)
    registry.push_buildx(RULED, tag="ci-2", pushed_at=OLD + timedelta(days=1), fast=True)
    registry.put_lifecycle_policy(RULED, POLICY)
    yield Audited(
        pinned.index,
        pulled.index,
        running.index,
        {pinned.index: Pin(pinned.index, "ecs")},
        [HeldTag(HOST, RULED, "ci-1", "ecs:task-definition/web:1")],
    )


class Records(logging.Handler):
    """The run's log records (the Lambda's formatter writes each as a JSON line)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def recorded() -> Iterator[list[logging.LogRecord]]:
    handler, logger = Records(), logging.getLogger("ecr_sweeper")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def test_the_audit_alone_reports_what_the_dry_runs_audit_reports(
    registry: FakeRegistry, audited: Audited
) -> None:
    """The command's `audit` reads only what the prediction needs, and finds what a dry run
    with the audit on finds: every hazard (a pin, a recent pull, a tag in use), the rules it
    cannot evaluate, each in the report and in the log the dashboard queries."""
    before = registry.digests(RULED)
    with recorded() as records:
        alone = sweep(registry, pins=audited.pins, held_tags=audited.held, audit_only=True)
    logged = [
        (r.getMessage(), getattr(r, "repository", None), getattr(r, "digest", None))
        for r in records
        if r.getMessage() in (audit.HAZARD_MESSAGE, audit.UNEVALUATED_MESSAGE)
    ]
    settings = Settings(dry_run=True, scope=Scope.ORPHANS, audit_lifecycle_policies=True)
    dry = sweep(registry, settings=settings, pins=audited.pins, held_tags=audited.held)

    assert registry.digests(RULED) == before
    assert alone.complete and failures(alone) == []
    hazards = [(h.repository, h.digest, h.reason.value, h.rule) for h in alone.lifecycle_hazards]
    assert hazards == sorted(
        [
            (RULED, audited.pinned, "pinned", 1),
            (RULED, audited.pulled, "recently-pulled", 1),
            (RULED, audited.running, "tag-in-use", 2),
        ]
    )
    unevaluated = [(u.repository, u.rule) for u in alone.lifecycle_unevaluated]
    assert unevaluated == [(RULED, 3)]
    assert [h.as_dict() for h in alone.lifecycle_hazards] == [
        h.as_dict() for h in dry.lifecycle_hazards
    ]
    assert [u.as_dict() for u in alone.lifecycle_unevaluated] == [
        u.as_dict() for u in dry.lifecycle_unevaluated
    ]
    assert sorted(logged) == sorted(
        [("lifecycle hazard", RULED, digest) for _, digest, _, _ in hazards]
        + [("lifecycle rule not evaluated", RULED, None)]
    )


def _refuse_index(index: str) -> Callable[..., None]:
    def refuse(parsed: dict[str, Any], **_: Any) -> None:
        images = parsed.get("images", [])
        parsed["images"] = [i for i in images if i["imageId"].get("imageDigest") != index]
        if len(parsed["images"]) < len(images):
            parsed["failures"] = [
                *parsed.get("failures", []),
                {
                    "imageId": {"imageDigest": index},
                    "failureCode": "KmsError",
                    "failureReason": "no",
                },
            ]

    return refuse


def _newer_policy(parsed: dict[str, Any], **_: Any) -> None:
    # A field ECR may add after this version: the audit cannot tell what the rule selects.
    document = json.loads(parsed["lifecyclePolicyText"])
    document["rules"][0]["selection"]["imageKind"] = "any"
    parsed["lifecyclePolicyText"] = json.dumps(document)


UNAUDITED = ["an index ECR refuses", "a policy with a field newer than the sweeper", "no time"]


@pytest.mark.parametrize("scenario", UNAUDITED)
def test_an_audit_that_cannot_read_what_it_needs_reports_no_hazard_and_says_why(
    registry: FakeRegistry,
    audited: Audited,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
) -> None:
    before = registry.digests(RULED)
    wire = Wire()
    options: dict[str, Any] = {}
    expected: tuple[str, str, str]
    with AwsEvents() as events:
        if scenario == "an index ECR refuses":
            events.on("after-call.ecr.BatchGetImage", _refuse_index(audited.pinned))
            message = "not audited: cannot read a manifest that may list others: no"
            expected = (audited.pinned, "KmsError", message)
        elif scenario == "a policy with a field newer than the sweeper":
            events.on("after-call.ecr.GetLifecyclePolicy", _newer_policy)
            expected = ("", "LifecyclePolicyNotUnderstood", "")
        else:
            # The listing takes pages; the time runs out after the first.
            monkeypatch.setattr(ecr, "PAGE_SIZE", 2)
            options["remaining_seconds"] = lambda: 0.0 if wire.calls["DescribeImages"] else 900.0
            expected = ("", "TimeBudget", "DescribeImages: TimeBudget: stopped between pages")
        report = sweep(
            registry, wire, pins=audited.pins, held_tags=audited.held, audit_only=True, **options
        )

    assert registry.digests(RULED) == before
    [repo] = report.repositories
    assert not repo.scanned and report.complete is False
    assert report.lifecycle_hazards == []
    [(name, digest, code, message)] = failures(report)
    assert (name, digest, code) == (RULED, *expected[:2])
    if code == "LifecyclePolicyNotUnderstood":
        assert message.startswith(
            "not audited: lifecyclePolicyText.rules[0]: rulePriority 1: "
            "unknown field selection.imageKind"
        )
    else:
        assert message == expected[2]
    if code == "TimeBudget":
        assert report.stopped_early is StopReason.TIME_BUDGET
        assert wire.calls["GetLifecyclePolicy"] == 0


# --- the scan's reads ----------------------------------------------------------------------

STOPS: dict[str, tuple[str, StopReason]] = {
    "the time budget": ("TimeBudget", StopReason.TIME_BUDGET),
    "an operator's stop": ("Interrupted", StopReason.INTERRUPTED),
}


@pytest.mark.parametrize("stop", STOPS, ids=STOPS.keys())
def test_a_scan_stopped_between_its_reads_keeps_the_repository_and_says_why(
    registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """Between two of the scan's manifest reads, the run's time ran out or its operator
    stopped it: what the repository holds is not all known, so it deletes nothing."""
    for _ in range(3):
        registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)
    before = registry.digests(REPO)
    monkeypatch.setattr(ports, "BATCH_SIZE", 2)  # several reads of the scan's own
    wire = Wire()

    def read_once() -> bool:
        return wire.calls["BatchGetImage"] > 0

    code, reason = STOPS[stop]
    options: dict[str, Any] = (
        {"remaining_seconds": lambda: 0.0 if read_once() else 900.0}
        if code == "TimeBudget"
        else {"interrupted": read_once}
    )
    report = sweep(registry, wire, **options)

    assert registry.digests(REPO) == before
    assert wire.calls["BatchDeleteImage"] == 0
    assert failures(report) == [(REPO, "", code, f"BatchGetImage: {code}: stopped between batches")]
    assert report.stopped_early is reason
    [repo] = report.repositories
    assert repo.kept == {"unreadable": len(before)}


def test_a_manifest_deleted_by_someone_else_before_the_scan_reads_it_counts_as_gone(
    registry: FakeRegistry,
) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    deleted: list[str] = []

    def someone_deletes(params: dict[str, Any], **_: Any) -> None:
        if not deleted:
            deleted.append(old.index)
            registry.client.batch_delete_image(
                repositoryName=REPO, imageIds=[{"imageDigest": old.index}]
            )

    with AwsEvents() as events:
        events.on("before-parameter-build.ecr.BatchGetImage", someone_deletes)
        report = sweep(registry)

    assert registry.digests(REPO) == new.all
    assert report.complete, failures(report)
    [repo] = report.repositories
    assert (repo.already_gone, repo.deleted) == (1, len(old.all) - 1)
