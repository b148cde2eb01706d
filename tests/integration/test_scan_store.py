"""The scan's side of the manifest store, of archived indexes, and of the survivors' reads.

What the store holds after a night (the manifests read, with their listed media type, and nothing
no longer listed), when it is written at all, what a night that could not read it leaves in it,
what an operator reads in the log when it fails; how an index ECR will not serve is judged; and
what the reads made for the bytes-freed figure cost and say when they fail. Each scenario runs
the orchestration against the corrected moto registry and asserts on what is left in the
registry, in the store, in the report or in the log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import FUNCTION_PRINCIPAL, NOW, OLD, archived_history
from harness import FakeRegistry, oci
from harness.breakage import remove_behind_ecr
from harness.faults import Inject, ServerError, Wire, fast_retries
from harness.fresh import fresh_registry
from harness.lambda_output import captured, log_lines
from harness.reads import ManifestReads
from sweeper.ports import BATCH_SIZE, ManifestStore, Stored, StoreError
from sweeper.registry import EcrRegistry
from sweeper.run import Report, RunOptions, Sweeper
from sweeper.settings import Settings
from sweeper.store import DirectoryStore

REPO = "app"


def run(
    client: Any,
    store: ManifestStore | None,
    *,
    dry_run: bool = True,
    remaining_seconds: Callable[[], float] | None = None,
    **kw: Any,
) -> Report:
    settings = Settings(dry_run=dry_run, **kw)
    options = RunOptions(
        store=store,
        run_id="run-1",
        principal=FUNCTION_PRINCIPAL,
        remaining_seconds=remaining_seconds,
    )
    return Sweeper(EcrRegistry(client), settings, NOW, options).run()


def listed_media_types(registry: FakeRegistry, repo: str = REPO) -> dict[str, str]:
    return {
        image["imageDigest"]: image["imageManifestMediaType"]
        for image in registry.client.describe_images(repositoryName=repo)["imageDetails"]
    }


@pytest.fixture
def history(registry: FakeRegistry) -> list[Any]:
    """Three builds of `latest`: the two old trees are orphans."""
    return [registry.push_buildx(REPO, tag="latest", pushed_at=OLD) for _ in range(3)]


# --- what the store holds, and when it is written ----------------------------------------------


class CountingStore(DirectoryStore):
    """A directory store that counts its writes (each one a PutObject in S3)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.saves: list[str] = []

    def save(self, repository: str, entries: Mapping[str, Stored]) -> None:
        self.saves.append(repository)
        super().save(repository, entries)


def test_the_store_holds_every_manifest_read_with_the_media_type_it_was_listed_with(
    registry: FakeRegistry, history: list[Any], tmp_path: Path
) -> None:
    """The layout (docs/design.md, "The manifest store"): digest -> media type and text."""
    store = DirectoryStore(tmp_path)
    run(registry.client, store)
    listed = listed_media_types(registry)
    assert store.load(REPO) == {
        digest: Stored(registry.manifest(REPO, digest).decode(), media_type)
        for digest, media_type in listed.items()
    }
    assert {entry.media_type for entry in store.load(REPO).values()} >= {
        oci.OCI_INDEX,
        oci.OCI_MANIFEST,
    }


def test_a_night_with_nothing_new_writes_nothing_to_the_store(
    registry: FakeRegistry, history: list[Any], tmp_path: Path
) -> None:
    store = CountingStore(tmp_path)
    run(registry.client, store)
    assert store.saves == [REPO]  # the first night stores what it read
    second = run(registry.client, store)
    assert second.store == "ok" and second.manifests_from_store > 0
    assert store.saves == [REPO]  # the second had nothing to add and nothing to drop


def _the_run_deleted_them(registry: FakeRegistry, store: ManifestStore, builds: list[Any]) -> None:
    run(registry.client, store, dry_run=False)  # stored at the scan, deleted by the sweep


