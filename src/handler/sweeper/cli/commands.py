"""The commands plan, sweep, audit and validate, and what every command shares: the session and
registry, the pins, the store, the run id, where output goes. Each reads its settings, connects,
runs the same orchestration the Lambda runs, and hands what it found to `render`. `explain` is in
`explaining`, `restore` and `journal` in `undo`."""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple, TextIO

import boto3
import botocore.loaders
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from .. import clock, pins, store
from ..model import HeldTag, Pin
from ..ports import ManifestStore, RegistryError
from ..registry import EcrRegistry, client_config, make_client
from ..run import (
    NO_REPOSITORY_MATCHED,
    Failure,
    Report,
    RepositoryCheck,
    RepositoryRun,
    RunOptions,
    StopReason,
    Sweeper,
    check_repository,
    select_repositories,
    unmatched_patterns,
    warnings_for,
)
from ..settings import Settings
from ..validate import MISSING_SUBJECT
from .parser import (
    EXIT_FAILURES,
    EXIT_OK,
    FLAGS,
    FORMAT_CSV,
    FORMAT_JSON,
    FORMAT_TABLE,
    HINTS,
    PROG,
    UsageError,
    origin,
    output_format,
    settings_from,
)
from .pull_times import ensure_exclusion
from .render import (
    counted,
    failure_text,
    freed,
    print_failures,
    print_hazards,
    print_json,
    print_problems,
    print_summary,
    print_tables,
    print_totals,
    write_csv,
)
from .terminal import Interrupts, Progress

# botocore's service models, parsed once per process rather than once per command: main() runs
# several times in one process in the demo and the tests.
_MODELS = botocore.loaders.create_loader()


def connect(args: argparse.Namespace) -> tuple[boto3.Session, EcrRegistry]:
    """The boto3 session of --profile/--region (or the usual chain) and the registry behind it,
    made once per command; exit 2 when unusable."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _MODELS)
    try:
        session = boto3.Session(
            botocore_session=core, profile_name=args.profile, region_name=args.region
        )
        if not session.region_name:
            raise UsageError(
                "--region: no AWS region: pass --region, set AWS_REGION, or give your profile one"
            )
        client = make_client(session)
    except ProfileNotFound as exc:
        raise UsageError(f"--profile: {exc}") from None
    except BotoCoreError as exc:
        raise UsageError(f"--region: {exc}") from None
    return session, EcrRegistry(client)


class ReadPins(NamedTuple):
    pinned: dict[str, Pin]
    reload: Callable[[], Mapping[str, Pin]]
    held: list[HeldTag]  # tags something runs by, of this registry
    held_counts: dict[str, int]


def pins_from(session: boto3.Session, settings: Settings) -> ReadPins:
    """Read the configured pin sources now (as the Lambda does, failing closed: a source that
    cannot be read raises PinSourceError, naming it) and give a re-reader for the sweep."""

    def client(service: str, **arguments: Any) -> Any:
        return session.client(service, config=client_config(), **arguments)  # type: ignore[call-overload]

    configured = pins.sources(settings, client)
    pinned, _ = pins.collect(configured, workers=settings.concurrency)
    held: list[HeldTag] = []
    counts: dict[str, int] = {}
    if any(isinstance(s, pins.TagSource) and s.held for s in configured):
        # Which registry is this: the account of these credentials, in the session's region.
        try:
            account = str(client("sts").get_caller_identity()["Account"])
        except (BotoCoreError, ClientError) as exc:
            raise pins.PinSourceError("sts", f"GetCallerIdentity: {exc}") from exc
        held, counts = pins.held_tags(configured, account, str(session.region_name))
    return ReadPins(
        pinned, lambda: pins.collect(configured, workers=settings.concurrency)[0], held, counts
    )


def store_from(args: argparse.Namespace, session: boto3.Session) -> ManifestStore | None:
    """The store of --manifest-store, else the default directory under the user's cache;
    `none` for no store (no journal: no undo)."""
    location = args.manifest_store or str(store.default_directory())
    if location == "none":
        return None
    if location.startswith("s3://") and store.parse_s3_uri(location) is None:
        raise UsageError(f"--manifest-store: {location!r} is not s3://bucket or s3://bucket/prefix")

    def client(service: str) -> Any:
        return session.client(service, config=client_config())  # type: ignore[call-overload]

    return store.open_store(location, client)


def new_run_id() -> str:
    """The command's run id: when (UTC) and a random suffix, so runs sort by time."""
    return f"{clock.now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


