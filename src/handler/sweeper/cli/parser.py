"""The command's arguments: flags named after the request's fields, checked as the Lambda checks
them (`settings.load`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    "max_deletions": "--max-deletions",
    "concurrency": "--concurrency",
    "required_repository_tag": "--required-repository-tag",
    "retention": "--retention",
    "audit_lifecycle_policies": "--audit-lifecycle-policies",
}


class UsageError(Exception):
    """Bad usage found after parsing (a flag's value, a file, a profile): exit 2."""


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
        "--retention",
        type=_json_document,
        metavar="JSON|@FILE",
        help="retention rules: a list of {repositories, rules} in ECR's lifecycle-policy "
        "language, as JSON or @file (needs scope orphans)",
    )
    group.add_argument(
        "--audit-lifecycle-policies",
        action=argparse.BooleanOptionalAction,
        help="report what each repository's own ECR lifecycle policy would expire that is in "
        "use (default: on)",
    )
    group.add_argument(
        "--required-repository-tag",
        metavar="KEY=VALUE",
        help="sweep only repositories carrying this tag",
    )
    group.add_argument(
        "--max-deletions",
        type=_number,
        metavar="N",
        help="circuit breaker: a real run planning more deletes nothing (default 5000)",
    )

    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--manifest-store",
        metavar="LOCATION",
        help="the manifest store and journal: s3://bucket[/prefix], a directory, or 'none' "
        "(default: ecr-sweeper/manifests under the user's cache directory)",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A reference-aware garbage collector for Amazon ECR (the Lambda's code, "
        "run with your own AWS credentials).",
        epilog="Exit codes: 0 done, 1 failures, 2 bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [aws, selection, policy, output, store]
    commands.add_parser("plan", parents=common, help="dry run: what would be deleted, and why")
    sweep = commands.add_parser("sweep", parents=common, help="delete, after confirmation")
    sweep.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    explain = commands.add_parser(
        "explain", parents=common, help="why one manifest is kept or deletable"
    )
    explain.add_argument("repository_name", metavar="REPOSITORY")
    explain.add_argument(
        "digest", metavar="DIGEST", help="sha256:<hex>, or a unique prefix of 6+ hex digits"
    )
    commands.add_parser(
        "audit",
        parents=common,
        help="what each repository's own ECR lifecycle policy will expire that is in use",
    )
    commands.add_parser(
        "validate",
        parents=[aws, selection, output],
        help="list indexes missing a child and referrers missing their subject",
    )
    restore = commands.add_parser(
        "restore",
        parents=[aws, output, store],
        help="put back what a run deleted, from the journal",
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


def settings_from(args: argparse.Namespace, *, dry_run: bool) -> Settings:
    """The request file, then the flags over it, checked by settings.load like any request. A
    wrong field is a UsageError naming the field and where it came from: its flag or the file."""
    request: dict[str, Any] = {}
    try:
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
