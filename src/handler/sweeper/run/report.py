"""The report a run returns: typed for the handler, the metrics and the command; `as_dict()` is
the JSON the Lambda answers with (its fields are described in the README, "The first dry run")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..audit import Hazard, Unevaluated
from ..validate import Problem
from .context import MAX_LISTED_DELETIONS
from .exclusion import PullTimeExclusion
from .state import Deletion, Failure, RepositorySummary, RetentionTally, StopReason


@dataclass(frozen=True, slots=True)
class Totals:
    manifests: int = 0
    bytes: int = 0  # nominal: the sum of ECR's imageSizeInBytes
    bytes_freed: int = 0  # the blobs only these manifests referenced (a lower bound if unknown)

    def as_dict(self) -> dict[str, int]:
        return {"manifests": self.manifests, "bytes": self.bytes, "bytes_freed": self.bytes_freed}


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    planned: int
    max_deletions: int
    dry_run: bool

    @property
    def hint(self) -> str:
        outcome = "a real run deletes nothing" if self.dry_run else "nothing was deleted"
        # A request cannot make a dry-run deployment delete: the real run is a deployment's
        # with DryRun=false, given the higher limit for one invocation.
        return (
            f"{self.planned} deletions planned, more than max_deletions={self.max_deletions}: "
            f"{outcome}. Review the planned deletions of a dry run, then invoke once with the "
            f'same request plus {{"dry_run": false, "max_deletions": {self.planned}}} (on a '
            "deployment with DryRun=false)."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tripped": True,
            "planned": self.planned,
            "max_deletions": self.max_deletions,
            "hint": self.hint,
        }


@dataclass(slots=True)
class Report:
    """One run's outcome. `repositories` are in the order the run took them."""

    dry_run: bool
    repositories: list[RepositorySummary] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # failures outside any repository
    circuit_breaker: CircuitBreaker | None = None
    pins: dict[str, int] = field(default_factory=dict)
    held_tags: dict[str, int] = field(default_factory=dict)  # tags something runs by, per source
    stopped_early: StopReason | None = None
    duration_seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # not opted in by the required tag
    run_id: str = ""  # the Lambda's request id, or the command's; its log lines carry it
    store: str = "off"  # the manifest store: off, ok, or unavailable (read from ECR instead)
    store_rejected: int = 0  # stored entries whose bytes did not hash to their digest
    manifests_from_store: int = 0  # manifests the run took from the store instead of ECR
    # The run's principal among ECR's pull-time update exclusions (run/exclusion.py).
    pull_time_exclusion: PullTimeExclusion | None = None
    # What an operator must know although nothing failed (a log line each, too).
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return (
            not self.failures
            and self.stopped_early is None
            and all(r.complete for r in self.repositories)
        )

    @property
    def repositories_reached(self) -> int:
        """Selected repositories this run gave their whole turn (run.rotation.reached)."""
        return sum(1 for r in self.repositories if not r.out_of_time)

    @property
    def repositories_left(self) -> int:
        """Selected repositories the time budget left for the next run (the rotation's next)."""
        return sum(1 for r in self.repositories if r.out_of_time)

    @property
    def all_failures(self) -> list[Failure]:
        return self.failures + [f for r in self.repositories for f in r.failures]

    @property
    def planned(self) -> Totals:
        return Totals(
            sum(r.planned for r in self.repositories),
            sum(r.planned_bytes for r in self.repositories),
            sum(r.planned_bytes_freed or 0 for r in self.repositories),
        )

    @property
    def deleted(self) -> Totals:
        return Totals(
            sum(r.deleted for r in self.repositories),
            sum(r.deleted_bytes for r in self.repositories),
            sum(r.deleted_bytes_freed or 0 for r in self.repositories),
        )

    @property
    def manifests(self) -> int:
        return sum(r.manifests for r in self.repositories)

    @property
    def bytes_freed_unknown(self) -> int:
        """Repositories left out of both bytes_freed figures (then lower bounds)."""
        return sum(1 for r in self.repositories if r.planned_bytes_freed is None)

    @property
    def kept(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for repo in self.repositories:
            total.update(repo.kept)
        return dict(sorted(total.items()))

    @property
    def broken(self) -> list[Problem]:
        return [p for r in self.repositories for p in r.broken]

    @property
    def retention(self) -> RetentionTally:
        total = RetentionTally()
        for repo in self.repositories:
            total.add(repo.retention)
        return total

    @property
    def lifecycle_hazards(self) -> list[Hazard]:
        return [h for r in self.repositories for h in r.hazards]

    @property
    def lifecycle_unevaluated(self) -> list[Unevaluated]:
        """Rules of ECR's policies the audit could not evaluate: reported, never silent."""
        return [u for r in self.repositories for u in r.unevaluated]

    @property
    def deletions(self) -> list[Deletion]:
        """The listed deletions: as many as `listing_quotas` gave each repository."""
        return [d for r in self.repositories for d in r.deletions]

    def as_dict(self) -> dict[str, Any]:
        planned = self.planned
        deletions = self.deletions
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "complete": self.complete,
            "repositories": len(self.repositories),
            "repositories_reached": self.repositories_reached,
            "repositories_left": self.repositories_left,
            "skipped_repositories": list(self.skipped),
            "manifests": self.manifests,
            "planned": planned.as_dict(),
            "deleted": self.deleted.as_dict(),
            "bytes_freed_unknown": self.bytes_freed_unknown,
            "delete_failures": sum(r.delete_failures for r in self.repositories),
            # Listed, then found gone before this run could delete them (by someone else, or by
            # a call of this run whose answer was lost): never counted as deleted.
            "already_gone": {"manifests": sum(r.already_gone for r in self.repositories)},
            "kept": self.kept,
            "failures": [f.as_dict() for f in self.all_failures],
            "warnings": list(self.warnings),
            "circuit_breaker": self.circuit_breaker.as_dict() if self.circuit_breaker else None,
            "pins": dict(self.pins),
            "held_tags": dict(self.held_tags),
            "pull_time_exclusion": (
                self.pull_time_exclusion.state.value if self.pull_time_exclusion else None
            ),
            "pull_time_exclusions": (
                self.pull_time_exclusion.as_dict() if self.pull_time_exclusion else None
            ),
            "stopped_early": self.stopped_early.value if self.stopped_early else None,
            "validated": sum(1 for r in self.repositories if r.validated),
            "broken": [p.as_dict() for p in self.broken],
            "retention": self.retention.as_dict(),
            "lifecycle_hazards": [h.as_dict() for h in self.lifecycle_hazards],
            "lifecycle_unevaluated": [u.as_dict() for u in self.lifecycle_unevaluated],
            "deletions": [d.as_dict() for d in deletions],
            "deletions_truncated": planned.manifests > len(deletions),
            "store": self.store,
            "store_rejected": self.store_rejected,
            "manifests_from_store": self.manifests_from_store,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def listing_quotas(planned: Sequence[int], limit: int | None = MAX_LISTED_DELETIONS) -> list[int]:
    """How many deletions each repository keeps for the report's list, in run order: the list
    is the first `limit` of the run (None: all), so a repository past them keeps none."""
    if limit is None:
        return list(planned)
    quotas: list[int] = []
    left = limit
    for count in planned:
        quotas.append(min(count, left))
        left -= quotas[-1]
    return quotas
