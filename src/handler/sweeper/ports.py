"""What the orchestration needs from a registry: the `Registry` protocol and its value types.

`registry.EcrRegistry` implements it against ECR (boto3); the tests implement it against moto
(through that same class) and in memory (`tests/harness/memory.py`). Nothing here does I/O, so
the orchestration can be read, and tested, without an AWS client in sight.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .model import Image

BATCH_SIZE = 100  # BatchGetImage / BatchDeleteImage / DescribeImages(imageIds) maximum
NOT_FOUND = "ImageNotFound"
REPOSITORY_NOT_FOUND = "RepositoryNotFoundException"  # the code of a call on no such repository
TIME_BUDGET = "TimeBudget"  # the code of a RegistryError raised because `stop()` said so
# The failure code `manifests` gives a manifest that BatchGetImage called not found although the
# repository lists it as archived (whether ECR serves archived manifests is undocumented).
ARCHIVED_UNREADABLE = "ArchivedUnreadable"
# The failure code of an unexpected exception (a bug, an answer nobody foresaw): it is contained
# to the repository it happened in, which deletes nothing more this run (docs/design.md).
INTERNAL = "Internal"


def internal_message(exc: BaseException) -> str:
    """What an INTERNAL failure says: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"


class RegistryError(Exception):
    """A call failed after retries: the evidence it should have given is missing."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message


@dataclass(slots=True)
class Fetched:
    """Manifests by digest (their text, as the registry returns it: the bytes are its UTF-8
    encoding), and the digests that could not be read, with the error code and message."""

    content: dict[str, str] = field(default_factory=dict)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(slots=True)
class Deleted:
    """The outcome of one delete call, item by item."""

    deleted: set[str] = field(default_factory=set)
    already_gone: set[str] = field(default_factory=set)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Tags the registry says it removed with a deleted manifest (by digest, a manifest goes
    # with every tag it has: one added after the last re-read is lost with it).
    tags_removed: dict[str, list[str]] = field(default_factory=dict)


Stop = Callable[[], bool]


class Registry(Protocol):
    """One registry (account and region). Every method is safe to call from several threads."""

    def repositories(self) -> list[str]:
        """Every repository's name."""
        ...

    def repository_arns(self) -> dict[str, str]:
        """Every repository's name and ARN."""
        ...

    def repository_tags(self, arn: str) -> dict[str, str]:
        """The tags of one repository."""
        ...

    def images(self, repository: str, stop: Stop | None = None) -> list[Image]:
        """Every manifest of the repository, archived ones too. `stop` is asked between pages;
        when it says so the listing is abandoned with a RegistryError coded TIME_BUDGET."""
        ...

    def manifests(
        self, repository: str, digests: Sequence[str], stop: Stop | None = None
    ) -> Fetched:
        """The exact bytes of each manifest (any number: batched inside), per-item failures."""
        ...

    def describe(self, repository: str, digests: Sequence[str]) -> dict[str, Image]:
        """Up to BATCH_SIZE manifests as they are now; vanished ones are absent."""
        ...

    def lifecycle_policy(self, repository: str) -> str | None:
        """The repository's lifecycle policy text, or None when it has none."""
        ...

    def blob_mounting(self) -> bool:
        """Whether the registry shares layers between its repositories (ECR's account setting
        BLOB_MOUNTING)."""
        ...

    def delete(self, repository: str, digests: Sequence[str]) -> Deleted:
        """Delete up to BATCH_SIZE manifests by digest; every per-item answer read."""
        ...

    def pull_time_exclusions(self) -> list[str]:
        """Every principal ARN registered as a pull-time update exclusion (all pages)."""
        ...

    def register_pull_time_exclusion(self, principal: str) -> None:
        """Register `principal` as a pull-time update exclusion; one registered meanwhile is
        not an error."""
        ...


class StoreError(Exception):
    """The manifest store could not be read or written: the run goes on without it (reads),
    or does not delete (a journal write)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One manifest as the store keeps it: its text (the bytes are its UTF-8 encoding) and the
    media type the registry listed it with. Never trusted: see `store.codec.verified`."""

    text: str
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One deletion, recorded before the delete call: enough to put the manifest back."""

    run_id: str
    repository: str
    digest: str
    media_type: str | None
    tags: tuple[str, ...]
    reason: str
    cause: str
    recorded_at: str  # the run's `now`, ISO 8601
    text: str  # the manifest's bytes (UTF-8)


class ManifestStore(Protocol):
    """Manifests by repository (content-addressed, so never stale), and the journal of
    deletions. Every method may raise StoreError; every method is safe from several threads."""

    def load(self, repository: str, wanted: Container[str] | None = None) -> dict[str, Stored]:
        """What the store holds for the repository (nothing yet: empty), unverified; only the
        entries of `wanted` digests, when given."""
        ...

    def save(self, repository: str, entries: Mapping[str, Stored]) -> None:
        """Replace what the store holds for the repository."""
        ...

    def journal(self, records: Sequence[JournalRecord]) -> None:
        """Record one batch of deletions (one repository, one run) before it is deleted."""
        ...

    def runs(self) -> list[str]:
        """The run ids the journal holds."""
        ...

    def records(self, run_id: str) -> list[JournalRecord]:
        """What one run recorded (unverified)."""
        ...


@dataclass(slots=True)
class PutOutcome:
    """What PutImage said: the digest ECR stored, or why it refused."""

    digest: str | None = None
    code: str = ""
    message: str = ""


class RegistryWriter(Protocol):
    """What `restore` needs beyond reading: check blobs, put a manifest back, read a tag."""

    def missing_layers(self, repository: str, digests: Sequence[str]) -> list[str]:
        """Those of the blob `digests` the repository no longer has."""
        ...

    def put(
        self, repository: str, text: str, media_type: str | None, digest: str, tag: str | None
    ) -> PutOutcome:
        """PutImage by digest (and the tag, when given)."""
        ...

    def tagged(self, repository: str, tag: str) -> str | None:
        """The digest `tag` names now, or None."""
        ...


class RotationCursor(Protocol):
    """Where the rotation stands between runs: the repository the next run starts at.

    Only a position: a run that cannot read it starts where the day says (`run.rotate`), and one
    that cannot write it has still swept what it swept. So either may raise anything; the
    orchestration logs it and goes on.
    """

    def read(self) -> str | None:
        """The repository to start at, or None when there is none yet."""
        ...

    def write(self, repository: str) -> None:
        """Start the next run at `repository`."""
        ...