class Finished:
    """A run's repositories with every decision final, as the run finishes each (any thread)."""

    def __init__(self) -> None:
        self.by_name: dict[str, RepositoryRun] = {}

    def add(self, repo: RepositoryRun) -> None:
        self.by_name[repo.repository] = repo

    def ordered(self, report: Report) -> list[RepositoryRun]:
        return [
            self.by_name[r.repository] for r in report.repositories if r.repository in self.by_name
        ]


# Said beside a failure whose cause an operator can fix at once.


def warn_run_failures(
    args: argparse.Namespace, failures: Sequence[Failure], ran: bool, err: TextIO
) -> None:
    """On stderr, what a summary would bury: each repository pattern that matched nothing and,
    when no repository could be run at all (no credentials, say), why; then no summary is shown,
    since its zeros would only hide the error."""
    for failure in failures:
        if failure.code == NO_REPOSITORY_MATCHED:
            what = failure.message.partition(": ")[2]  # "'nosuch' matches no repository"
            where = origin(args, "repositories")
            if where == FLAGS["repositories"]:
                print(f"{PROG}: warning: {where} {what}", file=err)
            else:
                print(f"{PROG}: warning: repositories {what} ({where})", file=err)
        elif not ran:
            print(f"{PROG}: {failure_text(failure)}{HINTS.get(failure.code, '')}", file=err)


@contextmanager
def destination(args: argparse.Namespace, out: TextIO) -> Iterator[TextIO]:
    """Standard output, or the `--output` file (written whole, UTF-8; for CSV, no newline
    translation: the csv module writes its own line ends)."""
    if not getattr(args, "output", None):
        yield out
        return
    try:
        stream = open(args.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"--output: cannot write {args.output}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def show_run(
    args: argparse.Namespace,
    fmt: str,
    out: TextIO,
    report: Report,
    repos: list[RepositoryRun],
    now: datetime,
    *,
    tables: bool = True,
) -> None:
    """A finished run in the format asked for: the JSON report (every planned deletion), the CSV
    of the decisions `--show` asks for, or the summary, the tables and the totals. Repositories
    in name order in each. `tables=False`: the summary and tables were shown at the question."""
    report.repositories.sort(key=lambda r: r.repository)
    with destination(args, out) as stream:
        if fmt == FORMAT_JSON:
            print_json(stream, report.as_dict())
        elif fmt == FORMAT_CSV:
            write_csv(stream, repos, args.show)
        else:
            if tables:
                print_summary(stream, report)
                print_tables(stream, repos, now, args.show)
            print_totals(stream, report, after_sweep=not report.dry_run)


def _plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=True, err=err)
    fmt = output_format(args)
    session, registry = connect(args)
    exclusion = ensure_exclusion(args, session, registry, err)
    pinned, _, held, held_counts = pins_from(session, settings)
    now = clock.now()
    finished = Finished()
    with Progress(err) as progress, Interrupts(err) as interrupts:
        options = RunOptions(
            pins=pinned,
            held_tags=held,
            exclusion=exclusion,
            interrupted=interrupts.stopping.is_set,
            on_repository_planned=progress.planned,
            on_repository_done=finished.add,
            retain_decisions=True,
            store=store_from(args, session),
            run_id=new_run_id(),
            listed_deletions=None,  # the command's report lists every deletion
        )
        report = Sweeper(registry, settings, now, options).run()
    report.held_tags = held_counts
    ran = bool(report.repositories) or not report.failures
    if fmt != FORMAT_TABLE or ran:
        show_run(args, fmt, out, report, finished.ordered(report), now)
    warn_run_failures(args, report.failures, ran, err)
    return EXIT_OK if report.complete else EXIT_FAILURES


