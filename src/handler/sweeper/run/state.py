"""What one run knows as it goes: a repository's plan and outcome, failures, why a run stopped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..audit import Hazard, Unevaluated
from ..freed import Candidates, FreedLedger
from ..lifecycle import retention_section
from ..model import Decision, Image, Manifest, Verdict
from ..validate import Problem


class StopReason(StrEnum):
    """Why a run left planned deletions undone (the report's `stopped_early`)."""

    TIME_BUDGET = "time budget"
    INTERRUPTED = "interrupted"
    CIRCUIT_BREAKER = "circuit breaker"
    NEWLY_PINNED = "a pin source now protects a planned deletion"
    NOT_CONFIRMED = "not confirmed"
    PLANNED_LIMIT = "planned deletions limit"


@dataclass(frozen=True, slots=True)
class Failure:
    repository: str
    digest: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "code": self.code,
            "message": self.message,
        }


@dataclass(slots=True)
class RepositoryRun:
    """One repository from its plan to its summary.

    Planning keeps only what the sweep and the report need: the deletions in their waves, their
    decisions and listings, the parsed manifests the post-sweep check would otherwise read again,
    and the bytes-freed ledger. Decisions that planning made final (every keep) are logged then
    and forgotten, unless `retain_decisions` asked for all of them (the command's tables). Once
    the repository is swept and logged, `summary()` is all the run keeps of it.
    """

    repository: str
    scanned: bool = False  # listed, read and planned
    manifests: int = 0  # listed
    decisions: dict[str, Decision] = field(default_factory=dict)  # planned ones, or all
    images: dict[str, Image] = field(default_factory=dict)  # of `decisions`
    waves: tuple[tuple[str, ...], ...] = ()
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)  # planned index -> kids
    referrers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # planned subject -> refs
    absent_subjects: dict[str, tuple[str, ...]] = field(default_factory=dict)  # see model.Plan
    # Retention: the digests a rule expired (they go with the tags they were listed with).
    expired: set[str] = field(default_factory=set)
    hazards: list[Hazard] = field(default_factory=list)  # the audit of ECR's own policy
    unevaluated: list[Unevaluated] = field(default_factory=list)  # rules the audit cannot judge
    kept: Counter[str] = field(default_factory=Counter)  # kept at planning, by reason
    known: dict[str, Manifest] = field(default_factory=dict)  # for the post-sweep check
    ledger: FreedLedger = field(default_factory=lambda: FreedLedger({}, {}))
    # Where the registry shares layers between repositories: the blobs the ledger counted,
    # until the other repositories' blobs are known (run/elsewhere.py, SharedBlobs).
    freed_candidates: Candidates | None = None
    deleted: set[str] = field(default_factory=set)
    already_gone: set[str] = field(default_factory=set)
    delete_failed: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    complete: bool = True
    out_of_time: bool = False  # the time budget ran out before everything planned was done
    validated: bool = False  # re-listed and checked after the sweep
    broken: list[Problem] = field(default_factory=list)  # what that check found
    # Why the run held its planned deletions back ("circuit-breaker"), or "": a property of the
    # run, not of a manifest, so each keeps its verdict `delete`, its reason and its cause.
    held_by: str = ""

    def fail(self, digest: str, code: str, message: str) -> None:
        self.failures.append(Failure(self.repository, digest, code, message))
        self.complete = False

    @property
    def planned(self) -> list[str]:
        return [digest for wave in self.waves for digest in wave]

    def summary(self, listed: int) -> RepositorySummary:
        """What the report needs of this repository; `listed` deletions are kept for its list."""
        planned = self.planned
        kept = Counter(self.kept)
        kept.update(
            self.decisions[d].reason.value
            for d in planned
            if self.decisions[d].verdict is Verdict.KEEP
        )
        return RepositorySummary(
            repository=self.repository,
            scanned=self.scanned,
            manifests=self.manifests,
            planned=len(planned),
            planned_bytes=sum(self.images[d].size for d in planned),
            deleted=len(self.deleted),
            deleted_bytes=sum(self.images[d].size for d in self.deleted),
            planned_bytes_freed=self.ledger.freed(planned),
            deleted_bytes_freed=self.ledger.freed(self.deleted),
            bytes_freed_unknown=self.ledger.unknown.reason if self.ledger.unknown else None,
            already_gone=len(self.already_gone),
            delete_failures=len(self.delete_failed),
            kept=kept,
            failures=list(self.failures),
            complete=self.complete,
            out_of_time=self.out_of_time,
            validated=self.validated,
            broken=list(self.broken),
            deletions=[self.deletion(d) for d in planned[:listed]],
            retention=self.retention(),
            hazards=list(self.hazards),
            unevaluated=list(self.unevaluated),
            spared=[
                self.decisions[d] for d in planned if self.decisions[d].verdict is Verdict.KEEP
            ],
            held_by=self.held_by,
        )

    def retention(self) -> RetentionTally:
        section = retention_section([(self.decisions, self.expired)])
        tally = RetentionTally(section["expired"], section["deleted"], Counter(section["held"]))
        if self.held_by:
            # What the run held back is not deleted, dry or real: held, by what held it.
            held = sum(
                1
                for d in self.expired
                if d in self.decisions and self.decisions[d].verdict is Verdict.DELETE
            )
            tally.deleted -= held
            tally.held[self.held_by] += held
        return tally

    def deletion(self, digest: str) -> Deletion:
        decision = self.decisions[digest]
        image = self.images[digest]
        return Deletion(
            repository=self.repository,
            digest=digest,
            kind=decision.kind.value,
            size=image.size,
            pushed_at=image.pushed_at.isoformat() if image.pushed_at else None,
            reason=decision.reason.value,
            cause=decision.cause,
            deleted=digest in self.deleted,
            held_by=self.held_by or None,
        )


