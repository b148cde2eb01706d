"""`ecr-sweeper restore`: put back what a run deleted, from the journal (sweeper.store).

Deleted manifests go back with PutImage in dependency order: an index's children before the
index (ECR refuses an index whose children are missing), a subject before the referrers and
accessories that name it; the tags each manifest carried last, once every manifest is back.
Before each put, what it needs is checked: each child must be there (DescribeImages) or be put
back first, each config and layer blob must still be there (BatchCheckLayerAvailability: ECR may
clean up a layer no manifest uses at any time, and then nothing can bring the image back but a
push of its layers). Each manifest comes out `restored`, `already-present` or `not-restorable`
with what is missing; a dry run says `restorable` instead of putting it.

Nothing in the journal is trusted: an entry whose bytes do not hash to its digest is refused,
and ECR checks the digest again on PutImage. A tag that now names another manifest is never
moved (reported): whoever moved it meant it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..manifests import parse
from ..model import Kind, accessory_subject
from ..ports import BATCH_SIZE, JournalRecord, ManifestStore, Registry, RegistryWriter
from ..store.codec import digest_of
from .coordinator import matches

RESTORED = "restored"
RESTORABLE = "restorable"  # a dry run's `restored`
ALREADY_PRESENT = "already-present"
NOT_RESTORABLE = "not-restorable"


class RestoringRegistry(Registry, RegistryWriter, Protocol):
    """A registry that can read and put back (registry.EcrRegistry)."""


@dataclass(slots=True)
class Restored:
    """One manifest's outcome; `missing` says what stopped it (children, blobs, a refusal)."""

    repository: str
    digest: str
    outcome: str
    missing: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # tags put back (or, dry, to put back)
    tags_not_moved: dict[str, str] = field(default_factory=dict)  # tag -> what it names now
    cause: str = ""  # why it was deleted, from the journal

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "outcome": self.outcome,
            "missing": list(self.missing),
            "tags": list(self.tags),
            "tags_not_moved": dict(self.tags_not_moved),
            "cause": self.cause,
        }


def select(records: Sequence[JournalRecord], repositories: Sequence[str]) -> list[JournalRecord]:
    """The records of the repositories matching any glob (all when none); each digest once per
    repository."""
    chosen: dict[tuple[str, str], JournalRecord] = {}
    for record in records:
        if not repositories or matches(record.repository, repositories):
            chosen.setdefault((record.repository, record.digest), record)
    return list(chosen.values())


def restore(
    registry: RestoringRegistry,
    store: ManifestStore,
    run_id: str,
    *,
    repositories: Sequence[str] = (),
    digest: str | None = None,
    dry_run: bool = False,
) -> list[Restored]:
    """Put back what run `run_id` deleted (of the selection); raises StoreError or
    RegistryError when the journal or the registry cannot be read."""
    by_repository: dict[str, list[JournalRecord]] = defaultdict(list)
    for record in select(store.records(run_id), repositories):
        by_repository[record.repository].append(record)
    results: list[Restored] = []
    for name in sorted(by_repository):
        results.extend(_Repository(registry, name, by_repository[name], dry_run).run(digest))
    return results


