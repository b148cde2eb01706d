"""A short path through moto for the high-volume ECR calls, for benchmarks at registry scale.

moto 5.2 spends about 1 ms of CPU on every call before and after the work itself (it matches
the URL against every service's patterns, parses the request through the botocore model, lists
the response class's methods with ``inspect``, runs its IAM check), then encodes the answer with
a generic model-driven serializer: about 0.25 ms more per ``imageDetail``. For a sweep of
100,000 manifests that is some 50 s of CPU, all of it the stand-in server's, and in one process
it competes with the code under test for the GIL. On the short path the same calls cost about
0.1 ms, plus about 0.02 ms per ``imageDetail``.

While :func:`fast_responses` is entered, ``DescribeImages``, ``BatchGetImage``,
``BatchDeleteImage`` and ``ListImages`` skip that machinery: the JSON request body goes straight
to the same ``ECRResponse`` methods (the harness's corrections in :mod:`harness.ecr`, or moto's
own where the harness leaves one alone, as for ``BatchDeleteImage``), and the result dictionary
is encoded with ``json.dumps`` in the JSON protocol's wire form (timestamps as epoch seconds
truncated to milliseconds). Whatever raises a moto error (a missing
repository, more than 100 ids, a missing id in ``DescribeImages``), and every other operation,
is answered by moto as usual; the short path raises before it changes anything in every such
case, so nothing is done twice. (moto checks IAM only when a test asks it to; the short path
never does.) ``tests/harness_tests/test_fast_responses.py`` checks that
botocore reads the same answers, and the same registry state, either way.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from unittest import mock

from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from moto.core.exceptions import JsonRESTError, ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.ecr.models import ECRBackend, ecr_backends
from moto.ecr.responses import ECRResponse

__all__ = ["FAST_OPERATIONS", "answer_request", "fast_responses", "to_wire"]

FAST_OPERATIONS = {
    "DescribeImages": "describe_images",
    "BatchGetImage": "batch_get_image",
    "BatchDeleteImage": "batch_delete_image",
    "ListImages": "list_images",
}
_PREFIX = "before-send.ecr."
_CONTENT_TYPE = "application/x-amz-json-1.1"  # ECR's JSON protocol version (jsonVersion 1.1)
_REGION = re.compile(r"^https?://api\.ecr\.([a-z0-9-]+)\.amazonaws\.com")


def _timestamp(value: datetime) -> int | float:
    # What moto's JSON serializer writes (Smithy: truncate to milliseconds).
    base = calendar.timegm(value.utctimetuple())
    return base + (value.microsecond // 1000) / 1000.0 if value.microsecond else base


def _encode(value: object) -> int | float:
    if isinstance(value, datetime):
        return _timestamp(value)
    raise TypeError(f"not a plain result value: {type(value).__name__}")


def to_wire(result: dict[str, Any]) -> str:
    """A result dictionary as the JSON protocol's body: datetimes as epoch seconds. (A ``None``
    member is written as ``null``, which botocore reads as absent, as moto's omission.)"""
    return json.dumps(result, separators=(",", ":"), default=_encode)


_ACCESS_KEY = re.compile(r"Credential=([^/]+)/")


class _Call:
    """What an ``ECRResponse`` method reads of itself: its backend, its request parameters, and
    who calls (the harness's pull times depend on it)."""

    def __init__(
        self, backend: ECRBackend, params: dict[str, Any], account: str, request: Any
    ) -> None:
        self.ecr_backend = backend
        self._params = params
        self.current_account = account
        self.region = backend.region_name
        self._request = request

    def get_access_key(self) -> str:
        authorization = self._request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        found = _ACCESS_KEY.search(authorization)
        return found.group(1) if found else ""

    def _get_param(self, name: str, if_none: Any = None) -> Any:
        value = self._params.get(name)
        return if_none if value is None else value


def answer_request(operation: str, request: Any) -> AWSResponse | None:
    """The short path's answer, or None to let moto answer (errors, unknown regions)."""
    found = _REGION.match(request.url)
    if found is None:
        return None
    account = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
    backend: ECRBackend = ecr_backends[account][found.group(1)]
    body = request.body
    params = json.loads(body) if body else {}
    method: Callable[[Any], ActionResult] = getattr(ECRResponse, FAST_OPERATIONS[operation])
    try:
        result = method(_Call(backend, params, account, request)).result
    except (ServiceException, JsonRESTError):
        return None  # moto raises it again and answers with the error, as ECR would
    if not isinstance(result, dict):
        return None
    payload = to_wire(result)
    headers = {"Content-Type": _CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())}
    return AWSResponse(request.url, 200, headers, MockRawResponse(payload))  # type: ignore[arg-type]


@contextmanager
def fast_responses() -> Iterator[None]:
    """Answer :data:`FAST_OPERATIONS` through the short path while entered."""
    original = BotocoreStubber.__call__

    def call(stubber: BotocoreStubber, event_name: str, request: Any, **kw: Any) -> Any:
        if stubber.enabled and event_name.startswith(_PREFIX):
            operation = event_name[len(_PREFIX) :]
            if operation in FAST_OPERATIONS:
                answer = answer_request(operation, request)
                if answer is not None:
                    return answer
        return original(stubber, event_name, request, **kw)

    with mock.patch.object(BotocoreStubber, "__call__", call):
        yield
