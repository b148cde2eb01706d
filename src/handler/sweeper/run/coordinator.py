"""One run: scan and plan every repository, then (unless dry) guard -> sweep -> check -> report.

Planning every repository before deleting anything is what makes the circuit breaker and the pin
re-check possible, and what makes a dry run report exactly what the real run deletes: both run the
same planning code over the same snapshot, and only the real run goes on to sweep.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from ..model import HeldTag, Reason, Verdict
from ..opt_in import read_opt_in
from ..ports import Registry, RegistryError
from ..settings import Settings
from .context import (
    PLANNED_LIMIT,
    Budget,
    Context,
    PlannedTally,
    ReadAllowance,
    RunOptions,
    StoreTally,
)
from .decision_log import log, log_decisions, log_repository
from .elsewhere import SharedBlobs, keep_subjects_elsewhere, settle_shared_blobs
from .exclusion import PullTimeExclusion, check
from .report import CircuitBreaker, Report, listing_quotas
from .rotation import next_start, read_start, rotate, write_start
from .scan import audit_repository, plan_repository
from .state import Failure, RepositoryRun, RepositorySummary, StopReason
from .sweep import sweep_repository


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether `name` matches any of the glob `patterns`."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def select_repositories(
    names: Iterable[str],
    include: Sequence[str],
    exclude: Sequence[str],
    within: Sequence[str] = (),
) -> list[str]:
    """Names matching any include pattern (all when none), any `within` pattern (all when none)
    and no exclude pattern, sorted."""
    return sorted(
        n
        for n in names
        if (not include or matches(n, include))
        and (not within or matches(n, within))
        and not matches(n, exclude)
    )


NO_REPOSITORY_MATCHED = "NoRepositoryMatched"


def unmatched_patterns(names: Sequence[str], include: Sequence[str]) -> list[Failure]:
    """A failure for each `repositories` pattern that matches no repository at all.

    Reported as a failure (code NO_REPOSITORY_MATCHED, no repository nor digest, the pattern in
    the message) rather than in a field of its own: a misspelt pattern then makes the report
    incomplete (`complete: false`, the NoSuccessfulRunAlarm, exit 1 from the command) with no new
    field in the report's shape, and the patterns that do match are still swept. A pattern whose
    repositories are all excluded did match: `exclude_repositories` said what to leave out.
    """
    return [
        Failure("", "", NO_REPOSITORY_MATCHED, f"repositories: {p!r} matches no repository")
        for p in dict.fromkeys(include)
        if not any(matches(name, [p]) for name in names)
    ]


# Stops by which a guard kept every planned deletion: the cursor stays, so that the next run (the
# dry run that reviews it, the real run that goes past it) covers the same repositories.
GUARD_STOPS = frozenset({StopReason.NEWLY_PINNED, StopReason.NOT_CONFIRMED})


NO_PIN_SOURCE = "NoPinSource"
NO_PIN_SOURCE_WARNING = (
    "no pin source configured: an untagged image that something runs by digest (an ECS task, "
    "a Lambda function, a Kubernetes pod) is unprotected; set pins, pin_parameter_path, "
    "pin_object_uris, pin_from_ecs, pin_from_lambda, pin_from_eks or pin_from_inspector"
)


def warnings_for(settings: Settings) -> list[str]:
    """What a real run is about to do unprotected, from its settings alone: said in the
    report's `warnings`, a log line and the command's output. A dry run deletes nothing: the
    warning would only be noise on the default deployment."""
    configured = (
        settings.pins
        or settings.pin_parameter_path
        or settings.pin_object_uris
        or settings.pin_from_ecs
        or settings.pin_from_lambda
        or settings.pin_from_eks
        or settings.pin_from_inspector
    )
    return [] if settings.dry_run or configured else [NO_PIN_SOURCE_WARNING]


HELD_BY_CIRCUIT_BREAKER = "circuit-breaker"  # a held deletion's `held_by`


def keep_planned(repo: RepositoryRun, reason: Reason, cause: str) -> None:
    """Every planned manifest not deleted (nor found gone) is kept, for `reason`."""
    for digest in repo.planned:
        if digest not in repo.deleted and digest not in repo.already_gone:
            repo.decisions[digest] = replace(
                repo.decisions[digest], verdict=Verdict.KEEP, reason=reason, cause=cause
            )


class Sweeper:
    """Runs the sweep over one registry. `now`, the settings and the options come in; nothing
    here reads a clock except through the options' `remaining_seconds`."""

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        now: datetime,
        options: RunOptions | None = None,
    ) -> None:
        options = options or RunOptions()
        pins = options.pins if options.pins is not None else {p.digest: p for p in settings.pins}
        self.ctx = Context(
            registry,
            settings,
            now,
            pins,
            options,
            Budget(options),
            ReadAllowance(options.freed_bytes_read_limit),
            settings.policy,
            StoreTally(options.store is not None),
            tags_in_use=tags_in_use(options.held_tags),
            planned=PlannedTally(options.planned_deletions_limit),
        )

    def plan_one(self, name: str) -> RepositoryRun:
        """Scan and plan one repository, selected or not, and delete nothing (`explain`)."""
        return plan_repository(self.ctx, name)

    def run(self) -> Report:
        started = time.monotonic()
        self.ctx = ctx = replace(self.ctx, exclusion=self._pull_time_exclusion())
        report = Report(
            dry_run=ctx.settings.dry_run,
            warnings=warnings_for(ctx.settings),
            run_id=ctx.options.run_id,
        )
        for warning in report.warnings:
            log.warning(warning, extra={"warning": NO_PIN_SOURCE})
        report.pull_time_exclusion = ctx.exclusion
        if ctx.exclusion is not None and ctx.exclusion.warning:
            report.warnings.append(ctx.exclusion.warning)
            log.warning(
                "pull-time exclusion not in place",
                extra={
                    "pull_time_exclusion": ctx.exclusion.state.value,
                    "warning": ctx.exclusion.warning,
                },
            )
        if not report.dry_run:
            ctx.budget.reserve_for_sweep()
        try:
            arns = ctx.registry.repository_arns()
        except RegistryError as exc:
            report.failures.append(Failure("", "", exc.code, str(exc)))
            report.duration_seconds = time.monotonic() - started
            return report
        settings = ctx.settings
        all_names = list(arns)  # the registry's, for layers shared between repositories
        # The function may read and delete only in these (its IAM grants); DescribeRepositories
        # is granted on every repository, as ECR authorises it, so the listing shows them all.
        granted = settings.granted_repositories
        arns = {n: a for n, a in arns.items() if fnmatch.fnmatchcase(n, granted)}
        report.failures.extend(unmatched_patterns(list(arns), settings.repositories))
        names = select_repositories(
            arns,
            settings.repositories,
            settings.exclude_repositories,
            settings.within_repositories,
        )
        # Opt-in by repository tag: the others are skipped (reported, not failed); one whose
        # tags cannot be read is not swept, and that is a failure.
        opt = read_opt_in(ctx.registry, arns, names, settings.required_tag, settings.concurrency)
        report.skipped = opt.skipped
        for name, error in opt.unreadable.items():
            report.failures.append(Failure(name, "", error.code, f"tags not read: {error.message}"))
        cursor = ctx.options.cursor
        selected = rotate(opt.selected, ctx.now, read_start(cursor))
        if len(all_names) > 1:
            ctx = self.ctx = replace(ctx, shared_blobs=self._shared_blobs(all_names))
        repos: list[RepositoryRun] = []
        scan = audit_repository if ctx.options.audit_only else plan_repository
        with ThreadPoolExecutor(max_workers=ctx.settings.concurrency) as pool:
            for repo in pool.map(lambda name: scan(ctx, name), selected):
                repos.append(repo)
                if ctx.options.on_repository_planned is not None:
                    ctx.options.on_repository_planned(repo, len(repos), len(selected))
            # Before the breaker counts: a subject another repository holds keeps what describes it.
            keep_subjects_elsewhere(repos, ctx.listings)
            settle_shared_blobs(repos, ctx.shared_blobs)
            # The breaker is judged in dry runs too, so a dry run reports what the real run does.
            report.stopped_early = self._trip_circuit_breaker(repos, report)
            sweep = report.stopped_early is None and not report.dry_run
            if sweep and ctx.options.confirm is not None and not ctx.options.confirm(repos):
                for repo in repos:
                    keep_planned(repo, Reason.NOT_REACHED, "not confirmed")
                report.stopped_early = StopReason.NOT_CONFIRMED
                sweep = False
            if sweep:
                report.stopped_early = self._recheck_pins(repos)
                sweep = report.stopped_early is None
            report.repositories = self._finish_all(repos, pool, sweep)
        cut = [r for r in report.repositories if r.out_of_time]
        if any(all(f.code != PLANNED_LIMIT for f in r.failures) for r in cut):
            report.stopped_early = ctx.budget.reason
        elif cut:
            report.stopped_early = StopReason.PLANNED_LIMIT
        if report.stopped_early not in GUARD_STOPS and report.circuit_breaker is None:
            write_start(cursor, next_start(selected, report.repositories))
        report.store = ctx.store.status
        report.store_rejected = ctx.store.rejected
        report.manifests_from_store = ctx.store.hits
        report.duration_seconds = time.monotonic() - started
        return report

    def _shared_blobs(self, names: list[str]) -> SharedBlobs | None:
        """Where the registry shares layers between repositories (BLOB_MOUNTING), what each
        uses; None where it does not. A setting that cannot be read only makes the bytes-freed
        figure unknown: it never fails the run."""
        try:
            mounting = self.ctx.registry.blob_mounting()
        except RegistryError as exc:
            return SharedBlobs(names, f"blob mounting unknown: {exc}")
        return SharedBlobs(names) if mounting else None

    def _pull_time_exclusion(self) -> PullTimeExclusion:
        """Before any read: the edge's check, or the run's own (one list call, one register
        call at most)."""
        options = self.ctx.options
        if options.exclusion is not None:
            return options.exclusion
        settings = self.ctx.settings
        principal = options.principal or settings.sweeper_role_arn or None
        return check(self.ctx.registry, principal, settings.register_pull_time_exclusion)

    def _finish_all(
        self, repos: list[RepositoryRun], pool: ThreadPoolExecutor, sweep: bool
    ) -> list[RepositorySummary]:
        """Sweep (when `sweep`) each repository, log its final decisions and keep its summary
        only. Largest first: each repository's deletes go one call after another, so one big
        repository started last would run on alone while the other workers stand idle."""
        quotas = listing_quotas([len(r.planned) for r in repos], self.ctx.options.listed_deletions)
        order = sorted(range(len(repos)), key=lambda i: len(repos[i].planned), reverse=True)
        summaries: list[RepositorySummary | None] = [None] * len(repos)

        def finish(i: int) -> None:
            repo = repos[i]
            if sweep:
                sweep_repository(self.ctx, repo)
            log_decisions(repo.repository, (repo.decisions[d] for d in repo.planned), repo.held_by)
            if self.ctx.options.on_repository_done is not None:
                self.ctx.options.on_repository_done(repo)
            summary = summaries[i] = repo.summary(quotas[i])
            log_repository(summary)
            repos[i] = RepositoryRun(repo.repository)  # the summary is all the run keeps of it

        list(pool.map(finish, order))
        return [s for s in summaries if s is not None]

    def _trip_circuit_breaker(
        self, repos: list[RepositoryRun], report: Report
    ) -> StopReason | None:
        """More deletions planned than max_deletions: nothing is deleted, and the report says how
        to go on. Judged the same way in a dry run, which then shows the run deleting nothing."""
        planned = sum(len(r.planned) for r in repos)
        limit = self.ctx.settings.max_deletions
        if planned <= limit:
            return None
        report.circuit_breaker = CircuitBreaker(planned, limit, report.dry_run)
        # Each planned deletion keeps its verdict, reason and cause: a review of the plan is what
        # the breaker asks for, and needs them. The run, not the manifest, is held.
        for repo in repos:
            repo.held_by = HELD_BY_CIRCUIT_BREAKER
        return StopReason.CIRCUIT_BREAKER

    def _recheck_pins(self, repos: list[RepositoryRun]) -> StopReason | None:
        """Read the pin sources again right before the first delete (once per run: a
        per-repository re-read of ECS and Lambda would cost too much). A pin that appeared since
        the plan makes the plan stale: nothing is deleted this run."""
        reload_pins = self.ctx.options.reload_pins
        if reload_pins is None or not any(r.waves for r in repos):
            return None
        fresh = reload_pins()
        newly = {d: fresh[d] for r in repos for d in r.planned if d in fresh}
        if not newly:
            return None
        for repo in repos:
            for digest in repo.planned:
                if digest in newly:
                    repo.fail(digest, "NewlyPinned", newly[digest].source)
            keep_planned(repo, Reason.NEWLY_PINNED, "pins changed during the run")
        return StopReason.NEWLY_PINNED


def tags_in_use(held: Sequence[HeldTag]) -> dict[str, dict[str, str]]:
    """repository -> tag -> where it was found (the first source that named it)."""
    grouped: dict[str, dict[str, str]] = {}
    for tag in held:
        grouped.setdefault(tag.repository, {}).setdefault(tag.tag, tag.source)
    return grouped