class _Repository:
    def __init__(
        self,
        registry: RestoringRegistry,
        name: str,
        records: list[JournalRecord],
        dry_run: bool,
    ) -> None:
        self.registry = registry
        self.name = name
        self.records = {r.digest: r for r in records}
        self.dry_run = dry_run
        self.children: dict[str, tuple[str, ...]] = {}
        self.blobs: dict[str, tuple[str, ...]] = {}
        self.after: dict[str, set[str]] = {}  # digest -> what must be there before it

    def run(self, wanted: str | None = None) -> list[Restored]:
        """Every recorded manifest or, with `wanted` (a digest or a prefix of one), those it
        names and what they need that the run deleted too: an index comes back with its
        children, a referrer with its subject."""
        self.graph()
        if wanted:
            chosen = {d for d in self.records if d.startswith(wanted)}
            stack = list(chosen)
            while stack:
                for needed in self.after.get(stack.pop(), ()):
                    if needed in self.records and needed not in chosen:
                        chosen.add(needed)
                        stack.append(needed)
            self.records = {d: r for d, r in self.records.items() if d in chosen}
        results = {d: Restored(self.name, d, "", cause=r.cause) for d, r in self.records.items()}
        for digest, record in self.records.items():
            if digest_of(record.text) != digest:
                results[digest].outcome = NOT_RESTORABLE
                results[digest].missing = ["journal entry: its bytes are not this digest"]
        present = self.present()
        for digest in self.order([d for d, r in results.items() if not r.outcome]):
            self.put_back(results[digest], present)
        for digest in self.records:
            if results[digest].outcome in (RESTORED, RESTORABLE, ALREADY_PRESENT):
                self.retag(results[digest])
        return [results[d] for d in self.records]

    def graph(self) -> None:
        """What each recorded manifest needs first (children, subjects), and its blobs."""
        for digest, record in self.records.items():
            parsed = parse(record.text, media_type=record.media_type, digest=digest)
            listed = () if parsed.kind is Kind.UNKNOWN else parsed.references
            self.children[digest] = tuple(d.digest for d in listed)
            self.blobs[digest] = tuple(b.digest for b in parsed.blobs)
            named = {parsed.subject} if parsed.subject else set()
            named.update(s for t in record.tags if (s := accessory_subject(t)) is not None)
            self.after[digest] = set(self.children[digest]) | named

    def present(self) -> set[str]:
        """Which of the recorded manifests, and of what they need, are in the repository now."""
        wanted = sorted(set(self.records) | {d for needed in self.after.values() for d in needed})
        found: set[str] = set()
        for start in range(0, len(wanted), BATCH_SIZE):
            found.update(self.registry.describe(self.name, wanted[start : start + BATCH_SIZE]))
        return found

    def order(self, digests: list[str]) -> list[str]:
        """What each needs first (children, subjects), then it; a cycle (which content
        addressing rules out) comes last, and fails on what it lacks."""
        ordered: list[str] = []
        state: dict[str, int] = {}

        def visit(digest: str) -> None:
            stack = [(digest, iter(sorted(self.after.get(digest, ()))))]
            state[digest] = 1
            while stack:
                current, pending = stack[-1]
                for needed in pending:
                    if needed in self.after and needed in digests and needed not in state:
                        state[needed] = 1
                        stack.append((needed, iter(sorted(self.after.get(needed, ())))))
                        break
                else:
                    stack.pop()
                    state[current] = 2
                    ordered.append(current)

        for digest in sorted(digests):
            if digest not in state:
                visit(digest)
        return ordered

    def put_back(self, result: Restored, present: set[str]) -> None:
        digest, record = result.digest, self.records[result.digest]
        if digest in present:
            result.outcome = ALREADY_PRESENT
            return
        result.missing = [f"child {c}" for c in self.children[digest] if c not in present]
        blobs = self.blobs[digest]
        if blobs:
            result.missing += [f"blob {b}" for b in self.registry.missing_layers(self.name, blobs)]
        if result.missing:
            result.outcome = NOT_RESTORABLE
            return
        if self.dry_run:
            result.outcome = RESTORABLE
            present.add(digest)  # what lists it may follow, in the real run
            return
        put = self.registry.put(self.name, record.text, record.media_type, digest, None)
        if put.digest == digest:
            result.outcome = RESTORED
            present.add(digest)
        else:
            result.outcome = NOT_RESTORABLE
            result.missing = [f"PutImage: {put.code or 'another digest'}: {put.message}"]

    def retag(self, result: Restored) -> None:
        """The recorded tags, each unless it now names another manifest."""
        record = self.records[result.digest]
        for tag in record.tags:
            now = self.registry.tagged(self.name, tag)
            if now == result.digest:
                continue
            if now is not None:
                result.tags_not_moved[tag] = now
                continue
            if self.dry_run:
                result.tags.append(tag)
                continue
            put = self.registry.put(self.name, record.text, record.media_type, result.digest, tag)
            if put.digest == result.digest:
                result.tags.append(tag)
            else:
                result.tags_not_moved[tag] = f"PutImage: {put.code}: {put.message}"
