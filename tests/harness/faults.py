"""Faults where real ones happen: on the wire between an ECR client and ECR (here, moto).

moto answers botocore's requests from a ``before-send`` handler that stands for the network and
ECR. :class:`Wire` takes its place on the ECR clients the code under test creates: every HTTP
attempt passes through it, is counted, and is either forwarded to moto or answered with a fault.
So the client's own retry machinery (adaptive mode, retry quota, back-off), its error parsing,
and the sweeper's handling of what finally comes out all run for real. (botocore's ``Stubber``
would skip the retry handlers; a hook registered *next to* moto's would let moto carry out a
request that the hook then reports as throttled.)

    wire = Wire(Inject("BatchDeleteImage", Throttle(), attempts={1}))
    with intercept_clients(wire), fast_retries():
        invoke(dry_run=False)
    wire.calls["BatchDeleteImage"], wire.faults

Faults (each decided per HTTP attempt by the first matching :class:`Inject` rule):

- :class:`Throttle`: 400 ``ThrottlingException``; the request never reached ECR.
- :class:`ServerError`: a 5xx (``ServerException``); the request never reached ECR.
- :class:`LostResponse`: ECR carried the request out, and its answer was lost (then a 500).
- :class:`Crash`: the Lambda dies here (:class:`Killed`); every later attempt, from any thread,
  dies too, so nothing after this point reaches ECR.

Per-item answers of ``BatchDeleteImage`` are ECR's own, not wire faults: :func:`refuse_deletes`
makes the backend answer chosen digests with a failure code.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
import botocore.endpoint
import botocore.retries.bucket
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber
from moto.ecr.models import ECRBackend

__all__ = [
    "Attempt",
    "Crash",
    "Inject",
    "Killed",
    "LostResponse",
    "ServerError",
    "Throttle",
    "Wire",
    "fast_retries",
    "intercept_clients",
    "refuse_deletes",
    "throttle_storm",
]

MUTATING_OPERATIONS = frozenset(
    {
        "BatchDeleteImage",
        "PutImage",
        "DeleteRepository",
        "CreateRepository",
        "PutLifecyclePolicy",
        "DeleteLifecyclePolicy",
        "SetRepositoryPolicy",
        "DeleteRepositoryPolicy",
        "PutImageTagMutability",
        "UpdateImageStorageClass",
        "TagResource",
        "UntagResource",
    }
)


class Killed(BaseException):
    """The Lambda was killed mid-run (timeout, out of memory, a deployment).

    A BaseException, so that no ``except Exception`` in botocore or the sweeper can swallow it:
    like a real kill, it ends the run wherever it happens.
    """


# --- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    code: str = "ThrottlingException"


@dataclass(frozen=True)
class ServerError:
    status: int = 500
    code: str = "ServerException"


@dataclass(frozen=True)
class LostResponse:
    status: int = 500


@dataclass(frozen=True)
class Crash:
    pass


Fault = Throttle | ServerError | LostResponse | Crash


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, as the wire sees it."""

    operation: str  # "BatchDeleteImage"
    params: Mapping[str, Any]  # the JSON request
    number: int  # 1 for the first attempt of a call, 2 for its first retry, ...
    call: int  # this call's rank among the calls of `operation` on this wire (1-based)

    @property
    def repository(self) -> str | None:
        name = self.params.get("repositoryName")
        return name if isinstance(name, str) else None

    @property
    def digests(self) -> list[str]:
        return [i.get("imageDigest", "") for i in self.params.get("imageIds") or ()]


@dataclass(frozen=True)
class Inject:
    """A rule: `fault` on the attempts that match every given condition.

    ``calls`` and ``attempts`` are 1-based ranks (see :class:`Attempt`); ``when`` is any further
    test on the attempt. Conditions left as None match everything.
    """

    operation: str
    fault: Fault
    repository: str | None = None
    calls: Collection[int] | None = None
    attempts: Collection[int] | None = None
    when: Callable[[Attempt], bool] | None = None

    def matches(self, attempt: Attempt) -> bool:
        return (
            attempt.operation == self.operation
            and (self.repository is None or attempt.repository == self.repository)
            and (self.calls is None or attempt.call in self.calls)
            and (self.attempts is None or attempt.number in self.attempts)
            and (self.when is None or self.when(attempt))
        )


