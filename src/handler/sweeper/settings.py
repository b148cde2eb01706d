"""One frozen Settings, from a request (event) and the environment (the deployment).

Every request field is optional; the environment variable of the same name in upper case gives its
default. A Scheduled Event envelope carries no request: then everything comes from the
environment. Anything wrong fails with `InvalidSettings` naming the field, before any AWS call.

A request can tighten what the deployment protects, never loosen it: whoever may invoke the
function must not be able to switch off what its deployer set up. So the request's `pins`, pin
sources and `exclude_repositories` add to the environment's; a request's `false` or empty value
adds nothing; `min_age_hours` and `keep_pulled_within_days` may not go below the environment's
values (their floors); a `required_repository_tag` may be added, not changed or removed. Every
other field of a request replaces the environment's value: `max_deletions` in particular may be
raised for one invocation, the documented way past the circuit breaker. Without an environment
(the command line passes none) there are no floors beyond the absolute minimums.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from .lifecycle import PolicyError, RetentionPolicy, parse_rules
from .model import DIGEST_PATTERN, Pin, Scope, digests_in
from .plan import Policy

MAX_PATTERNS = 100
MAX_PINS = 10_000
MAX_HOURS = 24 * 365 * 10  # ten years: anything larger is a typo, not a policy
MAX_DELETIONS_LIMIT = 1_000_000
MAX_CONCURRENCY = 64
MAX_PIN_OBJECTS = 50  # each becomes an object ARN in the function's policy (10 KiB per role)
MAX_PARAMETER_PATH = 2048  # SSM's limit on a parameter name
MAX_RETENTION_POLICIES = 100
MAX_PARAMETER_PATHS = 10  # SSM pin paths of one invocation (the deployment's and a request's)
MAX_PIN_ROLES = 50  # each becomes a role ARN in the function's policy (10 KiB per role)
MAX_PIN_REGIONS = 30
MAX_EKS_CLUSTERS = 100
MIN_AGE_HOURS = 1.0  # buildx pushes children before their index: a younger child may be in flight

# Characters of an ECR repository name plus the glob metacharacters `* ? [ ] !`, matched in full
# (`$` alone would match before a final newline: "keep-*\n" would pass and match nothing).
_PATTERN = re.compile(r"[a-z0-9._/*?\[\]!-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# "sha256:" not followed by exactly 64 hex digits: a pin that was meant but is broken. Upper-case
# hex is a digest too (model.digests_in normalises it to lower case).
_BROKEN_DIGEST = re.compile(r"sha256:(?![0-9a-fA-F]{64}(?![0-9a-fA-F]))")
_SEPARATORS = re.compile(r"[\s,]+")
# An SSM hierarchy: "/" then names of letters, digits and _ . - separated by "/", no trailing "/".
# The template's PinParameterPath AllowedPattern is the same expression (a template test checks).
PARAMETER_PATH_PATTERN = r"^(/[a-zA-Z0-9_.-]+)+$"
_PARAMETER_PATH = re.compile(PARAMETER_PATH_PATTERN)
# s3://bucket/key: a bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)
# and a non-empty key without commas or white space (the environment variable is a list), without
# control characters, and without `*` or `?`: the template turns each URI into the object ARN the
# function may read, where they are IAM wildcards (`s3://bucket/*` would grant the whole bucket).
OBJECT_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^,\s*?\x00-\x1f\x7f]+$"
_OBJECT_URI = re.compile(OBJECT_URI_PATTERN)
# key=value of a repository tag that opts a repository in (see sweeper.opt_in): letters, digits
# and _ . : / + @ - (no "=", no white space, no quotes: the template writes both into an IAM
# condition); the key may not start with "aws:", which AWS reserves. The template's
# RequiredRepositoryTag AllowedPattern is the same expression (a template test checks).
REQUIRED_TAG_PATTERN = r"^(?!aws:)[A-Za-z0-9_.:/+@-]{1,128}=[A-Za-z0-9_.:/+@-]{1,256}$"
_REQUIRED_TAG = re.compile(REQUIRED_TAG_PATTERN)
# s3://bucket or s3://bucket/prefix: the manifest store (sweeper.store.S3_URI_PATTERN).
MANIFEST_STORE_PATTERN = (
    r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s*?\x00-\x1f\x7f]*[^/\s*?\x00-\x1f\x7f])?$"
)
_MANIFEST_STORE = re.compile(MANIFEST_STORE_PATTERN)
MAX_JOURNAL_RETENTION_DAYS = 3650
# The template's RepositoryArnPattern AllowedPattern, but for the empty string (a test checks).
REPOSITORY_ARN_PATTERN = r"^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9._/*?-]+$"
# An IAM role to assume in a workload account (sweeper.pins.places): no wildcards, since the
# template grants sts:AssumeRole on exactly these ARNs. The template's PinRoleArns
# AllowedPattern is this expression, comma-separated (a template test checks).
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=.@_/-]{1,512}$"
_ROLE_ARN = re.compile(ROLE_ARN_PATTERN)
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
_REGION = re.compile(REGION_PATTERN)
# An EKS cluster name: letters, digits, '-' and '_', starting with a letter or digit, at most 100.
EKS_CLUSTER_PATTERN = r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"
_EKS_CLUSTER = re.compile(EKS_CLUSTER_PATTERN)
# An IAM role or user ARN, the only principals ECR takes as pull-time update exclusions (its API's
# pattern; a role's ARN includes its path).
PRINCIPAL_PATTERN = r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$"
_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
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
    # The deployment's patterns when a request gave its own: a repository must match both.
    within_repositories: tuple[str, ...] = ()
    exclude_repositories: tuple[str, ...] = ()
    min_age_hours: float = 72.0
    scope: Scope = Scope.ORPHANS
    pins: tuple[Pin, ...] = ()
    keep_pulled_within_days: float = 30.0
    max_deletions: int = 5000
    concurrency: int = 8
    # Pin sources (sweeper.pins); each is off unless configured.
    pin_parameter_path: tuple[str, ...] = ()  # SSM hierarchies, each read recursively
    pin_object_uris: tuple[str, ...] = ()  # s3://bucket/key objects
    pin_from_ecs: bool = False
    pin_from_lambda: bool = False
    # Workload accounts and regions (sweeper.pins.places): every source that reads AWS (SSM,
    # ECS, Lambda) reads the function's own account and each role's account, in the function's
    # own region and each of these.
    pin_role_arns: tuple[str, ...] = ()
    pin_regions: tuple[str, ...] = ()
    # Kubernetes on EKS (sweeper.pins.eks): pods and workloads of every cluster of every (account,
    # region), or only those named; `eks_skip_clusters` leaves named clusters out knowingly.
    pin_from_eks: bool = False
    eks_clusters: tuple[str, ...] = ()
    eks_skip_clusters: tuple[str, ...] = ()
    # Amazon Inspector's coverage (enhanced scanning): ECR images it shows in use (sweeper.pins).
    pin_from_inspector: bool = False
    # Retention (sweeper.lifecycle): ECR lifecycle rules the sweeper applies, pin-aware; the
    # first entry whose repository patterns match a repository applies to it. Needs scope orphans.
    retention: tuple[RetentionPolicy, ...] = ()
    # Read each swept repository's own ECR lifecycle policy and report what it will expire that
    # is pinned, recently pulled or tagged with a tag its rule does not select.
    audit_lifecycle_policies: bool = True
    # "key=value": only repositories carrying this tag are swept (sweeper.opt_in); "" means all.
    required_repository_tag: str = ""
    # s3://bucket[/prefix] of the manifest store (sweeper.store); "" means none. The command
    # also takes a local directory (its own flag, --manifest-store).
    manifest_store: str = ""
    # Days the journal keeps what a run deleted, the bytes with it (the bucket's lifecycle rule).
    journal_retention_days: int = 30
    # The deployment's RepositoryArnPattern (environment only, never a request): the function's
    # IAM grants cover these repositories alone, so the run sweeps only them; "" means all.
    repository_arn_pattern: str = ""
    # The deployment's alone (REGISTER_PULL_TIME_EXCLUSION; no request field): register the
    # function's role as an ECR pull-time update exclusion when a run finds it missing
    # (sweeper.run.exclusion). Off for a registry whose exclusions are managed elsewhere.
    register_pull_time_exclusion: bool = True
    # The deployment's alone (SWEEPER_ROLE_ARN): the function's role, the principal its reads are
    # made as, which the template passes in ("" when not known: the exclusion is then unknown).
    sweeper_role_arn: str = ""

    @property
    def policy(self) -> Policy:
        return Policy(
            scope=self.scope,
            min_age=timedelta(hours=self.min_age_hours),
            keep_pulled_within=timedelta(days=self.keep_pulled_within_days),
        )

    @property
    def granted_repositories(self) -> str:
        """The repository-name glob of `repository_arn_pattern` (IAM's `*` and `?`, which
        fnmatch reads the same way, `*` crossing `/`), "*" when there is none."""
        return self.repository_arn_pattern.partition(":repository/")[2] or "*"

    @property
    def required_tag(self) -> tuple[str, str] | None:
        """The (key, value) a repository must be tagged with to be swept, if any."""
        if not self.required_repository_tag:
            return None
        key, _, value = self.required_repository_tag.partition("=")
        return key, value


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
        unknown = sorted(set(event) - set(_FIELDS))
        if unknown:
            raise InvalidSettings(
                unknown[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})"
            )
        request = event
    values: dict[str, Any] = {}
    for name, (from_json, from_env) in _FIELDS.items():
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
        values[name] = asked if deployed is None else _MERGE[name](name, asked, deployed)
        if name == "repositories" and deployed is not None:
            values["within_repositories"] = deployed  # a request narrows, never widens
    for name, parse in _DEPLOYMENT_FIELDS.items():
        variable = name.upper()
        if environ.get(variable, "").strip():
            values[name] = parse(variable, environ[variable].strip())
    settings = Settings(**values)
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
        and _deployed_scope(environ) is Scope.ORPHANS
    ):
        # A request narrowing the deployment's scope to attestations drops its rules: retention
        # only ever deletes more, so running without it deletes less, as narrowing promises.
        settings = replace(settings, retention=())
    if settings.retention and settings.scope is not Scope.ORPHANS:
        # An expired image is an index or an image: only scope orphans may delete those.
        raise InvalidSettings(
            "retention",
            f"needs scope {Scope.ORPHANS.value!r}, but scope is {settings.scope.value!r}: set "
            f'"scope": "{Scope.ORPHANS.value}" or leave retention out',
        )
    return settings


def _deployed_scope(environ: Mapping[str, str]) -> Scope:
    value = environ.get("SCOPE", "").strip()
    return _scope("SCOPE", value) if value else Scope.ORPHANS


def _eks_not_narrowed(request: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """Where the deployment reads every EKS cluster (no EKS_CLUSTERS) or skips none, a request
    may not name clusters to read only or to skip: either would read less."""
    reads_every_cluster = (
        environ.get("PIN_FROM_EKS", "").strip().lower() in _TRUE
        and not environ.get("EKS_CLUSTERS", "").strip()
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


# --- field parsers: (name, value) -> parsed value, raising InvalidSettings(name, ...) -------------


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


def _env_number(parse: Any) -> Any:
    def convert(name: str, value: str) -> Any:
        try:
            number = float(value)
        except ValueError:
            raise InvalidSettings(name, f"must be a number, got {value!r}") from None
        return parse(name, int(number) if number.is_integer() else number)

    return convert


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


def _env_list(parse: Any) -> Any:
    def convert(name: str, value: str) -> Any:
        return parse(name, [item for item in _SEPARATORS.split(value) if item])

    return convert


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


def _manifest_store(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSettings(name, f"must be a string, got {value!r}")
    if value and not _MANIFEST_STORE.fullmatch(value):
        raise InvalidSettings(
            name,
            f"{value!r} is not s3://bucket or s3://bucket/prefix (no trailing '/', white space "
            "or wildcards)",
        )
    return value


def _journal_days(name: str, value: object) -> int:
    return _integer(name, value, 1, MAX_JOURNAL_RETENTION_DAYS)


# field -> (request parser, environment parser)
_FIELDS: dict[str, tuple[Any, Any]] = {
    "dry_run": (_bool, _env_bool),
    "repositories": (_selection, _env_list(_patterns)),
    "exclude_repositories": (_patterns, _env_list(_patterns)),
    "min_age_hours": (_hours, _env_number(_hours)),
    "scope": (_scope, _scope),
    "pins": (_pins, _env_pins),
    "keep_pulled_within_days": (_days, _env_number(_days)),
    "max_deletions": (_max_deletions, _env_number(_max_deletions)),
    "concurrency": (_concurrency, _env_number(_concurrency)),
    "pin_parameter_path": (_parameter_paths, _parameter_paths),
    "pin_object_uris": (_object_uris, _env_list(_object_uris)),
    "pin_from_ecs": (_bool, _env_bool),
    "pin_from_lambda": (_bool, _env_bool),
    "pin_role_arns": (_role_arns, _env_list(_role_arns)),
    "pin_regions": (_regions, _env_list(_regions)),
    "pin_from_eks": (_bool, _env_bool),
    "eks_clusters": (_clusters, _env_list(_clusters)),
    "eks_skip_clusters": (_clusters, _env_list(_clusters)),
    "pin_from_inspector": (_bool, _env_bool),
    "required_repository_tag": (_required_tag, _required_tag),
    "retention": (_retention, _env_retention),
    "audit_lifecycle_policies": (_bool, _env_bool),
}

# field -> how a request's value meets the environment's (see the module's docstring)
_MERGE: dict[str, Any] = {
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


_DEPLOYMENT_FIELDS: dict[str, Any] = {
    "register_pull_time_exclusion": _env_bool,
    "sweeper_role_arn": _principal,
    "repository_arn_pattern": _repository_arn_pattern,
    # Where the journal of undo lives, and for how long: the deployment's (the stack's bucket).
    "manifest_store": _manifest_store,
    "journal_retention_days": _env_number(_journal_days),
}

# Every environment variable `load` reads (tests clear them all: none leaks in from a shell).
ENVIRONMENT_VARIABLES = tuple(name.upper() for name in (*_FIELDS, *_DEPLOYMENT_FIELDS))
