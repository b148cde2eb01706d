"""Per-item delete failures and 5xx answers: reported, never counted as deletions, and whatever
the refused manifest lists stays; the next run finishes the job. And every other way a sweep
stops part way: the batch it stopped at and every later one stay, each kept with why."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, OLD, Invoke
from harness import FakeRegistry, oci
from harness.faults import (
    Attempt,
    Inject,
    LostResponse,
    ServerError,
    Wire,
    fast_retries,
    intercept_clients,
    refuse_deletes,
)
from harness.fresh import fresh_registry
from harness.generated import History, build_history, lost_children, snapshot
from harness.lambda_output import captured, log_lines
from sweeper import ports
from sweeper import registry as ecr
from sweeper.ports import StoreError
from sweeper.registry import EcrRegistry, client_config
from sweeper.run import Report, RunOptions, Sweeper
from sweeper.run.sweep import JOURNAL_FAILED
from sweeper.settings import Settings
from sweeper.store import DirectoryStore

REPO = "app"
REQUEST: dict[str, Any] = {"dry_run": False, "scope": "orphans"}


def children(registry: FakeRegistry, digest: str) -> set[str]:
    doc = json.loads(registry.manifest(REPO, digest))
    return {entry["digest"] for entry in doc.get("manifests", [])}


def held_by(registry: FakeRegistry, kept: set[str]) -> set[str]:
    """The referrers (transitively) of the manifests in `kept`."""
    subjects = {}
    for digest in registry.digests(REPO):
        doc = json.loads(registry.manifest(REPO, digest))
        subject = doc.get("subject", {}).get("digest") if isinstance(doc, dict) else None
        if subject:
            subjects[digest] = subject
    held: set[str] = set()
    frontier = set(kept)
    while frontier:
        frontier = {d for d, s in subjects.items() if s in frontier and d not in held | kept}
        held |= frontier
    return held


def orphan_index(registry: FakeRegistry, history: History) -> str:
    return min(d for d in history.orphans[REPO] if children(registry, d))


def orphan_child(registry: FakeRegistry, history: History) -> str:
    return min(children(registry, orphan_index(registry, history)))


def finish(registry: FakeRegistry, history: History, invoke: Invoke) -> None:
    """The next run, without faults, leaves exactly the live trees."""
    report = invoke(**REQUEST)
    assert report["complete"] is True, report["failures"]
    for repo in history.repos:
        assert registry.digests(repo) == history.live[repo]


# scenario -> which manifest is refused, with which code
REFUSALS = [
    ("KMS refuses an orphan index", orphan_index, "KmsError"),
    ("KMS refuses an orphan child", orphan_child, "KmsError"),
    (
        "ECR says an index still lists an orphan child",
        orphan_child,
        "ImageReferencedByManifestList",
    ),
    ("an unexpected failure code", orphan_index, "SomethingNew"),
]


@pytest.mark.parametrize(
    ("pick", "code"), [(p, c) for _, p, c in REFUSALS], ids=[n for n, _, _ in REFUSALS]
)
def test_a_refused_delete_is_reported_and_keeps_what_it_lists(
    invoke: Invoke, pick: Any, code: str
) -> None:
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=(REPO, "other"))
        refused = pick(registry, history)
        listed = children(registry, refused)
        before = snapshot(registry, history.repos)
        with refuse_deletes({refused: code}):
            report = invoke(**REQUEST)
        after = snapshot(registry, history.repos)
        assert lost_children(registry, before, after) == []
        gone = before[REPO] - after[REPO]
        # The refused manifest and everything it lists are still there; the rest went.
        assert refused in after[REPO]
        assert listed <= after[REPO]
        # ... and so is every referrer that describes what stayed: a kept subject keeps its
        # signatures (the subject goes in an earlier call than its referrers).
        held = held_by(registry, {refused} | listed)
        assert after[REPO] - history.live[REPO] == {refused} | listed | held
        assert after["other"] == history.live["other"]
        # Reported, with its code; never counted as deleted.
        assert report["complete"] is False
        assert [(f["repository"], f["digest"], f["code"]) for f in report["failures"]] == [
            (REPO, refused, code)
        ]
        assert report["deleted"]["manifests"] == len(gone) + len(history.orphans["other"])
        entries = {e["digest"]: e for e in report["deletions"]}
        assert entries[refused]["deleted"] is False
        assert report["kept"]["delete-failed"] == 1
        assert {entries[d]["reason"] for d in listed} <= {"parent-not-deleted"}
        assert {entries[d]["reason"] for d in held - listed} <= {"subject-kept"}
        assert not any(entries[d]["deleted"] for d in listed | held)
        finish(registry, history, invoke)


def test_a_manifest_someone_else_deleted_is_not_counted(invoke: Invoke) -> None:
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=(REPO,))
        index = orphan_index(registry, history)
        with refuse_deletes({index: "ImageNotFound"}):
            report = invoke(**REQUEST)
        assert registry.digests(REPO) == history.live[REPO]
        assert report["complete"] is True
        assert report["failures"] == []
        assert report["deleted"]["manifests"] == len(history.orphans[REPO]) - 1
        assert report["already_gone"] == {"manifests": 1}
        assert {e["digest"]: e["deleted"] for e in report["deletions"]}[index] is False


def test_an_index_pushed_during_the_run_keeps_its_child(invoke: Invoke) -> None:
    """A new index lists an orphan child between the plan and the delete: ECR refuses."""
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=(REPO,))
        child = orphan_child(registry, history)
        newcomer = oci.index(
            [oci.Manifest(registry.manifest(REPO, child), oci.OCI_MANIFEST).descriptor()]
        )

        def push_first(attempt: Attempt) -> None:
            wanted = attempt.operation == "BatchDeleteImage" and child in attempt.digests
            if wanted and not registry.exists(REPO, newcomer.digest):
                registry.seed(REPO, newcomer)  # pushed right now: young, untagged

        with intercept_clients(Wire(on_attempt=push_first)):
            report = invoke(**REQUEST)
        after = registry.digests(REPO)
        assert {child, newcomer.digest} <= after
        failures = [(f["digest"], f["code"]) for f in report["failures"]]
        assert failures == [(child, "ImageReferencedByManifestList")]
        assert report["complete"] is False
        # The next run sees the new index (young, so a root) and keeps the child as listed.
        again = invoke(**REQUEST)
        assert again["complete"] is True
        # The child's referrers (its signatures) live with it.
        kept = {child, newcomer.digest} | held_by(registry, {child})
        assert registry.digests(REPO) == history.live[REPO] | kept


def test_a_transient_5xx_is_retried_and_changes_nothing(invoke: Invoke) -> None:
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=(REPO,))
        wire = Wire(
            Inject("BatchDeleteImage", ServerError(503, "ServiceUnavailable"), attempts={1})
        )
        with intercept_clients(wire), fast_retries():
            report = invoke(**REQUEST)
        assert registry.digests(REPO) == history.live[REPO]
        assert report["complete"] is True
        assert report["deleted"]["manifests"] == len(history.orphans[REPO])
        assert wire.faults["BatchDeleteImage:ServerError"] == wire.calls["BatchDeleteImage"] > 1


@pytest.mark.parametrize(
    "failing", [1, 2], ids=["the batch of parents fails", "a batch of children fails"]
)
def test_a_batch_that_keeps_answering_5xx_counts_nothing_and_stops(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    monkeypatch.setattr(ecr, "BATCH_SIZE", 4)
    monkeypatch.setattr(ports, "BATCH_SIZE", 4)
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=(REPO,))
        before = registry.digests(REPO)
        wire = Wire(Inject("BatchDeleteImage", ServerError(), calls={failing}))
        with intercept_clients(wire), fast_retries():
            report = invoke(**REQUEST)
        after = registry.digests(REPO)
        assert lost_children(registry, {REPO: before}, {REPO: after}) == []
        assert history.live[REPO] <= after
        # The batches before went and are counted; the failed one (and what it lists) stays,
        # and no batch starts after it.
        batches = [set(a.digests) for a in wire.log if a.operation == "BatchDeleteImage"]
        done = set().union(*batches[: failing - 1])
        assert before - after == done
        assert report["deleted"]["manifests"] == len(done)
        assert report["complete"] is False
        assert {f["code"] for f in report["failures"]} == {"ServerException"}
        assert {f["digest"] for f in report["failures"]} == batches[failing - 1]
        assert wire.calls["BatchDeleteImage"] == failing
        finish(registry, history, invoke)


def test_a_lost_answer_is_not_counted_as_a_deletion(invoke: Invoke) -> None:
    """ECR deleted, the answer was lost; the retry finds nothing: gone, but not by our count."""
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=(REPO,))
        wire = Wire(Inject("BatchDeleteImage", LostResponse(), calls={1}, attempts={1}))
        with intercept_clients(wire), fast_retries():
            report = invoke(**REQUEST)
        assert registry.digests(REPO) == history.live[REPO]
        lost = set(next(a for a in wire.log if a.operation == "BatchDeleteImage").digests)
        assert report["deleted"]["manifests"] == len(history.orphans[REPO]) - len(lost)
        assert report["already_gone"] == {"manifests": len(lost)}
        assert report["complete"] is True


def test_a_failed_re_read_before_deleting_counts_nothing(invoke: Invoke) -> None:
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), repos=(REPO,))
        before = registry.digests(REPO)

        def re_read(attempt: Attempt) -> bool:
            return "imageIds" in attempt.params

        wire = Wire(Inject("DescribeImages", ServerError(), when=re_read))
        with intercept_clients(wire), fast_retries():
            report = invoke(**REQUEST)
        assert registry.digests(REPO) == before
        assert wire.calls["BatchDeleteImage"] == 0
        assert report["deleted"]["manifests"] == 0
        assert report["complete"] is False
        # The failed batch is not reached; what it lists stays behind it.
        reasons = {e["digest"]: e["reason"] for e in report["deletions"]}
        assert set(reasons) == history.orphans[REPO]
        assert set(reasons.values()) <= {"not-reached", "parent-not-deleted", "subject-kept"}
        finish(registry, history, invoke)


# --- a sweep stopped at its first batch, every way it can be ------------------------------------

ORPHANS = 5  # one wave, three batches of two
STOPPED = "run stopped before this batch"  # the cause of every batch after the one that stopped


class Boom(RuntimeError):
    """An exception nobody foresaw."""


class RefusedJournal(DirectoryStore):
    """Loads and saves work; the journal cannot be written (once: it would work again)."""

    def __init__(self, root: Any) -> None:
        super().__init__(root)
        self.refused = 0

    def journal(self, records: Any) -> None:
        if not self.refused:
            self.refused += 1
            raise StoreError("PutObject: SlowDown: please reduce your request rate")
        super().journal(records)


@dataclass
class World:
    """What a scenario sets up: the wire faults, the run's options, and the store."""

    rules: tuple[Inject, ...] = ()
    options: dict[str, Any] | None = None
    store: DirectoryStore | None = None


