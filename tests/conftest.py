"""Shared fixtures: a corrected moto registry, a Lambda context, the handler called in-process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from freezegun import freeze_time
from hypothesis import HealthCheck, settings
from moto.core.models import DEFAULT_ACCOUNT_ID

import app
from harness import BuildxPush, FakeRegistry
from harness.ecr import MOTO_USER
from harness.fresh import fresh_registry
from harness.workloads import AwsEvents, Workloads, shared_botocore_loader
from sweeper.settings import ENVIRONMENT_VARIABLES

# Every variable settings.load reads, from the settings code itself: a new setting cannot be
# forgotten here.
SETTINGS_ENV = ENVIRONMENT_VARIABLES
# The principal the suite's credentials call ECR as (harness.ecr: moto's stand-in user), standing
# in for the function's role: SWEEPER_ROLE_ARN names it, as the template names the role, so a
# run finds itself among the pull-time update exclusions as a deployed one does.
FUNCTION_PRINCIPAL = MOTO_USER.format(account=DEFAULT_ACCOUNT_ID)

# What would point boto3 somewhere else than moto, or at other credentials.
_AWS_ELSEWHERE = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ECR",
)
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=30)

# Property tests (tests/property, tests/faults): "ci" keeps `make test` fast and reproducible;
# `make soak` runs the same tests with "soak" (HYPOTHESIS_PROFILE=soak) for many more examples.
# No deadline and no too_slow check: an example drives the handler against moto several times.
_PROFILE: dict[str, Any] = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=30, derandomize=True, database=None, **_PROFILE)
settings.register_profile("soak", max_examples=1000, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_SHIFTED: list[Any] = []  # the shifted clock of `make test-tomorrow`, while it runs


def pytest_collection_finish(session: pytest.Session) -> None:
    """`SWEEPER_TEST_DAYS_AHEAD=N`: run the suite as of N days from now (`make test-tomorrow`).

    The clock is moved after collection, and keeps ticking, so a test that captured the date at
    import time and one that reads it while running see different days, as a suite started just
    before midnight would: nothing a test checks may depend on the date.
    """
    days = os.environ.get("SWEEPER_TEST_DAYS_AHEAD")
    if days:
        _SHIFTED.append(freeze_time(datetime.now(UTC) + timedelta(days=int(days)), tick=True))
        _SHIFTED[-1].start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _SHIFTED:  # before the interpreter shuts down, or its exit hooks find time half-patched
        _SHIFTED.pop().stop()


@pytest.fixture(scope="session", autouse=True)
def _parse_botocore_models_once() -> Iterator[None]:
    """Speed only: moto gives every test a new boto3 session; let them share parsed models."""
    with shared_botocore_loader():
        yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the developer's shell; every test talks to moto only; the
    command's default manifest store is the test's own, never the developer's cache."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in _AWS_ELSEWHERE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SWEEPER_ROLE_ARN", FUNCTION_PRINCIPAL)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Nor from ~/.aws: a profile's endpoint_url or credential_process is not moto's.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EcrSweeper")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ecr-sweeper")


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    # A fresh moto state per test, on one botocore session for the whole run (see harness.fresh).
    with fresh_registry(region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1")) as fake:
        yield fake


@pytest.fixture
def sealed() -> Iterator[FakeRegistry]:
    """A registry whose ECR refuses archived manifests (BatchGetImage: ImageNotFound)."""
    with fresh_registry(
        archived_manifests_readable=False, archived_manifest_failure="ImageNotFound"
    ) as fake:
        yield fake


def archived_history(registry: FakeRegistry, repository: str) -> dict[str, BuildxPush]:
    """An orphan build pushed before an archived (orphan) index, one after it, and `latest`."""
    before = registry.push_buildx(repository, tag=None, pushed_at=OLD - timedelta(days=3))
    archived = registry.push_buildx(repository, tag=None, pushed_at=OLD - timedelta(days=2))
    registry.set_archived(repository, archived.index)
    after = registry.push_buildx(repository, tag=None, pushed_at=OLD)
    kept = registry.push_buildx(repository, tag="latest", pushed_at=OLD)
    return {"before": before, "archived": archived, "after": after, "kept": kept}


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
    step_ms: int = 0  # time each reading uses up: time passes while the function works
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def get_remaining_time_in_millis(self) -> int:
        with self._lock:
            remaining = self.remaining_ms
            self.remaining_ms -= self.step_ms
            return remaining

    def spend(self, ms: int) -> None:
        """Let `ms` of the invocation's time pass (e.g. per ECR call, from a wire hook)."""
        with self._lock:
            self.remaining_ms -= ms


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


@dataclass(frozen=True)
class Builds:
    """`latest` pushed twice a month ago by buildx: the first tree is an untagged orphan."""

    old: BuildxPush  # untagged since the tag moved: three deletions in orphans scope
    new: BuildxPush  # tagged latest


@pytest.fixture
def builds(registry: FakeRegistry) -> Builds:
    old = registry.push_buildx("app", tag="latest", pushed_at=OLD)
    new = registry.push_buildx("app", tag="latest", pushed_at=OLD)
    return Builds(old, new)
