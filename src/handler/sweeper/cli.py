"""`ecr-sweeper`: the Lambda's code on an operator's laptop, with the operator's AWS credentials.

    ecr-sweeper plan      [settings] [--json]          a dry run: what would go, and why
    ecr-sweeper sweep     [settings] [--json] [--yes]  the real run, after confirmation
    ecr-sweeper explain   REPOSITORY DIGEST [settings]  why one manifest is kept or deletable
    ecr-sweeper validate  [selection] [--json]          indexes missing children, dangling referrers

Settings are the fields of the Lambda's request, as flags (`--scope`, `--min-age-hours`, ...) or
from a request file (`--event FILE`, flags win), checked by `settings.load` exactly as the Lambda
checks them. The environment variables that configure the deployed function (SCOPE, PINS, ...) are
not read: a shell's stray `SCOPE` should not change what a sweep deletes. `dry_run` comes from the
command, never from the file.

Exit codes: 0 done; 1 failures (the report is not complete, something failed or is broken, the
manifest asked about is not there, or the sweep was not confirmed); 2 bad usage, with what was
wrong named.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import boto3
import botocore.loaders
import botocore.session
from botocore.exceptions import BotoCoreError, ProfileNotFound

from . import __version__, clock, pins
from .explain import path, render, short
from .manifests import parse
from .model import DIGEST_PATTERN, Decision, Image, Kind, Pin, Reason, Verdict
from .registry import Registry, RegistryError, client_config
from .run import RepositoryCheck, RepositoryRun, Run, Sweeper, select_repositories
from .settings import InvalidSettings, Settings, is_scheduled_event, load
from .validate import Problem

PROG = "ecr-sweeper"
EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Request field -> flag. Every field of the request but `dry_run`, which the command decides.
FLAGS: dict[str, str] = {
    "scope": "--scope",
    "min_age_hours": "--min-age-hours",
    "keep_pulled_within_days": "--keep-pulled-within-days",
    "repositories": "--repository",
    "exclude_repositories": "--exclude",
    "pins": "--pin",
    "pin_parameter_path": "--pin-parameter-path",
    "pin_object_uris": "--pin-object-uri",
    "pin_from_ecs": "--pin-from-ecs",
    "pin_from_lambda": "--pin-from-lambda",
    "max_deletions": "--max-deletions",
    "concurrency": "--concurrency",
}
_DIGEST_ANYWHERE = re.compile(DIGEST_PATTERN)
_DIGEST_PREFIX = re.compile(r"^(sha256:)?([0-9a-f]{6,64})$")
_MIN_PREFIX = 6
_REASON_ORDER = {reason: i for i, reason in enumerate(Reason)}


class UsageError(Exception):
    """Bad usage found after parsing (a flag's value, a file, a profile): exit 2."""


# --- parsing -------------------------------------------------------------------------------------


def _number(text: str) -> int | float:
    """A number as the request file would carry it; its range is checked by settings.load."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return int(value) if value.is_integer() else value


def build_parser() -> argparse.ArgumentParser:
    aws = argparse.ArgumentParser(add_help=False)
    group = aws.add_argument_group("AWS")
    group.add_argument("--profile", help="AWS profile (default: the usual boto3 chain)")
    group.add_argument("--region", help="AWS region (default: the profile's or AWS_REGION)")

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of tables")

    selection = argparse.ArgumentParser(add_help=False)
    group = selection.add_argument_group("repositories (request fields; flags override --event)")
    group.add_argument(
        "--event", metavar="FILE", help="a JSON request, as the Lambda takes it ('-': stdin)"
    )
    group.add_argument(
        "--repository",
        dest="repositories",
        action="append",
        metavar="GLOB",
        help="repositories to work on (repeatable; default: all)",
    )
    group.add_argument(
        "--exclude",
        dest="exclude_repositories",
        action="append",
        metavar="GLOB",
        help="repositories never touched (repeatable)",
    )
    group.add_argument(
        "--concurrency", type=_number, metavar="N", help="repositories at once (default 8)"
    )

    policy = argparse.ArgumentParser(add_help=False)
    group = policy.add_argument_group("policy (request fields; flags override --event)")
    group.add_argument("--scope", help="orphans (default) or attestations")
    group.add_argument(
        "--min-age-hours", type=_number, metavar="H", help="grace period (default 72)"
    )
    group.add_argument(
        "--keep-pulled-within-days",
        type=_number,
        metavar="D",
        help="keep what was pulled within D days (default 30)",
    )
    group.add_argument(
        "--pin",
        dest="pins",
        action="append",
        metavar="TEXT",
        help="protect every sha256 digest in TEXT, e.g. an image URI (repeatable)",
    )
    group.add_argument(
        "--pin-parameter-path",
        metavar="PATH",
        help="protect every digest in the SSM parameters under PATH (recursive)",
    )
    group.add_argument(
        "--pin-object-uri",
        dest="pin_object_uris",
        action="append",
        metavar="S3URI",
        help="protect every digest in the S3 object s3://bucket/key (repeatable)",
    )
    group.add_argument(
        "--pin-from-ecs",
        action="store_const",
        const=True,
        help="protect the images of active ECS task definitions and running tasks",
    )
    group.add_argument(
        "--pin-from-lambda",
        action="store_const",
        const=True,
        help="protect the images of container-image Lambda functions and their versions",
    )
    group.add_argument(
        "--max-deletions",
        type=_number,
        metavar="N",
        help="circuit breaker: a real run planning more deletes nothing (default 5000)",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A reference-aware garbage collector for Amazon ECR (the Lambda's code, "
        "run with your own AWS credentials).",
        epilog="Exit codes: 0 done, 1 failures, 2 bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [aws, selection, policy, output]
    plan = commands.add_parser(
        "plan", parents=common, help="dry run: what would be deleted, and why"
    )
    plan.set_defaults(func=_plan)
    sweep = commands.add_parser("sweep", parents=common, help="delete, after confirmation")
    sweep.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    sweep.set_defaults(func=_sweep)
    explain = commands.add_parser(
        "explain", parents=common, help="why one manifest is kept or deletable"
    )
    explain.add_argument("repository_name", metavar="REPOSITORY")
    explain.add_argument(
        "digest", metavar="DIGEST", help="sha256:<hex>, or a unique prefix of 6+ hex digits"
    )
    explain.set_defaults(func=_explain)
    validate = commands.add_parser(
        "validate",
        parents=[aws, selection, output],
        help="list indexes missing a child and referrers missing their subject",
    )
    validate.set_defaults(func=_validate)
    return parser


def settings_from(args: argparse.Namespace, *, dry_run: bool) -> Settings:
    """The request file, then the flags over it, checked by settings.load like any request."""
    request: dict[str, Any] = {}
    if args.event is not None:
        document = _read_event(args.event)
        if not isinstance(document, dict):
            return load(document, {})  # raises, naming the event
        if not is_scheduled_event(document):  # an envelope carries no settings
            request.update(document)
    for name in FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            request[name] = value
    request["dry_run"] = dry_run
    return load(request, {})


def _read_event(name: str) -> object:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--event: cannot read {name}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--event: {name} is not JSON: {exc}") from None


# botocore's service models, parsed once per process rather than once per command: main() runs
# several times in one process in the demo and the tests, and parsing costs 0.15 s of CPU.
_MODELS = botocore.loaders.create_loader()


def connect(args: argparse.Namespace) -> tuple[boto3.Session, Registry]:
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
        client = session.client("ecr", config=client_config())
    except ProfileNotFound as exc:
        raise UsageError(f"--profile: {exc}") from None
    except BotoCoreError as exc:
        raise UsageError(f"--region: {exc}") from None
    return session, Registry(client)


def pins_from(
    session: boto3.Session, settings: Settings
) -> tuple[dict[str, Pin], Callable[[], Mapping[str, Pin]]]:
    """Read the configured pin sources now (as the Lambda does, failing closed: a source that
    cannot be read raises PinSourceError, naming it) and give a re-reader for the sweep."""

    def client(service: str) -> Any:
        return session.client(service, config=client_config())  # type: ignore[call-overload]

    configured = pins.sources(settings, client)
    pinned, _ = pins.collect(configured)
    return pinned, lambda: pins.collect(configured)[0]


# --- commands ------------------------------------------------------------------------------------


def _plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=True)
    session, registry = connect(args)
    pinned, _ = pins_from(session, settings)
    now = clock.now()
    with Progress(err) as progress, Interrupts(err) as interrupts:
        run = Sweeper(
            registry,
            settings,
            now,
            pins=pinned,
            on_repository_planned=progress.planned,
            remaining_seconds=interrupts.remaining_seconds,
        ).run()
    if args.json:
        _print_json(out, run.report())
    else:
        print_tables(out, run, now)
        print_totals(out, run, settings)
    return EXIT_OK if run.complete else EXIT_FAILURES


def _sweep(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=False)
    if not args.yes and not sys.stdin.isatty():
        raise UsageError(
            "sweep deletes manifests: pass --yes, or run it in a terminal to be asked first"
        )
    session, registry = connect(args)
    pinned, reload_pins = pins_from(session, settings)
    now = clock.now()
    asked = False

    def confirm(run: Run) -> bool:
        if ask(run):
            interrupts.deleting.set()
            return True
        return False

    def ask(run: Run) -> bool:
        nonlocal asked
        progress.close()
        planned = [(r, d) for r in run.repositories for d in r.planned]
        if args.yes or not planned:
            return True
        summary = err if args.json else out
        if not args.json:
            print_tables(out, run, now)
        print_totals(summary, run, settings)
        repositories = len({r.repository for r, _ in planned})
        size = sum(r.images[d].size for r, d in planned)
        err.write(
            f"Delete {len(planned)} manifests ({human_bytes(size)}) in {repositories} "
            f"{_plural(repositories, 'repository', 'repositories')}? [y/N] "
        )
        err.flush()
        asked = True
        answer = sys.stdin.readline()
        return answer.strip().lower() in {"y", "yes"}

    with Progress(err) as progress, Interrupts(err) as interrupts:
        run = Sweeper(
            registry,
            settings,
            now,
            pins=pinned,
            reload_pins=reload_pins,
            on_repository_planned=progress.planned,
            confirm=confirm,
            remaining_seconds=interrupts.remaining_seconds,
        ).run()
    if run.stopped_early == "not confirmed":
        print("Not confirmed: nothing deleted.", file=err)
        return EXIT_FAILURES
    if args.json:
        _print_json(out, run.report())
    else:
        if not asked:
            print_tables(out, run, now)
        print_totals(out, run, settings, after_sweep=True)
    if interrupts.stopping.is_set():
        print("Interrupted: stopped before the next batch; run it again to finish.", file=err)
    broken = any(r.broken for r in run.repositories)
    return EXIT_OK if run.complete and not broken else EXIT_FAILURES


def _explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=True)
    wanted = _DIGEST_PREFIX.match(args.digest.lower())
    if wanted is None:
        raise UsageError(
            f"DIGEST: {args.digest!r} is not sha256:<hex> or a prefix of {_MIN_PREFIX}+ hex digits"
        )
    prefix = "sha256:" + wanted.group(2)
    session, registry = connect(args)
    now = clock.now()
    pinned, _ = pins_from(session, settings)
    repo = Sweeper(registry, settings, now, pins=pinned).plan_repository(args.repository_name)
    matches = sorted(d for d in repo.images if d.startswith(prefix))
    if not matches:
        for failure in repo.failures:
            print(f"{PROG}: {failure.code}: {failure.message}", file=err)
        print(f"{PROG}: {prefix} is not in repository {args.repository_name!r}", file=err)
        return EXIT_FAILURES
    if len(matches) > 1:
        raise UsageError(
            f"DIGEST: {args.digest!r} matches {len(matches)} manifests: "
            + ", ".join(short(d) for d in matches[:5])
        )
    digest = matches[0]
    chain = path(repo.decisions, digest, repo.plan.children if repo.plan else None)
    chain = _read_kinds(registry, repo, chain)
    decision = chain[0]
    image = repo.images[digest]
    selected = bool(
        select_repositories(
            [args.repository_name], settings.repositories, settings.exclude_repositories
        )
    )
    if args.json:
        _print_json(
            out,
            {
                "repository": args.repository_name,
                "digest": digest,
                "kind": decision.kind.value,
                "verdict": decision.verdict.value,
                "reason": decision.reason.value,
                "cause": decision.cause,
                "tags": list(image.tags),
                "size": image.size,
                "pushed_at": image.pushed_at.isoformat() if image.pushed_at else None,
                "path": [_decision_dict(d) for d in chain],
                "explanation": render(chain),
                "selected": selected,
                "complete": repo.complete,
                "failures": [f.as_dict() for f in repo.failures],
            },
        )
    else:
        verdict = "deletable" if decision.verdict is Verdict.DELETE else "kept"
        print(f"{args.repository_name}@{digest}", file=out)
        print(f"  kind:    {decision.kind.value}", file=out)
        print(f"  tags:    {', '.join(image.tags) or '(untagged)'}", file=out)
        print(f"  pushed:  {_pushed(image, now)}", file=out)
        print(f"  size:    {human_bytes(image.size)}", file=out)
        print(f"  verdict: {verdict} ({decision.reason.value})", file=out)
        print(f"  why:     {render(chain)}", file=out)
        if not selected:
            print(
                "  note:    --repository/--exclude leave this repository out: a run with these "
                "settings does not touch it",
                file=out,
            )
        _print_failures(out, [f.as_dict() for f in repo.failures])
    return EXIT_OK if repo.complete else EXIT_FAILURES


def _read_kinds(registry: Registry, repo: RepositoryRun, chain: list[Decision]) -> list[Decision]:
    """The plan does not read a manifest kept for another reason (its kind did not matter); an
    explanation reads the few on its chain, so it can say what they are."""
    unread = [d.digest for d in chain if d.kind is Kind.UNCLASSIFIED]
    if not unread:
        return chain
    try:
        fetched = registry.manifests(repo.repository, unread)
    except RegistryError:
        return chain  # the explanation stands without it
    kinds = {
        digest: parse(data, media_type=repo.images[digest].media_type, digest=digest).kind
        for digest, data in fetched.content.items()
    }
    return [replace(d, kind=kinds.get(d.digest, d.kind)) for d in chain]


def _validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=True)
    _, registry = connect(args)
    sweeper = Sweeper(registry, settings, clock.now())
    try:
        names = registry.repositories()
    except RegistryError as exc:
        print(f"{PROG}: {exc}", file=err)
        return EXIT_FAILURES
    selected = select_repositories(names, settings.repositories, settings.exclude_repositories)
    checks: list[RepositoryCheck] = []
    with Progress(err, "checking") as progress, ThreadPoolExecutor(settings.concurrency) as pool:
        for check in pool.map(sweeper.check_repository, selected):
            checks.append(check)
            progress.step(check.repository, len(checks), len(selected))
    problems = [p for c in checks for p in c.problems]
    failures = [f.as_dict() for c in checks for f in c.failures]
    if args.json:
        _print_json(
            out,
            {
                "complete": not failures,
                "repositories": len(checks),
                "manifests": sum(c.manifests for c in checks),
                "broken": [p.as_dict() for p in problems],
                "failures": failures,
            },
        )
    else:
        if problems:
            print_problems(out, problems)
            print(file=out)
        print(
            f"Checked {len(checks)} {_plural(len(checks), 'repository', 'repositories')}, "
            f"{sum(c.manifests for c in checks)} manifests: "
            + (f"{len(problems)} broken." if problems else "nothing broken."),
            file=out,
        )
        _print_failures(out, failures)
    return EXIT_OK if not problems and not failures else EXIT_FAILURES


# --- output --------------------------------------------------------------------------------------


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "?"
    seconds = (now - when).total_seconds()
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))}m"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def _pushed(image: Image, now: datetime) -> str:
    if image.pushed_at is None:
        return "unknown"
    return f"{image.pushed_at.isoformat(timespec='seconds')} ({age(image.pushed_at, now)} ago)"


def shorten(text: str) -> str:
    """Every full digest in `text` cut to its short form, so a table stays readable."""
    return _DIGEST_ANYWHERE.sub(lambda match: short(match.group(0)), text)


def verdict_of(repo: RepositoryRun, decision: Decision) -> str:
    if decision.verdict is Verdict.KEEP:
        return "keep"
    if decision.digest in repo.deleted:
        return "deleted"
    if decision.digest in repo.already_gone:
        return "gone"
    return "delete"


def _table(out: TextIO, header: Sequence[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(row[i]) for row in [list(header), *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  " + "  ".join(padded).rstrip()

    print(line(header), file=out)
    for row in rows:
        print(line(row), file=out)


def print_tables(out: TextIO, run: Run, now: datetime) -> None:
    """One table per repository: deletions first, in the order they happen, then what is kept,
    roots first (tags, pins, grace period...), then what they keep."""
    for repo in run.repositories:
        order = {d: i for i, d in enumerate(repo.planned)}
        decisions = sorted(
            repo.decisions.values(),
            key=lambda d: (
                d.digest not in order,
                order.get(d.digest, 0),
                _REASON_ORDER[d.reason],
                d.cause,
                d.digest,
            ),
        )
        deleting = sum(1 for d in decisions if d.verdict is Verdict.DELETE)
        done = "deleted" if repo.deleted or repo.already_gone else "to delete"
        print(
            f"{repo.repository}: {len(repo.images)} manifests, {deleting} {done}, "
            f"{len(decisions) - deleting} kept",
            file=out,
        )
        rows = [
            [
                d.kind.value,
                short(d.digest),
                age(repo.images[d.digest].pushed_at, now) if d.digest in repo.images else "?",
                human_bytes(d.size),
                verdict_of(repo, d),
                d.reason.value,
                shorten(d.cause),
            ]
            for d in decisions
        ]
        if rows:
            _table(
                out, ["KIND", "DIGEST", "AGE", "SIZE", "VERDICT", "REASON", "CAUSE"], rows, {2, 3}
            )
        print(file=out)


def print_totals(out: TextIO, run: Run, settings: Settings, *, after_sweep: bool = False) -> None:
    report = run.report()
    planned, deleted = report["planned"], report["deleted"]
    repositories = report["repositories"]
    print(
        f"{repositories} {_plural(repositories, 'repository', 'repositories')}, "
        f"{report['manifests']} manifests.",
        file=out,
    )
    if run.dry_run:
        print(
            f"Would delete {planned['manifests']} manifests, {human_bytes(planned['bytes'])} "
            "(dry run: nothing deleted).",
            file=out,
        )
        if planned["manifests"] > settings.max_deletions:
            print(
                f"A real run would plan more than --max-deletions={settings.max_deletions} and "
                "delete nothing (circuit breaker).",
                file=out,
            )
    elif after_sweep:
        print(
            f"Deleted {deleted['manifests']} of {planned['manifests']} planned manifests, "
            f"{human_bytes(deleted['bytes'])}.",
            file=out,
        )
    else:
        print(
            f"Plan: delete {planned['manifests']} manifests, {human_bytes(planned['bytes'])}.",
            file=out,
        )
    print(
        "Sizes are nominal: the sum of ECR's imageSizeInBytes; layers shared with kept manifests "
        "stay.",
        file=out,
    )
    kept = report["kept"]
    if kept:
        ranked = sorted(kept.items(), key=lambda item: (-item[1], item[0]))
        print(
            f"Kept {sum(kept.values())}: " + ", ".join(f"{n} {reason}" for reason, n in ranked),
            file=out,
        )
    if after_sweep:
        spared = [
            (r, d)
            for r in run.repositories
            for d in r.planned
            if r.decisions[d].verdict is Verdict.KEEP
        ]
        for repo, digest in spared:
            decision = repo.decisions[digest]
            print(
                f"  planned but kept: {repo.repository} {short(digest)} "
                f"{decision.reason.value} {shorten(decision.cause)}",
                file=out,
            )
    breaker = report["circuit_breaker"]
    if breaker:
        print(f"Circuit breaker: {breaker['hint']}", file=out)
    if report["stopped_early"]:
        print(f"Stopped early: {report['stopped_early']}.", file=out)
    if report["broken"]:
        print("Broken after the sweep:", file=out)
        print_problems(out, [_problem_from(p) for p in report["broken"]])
    _print_failures(out, report["failures"])


def _problem_from(entry: dict[str, Any]) -> Problem:
    return Problem(
        entry["repository"],
        entry["digest"],
        Kind(entry["kind"]),
        entry["problem"],
        tuple(entry["missing"]),
    )


def print_problems(out: TextIO, problems: Sequence[Problem]) -> None:
    rows = [
        [p.repository, short(p.digest), p.kind.value, p.problem, ", ".join(map(short, p.missing))]
        for p in problems
    ]
    _table(out, ["REPOSITORY", "DIGEST", "KIND", "PROBLEM", "MISSING"], rows, set())


def _print_failures(out: TextIO, failures: Sequence[dict[str, str]]) -> None:
    if not failures:
        return
    print("Failures (the report is not complete):", file=out)
    for failure in failures:
        where = " ".join(part for part in (failure["repository"], short(failure["digest"])) if part)
        print(f"  {where or '(registry)'}: {failure['code']}: {failure['message']}", file=out)


def _decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "digest": decision.digest,
        "kind": decision.kind.value,
        "verdict": decision.verdict.value,
        "reason": decision.reason.value,
        "cause": decision.cause,
    }


def _print_json(out: TextIO, document: object) -> None:
    json.dump(document, out, indent=2, default=str)
    out.write("\n")


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


class Progress:
    """A one-line progress bar on `stream`, only when it is a terminal (never in a pipe or log)."""

    WIDTH = 24

    def __init__(self, stream: TextIO, label: str = "scanning") -> None:
        self.stream = stream
        self.label = label
        self.enabled = stream.isatty()
        self.shown = False

    def planned(self, repo: RepositoryRun, done: int, total: int) -> None:
        self.step(repo.repository, done, total)

    def step(self, name: str, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        filled = self.WIDTH * done // total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {name}"[:200] + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Interrupts:
    """Ctrl-C, made safe. Before anything is deleted (scanning, or at the question) it stops the
    command at once. Once deleting, the first Ctrl-C asks the run to stop before its next batch
    (through the Sweeper's time budget, the same safe stop as a Lambda running out of time: no
    index is left without a child); a second one stops at once."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.stopping = threading.Event()
        self.deleting = threading.Event()
        self._previous: Callable[..., Any] | int | None = None
        self._installed = False

    def remaining_seconds(self) -> float:
        """The Sweeper's time budget: none left once a stop was asked for."""
        return 0.0 if self.stopping.is_set() else math.inf

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = self.stopping.is_set()
        self.stopping.set()  # repositories not yet scanned are skipped
        if again or not self.deleting.is_set():
            raise KeyboardInterrupt
        self.err.write("\nStopping before the next batch (Ctrl-C again to stop at once)...\n")

    def __enter__(self) -> Interrupts:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        except ValueError:  # not the main thread: Ctrl-C behaves as usual
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


# --- entry point ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    core = logging.getLogger("ecr_sweeper")
    if not core.handlers:
        # The decision log is for the Lambda's JSON logs; here the tables say the same.
        core.addHandler(logging.NullHandler())
    out, err = sys.stdout, sys.stderr
    try:
        code: int = args.func(args, out, err)
    except InvalidSettings as exc:
        field = exc.field.split("[")[0]
        flag = f" ({FLAGS[field]})" if field in FLAGS else ""
        print(f"{PROG}: error: invalid setting {exc}{flag}", file=err)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except pins.PinSourceError as exc:
        # Fail closed, as the Lambda does: without every pin, nothing is planned or deleted.
        print(f"{PROG}: {exc}", file=err)
        return EXIT_FAILURES
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=err)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
