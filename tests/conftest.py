"""Shared fixtures: a corrected moto registry, a Lambda context, the handler called in-process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

import app
from harness import FakeRegistry
from harness.workloads import AwsEvents, Workloads, shared_botocore_loader

SETTINGS_ENV = (
    "DRY_RUN",
    "REPOSITORIES",
    "EXCLUDE_REPOSITORIES",
    "MIN_AGE_HOURS",
    "SCOPE",
    "PINS",
    "KEEP_PULLED_WITHIN_DAYS",
    "MAX_DELETIONS",
    "CONCURRENCY",
    "PIN_PARAMETER_PATH",
    "PIN_OBJECT_URIS",
    "PIN_FROM_ECS",
    "PIN_FROM_LAMBDA",
)
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=30)


@pytest.fixture(scope="session", autouse=True)
def _parse_botocore_models_once() -> Iterator[None]:
    """Speed only: moto gives every test a new boto3 session; let them share parsed models."""
    with shared_botocore_loader():
        yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's shell; every test talks to moto only."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EcrSweeper")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ecr-sweeper")


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with FakeRegistry(region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1")) as fake:
        yield fake


@pytest.fixture
def workloads(registry: FakeRegistry) -> Iterator[Workloads]:
    """SSM, S3, ECS and Lambda beside the registry (moto, corrected: harness.workloads)."""
    with Workloads(registry) as aws:
        yield aws


@pytest.fixture
def aws_events() -> Iterator[AwsEvents]:
    """botocore event handlers for the clients the handler creates; removed after the test."""
    with AwsEvents() as events:
        yield events


@dataclass
class LambdaContext:
    """What the handler reads of the real context (Powertools' examples use the same shape)."""

    function_name: str = "ecr-sweeper"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ecr-sweeper"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 900_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


Invoke = Callable[..., dict[str, Any]]


@pytest.fixture
def invoke(lambda_context: LambdaContext) -> Invoke:
    """Call the Lambda handler in-process with a request (keyword arguments) or a raw event."""

    def call(event: Any = None, **request: Any) -> dict[str, Any]:
        # Powertools keeps metric state at class level: start every invocation clean.
        app.metrics.clear_metrics()
        app.metrics.clear_default_dimensions()
        cold_start.is_cold_start = True
        payload = request if event is None else event
        result: dict[str, Any] = app.lambda_handler(payload, lambda_context)
        return result

    return call