def _someone_else_deleted_them(
    registry: FakeRegistry, store: ManifestStore, builds: list[Any]
) -> None:
    run(registry.client, store)  # a dry run stores them
    for build in builds[:2]:  # the index first: ECR refuses to delete what an index lists
        for digests in ([build.index], build.all - {build.index}):
            registry.client.batch_delete_image(
                repositoryName=REPO, imageIds=[{"imageDigest": d} for d in digests]
            )


GONE = [
    ("deleted by the sweep of the night that stored them", _the_run_deleted_them),
    ("deleted by someone else after a dry run stored them", _someone_else_deleted_them),
]


@pytest.mark.parametrize("gone", [g for _, g in GONE], ids=[n for n, _ in GONE])
def test_manifests_no_longer_listed_leave_the_store_the_next_night(
    registry: FakeRegistry,
    history: list[Any],
    tmp_path: Path,
    gone: Callable[[FakeRegistry, ManifestStore, list[Any]], None],
) -> None:
    store = DirectoryStore(tmp_path)
    gone(registry, store, history)
    left = registry.digests(REPO)
    assert left == history[-1].all
    assert set(store.load(REPO)) > left  # the night that stored them could not know
    reads = ManifestReads(registry.client)
    report = run(registry.client, store)
    assert reads.calls == []  # nothing new to read: only entries to drop
    assert report.store == "ok"
    assert set(store.load(REPO)) == left  # the store does not grow with what is gone


def _reformatted(digest: str) -> Callable[..., None]:
    """ECR answering `digest` with bytes that do not hash to it (the product promises only
    to store bytes that do; a schema 1 manifest's signed bytes, for one, need not)."""

    def answer(parsed: dict[str, Any], **_: Any) -> None:
        for image in parsed.get("images", []):
            if image.get("imageId", {}).get("imageDigest") == digest:
                image["imageManifest"] = image["imageManifest"] + "\n"

    return answer


def test_bytes_that_do_not_hash_to_their_digest_are_never_stored(
    registry: FakeRegistry, history: list[Any], tmp_path: Path
) -> None:
    index = history[-1].index
    registry.client.meta.events.register("after-call.ecr.BatchGetImage", _reformatted(index))
    store = DirectoryStore(tmp_path)
    first = run(registry.client, store)
    assert first.store == "ok"
    assert index not in store.load(REPO) and len(store.load(REPO)) > 0
    reads = ManifestReads(registry.client)
    with captured() as out:
        second = run(registry.client, store)
    assert reads.digests == [index]  # read again, as every night: never from the store
    assert second.store_rejected == 0  # nothing stored that the check would throw out
    assert "store entries rejected" not in {line["message"] for line in log_lines(out.getvalue())}
    assert second.planned == first.planned


# --- a store that fails: nothing lost, and the operator told why -------------------------------


class Failing(DirectoryStore):
    """A directory store whose loads and saves fail as told (the first `loads` loads, every
    save when `saves`)."""

    def __init__(
        self, root: Path, *, loads: int = 0, saves: bool = False, silent: bool = False
    ) -> None:
        super().__init__(root)
        self.failing_loads = loads
        self.failing_saves = saves
        self.silent = silent  # an error without words, as a third-party store may raise

    def load(self, repository: str, wanted: Container[str] | None = None) -> dict[str, Stored]:
        if self.failing_loads > 0:
            self.failing_loads -= 1
            raise StoreError("GetObject: SlowDown: please reduce your request rate")
        return super().load(repository, wanted)

    def save(self, repository: str, entries: Mapping[str, Stored]) -> None:
        if self.failing_saves:
            raise StoreError(
                "" if self.silent else "PutObject: AccessDenied: the bucket policy changed"
            )
        super().save(repository, entries)


