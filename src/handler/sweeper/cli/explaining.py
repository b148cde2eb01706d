"""`ecr-sweeper explain`: why one manifest is kept or deletable, from the same plan a run makes."""

from __future__ import annotations

import argparse
import re
from typing import TextIO

from .. import clock
from ..explain import path, render, short
from ..manifests import parse
from ..model import Decision, Kind, Verdict
from ..ports import REPOSITORY_NOT_FOUND, Registry, RegistryError
from ..run import RepositoryRun, RunOptions, Sweeper, select_repositories
from .commands import connect, new_run_id, pins_from, store_from
from .parser import EXIT_FAILURES, EXIT_OK, PROG, UsageError, settings_from
from .pull_times import ensure_exclusion
from .render import (
    decision_dict,
    failure_text,
    human_bytes,
    print_failures,
    print_json,
    pushed,
    readable,
)

_DIGEST_PREFIX = re.compile(r"^(sha256:)?([0-9a-f]{6,64})$")
_MIN_PREFIX = 6


def explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_from(args, dry_run=True)
    wanted = _DIGEST_PREFIX.match(args.digest.lower())
    if wanted is None:
        raise UsageError(
            f"DIGEST: {args.digest!r} is not sha256:<hex> or a prefix of {_MIN_PREFIX}+ hex digits"
        )
    prefix = "sha256:" + wanted.group(2)
    session, registry = connect(args)
    exclusion = ensure_exclusion(args, session, registry, err)
    now = clock.now()
    pinned, _, held, _ = pins_from(session, settings)
    options = RunOptions(
        pins=pinned,
        held_tags=held,
        exclusion=exclusion,
        retain_decisions=True,
        store=store_from(args, session),
        run_id=new_run_id(),
    )
    repo = Sweeper(registry, settings, now, options).plan_one(args.repository_name)
    matches = sorted(d for d in repo.images if d.startswith(prefix))
    if not matches:
        if any(f.code == REPOSITORY_NOT_FOUND for f in repo.failures):
            print(f"{PROG}: no repository {args.repository_name!r} in this registry", file=err)
            return EXIT_FAILURES
        for failure in repo.failures:
            print(f"{PROG}: {failure_text(failure)}", file=err)
        print(f"{PROG}: {prefix} is not in repository {args.repository_name!r}", file=err)
        return EXIT_FAILURES
    if len(matches) > 1:
        raise UsageError(
            f"DIGEST: {args.digest!r} matches {len(matches)} manifests: "
            + ", ".join(short(d) for d in matches[:5])
        )
    digest = matches[0]
    chain = path(repo.decisions, digest, repo.children)
    decision = chain[0]
    read_as = _read_kind(registry, repo, decision)
    image = repo.images[digest]
    selected = bool(
        select_repositories(
            [args.repository_name], settings.repositories, settings.exclude_repositories
        )
    )
    if args.json:
        print_json(
            out,
            {
                "repository": args.repository_name,
                "digest": digest,
                "kind": decision.kind.value,
                "kind_read": read_as.value if read_as else None,
                "verdict": decision.verdict.value,
                "reason": decision.reason.value,
                "cause": decision.cause,
                "tags": list(image.tags),
                "size": image.size,
                "pushed_at": image.pushed_at.isoformat() if image.pushed_at else None,
                "path": [decision_dict(d) for d in chain],
                "explanation": render(chain),
                "selected": selected,
                "complete": repo.complete,
                "failures": [f.as_dict() for f in repo.failures],
            },
        )
    else:
        verdict = "deletable" if decision.verdict is Verdict.DELETE else "kept"
        print(f"{args.repository_name}@{digest}", file=out)
        kind = decision.kind.value
        if read_as is not None:
            kind += f" (the plan did not need to read it; its bytes say {read_as.value})"
        print(f"  kind:    {kind}", file=out)
        print(f"  tags:    {', '.join(image.tags) or '(untagged)'}", file=out)
        print(f"  pushed:  {pushed(image, now)}", file=out)
        print(f"  size:    {human_bytes(image.size)}", file=out)
        readable_chain = [readable(d, repo.images.get(d.digest), now) for d in chain]
        print(f"  verdict: {verdict} ({decision.reason.value})", file=out)
        print(f"  why:     {render(readable_chain)}", file=out)
        if not selected:
            print(
                "  note:    --repository/--exclude leave this repository out: a run with these "
                "settings does not touch it",
                file=out,
            )
        print_failures(out, [f.as_dict() for f in repo.failures])
    return EXIT_OK if repo.complete else EXIT_FAILURES


def _read_kind(registry: Registry, repo: RepositoryRun, decision: Decision) -> Kind | None:
    """What the bytes of a manifest the plan did not read say it is (a kept manifest's kind did
    not matter to the plan). Said beside the plan's kind, never instead of it: `plan` and
    `explain` give a manifest the same kind."""
    if decision.kind is not Kind.UNCLASSIFIED:
        return None
    try:
        fetched = registry.manifests(repo.repository, [decision.digest])
    except RegistryError:
        return None  # the explanation stands without it
    data = fetched.content.get(decision.digest)
    if data is None:
        return None
    media_type = repo.images[decision.digest].media_type
    return parse(data, media_type=media_type, digest=decision.digest).kind


COMMANDS = {"explain": explain}
