"""The sweep phase: delete one repository's plan, wave by wave, re-reading each batch first.

A manifest that was not deleted (failure, gained tag, not reached) blocks every candidate it
lists, so no surviving index is ever left without a child, wherever the run stops.
"""

from __future__ import annotations

from dataclasses import replace

from .. import ports
from ..model import Image, Reason, Verdict
from ..ports import (
    INTERNAL,
    JournalRecord,
    ManifestStore,
    RegistryError,
    Stored,
    StoreError,
    internal_message,
)
from ..store.codec import verified
from .check import check_repository
from .context import Context
from .decision_log import log
from .state import RepositoryRun

TAG_LOST = "TagLost"  # the failure code of a deleted manifest that carried a tag
# The failure code of a batch not deleted because the journal (sweeper.store) could not record
# it first: a deletion the journal does not hold could not be undone.
JOURNAL_FAILED = "JournalWriteFailed"


def sweep_repository(ctx: Context, repo: RepositoryRun) -> None:
    if not repo.waves:
        return
    sweep = _Sweep(ctx, repo)
    try:
        sweep.run()
        # Deleted, or found gone after a delete call that did not confirm it: check either way.
        if (repo.deleted or repo.already_gone) and not ctx.budget.out():
            check = check_repository(ctx.registry, repo.repository, known=repo.known)
            repo.validated = not check.failures
            repo.broken = check.problems
            for failure in check.failures:
                repo.fail(failure.digest, failure.code, failure.message)
    except Exception as exc:  # contained: the other repositories go on
        log.exception("sweep failed", extra={"repository": repo.repository})
        repo.fail("", INTERNAL, internal_message(exc))
        sweep.abandon()
    repo.known = {}  # the check was its only use