def test_a_night_that_could_not_read_the_store_leaves_what_it_held(
    sealed: FakeRegistry, tmp_path: Path
) -> None:
    """The store holds an archived index's bytes, which ECR no longer serves. A night whose
    load fails reads from ECR as if there were no store, and must not save that over it: the
    next night still has the index, and sweeps what it does not list."""
    h = archived_history(sealed, REPO)
    index = h["archived"].index
    text = sealed.manifest(REPO, index).decode()
    DirectoryStore(tmp_path).save(REPO, {index: Stored(text, oci.OCI_INDEX)})
    store = Failing(tmp_path, loads=1)
    night = run(sealed.client, store)
    assert night.store == "unavailable"
    assert store.load(REPO) == {index: Stored(text, oci.OCI_INDEX)}  # as it was
    report = run(sealed.client, store, dry_run=False)
    assert report.complete and report.store == "ok"
    assert sealed.digests(REPO) == h["archived"].all | h["kept"].all


def _bad_entries(store: DirectoryStore, digests: list[str]) -> None:
    store.save(REPO, {d: Stored('{"not": "these bytes"}', oci.OCI_MANIFEST) for d in digests})


# scenario -> the store, what to do to it first, and the warnings the run must log
STORE_TROUBLES: list[tuple[str, Callable[[Path], DirectoryStore], bool, dict[str, Any]]] = [
    (
        "its load fails",
        lambda root: Failing(root, loads=99),
        False,
        {
            "message": "store unavailable",
            "repository": REPO,
            "error": "GetObject: SlowDown: please reduce your request rate",
        },
    ),
    (
        "its save fails",
        lambda root: Failing(root, saves=True),
        False,
        {
            "message": "store unavailable",
            "repository": REPO,
            "error": "PutObject: AccessDenied: the bucket policy changed",
        },
    ),
    (
        "its save fails with an error that says nothing",
        lambda root: Failing(root, saves=True, silent=True),
        False,
        {"message": "store unavailable", "repository": REPO, "error": ""},
    ),
    (
        "twelve entries are not their digest",
        DirectoryStore,
        True,
        {"message": "store entries rejected", "repository": REPO, "count": 12},
    ),
]


@pytest.mark.parametrize(
    ("make", "tampered", "expected"),
    [(m, t, e) for _, m, t, e in STORE_TROUBLES],
    ids=[n for n, *_ in STORE_TROUBLES],
)
def test_what_goes_wrong_with_the_store_is_logged_with_its_repository_and_why(
    registry: FakeRegistry,
    tmp_path: Path,
    make: Callable[[Path], DirectoryStore],
    tampered: bool,
    expected: dict[str, Any],
) -> None:
    releases = [
        registry.push(REPO, oci.image_manifest(f"release-{i}"), tags=[f"r{i}"], pushed_at=OLD)
        for i in range(12)
    ]
    orphan = registry.push(REPO, oci.image_manifest("orphan"), pushed_at=OLD)
    store = make(tmp_path)
    if tampered:
        _bad_entries(store, releases)
    with captured() as out:
        report = run(registry.client, store)
    assert [d.digest for d in report.deletions] == [orphan]  # no decision changed
    warnings = [
        line
        for line in log_lines(out.getvalue())
        if line["message"] in {"store unavailable", "store entries rejected"}
    ]
    assert [{k: line.get(k) for k in expected} for line in warnings] == [expected]
    if tampered:
        # The first ten of them, to look at; the count says how many.
        (digests,) = (line["digests"] for line in warnings)
        assert len(digests) == 10 and set(digests) < set(releases)
        assert report.store_rejected == 12 and report.store == "ok"
    else:
        assert report.store == "unavailable"


# --- an index ECR will not serve, and the store does not hold -----------------------------------


def _refuse(digest: str, code: str = "KmsError", *, first: bool = False) -> Callable[..., None]:
    """ECR answering `digest` with a per-item failure; `first`: ahead of the other failures
    (ECR promises no order)."""

    def answer(parsed: dict[str, Any], **_: Any) -> None:
        images = parsed.get("images", [])
        kept = [i for i in images if i.get("imageId", {}).get("imageDigest") != digest]
        if len(kept) == len(images):
            return
        parsed["images"] = kept
        failure = {"imageId": {"imageDigest": digest}, "failureCode": code, "failureReason": "no"}
        others = parsed.get("failures", [])
        parsed["failures"] = [failure, *others] if first else [*others, failure]

    return answer


