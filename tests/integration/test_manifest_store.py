"""The manifest store: read once in a manifest's life, never trusted, never needed.

Each scenario runs the orchestration against the corrected moto registry with a store (a local
directory, or S3 in moto) and asserts on what is left in the registry and what was read.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Container
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, OLD, Invoke, LambdaContext, archived_history
from harness import FakeRegistry, oci
from harness.reads import ManifestReads
from harness.workloads import AwsEvents
from sweeper.ports import JournalRecord, ManifestStore, Stored, StoreError
from sweeper.registry import EcrRegistry
from sweeper.run import Report, RunOptions, Sweeper
from sweeper.run.sweep import JOURNAL_FAILED
from sweeper.settings import InvalidSettings, Settings
from sweeper.store import DirectoryStore, ObjectStore, S3Objects
from sweeper.store.codec import digest_of

REPO = "app"


def run(
    registry: FakeRegistry, store: ManifestStore | None, *, dry_run: bool = False, **kw: Any
) -> Report:
    settings = Settings(dry_run=dry_run, **kw)
    # As the function: its reads are not pulls (the run registers its pull-time exclusion).
    options = RunOptions(store=store, run_id="run-1", principal=FUNCTION_PRINCIPAL)
    return Sweeper(EcrRegistry(registry.client), settings, NOW, options).run()


@pytest.fixture
def history(registry: FakeRegistry) -> dict[str, Any]:
    """Three builds of `latest`: the two old trees are orphans."""
    builds = [registry.push_buildx(REPO, tag="latest", pushed_at=OLD) for _ in range(3)]
    return {"builds": builds, "digests": registry.digests(REPO)}


def test_a_second_run_reads_nothing_from_ecr_and_a_third_only_what_is_new(
    registry: FakeRegistry, history: dict[str, Any], tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path)
    reads = ManifestReads(registry.client)
    first = run(registry, store, dry_run=True)
    assert first.store == "ok" and reads.digests  # the first night reads what it needs
    reads.calls.clear()
    second = run(registry, store, dry_run=True)
    assert reads.calls == []
    assert second.planned == first.planned  # and plans the same from stored bytes
    assert second.manifests_from_store > 0
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
    reads.calls.clear()
    third = run(registry, store)
    assert set(reads.digests) <= new.all  # only what the store lacked
    assert registry.digests(REPO) == new.all  # three old trees gone, the new one kept
    assert third.complete and third.deleted.manifests == 9


def _tamper(store: DirectoryStore, mutate: Any) -> None:
    path = store.root / "manifests" / f"{REPO}.json.gz"
    document = json.loads(gzip.decompress(path.read_bytes()))
    mutate(document["manifests"])
    path.write_bytes(gzip.compress(json.dumps(document).encode()))


def _flip_a_byte(builds: list[Any]) -> Any:
    def mutate(manifests: dict[str, list[Any]]) -> None:
        text = manifests[builds[-1].index][1]
        manifests[builds[-1].index][1] = text.replace("sha256:", "sha256:0", 1)[:-1]

    return mutate


def _cut_a_child(builds: list[Any]) -> Any:
    """The kept index's stored bytes without its attestation child: trusted, the child would
    look like an orphan and go."""

    def mutate(manifests: dict[str, list[Any]]) -> None:
        index = json.loads(manifests[builds[-1].index][1])
        index["manifests"] = index["manifests"][:1]
        manifests[builds[-1].index][1] = json.dumps(index)

    return mutate


def _foreign_bytes(builds: list[Any]) -> Any:
    """Another manifest's (valid, hashing) bytes filed under the kept index's digest."""

    def mutate(manifests: dict[str, list[Any]]) -> None:
        child = next(iter(builds[-1].images.values()))
        manifests[builds[-1].index] = manifests[child]

    return mutate


@pytest.mark.parametrize(
    "tampering", [_flip_a_byte, _cut_a_child, _foreign_bytes], ids=lambda f: f.__name__[1:]
)
def test_a_tampered_store_changes_no_decision(
    registry: FakeRegistry, history: dict[str, Any], tmp_path: Path, tampering: Any
) -> None:
    store = DirectoryStore(tmp_path)
    builds = history["builds"]
    expected = run(registry, None, dry_run=True)
    run(registry, store, dry_run=True)  # fills the store
    _tamper(store, tampering(builds))
    report = run(registry, store)
    assert report.store_rejected == 1
    assert report.planned == expected.planned
    assert registry.digests(REPO) == builds[-1].all  # the kept tree whole, its child included
    # The rejected entry was read again and stored right.
    assert run(registry, store, dry_run=True).store_rejected == 0


@pytest.fixture
def no_bucket(registry: FakeRegistry) -> ObjectStore:
    """A store in a bucket that does not exist: every load, save and journal write fails."""
    return ObjectStore(S3Objects(boto3.client("s3", region_name="us-east-1"), "nosuch", "p"))


def test_an_unavailable_store_changes_no_planned_decision(
    registry: FakeRegistry, history: dict[str, Any], no_bucket: ObjectStore
) -> None:
    expected = run(registry, None, dry_run=True)
    report = run(registry, no_bucket, dry_run=True)
    assert report.store == "unavailable"
    assert report.planned == expected.planned
    assert report.as_dict()["kept"] == expected.as_dict()["kept"]
    assert report.complete  # a dry run needs no journal


def test_a_real_run_whose_journal_cannot_be_written_deletes_nothing(
    registry: FakeRegistry, history: dict[str, Any], no_bucket: ObjectStore
) -> None:
    report = run(registry, no_bucket)
    assert registry.digests(REPO) == history["digests"]
    assert report.deleted.manifests == 0 and not report.complete
    assert {f.code for f in report.all_failures} == {JOURNAL_FAILED}


class FailingJournal(DirectoryStore):
    """Loads and saves work; the journal's write fails from the `after`-th batch on."""

    def __init__(self, root: Path, after: int) -> None:
        super().__init__(root)
        self.after = after
        self.written: list[JournalRecord] = []

    def journal(self, records: Any) -> None:
        if self.after <= 0:
            raise StoreError("PutObject: SlowDown: please reduce your request rate")
        self.after -= 1
        self.written.extend(records)
        super().journal(records)


