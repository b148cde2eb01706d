"""A new FakeRegistry per hypothesis example, without a new botocore session each time.

Fixtures are set up once per test function, not per hypothesis example, so property tests enter
a fresh :class:`FakeRegistry` (fresh moto state) inside every example. Entering one normally costs
0.3-1 s: moto swaps ``boto3.DEFAULT_SESSION`` for a new session, and a new session parses
botocore's endpoint and service data again. :func:`fresh_registry` uses moto's own
``reset_boto3_session: False`` setting and hands it one session that lives for the whole process;
moto's state is still reset, because each entry starts the outermost mock again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import boto3
from moto.core.config import default_user_config
from moto.core.models import MockAWS

from .ecr import FakeRegistry

__all__ = ["fresh_registry"]

_sessions: list[boto3.Session] = []  # at most one
_lock = threading.Lock()


def _shared_session() -> boto3.Session:
    # Created after moto is imported, so moto's request stubber is among its handlers.
    with _lock:
        if not _sessions:
            _sessions.append(boto3.Session())
        return _sessions[0]


@contextmanager
def fresh_registry(**kwargs: Any) -> Iterator[FakeRegistry]:
    """Enter a new FakeRegistry (``kwargs`` as for FakeRegistry) on the shared boto3 session."""
    if MockAWS._nested_count:
        # Inside another mock, moto would not reset its state: the registry would not be fresh.
        raise RuntimeError("fresh_registry() must not run inside another moto mock")
    with (
        mock.patch.dict(default_user_config["core"], {"reset_boto3_session": False}),
        mock.patch.object(boto3, "DEFAULT_SESSION", _shared_session()),
        FakeRegistry(**kwargs) as registry,
    ):
        yield registry
