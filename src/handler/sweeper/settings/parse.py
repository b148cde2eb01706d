"""Parsing each field: a request's (JSON) value and its environment variable's (a string).

A parser takes (name, value) and returns the parsed value or raises `InvalidSettings(name, ...)`
naming the field (or the list entry) that is wrong. `FIELDS` gives each request field its two
parsers; `DEPLOYMENT_FIELDS` the settings only the environment gives.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from ..lifecycle import PolicyError, RetentionPolicy, parse_rules
from ..model import DIGEST_PATTERN, Pin, Scope, digests_in
from .types import (
    EKS_CLUSTER_PATTERN,
    MANIFEST_STORE_PATTERN,
    MAX_CONCURRENCY,
    MAX_DELETIONS_LIMIT,
    MAX_EKS_CLUSTERS,
    MAX_HOURS,
    MAX_JOURNAL_RETENTION_DAYS,
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
)

# Characters of an ECR repository name plus the glob metacharacters `* ? [ ] !`, matched in full
# (`$` alone would match before a final newline: "keep-*\n" would pass and match nothing).
_PATTERN = re.compile(r"[a-z0-9._/*?\[\]!-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# "sha256:" not followed by exactly 64 hex digits: a pin that was meant but is broken. Upper-case
# hex is a digest too (model.digests_in normalises it to lower case).
_BROKEN_DIGEST = re.compile(r"sha256:(?![0-9a-fA-F]{64}(?![0-9a-fA-F]))")
_SEPARATORS = re.compile(r"[\s,]+")
_PARAMETER_PATH = re.compile(PARAMETER_PATH_PATTERN)
_OBJECT_URI = re.compile(OBJECT_URI_PATTERN)
_REQUIRED_TAG = re.compile(REQUIRED_TAG_PATTERN)
_ROLE_ARN = re.compile(ROLE_ARN_PATTERN)
_REGION = re.compile(REGION_PATTERN)
_EKS_CLUSTER = re.compile(EKS_CLUSTER_PATTERN)
_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_MANIFEST_STORE = re.compile(MANIFEST_STORE_PATTERN)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        # `"false"` is the usual slip, and a truthy string: say it is a string, not a boolean.
        got = f"a string ({json.dumps(value)})" if isinstance(value, str) else repr(value)
        raise InvalidSettings(name, f"must be true or false (a JSON boolean), got {got}")
    return value


def _env_bool(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidSettings(name, f"must be true or false, got {value!r}")


def _number(name: str, value: object, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSettings(name, f"must be a number, got {value!r}")
    # The range first: an int past a float's range (10**400) compares, but does not convert.
    if isinstance(value, float) and math.isnan(value):
        raise InvalidSettings(name, f"must be a number, got {value!r}")
    if not 0 <= value <= maximum:
        raise InvalidSettings(name, f"must be between 0 and {maximum:g}, got {_shown(value)}")
    return float(value)


def _shown(value: float) -> str:
    """A number for an error message, however many digits it has."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"


