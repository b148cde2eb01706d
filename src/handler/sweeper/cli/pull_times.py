"""The command does not pull behind its operator's back.

Every command reads manifests, and in ECR a read is a pull (sweeper/run/exclusion.py): unless the
operator's principal is a pull-time update exclusion, each read refreshes the image's
`lastRecordedPullTime`, which the console shows as "last pulled", ECR's own `sinceImagePulled`
rules read, and the sweeper's pull window keeps. So before the first read the command finds the
operator among the registry's exclusions; when missing it asks, at a terminal, whether to register
them, and elsewhere stops, naming the two flags that decide: `--register-pull-time-exclusion` and
`--accept-pull-time-updates`. `--yes` answers yes (register), as it answers the sweep's question.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TextIO

import boto3

from .. import identity
from ..ports import Registry, RegistryError
from ..registry import client_config
from ..run import ExclusionState, PullTimeExclusion
from ..run import exclusion as exclusions
from ..settings import PRINCIPAL_PATTERN
from .parser import HINTS, PROG, UsageError

_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)


class Declined(Exception):
    """The operator said no at the terminal: nothing was read."""


def ensure_exclusion(
    args: argparse.Namespace, session: boto3.Session, registry: Registry, err: TextIO
) -> PullTimeExclusion:
    """The operator's principal among the registry's exclusions, registered if they say so."""
    if args.principal_arn and not _PRINCIPAL.fullmatch(args.principal_arn):
        raise UsageError(
            f"--principal-arn: {args.principal_arn!r} is not an IAM role or user ARN "
            "(arn:aws:iam::<account>:role/<path/><name>)"
        )
    try:
        principal = _principal(args, session)
    except UsageError as exc:
        if not args.accept_pull_time_updates:
            raise
        # Reading anyway was asked for: who reads need not be known for that.
        unknown = PullTimeExclusion(ExclusionState.UNKNOWN, detail=str(exc))
        print(f"{PROG}: warning: {unknown.warning}", file=err)
        return unknown
    found = exclusions.look_up(registry, principal)
    if found.in_place:
        return found
    if args.accept_pull_time_updates:
        print(f"{PROG}: warning: {found.warning}", file=err)
        return found
    if not (args.register_pull_time_exclusion or getattr(args, "yes", False)):
        _ask(found, err)
    return _register(args, session, registry, found, err)


def _principal(args: argparse.Namespace, session: boto3.Session) -> str:
    if args.principal_arn:
        return str(args.principal_arn)
    try:
        arn = identity.caller_arn(session, client_config())
    except RegistryError as exc:
        raise UsageError(f"{exc}{HINTS.get(exc.code, '')}") from None
    principal = exclusions.principal_from_identity(arn)
    if principal is None:
        raise UsageError(
            f"you are {arn}, which ECR cannot take as a pull-time update exclusion (only an IAM "
            "role or user): pass --principal-arn, or --accept-pull-time-updates to read anyway"
        )
    return principal


def _ask(found: PullTimeExclusion, err: TextIO) -> None:
    stdin = sys.stdin
    if not stdin.isatty():
        raise UsageError(
            f"{found.principal} is not a pull-time update exclusion ({found.state.value}"
            + (f": {found.detail}" if found.detail else "")
            + "): every manifest this command reads would count as pulled. Pass "
            "--register-pull-time-exclusion to register it, or --accept-pull-time-updates to "
            "read anyway"
        )
    err.write(
        f"{found.principal} is not an ECR pull-time update exclusion. Reading a manifest is a "
        "pull: each one read would get a new lastRecordedPullTime (the console's 'last "
        "pulled', what sinceImagePulled lifecycle rules and the sweeper's pull window read).\n"
        "Register it as an exclusion (its pulls then never move a pull time)? [y/N] "
    )
    err.flush()
    if stdin.readline().strip().lower() not in {"y", "yes"}:
        raise Declined


def _register(
    args: argparse.Namespace,
    session: boto3.Session,
    registry: Registry,
    found: PullTimeExclusion,
    err: TextIO,
) -> PullTimeExclusion:
    principal = found.principal
    if not args.principal_arn and ":role/" in principal:
        # The identity named the role without its path: IAM knows the full ARN.
        name = principal.rsplit("/", 1)[1]
        try:
            principal = identity.role_arn(session, name, client_config())
        except RegistryError as exc:
            raise UsageError(
                f"cannot find the full ARN of role {name!r} ({exc}): pass --principal-arn with "
                "it (a role's ARN includes its path)"
            ) from None
    done = exclusions.register(
        registry, PullTimeExclusion(ExclusionState.MISSING, principal, found.others)
    )
    if not done.in_place:
        raise UsageError(
            f"{done.detail}: pass --accept-pull-time-updates to read anyway, or ask the "
            "registry's owner to register it"
        )
    print(f"Registered {principal} as a pull-time update exclusion.", file=err)
    return done
