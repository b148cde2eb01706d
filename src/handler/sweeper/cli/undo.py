"""The undo commands: `restore` puts back what a run deleted, from the manifest store's journal;
`journal` lists recent runs and what they deleted."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

import boto3
from botocore.exceptions import ProfileNotFound

from ..explain import short
from ..ports import RegistryError, StoreError
from ..run.restore import NOT_RESTORABLE, Restored, restore
from .commands import connect, store_from
from .parser import EXIT_FAILURES, EXIT_OK, PROG, UsageError
from .render import counted, print_json


def restore_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Put back what a run deleted; exit 1 when something could not be."""
    session, registry = connect(args)
    journal = store_from(args, session)
    if journal is None:
        raise UsageError("--manifest-store: restore reads the journal of a manifest store")
    digest = args.digest.lower() if args.digest else None
    if digest and not digest.startswith("sha256:"):
        digest = "sha256:" + digest
    try:
        results = restore(
            registry,
            journal,
            args.run,
            repositories=args.repositories or (),
            digest=digest,
            dry_run=args.dry_run,
        )
    except (StoreError, RegistryError) as exc:
        print(f"{PROG}: {exc}", file=err)
        return EXIT_FAILURES
    if not results:
        print(f"{PROG}: the journal holds nothing of run {args.run!r} for that selection", file=err)
        return EXIT_FAILURES
    failed = [r for r in results if r.outcome == NOT_RESTORABLE]
    if args.json:
        print_json(
            out,
            {
                "run_id": args.run,
                "dry_run": args.dry_run,
                "complete": not failed,
                "manifests": [r.as_dict() for r in results],
            },
        )
    else:
        _print_restored(out, results)
    return EXIT_OK if not failed else EXIT_FAILURES


def _print_restored(out: TextIO, results: Sequence[Restored]) -> None:
    for result in results:
        line = f"{result.repository}@{short(result.digest)}  {result.outcome}"
        if result.tags:
            line += f"  tags: {', '.join(result.tags)}"
        print(line, file=out)
        for missing in result.missing:
            print(f"    missing: {missing}", file=out)
        for tag, now in result.tags_not_moved.items():
            print(f"    tag {tag!r} not moved: it names {now} now", file=out)
    outcomes: dict[str, int] = {}
    for result in results:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    print(", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) + ".", file=out)


def journal(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Recent runs and what they deleted (or, with --run, that run's deletions)."""
    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
    except ProfileNotFound as exc:
        raise UsageError(f"--profile: {exc}") from None
    journal = store_from(args, session)
    if journal is None:
        raise UsageError("--manifest-store: the journal lives in a manifest store")
    try:
        runs = [args.run] if args.run else journal.runs()
        records = {run: journal.records(run) for run in runs}
    except StoreError as exc:
        print(f"{PROG}: {exc}", file=err)
        return EXIT_FAILURES
    ordered = sorted(
        records,
        key=lambda run: min((r.recorded_at for r in records[run]), default=""),
        reverse=True,
    )
    if args.json:
        print_json(
            out,
            [
                {
                    "run_id": run,
                    "recorded_at": min((r.recorded_at for r in records[run]), default=None),
                    "deleted": [
                        {
                            "repository": r.repository,
                            "digest": r.digest,
                            "media_type": r.media_type,
                            "tags": list(r.tags),
                            "reason": r.reason,
                            "cause": r.cause,
                        }
                        for r in records[run]
                    ],
                }
                for run in ordered
            ],
        )
        return EXIT_OK
    if not ordered:
        print("The journal is empty.", file=out)
    for run in ordered:
        entries = records[run]
        when = min((r.recorded_at for r in entries), default="?")
        repositories = sorted({r.repository for r in entries})
        print(
            f"{run}  {when}  {counted(len(entries), 'manifest')} in "
            f"{counted(len(repositories), 'repository', 'repositories')}",
            file=out,
        )
        if args.run:
            for r in entries:
                tags = f" [{', '.join(r.tags)}]" if r.tags else ""
                print(f"  {r.repository}@{short(r.digest)}{tags}  {r.reason}: {r.cause}", file=out)
    return EXIT_OK


COMMANDS = {"restore": restore_command, "journal": journal}
