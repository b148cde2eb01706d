"""sweeper.pins: each source read on its own (moto, corrected by harness.workloads), and collect."""

from __future__ import annotations

import base64
import codecs
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from moto.core.models import DEFAULT_ACCOUNT_ID as ACCOUNT

from harness import FakeRegistry, oci
from harness.kubernetes import KubernetesApi, pod
from harness.lambda_output import recorded
from harness.workloads import AwsEvents, InspectorCoverage, Workloads
from sweeper import pins
from sweeper.clock import use_clock
from sweeper.model import HeldTag, Pin
from sweeper.pins import (
    EcsPins,
    EksPins,
    InspectorPins,
    LambdaPins,
    ObjectPins,
    ParameterPins,
    PinSourceError,
    StaticPins,
    collect,
    core,
)
from sweeper.settings import load

A, B, C = ("sha256:" + x * 64 for x in "abc")
REPO = "app"


@pytest.fixture
def aws() -> Iterator[Workloads]:
    with FakeRegistry() as registry, Workloads(registry) as workloads:
        yield workloads


def client(service: str, **arguments: Any) -> Any:
    return boto3.client(service, **arguments)  # type: ignore[call-overload]


@dataclass
class Listed:
    """A pin source over a fixed list, counting its reads (to see what collect reads)."""

    name: str
    found: list[Pin] = field(default_factory=list)
    error: PinSourceError | None = None
    reads: int = 0

    def read(self) -> list[Pin]:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return list(self.found)


# --- collect --------------------------------------------------------------------------------------


def test_collect_counts_distinct_digests_per_source_and_the_first_source_is_the_cause() -> None:
    first = Listed("ssm", [Pin(A, "ssm:/deploy/web"), Pin(A, "ssm:/deploy/api"), Pin(B, "ssm:/b")])
    second = Listed("ecs", [Pin(B, "ecs:task-definition/web:3 container c0"), Pin(C, "ecs:x")])
    found, counts = collect([first, second])
    assert counts == {"ssm": 2, "ecs": 2}
    assert found == {A: Pin(A, "ssm:/deploy/web"), B: Pin(B, "ssm:/b"), C: Pin(C, "ecs:x")}


def test_collect_stops_at_the_first_unreadable_source() -> None:
    broken = Listed("s3", error=PinSourceError("s3://b/k", "AccessDenied"))
    later = Listed("lambda", [Pin(A, "lambda:f:1")])
    with pytest.raises(PinSourceError) as raised:
        collect([Listed("ssm", [Pin(B, "ssm:/x")]), broken, later])
    assert raised.value.source == "s3://b/k"
    assert str(raised.value) == (
        "pin source s3://b/k cannot be read: AccessDenied. Nothing was deleted."
    )
    assert later.reads == 0


def test_collect_reads_sources_at_once_and_keeps_their_order() -> None:
    first = Listed("ecs@111111111111/us-east-1", [Pin(A, "first")])
    second = Listed("ecs@222222222222/us-east-1", [Pin(A, "second"), Pin(B, "second")])
    found, counts = collect([first, second], workers=4)
    assert found == {A: Pin(A, "first"), B: Pin(B, "second")}  # the first source is the cause
    assert counts == {first.name: 1, second.name: 2}
    broken = Listed("lambda@222222222222/eu-west-1", error=PinSourceError("lambda@x", "denied"))
    later = Listed("eks", error=PinSourceError("eks:prod", "HTTP 403"))
    with pytest.raises(PinSourceError) as raised:
        collect([first, broken, later], workers=4)
    assert raised.value.source == "lambda@x"  # the first failure in order, whatever finished first


def test_sources_are_built_only_when_configured_in_a_fixed_order() -> None:
    assert pins.sources(load({}, {}), client) == []
    settings = load(
        {
            "pins": [A],
            "pin_parameter_path": "/deploy",
            "pin_object_uris": ["s3://bucket/key"],
            "pin_from_ecs": True,
            "pin_from_lambda": True,
            "concurrency": 3,
        },
        {},
    )
    built = pins.sources(settings, client)
    assert [s.name for s in built] == ["setting", "ssm", "s3", "ecs", "lambda"]
    assert built[0].read() == [Pin(A, f"event:{A}")]
    assert isinstance(built[3], EcsPins) and built[3].workers == 3


def test_every_source_declares_its_iam_actions() -> None:
    names = {"ssm", "s3", "ecs", "lambda", "sts", "eks", "inspector"}
    assert set(pins.REQUIRED_IAM_ACTIONS) == names
    for actions in pins.REQUIRED_IAM_ACTIONS.values():
        assert actions and all(a.count(":") == 1 for a in actions)
    assert StaticPins(()).read() == []


# --- SSM ------------------------------------------------------------------------------------------


def test_ssm_reads_every_parameter_recursively_and_decrypts(aws: Workloads) -> None:
    aws.put_parameter("/deploy/web/image", f"repo@{A}", secure=True)
    aws.put_parameter("/deploy/eu/api/config", f'{{"image": "repo@{B}", "sidecar": "x@{C}"}}')
    aws.put_parameter("/deploy/eu/api/replicas", "3")
    aws.put_parameter("/other/image", "repo@sha256:" + "d" * 64)
    found = ParameterPins(client("ssm"), "/deploy").read()
    assert sorted((p.digest, p.source) for p in found) == [
        (A, "ssm:/deploy/web/image"),
        (B, "ssm:/deploy/eu/api/config"),
        (C, "ssm:/deploy/eu/api/config"),
    ]


def test_ssm_path_without_parameters_is_an_error(aws: Workloads) -> None:
    aws.put_parameter("/deploy/web", "x")
    with pytest.raises(PinSourceError) as raised:
        ParameterPins(client("ssm"), "/deplyo").read()
    assert raised.value.source == "ssm:/deplyo"
    assert str(raised.value) == (
        "pin source ssm:/deplyo cannot be read: no parameter under this path (missing or "
        "misspelt?). Nothing was deleted."
    )


# --- S3 -------------------------------------------------------------------------------------------


def test_s3_finds_digests_in_any_text(aws: Workloads) -> None:
    aws.put_object("s3://configs/a.json", f'{{"image": "repo@{A}"}}'.encode())
    aws.put_object("s3://configs/b.env", f"IMAGE=repo@{B}\n".encode())
    found = ObjectPins(client("s3"), ["s3://configs/a.json", "s3://configs/b.env"]).read()
    assert found == [Pin(A, "s3://configs/a.json"), Pin(B, "s3://configs/b.env")]


# What Windows PowerShell's `Out-File`/`>` write by default is UTF-16 LE with a byte order mark.
ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8-with-bom": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16-le-with-bom": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16-be-with-bom": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
}


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_s3_pin_text_in_utf8_or_utf16_with_a_bom_pins(
    aws: Workloads, encode: Callable[[str], bytes]
) -> None:
    aws.put_object("s3://configs/pins.txt", encode(f"# déploiement\nrepo@{A}\r\nrepo@{B}\r\n"))
    found = ObjectPins(client("s3"), ["s3://configs/pins.txt"]).read()
    assert [p.digest for p in found] == [A, B]


UNDECODABLE = {
    "latin-1": f"# d\xe9ploiement\nrepo@{A}\n".encode("latin-1"),
    "utf-16-without-a-bom": f"repo@{A}\n".encode("utf-16-le"),
    "utf-16-without-a-bom-odd-length": f"repo@{A}\n".encode("utf-16-le")[:-1],
    "nul-in-utf-8": f"repo@{A}\x00\n".encode(),
    "utf-16-bom-odd-length": codecs.BOM_UTF16_LE + f"repo@{A}".encode("utf-16-le") + b"\x00",
    "utf-8-bom-then-invalid": codecs.BOM_UTF8 + f"repo@{A} \xff".encode("latin-1"),
    "utf-32-with-a-bom": codecs.BOM_UTF32_LE + f"repo@{A}".encode("utf-32-le"),
    "binary": b"\x89PNG\r\n\x1a\n" + A.encode() + b"\xff\xfe\xfd",
}


@pytest.mark.parametrize("data", UNDECODABLE.values(), ids=UNDECODABLE.keys())
def test_s3_pin_text_in_another_encoding_is_an_error_naming_the_object(
    aws: Workloads, data: bytes
) -> None:
    aws.put_object("s3://configs/good.txt", f"repo@{B}")
    aws.put_object("s3://configs/pins.txt", data)
    with pytest.raises(PinSourceError, match="UTF-") as raised:
        ObjectPins(client("s3"), ["s3://configs/good.txt", "s3://configs/pins.txt"]).read()
    assert raised.value.source == "s3://configs/pins.txt"


