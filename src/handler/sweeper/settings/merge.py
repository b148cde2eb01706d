"""A request's fields meet the deployment's (the environment's).

A request can tighten what the deployment protects, never loosen it: whoever may invoke the
function must not be able to switch off what its deployer set up. So the request's `pins`, pin
sources and `exclude_repositories` add to the environment's; a request's `false` or empty value
adds nothing; `min_age_hours` and `keep_pulled_within_days` may not go below the environment's
values (their floors); a `required_repository_tag` may be added, not changed or removed. Every
other field of a request replaces the environment's value: `max_deletions` in particular may be
raised for one invocation, the documented way past the circuit breaker. Without an environment
(the command line passes none) there are no floors beyond the absolute minimums.

`MERGE` gives each request field its rule; `within_deployment` checks what no single field's rule
can (fields that depend on each other or on what the deployment left unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..model import Scope
from .parse import deployed_flag, deployed_scope
from .types import InvalidSettings, Settings


def within_deployment(
    settings: Settings, request: Mapping[str, Any], environ: Mapping[str, str]
) -> Settings:
    """`settings`, merged field by field, checked where fields meet: a request may not read fewer
    EKS clusters than the deployment nor give retention rules to a real run, and a request that
    narrows the deployment's scope drops the deployment's retention."""
    if environ:
        _eks_not_narrowed(request, environ)
    if request.get("retention") and not settings.dry_run and environ:
        # Rules that expire tagged images loosen what the deployment protects: a request may
        # preview them in a dry run; real runs apply the deployment's RETENTION only. (The
        # command line reads no environment: its operator is the deployment.)
        raise InvalidSettings(
            "retention",
            "a request may give retention rules in a dry run only; a real run applies the "
            "deployment's (RETENTION)",
        )
    if (
        settings.retention
        and settings.scope is not Scope.ORPHANS
        and "scope" in request
        and "retention" not in request
        and deployed_scope(environ) is Scope.ORPHANS
    ):
        # A request narrowing the deployment's scope to attestations drops its rules: retention
        # only ever deletes more, so running without it deletes less, as narrowing promises.
        settings = replace(settings, retention=())
    return settings


def _eks_not_narrowed(request: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """Where the deployment reads every EKS cluster (no EKS_CLUSTERS) or skips none, a request
    may not name clusters to read only or to skip: either would read less."""
    reads_every_cluster = (
        deployed_flag(environ, "PIN_FROM_EKS") and not environ.get("EKS_CLUSTERS", "").strip()
    )
    if request.get("eks_clusters") and reads_every_cluster:
        raise InvalidSettings(
            "eks_clusters",
            "the deployment reads every EKS cluster (PIN_FROM_EKS, no EKS_CLUSTERS): a "
            "request may not read fewer",
        )
    if request.get("eks_skip_clusters") and not environ.get("EKS_SKIP_CLUSTERS", "").strip():
        raise InvalidSettings(
            "eks_skip_clusters",
            "a request may not leave out a cluster the deployment reads (EKS_SKIP_CLUSTERS is "
            "the deployment's)",
        )


# --- a request's value with the deployment's: (name, request's, environment's) -> value ---------


def _replace(name: str, asked: Any, deployed: Any) -> Any:
    return asked


def _still_dry(name: str, asked: bool, deployed: bool) -> bool:
    if deployed and not asked:
        raise InvalidSettings(
            name,
            "the deployment is a dry run (DRY_RUN=true): a request cannot make it delete; "
            "deploy with DryRun=false for real runs",
        )
    return asked


def _narrower_scope(name: str, asked: Scope, deployed: Scope) -> Scope:
    if deployed is Scope.ATTESTATIONS and asked is not Scope.ATTESTATIONS:
        raise InvalidSettings(
            name,
            f"the deployment's scope is {deployed.value!r} (SCOPE): a request may not widen it "
            f"to {asked.value!r}",
        )
    return asked


def _union(name: str, asked: tuple[Any, ...], deployed: tuple[Any, ...]) -> tuple[Any, ...]:
    """The deployment's entries, then the request's that are new."""
    return tuple(dict.fromkeys((*deployed, *asked)))


def _either(name: str, asked: bool, deployed: bool) -> bool:
    return asked or deployed


def _floor(name: str, asked: float, deployed: float) -> float:
    if asked < deployed:
        raise InvalidSettings(
            name,
            f"may not be below the deployment's {deployed:g} ({name.upper()}) in a request, "
            f"got {asked:g}",
        )
    return asked


def _same_or_added(name: str, asked: str, deployed: str) -> str:
    if asked and asked != deployed:
        raise InvalidSettings(
            name,
            f"the deployment requires {deployed!r} ({name.upper()}); a request cannot change it",
        )
    return deployed


def _no_more_skipped(
    name: str, asked: tuple[str, ...], deployed: tuple[str, ...]
) -> tuple[str, ...]:
    """A request may repeat the deployment's skipped clusters, not skip more."""
    more = [cluster for cluster in asked if cluster not in deployed]
    if more:
        raise InvalidSettings(
            name,
            f"{more[0]!r}: a request may not leave out a cluster the deployment reads "
            f"({name.upper()} is the deployment's)",
        )
    return deployed


# field -> how a request's value meets the environment's (see the module's docstring)
MERGE: dict[str, Any] = {
    "dry_run": _still_dry,
    "repositories": _replace,  # and the deployment's patterns still apply (within_repositories)
    "exclude_repositories": _union,
    "min_age_hours": _floor,
    "scope": _narrower_scope,
    "pins": _union,
    "keep_pulled_within_days": _floor,
    "max_deletions": _replace,
    "concurrency": _replace,
    "pin_parameter_path": _union,
    "pin_object_uris": _union,
    "pin_from_ecs": _either,
    "pin_from_lambda": _either,
    "pin_role_arns": _union,
    "pin_regions": _union,
    "pin_from_eks": _either,
    "eks_clusters": _union,
    "eks_skip_clusters": _no_more_skipped,
    "pin_from_inspector": _either,
    "required_repository_tag": _same_or_added,
    "retention": _replace,
    "audit_lifecycle_policies": _either,
}