def _interrupted_after_confirming(tmp: Any) -> World:
    asked: list[bool] = []

    def confirm(_: Any) -> bool:
        asked.append(True)  # the operator says yes, then presses Ctrl-C
        return True

    return World(options={"confirm": confirm, "interrupted": lambda: bool(asked)})


def _delete_call_fails(tmp: Any) -> World:
    return World(rules=(Inject("BatchDeleteImage", ServerError()),))


def _re_read_fails(tmp: Any) -> World:
    def re_read(attempt: Any) -> bool:
        return "imageIds" in attempt.params

    return World(rules=(Inject("DescribeImages", ServerError(), when=re_read),))


def _journal_refused(tmp: Any) -> World:
    return World(store=RefusedJournal(tmp))


def _unexpected_error_after_the_first_batch(tmp: Any) -> World:
    def deleted(repo: Any, batch: list[str]) -> None:
        raise Boom("the progress display broke")

    return World(options={"on_batch_deleted": deleted})


@dataclass(frozen=True)
class Stop:
    scenario: str
    world: Callable[[Any], World]
    first_batch_deleted: bool
    # The first batch's failures (code, message), each of its manifests' (reason, cause), and
    # how many of the run's failures are repository-wide (digest "").
    code: str
    message: str
    first_batch_cause: str
    later_cause: str
    delete_failures: int


