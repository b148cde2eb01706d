"""One frozen Settings, from a request (event) and the environment (the deployment).

Every request field is optional; the environment variable of the same name in upper case gives its
default. A Scheduled Event envelope carries no request: then everything comes from the
environment. Anything wrong fails with `InvalidSettings` naming the field, before any AWS call.

A request can tighten what the deployment protects, never loosen it (`merge` has the rules).
The package: `types` (Settings, its limits and patterns), `parse` (each field's request and
environment parsers), `merge` (a request's fields with the deployment's), and `load` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import Scope
from .merge import MERGE, within_deployment
from .parse import DEPLOYMENT_FIELDS, FIELDS
from .types import (
    EKS_CLUSTER_PATTERN,
    MANIFEST_STORE_PATTERN,
    MAX_CONCURRENCY,
    MAX_DELETIONS_LIMIT,
    MAX_EKS_CLUSTERS,
    MAX_HOURS,
    MAX_PARAMETER_PATH,
    MAX_PARAMETER_PATHS,
    MAX_PATTERNS,
    MAX_PIN_OBJECTS,
    MAX_PIN_REGIONS,
    MAX_PIN_ROLES,
    MAX_PINS,
    MAX_RETENTION_POLICIES,
    MIN_AGE_HOURS,
    OBJECT_URI_PATTERN,
    PARAMETER_PATH_PATTERN,
    PRINCIPAL_PATTERN,
    REGION_PATTERN,
    REPOSITORY_ARN_PATTERN,
    REQUIRED_TAG_PATTERN,
    ROLE_ARN_PATTERN,
    InvalidSettings,
    Settings,
)

__all__ = [
    "DEPLOYMENT_FIELDS",
    "EKS_CLUSTER_PATTERN",
    "ENVIRONMENT_VARIABLES",
    "FIELDS",
    "MANIFEST_STORE_PATTERN",
    "MAX_CONCURRENCY",
    "MAX_DELETIONS_LIMIT",
    "MAX_EKS_CLUSTERS",
    "MAX_HOURS",
    "MAX_PARAMETER_PATH",
    "MAX_PARAMETER_PATHS",
    "MAX_PATTERNS",
    "MAX_PINS",
    "MAX_PIN_OBJECTS",
    "MAX_PIN_REGIONS",
    "MAX_PIN_ROLES",
    "MAX_RETENTION_POLICIES",
    "MERGE",
    "MIN_AGE_HOURS",
    "OBJECT_URI_PATTERN",
    "PARAMETER_PATH_PATTERN",
    "PRINCIPAL_PATTERN",
    "REGION_PATTERN",
    "REPOSITORY_ARN_PATTERN",
    "REQUIRED_TAG_PATTERN",
    "ROLE_ARN_PATTERN",
    "InvalidSettings",
    "Settings",
    "is_scheduled_event",
    "load",
]

# The names these tables had when settings was one module (tests on other branches import them).
_FIELDS = FIELDS
_MERGE = MERGE

# Every environment variable `load` reads (tests clear them all: none leaks in from a shell).
ENVIRONMENT_VARIABLES = tuple(name.upper() for name in (*FIELDS, *DEPLOYMENT_FIELDS))


def is_scheduled_event(event: Mapping[str, Any]) -> bool:
    return event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events"


def load(event: object, environ: Mapping[str, str]) -> Settings:
    """Settings for one invocation: `event` fields merged with the `environ` deployment's."""
    if event is None:
        event = {}
    if not isinstance(event, Mapping):
        raise InvalidSettings("event", f"must be a JSON object, got {type(event).__name__}")
    if is_scheduled_event(event):
        request: Mapping[str, Any] = {}
    else:
        unknown = sorted(set(event) - set(FIELDS))
        if unknown:
            raise InvalidSettings(unknown[0], f"unknown field (known: {', '.join(sorted(FIELDS))})")
        request = event
    values: dict[str, Any] = {}
    for name, (from_json, from_env) in FIELDS.items():
        variable = name.upper()
        deployed = (
            from_env(variable, environ[variable].strip())
            if environ.get(variable, "").strip()
            else None
        )
        if name not in request:
            if deployed is not None:
                values[name] = deployed
            continue
        asked = from_json(name, request[name])
        values[name] = asked if deployed is None else MERGE[name](name, asked, deployed)
        if name == "repositories" and deployed is not None:
            values["within_repositories"] = deployed  # a request narrows, never widens
    for name, parse in DEPLOYMENT_FIELDS.items():
        variable = name.upper()
        if environ.get(variable, "").strip():
            values[name] = parse(variable, environ[variable].strip())
    settings = within_deployment(Settings(**values), request, environ)
    if settings.retention and settings.scope is not Scope.ORPHANS:
        # An expired image is an index or an image: only scope orphans may delete those.
        raise InvalidSettings(
            "retention",
            f"needs scope {Scope.ORPHANS.value!r}, but scope is {settings.scope.value!r}: set "
            f'"scope": "{Scope.ORPHANS.value}" or leave retention out',
        )
    return settings