def throttle_storm(share: int = 3, longest: int = 4) -> Callable[[Attempt], Fault | None]:
    """Throttle about one attempt in `share`, on every operation, the same ones on every run.

    Whether an attempt is throttled depends only on its request and attempt number (a hash), not
    on thread timing, so a storm is reproducible whatever the concurrency. At most `longest`
    attempts of one call in a row are throttled (botocore is configured for more), so every
    call gets through in the end, as it does in a real storm that the retries ride out.
    """

    def rule(attempt: Attempt) -> Fault | None:
        if attempt.number > longest:
            return None
        key = json.dumps([attempt.operation, attempt.params, attempt.number], sort_keys=True)
        return Throttle() if hashlib.sha256(key.encode()).digest()[0] % share == 0 else None

    return rule


Rule = Inject | Callable[[Attempt], Fault | None]


# --- the wire ----------------------------------------------------------------------------------


class Wire:
    """Counts and faults for the ECR clients it is attached to (thread-safe).

    ``calls`` counts logical calls (one per page, as ``before-call`` sees them), ``attempts``
    HTTP attempts (retries included), ``sent`` the attempts that reached ECR (moto), ``faults``
    what was injected (``"<Operation>:<Fault>"``).
    ``on_attempt`` runs for every attempt that goes out (e.g. to let Lambda time pass).
    """

    def __init__(self, *rules: Rule, on_attempt: Callable[[Attempt], None] | None = None) -> None:
        self.rules: list[Rule] = list(rules)
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.log: list[Attempt] = []
        self.on_attempt = on_attempt
        self.dead = False
        self._ranks: dict[str, int] = {}  # invocation id -> rank among its operation's calls
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def mutating_calls(self) -> int:
        return sum(n for op, n in self.calls.items() if op in MUTATING_OPERATIONS)

    def attach(self, client: Any) -> None:
        """Put the wire between `client` and moto (only this client: its events are its own)."""
        events = client.meta.events
        events.unregister("before-send", botocore_stubber)
        events.register("before-call.ecr", self._count_call)
        events.register("before-send.ecr", self._send)

    def _count_call(self, model: Any, **_: Any) -> None:
        with self._lock:
            if self.dead:
                raise Killed("the Lambda is gone")
            self.calls[model.name] += 1

    def _send(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        invocation = _header(request, "amz-sdk-invocation-id")
        match = re.search(r"attempt=(\d+)", _header(request, "amz-sdk-request"))
        number = int(match.group(1)) if match else 1
        params = json.loads(request.body or b"{}")
        with self._lock:
            if self.dead:
                raise Killed("the Lambda is gone")
            self.attempts[operation] += 1
            if invocation not in self._ranks:
                self._counts[operation] += 1
                self._ranks[invocation] = self._counts[operation]
            attempt = Attempt(operation, params, number, self._ranks[invocation])
            self.log.append(attempt)
            fault = self._fault(attempt)
            if fault is not None:
                self.faults[f"{operation}:{type(fault).__name__}"] += 1
            if isinstance(fault, Crash):
                self.dead = True
                raise Killed(f"killed at {operation} call {attempt.call}")
        if self.on_attempt is not None:
            self.on_attempt(attempt)
        if isinstance(fault, Throttle):
            return _answer(request, 400, {"__type": fault.code, "message": "Rate exceeded"})
        if isinstance(fault, ServerError):
            return _answer(request, fault.status, {"__type": fault.code, "message": "injected"})
        response = self._forward(request, event_name, operation)
        if isinstance(fault, LostResponse):
            return _answer(request, fault.status, {"__type": "ServerException", "message": "lost"})
        return response

    def _forward(self, request: Any, event_name: str, operation: str) -> AWSResponse:
        with self._lock:
            self.sent[operation] += 1
        return _forward(request, event_name)

    def _fault(self, attempt: Attempt) -> Fault | None:
        for rule in self.rules:
            if isinstance(rule, Inject):
                if rule.matches(attempt):
                    return rule.fault
            elif (fault := rule(attempt)) is not None:
                return fault
        return None


def _header(request: Any, name: str) -> str:
    value = request.headers.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _forward(request: Any, event_name: str) -> AWSResponse:
    response = botocore_stubber(event_name, request)
    if response is None:
        # Never fall through to the network: the tests must only ever talk to moto.
        raise RuntimeError("moto is not active; refusing to send a real request")
    return response


def _answer(request: Any, status: int, body: Mapping[str, Any]) -> AWSResponse:
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "fault"}
    return AWSResponse(request.url, status, headers, MockRawResponse(json.dumps(body)))  # type: ignore[arg-type]


