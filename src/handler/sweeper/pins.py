"""Digest pins from where they live: SSM Parameter Store, S3 objects, ECS and Lambda.

Production pulls by digest, so the sweeper reads those digests itself before it plans. Every
source has the same shape: a `name` (the key of the report's `pins` counts) and `read()`, which
returns every `sha256:<64 hex>` it finds as a `Pin` that says where it was found. A digest pins
that manifest in every repository.

Fail closed: a configured source that cannot be read completely (access denied, a missing path or
object, throttling beyond botocore's retries, a page that fails) raises `PinSourceError` naming
it, and the handler lets the invocation fail before anything is deleted. A partial read would
protect less than the source says, which is exactly how pinned images get deleted. So does a
source that yields no digest at all (an SSM path, an S3 object: a pipeline that truncated the file
must not unpin production), and an object whose text is neither UTF-8 nor UTF-16 with a byte
order mark (bytes read as something they are not could hide a digest).

This module is an edge, like registry.py: it receives boto3 clients (built by app.py with
`registry.client_config()`) and returns the core's `Pin`s. Every listing follows its paginator.
"""

from __future__ import annotations

import codecs
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .model import Pin, digests_in
from .settings import Settings

log = logging.getLogger("ecr_sweeper")

# What each source calls, and so the IAM it needs; tests/template/test_pin_iam.py compares these
# with the template's conditional policy statements.
SSM_ACTIONS = ("ssm:GetParametersByPath",)
SSM_KMS_ACTIONS = ("kms:Decrypt",)  # SecureString under a customer managed key, via SSM only
S3_ACTIONS = ("s3:GetObject",)
ECS_ACTIONS = (
    "ecs:DescribeTaskDefinition",
    "ecs:DescribeTasks",
    "ecs:ListClusters",
    "ecs:ListTaskDefinitions",
    "ecs:ListTasks",
)
LAMBDA_ACTIONS = (
    "lambda:GetFunction",
    "lambda:ListFunctions",
    "lambda:ListVersionsByFunction",
)
REQUIRED_IAM_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "ssm": tuple(sorted(SSM_ACTIONS + SSM_KMS_ACTIONS)),
    "s3": S3_ACTIONS,
    "ecs": ECS_ACTIONS,
    "lambda": LAMBDA_ACTIONS,
}

DESCRIBE_TASKS_BATCH = 100  # DescribeTasks takes at most 100 task ARNs
MAX_OBJECT_BYTES = 16 * 1024 * 1024  # a pin list larger than this is a mistake, not a pin list
DEFAULT_WORKERS = 8

_T = TypeVar("_T")
_R = TypeVar("_R")


class PinSourceError(Exception):
    """A configured pin source could not be read; `source` names it (e.g. `s3://bucket/key`)."""

    def __init__(self, source: str, message: str) -> None:
        text = message.rstrip(". ")
        super().__init__(f"pin source {source} cannot be read: {text}. Nothing was deleted.")
        self.source = source
        self.message = message


class PinSource(Protocol):
    """Where pins live. `read` returns every pin found, or raises PinSourceError."""

    @property
    def name(self) -> str: ...

    def read(self) -> list[Pin]: ...


def _error(source: str, operation: str, exc: Exception) -> PinSourceError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "ClientError")
        return PinSourceError(source, f"{operation}: {code}: {err.get('Message', '')}")
    return PinSourceError(source, f"{operation}: {type(exc).__name__}: {exc}")


def _pages(
    source: str, client: Any, operation: str, method: str, key: str, **kwargs: Any
) -> Iterator[Any]:
    """Every item under `key` of every page; any failure names the source."""
    try:
        for page in client.get_paginator(method).paginate(**kwargs):
            yield from page.get(key, [])
    except (ClientError, BotoCoreError) as exc:
        raise _error(source, operation, exc) from exc


