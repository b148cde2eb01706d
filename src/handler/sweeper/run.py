"""One run: for each repository snapshot -> plan; then, unless dry, verify -> sweep -> validate.

Planning every repository before deleting anything is what makes the circuit breaker and the pin
re-check possible, and what makes a dry run report exactly what the real run deletes: both run the
same planning code over the same snapshot, and only the real run goes on to sweep.

After sweeping a repository that lost something, the run re-lists it and reads its indexes again
to check that every index still has all its children (validate.py). Re-listing costs a listing and
a read of every index, but it checks the registry as it is, including anything that changed
during the run, where checking the snapshot minus our deletions would only check our arithmetic.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import manifests as m
from .freed import freed_bytes
from .model import Decision, Image, Kind, Manifest, Pin, Plan, Reason, Verdict
from .plan import Policy, make_plan, may_delete, needs_content
from .registry import BATCH_SIZE, NOT_FOUND, TIME_BUDGET, Registry, RegistryError
from .settings import Settings
from .validate import Problem, find_problems

log = logging.getLogger("ecr_sweeper")

# A decision record: its message, and the extra key holding its lines (see `_log_decisions`).
DECISION_MESSAGE = "decision"
DECISION_LINES = "decisions"
MAX_LISTED_DELETIONS = 1000  # deletions listed in the returned report; every one is in the log
TIME_MARGIN_SECONDS = 60.0  # stop starting new batches when less than this is left
# Manifests read per run only to measure the bytes deletions free (reporting, not safety): at most
# 500 BatchGetImage calls. A repository whose reads would pass it is left out of that figure.
FREED_BYTES_READ_LIMIT = 50_000
# A real run stops scanning new repositories while this share of its time budget (beyond the
# margin) is still left, so that what it planned can be deleted: a registry too large to scan in
# one invocation then still gets cleaned, a few repositories a night (see `rotate`).
SWEEP_SHARE = 0.25


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
    # Honest bytes (reporting only): parsed content by digest, each manifest read once per run;
    # survivors found gone when read for the figure; why the figure is unknown, if it is.
    manifests: dict[str, Manifest] = field(default_factory=dict)
    delete_failed: set[str] = field(default_factory=set)
    vanished: set[str] = field(default_factory=set)
    freed_unknown: str = ""
    validated: bool = False  # re-listed and checked after the sweep
    broken: list[Problem] = field(default_factory=list)  # what that check found

    def fail(self, digest: str, code: str, message: str) -> None:
        self.failures.append(Failure(self.repository, digest, code, message))
        self.complete = False

    @property
    def planned(self) -> list[str]:
        return self.plan.deletions if self.plan else []

    def freed(self, gone: Iterable[str]) -> int | None:
        """Bytes of the blobs only `gone` manifests reference (None: unknown, see freed.py)."""
        gone = set(gone)
        if self.freed_unknown and gone:
            return None
        surviving = self.images.keys() - gone - self.already_gone - self.vanished
        return freed_bytes(self.manifests, gone, surviving)


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
        planned_freed = [r.freed(r.planned) for r in self.repositories]
        deleted_freed = [r.freed(r.deleted) for r in self.repositories]
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
                "bytes_freed": sum(b for b in planned_freed if b is not None),
            },
            "deleted": {
                "manifests": sum(len(r.deleted) for r in self.repositories),
                "bytes": sum(r.images[d].size for r in self.repositories for d in r.deleted),
                "bytes_freed": sum(b for b in deleted_freed if b is not None),
            },
            # Repositories left out of both bytes_freed figures (then lower bounds): see the log.
            "bytes_freed_unknown": sum(1 for b in planned_freed if b is None),
            "delete_failures": sum(len(r.delete_failed) for r in self.repositories),
            # Listed, then found gone before this run could delete them (by someone else, or by
            # a call of this run whose answer was lost): never counted as deleted.
            "already_gone": {"manifests": sum(len(r.already_gone) for r in self.repositories)},
            "kept": dict(sorted(kept.items())),
            "failures": [
                f.as_dict()
                for f in self.failures + [f for r in self.repositories for f in r.failures]
            ],
            "circuit_breaker": self.circuit_breaker,
            "pins": dict(self.pin_counts),
            "stopped_early": self.stopped_early or None,
            "validated": sum(1 for r in self.repositories if r.validated),
            "broken": [p.as_dict() for r in self.repositories for p in r.broken],
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


@dataclass(slots=True)
class RepositoryCheck:
    """The outcome of validating one repository as it is now."""

    repository: str
    manifests: int = 0
    problems: list[Problem] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def select_repositories(
    names: Iterable[str], include: Sequence[str], exclude: Sequence[str]
) -> list[str]:
    """Names matching any include pattern (all when none) and no exclude pattern, sorted."""

    def matches(name: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    return sorted(
        n for n in names if (not include or matches(n, include)) and not matches(n, exclude)
    )


def rotate(names: Sequence[str], now: datetime) -> list[str]:
    """`names` starting at an offset that moves on by one every day.

    A run that runs out of time covers a prefix of this list; without rotation it would be the
    same prefix every night and the tail would never be swept. The offset is the day number
    (days since 0001-01-01, UTC) modulo the number of repositories: no state to keep, and no jump
    at New Year as a day-of-year offset would make. A run covering k of n repositories reaches
    every repository at least once in n - k + 1 nights.
    """
    if not names:
        return []
    start = now.date().toordinal() % len(names)
    return [*names[start:], *names[:start]]


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
        freed_bytes_read_limit: int = FREED_BYTES_READ_LIMIT,
        on_repository_planned: Callable[[RepositoryRun, int, int], None] | None = None,
        confirm: Callable[[Run], bool] | None = None,
    ) -> None:
        """`on_repository_planned(repo, done, total)` is called from the calling thread as each
        repository's plan is ready (the command line's progress bar). `confirm(run)`, in a real
        run, sees every plan before anything is deleted; when it returns False nothing is."""
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
        self.freed_bytes_read_limit = freed_bytes_read_limit
        self._freed_reads_left = freed_bytes_read_limit
        self._freed_reads_lock = threading.Lock()
        self._logged: set[str] = set()  # repositories whose decisions are logged (_log_final)
        self._logged_lock = threading.Lock()
        self.on_repository_planned = on_repository_planned
        self.confirm = confirm
        self.scan_margin = time_margin  # raised by `run` for real runs: see SWEEP_SHARE

    # --- the whole run ----------------------------------------------------------------------

    def run(self) -> Run:
        started = time.monotonic()
        run = Run(dry_run=self.settings.dry_run)
        if self.remaining_seconds is not None and not run.dry_run:
            budget = self.remaining_seconds() - self.time_margin
            self.scan_margin = self.time_margin + SWEEP_SHARE * max(budget, 0.0)
        try:
            names = self.registry.repositories()
        except RegistryError as exc:
            run.failures.append(Failure("", "", exc.code, str(exc)))
            run.duration_seconds = time.monotonic() - started
            return run
        selected = rotate(
            select_repositories(
                names, self.settings.repositories, self.settings.exclude_repositories
            ),
            self.now,
        )
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            for repo in pool.map(self.plan_repository, selected):
                run.repositories.append(repo)
                if self.on_repository_planned is not None:
                    self.on_repository_planned(repo, len(run.repositories), len(selected))
            # The breaker is judged in dry runs too, so a dry run reports what the real run does.
            if not self._trip_circuit_breaker(run) and not run.dry_run:
                if self.confirm is None or self.confirm(run):
                    self._sweep_all(run, pool)
                else:
                    for repo in run.repositories:
                        self._keep_planned(repo, Reason.NOT_REACHED, "not confirmed")
                    run.stopped_early = "not confirmed"
            # Reporting only, last: the bytes-freed reads, and the decisions of repositories no
            # sweep logged (a dry run, a tripped breaker, a sweep not confirmed or not begun).
            list(pool.map(self._finish, run.repositories))
        if any(r.out_of_time for r in run.repositories):
            run.stopped_early = "time budget"
        for repo in run.repositories:
            self._log_repository(repo)
        run.duration_seconds = time.monotonic() - started
        return run

    def _finish(self, repo: RepositoryRun) -> None:
        try:
            self.read_for_freed_bytes(repo)
        finally:
            self._log_final(repo)

    def _trip_circuit_breaker(self, run: Run) -> bool:
        """More deletions planned than max_deletions: nothing is deleted, and the report says how
        to go on. Judged the same way in a dry run, which then shows the run deleting nothing."""
        planned = sum(len(r.planned) for r in run.repositories)
        if planned <= self.settings.max_deletions:
            return False
        outcome = "a real run deletes nothing" if run.dry_run else "nothing was deleted"
        run.circuit_breaker = {
            "tripped": True,
            "planned": planned,
            "max_deletions": self.settings.max_deletions,
            "hint": (
                f"{planned} deletions planned, more than max_deletions="
                f"{self.settings.max_deletions}: {outcome}. Review the planned deletions of a dry "
                f"run, then invoke once with the same request plus "
                f'{{"dry_run": false, "max_deletions": {planned}}}.'
            ),
        }
        for repo in run.repositories:
            self._keep_planned(repo, Reason.CIRCUIT_BREAKER, "max_deletions")
        return True

    def _sweep_all(self, run: Run, pool: ThreadPoolExecutor) -> None:
        planned = sum(len(r.planned) for r in run.repositories)
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
        # Largest first: each repository's deletes go one call after another, so one big
        # repository started last would run on alone while the other workers stand idle.
        by_work = sorted(run.repositories, key=lambda r: len(r.planned), reverse=True)
        list(pool.map(self.sweep_repository, by_work))

    # --- one repository: snapshot -> plan ----------------------------------------------------

    def plan_repository(self, name: str) -> RepositoryRun:
        repo = RepositoryRun(name)
        if self._out_of_time(self.scan_margin):
            repo.out_of_time = True
            repo.fail("", TIME_BUDGET, "not scanned: the time budget ran out first")
            return repo
        try:
            images = self.registry.images(name, stop=self._out_of_time)
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
            # Past the would-be deletions, the room goes to the rest: if anything is deleted,
            # the bytes-freed figure reads every manifest of the repository anyway.
            taken = listed_first.union(may_go)
            prefetch = [
                *(d for d in may_go if d not in listed_first),
                *(i.digest for i in images if i.digest not in taken),
            ][:spare]
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
            second = [d for d in first.deletions if d not in parsed and d not in unreadable]
            if first.deletions:
                # Deletions are likely: read the survivors in the same calls, after what the plan
                # needs. The bytes-freed figure needs their blobs (read_for_freed_bytes), and
                # here they share calls instead of adding a third round. The plan ignores them.
                survivors = [
                    i.digest
                    for i in present
                    if i.digest not in parsed
                    and i.digest not in unreadable
                    and i.digest not in needed
                ]
                if self._take_freed_reads(len(survivors)):
                    second += survivors
            more, failed = self._read(repo, second)
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
            # A scan cut short by the time budget (between pages or fetches) is evidence missing
            # like any other: the repository deletes nothing this run.
            repo.out_of_time = exc.code == TIME_BUDGET
            repo.fail("", exc.code, str(exc))
            repo.decisions = self._keep_all(repo, Reason.UNREADABLE, "repository incomplete")
            return repo
        repo.plan = plan
        repo.manifests = parsed
        if unreadable:  # read once per run: a survivor we could not read may hold any blob
            repo.freed_unknown = f"{len(unreadable)} manifests unreadable"
        repo.decisions = dict(plan.decisions)
        return repo

    def _read(
        self, repo: RepositoryRun, digests: Sequence[str]
    ) -> tuple[dict[str, Manifest], dict[str, tuple[str, str]]]:
        """Parse manifests one call's worth at a time: only the parsed form is kept, never a
        whole response or the bytes of more than one call."""
        parsed: dict[str, Manifest] = {}
        unreadable: dict[str, tuple[str, str]] = {}
        for start in range(0, len(digests), BATCH_SIZE):
            if start and self._out_of_time():
                # Out of time between fetches: this repository's evidence stays incomplete.
                raise RegistryError("BatchGetImage", TIME_BUDGET, "stopped between batches")
            fetched = self.registry.manifests(
                repo.repository, digests[start : start + BATCH_SIZE], stop=self._out_of_time
            )
            parsed.update(m.parse_all(fetched.content, repo.images))
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
        """Delete the plan's waves in order, re-reading each batch right before deleting it, then
        log the repository's decisions, final.

        A manifest that was not deleted (failure, gained tag, not reached) blocks every candidate
        it lists, so no surviving index is ever left without a child, wherever the run stops.
        """
        try:
            self._sweep(repo)
        finally:
            self._log_final(repo)

    def _sweep(self, repo: RepositoryRun) -> None:
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
                    if exc.operation == "BatchDeleteImage":
                        repo.delete_failed.update(batch)
                    stopped = True
        if stopped:
            repo.complete = False
        for digest, (reason, cause) in blocked.items():
            if digest not in repo.deleted and digest not in repo.already_gone:
                old = repo.decisions[digest]
                repo.decisions[digest] = Decision(
                    digest, old.kind, Verdict.KEEP, reason, cause, old.size
                )
        if repo.deleted and not self._out_of_time():
            check = self.check_repository(repo.repository, known=repo.manifests)
            repo.validated = not check.failures
            repo.broken = check.problems
            for failure in check.failures:
                repo.fail(failure.digest, failure.code, failure.message)

    # --- one repository: validate -------------------------------------------------------------

    def check_repository(
        self, name: str, known: Mapping[str, Manifest] | None = None
    ) -> RepositoryCheck:
        """List `name` again and read its indexes: what is broken now (see validate.py).

        `known` holds manifests this run already parsed: manifests are immutable, so only the
        indexes that appeared since (or were never read) are fetched again.
        """
        check = RepositoryCheck(name)
        known = known or {}
        try:
            images = self.registry.images(name)
            fetched = self.registry.manifests(
                name, [i.digest for i in images if needs_content(i) and i.digest not in known]
            )
        except RegistryError as exc:
            check.failures.append(Failure(name, "", exc.code, f"validating: {exc}"))
            return check
        gone = {d for d, (code, _) in fetched.failures.items() if code == NOT_FOUND}
        for digest, (code, message) in fetched.failures.items():
            if code != NOT_FOUND:
                check.failures.append(
                    Failure(name, digest, code, f"validating: cannot read this index: {message}")
                )
        present = [i for i in images if i.digest not in gone]  # deleted since the listing
        parsed = m.parse_all(fetched.content, {i.digest: i for i in present})
        parsed.update({i.digest: known[i.digest] for i in present if i.digest in known})
        check.manifests = len(present)
        check.problems = find_problems(name, present, parsed)
        for problem in check.problems:
            log.warning("broken", extra=problem.as_dict())
        return check

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
            repo.delete_failed.add(digest)
            block(digest, Reason.DELETE_FAILED, code)

    # --- honest bytes: what the deletions free (reporting only) ------------------------------

    def read_for_freed_bytes(self, repo: RepositoryRun) -> None:
        """Read the surviving manifests planning did not, so freed.py can see every blob held.

        Runs after the sweep, so it never delays a deletion; only in repositories that plan
        deletions; each manifest at most once per run (they are immutable: planning's reads are
        reused), 100 per call; a repository whose reads would pass the run's read limit reads
        nothing, the time budget stops it between calls, and any failure only makes the figure
        unknown for this repository, never the run incomplete.
        """
        if not repo.planned or repo.freed_unknown:
            return
        gone = repo.already_gone | repo.deleted
        missing = [d for d in repo.images if d not in repo.manifests and d not in gone]
        if not self._take_freed_reads(len(missing)):
            repo.freed_unknown = (
                f"{len(missing)} manifests to read, past the run's read limit of "
                f"{self.freed_bytes_read_limit}"
            )
            return
        for start in range(0, len(missing), BATCH_SIZE):
            batch = missing[start : start + BATCH_SIZE]
            if self._out_of_time():
                repo.freed_unknown = "time budget ran out before the survivors were read"
                return
            try:
                fetched = self.registry.manifests(repo.repository, batch)
            except RegistryError as exc:
                repo.freed_unknown = str(exc)
                return
            repo.manifests.update(m.parse_all(fetched.content, repo.images))
            for digest, (code, message) in fetched.failures.items():
                if code == NOT_FOUND:
                    repo.vanished.add(digest)  # gone since the listing: it holds nothing
                else:
                    repo.freed_unknown = f"{digest} unreadable: {code}: {message}"
            if repo.freed_unknown:
                return

    def _take_freed_reads(self, count: int) -> bool:
        """Reserve `count` reads from the run's limit, all or nothing (threads share it)."""
        with self._freed_reads_lock:
            if count > self._freed_reads_left:
                return False
            self._freed_reads_left -= count
            return True

    def _out_of_time(self, margin: float | None = None) -> bool:
        """Whether less than `margin` (default: the time margin) is left of the Lambda's time."""
        if self.remaining_seconds is None:
            return False
        return self.remaining_seconds() < (self.time_margin if margin is None else margin)

    # --- logging ---------------------------------------------------------------------------

    def _log_final(self, repo: RepositoryRun) -> None:
        """Log every decision of `repo` once, when it is final: after the repository's sweep
        (or, where none ran, at the end of the run), so each manifest has one line, with the
        verdict the run really gave it. Logging at planning time instead would put this CPU
        into the planning phase, which is CPU-bound at registry scale, and a second line for
        each planned deletion that a sweep then kept."""
        with self._logged_lock:
            if repo.repository in self._logged:
                return
            self._logged.add(repo.repository)
        self._log_decisions(repo, repo.decisions.values())

    def _log_decisions(self, repo: RepositoryRun, decisions: Iterable[Decision]) -> None:
        """One record for many decisions, one structured line per decision in the Lambda's log.

        A record through Powertools' formatter costs about 100 us of CPU, a hundred thousand of
        them (one per manifest) some 10 s of a sweep's run, most of it while holding the GIL the
        other workers wait for. The record carries the decisions as a list under
        `DECISION_LINES`; the Lambda's formatter (`log_format.DecisionLinesFormatter`) writes
        it as one JSON line per decision, each with the record's keys (run id, level, time), as
        if each had been logged alone. Any other formatter sees one record with the list.
        """
        if not log.isEnabledFor(logging.INFO):
            return
        name = repo.repository
        lines = [
            {
                "repository": name,
                "digest": d.digest,
                "kind": d.kind.value,
                "verdict": d.verdict.value,
                "reason": d.reason.value,
                "cause": d.cause,
                "size": d.size,
                "live": d.live,
            }
            for d in decisions
        ]
        if lines:
            log.info(DECISION_MESSAGE, extra={DECISION_LINES: lines})

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
                "planned_bytes_freed": repo.freed(repo.planned),
                "deleted_bytes_freed": repo.freed(repo.deleted),
                "bytes_freed_unknown": repo.freed_unknown,  # why the figures are null; "" if known
                "delete_failures": len(repo.delete_failed),
                "kept": dict(kept),
                "failures": len(repo.failures),
                "complete": repo.complete,
            },
        )
