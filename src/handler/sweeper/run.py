"""One run: for each repository snapshot -> plan; then, unless dry, verify -> sweep.

Planning every repository before deleting anything is what makes the circuit breaker and the pin
re-check possible, and what makes a dry run report exactly what the real run deletes: both run the
same planning code over the same snapshot, and only the real run goes on to sweep.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import manifests as m
from .model import Decision, Image, Kind, Manifest, Pin, Plan, Reason, Verdict
from .plan import Policy, make_plan, may_delete, needs_content
from .registry import BATCH_SIZE, Registry, RegistryError
from .settings import Settings

log = logging.getLogger("ecr_sweeper")

MAX_LISTED_DELETIONS = 1000  # deletions listed in the returned report; every one is in the log
TIME_MARGIN_SECONDS = 60.0  # stop starting new batches when less than this is left


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
    """What happened to one repository; `decisions` are final (after the sweep, if any)."""

    repository: str
    images: dict[str, Image] = field(default_factory=dict)
    plan: Plan | None = None
    decisions: dict[str, Decision] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    already_gone: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    complete: bool = True
    out_of_time: bool = False  # the time budget ran out before everything planned was done

    def fail(self, digest: str, code: str, message: str) -> None:
        self.failures.append(Failure(self.repository, digest, code, message))
        self.complete = False

    @property
    def planned(self) -> list[str]:
        return self.plan.deletions if self.plan else []


@dataclass(slots=True)
class Run:
    """The whole run, and the report it returns."""

    dry_run: bool
    repositories: list[RepositoryRun] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # failures outside any repository
    circuit_breaker: dict[str, Any] | None = None
    pin_counts: dict[str, int] = field(default_factory=dict)
    stopped_early: str = ""
    duration_seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return (
            not self.failures
            and not self.stopped_early
            and self.circuit_breaker is None
            and all(r.complete for r in self.repositories)
        )

    def report(self) -> dict[str, Any]:
        planned = [(r, d) for r in self.repositories for d in r.planned]
        kept = Counter(
            decision.reason.value
            for r in self.repositories
            for decision in r.decisions.values()
            if decision.verdict is Verdict.KEEP
        )
        listed = [_deletion_entry(r, d) for r, d in planned[:MAX_LISTED_DELETIONS]]
        return {
            "dry_run": self.dry_run,
            "complete": self.complete,
            "repositories": len(self.repositories),
            "manifests": sum(len(r.images) for r in self.repositories),
            "planned": {
                "manifests": len(planned),
                "bytes": sum(r.images[d].size for r, d in planned),
            },
            "deleted": {
                "manifests": sum(len(r.deleted) for r in self.repositories),
                "bytes": sum(r.images[d].size for r in self.repositories for d in r.deleted),
            },
            "kept": dict(sorted(kept.items())),
            "failures": [
                f.as_dict()
                for f in self.failures + [f for r in self.repositories for f in r.failures]
            ],
            "circuit_breaker": self.circuit_breaker,
            "pins": dict(self.pin_counts),
            "stopped_early": self.stopped_early or None,
            "deletions": listed,
            "deletions_truncated": len(planned) > len(listed),
            "duration_seconds": round(self.duration_seconds, 3),
        }


def _deletion_entry(repo: RepositoryRun, digest: str) -> dict[str, Any]:
    decision = repo.decisions[digest]
    image = repo.images[digest]
    return {
        "repository": repo.repository,
        "digest": digest,
        "kind": decision.kind.value,
        "size": image.size,
        "pushed_at": image.pushed_at.isoformat() if image.pushed_at else None,
        "reason": decision.reason.value,
        "cause": decision.cause,
        "deleted": digest in repo.deleted,
    }


def select_repositories(
    names: Iterable[str], include: Sequence[str], exclude: Sequence[str]
) -> list[str]:
    """Names matching any include pattern (all when none) and no exclude pattern, sorted."""

    def matches(name: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    return sorted(
        n for n in names if (not include or matches(n, include)) and not matches(n, exclude)
    )


class Sweeper:
    """Runs the sweep over one registry. `now` and the settings come in; nothing reads a clock
    except the optional `remaining_seconds` budget of the Lambda context."""

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        now: datetime,
        *,
        pins: Mapping[str, Pin] | None = None,
        reload_pins: Callable[[], Mapping[str, Pin]] | None = None,
        remaining_seconds: Callable[[], float] | None = None,
        time_margin: float = TIME_MARGIN_SECONDS,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.now = now
        self.policy: Policy = settings.policy
        self.pins: Mapping[str, Pin] = (
            pins if pins is not None else {p.digest: p for p in settings.pins}
        )
        self.reload_pins = reload_pins
        self.remaining_seconds = remaining_seconds
        self.time_margin = time_margin

    # --- the whole run ----------------------------------------------------------------------

    def run(self) -> Run:
        started = time.monotonic()
        run = Run(dry_run=self.settings.dry_run)
        try:
            names = self.registry.repositories()
        except RegistryError as exc:
            run.failures.append(Failure("", "", exc.code, str(exc)))
            run.duration_seconds = time.monotonic() - started
            return run
        selected = select_repositories(
            names, self.settings.repositories, self.settings.exclude_repositories
        )
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            run.repositories = list(pool.map(self.plan_repository, selected))
            if not run.dry_run:
                self._sweep_all(run, pool)
        if any(r.out_of_time for r in run.repositories):
            run.stopped_early = "time budget"
        for repo in run.repositories:
            self._log_repository(repo)
        run.duration_seconds = time.monotonic() - started
        return run

    def _sweep_all(self, run: Run, pool: ThreadPoolExecutor) -> None:
        planned = sum(len(r.planned) for r in run.repositories)
        if planned > self.settings.max_deletions:
            run.circuit_breaker = {
                "tripped": True,
                "planned": planned,
                "max_deletions": self.settings.max_deletions,
                "hint": (
                    f"{planned} deletions planned, more than max_deletions="
                    f"{self.settings.max_deletions}: nothing was deleted. Review a dry run, then "
                    f'invoke once with {{"dry_run": false, "max_deletions": {planned}}}.'
                ),
            }
            for repo in run.repositories:
                self._keep_planned(repo, Reason.CIRCUIT_BREAKER, "max_deletions")
            return
        if self.reload_pins is not None and planned:
            fresh = self.reload_pins()
            newly = {d: fresh[d] for r in run.repositories for d in r.planned if d in fresh}
            if newly:
                # A pin appeared since the plan: the plan is stale; delete nothing this run.
                for repo in run.repositories:
                    for digest in repo.planned:
                        if digest in newly:
                            repo.fail(digest, "NewlyPinned", newly[digest].source)
                    self._keep_planned(repo, Reason.NEWLY_PINNED, "pins changed during the run")
                run.stopped_early = "a pin source now protects a planned deletion"
                return
        list(pool.map(self.sweep_repository, run.repositories))

    # --- one repository: snapshot -> plan ----------------------------------------------------

    def plan_repository(self, name: str) -> RepositoryRun:
        repo = RepositoryRun(name)
        if self._out_of_time():
            repo.out_of_time = True
            repo.fail("", "TimeBudget", "not scanned: the time budget ran out first")
            return repo
        try:
            images = self.registry.images(name)
            repo.images = {image.digest: image for image in images}
            may_go = [i.digest for i in images if may_delete(i, self.pins, self.policy, self.now)]
            # Indexes (and manifests of unstated type) are read first: any of them may list a
            # manifest that could go. If nothing here could go, no bytes are needed at all.
            first_reads = [i.digest for i in images if needs_content(i)] if may_go else []
            # The last call of that step has room to spare: fill it with manifests that the
            # second step reads unless a kept index lists them. One call instead of two; what
            # turns out not to be needed is dropped, so the plan is the same either way.
            spare = -len(first_reads) % BATCH_SIZE if first_reads else 0
            listed_first = set(first_reads)
            prefetch = [d for d in may_go if d not in listed_first][:spare]
            parsed, unreadable = self._read(repo, first_reads + prefetch)
            index_failures = {d: f for d, f in unreadable.items() if d in listed_first}
            if index_failures:
                # An index we cannot read may list anything: the evidence is missing.
                for digest, (code, message) in index_failures.items():
                    repo.fail(
                        digest, code, f"cannot read a manifest that may list others: {message}"
                    )
                repo.decisions = self._keep_all(repo, Reason.UNREADABLE, "repository incomplete")
                return repo
            present = [i for i in images if i.digest not in repo.already_gone]
            indexes = {d: parsed[d] for d in first_reads if d in parsed}
            first = make_plan(
                name, present, indexes, self.pins, self.policy, self.now, provisional=True
            )
            # Every would-be deletion is classified from its own bytes, read exactly once.
            needed = listed_first.union(first.deletions)
            more, failed = self._read(
                repo,
                [d for d in first.deletions if d not in parsed and d not in unreadable],
            )
            parsed.update(more)
            unreadable.update(failed)
            plan = make_plan(
                name,
                [i for i in present if i.digest not in repo.already_gone],
                {d: manifest for d, manifest in parsed.items() if d in needed},
                self.pins,
                self.policy,
                self.now,
                unreadable={
                    d: f"{code}: {msg}" for d, (code, msg) in unreadable.items() if d in needed
                },
            )
        except RegistryError as exc:
            repo.fail("", exc.code, str(exc))
            repo.decisions = self._keep_all(repo, Reason.UNREADABLE, "repository incomplete")
            return repo
        repo.plan = plan
        repo.decisions = dict(plan.decisions)
        for decision in plan.decisions.values():
            self._log_decision(repo, decision)
        return repo

    def _read(
        self, repo: RepositoryRun, digests: Sequence[str]
    ) -> tuple[dict[str, Manifest], dict[str, tuple[str, str]]]:
        """Parse manifests one call's worth at a time: only the parsed form is kept, never a
        whole response or the bytes of more than one call."""
        parsed: dict[str, Manifest] = {}
        unreadable: dict[str, tuple[str, str]] = {}
        for start in range(0, len(digests), BATCH_SIZE):
            fetched = self.registry.manifests(repo.repository, digests[start : start + BATCH_SIZE])
            for digest, data in fetched.content.items():
                if digest in repo.images:
                    image = repo.images[digest]
                    parsed[digest] = m.parse(data, media_type=image.media_type, digest=digest)
            for digest, (code, message) in fetched.failures.items():
                if code == "ImageNotFound":
                    repo.already_gone.add(digest)  # deleted by someone else since the listing
                else:
                    unreadable[digest] = (code, message)
        return parsed, unreadable

    def _keep_all(self, repo: RepositoryRun, reason: Reason, cause: str) -> dict[str, Decision]:
        return {
            digest: Decision(digest, Kind.UNCLASSIFIED, Verdict.KEEP, reason, cause, image.size)
            for digest, image in repo.images.items()
        }

    def _keep_planned(self, repo: RepositoryRun, reason: Reason, cause: str) -> None:
        for digest in repo.planned:
            if digest not in repo.deleted and digest not in repo.already_gone:
                old = repo.decisions[digest]
                repo.decisions[digest] = Decision(
                    digest, old.kind, Verdict.KEEP, reason, cause, old.size
                )

    # --- one repository: verify -> sweep ------------------------------------------------------

    def sweep_repository(self, repo: RepositoryRun) -> None:
        """Delete the plan's waves in order, re-reading each batch right before deleting it.

        A manifest that was not deleted (failure, gained tag, not reached) blocks every candidate
        it lists, so no surviving index is ever left without a child, wherever the run stops.
        """
        plan = repo.plan
        if plan is None or not plan.waves:
            return
        blocked: dict[str, tuple[Reason, str]] = {}

        def block(digest: str, reason: Reason, cause: str) -> None:
            stack = [(digest, reason, cause)]
            while stack:
                current, why, because = stack.pop()
                if current in blocked:
                    continue
                blocked[current] = (why, because)
                stack.extend(
                    (child, Reason.PARENT_NOT_DELETED, current)
                    for child in plan.children.get(current, ())
                )

        stopped = False
        for wave in plan.waves:
            todo = [d for d in wave if d not in blocked]
            for start in range(0, len(todo), BATCH_SIZE):
                batch = todo[start : start + BATCH_SIZE]
                if not stopped and self._out_of_time():
                    stopped = repo.out_of_time = True
                if stopped:
                    for digest in batch:
                        block(digest, Reason.NOT_REACHED, "run stopped before this batch")
                    continue
                try:
                    self._delete_batch(repo, batch, block)
                except RegistryError as exc:
                    # The outcome of this call is unknown: count nothing, go no further.
                    for digest in batch:
                        repo.fail(digest, exc.code, str(exc))
                        block(digest, Reason.NOT_REACHED, exc.operation)
                    stopped = True
        if stopped:
            repo.complete = False
        for digest, (reason, cause) in blocked.items():
            if digest not in repo.deleted and digest not in repo.already_gone:
                old = repo.decisions[digest]
                repo.decisions[digest] = Decision(
                    digest, old.kind, Verdict.KEEP, reason, cause, old.size
                )
                self._log_decision(repo, repo.decisions[digest])

    def _delete_batch(
        self, repo: RepositoryRun, batch: list[str], block: Callable[[str, Reason, str], None]
    ) -> None:
        current = self.registry.describe(repo.repository, batch)
        ready: list[str] = []
        for digest in batch:
            image = current.get(digest)
            if image is None:
                repo.already_gone.add(digest)
            elif image.tags:
                # Deleting by digest would silently take the new tag with it.
                block(digest, Reason.GAINED_TAG, image.tags[0])
            elif image.archived:
                block(digest, Reason.ARCHIVED, "archived since the scan")
            else:
                ready.append(digest)
        outcome = self.registry.delete(repo.repository, ready)
        repo.deleted |= outcome.deleted
        repo.already_gone |= outcome.already_gone
        for digest, (code, message) in outcome.failures.items():
            repo.fail(digest, code, message)
            block(digest, Reason.DELETE_FAILED, code)

    def _out_of_time(self) -> bool:
        return self.remaining_seconds is not None and self.remaining_seconds() < self.time_margin

    # --- logging ---------------------------------------------------------------------------

    def _log_decision(self, repo: RepositoryRun, decision: Decision) -> None:
        log.info(
            "decision",
            extra={
                "repository": repo.repository,
                "digest": decision.digest,
                "kind": decision.kind.value,
                "verdict": decision.verdict.value,
                "reason": decision.reason.value,
                "cause": decision.cause,
                "size": decision.size,
                "live": decision.live,
            },
        )

    def _log_repository(self, repo: RepositoryRun) -> None:
        kept = Counter(d.reason.value for d in repo.decisions.values() if d.verdict is Verdict.KEEP)
        log.info(
            "repository",
            extra={
                "repository": repo.repository,
                "manifests": len(repo.images),
                "planned": len(repo.planned),
                "planned_bytes": sum(repo.images[d].size for d in repo.planned),
                "deleted": len(repo.deleted),
                "deleted_bytes": sum(repo.images[d].size for d in repo.deleted),
                "kept": dict(kept),
                "failures": len(repo.failures),
                "complete": repo.complete,
            },
        )