@pytest.mark.parametrize("text", ["", "\n", "services:\n  web:\n    image: repo:latest\n"])
def test_s3_object_without_any_digest_is_an_error_naming_it(aws: Workloads, text: str) -> None:
    # A pipeline that truncated the pin list must not unpin production.
    aws.put_object("s3://configs/good.txt", f"repo@{A}")
    aws.put_object("s3://configs/truncated.yaml", text)
    with pytest.raises(PinSourceError, match="no sha256 digest") as raised:
        ObjectPins(client("s3"), ["s3://configs/good.txt", "s3://configs/truncated.yaml"]).read()
    assert raised.value.source == "s3://configs/truncated.yaml"
    assert "Nothing was deleted" in str(raised.value)


def test_ssm_path_whose_parameters_name_no_digest_is_an_error_naming_it(aws: Workloads) -> None:
    aws.put_parameter("/deploy/web/tag", "latest")
    aws.put_parameter("/deploy/web/image", "repo:latest")
    aws.put_parameter("/other/image", f"repo@{A}")
    with pytest.raises(PinSourceError) as raised:
        ParameterPins(client("ssm"), "/deploy").read()
    assert raised.value.source == "ssm:/deploy"
    assert str(raised.value) == (
        "pin source ssm:/deploy cannot be read: no sha256 digest in any of the 2 parameters "
        "under this path. Nothing was deleted."
    )


UPPER_A, UPPER_B = A.upper().replace("SHA256", "sha256"), B.upper().replace("SHA256", "sha256")


def test_upper_case_hex_is_the_same_digest_in_every_source(aws: Workloads) -> None:
    aws.put_parameter("/deploy/web", f"repo@{UPPER_A}")
    aws.put_object("s3://configs/pins.txt", f"repo@{UPPER_B}")
    aws.register_task_definition("web", [f"repo@{UPPER_A}"])
    assert [p.digest for p in ParameterPins(client("ssm"), "/deploy").read()] == [A]
    assert [p.digest for p in ObjectPins(client("s3"), ["s3://configs/pins.txt"]).read()] == [B]
    assert [p.digest for p in EcsPins(client("ecs")).read()] == [A]


def test_several_ssm_paths_are_each_read_and_each_must_pin(aws: Workloads) -> None:
    aws.put_parameter("/deploy/prod/web", f"repo@{A}")
    aws.put_parameter("/deploy/staging/web", f"repo@{B}")
    settings = load(
        {"pin_parameter_path": "/deploy/staging"}, {"PIN_PARAMETER_PATH": "/deploy/prod"}
    )
    built = pins.sources(settings, client)
    assert [getattr(s, "path", None) for s in built] == ["/deploy/prod", "/deploy/staging"]
    found, counts = collect(built)
    assert set(found) == {A, B}
    assert counts == {"ssm": 2}
    with pytest.raises(PinSourceError) as raised:
        collect(pins.sources(load({"pin_parameter_path": ["/deploy/prod", "/typo"]}, {}), client))
    assert raised.value.source == "ssm:/typo"


def test_s3_object_too_large_for_a_pin_list_is_an_error(
    aws: Workloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pins.s3, "MAX_OBJECT_BYTES", 100)
    aws.put_object("s3://configs/huge", A * 2)
    with pytest.raises(PinSourceError, match="more than the 100") as raised:
        ObjectPins(client("s3"), ["s3://configs/huge"]).read()
    assert raised.value.source == "s3://configs/huge"


# --- ECS ------------------------------------------------------------------------------------------


def test_ecs_reads_active_definitions_and_running_tasks_only(aws: Workloads) -> None:
    registry = aws.registry
    running = registry.push(REPO, oci.image_manifest("running"), tags=["latest"])
    stopped = registry.push(REPO, oci.image_manifest("stopped"), tags=["old"])
    aws.register_task_definition("web", [aws.image_uri(REPO, "latest"), f"busybox@{A}"])
    inactive = aws.register_task_definition("legacy", [f"repo@{B}"])
    aws.deregister_task_definition(inactive)
    aws.run_task("prod", aws.register_task_definition("api", [aws.image_uri(REPO, "latest")]))
    task = aws.run_task("batch", aws.register_task_definition("job", [aws.image_uri(REPO, "old")]))
    aws.stop_task("batch", task)
    found = EcsPins(client("ecs")).read()
    sources = {p.digest: p.source for p in found}
    assert set(sources) == {A, running}
    assert stopped not in sources
    assert sources[A] == "ecs:task-definition/web:1 container c1"
    assert sources[running].startswith("ecs:task/arn:aws:ecs:us-east-1:")


@pytest.mark.parametrize(("reason", "fails"), [("MISSING", False), ("ACCESS_DENIED", True)])
def test_ecs_describe_tasks_failures(aws: Workloads, reason: str, fails: bool) -> None:
    aws.run_task("prod", aws.register_task_definition("web", [f"repo@{A}"]))

    def add_failure(parsed: dict[str, Any], **_: Any) -> None:
        parsed["failures"] = [{"arn": "arn:aws:ecs:us-east-1:1:task/prod/x", "reason": reason}]

    with AwsEvents() as events:
        events.on("after-call.ecs.DescribeTasks", add_failure)
        source = EcsPins(client("ecs"))
        if fails:
            with pytest.raises(PinSourceError, match=reason):
                source.read()
        else:
            assert {p.digest for p in source.read()} == {A}


# --- Lambda ---------------------------------------------------------------------------------------


def test_lambda_reads_every_version_of_image_functions(aws: Workloads) -> None:
    registry = aws.registry
    first = registry.push(REPO, oci.image_manifest("1"), tags=["latest"])
    aws.create_image_function("worker", aws.image_uri(REPO, "latest"))  # version 1
    second = registry.push(REPO, oci.image_manifest("2"), tags=["latest"])
    aws.update_image_function("worker", aws.image_uri(REPO, "latest"), publish=False)
    aws.create_zip_function("zip")
    found = LambdaPins(client("lambda"), workers=1).read()
    assert [(p.digest, p.source) for p in found] == [
        (second, "lambda:worker:$LATEST"),
        (first, "lambda:worker:1"),
    ]


def test_lambda_version_deleted_while_reading_is_skipped(aws: Workloads) -> None:
    digest = aws.registry.push(REPO, oci.image_manifest("1"))
    aws.create_image_function("worker", aws.image_uri(REPO, digest))
    with AwsEvents() as events:
        events.fail(
            "lambda", "GetFunction", "ResourceNotFoundException", status=404, when=lambda n: n == 1
        )
        found = LambdaPins(client("lambda")).read()
    assert found == [Pin(digest, "lambda:worker:1")]


