"""What every phase of a run shares: the options the edges chose, the clock's budget, limits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..model import HeldTag, Pin
from ..plan import Policy
from ..ports import TIME_BUDGET, ManifestStore, Registry, RotationCursor
from ..settings import Settings
from .elsewhere import Listings, SharedBlobs
from .exclusion import PullTimeExclusion
from .state import StopReason

if TYPE_CHECKING:
    from .state import RepositoryRun

MAX_LISTED_DELETIONS = 1000  # deletions listed in the Lambda's report; every one is in the log
TIME_MARGIN_SECONDS = 60.0  # stop starting new batches when less than this is left
# Manifests read per run only to measure the bytes deletions free (reporting, not safety): at most
# 500 BatchGetImage calls. A repository whose reads would pass it is left out of that figure.
FREED_BYTES_READ_LIMIT = 50_000
# A real run stops scanning new repositories while this share of its time budget (beyond the
# margin) is still left, so that what it planned can be deleted: a registry too large to scan in
# one invocation then still gets cleaned, a few repositories a night (see `rotate`).
SWEEP_SHARE = 0.25
INTERRUPTED = "Interrupted"  # the code of a failure caused by an operator's stop
# A run stops scanning new repositories once its plans hold this many deletions: the run's memory
# follows them (docs/performance.md, "Memory"), and the function's memory holds this many with
# room to spare. The repositories not scanned are left to the next run, like those the time budget
# leaves (run.rotation), so a registry whose backlog would not fit in memory is still swept.
PLANNED_DELETIONS_LIMIT = 500_000
PLANNED_LIMIT = "PlannedDeletionsLimit"  # the code of a repository left unscanned for that


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How the edges (the Lambda, the command) drive one run, beyond its settings.

    - `pins`: what the pin sources said (default: the `pins` setting alone); `reload_pins` reads
      them again right before the first delete.
    - `remaining_seconds`: the Lambda's time left; `interrupted`: an operator asked to stop. Either
      stops the run at the next safe point (between pages, reads and delete batches).
    - `on_repository_planned(repo, done, total)`: from the calling thread, as each plan is ready.
    - `confirm(repositories)`, in a real run, sees every plan before anything is deleted; when it
      returns False nothing is.
    - `on_repository_done(repo)`: from a worker thread, once the repository's decisions are final
      (swept, or not to be swept), before the run forgets all but its summary.
    - `audit_only`: read only what the audit of each repository's ECR lifecycle policy needs,
      and plan nothing (the command's `audit`; see scan.audit_repository).
    - `held_tags`: tags something runs by, of this registry (pins.held_tags).
    - `on_batch_deleted(repo, batch)`: from a worker thread, after each delete call, with the
      manifests it asked to delete (`repo.deleted` says what ECR confirmed so far).
    - `listed_deletions`: how many planned deletions the report lists (None: every one, for the
      command; the Lambda's answer keeps MAX_LISTED_DELETIONS, for its response's size).
    - `retain_decisions`: keep every decision until the end (the command prints them all); by
      default a run keeps of each repository only what its sweep and the report need, so its
      memory follows the largest repository rather than the registry.
    - `store`: the manifest store (sweeper.store): manifests are read from ECR only when it
      lacks them, and every deletion is journaled there first. `run_id` names the run in the
      journal, the report and the log.
    - `cursor`: where the rotation starts, and where it keeps the next run's start
      (run.rotation); None: start where the day says, keep nothing.
    - `principal`: the IAM role or user ARN the run reads as (default: the settings'
      `sweeper_role_arn`, the function's role); before its first read the run
      finds it among the registry's pull-time update exclusions (`exclusion.check`), and
      registers it when the settings allow. `exclusion`: that check, made already by the edge
      (the command asks its operator first); the run then makes no call of its own for it.
    """

    pins: Mapping[str, Pin] | None = None
    reload_pins: Callable[[], Mapping[str, Pin]] | None = None
    remaining_seconds: Callable[[], float] | None = None
    interrupted: Callable[[], bool] | None = None
    time_margin: float = TIME_MARGIN_SECONDS
    freed_bytes_read_limit: int = FREED_BYTES_READ_LIMIT
    on_repository_planned: Callable[[RepositoryRun, int, int], None] | None = None
    confirm: Callable[[list[RepositoryRun]], bool] | None = None
    on_repository_done: Callable[[RepositoryRun], None] | None = None
    retain_decisions: bool = False
    store: ManifestStore | None = None
    run_id: str = ""
    # Tags something runs by (pin sources), of this registry: retention never expires them and
    # the audit reports a rule that would.
    held_tags: Sequence[HeldTag] = ()
    cursor: RotationCursor | None = None
    planned_deletions_limit: int = PLANNED_DELETIONS_LIMIT
    principal: str | None = None
    exclusion: PullTimeExclusion | None = None
    audit_only: bool = False
    on_batch_deleted: Callable[[RepositoryRun, list[str]], None] | None = None
    listed_deletions: int | None = MAX_LISTED_DELETIONS