class _Sweep:
    def __init__(self, ctx: Context, repo: RepositoryRun) -> None:
        self.ctx = ctx
        self.repo = repo
        self.blocked: dict[str, tuple[Reason, str]] = {}
        # The bytes the journal records, loaded from the store before the first delete: the scan
        # saved them there, and holding every planned deletion's bytes until the sweep would
        # make the run's memory follow its deletions.
        self.content: dict[str, Stored] | None = None
        self.content_error = ""

    def block(self, digest: str, reason: Reason, cause: str) -> None:
        """Keep `digest`, and for it every candidate it lists and every candidate referrer that
        describes it (transitively), for `reason`."""
        stack = [(digest, reason, cause)]
        while stack:
            current, why, because = stack.pop()
            if current in self.blocked:
                continue
            self.blocked[current] = (why, because)
            stack.extend(
                (child, Reason.PARENT_NOT_DELETED, current)
                for child in self.repo.children.get(current, ())
            )
            stack.extend(
                (referrer, Reason.SUBJECT_KEPT, current)
                for referrer in self.repo.referrers.get(current, ())
            )

    def abandon(self) -> None:
        """After an unexpected exception: whatever was not deleted (nor found gone) is kept,
        with what it lists and what describes it; no further batch is sent."""
        for digest in self.repo.planned:
            if digest not in self.repo.deleted and digest not in self.repo.already_gone:
                self.block(digest, Reason.NOT_REACHED, "the sweep failed (Internal)")
        self.settle()

    def run(self) -> None:
        repo, budget = self.repo, self.ctx.budget
        stopped = False
        size = ports.BATCH_SIZE
        for wave in repo.waves:
            todo = [d for d in wave if d not in self.blocked]
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                if not stopped and budget.out():
                    stopped = repo.out_of_time = True
                if stopped:
                    for digest in batch:
                        self.block(digest, Reason.NOT_REACHED, "run stopped before this batch")
                    continue
                try:
                    if not self.delete(batch):
                        stopped = True  # the journal failed: no further batch either
                except RegistryError as exc:
                    # The outcome of this call is unknown: count nothing, go no further.
                    for digest in batch:
                        repo.fail(digest, exc.code, str(exc))
                        self.block(digest, Reason.NOT_REACHED, exc.operation)
                    if exc.operation == "BatchDeleteImage":
                        repo.delete_failed.update(batch)
                    stopped = True
        if stopped:
            repo.complete = False
        self.settle()

    def settle(self) -> None:
        """Every blocked manifest's decision becomes the keep that blocked it."""
        repo = self.repo
        for digest, (reason, cause) in self.blocked.items():
            if digest not in repo.deleted and digest not in repo.already_gone:
                repo.decisions[digest] = replace(
                    repo.decisions[digest], verdict=Verdict.KEEP, reason=reason, cause=cause
                )

    def pulled_since_scan(self, digest: str, image: Image) -> bool:
        """A pull recorded after the listing's that the plan would have kept it for (the pull
        window, judged as `plan` judges it): a workload pulled it mid-run. Only with the
        pull-time exclusion in place: otherwise the run's own reads moved the time, and every
        manifest it read would look pulled (the report says so: run/exclusion.py)."""
        ctx = self.ctx
        pulled, scanned = image.last_pulled, self.repo.images[digest].last_pulled
        return (
            ctx.pull_times_trusted
            and pulled is not None
            and (scanned is None or pulled > scanned)
            and ctx.policy.pulled_within_window(pulled, ctx.now)
        )

    def delete(self, batch: list[str]) -> bool:
        """Re-read the batch (and the subjects its dangling referrers rest on), journal and
        delete what is still deletable, and read every per-item answer. False when the journal
        could not record the batch (nothing of it was deleted)."""
        repo, registry = self.repo, self.ctx.registry
        batch = [d for d in batch if d not in self.blocked]  # blocked by an earlier batch
        if not batch:
            return True
        subjects = {s for d in batch for s in repo.absent_subjects.get(d, ())}
        # One call in the usual case; 100 ids a call however many subjects the batch rests on
        # (one manifest may carry a hundred accessory tags).
        asked = [*batch, *sorted(subjects - set(batch))]
        current: dict[str, Image] = {}
        for start in range(0, len(asked), ports.BATCH_SIZE):
            current |= registry.describe(repo.repository, asked[start : start + ports.BATCH_SIZE])
        ready: list[str] = []
        for digest in batch:
            if digest in self.blocked:
                continue  # blocked by a member of this same batch, read before it
            image = current.get(digest)
            listed = set(repo.images[digest].tags)  # an accessory's own, an expired image's
            found = [s for s in repo.absent_subjects.get(digest, ()) if s in current]
            if found:
                # Its subject is there after all (pushed since, or missed by the listing).
                self.block(digest, Reason.SUBJECT_KEPT, found[0])
            elif image is None:
                repo.already_gone.add(digest)
            elif set(image.tags) - listed:
                # Deleting by digest would silently take the new tag with it (a planned manifest
                # goes with the tags it was listed with: an expired image's, an accessory's).
                self.block(digest, Reason.GAINED_TAG, sorted(set(image.tags) - listed)[0])
            elif image.archived:
                self.block(digest, Reason.ARCHIVED, "archived since the scan")
            elif self.pulled_since_scan(digest, image):
                self.block(digest, Reason.PULLED_SINCE_SCAN, f"pulled at {image.last_pulled}")
            else:
                ready.append(digest)
        # A member blocked after it was found ready (by a subject or an index later in the
        # batch) stays, and is not in the call.
        ready = [d for d in ready if d not in self.blocked]
        if ready and not self.journal({d: current[d].tags for d in ready}):
            return False
        outcome = registry.delete(repo.repository, ready)
        repo.deleted |= outcome.deleted
        repo.already_gone |= outcome.already_gone
        if self.ctx.options.on_batch_deleted is not None:
            self.ctx.options.on_batch_deleted(repo, batch)
        for digest, (code, message) in outcome.failures.items():
            repo.fail(digest, code, message)
            repo.delete_failed.add(digest)
            self.block(digest, Reason.DELETE_FAILED, code)
        for digest, removed in outcome.tags_removed.items():
            # Tagged after the re-read: no collector can close that window, but it is reported,
            # and what the manifest lists or what describes it stays, so it can be pushed again.
            tags = [t for t in removed if t not in repo.images[digest].tags]
            if not tags:
                continue  # the tags it was listed with, planned to go with it
            tag_list = ", ".join(repr(t) for t in tags)
            repo.fail(digest, TAG_LOST, f"deleted with tag {tag_list}, added after the re-read")
            self.block(digest, Reason.GAINED_TAG, tags[0])
        return True

    def journal(self, ready: dict[str, tuple[str, ...]]) -> bool:
        """Record the batch in the store's journal before its delete call (with a store)."""
        store, repo, ctx = self.ctx.options.store, self.repo, self.ctx
        if store is None:
            return True
        error = ""
        content = self.load_content(store)
        missing = [d for d in ready if d not in content]
        if missing:
            error = self.content_error or f"the store does not hold the bytes of {missing[0]}"
        else:
            records = [
                JournalRecord(
                    run_id=ctx.options.run_id,
                    repository=repo.repository,
                    digest=digest,
                    media_type=repo.images[digest].media_type,
                    tags=tags,
                    reason=repo.decisions[digest].reason.value,
                    cause=repo.decisions[digest].cause,
                    recorded_at=ctx.now.isoformat(),
                    text=content[digest].text,
                )
                for digest, tags in ready.items()
            ]
            try:
                store.journal(records)
            except StoreError as exc:
                error = str(exc)
        if not error:
            for digest in ready:
                del content[digest]  # journaled: its bytes are no longer needed here
            return True
        for digest in ready:
            repo.fail(
                digest, JOURNAL_FAILED, f"not deleted: the journal could not record it: {error}"
            )
            self.block(digest, Reason.NOT_REACHED, "the journal could not record its batch")
        return False

    def load_content(self, store: ManifestStore) -> dict[str, Stored]:
        """The planned deletions' bytes from the store, each checked against its digest (once),
        and only theirs: the rest of the repository's object is never held."""
        if self.content is None:
            self.content = {}
            planned = dict.fromkeys(self.repo.planned)
            try:
                entries = store.load(self.repo.repository, planned)
            except StoreError as exc:
                self.content_error = str(exc)
            else:
                self.content, _ = verified(entries, planned)
        return self.content
