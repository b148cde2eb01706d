"""Pins from where they live: SSM, S3, ECS and Lambda, end to end through the handler.

Every scenario builds the same registry: a build whose tag moved on, leaving its index (and the
image and attestation it lists) untagged and old, so that an `orphans` run deletes the whole old
tree unless something pins it. Each source then pins the old index its own way; the assertions
are on what is left in the registry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.retries.bucket import TokenBucket
from botocore.retries.standard import ExponentialBackoff

from conftest import OLD, Builds, Invoke
from harness import FakeRegistry
from harness.workloads import AwsEvents, Workloads
from sweeper.pins import PinSourceError
from sweeper.run import NO_PIN_SOURCE, NO_PIN_SOURCE_WARNING

REPO = "app"


@pytest.fixture
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retries run for real (every attempt is made); only their waiting is skipped."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    monkeypatch.setattr(TokenBucket, "acquire", lambda self, amount=1, block=True: True)


@pytest.fixture
def records(invoke: Invoke) -> Iterator[list[logging.LogRecord]]:
    """The core's log records (the handler module, imported by `invoke`, sets the level)."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    logger = logging.getLogger("ecr_sweeper")
    handler = Keep()
    logger.addHandler(handler)
    yield kept
    logger.removeHandler(handler)


def planned(report: dict[str, Any]) -> set[str]:
    return {d["digest"] for d in report["deletions"]}


# --- each source protects what it pins -----------------------------------------------------------

# (workloads, registry, builds, environment) -> sets the source up and configures it in `env`.
Setup = Callable[[Workloads, FakeRegistry, Builds, dict[str, str]], None]


def ssm_secure_string(aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]) -> None:
    aws.put_parameter("/deploy/prod/web/tag", "latest")
    aws.put_parameter("/deploy/prod/web/image", aws.image_uri(REPO, b.old.index), secure=True)
    env["PIN_PARAMETER_PATH"] = "/deploy/prod"