SERVER = "ServerException"
STOPS = [
    Stop(
        "an operator interrupts once the plan is confirmed",
        _interrupted_after_confirming,
        first_batch_deleted=False,
        code="",
        message="",
        first_batch_cause=STOPPED,
        later_cause=STOPPED,
        delete_failures=0,
    ),
    Stop(
        "the delete call answers 500 past every retry",
        _delete_call_fails,
        first_batch_deleted=False,
        code=SERVER,
        message="BatchDeleteImage: ServerException: injected",
        first_batch_cause="BatchDeleteImage",  # its outcome is unknown: counted as a failure
        later_cause=STOPPED,
        delete_failures=2,
    ),
    Stop(
        "the re-read before the delete answers 500 past every retry",
        _re_read_fails,
        first_batch_deleted=False,
        code=SERVER,
        message="DescribeImages: ServerException: injected",
        first_batch_cause="DescribeImages",  # nothing was sent to delete
        later_cause=STOPPED,
        delete_failures=0,
    ),
    Stop(
        "the journal cannot record the first batch, and could the next",
        _journal_refused,
        first_batch_deleted=False,
        code=JOURNAL_FAILED,
        message=(
            "not deleted: the journal could not record it: "
            "PutObject: SlowDown: please reduce your request rate"
        ),
        first_batch_cause="the journal could not record its batch",
        later_cause=STOPPED,
        delete_failures=0,
    ),
    Stop(
        "an unexpected error right after the first batch was deleted",
        _unexpected_error_after_the_first_batch,
        first_batch_deleted=True,
        code="Internal",
        message="Boom: the progress display broke",
        first_batch_cause="",
        later_cause="the sweep failed (Internal)",
        delete_failures=0,
    ),
]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ports, "BATCH_SIZE", 2)
    monkeypatch.setattr(ecr, "BATCH_SIZE", 2)
    yield