def test_a_journal_write_that_fails_deletes_nothing_of_its_batch_nor_after(
    registry: FakeRegistry, history: dict[str, Any], tmp_path: Path
) -> None:
    store = FailingJournal(tmp_path, after=1)  # the first wave (the indexes) is journaled
    report = run(registry, store)
    indexes = {b.index for b in history["builds"][:2]}
    assert history["digests"] - registry.digests(REPO) == indexes  # journaled, then deleted
    assert {r.digest for r in store.written} == indexes
    assert not report.complete
    # The children stay: their batch was not journaled.
    assert all(b.all - {b.index} <= registry.digests(REPO) for b in history["builds"])


def test_every_deletion_is_journaled_before_it_with_its_bytes_tags_and_cause(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    old = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    store = DirectoryStore(tmp_path)
    report = run(registry, store)
    records = store.records("run-1")
    assert (
        {r.digest for r in records} == old.all == {d.digest for d in report.deletions if d.deleted}
    )
    for record in records:
        assert digest_of(record.text) == record.digest
        assert record.repository == REPO and record.run_id == "run-1"
        assert record.reason == "unreachable" and record.cause
    assert store.runs() == ["run-1"]


# --- archived indexes ECR will not serve ---------------------------------------------------


def test_an_archived_index_ecr_will_not_serve_is_read_from_the_store(
    sealed: FakeRegistry, tmp_path: Path
) -> None:
    h = archived_history(sealed, REPO)
    store = DirectoryStore(tmp_path)
    index = h["archived"].index
    store.save(REPO, {index: Stored(sealed.manifest(REPO, index).decode(), oci.OCI_INDEX)})
    report = run(sealed, store)
    assert report.complete
    assert sealed.digests(REPO) == h["archived"].all | h["kept"].all


def test_without_the_store_an_archived_index_keeps_only_what_was_pushed_before_it(
    sealed: FakeRegistry,
) -> None:
    h = archived_history(sealed, REPO)
    report = run(sealed, None)
    # What was pushed at or before it may be its child (unknown: kept); what came after cannot.
    assert sealed.digests(REPO) == h["before"].all | h["archived"].all | h["kept"].all
    assert report.deleted.manifests == len(h["after"].all)
    assert report.bytes_freed_unknown == 1  # its blobs are unknown


def test_an_archived_index_pushed_last_keeps_everything_before_it(
    sealed: FakeRegistry,
) -> None:
    h = archived_history(sealed, REPO)
    sealed.set_pushed_at(REPO, h["archived"].index, NOW + timedelta(days=1))  # in the future
    before = sealed.digests(REPO)
    run(sealed, None)
    # Nothing pushed before it goes: it may list any of it.
    assert sealed.digests(REPO) == before


# --- the function, end to end, with the stack's S3 store -------------------------------------


def test_the_function_keeps_its_store_in_s3_and_journals_under_its_request_id(
    registry: FakeRegistry,
    history: dict[str, Any],
    invoke: Invoke,
    lambda_context: LambdaContext,
    aws_events: AwsEvents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="sweeper-store")
    monkeypatch.setenv("MANIFEST_STORE", "s3://sweeper-store/ecr-sweeper")
    asked: list[str] = []
    aws_events.on(
        "before-parameter-build.ecr.BatchGetImage",
        lambda params, **_: asked.extend(i["imageDigest"] for i in params["imageIds"]),
    )
    dry = invoke(dry_run=True)
    assert dry["store"] == "ok" and dry["run_id"] == lambda_context.aws_request_id
    assert asked
    asked.clear()
    report = invoke(dry_run=False)
    assert asked == []  # the dry run stored everything the real run needs
    assert report["manifests_from_store"] > 0
    assert registry.digests(REPO) == history["builds"][-1].all
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sweeper-store")["Contents"]]
    assert f"ecr-sweeper/manifests/{REPO}.json.gz" in keys
    journal = [k for k in keys if k.startswith("ecr-sweeper/journal/")]
    assert journal and all(
        k.startswith(f"ecr-sweeper/journal/{lambda_context.aws_request_id}/{REPO}/")
        for k in journal
    )


def test_a_request_cannot_move_the_store(
    registry: FakeRegistry, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANIFEST_STORE", "s3://sweeper-store/ecr-sweeper")
    with pytest.raises(InvalidSettings, match="manifest_store"):
        invoke(dry_run=True, manifest_store="s3://elsewhere/x")


def test_each_journal_record_holds_what_putting_the_manifest_back_needs(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    """The bytes, the media type it was pushed with, the tags it goes with (an accessory's own),
    why it went, and when: each record, whole."""
    old = registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    registry.push_buildx(REPO, tag="v1", pushed_at=OLD)
    signature_tag = oci.accessory_tag(old.index)
    signature = registry.push(
        REPO, oci.cosign_legacy(old.index), tags=[signature_tag], pushed_at=OLD
    )
    listed = {
        image["imageDigest"]: image["imageManifestMediaType"]
        for image in registry.client.describe_images(repositoryName=REPO)["imageDetails"]
    }
    texts = {d: registry.manifest(REPO, d).decode() for d in listed}
    store = DirectoryStore(tmp_path)

    report = run(registry, store)

    deletions = {d.digest: d for d in report.deletions}
    assert set(deletions) == old.all | {signature}
    assert not set(deletions) & registry.digests(REPO)
    expected = {
        digest: JournalRecord(
            run_id="run-1",
            repository=REPO,
            digest=digest,
            media_type=listed[digest],
            tags=(signature_tag,) if digest == signature else (),
            reason=deletion.reason,
            cause=deletion.cause,
            recorded_at=NOW.isoformat(),
            text=texts[digest],
        )
        for digest, deletion in deletions.items()
    }
    assert {r.digest: r for r in store.records("run-1")} == expected
    assert all(record.cause for record in expected.values())


class ForgetfulStore(DirectoryStore):
    """Saves nothing: after the scan, the store does not hold the bytes it read."""

    def save(self, repository: str, entries: Any) -> None:
        pass


class UnreadableAtTheSweep(DirectoryStore):
    """Its first load (the scan's) works; the next (the sweep's, for the journal) fails."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.loads = 0

    def load(self, repository: str, wanted: Container[str] | None = None) -> dict[str, Stored]:
        self.loads += 1
        if self.loads > 1:
            raise StoreError("GetObject: AccessDenied: the bucket policy changed")
        return super().load(repository, wanted)


# scenario -> the store, and what the journal's failure says after its first digest is known
UNJOURNALED = [
    ("the store lost the bytes since the scan", ForgetfulStore, "the store does not hold"),
    (
        "the store cannot be read at the sweep",
        UnreadableAtTheSweep,
        "GetObject: AccessDenied: the bucket policy changed",
    ),
]


@pytest.mark.parametrize(
    ("make", "error"), [(m, e) for _, m, e in UNJOURNALED], ids=[n for n, _, _ in UNJOURNALED]
)
def test_a_batch_whose_bytes_the_journal_cannot_hold_is_not_deleted(
    registry: FakeRegistry, history: dict[str, Any], tmp_path: Path, make: Any, error: str
) -> None:
    report = run(registry, make(tmp_path))
    assert registry.digests(REPO) == history["digests"]
    assert report.deleted.manifests == 0 and not report.complete
    # The first batch (the two old indexes) failed; nothing after it was sent.
    indexes = sorted(b.index for b in history["builds"][:2])
    if error == "the store does not hold":
        error = f"the store does not hold the bytes of {indexes[0]}"
    message = f"not deleted: the journal could not record it: {error}"
    assert [(f.digest, f.code, f.message) for f in report.all_failures] == [
        (digest, JOURNAL_FAILED, message) for digest in indexes
    ]
    causes = {d.digest: (d.reason, d.cause) for d in report.deletions}
    assert {causes[d] for d in indexes} == {
        ("not-reached", "the journal could not record its batch")
    }