class Budget:
    """The run's time, and the operator's patience."""

    def __init__(self, options: RunOptions) -> None:
        self._remaining = options.remaining_seconds
        self._interrupted = options.interrupted
        self.margin = options.time_margin
        self.scan_margin = options.time_margin  # raised for real runs: see SWEEP_SHARE

    def reserve_for_sweep(self) -> None:
        if self._remaining is not None:
            left = self._remaining() - self.margin
            self.scan_margin = self.margin + SWEEP_SHARE * max(left, 0.0)

    def interrupted(self) -> bool:
        return self._interrupted is not None and self._interrupted()

    def out(self, margin: float | None = None) -> bool:
        """Whether to stop: an interrupt, or less than `margin` (default: the margin) left."""
        if self.interrupted():
            return True
        if self._remaining is None:
            return False
        return self._remaining() < (self.margin if margin is None else margin)

    def out_for_scanning(self) -> bool:
        return self.out(self.scan_margin)

    @property
    def reason(self) -> StopReason:
        return StopReason.INTERRUPTED if self.interrupted() else StopReason.TIME_BUDGET

    @property
    def code(self) -> str:
        return INTERRUPTED if self.interrupted() else TIME_BUDGET


class ReadAllowance:
    """The run's limit on reads made only for the bytes-freed figure, shared by the threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._left = limit
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        """Reserve `count` reads, all or nothing."""
        with self._lock:
            if count > self._left:
                return False
            self._left -= count
            return True


class StoreTally:
    """What the run made of its store, shared by the threads: whether it could be used
    throughout, and how many entries failed their check."""

    def __init__(self, configured: bool) -> None:
        self.configured = configured
        # Whether any load or save failed; the error itself is logged where it happened (a store
        # may raise one without words).
        self.failed = False
        self.rejected = 0
        self.hits = 0  # manifests taken from the store instead of ECR
        self._lock = threading.Lock()

    def fail(self) -> bool:
        """Record a failure; True the first time (the run logs that one)."""
        with self._lock:
            first = not self.failed
            self.failed = True
            return first

    def count(self, rejected: int = 0, hits: int = 0) -> None:
        with self._lock:
            self.rejected += rejected
            self.hits += hits

    @property
    def status(self) -> str:
        if not self.configured:
            return "off"
        return "unavailable" if self.failed else "ok"


class PlannedTally:
    """The deletions planned so far in the run, against its limit; shared by the threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.count += count

    @property
    def full(self) -> bool:
        return self.count >= self.limit


@dataclass(frozen=True, slots=True)
class Context:
    """One run's fixed inputs, shared by its phases."""

    registry: Registry
    settings: Settings
    now: datetime
    pins: Mapping[str, Pin]
    options: RunOptions
    budget: Budget
    freed_reads: ReadAllowance
    policy: Policy  # settings.policy, built once: the scan asks for it for every manifest
    store: StoreTally  # what the run made of its manifest store
    listings: Listings = field(default_factory=Listings)  # what every listed repository holds
    shared_blobs: SharedBlobs | None = None  # where the registry shares layers (BLOB_MOUNTING)
    exclusion: PullTimeExclusion | None = None  # the run's check, once made
    # repository -> tag -> where it was found: options.held_tags, grouped once per run.
    tags_in_use: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def pull_times_trusted(self) -> bool:
        """Whether a pull time that moves during the run is a workload's (not the run's own)."""
        return self.exclusion is not None and self.exclusion.in_place

    planned: PlannedTally = field(default_factory=lambda: PlannedTally(PLANNED_DELETIONS_LIMIT))