def _integer(name: str, value: object, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettings(name, f"must be a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidSettings(name, f"must be between {minimum} and {maximum}, got {_shown(value)}")
    return value


def _env_number(parse: Any, name: str, value: str) -> Any:
    """A number variable, parsed by `parse` as its request field is (`FIELDS` binds `parse`
    with `partial`: a plain function, not a closure, so each call can be mutation-tested)."""
    try:
        number = float(value)
    except ValueError:
        raise InvalidSettings(name, f"must be a number, got {value!r}") from None
    return parse(name, int(number) if number.is_integer() else number)


def _hours(name: str, value: object) -> float:
    hours = _number(name, value, MAX_HOURS)
    if hours < MIN_AGE_HOURS:
        # buildx pushes an index's children before the index: with no grace period a child of an
        # in-flight push is an unreachable orphan, and goes.
        raise InvalidSettings(
            name,
            f"must be at least {MIN_AGE_HOURS:g} (children of an in-flight push arrive before "
            f"their index), got {value!r}",
        )
    return hours


def _days(name: str, value: object) -> float:
    return _number(name, value, MAX_HOURS / 24)


def _max_deletions(name: str, value: object) -> int:
    return _integer(name, value, 0, MAX_DELETIONS_LIMIT)


def _concurrency(name: str, value: object) -> int:
    return _integer(name, value, 1, MAX_CONCURRENCY)


def _scope(name: str, value: object) -> Scope:
    if not isinstance(value, str) or value not in {s.value for s in Scope}:
        choices = " or ".join(repr(s.value) for s in Scope)
        raise InvalidSettings(name, f"must be {choices}, got {value!r}")
    return Scope(value)


def _strings(name: str, value: object, limit: int) -> list[str]:
    if not isinstance(value, list):
        raise InvalidSettings(name, f"must be a list of strings, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidSettings(name, f"at most {limit} entries, got {len(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidSettings(f"{name}[{i}]", f"must be a string, got {item!r}")
    return value


def _patterns(name: str, value: object) -> tuple[str, ...]:
    patterns = _strings(name, value, MAX_PATTERNS)
    for i, pattern in enumerate(patterns):
        _check_pattern(f"{name}[{i}]", pattern)
    return tuple(patterns)


def _selection(name: str, value: object) -> tuple[str, ...]:
    """`repositories` of a request: a list of patterns, never an empty one. An empty list would
    mean every repository, which is never what a request that lists repositories meant (a
    coordinator's empty shard must not sweep the whole registry)."""
    patterns = _patterns(name, value)
    if not patterns:
        raise InvalidSettings(name, "an empty list: omit the field for every repository")
    return patterns


def _check_pattern(name: str, pattern: str) -> None:
    if not pattern or len(pattern) > 256:
        raise InvalidSettings(name, "a pattern has 1 to 256 characters")
    if _CONTROL.search(pattern):
        raise InvalidSettings(name, f"{pattern!r}: control characters are not allowed")
    if not _PATTERN.fullmatch(pattern):
        raise InvalidSettings(
            name, f"{pattern!r}: use lower-case repository names with the globs * ? [...]"
        )
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                raise InvalidSettings(name, f"{pattern!r}: nested '['")
            depth = 1
        elif char == "]":
            if not depth:
                raise InvalidSettings(name, f"{pattern!r}: ']' without '['")
            depth = 0
    if depth:
        raise InvalidSettings(name, f"{pattern!r}: unclosed '['")


def _pins(name: str, value: object) -> tuple[Pin, ...]:
    return _pin_strings(name, _strings(name, value, MAX_PINS), "event")


def _pin_strings(name: str, values: list[str], source: str) -> tuple[Pin, ...]:
    pins: list[Pin] = []
    for i, text in enumerate(values):
        broken = _BROKEN_DIGEST.search(text)
        found = digests_in(text)
        if broken or not found:
            raise InvalidSettings(
                f"{name}[{i}]", f"{text!r} does not contain a valid digest ({DIGEST_PATTERN})"
            )
        pins.extend(Pin(digest, f"{source}:{text}") for digest in found)
    return tuple(pins)


def _env_list(parse: Any, name: str, value: str) -> Any:
    """A list variable (separated by commas or white space), parsed by `parse` as its request
    field is (bound with `partial`, as `_env_number`)."""
    return parse(name, [item for item in _SEPARATORS.split(value) if item])


def _env_pins(name: str, value: str) -> tuple[Pin, ...]:
    items = [item for item in _SEPARATORS.split(value) if item]
    if len(items) > MAX_PINS:
        raise InvalidSettings(name, f"at most {MAX_PINS} entries, got {len(items)}")
    return _pin_strings(name, items, "env")


def _parameter_paths(name: str, value: object) -> tuple[str, ...]:
    """One SSM path (a string; "" for none) or a list of them."""
    if isinstance(value, str):
        return (_parameter_path(name, value),) if value else ()
    if not isinstance(value, list):
        raise InvalidSettings(name, f"must be a path (or a list of paths), got {value!r}")
    paths = _strings(name, value, MAX_PARAMETER_PATHS)
    return tuple(dict.fromkeys(_parameter_path(f"{name}[{i}]", p) for i, p in enumerate(paths)))


def _parameter_path(name: str, value: str) -> str:
    if _CONTROL.search(value):
        raise InvalidSettings(name, f"{value!r}: control characters are not allowed")
    if not value.startswith("/"):
        raise InvalidSettings(name, f"{value!r}: an SSM parameter path starts with '/'")
    if len(value) > MAX_PARAMETER_PATH:
        raise InvalidSettings(name, f"at most {MAX_PARAMETER_PATH} characters, got {len(value)}")
    if not _PARAMETER_PATH.fullmatch(value):
        raise InvalidSettings(
            name,
            f"{value!r}: use names of letters, digits, '_', '.' and '-' separated by '/', "
            "without a trailing '/'",
        )
    return value


def _object_uris(name: str, value: object) -> tuple[str, ...]:
    uris = _strings(name, value, MAX_PIN_OBJECTS)
    for i, uri in enumerate(uris):
        if not _OBJECT_URI.fullmatch(uri):
            raise InvalidSettings(
                f"{name}[{i}]",
                f"{uri!r} is not s3://bucket/key (a bucket name and an object key, without "
                "white space, commas, control characters or the wildcards * and ?)",
            )
    return tuple(uris)


def _role_arns(name: str, value: object) -> tuple[str, ...]:
    arns = _strings(name, value, MAX_PIN_ROLES)
    for i, arn in enumerate(arns):
        if not _ROLE_ARN.fullmatch(arn):
            raise InvalidSettings(
                f"{name}[{i}]",
                f"{arn!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>, "
                "no wildcards)",
            )
    return tuple(dict.fromkeys(arns))


def _regions(name: str, value: object) -> tuple[str, ...]:
    regions = _strings(name, value, MAX_PIN_REGIONS)
    for i, region in enumerate(regions):
        if not _REGION.fullmatch(region):
            raise InvalidSettings(f"{name}[{i}]", f"{region!r} is not an AWS region (eu-west-1)")
    return tuple(dict.fromkeys(regions))


def _clusters(name: str, value: object) -> tuple[str, ...]:
    clusters = _strings(name, value, MAX_EKS_CLUSTERS)
    for i, cluster in enumerate(clusters):
        if not _EKS_CLUSTER.fullmatch(cluster):
            raise InvalidSettings(
                f"{name}[{i}]",
                f"{cluster!r} is not an EKS cluster name (letters, digits, '-' and '_')",
            )
    return tuple(dict.fromkeys(clusters))


def _retention(name: str, value: object) -> tuple[RetentionPolicy, ...]:
    """A list of `{"repositories": [glob, ...], "rules": [ECR lifecycle rule, ...]}`."""
    if not isinstance(value, list):
        raise InvalidSettings(name, f"must be a list of policies, got {type(value).__name__}")
    if len(value) > MAX_RETENTION_POLICIES:
        raise InvalidSettings(name, f"at most {MAX_RETENTION_POLICIES} policies, got {len(value)}")
    policies: list[RetentionPolicy] = []
    for i, entry in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(entry, dict):
            raise InvalidSettings(
                where, f'must be an object {{"repositories": [...], "rules": [...]}}, got {entry!r}'
            )
        unknown = sorted(set(entry) - {"repositories", "rules"})
        if unknown:
            raise InvalidSettings(
                where, f"unknown field {unknown[0]!r} (known: repositories, rules)"
            )
        patterns = _patterns(f"{where}.repositories", entry.get("repositories", []))
        try:
            policy = parse_rules(entry.get("rules"), f"{where}.rules")
        except PolicyError as exc:
            raise InvalidSettings(exc.field, exc.message) from None
        policies.append(RetentionPolicy(policy, patterns))
    return tuple(policies)


def _env_retention(name: str, value: str) -> tuple[RetentionPolicy, ...]:
    try:
        document = json.loads(value)
    except ValueError as exc:
        raise InvalidSettings(name, f"must be JSON (a list of policies): {exc}") from None
    return _retention(name, document)


def _required_tag(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSettings(name, f"must be a string, got {value!r}")
    if value and not _REQUIRED_TAG.fullmatch(value):
        raise InvalidSettings(
            name,
            f"{value!r} is not key=value (letters, digits and _ . : / + @ -; a key not starting "
            "with 'aws:')",
        )
    return value


# field -> (request parser, environment parser)
FIELDS: dict[str, tuple[Any, Any]] = {
    "dry_run": (_bool, _env_bool),
    "repositories": (_selection, partial(_env_list, _patterns)),
    "exclude_repositories": (_patterns, partial(_env_list, _patterns)),
    "min_age_hours": (_hours, partial(_env_number, _hours)),
    "scope": (_scope, _scope),
    "pins": (_pins, _env_pins),
    "keep_pulled_within_days": (_days, partial(_env_number, _days)),
    "max_deletions": (_max_deletions, partial(_env_number, _max_deletions)),
    "concurrency": (_concurrency, partial(_env_number, _concurrency)),
    "pin_parameter_path": (_parameter_paths, _parameter_paths),
    "pin_object_uris": (_object_uris, partial(_env_list, _object_uris)),
    "pin_from_ecs": (_bool, _env_bool),
    "pin_from_lambda": (_bool, _env_bool),
    "pin_role_arns": (_role_arns, partial(_env_list, _role_arns)),
    "pin_regions": (_regions, partial(_env_list, _regions)),
    "pin_from_eks": (_bool, _env_bool),
    "eks_clusters": (_clusters, partial(_env_list, _clusters)),
    "eks_skip_clusters": (_clusters, partial(_env_list, _clusters)),
    "pin_from_inspector": (_bool, _env_bool),
    "required_repository_tag": (_required_tag, _required_tag),
    "retention": (_retention, _env_retention),
    "audit_lifecycle_policies": (_bool, _env_bool),
}


# Settings of the deployment alone: read from the environment, never from a request.
def _principal(name: str, value: str) -> str:
    if not _PRINCIPAL.fullmatch(value):
        raise InvalidSettings(
            name, f"{value!r} is not an IAM role or user ARN (arn:aws:iam::<account>:role/<name>)"
        )
    return value


def _repository_arn_pattern(name: str, value: str) -> str:
    if not re.fullmatch(REPOSITORY_ARN_PATTERN, value):
        raise InvalidSettings(
            name,
            f"{value!r} is not an ECR repository ARN with wildcards (* ?) only in the "
            "repository name",
        )
    return value


def _manifest_store(name: str, value: str) -> str:
    if value and not _MANIFEST_STORE.fullmatch(value):
        raise InvalidSettings(
            name,
            f"{value!r} is not s3://bucket or s3://bucket/prefix (no trailing '/', white space "
            "or wildcards)",
        )
    return value


def _journal_days(name: str, value: object) -> int:
    return _integer(name, value, 1, MAX_JOURNAL_RETENTION_DAYS)


DEPLOYMENT_FIELDS: dict[str, Any] = {
    "register_pull_time_exclusion": _env_bool,
    "sweeper_role_arn": _principal,
    "repository_arn_pattern": _repository_arn_pattern,
    # Where the journal of undo lives, and for how long: the deployment's (the stack's bucket).
    "manifest_store": _manifest_store,
    "journal_retention_days": partial(_env_number, _journal_days),
}


def deployed_scope(environ: Mapping[str, str]) -> Scope:
    """The deployment's SCOPE (the default, orphans, when it sets none)."""
    value = environ.get("SCOPE", "").strip()
    return _scope("SCOPE", value) if value else Scope.ORPHANS


def deployed_flag(environ: Mapping[str, str], variable: str) -> bool:
    """Whether the deployment's boolean `variable` is set and true."""
    return environ.get(variable, "").strip().lower() in _TRUE