def ssm_deep_json_parameter(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    config = {"services": [{"name": "api", "image": aws.image_uri(REPO, b.old.index)}]}
    aws.put_parameter("/deploy/prod/eu/api/config", json.dumps(config))
    env["PIN_PARAMETER_PATH"] = "/deploy"


def s3_yaml_deploy_config(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    # The tagged build, pinned by a second object: the old tree is pinned by the YAML only.
    aws.put_object("s3://deploy-configs/current.txt", f"{aws.image_uri(REPO, b.new.index)}\n")
    yaml = f"services:\n  web:\n    image: {aws.image_uri(REPO, b.old.index)}\n    replicas: 3\n"
    aws.put_object("s3://deploy-configs/prod/compose.yaml", yaml)
    env["PIN_OBJECT_URIS"] = "s3://deploy-configs/current.txt,s3://deploy-configs/prod/compose.yaml"


def s3_powershell_list_in_upper_case(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    # `"$uri" > pins.txt` in Windows PowerShell: UTF-16 LE with a byte order mark; and a digest
    # someone wrote in upper case. Both are the same pin.
    upper = "sha256:" + b.old.index.removeprefix("sha256:").upper()
    uri = aws.image_uri(REPO, b.old.index).replace(b.old.index, upper)
    aws.put_object("s3://deploy-configs/pins.txt", b"\xff\xfe" + f"{uri}\r\n".encode("utf-16-le"))
    env["PIN_OBJECT_URIS"] = "s3://deploy-configs/pins.txt"


def ecs_task_definition_by_digest(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    aws.register_task_definition("web", [aws.image_uri(REPO, b.old.index), "nginx:1"])
    env["PIN_FROM_ECS"] = "true"


def ecs_task_running_an_image_whose_tag_moved(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    # The task started while `latest` named the old index; the tag has moved since.
    reg.tag(REPO, "latest", b.old.index)
    definition = aws.register_task_definition("web", [aws.image_uri(REPO, "latest")])
    aws.run_task("prod", definition)
    reg.tag(REPO, "latest", b.new.index)
    env["PIN_FROM_ECS"] = "true"


def ecs_service_scaled_to_zero_whose_tag_moved(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    # Deployed while `latest` named the old index, scaled to zero, its task definition
    # deregistered and the tag moved: only the service revision says what it will start again.
    reg.tag(REPO, "latest", b.old.index)
    definition = aws.register_task_definition("web", [aws.image_uri(REPO, "latest")])
    aws.create_service("prod", "web", definition, desired=2)
    aws.update_service("prod", "web", desired=0)
    aws.deregister_task_definition(definition)
    reg.tag(REPO, "latest", b.new.index)
    env["PIN_FROM_ECS"] = "true"


def ecs_service_without_revisions_on_a_deregistered_task_definition(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    # A service not deployed since ECS records revisions: its task definition (INACTIVE now)
    # names the digest it will start.
    definition = aws.register_task_definition("web", [aws.image_uri(REPO, b.old.index)])
    aws.create_service("prod", "web", definition, desired=0)
    aws.deregister_task_definition(definition)
    aws.forget_service_revisions("prod", "web")
    env["PIN_FROM_ECS"] = "true"


def lambda_latest_deployed_from_a_tag_that_moved(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    reg.tag(REPO, "latest", b.old.index)
    aws.create_image_function("worker", aws.image_uri(REPO, "latest"), publish=False)
    reg.tag(REPO, "latest", b.new.index)
    env["PIN_FROM_LAMBDA"] = "true"


def lambda_published_version_behind_an_alias(
    aws: Workloads, reg: FakeRegistry, b: Builds, env: dict[str, str]
) -> None:
    # Version 1 runs the old index (an alias may point at it); $LATEST and version 2 the new.
    version = aws.create_image_function("worker", aws.image_uri(REPO, b.old.index))
    aws.client("lambda").create_alias(FunctionName="worker", Name="stable", FunctionVersion=version)
    aws.update_image_function("worker", aws.image_uri(REPO, b.new.index))
    aws.create_zip_function("zip-function")  # not an image: skipped
    env["PIN_FROM_LAMBDA"] = "true"


# scenario -> (setup, the report's pin counts)
SOURCES: dict[str, tuple[Setup, dict[str, int]]] = {
    "ssm-secure-string": (ssm_secure_string, {"ssm": 1}),
    "ssm-json-parameter-deep-in-the-path": (ssm_deep_json_parameter, {"ssm": 1}),
    "s3-yaml-deploy-config": (s3_yaml_deploy_config, {"s3": 2}),
    "s3-utf-16-list-in-upper-case": (s3_powershell_list_in_upper_case, {"s3": 1}),
    "ecs-task-definition-by-digest": (ecs_task_definition_by_digest, {"ecs": 1}),
    "ecs-running-task-whose-tag-moved": (ecs_task_running_an_image_whose_tag_moved, {"ecs": 1}),
    "ecs-service-scaled-to-zero": (ecs_service_scaled_to_zero_whose_tag_moved, {"ecs": 1}),
    "ecs-service-without-revisions": (
        ecs_service_without_revisions_on_a_deregistered_task_definition,
        {"ecs": 1},
    ),
    "lambda-latest-whose-tag-moved": (lambda_latest_deployed_from_a_tag_that_moved, {"lambda": 1}),
    # version 1 the old index, version 2 and $LATEST the new one
    "lambda-published-version": (lambda_published_version_behind_an_alias, {"lambda": 2}),
}


@pytest.mark.parametrize(("setup", "counts"), SOURCES.values(), ids=SOURCES.keys())
def test_source_pins_the_old_tree(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    setup: Setup,
    counts: dict[str, int],
) -> None:
    env: dict[str, str] = {}
    setup(workloads, registry, builds, env)
    # Not configured: the old tree would go (the dry run plans exactly what a real run deletes).
    assert builds.old.all <= planned(invoke(dry_run=True, scope="orphans"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == counts
    assert report["kept"]["pinned"] == 1
    assert report["complete"] is True


def test_sources_can_be_switched_on_by_the_request(
    registry: FakeRegistry, workloads: Workloads, builds: Builds, invoke: Invoke
) -> None:
    workloads.register_task_definition("web", [workloads.image_uri(REPO, builds.old.index)])
    report = invoke(dry_run=False, scope="orphans", pin_from_ecs=True)
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == {"ecs": 1}


def test_every_source_at_once_reports_its_own_count(
    registry: FakeRegistry,
    workloads: Workloads,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    records: list[logging.LogRecord],
) -> None:
    trees = [registry.push_buildx(REPO, tag="latest", pushed_at=OLD) for _ in range(6)]
    uri = [workloads.image_uri(REPO, tree.index) for tree in trees]
    workloads.put_parameter("/deploy/a", uri[0])
    workloads.put_parameter("/deploy/b", f"{uri[1]} {uri[0]}")  # a digest counts once
    workloads.put_object("s3://pins/list.txt", uri[2])
    workloads.register_task_definition("web", [uri[3]])
    workloads.create_image_function("worker", uri[4])
    monkeypatch.setenv("PIN_PARAMETER_PATH", "/deploy")
    monkeypatch.setenv("PIN_OBJECT_URIS", "s3://pins/list.txt")
    monkeypatch.setenv("PIN_FROM_ECS", "true")
    monkeypatch.setenv("PIN_FROM_LAMBDA", "true")
    report = invoke(dry_run=False, scope="orphans", pins=[trees[0].index])
    # trees[5] is tagged latest; every other tree is pinned by some source.
    assert registry.digests(REPO) == {d for tree in trees for d in tree.all}
    assert report["pins"] == {"setting": 1, "ssm": 2, "s3": 1, "ecs": 1, "lambda": 1}
    logged = {r.source: r.pins for r in records if r.getMessage() == "pin source"}  # type: ignore[attr-defined]
    assert logged == report["pins"]


# --- every page is read ---------------------------------------------------------------------------


def test_ssm_parameters_beyond_the_first_pages_pin(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
) -> None:
    for i in range(24):
        workloads.put_parameter(f"/deploy/service-{i:02}/image", workloads.image_uri(REPO, "v1"))
    workloads.put_parameter("/deploy/zz/image", workloads.image_uri(REPO, builds.old.index))
    aws_events.count("before-call.ssm.GetParametersByPath")
    report = invoke(dry_run=False, scope="orphans", pin_parameter_path="/deploy")
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == {"ssm": 1}
    assert aws_events.calls["before-call.ssm.GetParametersByPath"] == 3  # 25 parameters, 10 a page


def test_ecs_task_definitions_beyond_the_first_page_pin(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
) -> None:
    filler = workloads.image_uri(REPO, builds.new.index)
    for i in range(105):
        workloads.register_task_definition(f"batch-{i % 7}", [filler], fast=True)
    workloads.register_task_definition("zz-web", [workloads.image_uri(REPO, builds.old.index)])
    aws_events.count("before-call.ecs.ListTaskDefinitions")
    report = invoke(dry_run=False, scope="orphans", pin_from_ecs=True)
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == {"ecs": 2}
    assert aws_events.calls["before-call.ecs.ListTaskDefinitions"] == 2  # 106 definitions


def test_lambda_functions_and_versions_beyond_the_first_page_pin(
    registry: FakeRegistry,
    workloads: Workloads,
    invoke: Invoke,
    aws_events: AwsEvents,
) -> None:
    trees = [registry.push_buildx(REPO, tag="latest", pushed_at=OLD) for _ in range(3)]
    current = workloads.image_uri(REPO, "latest")
    for i in range(51):
        workloads.create_image_function(f"fn-{i:02}", current, publish=False)
    # Past the first page of functions: a function whose $LATEST runs trees[0].
    workloads.create_image_function("zz-late", workloads.image_uri(REPO, trees[0].index))
    # Past the first page of versions: a rollback to trees[1] published as version 55.
    workloads.create_image_function("many-versions", current)
    workloads.publish_versions("many-versions", [current] * 53)
    rollback = workloads.publish_versions(
        "many-versions", [workloads.image_uri(REPO, trees[1].index)]
    )
    workloads.update_image_function("many-versions", current, publish=False)
    assert rollback == ["55"]
    aws_events.count("before-call.lambda.ListFunctions")
    aws_events.count("before-call.lambda.ListVersionsByFunction")
    report = invoke(dry_run=False, scope="orphans", pin_from_lambda=True)
    assert registry.digests(REPO) == {d for tree in trees for d in tree.all}
    assert report["pins"] == {"lambda": 3}
    assert aws_events.calls["before-call.lambda.ListFunctions"] == 2  # 53 functions
    assert aws_events.calls["before-call.lambda.ListVersionsByFunction"] == 53 + 1  # 56 versions


# --- a source that cannot be read deletes nothing -------------------------------------------------


@dataclass(frozen=True)
class Failing:
    settings: dict[str, Any]
    source: str  # what the error must name
    fault: Callable[[Workloads, AwsEvents], None] = lambda aws, events: None


FAILURES: dict[str, Failing] = {
    "ssm-access-denied": Failing(
        {"pin_parameter_path": "/deploy"},
        "ssm:/deploy",
        lambda aws, ev: ev.fail("ssm", "GetParametersByPath", "AccessDeniedException"),
    ),
    "ssm-missing-path": Failing({"pin_parameter_path": "/deploy/typo"}, "ssm:/deploy/typo"),
    "ssm-second-page-fails": Failing(
        {"pin_parameter_path": "/deploy"},
        "ssm:/deploy",
        lambda aws, ev: ev.fail(
            "ssm", "GetParametersByPath", "AccessDeniedException", when=lambda n: n == 2
        ),
    ),
    "ssm-throttled-beyond-retries": Failing(
        {"pin_parameter_path": "/deploy"},
        "ssm:/deploy",
        lambda aws, ev: ev.fail("ssm", "GetParametersByPath", "ThrottlingException"),
    ),
    "s3-missing-object": Failing(
        {"pin_object_uris": ["s3://deploy-configs/pins.txt", "s3://deploy-configs/missing.yaml"]},
        "s3://deploy-configs/missing.yaml",
    ),
    "s3-missing-bucket": Failing(
        {"pin_object_uris": ["s3://no-such-bucket/pins"]}, "s3://no-such-bucket/pins"
    ),
    "s3-access-denied": Failing(
        {"pin_object_uris": ["s3://deploy-configs/pins.txt"]},
        "s3://deploy-configs/pins.txt",
        lambda aws, ev: ev.fail("s3", "GetObject", "AccessDenied", status=403),
    ),
    # Read, but pinning nothing: a truncated pin list must not unpin production.
    "ssm-path-without-any-digest": Failing(
        {"pin_parameter_path": "/deploy/batch"}, "ssm:/deploy/batch"
    ),
    "s3-object-truncated-to-nothing": Failing(
        {"pin_object_uris": ["s3://deploy-configs/pins.txt", "s3://deploy-configs/empty.txt"]},
        "s3://deploy-configs/empty.txt",
        lambda aws, ev: aws.put_object("s3://deploy-configs/empty.txt", ""),
    ),
    "s3-object-in-latin-1": Failing(
        {"pin_object_uris": ["s3://deploy-configs/latin-1.txt"]},
        "s3://deploy-configs/latin-1.txt",
        lambda aws, ev: aws.put_object(
            "s3://deploy-configs/latin-1.txt",
            f"# d\xe9ploiement\napp@sha256:{'0' * 64}\n".encode("latin-1"),
        ),
    ),
    "ecs-access-denied": Failing(
        {"pin_from_ecs": True},
        "ecs",
        lambda aws, ev: ev.fail("ecs", "DescribeTaskDefinition", "AccessDeniedException"),
    ),
    "ecs-tasks-throttled-beyond-retries": Failing(
        {"pin_from_ecs": True},
        "ecs",
        lambda aws, ev: ev.fail("ecs", "ListTasks", "ThrottlingException"),
    ),
    "lambda-access-denied": Failing(
        {"pin_from_lambda": True},
        "lambda",
        lambda aws, ev: ev.fail("lambda", "ListFunctions", "AccessDeniedException", status=403),
    ),
    "lambda-one-version-unreadable": Failing(
        {"pin_from_lambda": True},
        "lambda",
        lambda aws, ev: ev.fail(
            "lambda", "GetFunction", "AccessDeniedException", status=403, when=lambda n: n == 2
        ),
    ),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.usefixtures("no_retry_wait")
def test_unreadable_source_fails_the_invocation_and_deletes_nothing(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
    case: Failing,
) -> None:
    workloads.put_parameter("/deploy/web", "nothing pinned")
    for i in range(12):
        workloads.put_parameter(f"/deploy/batch/{i:02}", "nothing pinned")
    workloads.put_object("s3://deploy-configs/pins.txt", f"app@sha256:{'0' * 64}")
    definition = workloads.register_task_definition("web", [workloads.image_uri(REPO, "latest")])
    workloads.run_task("prod", definition)
    workloads.create_image_function("worker", workloads.image_uri(REPO, "latest"))
    case.fault(workloads, aws_events)
    before = registry.digests(REPO)
    with pytest.raises(PinSourceError) as raised:
        invoke(dry_run=False, scope="orphans", **case.settings)
    assert raised.value.source == case.source
    assert case.source in str(raised.value)
    assert "Nothing was deleted" in str(raised.value)
    assert registry.digests(REPO) == before
    assert registry.tags(REPO) == {"latest": builds.new.index}


@pytest.mark.usefixtures("no_retry_wait")
def test_throttling_is_retried_before_the_source_counts_as_unreadable(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
) -> None:
    workloads.put_parameter("/deploy/web", workloads.image_uri(REPO, builds.old.index))
    aws_events.fail("ssm", "GetParametersByPath", "ThrottlingException", when=lambda n: n <= 3)
    aws_events.count("before-send.ssm.GetParametersByPath")
    report = invoke(dry_run=False, scope="orphans", pin_parameter_path="/deploy")
    assert aws_events.calls["before-send.ssm.GetParametersByPath"] == 4
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == {"ssm": 1}


def test_a_dry_run_with_an_unreadable_source_fails_too(
    registry: FakeRegistry, workloads: Workloads, builds: Builds, invoke: Invoke
) -> None:
    # A plan without the pins would list pinned manifests as deletions: no report at all.
    with pytest.raises(PinSourceError, match="ssm:/nothing"):
        invoke(dry_run=True, scope="orphans", pin_parameter_path="/nothing")


# --- no pin source at all -------------------------------------------------------------------

# scenario -> (request, environment, warned)
UNPROTECTED: dict[str, tuple[dict[str, Any], dict[str, str], bool]] = {
    "a-real-run-with-no-pin-source-warns": ({"dry_run": False}, {}, True),
    "a-dry-run-does-not": ({"dry_run": True}, {}, False),
    "a-pins-setting-is-a-source": ({"dry_run": False}, {"PINS": f"app@sha256:{'e' * 64}"}, False),
    "ssm-is-a-source": ({"dry_run": False}, {"PIN_PARAMETER_PATH": "/deploy"}, False),
    "a-request-switching-ecs-on": ({"dry_run": False, "pin_from_ecs": True}, {}, False),
}


@pytest.mark.parametrize(
    ("request_", "environment", "warned"), UNPROTECTED.values(), ids=list(UNPROTECTED)
)
def test_a_deleting_run_without_any_pin_source_says_what_is_unprotected(
    builds: Builds,
    workloads: Workloads,
    registry: FakeRegistry,
    invoke: Invoke,
    records: list[logging.LogRecord],
    monkeypatch: pytest.MonkeyPatch,
    request_: dict[str, Any],
    environment: dict[str, str],
    warned: bool,
) -> None:
    workloads.put_parameter("/deploy/web", f"app@{builds.old.index}")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    report = invoke(scope="orphans", **request_)
    assert report["warnings"] == ([NO_PIN_SOURCE_WARNING] if warned else [])
    logged = [r for r in records if getattr(r, "warning", None) == NO_PIN_SOURCE]
    assert [(r.levelname, r.getMessage()) for r in logged] == (
        [("WARNING", NO_PIN_SOURCE_WARNING)] if warned else []
    )
    # A warning, not a refusal: the run deletes what its settings say.
    gone = not request_["dry_run"] and not environment.get("PIN_PARAMETER_PATH")
    assert registry.digests(REPO) == (builds.new.all if gone else builds.old.all | builds.new.all)
