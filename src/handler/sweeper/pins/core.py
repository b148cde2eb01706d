"""The core of the pin sources: the shape every source has, the error that fails a run closed,
reading every page of a listing, a bounded thread pool, and `collect`, which merges what the
sources found.

Every source has the same shape: a `name` (the key of the report's `pins` counts) and `read()`,
which returns every `sha256:<64 hex>` it finds as a `Pin` that says where it was found. A digest
pins that manifest in every repository.

Fail closed: a configured source that cannot be read completely (access denied, a missing path or
object, throttling beyond botocore's retries, a page that fails) raises `PinSourceError` naming
it, and the handler lets the invocation fail before anything is deleted. A partial read would
protect less than the source says, which is exactly how pinned images get deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from botocore.exceptions import BotoCoreError, ClientError

from ..model import HeldTag, Pin, tag_references

log = logging.getLogger("ecr_sweeper")

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


@runtime_checkable
class TagSource(Protocol):
    """A source that also finds image references by tag: `held` holds what its last `read`
    found (tags something runs by; see HeldTag)."""

    held: list[HeldTag]


def held_in(text: str, source: str) -> list[HeldTag]:
    """The ECR references by tag in a text, found at `source`."""
    return [HeldTag(host, repo, tag, source) for host, repo, tag in tag_references(text)]


def held_tags(
    pin_sources: Iterable[PinSource], account: str, region: str
) -> tuple[list[HeldTag], dict[str, int]]:
    """After `collect`: the tags the sources found that name a repository of this registry
    (`account`, `region`), and how many distinct repository:tag each source name gave."""
    found: list[HeldTag] = []
    by_name: dict[str, set[tuple[str, str]]] = {}
    for source in pin_sources:
        if not isinstance(source, TagSource):
            continue
        ours = [t for t in source.held if is_registry(t.registry, account, region)]
        found.extend(ours)
        if ours:
            by_name.setdefault(source.name, set()).update((t.repository, t.tag) for t in ours)
    return found, {name: len(tags) for name, tags in by_name.items()}


def is_registry(host: str, account: str, region: str) -> bool:
    """Whether `<account>.dkr.ecr.<region>.amazonaws.com` is this registry."""
    parts = host.split(".")
    return parts[0] == account and parts[3] == region


def error(source: str, operation: str, exc: Exception) -> PinSourceError:
    """The PinSourceError for a failed AWS call: the operation and AWS's error code."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "ClientError")
        return PinSourceError(source, f"{operation}: {code}: {err.get('Message', '')}")
    return PinSourceError(source, f"{operation}: {type(exc).__name__}: {exc}")


def pages(
    source: str, client: Any, operation: str, method: str, key: str, **kwargs: Any
) -> Iterator[Any]:
    """Every item under `key` of every page; any failure names the source."""
    try:
        for page in client.get_paginator(method).paginate(**kwargs):
            yield from page.get(key, [])
    except (ClientError, BotoCoreError) as exc:
        raise error(source, operation, exc) from exc


def parallel(workers: int, work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
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


def collect(
    pin_sources: Iterable[PinSource], workers: int = 1
) -> tuple[dict[str, Pin], dict[str, int]]:
    """Read every source: pins by digest (the first source naming a digest is its cause) and the
    number of distinct digests each source gave. Raises PinSourceError at the first source (in
    order) that cannot be read.

    `workers` > 1 reads that many sources at once (workload accounts, regions and clusters are
    independent reads); 1 reads them in order and stops at the first that fails."""
    ordered = list(pin_sources)
    by_digest: dict[str, Pin] = {}
    by_name: dict[str, set[str]] = {}  # several sources of one name (SSM paths) count once
    for source, pins in zip(ordered, parallel(workers, _timed, ordered), strict=True):
        digests = {pin.digest for pin in pins}
        by_name.setdefault(source.name, set()).update(digests)
        for pin in pins:
            by_digest.setdefault(pin.digest, pin)
    return by_digest, {name: len(digests) for name, digests in by_name.items()}


def _timed(source: PinSource) -> list[Pin]:
    started = time.monotonic()
    pins = source.read()
    log.info(
        "pin source",
        extra={
            "source": source.name,
            "pins": len({pin.digest for pin in pins}),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return pins
