"""One frozen Settings, from a request (event) over environment defaults.

Every request field is optional; the environment variable of the same name in upper case gives its
default. A Scheduled Event envelope carries no request: then everything comes from the
environment. Anything wrong fails with `InvalidSettings` naming the field, before any AWS call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .model import DIGEST_PATTERN, Pin, Scope, digests_in
from .plan import Policy

MAX_PATTERNS = 100
MAX_PINS = 10_000
MAX_HOURS = 24 * 365 * 10  # ten years: anything larger is a typo, not a policy
MAX_DELETIONS_LIMIT = 1_000_000
MAX_CONCURRENCY = 64
MAX_PIN_OBJECTS = 50  # each becomes an object ARN in the function's policy (10 KiB per role)
MAX_PARAMETER_PATH = 2048  # SSM's limit on a parameter name

# Characters of an ECR repository name plus the glob metacharacters `* ? [ ] !`.
_PATTERN = re.compile(r"^[a-z0-9._/*?\[\]!-]+$")
# "sha256:" not followed by exactly 64 lower-case hex digits: a pin that was meant but is broken.
_BROKEN_DIGEST = re.compile(r"sha256:(?![0-9a-f]{64}(?![0-9a-fA-F]))")
_SEPARATORS = re.compile(r"[\s,]+")
# An SSM hierarchy: "/" then names of letters, digits and _ . - separated by "/", no trailing "/".
# The template's PinParameterPath AllowedPattern is the same expression (a template test checks).
PARAMETER_PATH_PATTERN = r"^(/[a-zA-Z0-9_.-]+)+$"
_PARAMETER_PATH = re.compile(PARAMETER_PATH_PATTERN)
# s3://bucket/key: a bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)
# and a non-empty key without commas or white space (the environment variable is a list).
OBJECT_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^,\s]+$"
_OBJECT_URI = re.compile(OBJECT_URI_PATTERN)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class InvalidSettings(ValueError):
    """A request field or environment variable is wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Settings:
    dry_run: bool = True
    repositories: tuple[str, ...] = ()  # glob patterns; empty means every repository
    exclude_repositories: tuple[str, ...] = ()
    min_age_hours: float = 72.0
    scope: Scope = Scope.ORPHANS
    pins: tuple[Pin, ...] = ()
    keep_pulled_within_days: float = 30.0
    max_deletions: int = 5000
    concurrency: int = 8
    # Pin sources (sweeper.pins); each is off unless configured.
    pin_parameter_path: str = ""  # SSM hierarchy read recursively; empty means none
    pin_object_uris: tuple[str, ...] = ()  # s3://bucket/key objects
    pin_from_ecs: bool = False
    pin_from_lambda: bool = False

    @property
    def policy(self) -> Policy:
        return Policy(
            scope=self.scope,
            min_age=timedelta(hours=self.min_age_hours),
            keep_pulled_within=timedelta(days=self.keep_pulled_within_days),
        )


def is_scheduled_event(event: Mapping[str, Any]) -> bool:
    return event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events"


def load(event: object, environ: Mapping[str, str]) -> Settings:
    """Settings for one invocation: `event` fields over `environ` defaults."""
    if event is None:
        event = {}
    if not isinstance(event, Mapping):
        raise InvalidSettings("event", f"must be a JSON object, got {type(event).__name__}")
    if is_scheduled_event(event):
        request: Mapping[str, Any] = {}
    else:
        unknown = sorted(set(event) - set(_FIELDS))
        if unknown:
            raise InvalidSettings(
                unknown[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})"
            )
        request = event
    values: dict[str, Any] = {}
    for name, (from_json, from_env) in _FIELDS.items():
        if name in request:
            values[name] = from_json(name, request[name])
        elif environ.get(name.upper(), "").strip():
            values[name] = from_env(name.upper(), environ[name.upper()].strip())
    return Settings(**values)


# --- field parsers: (name, value) -> parsed value, raising InvalidSettings(name, ...) -------------


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidSettings(name, f"must be true or false, got {value!r}")
    return value


def _env_bool(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidSettings(name, f"must be true or false, got {value!r}")


def _number(name: str, value: object, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidSettings(name, f"must be a number, got {value!r}")
    if not 0 <= value <= maximum:
        raise InvalidSettings(name, f"must be between 0 and {maximum:g}, got {value!r}")
    return float(value)


def _integer(name: str, value: object, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettings(name, f"must be a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidSettings(name, f"must be between {minimum} and {maximum}, got {value!r}")
    return value


def _env_number(parse: Any) -> Any:
    def convert(name: str, value: str) -> Any:
        try:
            number = float(value)
        except ValueError:
            raise InvalidSettings(name, f"must be a number, got {value!r}") from None
        return parse(name, int(number) if number.is_integer() else number)

    return convert


def _hours(name: str, value: object) -> float:
    return _number(name, value, MAX_HOURS)


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


def _check_pattern(name: str, pattern: str) -> None:
    if not pattern or len(pattern) > 256:
        raise InvalidSettings(name, "a pattern has 1 to 256 characters")
    if not _PATTERN.match(pattern):
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


def _env_list(parse: Any) -> Any:
    def convert(name: str, value: str) -> Any:
        return parse(name, [item for item in _SEPARATORS.split(value) if item])

    return convert


def _env_pins(name: str, value: str) -> tuple[Pin, ...]:
    items = [item for item in _SEPARATORS.split(value) if item]
    if len(items) > MAX_PINS:
        raise InvalidSettings(name, f"at most {MAX_PINS} entries, got {len(items)}")
    return _pin_strings(name, items, "env")


def _parameter_path(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSettings(name, f"must be a string, got {value!r}")
    if not value:
        return value  # no SSM pin source
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
                f"{name}[{i}]", f"{uri!r} is not s3://bucket/key (a bucket name and an object key)"
            )
    return tuple(uris)


_FIELDS: dict[str, tuple[Any, Any]] = {
    "dry_run": (_bool, _env_bool),
    "repositories": (_patterns, _env_list(_patterns)),
    "exclude_repositories": (_patterns, _env_list(_patterns)),
    "min_age_hours": (_hours, _env_number(_hours)),
    "scope": (_scope, _scope),
    "pins": (_pins, _env_pins),
    "keep_pulled_within_days": (_days, _env_number(_days)),
    "max_deletions": (_max_deletions, _env_number(_max_deletions)),
    "concurrency": (_concurrency, _env_number(_concurrency)),
    "pin_parameter_path": (_parameter_path, _parameter_path),
    "pin_object_uris": (_object_uris, _env_list(_object_uris)),
    "pin_from_ecs": (_bool, _env_bool),
    "pin_from_lambda": (_bool, _env_bool),
}