def _without_push_time(digest: str) -> Callable[..., None]:
    def answer(parsed: dict[str, Any], **_: Any) -> None:
        for detail in parsed.get("imageDetails", []):
            if detail["imageDigest"] == digest:
                detail.pop("imagePushedAt", None)

    return answer


def _archived(h: dict[str, Any]) -> str:
    return str(h["archived"].index)


def _child_after(h: dict[str, Any]) -> str:
    """A would-be deletion pushed after the archived index (read in the same call)."""
    return str(sorted(h["after"].all - {h["after"].index})[0])


# scenario -> the answers ECR gives (event, handler of the history), whether the index is
# archived, what is left, and the failures (digest, code) the report carries
UNSERVED: list[tuple[str, list[tuple[str, Any]], bool, Any, Any]] = [
    (
        "archived: what was pushed at or before it is kept, the rest swept",
        [],
        True,
        lambda h: h["before"].all | h["archived"].all | h["kept"].all,
        lambda h: [],
    ),
    (
        "archived, its failure answered after another manifest's refusal",
        [("after-call.ecr.BatchGetImage", lambda h: _refuse(_child_after(h), first=True))],
        True,
        lambda h: h["before"].all | h["archived"].all | h["kept"].all | {_child_after(h)},
        lambda h: [],
    ),
    (
        "archived, listed without a push time: it may list anything",
        [("after-call.ecr.DescribeImages", lambda h: _without_push_time(_archived(h)))],
        True,
        lambda h: {d for b in h.values() for d in b.all},
        lambda h: [(_archived(h), "ArchivedUnreadable")],
    ),
    (
        "not archived, refused: it may list anything, pushed after it too",
        [("after-call.ecr.BatchGetImage", lambda h: _refuse(_archived(h)))],
        False,
        lambda h: {d for b in h.values() for d in b.all},
        lambda h: [(_archived(h), "KmsError")],
    ),
]


@pytest.mark.parametrize(
    ("answers", "archived", "left", "failures"),
    [(a, r, left, f) for _, a, r, left, f in UNSERVED],
    ids=[n for n, *_ in UNSERVED],
)
def test_an_index_ecr_will_not_serve_keeps_whatever_it_may_list(
    sealed: FakeRegistry,
    answers: list[tuple[str, Any]],
    archived: bool,
    left: Callable[[dict[str, Any]], set[str]],
    failures: Callable[[dict[str, Any]], list[tuple[str, str]]],
) -> None:
    h = archived_history(sealed, REPO)
    if not archived:
        sealed.set_archived(REPO, _archived(h), False)
    for event, handler in answers:
        sealed.client.meta.events.register(event, handler(h))
    report = run(sealed.client, None, dry_run=False)
    assert sealed.digests(REPO) == left(h)
    assert [(f.digest, f.code) for f in report.all_failures] == failures(h)
    assert report.complete is not bool(failures(h))
    if failures(h):
        (failure,) = report.all_failures
        assert failure.message.startswith("cannot read a manifest that may list others: ")


# --- the survivors' reads, where layers are shared between repositories --------------------------


@pytest.fixture
def mounting() -> Iterator[FakeRegistry]:
    """BLOB_MOUNTING on: the bytes-freed figure needs every repository's blobs, so a
    repository with nothing to delete is read in full too. Archived manifests are not served."""
    with fresh_registry(blob_mounting=True, archived_manifests_readable=False) as fake:
        fake.push("base", oci.image_manifest("base"), tags=["v1"])  # another repository
        yield fake