@contextmanager
def intercept_clients(wire: Wire) -> Iterator[Wire]:
    """Attach `wire` to every ECR client made through ``boto3.client`` meanwhile (app.py's)."""
    original = boto3.client

    def client(*args: Any, **kwargs: Any) -> Any:
        made = original(*args, **kwargs)
        if made.meta.service_model.service_name == "ecr":
            wire.attach(made)
        return made

    with mock.patch.object(boto3, "client", client):
        yield wire


# --- time in botocore's retry machinery --------------------------------------------------------


class _Sleeps:
    """Stands in for the ``time`` module in botocore.endpoint, whose only use is the back-off."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds


class _VirtualClock(botocore.retries.bucket.Clock):
    """An hour passes at every reading: adaptive mode's token bucket is always refilled."""

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()

    def sleep(self, amount: float) -> None:
        pass

    def current_time(self) -> float:
        with self._lock:
            self._now += 3600.0
            return self._now


@contextmanager
def fast_retries() -> Iterator[_Sleeps]:
    """botocore's retries as configured (adaptive mode, 10 retries), without waiting for real.

    The back-off delays botocore computes are added up instead of slept (the yielded object's
    ``seconds``), and adaptive mode's client-side rate limiter, which would otherwise hold a
    throttled client to about one request per two seconds, never blocks. Applies to clients
    created meanwhile.
    """
    sleeps = _Sleeps()
    with (
        mock.patch.object(botocore.endpoint, "time", sleeps),
        mock.patch.object(botocore.retries.bucket, "Clock", _VirtualClock),
    ):
        yield sleeps


# --- per-item answers of BatchDeleteImage -------------------------------------------------------


@contextmanager
def refuse_deletes(codes: Mapping[str, str]) -> Iterator[None]:
    """While active, ECR answers ``BatchDeleteImage`` for these digests with these failure codes.

    A refused image is not deleted, as with ECR (``KmsError``, ``ImageReferencedByManifestList``
    ...). ``ImageNotFound`` is modelled as it happens: someone else deletes the image just
    before the call, which then answers ``ImageNotFound`` by itself. Enter it inside the
    FakeRegistry (it wraps the harness's corrected backend).
    """
    original = ECRBackend.batch_delete_image

    def batch_delete_image(
        self: ECRBackend,
        repository_name: str,
        registry_id: str | None = None,
        image_ids: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        ids = image_ids or []
        gone = [i for i in ids if codes.get(i.get("imageDigest", "")) == "ImageNotFound"]
        if gone:
            original(self, repository_name, registry_id, gone)  # another actor's delete
        refused = [i for i in ids if i not in gone and i.get("imageDigest", "") in codes]
        passed = [i for i in ids if i not in refused]
        answer: dict[str, Any] = (
            original(self, repository_name, registry_id, passed)
            if passed
            else {"imageIds": [], "failures": []}
        )
        answer["failures"] = list(answer["failures"]) + [
            {
                "imageId": dict(i),
                "failureCode": codes[i["imageDigest"]],
                "failureReason": "injected by refuse_deletes",
            }
            for i in refused
        ]
        return answer

    with mock.patch.object(ECRBackend, "batch_delete_image", batch_delete_image):
        yield