def _parallel(workers: int, work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`work` over `items` on a few threads (boto3 clients are thread-safe); the first
    exception is re-raised, so one unreadable item fails the whole source."""
    if len(items) <= 1 or workers <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(work, items))


@dataclass(frozen=True, slots=True)
class StaticPins:
    """The `pins` setting (event or PINS): already parsed, nothing to read."""

    pins: tuple[Pin, ...]
    name: str = "setting"

    def read(self) -> list[Pin]:
        return list(self.pins)


def decode_text(data: bytes, source: str) -> str:
    """The text of a pin list: UTF-8 (with or without a byte order mark) or UTF-16 with one
    (what Windows PowerShell writes by default). Anything else raises PinSourceError naming
    `source`: bytes decoded as what they are not could hide a digest."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise PinSourceError(source, "UTF-32 text: save the pin list as UTF-8 (or UTF-16)")
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "UTF-8", data[len(codecs.BOM_UTF8) :]
    elif data.startswith(codecs.BOM_UTF16_LE):
        encoding, body = "UTF-16-LE", data[len(codecs.BOM_UTF16_LE) :]
    elif data.startswith(codecs.BOM_UTF16_BE):
        encoding, body = "UTF-16-BE", data[len(codecs.BOM_UTF16_BE) :]
    else:
        encoding, body = "UTF-8", data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PinSourceError(
            source,
            f"not {encoding} text (byte {exc.start} of the body): a pin list is UTF-8, or "
            "UTF-16 with a byte order mark",
        ) from None
    if "\x00" in text:
        # Valid UTF-8, but no text: UTF-16 without its byte order mark, most likely, where
        # every other byte is a NUL and no digest can be found.
        raise PinSourceError(
            source,
            f"NUL characters in {encoding} text (UTF-16 without a byte order mark?): a pin list "
            "is UTF-8, or UTF-16 with a byte order mark",
        )
    return text


class ParameterPins:
    """Every parameter under an SSM path, recursively, SecureStrings decrypted.

    An empty answer is an error: GetParametersByPath cannot tell a path with no parameter from a
    path that does not exist, and a misspelt path would silently protect nothing. So is a path
    whose parameters name no digest at all: what was meant to pin something pins nothing.
    """

    name = "ssm"

    def __init__(self, client: Any, path: str) -> None:
        self._client = client
        self.path = path

    def read(self) -> list[Pin]:
        source = f"ssm:{self.path}"
        pins: list[Pin] = []
        count = 0
        for parameter in _pages(
            source,
            self._client,
            "GetParametersByPath",
            "get_parameters_by_path",
            "Parameters",
            Path=self.path,
            Recursive=True,
            WithDecryption=True,
        ):
            count += 1
            name = parameter.get("Name", "")
            pins.extend(Pin(d, f"ssm:{name}") for d in digests_in(parameter.get("Value", "")))
        if not count:
            raise PinSourceError(source, "no parameter under this path (missing or misspelt?)")
        if not pins:
            raise PinSourceError(
                source, f"no sha256 digest in any of the {count} parameters under this path"
            )
        return pins


class ObjectPins:
    """The text of S3 objects, whatever its format (YAML, JSON, .env, a plain list), decoded as
    `decode_text` says. An object that names no digest at all is an error, naming it."""

    name = "s3"

    def __init__(self, client: Any, uris: Sequence[str]) -> None:
        self._client = client
        self.uris = tuple(uris)

    def read(self) -> list[Pin]:
        pins: list[Pin] = []
        for uri in self.uris:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            try:
                response = self._client.get_object(Bucket=bucket, Key=key)
                size = int(response.get("ContentLength") or 0)
                if size > MAX_OBJECT_BYTES:
                    response["Body"].close()
                    raise PinSourceError(
                        uri, f"{size} bytes, more than the {MAX_OBJECT_BYTES} a pin list may have"
                    )
                data = response["Body"].read()
            except (ClientError, BotoCoreError) as exc:
                raise _error(uri, "GetObject", exc) from exc
            found = digests_in(decode_text(data, uri))
            if not found:
                raise PinSourceError(uri, f"no sha256 digest in the object ({len(data)} bytes)")
            pins.extend(Pin(d, uri) for d in found)
        return pins


class EcsPins:
    """Digests ECS uses: images of ACTIVE task definitions that name a digest, and the
    `imageDigest` of every container of every running task in every cluster.

    A task started from `repo:tag` runs the digest the tag had then, which may be untagged now:
    only the task's own record says which one.
    """

    name = "ecs"

    def __init__(self, client: Any, workers: int = DEFAULT_WORKERS) -> None:
        self._client = client
        self.workers = workers

    def read(self) -> list[Pin]:
        return self._task_definitions() + self._running_tasks()

    def _task_definitions(self) -> list[Pin]:
        arns = list(
            _pages(
                "ecs",
                self._client,
                "ListTaskDefinitions",
                "list_task_definitions",
                "taskDefinitionArns",
                status="ACTIVE",
            )
        )
        return [
            pin for pins in _parallel(self.workers, self._task_definition, arns) for pin in pins
        ]

    def _task_definition(self, arn: str) -> list[Pin]:
        try:
            definition = self._client.describe_task_definition(taskDefinition=arn)
        except (ClientError, BotoCoreError) as exc:
            raise _error("ecs", f"DescribeTaskDefinition {arn}", exc) from exc
        task = definition.get("taskDefinition", {})
        where = f"ecs:task-definition/{task.get('family', '?')}:{task.get('revision', '?')}"
        return [
            Pin(digest, f"{where} container {container.get('name', '?')}")
            for container in task.get("containerDefinitions", [])
            for digest in digests_in(container.get("image", ""))
        ]

    def _running_tasks(self) -> list[Pin]:
        clusters = list(_pages("ecs", self._client, "ListClusters", "list_clusters", "clusterArns"))
        return [pin for pins in _parallel(self.workers, self._cluster, clusters) for pin in pins]

    def _cluster(self, cluster: str) -> list[Pin]:
        tasks = list(
            _pages(
                "ecs",
                self._client,
                f"ListTasks {cluster}",
                "list_tasks",
                "taskArns",
                cluster=cluster,
                desiredStatus="RUNNING",
            )
        )
        pins: list[Pin] = []
        for start in range(0, len(tasks), DESCRIBE_TASKS_BATCH):
            batch = tasks[start : start + DESCRIBE_TASKS_BATCH]
            try:
                response = self._client.describe_tasks(cluster=cluster, tasks=batch)
            except (ClientError, BotoCoreError) as exc:
                raise _error("ecs", f"DescribeTasks {cluster}", exc) from exc
            for failure in response.get("failures", []):
                # MISSING: the task stopped since it was listed, so it runs nothing any more.
                if failure.get("reason") != "MISSING":
                    raise PinSourceError(
                        "ecs",
                        f"DescribeTasks {cluster}: {failure.get('arn', '?')}: "
                        f"{failure.get('reason', '?')} {failure.get('detail', '')}".rstrip(),
                    )
            for task in response.get("tasks", []):
                for container in task.get("containers", []):
                    where = f"ecs:task/{task.get('taskArn', '?')} container {container.get('name')}"
                    # imageDigest once the image is pulled; a digest in the image reference
                    # also covers a container still pending whose task definition is inactive.
                    found = digests_in(container.get("imageDigest", ""))
                    found += digests_in(container.get("image", ""))
                    pins.extend(Pin(digest, where) for digest in dict.fromkeys(found))
        return pins


class LambdaPins:
    """The resolved image digest of every container-image function, for `$LATEST` and every
    published version (aliases point at versions, so they add nothing).

    Lambda resolves a tag to a digest when the code is deployed and keeps running that digest,
    even after the tag moves; only GetFunction's `ResolvedImageUri` says which one.
    """

    name = "lambda"

    def __init__(self, client: Any, workers: int = DEFAULT_WORKERS) -> None:
        self._client = client
        self.workers = workers

    def read(self) -> list[Pin]:
        functions = [
            f["FunctionName"]
            for f in _pages("lambda", self._client, "ListFunctions", "list_functions", "Functions")
            if f.get("PackageType") == "Image"
        ]
        return [pin for pins in _parallel(self.workers, self._function, functions) for pin in pins]

    def _function(self, name: str) -> list[Pin]:
        versions = [
            v["Version"]
            for v in _pages(
                "lambda",
                self._client,
                f"ListVersionsByFunction {name}",
                "list_versions_by_function",
                "Versions",
                FunctionName=name,
            )
        ]
        pins: list[Pin] = []
        for version in versions:
            try:
                code = self._client.get_function(FunctionName=name, Qualifier=version)["Code"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    continue  # deleted since it was listed: it runs nothing any more
                raise _error("lambda", f"GetFunction {name}:{version}", exc) from exc
            except BotoCoreError as exc:
                raise _error("lambda", f"GetFunction {name}:{version}", exc) from exc
            found = digests_in(code.get("ResolvedImageUri", ""))
            if not found:
                # An image function always has one; without it we cannot tell what runs.
                raise PinSourceError(
                    "lambda", f"GetFunction {name}:{version}: no digest in ResolvedImageUri"
                )
            pins.extend(Pin(digest, f"lambda:{name}:{version}") for digest in found)
        return pins


def sources(settings: Settings, client: Callable[[str], Any]) -> list[PinSource]:
    """The configured sources, in a fixed order; `client(service)` makes a boto3 client."""
    configured: list[PinSource] = []
    if settings.pins:
        configured.append(StaticPins(settings.pins))
    if settings.pin_parameter_path:
        ssm = client("ssm")
        configured.extend(ParameterPins(ssm, path) for path in settings.pin_parameter_path)
    if settings.pin_object_uris:
        configured.append(ObjectPins(client("s3"), settings.pin_object_uris))
    if settings.pin_from_ecs:
        configured.append(EcsPins(client("ecs"), workers=settings.concurrency))
    if settings.pin_from_lambda:
        configured.append(LambdaPins(client("lambda"), workers=settings.concurrency))
    return configured


def collect(pin_sources: Iterable[PinSource]) -> tuple[dict[str, Pin], dict[str, int]]:
    """Read every source: pins by digest (the first source naming a digest is its cause) and the
    number of distinct digests each source gave. Raises PinSourceError at the first source that
    cannot be read."""
    by_digest: dict[str, Pin] = {}
    by_name: dict[str, set[str]] = {}  # several sources of one name (SSM paths) count once
    for source in pin_sources:
        started = time.monotonic()
        pins = source.read()
        digests = {pin.digest for pin in pins}
        by_name.setdefault(source.name, set()).update(digests)
        for pin in pins:
            by_digest.setdefault(pin.digest, pin)
        log.info(
            "pin source",
            extra={
                "source": source.name,
                "pins": len(digests),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
    return by_digest, {name: len(digests) for name, digests in by_name.items()}