def sweep(registry: FakeRegistry, world: World) -> Report:
    wire = Wire(*world.rules)
    with fast_retries():
        client: Any = boto3.client("ecr", region_name="us-east-1", config=client_config())
    wire.attach(client)
    options = RunOptions(
        principal=FUNCTION_PRINCIPAL, store=world.store, run_id="run-1", **(world.options or {})
    )
    with fast_retries():
        return Sweeper(EcrRegistry(client), Settings(dry_run=False), NOW, options).run()


@pytest.mark.parametrize("stop", STOPS, ids=[s.scenario for s in STOPS])
def test_a_sweep_stopped_at_its_first_batch_keeps_that_batch_and_every_later_one(
    registry: FakeRegistry,
    small_batches: None,
    tmp_path: Any,
    stop: Stop,
) -> None:
    for n in range(ORPHANS):
        registry.push(REPO, oci.image_manifest(f"orphan-{n}"), pushed_at=OLD)
    registry.push(REPO, oci.image_manifest("live"), tags=["latest"], pushed_at=OLD)
    before = registry.digests(REPO)

    with captured() as out:
        report = sweep(registry, stop.world(tmp_path))

    [repo] = report.repositories
    first, later = [d.digest for d in repo.deletions[:2]], [d.digest for d in repo.deletions[2:]]
    assert len(first) == 2 and len(later) == ORPHANS - 2  # one wave, in three batches
    gone = set(first) if stop.first_batch_deleted else set()
    assert registry.digests(REPO) == before - gone
    assert report.complete is False
    assert repo.complete is False
    assert repo.deleted == len(gone)
    assert repo.delete_failures == stop.delete_failures
    entries = {d.digest: d for d in repo.deletions}
    for digest in later:
        assert (entries[digest].reason, entries[digest].cause, entries[digest].deleted) == (
            "not-reached",
            stop.later_cause,
            False,
        )
    for digest in first:
        if stop.first_batch_deleted:
            assert (entries[digest].reason, entries[digest].deleted) == ("unreachable", True)
        else:
            assert (entries[digest].reason, entries[digest].cause) == (
                "not-reached",
                stop.first_batch_cause,
            )
    assert repo.kept["not-reached"] == len(before - gone) - 1
    failures = [(f.digest, f.code, f.message) for f in repo.failures]
    if stop.code == "Internal":
        assert failures == [("", stop.code, stop.message)]
        [logged] = [line for line in log_lines(out.getvalue()) if line["message"] == "sweep failed"]
        assert (logged["repository"], "Boom" in logged["exception"]) == (REPO, True)
    elif stop.code:
        assert failures == [(digest, stop.code, stop.message) for digest in first]
    else:
        assert failures == []
        assert repo.out_of_time is True


def push_orphans(registry: FakeRegistry) -> list[str]:
    """ORPHANS old untagged images and one tagged: the orphans' digests, in planning order."""
    orphans = [
        registry.push(REPO, oci.image_manifest(f"orphan-{n}"), pushed_at=OLD)
        for n in range(ORPHANS)
    ]
    registry.push(REPO, oci.image_manifest("live"), tags=["latest"], pushed_at=OLD)
    return sorted(orphans)


