"""The sweeper's own reads must not feed its pull window.

In ECR, reading a manifest through the API (`BatchGetImage`) is a pull: it refreshes the image's
`lastRecordedPullTime`, unless the caller is registered as a pull-time update exclusion. A run
reads every index and every would-be deletion; without an exclusion, whatever one night read looks
"recently pulled" to every later night, and the pull window holds it for as long as the sweeper
keeps reading it (docs/operations.md, "Pull times and the sweeper's own reads").

So before its first read a run finds its own principal among the registry's exclusions and, when
it is missing and allowed to, registers it. The outcome is reported (`pull_time_exclusion`). When
it is not in place the run still honours pull times, as always: it keeps more, never less. What
it cannot do then is tell a workload's pull during the run from its own reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..ports import Registry, RegistryError
from ..settings import PRINCIPAL_PATTERN

_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_ASSUMED_ROLE = re.compile(r"^arn:(aws(?:-[a-z]+)*):sts::([0-9]{12}):assumed-role/([\w+=,.@-]+)/")


class ExclusionState(StrEnum):
    REGISTERED = "registered"  # found among the registry's exclusions
    REGISTERED_NOW = "registered-now"  # this run registered it
    MISSING = "missing"  # not registered: not allowed to, refused, or the registry's list full
    UNKNOWN = "unknown"  # the list could not be read, or the run's principal is not known


@dataclass(frozen=True, slots=True)
class PullTimeExclusion:
    """What a run found of its principal among the registry's pull-time update exclusions."""

    state: ExclusionState
    principal: str = ""
    # Other principals the registry excludes: their pulls never count toward the pull window.
    others: int = 0
    detail: str = ""  # why MISSING or UNKNOWN

    @property
    def in_place(self) -> bool:
        """Whether the run's reads leave pull times alone, so a pull time that moves during the
        run is a workload's."""
        return self.state in (ExclusionState.REGISTERED, ExclusionState.REGISTERED_NOW)

    @property
    def warning(self) -> str:
        """What an operator must know when the exclusion is not in place ("" when it is)."""
        if self.in_place:
            return ""
        return (
            f"pull_time_exclusion {self.state.value}"
            + (f" ({self.detail})" if self.detail else "")
            + ": this run's own reads (BatchGetImage) refresh lastRecordedPullTime, so the pull "
            "window (keep_pulled_within_days) will hold what it read as recently pulled, and a "
            "pull by a workload during the run cannot be told from the run's own. Register "
            + (self.principal or "the run's principal")
            + " as an ECR pull-time update exclusion (docs/operations.md)."
        )

    def as_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "others": self.others, "detail": self.detail}


def principal_from_identity(arn: str) -> str | None:
    """The principal ARN an exclusion names, for an STS caller identity: an assumed role's role
    (without its path, which the identity does not carry), an IAM user as it is; None for
    anything that cannot be excluded (the root user, a federated user)."""
    assumed = _ASSUMED_ROLE.match(arn)
    if assumed is not None:
        partition, account, name = assumed.groups()
        return f"arn:{partition}:iam::{account}:role/{name}"
    return arn if _PRINCIPAL.fullmatch(arn) else None


def _identity(arn: str) -> tuple[str, str, str] | None:
    """(account, role or user, name) of a principal ARN: IAM role and user names are unique in
    their account whatever their path, so these name one principal."""
    if not _PRINCIPAL.fullmatch(arn):
        return None
    account = arn.split(":")[4]
    kind, _, rest = arn.split(":", 5)[5].partition("/")
    return account, kind, rest.rsplit("/", 1)[-1]


def same_principal(registered: str, principal: str) -> bool:
    """Whether an exclusion names `principal`, with or without the path an assumed role's
    identity leaves out."""
    if registered == principal:
        return True
    mine = _identity(principal)
    return mine is not None and _identity(registered) == mine


def look_up(registry: Registry, principal: str) -> PullTimeExclusion:
    """REGISTERED, MISSING (not among them) or UNKNOWN (the list failed): one list call."""
    try:
        registered = registry.pull_time_exclusions()
    except RegistryError as exc:
        return PullTimeExclusion(ExclusionState.UNKNOWN, principal, detail=str(exc))
    mine = [r for r in registered if same_principal(r, principal)]
    if mine:
        return PullTimeExclusion(ExclusionState.REGISTERED, mine[0], len(registered) - len(mine))
    return PullTimeExclusion(ExclusionState.MISSING, principal, len(registered), "not registered")


def register(registry: Registry, missing: PullTimeExclusion) -> PullTimeExclusion:
    """Register the principal `look_up` found missing: REGISTERED_NOW, or MISSING with ECR's
    refusal (no grant, the registry's 100 exclusions taken)."""
    try:
        registry.register_pull_time_exclusion(missing.principal)
    except RegistryError as exc:
        return PullTimeExclusion(
            ExclusionState.MISSING, missing.principal, missing.others, f"not registered: {exc}"
        )
    return PullTimeExclusion(ExclusionState.REGISTERED_NOW, missing.principal, missing.others)


def check(registry: Registry, principal: str | None, allow_register: bool) -> PullTimeExclusion:
    """The run's check before its first read: one list call, and one register call at most."""
    if not principal:
        return PullTimeExclusion(
            ExclusionState.UNKNOWN, detail="the principal this run reads as is not known"
        )
    found = look_up(registry, principal)
    if found.state is not ExclusionState.MISSING:
        return found
    if not allow_register:
        return PullTimeExclusion(
            ExclusionState.MISSING, principal, found.others, "registering it is turned off"
        )
    return register(registry, found)
