"""The command's arguments: flags named after the request's fields, checked as the Lambda checks
them (`settings.load`)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .. import __version__
from ..model import Pin
from ..settings import InvalidSettings, Settings, is_scheduled_event, load

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
    "pin_role_arns": "--pin-role-arn",
    "pin_regions": "--pin-region",
    "pin_from_eks": "--pin-from-eks",
    "eks_clusters": "--eks-cluster",
    "eks_skip_clusters": "--eks-skip-cluster",
    "pin_from_inspector": "--pin-from-inspector",
    "max_deletions": "--max-deletions",
    "concurrency": "--concurrency",
    "required_repository_tag": "--required-repository-tag",
    "retention": "--retention",
    "audit_lifecycle_policies": "--audit-lifecycle-policies",
}


FORMAT_TABLE, FORMAT_JSON, FORMAT_CSV = "table", "json", "csv"
FORMATS = (FORMAT_TABLE, FORMAT_JSON, FORMAT_CSV)
SHOW_DELETIONS, SHOW_ALL = "deletions", "all"
SHOWS = (SHOW_DELETIONS, SHOW_ALL)


def output_format(args: argparse.Namespace) -> str:
    """plan's and sweep's format: `--format`, with `--json` the same as `--format json`."""
    if args.json and args.format not in (None, FORMAT_JSON):
        raise UsageError(f"--json: conflicts with --format {args.format}")
    if args.json:
        return FORMAT_JSON
    return str(args.format or FORMAT_TABLE)


# Said beside a failure whose cause an operator can fix at once.
HINTS = {"NoCredentialsError": " (no AWS credentials: pass --profile, or run `aws configure`)"}


class UsageError(Exception):
    """Bad usage found after parsing (a flag's value, a file, a profile): exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, saying a usage error in one line that names the flag (the usage is in
    `--help`, not in front of every mistake). Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(text: str) -> int | float:
    """A number as the request file would carry it; its range is checked by settings.load."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return int(value) if value.is_integer() else value


def _json_document(text: str) -> Any:
    """A JSON value given inline or, as `@FILE`, in a file; its content is checked by
    settings.load like the request field's."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    aws = _Parser(add_help=False)
    group = aws.add_argument_group("AWS")
    group.add_argument("--profile", help="AWS profile (default: the usual boto3 chain)")
    group.add_argument("--region", help="AWS region (default: the profile's or AWS_REGION)")
    group = aws.add_argument_group(
        "pull times (reading a manifest is a pull: see docs/operations.md)"
    )
    pull_times = group.add_mutually_exclusive_group()
    pull_times.add_argument(
        "--register-pull-time-exclusion",
        action="store_true",
        help="register your principal as an ECR pull-time update exclusion if it is not one, "
        "without asking, so that what this command reads is not recorded as pulled",
    )
    pull_times.add_argument(
        "--accept-pull-time-updates",
        action="store_true",
        help="read even though your principal is not an exclusion: each manifest read gets a "
        "new lastRecordedPullTime",
    )
    group.add_argument(
        "--principal-arn",
        metavar="ARN",
        help="your IAM role or user ARN, when it cannot be found (a role with a path whose "
        "iam:GetRole you may not call)",
    )

    output = _Parser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of tables")

    # plan and sweep: what to show of a run, in which format, where.
    review = _Parser(add_help=False)
    group = review.add_argument_group("output")
    group.add_argument(
        "--json",
        action="store_true",
        help="print the run's report as JSON, every planned deletion listed (--format json)",
    )
    group.add_argument(
        "--format",
        choices=FORMATS,
        help="table (default): a summary per repository, then the decisions; json: the report; "
        "csv: one row per decision",
    )
    group.add_argument(
        "--show",
        choices=SHOWS,
        default=SHOW_DELETIONS,
        help="deletions (default): the planned deletions, and the kept counts by reason; all: "
        "every manifest (tables and csv)",
    )
    group.add_argument(
        "--output", metavar="FILE", help="write the tables, JSON or CSV to FILE, not stdout"
    )

    selection = _Parser(add_help=False)
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

    policy = _Parser(add_help=False)
    group = policy.add_argument_group("policy (request fields; flags override --event)")
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
        "--pin-role-arn",
        dest="pin_role_arns",
        action="append",
        metavar="ARN",
        help="also read the pin sources in this role's (workload) account (repeatable)",
    )
    group.add_argument(
        "--pin-region",
        dest="pin_regions",
        action="append",
        metavar="REGION",
        help="also read the pin sources in this region (repeatable)",
    )
    group.add_argument(
        "--pin-from-eks",
        action="store_const",
        const=True,
        help="protect what Kubernetes pods and workloads of every EKS cluster use",
    )
    group.add_argument(
        "--eks-cluster",
        dest="eks_clusters",
        action="append",
        metavar="NAME",
        help="read only these EKS clusters (repeatable; default every cluster)",
    )
    group.add_argument(
        "--eks-skip-cluster",
        dest="eks_skip_clusters",
        action="append",
        metavar="NAME",
        help="leave this EKS cluster out knowingly (repeatable)",
    )
    group.add_argument(
        "--pin-from-inspector",
        action="store_const",
        const=True,
        help="protect the ECR images Amazon Inspector's coverage shows in use",
    )
    group.add_argument(
        "--required-repository-tag",
        metavar="KEY=VALUE",
        help="sweep only repositories carrying this tag",
    )
    # What decides which manifests go: meaningless to `audit`, which plans nothing.
    deciding = _Parser(add_help=False)
    group = deciding.add_argument_group("what goes (request fields; flags override --event)")
    group.add_argument("--scope", help="orphans (default) or attestations")
    group.add_argument(
        "--retention",
        type=_json_document,
        metavar="JSON|@FILE",
        help="retention rules: a list of {repositories, rules} in ECR's lifecycle-policy "
        "language, as JSON or @file (needs scope orphans)",
    )
    # The breaker and the audit's switch: only for the commands that run a whole sweep.
    run = _Parser(add_help=False)
    group = run.add_argument_group("the run (request fields; flags override --event)")
    group.add_argument(
        "--audit-lifecycle-policies",
        action=argparse.BooleanOptionalAction,
        help="report what each repository's own ECR lifecycle policy would expire that is in "
        "use (default: on)",
    )
    group.add_argument(
        "--max-deletions",
        type=_number,
        metavar="N",
        help="circuit breaker: a real run planning more deletes nothing (default 5000)",
    )

    store = _Parser(add_help=False)
    store.add_argument(
        "--manifest-store",
        metavar="LOCATION",
        help="the manifest store and journal: s3://bucket[/prefix], a directory, or 'none' "
        "(default: ecr-sweeper/manifests under the user's cache directory)",
    )

    parser = _Parser(
        prog=PROG,
        description="A reference-aware garbage collector for Amazon ECR (the Lambda's code, "
        "run with your own AWS credentials).",
        epilog="Exit codes: 0 done, 1 failures, 2 bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, parents, summary, description, example in (
        (
            "plan",
            [aws, selection, policy, deciding, run, review, store],
            "dry run: what would be deleted, and why",
            "A dry run, as the Lambda's: a summary per repository (most bytes freed first), "
            "then the planned deletions (kind, digest, age, size, reason, cause; --show all: "
            "every manifest), then totals. Deletes nothing.",
            f"{PROG} plan --repository 'team/*' --pin-from-ecs",
        ),
        (
            "sweep",
            [aws, selection, policy, deciding, run, review, store],
            "delete, after confirmation",
            "Plans as `plan` does, asks before deleting (--yes: does not), then deletes "
            "exactly that plan, parents before children, re-checked batch by batch. Ctrl-C "
            "stops before the next batch; twice, at once.",
            f"{PROG} sweep --repository team/web --pin-parameter-path /deploy/prod",
        ),
        (
            "explain",
            [aws, selection, policy, deciding, output, store],
            "why one manifest is kept or deletable",
            "Why one manifest is kept or deletable, as the chain of causes back to what "
            "settles it (a tag, a pin, an index that lists it, its age). Deletes nothing.",
            f"{PROG} explain team/web sha256:3f1a9c",
        ),
        (
            "audit",
            [aws, selection, policy, output],
            "what each repository's own ECR lifecycle policy will expire that is in use",
            "Reads each repository's own ECR lifecycle policy and lists what it will expire "
            "that is pinned, recently pulled or carries a tag its rule does not select. Reads "
            "the listing, the policy and the indexes, nothing else; exit 1 when anything is "
            "in use.",
            f"{PROG} audit --repository 'team/*' --pin-from-ecs --pin-from-lambda",
        ),
        (
            "validate",
            [aws, selection, output],
            "list indexes missing a child and referrers missing their subject",
            "Lists every index missing a child (broken: exit 1) and every referrer missing "
            "its subject (dangling, left by design until old enough).",
            f"{PROG} validate --repository 'team/*' --json",
        ),
    ):
        command = commands.add_parser(
            name,
            parents=parents,
            help=summary,
            description=textwrap.fill(description, 78),
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == "sweep":
            command.add_argument(
                "-y", "--yes", action="store_true", help="do not ask for confirmation"
            )
        elif name == "explain":
            command.add_argument("repository_name", metavar="REPOSITORY")
            command.add_argument(
                "digest", metavar="DIGEST", help="sha256:<hex>, or a unique prefix of 6+ hex digits"
            )
    restore = commands.add_parser(
        "restore",
        parents=[aws, output, store],
        help="put back what a run deleted, from the journal",
        description=textwrap.fill(
            "Puts back what a run deleted, from the manifest store's journal: children before "
            "the index that lists them, subjects before their referrers, the recorded tags "
            "last (never a tag that now names another manifest). Checks every child and "
            "layer first; says per manifest restored, already-present or not-restorable.",
            78,
        ),
        epilog=f"example:\n  {PROG} restore --run 20261205T031500Z-1a2b3c4d --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    restore.add_argument("--run", required=True, metavar="RUN_ID", help="the run's run_id")
    restore.add_argument(
        "--repository",
        dest="repositories",
        action="append",
        metavar="GLOB",
        help="only these repositories (repeatable; default: all the run deleted in)",
    )
    restore.add_argument("--digest", metavar="DIGEST", help="only this manifest (or a prefix)")
    restore.add_argument(
        "--dry-run", action="store_true", help="check what could be put back; put nothing"
    )
    journal = commands.add_parser(
        "journal", parents=[aws, output, store], help="recent runs and what they deleted"
    )
    journal.add_argument("--run", metavar="RUN_ID", help="list what this run deleted")
    return parser


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, parsed; a flag the subcommand does not take (`--max-deletions` on
    `audit`, which deletes nothing) is refused in one line naming the subcommand (exit 2)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        where = f"{PROG} {args.command}"
        flag = next((e.partition("=")[0] for e in extras if e.startswith("--")), "")
        takes = {*FLAGS.values(), "--no-audit-lifecycle-policies", "--yes"}
        message = (
            f"{flag} does not apply to {args.command}"
            if flag in takes
            else f"unrecognized arguments: {' '.join(extras)}"
        )
        parser.exit(EXIT_USAGE, f"{where}: error: {message} (see `{where} --help`)\n")
    return args


def settings_from(
    args: argparse.Namespace, *, dry_run: bool, err: TextIO | None = None
) -> Settings:
    """The request file, then the flags over it, checked by settings.load like any request. A
    wrong field is a UsageError naming the field and where it came from: its flag or the file.

    The command decides `dry_run`, but a file's is not ignored: checked as the Lambda checks it,
    a dry run asked of `sweep` stops it (exit 2: the file's author did not mean to delete), and a
    real run asked of `plan` is said on `err` (planning deletes nothing whatever the file says)."""
    request: dict[str, Any] = {}
    try:
        if args.event is not None:
            document = _read_event(args.event)
            if not isinstance(document, dict):
                return load(document, {})  # raises, naming the event
            if not is_scheduled_event(document):  # an envelope carries no settings
                request.update(document)
        if "dry_run" in request:
            asked = load({"dry_run": request.pop("dry_run")}, {}).dry_run
            where = origin(args, "dry_run")
            if asked and not dry_run:
                raise UsageError(
                    f'this event asks for a dry run ("dry_run": true {where}): use '
                    f"`{PROG} plan`, or drop the field to sweep"
                )
            if not asked and dry_run and err is not None:
                print(
                    f'{PROG}: note: this event asks for a real run ("dry_run": false {where}); '
                    f"plan is a dry run, and plans anyway (`{PROG} sweep` deletes)",
                    file=err,
                )
        for name in FLAGS:
            value = getattr(args, name, None)
            if value is not None:
                request[name] = value
        request["dry_run"] = dry_run
        settings = load(request, {})
    except InvalidSettings as exc:
        raise UsageError(f"invalid setting {exc} ({origin(args, exc.field)})") from None
    if getattr(args, "pins", None) is not None:
        # A pin's source is its cause in the tables: these came from the command line, not from
        # an event (settings.load names every request's pins `event:TEXT`).
        pins = tuple(
            Pin(p.digest, "--pin " + p.source.removeprefix("event:")) for p in settings.pins
        )
        settings = replace(settings, pins=pins)
    return settings


def origin(args: argparse.Namespace, field: str) -> str:
    """Where a request field came from: its flag when given, else the --event file."""
    name = field.partition("[")[0]
    if name in FLAGS and getattr(args, name, None) is not None:
        return FLAGS[name]
    if args.event is not None:
        return "in standard input" if args.event == "-" else f"in {args.event}"
    return FLAGS.get(name, name)


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