def test_lambda_function_without_a_resolved_digest_is_an_error(aws: Workloads) -> None:
    digest = aws.registry.push(REPO, oci.image_manifest("1"))
    aws.create_image_function("worker", aws.image_uri(REPO, digest), publish=False)

    def strip(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Code"].pop("ResolvedImageUri")

    with AwsEvents() as events:
        events.on("after-call.lambda.GetFunction", strip)
        with pytest.raises(PinSourceError, match=r"worker:\$LATEST: no digest") as raised:
            LambdaPins(client("lambda")).read()
    assert raised.value.source == "lambda"


# --- what an unreadable source says -----------------------------------------------------------
# The error is what an operator reads when a run fails closed: it must name the source, the call
# that failed (and the cluster, definition or function it was about) and AWS's own error code.


def _client_error(error: dict[str, str] | None) -> ClientError:
    response: dict[str, Any] = {} if error is None else {"Error": error}
    return ClientError(response, "DescribeTasks")  # type: ignore[arg-type]


AWS_ERRORS: dict[str, tuple[Exception, str]] = {
    "client-error": (
        _client_error({"Code": "AccessDeniedException", "Message": "not authorized"}),
        "DescribeTasks prod: AccessDeniedException: not authorized",
    ),
    "client-error-without-a-message": (
        _client_error({"Code": "ThrottlingException"}),
        "DescribeTasks prod: ThrottlingException:",
    ),
    "client-error-without-a-code": (
        _client_error({"Message": "rate exceeded"}),
        "DescribeTasks prod: ClientError: rate exceeded",
    ),
    "client-error-without-an-error": (_client_error(None), "DescribeTasks prod: ClientError:"),
    "connection-error": (
        EndpointConnectionError(endpoint_url="https://ecs.us-east-1.amazonaws.com/"),
        "DescribeTasks prod: EndpointConnectionError: Could not connect to the endpoint URL: "
        '"https://ecs.us-east-1.amazonaws.com/"',
    ),
}


@pytest.mark.parametrize(("exc", "says"), AWS_ERRORS.values(), ids=AWS_ERRORS.keys())
def test_a_failed_call_names_the_operation_and_awss_error(exc: Exception, says: str) -> None:
    failed = core.error("ecs", "DescribeTasks prod", exc)
    assert failed.source == "ecs"
    assert str(failed) == f"pin source ecs cannot be read: {says}. Nothing was deleted."


NOW = datetime(2026, 6, 1, tzinfo=UTC)
CLUSTER = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/prod"
DEFINITION = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/web:1"


@dataclass(frozen=True)
class Unreadable:
    source: Callable[[], Any]  # the pin source, made once the world is there
    service: str
    operation: str  # the call that fails
    name: str  # the source the error names
    says: str  # and what it says failed
    status: int = 400
    raises: Exception | None = None  # botocore's own error instead of AWS's AccessDenied


def _eks() -> EksPins:
    return EksPins(client)


UNREADABLE: dict[str, Unreadable] = {
    "ssm-listing": Unreadable(
        lambda: ParameterPins(client("ssm"), "/deploy"),
        "ssm",
        "GetParametersByPath",
        "ssm:/deploy",
        "GetParametersByPath",
    ),
    "s3-object": Unreadable(
        lambda: ObjectPins(client("s3"), ["s3://configs/pins.txt"]),
        "s3",
        "GetObject",
        "s3://configs/pins.txt",
        "GetObject",
        403,
    ),
    "ecs-task-definitions": Unreadable(
        lambda: EcsPins(client("ecs")), "ecs", "ListTaskDefinitions", "ecs", "ListTaskDefinitions"
    ),
    "ecs-a-task-definition": Unreadable(
        lambda: EcsPins(client("ecs")),
        "ecs",
        "DescribeTaskDefinition",
        "ecs",
        f"DescribeTaskDefinition {DEFINITION}",
    ),
    "ecs-clusters": Unreadable(
        lambda: EcsPins(client("ecs")), "ecs", "ListClusters", "ecs", "ListClusters"
    ),
    "ecs-tasks-listing": Unreadable(
        lambda: EcsPins(client("ecs")), "ecs", "ListTasks", "ecs", f"ListTasks {CLUSTER}"
    ),
    "ecs-tasks": Unreadable(
        lambda: EcsPins(client("ecs")), "ecs", "DescribeTasks", "ecs", f"DescribeTasks {CLUSTER}"
    ),
    "ecs-services-listing": Unreadable(
        lambda: EcsPins(client("ecs")), "ecs", "ListServices", "ecs", f"ListServices {CLUSTER}"
    ),
    "ecs-services": Unreadable(
        lambda: EcsPins(client("ecs")),
        "ecs",
        "DescribeServices",
        "ecs",
        f"DescribeServices {CLUSTER}",
    ),
    "ecs-service-revisions": Unreadable(
        lambda: EcsPins(client("ecs")),
        "ecs",
        "DescribeServiceRevisions",
        "ecs",
        f"DescribeServiceRevisions {CLUSTER}",
    ),
    "lambda-functions": Unreadable(
        lambda: LambdaPins(client("lambda")),
        "lambda",
        "ListFunctions",
        "lambda",
        "ListFunctions",
        403,
    ),
    "lambda-versions": Unreadable(
        lambda: LambdaPins(client("lambda")),
        "lambda",
        "ListVersionsByFunction",
        "lambda",
        "ListVersionsByFunction worker",
        403,
    ),
    "lambda-a-version": Unreadable(
        lambda: LambdaPins(client("lambda")),
        "lambda",
        "GetFunction",
        "lambda",
        "GetFunction worker:$LATEST",
        403,
    ),
    "lambda-a-version-without-credentials": Unreadable(
        lambda: LambdaPins(client("lambda")),
        "lambda",
        "GetFunction",
        "lambda",
        "GetFunction worker:$LATEST: NoCredentialsError: Unable to locate credentials",
        raises=NoCredentialsError(),
    ),
    "eks-clusters": Unreadable(_eks, "eks", "ListClusters", "eks", "ListClusters", 403),
    "eks-a-cluster": Unreadable(_eks, "eks", "DescribeCluster", "eks:prod", "DescribeCluster", 403),
    "inspector-coverage": Unreadable(
        lambda: InspectorPins(client("inspector2"), NOW, timedelta(days=30)),
        "inspector2",
        "ListCoverage",
        "inspector",
        "ListCoverage",
        403,
    ),
}


@pytest.mark.parametrize("case", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_source_names_itself_the_call_and_awss_error_code(
    aws: Workloads, case: Unreadable
) -> None:
    aws.put_parameter("/deploy/web", f"repo@{A}")
    aws.put_object("s3://configs/pins.txt", f"repo@{A}")
    definition = aws.register_task_definition("web", [f"repo@{A}"])
    aws.run_task("prod", definition)
    aws.create_service("prod", "api", definition)
    aws.create_image_function(
        "worker", aws.image_uri(REPO, aws.registry.push(REPO, oci.image_manifest("1")))
    )
    aws.create_eks_cluster("prod", "https://prod.eks.invalid", b"not read")

    def raise_it(**_: Any) -> None:
        assert case.raises is not None
        raise case.raises

    with AwsEvents() as events:
        if case.raises is None:
            events.fail(case.service, case.operation, "AccessDeniedException", status=case.status)
        else:
            events.on(f"before-send.{case.service}.{case.operation}", raise_it)
        with pytest.raises(PinSourceError) as raised:
            case.source().read()
    assert raised.value.source == case.name
    says = case.says
    if case.raises is None:
        says += ": AccessDeniedException: injected by the harness"
    assert (
        str(raised.value) == f"pin source {case.name} cannot be read: {says}. Nothing was deleted."
    )


# --- ECS: where each digest is named, and answers as the API model allows them ------------------


@dataclass(frozen=True)
class EcsWorld:
    """One cluster, `prod`: a task of the `web` definition (ECR `app:latest` and `repo@A`), the
    `api` service deployed from it, and `old`, deployed before ECS recorded revisions from the
    `legacy` definition (`repo@B`), deregistered since."""

    latest: str  # the digest app:latest has, which the task and the revision resolved
    task: str  # ARN
    revision: str  # ARN

    def pins(self) -> list[tuple[str, str]]:
        task, revision = f"ecs:task/{self.task}", f"ecs:service-revision/{self.revision}"
        return sorted(
            [
                (A, "ecs:task-definition/web:1 container c1"),
                (self.latest, f"{task} container c0"),
                (A, f"{task} container c1"),
                (self.latest, f"{revision} container c0"),
                (A, f"{revision} container c1"),
                (B, "ecs:task-definition/legacy:1 container c0"),
            ]
        )

    def held(self) -> list[HeldTag]:
        host = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
        return sorted(
            (
                HeldTag(host, REPO, "latest", f"{where} container c0")
                for where in ("ecs:task-definition/web:1", f"ecs:service-revision/{self.revision}")
            ),
            key=repr,
        )


@pytest.fixture
def ecs_world(aws: Workloads) -> EcsWorld:
    latest = aws.registry.push(REPO, oci.image_manifest("web"), tags=["latest"])
    web = aws.register_task_definition("web", [aws.image_uri(REPO, "latest"), f"repo@{A}"])
    task = aws.run_task("prod", web)
    aws.create_service("prod", "api", web)
    legacy = aws.register_task_definition("legacy", [f"repo@{B}"])
    aws.create_service("prod", "old", legacy)
    aws.forget_service_revisions("prod", "old")
    aws.deregister_task_definition(legacy)
    revision = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service-revision/prod/api/{1:019d}"
    return EcsWorld(latest, task, revision)


def _found(source: EcsPins) -> list[tuple[str, str]]:
    return sorted((p.digest, p.source) for p in source.read())


def test_ecs_says_where_each_digest_and_tag_is_named(ecs_world: EcsWorld) -> None:
    source = EcsPins(client("ecs"))
    assert source.held == []  # nothing is held before a read
    assert _found(source) == ecs_world.pins()
    assert sorted(source.held, key=repr) == ecs_world.held()


# operation -> what each item of the answer's `failures` says -> the error, or None: read anyway
ECS_FAILURES: dict[str, tuple[str, dict[str, str], str | None]] = {
    # Deleted or stopped since it was listed: it starts or runs nothing any more.
    "a-service-deleted-since-it-was-listed": (
        "DescribeServices",
        {"arn": "arn:aws:ecs:us-east-1:1:service/prod/gone", "reason": "MISSING"},
        None,
    ),
    "a-task-stopped-since-it-was-listed": (
        "DescribeTasks",
        {"arn": "arn:aws:ecs:us-east-1:1:task/prod/gone", "reason": "MISSING"},
        None,
    ),
    # A revision a service lists as current is kept by ECS: missing is unexplained.
    "a-current-service-revision-missing": (
        "DescribeServiceRevisions",
        {"arn": "arn:aws:ecs:us-east-1:1:service-revision/prod/api/1", "reason": "MISSING"},
        "arn:aws:ecs:us-east-1:1:service-revision/prod/api/1: MISSING",
    ),
    "a-service-unreadable": (
        "DescribeServices",
        {"arn": "arn:aws:ecs:us-east-1:1:service/prod/api", "reason": "ACCESS_DENIED"},
        "arn:aws:ecs:us-east-1:1:service/prod/api: ACCESS_DENIED",
    ),
    "a-service-revision-unreadable-with-a-detail": (
        "DescribeServiceRevisions",
        {"arn": "r", "reason": "ACCESS_DENIED", "detail": "not authorized"},
        "r: ACCESS_DENIED not authorized",
    ),
    "a-task-unreadable-with-a-detail": (
        "DescribeTasks",
        {"arn": "t", "reason": "ACCESS_DENIED", "detail": "not authorized"},
        "t: ACCESS_DENIED not authorized",
    ),
    "a-service-failure-that-names-nothing": ("DescribeServices", {}, "?: ?"),
    "a-service-revision-failure-that-names-nothing": ("DescribeServiceRevisions", {}, "?: ?"),
    "a-task-failure-that-names-nothing": ("DescribeTasks", {}, "?: ?"),
}


@pytest.mark.parametrize(
    ("operation", "failure", "says"), ECS_FAILURES.values(), ids=ECS_FAILURES.keys()
)
def test_ecs_answers_failures_fail_the_source_unless_the_item_is_gone(
    ecs_world: EcsWorld, operation: str, failure: dict[str, str], says: str | None
) -> None:
    def add_failure(parsed: dict[str, Any], **_: Any) -> None:
        parsed["failures"] = [failure]

    with AwsEvents() as events:
        events.on(f"after-call.ecs.{operation}", add_failure)
        source = EcsPins(client("ecs"))
        if says is None:
            assert _found(source) == ecs_world.pins()
            return
        with pytest.raises(PinSourceError) as raised:
            source.read()
    assert raised.value.source == "ecs"
    assert raised.value.message == f"{operation} {CLUSTER}: {says}"
    assert str(raised.value) == (
        f"pin source ecs cannot be read: {operation} {CLUSTER}: {says}. Nothing was deleted."
    )


def test_a_service_ecs_answers_as_missing_is_gone_and_the_others_still_pin(
    ecs_world: EcsWorld,
) -> None:
    """A service deleted between ListServices and DescribeServices is answered among `failures`
    (MISSING), not described: it starts nothing any more, so the source reads on without it."""

    def old_is_gone(parsed: dict[str, Any], **_: Any) -> None:
        gone = [s for s in parsed["services"] if s["serviceName"] == "old"]
        parsed["services"] = [s for s in parsed["services"] if s["serviceName"] != "old"]
        parsed["failures"] = [{"arn": s["serviceArn"], "reason": "MISSING"} for s in gone]

    with AwsEvents() as events:
        events.on("after-call.ecs.DescribeServices", old_is_gone)
        found = _found(EcsPins(client("ecs")))
    assert found == [p for p in ecs_world.pins() if "legacy" not in p[1]]


def test_revisions_described_without_their_arns_stand_for_as_many_asked_about(
    ecs_world: EcsWorld,
) -> None:
    """The API model lets a revision come without its ARN: such a revision stands for one that
    was asked about, never for two (one left out silently still fails the source)."""

    def a_second_current_revision(parsed: dict[str, Any], **_: Any) -> None:
        for service in parsed["services"]:
            if service.get("currentServiceRevisions"):
                service["currentServiceRevisions"].append({"arn": ecs_world.revision + "0"})

    def without_arns(parsed: dict[str, Any], **_: Any) -> None:
        for revision in parsed.get("serviceRevisions", []):
            revision.pop("serviceRevisionArn", None)
        parsed["failures"] = []

    with AwsEvents() as events:
        events.on("after-call.ecs.DescribeServices", a_second_current_revision)
        events.on("after-call.ecs.DescribeServiceRevisions", without_arns)
        with pytest.raises(PinSourceError) as raised:
            EcsPins(client("ecs")).read()
    assert raised.value.message == (
        f"DescribeServiceRevisions {CLUSTER}: {ecs_world.revision}: "
        "neither described nor reported as a failure"
    )


@pytest.mark.parametrize(
    ("operation", "key", "asked"),
    [
        ("DescribeServices", "services", "service/prod/"),
        ("DescribeServiceRevisions", "serviceRevisions", "service-revision/prod/api/"),
    ],
    ids=["a-service-left-out-of-the-answer", "a-current-revision-left-out-of-the-answer"],
)
def test_an_item_ecs_leaves_out_of_its_answer_without_a_failure_fails_the_source(
    ecs_world: EcsWorld, operation: str, key: str, asked: str
) -> None:
    """ECS answers every item asked about, or reports it among `failures`. An answer that drops
    one silently would pin nothing of it and say nothing: the source fails closed, naming it."""

    def drop_every_item(parsed: dict[str, Any], **_: Any) -> None:
        parsed[key] = []

    with AwsEvents() as events:
        events.on(f"after-call.ecs.{operation}", drop_every_item)
        with pytest.raises(PinSourceError) as raised:
            EcsPins(client("ecs")).read()
    assert raised.value.source == "ecs"
    assert raised.value.message.startswith(f"{operation} {CLUSTER}: arn:aws:ecs:")
    assert asked in raised.value.message
    assert raised.value.message.endswith(": neither described nor reported as a failure")


Answer = Callable[[dict[str, Any]], None]


def _each(key: str, change: Answer) -> Answer:
    def changed(parsed: dict[str, Any]) -> None:
        for item in parsed.get(key, []):
            change(item)

    return changed


def _without(*keys: str) -> Answer:
    def changed(item: dict[str, Any]) -> None:
        for key in keys:
            item.pop(key, None)

    return changed


def _all_gone(key: str) -> Answer:
    """Every item asked for deleted or stopped since it was listed: only failures."""

    def changed(parsed: dict[str, Any]) -> None:
        arns = [item.get("taskArn") or item.get("serviceArn") for item in parsed.pop(key)]
        parsed["failures"] = [{"arn": arn, "reason": "MISSING"} for arn in arns]

    return changed


def _definition(change: Answer) -> Answer:
    return lambda parsed: change(parsed["taskDefinition"])


def _containers(key: str, change: Answer) -> Answer:
    def changed(item: dict[str, Any]) -> None:
        for container in item.get(key, []):
            change(container)

    return changed


def _both(*changes: Answer) -> Answer:
    def changed(item: dict[str, Any]) -> None:
        for change in changes:
            change(item)

    return changed


def _less(*sources: str) -> Callable[[EcsWorld], list[tuple[str, str]]]:
    """The world's pins but those whose source starts with one of `sources`."""

    def expected(world: EcsWorld) -> list[tuple[str, str]]:
        return [(d, s) for d, s in world.pins() if not s.startswith(sources)]

    return expected


def _task(world: EcsWorld) -> str:
    return f"ecs:task/{world.task}"


def _renamed(world: EcsWorld, old: str, new: str) -> list[tuple[str, str]]:
    return sorted((d, s.replace(old, new)) for d, s in world.pins())


# (operation, how its answer differs, the pins then found) -- every field of an ECS answer is
# optional in the API's model: an empty list may be left out, a name may be missing.
ECS_ANSWERS: dict[str, tuple[str, Answer, Callable[[EcsWorld], list[tuple[str, str]]]]] = {
    "tasks-answer-without-a-failures-list": (
        "DescribeTasks",
        _without("failures"),
        EcsWorld.pins,
    ),
    "services-answer-without-a-failures-list": (
        "DescribeServices",
        _without("failures"),
        EcsWorld.pins,
    ),
    "service-revisions-answer-without-a-failures-list": (
        "DescribeServiceRevisions",
        _without("failures"),
        EcsWorld.pins,
    ),
    "every-task-stopped-since-it-was-listed": (
        "DescribeTasks",
        _all_gone("tasks"),
        lambda w: _less(_task(w))(w),
    ),
    "every-service-deleted-since-it-was-listed": (
        "DescribeServices",
        _all_gone("services"),
        _less("ecs:service-revision/", "ecs:task-definition/legacy:"),
    ),
    "a-task-described-without-containers": (
        "DescribeTasks",
        _each("tasks", _without("containers")),
        lambda w: _less(_task(w))(w),
    ),
    "a-revision-without-container-images": (
        "DescribeServiceRevisions",
        _each("serviceRevisions", _without("containerImages")),
        _less("ecs:service-revision/"),
    ),
    "a-definition-without-containers": (
        "DescribeTaskDefinition",
        _definition(_without("containerDefinitions")),
        _less("ecs:task-definition/"),
    ),
    # Deployed before ECS recorded revisions: it starts its task definition's images.
    "a-service-answered-without-current-revisions": (
        "DescribeServices",
        _each("services", _without("currentServiceRevisions")),
        lambda w: sorted(
            [*_less("ecs:service-revision/")(w), (A, "ecs:task-definition/web:1 container c1")]
        ),
    ),
    "a-definition-without-its-family-and-revision": (
        "DescribeTaskDefinition",
        _definition(_without("family", "revision")),
        lambda w: sorted(
            (d, s.replace("/web:1", "/?:?").replace("/legacy:1", "/?:?")) for d, s in w.pins()
        ),
    ),
    "a-definitions-containers-without-names": (
        "DescribeTaskDefinition",
        _definition(_containers("containerDefinitions", _without("name"))),
        lambda w: sorted(
            (d, s.replace("c0", "?").replace("c1", "?") if "task-definition" in s else s)
            for d, s in w.pins()
        ),
    ),
    "a-task-without-its-arn": (
        "DescribeTasks",
        _each("tasks", _without("taskArn")),
        lambda w: _renamed(w, w.task, "?"),
    ),
    "a-revision-without-its-arn-and-container-names": (
        "DescribeServiceRevisions",
        _each(
            "serviceRevisions",
            _both(
                _without("serviceRevisionArn"),
                _containers("containerImages", _without("containerName")),
            ),
        ),
        lambda w: sorted(
            (d, "ecs:service-revision/? container ?" if "service-revision" in s else s)
            for d, s in w.pins()
        ),
    ),
    # Only the image reference, no resolved digest: a reference by digest still pins it.
    "a-revision-without-resolved-digests": (
        "DescribeServiceRevisions",
        _each("serviceRevisions", _containers("containerImages", _without("imageDigest"))),
        lambda w: [(d, s) for d, s in w.pins() if not (d == w.latest and "revision" in s)],
    ),
    "a-revision-image-without-its-reference": (
        "DescribeServiceRevisions",
        _each("serviceRevisions", _containers("containerImages", _without("image"))),
        # Only the resolved digest is left: `repo@A` is in no registry here, so none resolved.
        lambda w: [(d, s) for d, s in w.pins() if not (d == A and "service-revision" in s)],
    ),
    "a-task-container-without-its-image-reference": (
        "DescribeTasks",
        _each("tasks", _containers("containers", _without("image"))),
        # Only the resolved digest is left: `repo@A` is in no registry here, so none resolved.
        lambda w: [(d, s) for d, s in w.pins() if not (d == A and s.startswith(_task(w)))],
    ),
    "a-task-without-resolved-digests": (
        "DescribeTasks",
        _each("tasks", _containers("containers", _without("imageDigest"))),
        lambda w: [(d, s) for d, s in w.pins() if not (d == w.latest and s.startswith(_task(w)))],
    ),
    "a-definitions-container-without-an-image": (
        "DescribeTaskDefinition",
        _definition(_containers("containerDefinitions", _without("image"))),
        _less("ecs:task-definition/"),
    ),
    # A listing page may leave its empty list out: it lists nothing, and the rest is read.
    "a-definitions-listing-without-its-list": (
        "ListTaskDefinitions",
        _without("taskDefinitionArns"),
        _less("ecs:task-definition/web:"),  # legacy is still read: `old` names it
    ),
    "a-clusters-listing-without-its-list": (
        "ListClusters",
        _without("clusterArns"),
        lambda w: _less(_task(w), "ecs:service-revision/", "ecs:task-definition/legacy:")(w),
    ),
    "a-services-listing-without-its-list": (
        "ListServices",
        _without("serviceArns"),
        _less("ecs:service-revision/", "ecs:task-definition/legacy:"),
    ),
    "a-tasks-listing-without-its-list": (
        "ListTasks",
        _without("taskArns"),
        lambda w: _less(_task(w))(w),
    ),
}


@pytest.mark.parametrize(("operation", "answer", "expected"), ECS_ANSWERS.values(), ids=ECS_ANSWERS)
def test_ecs_reads_every_answer_the_api_model_allows(
    ecs_world: EcsWorld,
    operation: str,
    answer: Answer,
    expected: Callable[[EcsWorld], list[tuple[str, str]]],
) -> None:
    with AwsEvents() as events:
        events.on(f"after-call.ecs.{operation}", lambda parsed, **_: answer(parsed))
        assert _found(EcsPins(client("ecs"))) == expected(ecs_world)


# --- the other sources: what each pin says, and the edges of what each reads ---------------------


@pytest.mark.parametrize("cluster", ["a", "ab", "abc", "production-eu"])
def test_eks_token_is_a_presigned_get_caller_identity_url_without_base64_padding(
    aws: Workloads, cluster: str
) -> None:
    # As `aws eks get-token` prints it: base64url, its `=` padding stripped, whatever the length.
    sts = client("sts", region_name="us-east-1")
    pins.eks.register_token_header(sts)
    bearer = pins.eks.token(sts, cluster)
    assert bearer.startswith("k8s-aws-v1.")
    encoded = bearer.removeprefix("k8s-aws-v1.")
    assert "=" not in encoded
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    query = parse_qs(urlsplit(url).query)
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")


def test_inspector_pins_say_which_listing_found_them(aws: Workloads) -> None:
    registry = aws.registry
    coverage = InspectorCoverage(registry.account_id, registry.region)
    coverage.add(REPO, A, in_use=2)
    coverage.add(REPO, B, last_in_use=(NOW - timedelta(days=10)).timestamp())
    coverage.add(REPO, C, last_in_use=(NOW - timedelta(days=45)).timestamp())
    arn = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{REPO}"
    with AwsEvents() as events:
        coverage.install(events)
        within = InspectorPins(client("inspector2"), NOW, timedelta(days=30)).read()
        without_window = InspectorPins(client("inspector2"), NOW, None).read()
    assert sorted((p.digest, p.source) for p in within) == [
        (A, f"inspector:{arn}/{A} (in use)"),
        (B, f"inspector:{arn}/{B} (in use since 2026-05-02)"),
    ]
    assert without_window == [Pin(A, f"inspector:{arn}/{A} (in use)")]


# what a pin list's bytes are -> what the error says of them
NOT_TEXT: dict[str, tuple[bytes, str]] = {
    "utf-32": (
        codecs.BOM_UTF32_BE + f"repo@{A}".encode("utf-32-be"),
        "UTF-32 text: save the pin list as UTF-8 (or UTF-16)",
    ),
    "latin-1": (
        b"# d\xe9ploiement",
        "not UTF-8 text (byte 3 of the body): a pin list is UTF-8, or UTF-16 with a byte "
        "order mark",
    ),
    "utf-8-bom-then-invalid": (
        codecs.BOM_UTF8 + b"repo \xff",
        "not UTF-8 text (byte 5 of the body): a pin list is UTF-8, or UTF-16 with a byte "
        "order mark",
    ),
    "utf-16-le-bom-odd-length": (
        codecs.BOM_UTF16_LE + "repo".encode("utf-16-le") + b"\x00",
        "not UTF-16-LE text (byte 8 of the body): a pin list is UTF-8, or UTF-16 with a byte "
        "order mark",
    ),
    "utf-16-be-bom-odd-length": (
        codecs.BOM_UTF16_BE + "repo".encode("utf-16-be") + b"\x00",
        "not UTF-16-BE text (byte 8 of the body): a pin list is UTF-8, or UTF-16 with a byte "
        "order mark",
    ),
    "utf-16-without-a-bom": (
        "repo".encode("utf-16-le"),
        "NUL characters in UTF-8 text (UTF-16 without a byte order mark?): a pin list is UTF-8, "
        "or UTF-16 with a byte order mark",
    ),
}


@pytest.mark.parametrize(("data", "says"), NOT_TEXT.values(), ids=NOT_TEXT.keys())
def test_a_pin_list_that_is_not_text_says_what_it_is_instead(data: bytes, says: str) -> None:
    with pytest.raises(PinSourceError) as raised:
        pins.decode_text(data, "s3://configs/pins.txt")
    assert raised.value.source == "s3://configs/pins.txt"
    assert str(raised.value) == (
        f"pin source s3://configs/pins.txt cannot be read: {says}. Nothing was deleted."
    )


def test_s3_object_of_exactly_the_largest_size_is_read(
    aws: Workloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pins.s3, "MAX_OBJECT_BYTES", 76)
    aws.put_object("s3://configs/pins.txt", f"repo@{A}")  # 76 bytes
    assert ObjectPins(client("s3"), ["s3://configs/pins.txt"]).read() == [
        Pin(A, "s3://configs/pins.txt")
    ]


def test_the_accounts_own_identity_unreadable_fails_closed_naming_sts(aws: Workloads) -> None:
    with AwsEvents() as events:
        events.fail("sts", "GetCallerIdentity", "AccessDenied", status=403)
        with pytest.raises(PinSourceError) as raised:
            pins.places.Connections(client).home_account()
    assert raised.value.source == "sts"
    assert str(raised.value) == (
        "pin source sts cannot be read: GetCallerIdentity: AccessDenied: injected by the "
        "harness. Nothing was deleted."
    )


HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
HERE = (ACCOUNT, "us-east-1")
ROLE = "arn:aws:iam::222222222222:role/pins"
EXPIRES = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_tags_in_ssm_and_s3_are_held_naming_where_they_were_found(aws: Workloads) -> None:
    aws.put_parameter("/deploy/web/image", f"{HOST}/{REPO}:stable")
    aws.put_parameter("/deploy/api/image", f"repo@{A}")
    aws.put_object("s3://configs/compose.yaml", f"image: {HOST}/{REPO}:v2\n")
    parameters = ParameterPins(client("ssm"), "/deploy")
    objects = ObjectPins(client("s3"), ["s3://configs/compose.yaml"])
    assert parameters.held == objects.held == []  # nothing is held before a read
    assert parameters.read() == [Pin(A, "ssm:/deploy/api/image")]
    assert objects.read() == []
    assert parameters.held == [HeldTag(HOST, REPO, "stable", "ssm:/deploy/web/image")]
    assert objects.held == [HeldTag(HOST, REPO, "v2", "s3://configs/compose.yaml")]


def test_other_tag_sources_hold_nothing_before_a_read(aws: Workloads) -> None:
    connections = pins.places.Connections(client, ["arn:aws:iam::222222222222:role/pins"])
    placed = pins.places.Placed(
        "ecs", lambda c: EcsPins(c("ecs")), connections.places()[1], connections
    )
    for source in (EcsPins(client("ecs")), EksPins(client), placed):
        assert source.held == []


# --- held tags and workload accounts ----------------------------------------------------------


@dataclass
class Holding:
    """A tag source that found `held` (the tags ECS, EKS, SSM or S3 would have)."""

    name: str
    held: list[HeldTag]

    def read(self) -> list[Pin]:
        return []


def test_held_tags_are_this_registrys_from_every_tag_source() -> None:
    here = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    other_account = "210987654321.dkr.ecr.us-east-1.amazonaws.com"
    other_region = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    ssm = Holding(
        "ssm",
        [
            HeldTag(here, "web", "stable", "ssm:/deploy/web"),
            HeldTag(other_account, "web", "stable", "ssm:/deploy/theirs"),
            HeldTag(other_region, "web", "stable", "ssm:/deploy/eu"),
        ],
    )
    eks = Holding("eks", [HeldTag(here, "api", "v1", "eks:prod/default/pod/api container c")])
    again = Holding("eks", [HeldTag(here, "api", "v1", "eks:staging/default/pod/api container c")])
    # StaticPins holds no tag: the sources after it are read all the same.
    found, counts = pins.held_tags([StaticPins((Pin(A, "setting"),)), ssm, eks, again], *HERE)
    assert found == [ssm.held[0], eks.held[0], again.held[0]]
    assert counts == {"ssm": 1, "eks": 1}  # distinct repository:tag per source name


def test_a_workload_roles_credentials_are_kept_until_ten_minutes_before_they_expire(
    aws: Workloads,
) -> None:
    def expiring(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Credentials"]["Expiration"] = EXPIRES

    margin = pins.places.REFRESH_MARGIN
    with AwsEvents() as events:
        events.on("after-call.sts.AssumeRole", expiring)
        events.count("before-call.sts.AssumeRole")
        connections = pins.places.Connections(client, [ROLE])
        place = connections.places()[1]
        assert place.role_arn == ROLE
        with use_clock(lambda: EXPIRES - margin - timedelta(seconds=1)):
            first = connections.client(place, "ecs", "ecs@222222222222/us-east-1")
            assert connections.client(place, "ecs", "ecs@222222222222/us-east-1") is first
        assert events.calls["before-call.sts.AssumeRole"] == 1
        with use_clock(lambda: EXPIRES - margin):
            renewed = connections.client(place, "ecs", "ecs@222222222222/us-east-1")
        assert renewed is not first
        assert events.calls["before-call.sts.AssumeRole"] == 2
        home = connections.places()[0]
        assert connections.client(home, "ecs", "ecs") is connections.client(home, "ecs", "ecs")


# --- EKS: what Kubernetes may leave out of an object, and the timeout ----------------------------


def test_eks_pins_say_where_they_run_whatever_an_object_leaves_out(aws: Workloads) -> None:
    with KubernetesApi() as api:
        api.add(
            "pods",
            {
                "metadata": {"name": "web", "namespace": "prod"},
                "spec": {"containers": [{"name": "app", "image": f"repo@{A}"}]},
                "status": {"containerStatuses": [{"name": "app", "imageID": f"repo@{B}"}]},
            },
            # No metadata, no container names, a status without an image ID yet.
            {
                "spec": {"containers": [{"image": f"repo@{C}"}]},
                "status": {"containerStatuses": [{"image": "repo:1"}, {"imageID": f"repo@{C}"}]},
            },
        )
        # A listed object without a pod template (or with one that is not an object) runs
        # nothing: read on, nothing pinned from it.
        api.add("deployments", {"metadata": {"name": "empty"}, "spec": None})
        api.add("cronjobs", {"metadata": {"name": "odd"}, "spec": {"jobTemplate": ["x"]}})
        aws.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        found = EksPins(client).read()
    # Every list is read in pages of PAGE_LIMIT items (a large cluster's pods are not one answer).
    assert {r.query.get("limit") for r in api.requests} == {str(pins.eks.PAGE_LIMIT)}
    assert sorted((p.digest, p.source) for p in found) == [
        (A, "eks:prod/prod/pod/web container app"),
        (B, "eks:prod/prod/pod/web container app"),
        (C, "eks:prod/-/pod/? container ?"),
        (C, "eks:prod/-/pod/? container ?"),
    ]


def test_eks_reads_no_longer_than_its_timeout(aws: Workloads) -> None:
    with KubernetesApi(delay=60.0) as api:  # answers only once the test is over
        api.add("pods", pod("web", [f"repo@{A}"]))
        aws.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        with pytest.raises(
            PinSourceError, match=r"GET /api/v1/pods: MaxRetryError: .*read timeout=0.2"
        ) as raised:
            EksPins(client, timeout=0.2).read()
    assert raised.value.source == "eks:prod"


@dataclass
class Found:
    """A tag source over fixed pins and held tags, or an error."""

    name: str
    pins: list[Pin]
    held: list[HeldTag]
    error: PinSourceError | None = None

    def read(self) -> list[Pin]:
        if self.error is not None:
            raise self.error
        return list(self.pins)


def test_a_source_read_in_a_workload_account_says_where_in_every_pin_tag_and_error(
    aws: Workloads,
) -> None:
    connections = pins.places.Connections(client, [ROLE])
    place = connections.places()[1]
    tag = HeldTag(HOST, REPO, "stable", "ssm:/deploy/web")
    found = Found("ssm", [Pin(A, "ssm:/deploy/web")], [tag])
    placed = pins.places.Placed("ssm", lambda c: found, place, connections)
    assert placed.name == "ssm@222222222222/us-east-1"
    assert placed.read() == [Pin(A, "ssm:/deploy/web@222222222222/us-east-1")]
    assert placed.held == [HeldTag(HOST, REPO, "stable", "ssm:/deploy/web@222222222222/us-east-1")]
    # A failure names the place too, unless it already does.
    found.error = PinSourceError("ssm:/deploy", "AccessDeniedException")
    with pytest.raises(PinSourceError) as raised:
        placed.read()
    assert raised.value.source == "ssm:/deploy@222222222222/us-east-1"
    assert raised.value.message == "AccessDeniedException"
    found.error = PinSourceError("ssm@222222222222/us-east-1", "sts:AssumeRole: AccessDenied")
    with pytest.raises(PinSourceError) as raised:
        placed.read()
    assert raised.value is found.error


def test_a_parameter_answered_without_a_value_pins_nothing_and_the_others_still_do(
    aws: Workloads,
) -> None:
    aws.put_parameter("/deploy/web/image", f"repo@{A}")
    aws.put_parameter("/deploy/api/image", f"{HOST}/{REPO}:stable")
    aws.put_parameter("/deploy/empty/image", f"repo@{B}")

    def without_a_value(parsed: dict[str, Any], **_: Any) -> None:
        for parameter in parsed["Parameters"]:
            if parameter["Name"] == "/deploy/empty/image":
                parameter.pop("Value")

    with AwsEvents() as events:
        events.on("after-call.ssm.GetParametersByPath", without_a_value)
        source = ParameterPins(client("ssm"), "/deploy")
        assert source.read() == [Pin(A, "ssm:/deploy/web/image")]
    assert source.held == [HeldTag(HOST, REPO, "stable", "ssm:/deploy/api/image")]


def test_every_service_of_a_cluster_is_described_once_ten_at_a_time(aws: Workloads) -> None:
    web = aws.register_task_definition("web", [f"repo@{A}"])
    for i in range(21):
        aws.create_service("prod", f"svc-{i:02}", web)
    with AwsEvents() as events:
        events.count("before-call.ecs.DescribeServices")
        found = _found(EcsPins(client("ecs")))
    revisions = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service-revision/prod"
    assert found == sorted(
        [(A, "ecs:task-definition/web:1 container c0")]
        + [
            (A, f"ecs:service-revision/{revisions}/svc-{i:02}/{1:019d} container c0")
            for i in range(21)
        ]
    )
    assert events.calls["before-call.ecs.DescribeServices"] == 3


def test_every_source_is_built_with_the_settings_that_concern_it(aws: Workloads) -> None:
    settings = load(
        {
            "pin_from_lambda": True,
            "pin_from_eks": True,
            "pin_from_inspector": True,
            "eks_clusters": ["prod"],
            "keep_pulled_within_days": 30,
            "concurrency": 3,
        },
        {"EKS_SKIP_CLUSTERS": "legacy"},
    )
    built = pins.sources(settings, client, NOW)
    assert [s.name for s in built] == ["lambda", "eks", "inspector"]
    lambdas, eks, inspector = built
    assert isinstance(lambdas, LambdaPins) and lambdas.workers == 3
    assert isinstance(eks, EksPins)
    assert (eks.clusters, eks.skip, eks.workers) == (("prod",), ("legacy",), 3)
    assert isinstance(inspector, InspectorPins)
    assert (inspector.now, inspector.window) == (NOW, timedelta(days=30))


def test_sources_read_in_workload_accounts_are_named_after_their_source_and_place(
    aws: Workloads,
) -> None:
    settings = load(
        {
            "pin_parameter_path": "/deploy",
            "pin_object_uris": ["s3://configs/pins.txt"],
            "pin_from_ecs": True,
            "pin_from_lambda": True,
            "pin_from_eks": True,
        },
        {"PIN_ROLE_ARNS": ROLE},
    )
    places = [f"{ACCOUNT}/us-east-1", "222222222222/us-east-1"]
    names = [s.name for s in pins.sources(settings, client)]
    assert names == [f"ssm@{p}" for p in places] + ["s3"] + [
        f"{source}@{p}" for source in ("ecs", "lambda", "eks") for p in places
    ]


def test_a_tag_held_by_a_revision_image_without_a_container_name_says_so(
    ecs_world: EcsWorld,
) -> None:
    unnamed = _each("serviceRevisions", _containers("containerImages", _without("containerName")))
    with AwsEvents() as events:
        events.on("after-call.ecs.DescribeServiceRevisions", lambda parsed, **_: unnamed(parsed))
        source = EcsPins(client("ecs"))
        source.read()
    revision = f"ecs:service-revision/{ecs_world.revision}"
    assert sorted(source.held, key=repr) == sorted(
        [
            HeldTag(HOST, REPO, "latest", "ecs:task-definition/web:1 container c0"),
            HeldTag(HOST, REPO, "latest", f"{revision} container ?"),
        ],
        key=repr,
    )


def test_an_eks_cluster_that_refuses_says_what_its_api_server_answered(aws: Workloads) -> None:
    # An endpoint given with a trailing slash is the same endpoint.
    with KubernetesApi(status=403) as api:
        aws.create_eks_cluster("prod", api.endpoint + "/", api.ca_pem)
        with pytest.raises(PinSourceError) as raised:
            EksPins(client).read()
    assert [r.path for r in api.requests] == ["/api/v1/pods"]
    assert raised.value.source == "eks:prod"
    assert raised.value.message == 'GET /api/v1/pods: HTTP 403: {"kind": "Status", "code": 403}'


@pytest.mark.parametrize("field", ["endpoint", "certificateAuthority"])
def test_an_eks_cluster_without_its_endpoint_or_ca_fails_closed_naming_it(
    aws: Workloads, field: str
) -> None:
    # A cluster still being created has neither yet: what it runs cannot be read.
    def without(parsed: dict[str, Any], **_: Any) -> None:
        parsed["cluster"].pop(field)

    aws.create_eks_cluster("prod", "https://prod.eks.invalid", b"never read")
    with AwsEvents() as events:
        events.on("after-call.eks.DescribeCluster", without)
        with pytest.raises(PinSourceError) as raised:
            EksPins(client).read()
    assert raised.value.source == "eks:prod"
    assert raised.value.message == "DescribeCluster: no endpoint or CA (status ACTIVE)"


def test_every_running_task_of_a_cluster_is_described_once(aws: Workloads) -> None:
    job = aws.register_task_definition("job", [f"repo@{A}"])
    tasks = [aws.run_task("batch", job) for _ in range(3)]
    found = _found(EcsPins(client("ecs")))
    assert found == sorted(
        [(A, "ecs:task-definition/job:1 container c0")]
        + [(A, f"ecs:task/{task} container c0") for task in tasks]
    )


def test_an_eks_token_that_cannot_be_signed_fails_closed_naming_the_cluster(
    aws: Workloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.create_eks_cluster("prod", "https://prod.eks.invalid", b"never read")
    eks = client("eks")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    unsigned = boto3.session.Session().client("sts", region_name="us-east-1")
    source = EksPins(lambda service: eks if service == "eks" else unsigned)
    with pytest.raises(PinSourceError) as raised:
        source.read()
    assert raised.value.source == "eks:prod"
    assert raised.value.message == (
        "STS GetCallerIdentity (token): NoCredentialsError: Unable to locate credentials"
    )


# --- what the last survivors of pins' mutation run changed (issue 24) ---------------------------


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("AccessDenied", "AccessDenied"),
        ("the object is empty.", "the object is empty"),  # one full stop, not two
        ("no digest found. ", "no digest found"),
        ("GetParameter /deploy/ONYX", "GetParameter /deploy/ONYX"),  # the name, whole
    ],
    ids=[
        "a-plain-message",
        "ending-with-a-full-stop",
        "ending-with-a-stop-and-space",
        "ending-in-x",
    ],
)
def test_a_pin_source_error_says_its_message_once_ending_with_one_full_stop(
    message: str, says: str
) -> None:
    failed = PinSourceError("ssm:/deploy", message)
    assert failed.message == message
    assert str(failed) == f"pin source ssm:/deploy cannot be read: {says}. Nothing was deleted."


def test_each_source_read_is_logged_with_its_distinct_pins_and_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The source's own clock: 1.1234 seconds pass while it reads.
    ticks = iter([2.0, 3.1234])
    monkeypatch.setattr(core, "time", SimpleNamespace(monotonic=lambda: next(ticks)))
    source = Listed("ssm", [Pin(A, "ssm:/deploy/web"), Pin(A, "ssm:/deploy/api"), Pin(B, "ssm:/b")])
    with recorded() as records:
        collect([source])
    [line] = [r for r in records if r.getMessage() == "pin source"]
    fields = {name: vars(line).get(name) for name in ("source", "pins", "seconds")}
    assert line.levelno == logging.INFO
    assert fields == {"source": "ssm", "pins": 2, "seconds": 1.123}


# (workers, items): as many at once as there are workers, or items if fewer; never more.
AT_ONCE = {
    "two-workers-two-items": (2, 2),
    "two-workers-three-items": (2, 3),
    "three-of-five": (3, 5),
}


@pytest.mark.parametrize(("workers", "count"), AT_ONCE.values(), ids=AT_ONCE.keys())
def test_a_sources_items_are_read_as_many_at_once_as_it_has_workers_and_no_more(
    workers: int, count: int
) -> None:
    expected = min(workers, count)
    changed = threading.Condition()
    started = running = most = 0

    def read(item: int) -> int:
        nonlocal started, running, most
        with changed:
            started += 1
            running += 1
            most = max(most, running)
            changed.notify_all()
            # Every item that may run at once is started while this one runs...
            assert changed.wait_for(lambda: started >= expected, timeout=10), "read one by one"
            # ...and one more would be seen starting meanwhile.
            changed.wait_for(lambda: running > expected, timeout=0.3)
            running -= 1
        return item * 10

    assert core.parallel(workers, read, list(range(count))) == [i * 10 for i in range(count)]
    assert most == expected


@pytest.mark.parametrize(
    ("operation", "key", "arn_key"),
    [
        ("DescribeServices", "services", "serviceArn"),
        ("DescribeServiceRevisions", "serviceRevisions", "serviceRevisionArn"),
    ],
    ids=["services", "revisions"],
)
@pytest.mark.parametrize("left_out", ["the-last-one-asked-about", "the-whole-list"])
def test_the_item_ecs_leaves_out_silently_is_the_one_named(
    ecs_world: EcsWorld, aws: Workloads, operation: str, key: str, arn_key: str, left_out: str
) -> None:
    """Two services with current revisions, each asked about in one call: the answer drops one
    without a failure (or its whole list), and the error names the one it dropped."""
    aws.create_service("prod", "worker", aws.register_task_definition("worker", [f"repo@{C}"]))
    asked: list[str] = []
    dropped: list[str] = []

    def ask(params: dict[str, Any], **_: Any) -> None:
        asked.extend(params.get("services") or params.get("serviceRevisionArns") or [])

    def drop(parsed: dict[str, Any], **_: Any) -> None:
        if left_out == "the-whole-list":
            dropped.append(asked[0])
            parsed.pop(key)
        else:
            dropped.append(parsed[key].pop()[arn_key])
            assert dropped[-1] == asked[-1]

    with AwsEvents() as events:
        events.on(f"before-parameter-build.ecs.{operation}", ask)
        events.on(f"after-call.ecs.{operation}", drop)
        with pytest.raises(PinSourceError) as raised:
            EcsPins(client("ecs")).read()
    assert len(asked) == 3 if operation == "DescribeServices" else len(asked) == 2
    assert raised.value.message == (
        f"{operation} {CLUSTER}: {dropped[0]}: neither described nor reported as a failure"
    )


def test_a_task_definition_ecs_does_not_describe_fails_the_source_naming_it(
    aws: Workloads,
) -> None:
    """An answer without the task definition asked for describes none: read as empty, it would
    pin nothing of a definition that may run, and say nothing."""
    web = aws.register_task_definition("web", [f"repo@{A}"])

    def undescribed(parsed: dict[str, Any], **_: Any) -> None:
        parsed.pop("taskDefinition")

    with AwsEvents() as events:
        events.on("after-call.ecs.DescribeTaskDefinition", undescribed)
        with pytest.raises(PinSourceError) as raised:
            EcsPins(client("ecs")).read()
    assert raised.value.source == "ecs"
    assert raised.value.message == f"DescribeTaskDefinition {web}: not described"


def test_skipped_eks_clusters_are_not_read_and_a_warning_names_them(aws: Workloads) -> None:
    with KubernetesApi() as read, KubernetesApi() as skipped:
        read.add("pods", pod("web", [f"repo@{A}"]))
        skipped.add("pods", pod("old", [f"repo@{B}"]))
        aws.create_eks_cluster("prod", read.endpoint, read.ca_pem)
        aws.create_eks_cluster("legacy", skipped.endpoint, skipped.ca_pem)
        aws.create_eks_cluster("sandbox", skipped.endpoint, skipped.ca_pem)
        with recorded() as records:
            found = EksPins(client, skip=["legacy", "sandbox", "gone"]).read()
    assert [(p.digest, p.source) for p in found] == [(A, "eks:prod/default/pod/web container c0")]
    assert skipped.requests == []
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert [(r.getMessage(), vars(r).get("clusters")) for r in warnings] == [
        ("eks clusters skipped", ["legacy", "sandbox"])
    ]


def test_no_warning_when_no_eks_cluster_is_skipped(aws: Workloads) -> None:
    with KubernetesApi() as api:
        api.add("pods", pod("web", [f"repo@{A}"]))
        aws.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        with recorded() as records:
            EksPins(client, skip=["legacy"]).read()
    assert [r for r in records if r.levelno >= logging.WARNING] == []


def test_sources_that_read_no_aws_service_of_a_place_make_no_client_for_one() -> None:
    """Pins given in the settings and S3 objects (read with the function's own credentials)
    need no connection to workload accounts or regions: only S3's client is made."""
    made: list[str] = []

    def factory(service: str, **arguments: Any) -> Any:
        made.append(service)
        return client(service, **arguments)

    settings = load({"pins": [A], "pin_object_uris": ["s3://configs/pins.txt"]}, {})
    assert [s.name for s in pins.sources(settings, factory)] == ["setting", "s3"]
    assert made == ["s3"]


def test_an_eks_answer_that_is_not_json_fails_closed_naming_the_cluster(aws: Workloads) -> None:
    # A proxy in front of the API server answering its own page: nothing can be read from it.
    with KubernetesApi(body=b"<html><body>Sign in</body></html>") as api:
        aws.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        with pytest.raises(PinSourceError) as raised:
            EksPins(client).read()
    assert raised.value.source == "eks:prod"
    assert raised.value.message == (
        "GET /api/v1/pods: not JSON: Expecting value: line 1 column 1 (char 0)"
    )


def test_an_eks_refusal_is_quoted_to_its_first_300_bytes_undecodable_ones_replaced(
    aws: Workloads,
) -> None:
    # Not UTF-8 at first, then 200 two-byte characters: the 300th byte cuts the 150th in two.
    refusal = b"\xff" + "é".encode() * 200
    with KubernetesApi(status=502, body=refusal) as api:
        aws.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        with pytest.raises(PinSourceError) as raised:
            EksPins(client).read()
    assert raised.value.source == "eks:prod"
    assert raised.value.message == "GET /api/v1/pods: HTTP 502: \ufffd" + "é" * 149 + "\ufffd"


# status, headers -> why urllib3 would ask again, and the words of its refusal to
UNANSWERED = {
    "a-redirect": (301, {"Location": "/api/v1/pods?limit=500"}, "too many redirects"),
    "busy-with-a-retry-after": (503, {"Retry-After": "0"}, "too many 503 error responses"),
}


@pytest.mark.parametrize(("status", "headers", "why"), UNANSWERED.values(), ids=UNANSWERED)
def test_an_eks_api_server_that_redirects_or_asks_to_retry_is_asked_once_and_fails_closed(
    aws: Workloads, status: int, headers: dict[str, str], why: str
) -> None:
    # The source follows no redirect (the token would go where the cluster's answer says) and
    # does not wait for a busy cluster: a run's time is bounded, and it deletes nothing.
    with KubernetesApi(status=status, body=b"", headers=headers) as api:
        aws.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        with pytest.raises(PinSourceError) as raised:
            EksPins(client).read()
    assert len(api.requests) == 1
    assert raised.value.source == "eks:prod"
    assert raised.value.message.startswith("GET /api/v1/pods: MaxRetryError: ")
    assert raised.value.message.endswith(f"(Caused by ResponseError('{why}'))")


def test_an_eks_read_slower_than_the_timeout_is_not_tried_again(aws: Workloads) -> None:
    with KubernetesApi(delay=60.0) as api:  # answers only once the test is over
        api.add("pods", pod("web", [f"repo@{A}"]))
        aws.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        with pytest.raises(PinSourceError, match=r"read timeout=0\.2"):
            EksPins(client, timeout=0.2).read()
    assert len(api.requests) == 1  # no longer than its timeout: asked once


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # the body a presigned GET sends


def _sigv4_query_signature(method: str, url: str, headers: dict[str, str], secret: str) -> str:
    """The SigV4 signature of a presigned URL for `method`, as STS computes it when EKS sends the
    URL on (written from AWS's signing steps: no botocore)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "X-Amz-Signature"]
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query)
    )
    signed = dict(query)["X-Amz-SignedHeaders"]
    values = {"host": parts.netloc, **{k.lower(): v for k, v in headers.items()}}
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed.split(";"))
    request = "\n".join(
        [method, parts.path or "/", canonical_query, canonical_headers, signed, EMPTY_SHA256]
    )
    date, region, service, terminal = dict(query)["X-Amz-Credential"].split("/")[1:]
    scope = f"{date}/{region}/{service}/{terminal}"
    digest = hashlib.sha256(request.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{dict(query)['X-Amz-Date']}\n{scope}\n{digest}"
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, terminal):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_eks_token_is_signed_for_the_get_eks_sends_with_the_cluster_header(aws: Workloads) -> None:
    # EKS authenticates a token by sending its URL to STS with GET and the header
    # `x-k8s-aws-id: <cluster>`: a URL signed for another method is refused.
    sts = client("sts", region_name="us-east-1")
    pins.eks.register_token_header(sts)
    encoded = pins.eks.token(sts, "prod").removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    credentials = boto3.Session().get_credentials()  # moto's, as the client signs with
    assert credentials is not None
    secret = str(credentials.get_frozen_credentials().secret_key)
    cluster = {"x-k8s-aws-id": "prod"}
    assert _sigv4_query_signature("GET", url, cluster, secret) == signature
    assert _sigv4_query_signature("POST", url, cluster, secret) != signature
    assert _sigv4_query_signature("GET", url, {"x-k8s-aws-id": "other"}, secret) != signature