def _audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The audit of ECR's own lifecycle policies, alone: what each policy will expire that is
    pinned, recently pulled or carries a tag its rule does not select. It reads the listing, the
    policy and the manifests the prediction needs (`audit_only`), not a whole dry run. Exit 1
    when there is a hazard, or when the run is not complete."""
    settings = replace(settings_from(args, dry_run=True), audit_lifecycle_policies=True)
    session, registry = connect(args)
    exclusion = ensure_exclusion(args, session, registry, err)
    pinned, _, held, _ = pins_from(session, settings)
    with Progress(err, "auditing") as progress, Interrupts(err) as interrupts:
        options = RunOptions(
            pins=pinned,
            held_tags=held,
            exclusion=exclusion,
            interrupted=interrupts.stopping.is_set,
            on_repository_planned=progress.planned,
            run_id=new_run_id(),
            audit_only=True,
        )
        report = Sweeper(registry, settings, clock.now(), options).run()
    hazards = report.lifecycle_hazards
    ran = bool(report.repositories) or not report.failures
    if args.json:
        print_json(
            out,
            {
                "complete": report.complete,
                "repositories": len(report.repositories),
                "lifecycle_hazards": [h.as_dict() for h in hazards],
                "lifecycle_unevaluated": [u.as_dict() for u in report.lifecycle_unevaluated],
                "failures": [f.as_dict() for f in report.all_failures],
            },
        )
    elif ran:
        print_hazards(out, hazards)
        audited = counted(len(report.repositories), "repository", "repositories")
        found = counted(len(hazards), "hazard")
        print(
            f"Audited {audited}: {found}"
            + (" (in use, and ECR will expire it)." if hazards else "."),
            file=out,
        )
        print_failures(out, [f.as_dict() for f in report.all_failures])
    warn_run_failures(args, report.failures, ran, err)
    return EXIT_OK if report.complete and not hazards else EXIT_FAILURES


def _sweep(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=False)
    fmt = output_format(args)
    if not args.yes and not sys.stdin.isatty():
        raise UsageError(
            "sweep deletes manifests: pass --yes, or run it in a terminal to be asked first"
        )
    for warning in warnings_for(settings):  # before the question: the report says it too
        print(f"{PROG}: warning: {warning}", file=err)
    session, registry = connect(args)
    exclusion = ensure_exclusion(args, session, registry, err)
    pinned, reload_pins, held, held_counts = pins_from(session, settings)
    now = clock.now()
    asked = False
    finished = Finished()

    def confirm(repos: list[RepositoryRun]) -> bool:
        if ask(repos):
            interrupts.deleting.set()
            progress.deleting(repos)
            return True
        return False

    def ask(repos: list[RepositoryRun]) -> bool:
        nonlocal asked
        progress.close()
        planned = [r for r in repos if r.waves]
        if args.yes or not planned:
            return True
        # The plan goes where the tables go; with JSON, CSV or a file, the question's totals
        # go to standard error beside it, so the output stays one document.
        tables = fmt == FORMAT_TABLE and not args.output
        summary = out if tables else err
        plan = Report(dry_run=False, repositories=[r.summary(0) for r in repos])
        if tables:
            print_summary(out, plan)
            print_tables(out, repos, now, args.show)
        print_totals(summary, plan)
        err.write(
            f"Delete {counted(plan.planned.manifests, 'manifest')} ({freed(plan)}) in "
            f"{counted(len(planned), 'repository', 'repositories')}? [y/N] "
        )
        err.flush()
        asked = True
        answer = sys.stdin.readline()
        return answer.strip().lower() in {"y", "yes"}

    with Progress(err) as progress, Interrupts(err) as interrupts:
        options = RunOptions(
            pins=pinned,
            held_tags=held,
            exclusion=exclusion,
            reload_pins=reload_pins,
            interrupted=interrupts.stopping.is_set,
            on_repository_planned=progress.planned,
            on_repository_done=finished.add,
            on_batch_deleted=progress.deleted,
            confirm=confirm,
            retain_decisions=True,
            store=store_from(args, session),
            run_id=new_run_id(),
            listed_deletions=None,  # the command's report lists every deletion
        )
        report = Sweeper(registry, settings, now, options).run()
    report.held_tags = held_counts
    if report.stopped_early is StopReason.NOT_CONFIRMED:
        print("Not confirmed: nothing deleted.", file=err)
        return EXIT_FAILURES
    ran = bool(report.repositories) or not report.failures
    if fmt != FORMAT_TABLE or ran:
        tables = not (asked and fmt == FORMAT_TABLE and not args.output)
        show_run(args, fmt, out, report, finished.ordered(report), now, tables=tables)
    warn_run_failures(args, report.failures, ran, err)
    if report.stopped_early is StopReason.INTERRUPTED:
        print("Interrupted: stopped before the next batch; run it again to finish.", file=err)
    return EXIT_OK if report.complete and not report.broken else EXIT_FAILURES


def _validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=True)
    session, registry = connect(args)
    ensure_exclusion(args, session, registry, err)
    try:
        names = registry.repositories()
    except RegistryError as exc:
        failure = Failure("", "", exc.code, str(exc))
        warn_run_failures(args, [failure], False, err)
        return EXIT_FAILURES
    selected = select_repositories(names, settings.repositories, settings.exclude_repositories)
    unmatched = unmatched_patterns(names, settings.repositories)
    checks: list[RepositoryCheck] = []
    with Progress(err, "checking") as progress, ThreadPoolExecutor(settings.concurrency) as pool:
        for check in pool.map(lambda name: check_repository(registry, name), selected):
            checks.append(check)
            progress.step(check.repository, len(checks), len(selected))
    # A referrer whose subject is gone is dangling, not broken: nothing pulls through it, and a
    # sweep may leave one by design. It is listed, and does not make the exit status 1.
    found = [p for c in checks for p in c.problems]
    problems = [p for p in found if p.problem != MISSING_SUBJECT]
    dangling = [p for p in found if p.problem == MISSING_SUBJECT]
    failures = [f.as_dict() for f in unmatched] + [f.as_dict() for c in checks for f in c.failures]
    ran = bool(selected) or not unmatched
    if args.json:
        print_json(
            out,
            {
                "complete": not failures,
                "repositories": len(checks),
                "manifests": sum(c.manifests for c in checks),
                "broken": [p.as_dict() for p in problems],
                "dangling": [p.as_dict() for p in dangling],
                "failures": failures,
            },
        )
    elif ran:
        if problems:
            print_problems(out, problems)
            print(file=out)
        if dangling:
            print("Dangling referrers (not broken: a later run collects them once old):", file=out)
            print_problems(out, dangling)
            print(file=out)
        summary = f"{len(problems)} broken" if problems else "nothing broken"
        if dangling:
            summary += f", {counted(len(dangling), 'dangling referrer')}"
        print(
            f"Checked {counted(len(checks), 'repository', 'repositories')}, "
            f"{counted(sum(c.manifests for c in checks), 'manifest')}: {summary}.",
            file=out,
        )
        print_failures(out, failures)
    warn_run_failures(args, unmatched, True, err)
    return EXIT_OK if not problems and not failures else EXIT_FAILURES


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
    "plan": _plan,
    "sweep": _sweep,
    "validate": _validate,
    "audit": _audit,
}