@dataclass(slots=True)
class RetentionTally:
    """What retention rules expired, and what became of it: deleted (in a dry run, what the real
    run deletes), or held by the reason of its final decision (a pin, a pull, ...)."""

    expired: int = 0
    deleted: int = 0
    held: Counter[str] = field(default_factory=Counter)

    def add(self, other: RetentionTally) -> None:
        self.expired += other.expired
        self.deleted += other.deleted
        self.held.update(other.held)

    def as_dict(self) -> dict[str, Any]:
        return {
            "expired": self.expired,
            "deleted": self.deleted,
            "held": dict(sorted(self.held.items())),
        }


@dataclass(frozen=True, slots=True)
class Deletion:
    """A planned deletion as the report lists it."""

    repository: str
    digest: str
    kind: str
    size: int
    pushed_at: str | None
    reason: str
    cause: str
    deleted: bool
    held_by: str | None = None  # the run held it back ("circuit-breaker"): planned, not deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "kind": self.kind,
            "size": self.size,
            "pushed_at": self.pushed_at,
            "reason": self.reason,
            "cause": self.cause,
            "deleted": self.deleted,
            "held_by": self.held_by,
        }


@dataclass(frozen=True, slots=True)
class RepositorySummary:
    """All a run keeps of a repository once it is done. `*_bytes_freed` is None when unknown;
    `bytes_freed_unknown` then says why (None when they are known)."""

    repository: str
    scanned: bool
    manifests: int
    planned: int
    planned_bytes: int
    deleted: int
    deleted_bytes: int
    planned_bytes_freed: int | None
    deleted_bytes_freed: int | None
    bytes_freed_unknown: str | None
    already_gone: int
    delete_failures: int
    kept: Counter[str]
    failures: list[Failure]
    complete: bool
    out_of_time: bool
    validated: bool
    broken: list[Problem]
    deletions: list[Deletion]  # the first of its planned deletions, as many as the report lists
    retention: RetentionTally
    hazards: list[Hazard]
    spared: list[Decision]  # planned, then kept by the sweep (or the guards before it)
    unevaluated: list[Unevaluated] = field(default_factory=list)
    held_by: str = ""  # why the run held every planned deletion back (RepositoryRun.held_by)