def test_each_delete_call_is_heard_of_with_its_repository_and_batch(
    registry: FakeRegistry, small_batches: None, tmp_path: Any
) -> None:
    orphans = push_orphans(registry)
    heard: list[tuple[str, list[str], set[str]]] = []

    def deleted(repo: Any, batch: list[str]) -> None:
        heard.append((repo.repository, list(batch), set(repo.deleted)))

    report = sweep(registry, World(options={"on_batch_deleted": deleted}))

    assert report.complete
    assert heard == [
        (REPO, orphans[0:2], set(orphans[0:2])),
        (REPO, orphans[2:4], set(orphans[0:4])),
        (REPO, orphans[4:], set(orphans)),
    ]


def test_one_delete_call_answering_per_item_reports_each_item_as_ecr_answered(
    registry: FakeRegistry,
) -> None:
    """Refused twice, found deleted by someone else twice (between the scan and the re-read,
    and between the re-read and the call), deleted once: every answer counted for what it is."""
    orphans = sorted(
        [*push_orphans(registry), registry.push(REPO, oci.image_manifest("6th"), pushed_at=OLD)]
    )
    refused, gone_early, gone_late, deleted = orphans[0:2], orphans[2:4], orphans[4:5], orphans[5]

    def someone_else_deletes(attempt: Any) -> None:
        if attempt.operation == "DescribeImages" and "imageIds" in attempt.params:
            registry.client.batch_delete_image(
                repositoryName=REPO, imageIds=[{"imageDigest": d} for d in gone_early]
            )

    wire = Wire(on_attempt=someone_else_deletes)
    client: Any = boto3.client("ecr", region_name="us-east-1", config=client_config())
    wire.attach(client)
    codes = {refused[0]: "KmsError", refused[1]: "KmsError", gone_late[0]: "ImageNotFound"}
    with refuse_deletes(codes):
        report = Sweeper(
            EcrRegistry(client),
            Settings(dry_run=False),
            NOW,
            RunOptions(principal=FUNCTION_PRINCIPAL),
        ).run()

    assert set(orphans) & registry.digests(REPO) == set(refused)
    assert deleted not in registry.digests(REPO)
    [repo] = report.repositories
    assert (repo.deleted, repo.already_gone, repo.delete_failures) == (1, 3, 2)
    assert [(f.digest, f.code, f.message) for f in repo.failures] == [
        (digest, "KmsError", "injected by refuse_deletes") for digest in refused
    ]
    entries = {d.digest: d for d in repo.deletions}
    for digest in refused:
        assert (entries[digest].reason, entries[digest].cause) == ("delete-failed", "KmsError")


# scenario -> whether the re-listing after the sweep fails
CHECKS = [("the check after the sweep lists the repository", False), ("it cannot", True)]


@pytest.mark.parametrize("fails", [f for _, f in CHECKS], ids=[n for n, _ in CHECKS])
def test_the_repository_is_listed_again_after_its_sweep_and_a_failed_listing_is_said(
    registry: FakeRegistry, fails: bool
) -> None:
    orphans = push_orphans(registry)
    swept: list[bool] = []

    def after_the_sweep(attempt: Any) -> bool:
        return fails and bool(swept) and "imageIds" not in attempt.params

    def note(attempt: Any) -> None:
        if attempt.operation == "BatchDeleteImage":
            swept.append(True)

    wire = Wire(Inject("DescribeImages", ServerError(), when=after_the_sweep), on_attempt=note)
    with fast_retries():
        client: Any = boto3.client("ecr", region_name="us-east-1", config=client_config())
        wire.attach(client)
        report = Sweeper(
            EcrRegistry(client),
            Settings(dry_run=False),
            NOW,
            RunOptions(principal=FUNCTION_PRINCIPAL),
        ).run()

    assert not set(orphans) & registry.digests(REPO)  # the sweep itself went through
    [repo] = report.repositories
    assert repo.deleted == ORPHANS
    assert repo.validated is (not fails)
    failures = [(f.digest, f.code, f.message) for f in repo.failures]
    if fails:
        message = "validating: DescribeImages: ServerException: injected"
        assert failures == [("", "ServerException", message)]
        assert report.complete is False
    else:
        assert failures == []
        assert report.complete is True