def _releases(registry: FakeRegistry, count: int) -> list[str]:
    return [
        registry.seed(REPO, oci.image_manifest(f"release-{i}"), tags=[f"r{i}"], pushed_at=OLD)
        for i in range(count)
    ]


def test_a_repository_read_only_for_shared_layers_reads_each_manifest_once_100_a_call(
    mounting: FakeRegistry, tmp_path: Path
) -> None:
    releases = _releases(mounting, 150)  # all tagged: nothing to delete, nothing to plan from
    store = DirectoryStore(tmp_path)
    reads = ManifestReads(mounting.client)
    report = run(mounting.client, store, repositories=[REPO])
    assert report.complete and report.bytes_freed_unknown == 0
    assert sorted(reads.digests) == sorted(releases)  # each once
    assert len(reads.calls) == math.ceil(len(releases) / BATCH_SIZE)
    assert all(len(call) <= BATCH_SIZE for call in reads.calls)
    # What they read is stored: the next night reads none of it again.
    reads.calls.clear()
    again = run(mounting.client, store, repositories=[REPO])
    assert reads.calls == [] and again.manifests_from_store == len(releases)
    assert again.bytes_freed_unknown == 0


def _out_of_time_after_the_listing(registry: FakeRegistry) -> dict[str, Any]:
    listed: list[bool] = []
    registry.client.meta.events.register(
        "after-call.ecr.DescribeImages", lambda **_: listed.append(True)
    )
    return {"remaining_seconds": lambda: 0.0 if listed else 900.0}


def _reads_fail(registry: FakeRegistry) -> dict[str, Any]:
    wire = Wire(Inject("BatchGetImage", ServerError()))
    wire.attach(registry.client)
    return {}


def _one_archived(registry: FakeRegistry) -> dict[str, Any]:
    registry.set_archived(REPO, sorted(registry.digests(REPO))[0])
    return {}


def _one_deleted_behind_the_listing(registry: FakeRegistry) -> dict[str, Any]:
    gone = sorted(registry.digests(REPO))[0]

    def delete(**_: Any) -> None:
        if gone in registry.digests(REPO):
            remove_behind_ecr(registry, REPO, gone)

    registry.client.meta.events.register("before-call.ecr.BatchGetImage", delete)
    return {}


# scenario -> what happens after the listing, and why the figure is unknown ("" if known)
SURVIVORS_UNREAD: list[tuple[str, Callable[[FakeRegistry], dict[str, Any]], Any]] = [
    (
        "the time budget runs out first",
        _out_of_time_after_the_listing,
        lambda first: "time budget ran out before the survivors were read",
    ),
    (
        "their read fails past every retry",
        _reads_fail,
        lambda first: "BatchGetImage: ServerException: injected",
    ),
    (
        "one is archived and ECR will not serve it",
        _one_archived,
        lambda first: f"{first} unreadable: ImageInaccessible: ",
    ),
    ("one was deleted since the listing: it holds nothing", _one_deleted_behind_the_listing, ""),
]


@pytest.mark.parametrize(
    ("happens", "why"),
    [(h, w) for _, h, w in SURVIVORS_UNREAD],
    ids=[n for n, *_ in SURVIVORS_UNREAD],
)
def test_a_repository_read_only_for_shared_layers_says_why_its_blobs_are_unknown(
    mounting: FakeRegistry, happens: Callable[[FakeRegistry], dict[str, Any]], why: Any
) -> None:
    _releases(mounting, 3)
    first = sorted(mounting.digests(REPO))[0]
    options = happens(mounting)
    with fast_retries():
        report = run(mounting.client, None, repositories=[REPO], **options)
    (repo,) = report.repositories
    assert repo.planned == 0 and not repo.failures
    # The `repository` log line's `bytes_freed_unknown`: why its blobs are not known (so
    # neither is the figure of any repository that may share them).
    if why:
        assert repo.bytes_freed_unknown is not None
        assert repo.bytes_freed_unknown.startswith(why(first))
    else:
        assert repo.bytes_freed_unknown is None
