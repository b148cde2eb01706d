"""harness.workloads: moto's ECS and Lambda corrected the way the pin sources rely on."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from harness import FakeRegistry, oci
from harness.workloads import AwsEvents, InspectorCoverage, Workloads, resolve_image

REPO = "app"


@pytest.fixture
def aws() -> Any:
    with FakeRegistry() as registry, Workloads(registry) as workloads:
        yield workloads


def test_ecs_listings_page_at_the_service_limit(aws: Workloads) -> None:
    image = aws.image_uri(REPO, "sha256:" + "a" * 64)
    for i in range(105):
        aws.register_task_definition(f"family-{i % 4}", [image], fast=True)
    ecs = aws.client("ecs")
    first = ecs.list_task_definitions()
    assert len(first["taskDefinitionArns"]) == 100
    second = ecs.list_task_definitions(nextToken=first["nextToken"])
    assert len(second["taskDefinitionArns"]) == 5
    assert "nextToken" not in second
    small = ecs.list_task_definitions(maxResults=3)
    assert len(small["taskDefinitionArns"]) == 3
    with pytest.raises(ClientError):
        ecs.list_task_definitions(maxResults=101)
    pages = ecs.get_paginator("list_task_definitions").paginate(PaginationConfig={"PageSize": 10})
    assert sum(len(p["taskDefinitionArns"]) for p in pages) == 105


def test_a_task_records_the_digest_each_container_image_had_when_it_started(
    aws: Workloads,
) -> None:
    registry = aws.registry
    old = registry.push(REPO, oci.image_manifest("old"), tags=["latest"])
    sidecar = registry.push("sidecar", oci.image_manifest("sidecar"))
    definition = aws.register_task_definition(
        "web", [aws.image_uri(REPO, "latest"), aws.image_uri("sidecar", sidecar), "nginx:1"]
    )
    task = aws.run_task("prod", definition)
    registry.push(REPO, oci.image_manifest("new"), tags=["latest"])  # the tag moves on
    described = aws.client("ecs").describe_tasks(cluster="prod", tasks=[task])["tasks"][0]
    containers = described["containers"]
    assert [c.get("imageDigest") for c in containers] == [old, sidecar, None]
    assert {c["lastStatus"] for c in containers} == {"RUNNING"}


def test_lambda_resolves_the_image_when_code_is_deployed_and_versions_keep_it(
    aws: Workloads,
) -> None:
    registry = aws.registry
    first = registry.push(REPO, oci.image_manifest("v1"), tags=["latest"])
    version = aws.create_image_function("fn", aws.image_uri(REPO, "latest"))
    second = registry.push(REPO, oci.image_manifest("v2"), tags=["latest"])
    lam = aws.client("lambda")
    code = lam.get_function(FunctionName="fn", Qualifier=version)["Code"]
    assert code["ResolvedImageUri"] == aws.image_uri(REPO, first)
    assert code["ImageUri"] == aws.image_uri(REPO, "latest")
    newer = aws.update_image_function("fn", aws.image_uri(REPO, "latest"))
    assert lam.get_function(FunctionName="fn", Qualifier=version)["Code"][
        "ResolvedImageUri"
    ] == aws.image_uri(REPO, first)
    for qualifier in (newer, "$LATEST"):
        resolved = lam.get_function(FunctionName="fn", Qualifier=qualifier)["Code"]
        assert resolved["ResolvedImageUri"] == aws.image_uri(REPO, second)
    by_digest = aws.create_image_function("pinned", aws.image_uri(REPO, first), publish=False)
    assert by_digest == "$LATEST"
    code = lam.get_function(FunctionName="pinned")["Code"]
    assert code["ResolvedImageUri"] == aws.image_uri(REPO, first)
    with pytest.raises(ClientError, match="does not exist"):
        aws.create_image_function("missing", aws.image_uri(REPO, "sha256:" + "0" * 64))


def test_lambda_listings_page_at_fifty(aws: Workloads) -> None:
    digest = aws.registry.push(REPO, oci.image_manifest("v1"))
    for i in range(52):
        aws.create_image_function(f"fn-{i:02}", aws.image_uri(REPO, digest), publish=False)
    lam = aws.client("lambda")
    first = lam.list_functions()
    assert len(first["Functions"]) == 50
    rest = lam.list_functions(Marker=first["NextMarker"])
    assert len(rest["Functions"]) == 2
    assert "NextMarker" not in rest
    names = [
        f["FunctionName"]
        for page in lam.get_paginator("list_functions").paginate()
        for f in page["Functions"]
    ]
    assert names == [f"fn-{i:02}" for i in range(52)]


def test_resolve_image_reads_tags_and_digests(aws: Workloads) -> None:
    digest = aws.registry.push("team/app", oci.image_manifest("x"), tags=["v1"])
    assert resolve_image(aws.image_uri("team/app", "v1")) == digest
    assert resolve_image(aws.image_uri("team/app", digest)) == digest
    assert resolve_image(aws.image_uri("team/app", "v2")) is None
    assert resolve_image(aws.image_uri("team/app", "v1") + "@" + digest) == digest
    assert resolve_image("docker.io/library/nginx:1") is None


def test_injected_errors_go_through_botocore_retries(
    aws: Workloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real retries, no real waiting.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    with AwsEvents() as events:
        events.fail("ssm", "GetParametersByPath", "ThrottlingException", when=lambda n: n <= 2)
        events.count("before-send.ssm.GetParametersByPath")
        events.fail("s3", "GetObject", "AccessDenied", status=403)
        aws.put_parameter("/p/x", "y")
        ssm = boto3.client("ssm", config=Config(retries={"mode": "standard", "max_attempts": 3}))
        ssm.get_parameters_by_path(Path="/p")  # two throttles, then moto answers
        assert events.calls["before-send.ssm.GetParametersByPath"] == 3
        aws.put_object("s3://bucket/key", "x")
        with pytest.raises(ClientError) as raised:
            boto3.client("s3").get_object(Bucket="bucket", Key="key")
        assert raised.value.response["Error"]["Code"] == "AccessDenied"
    # Gone after exit.
    assert boto3.client("s3").get_object(Bucket="bucket", Key="key")["Body"].read() == b"x"


def test_a_service_revision_keeps_the_digest_resolved_at_deploy_until_the_next_deploy(
    aws: Workloads,
) -> None:
    registry = aws.registry
    old = registry.push(REPO, oci.image_manifest("old"), tags=["latest"])
    first = aws.register_task_definition("web", [aws.image_uri(REPO, "latest")])
    aws.create_service("prod", "web", first, desired=3)
    new = registry.push(REPO, oci.image_manifest("new"), tags=["latest"])
    ecs = aws.client("ecs")

    def current() -> tuple[list[Any], list[Any]]:
        service = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
        arns = [r["arn"] for r in service["currentServiceRevisions"]]
        counts = [r["requestedTaskCount"] for r in service["currentServiceRevisions"]]
        revisions = ecs.describe_service_revisions(serviceRevisionArns=arns)["serviceRevisions"]
        return [i["imageDigest"] for r in revisions for i in r["containerImages"]], counts

    assert current() == ([old], [3])
    aws.update_service("prod", "web", desired=0)  # scaling deploys nothing new
    assert current() == ([old], [0])
    second = aws.register_task_definition("web", [aws.image_uri(REPO, "latest")])
    aws.update_service("prod", "web", task_definition=second)
    assert current() == ([new], [0])
    missing = ecs.describe_service_revisions(
        serviceRevisionArns=["arn:aws:ecs:us-east-1:123456789012:service-revision/prod/x/1"]
    )
    assert missing["failures"][0]["reason"] == "MISSING"
    with pytest.raises(ClientError):
        ecs.describe_service_revisions(serviceRevisionArns=["x"] * 21)


def test_ecs_services_page_by_ten_by_default(aws: Workloads) -> None:
    definition = aws.register_task_definition("web", ["nginx:1"])
    for i in range(12):
        aws.create_service("prod", f"web-{i:02}", definition, desired=0)
    ecs = aws.client("ecs")
    first = ecs.list_services(cluster="prod")
    assert len(first["serviceArns"]) == 10
    second = ecs.list_services(cluster="prod", nextToken=first["nextToken"])
    assert len(second["serviceArns"]) == 2 and "nextToken" not in second


def test_a_secure_string_read_without_decryption_is_ciphertext(aws: Workloads) -> None:
    value = "repo@sha256:" + "a" * 64
    aws.put_parameter("/deploy/web", value, secure=True)
    ssm = aws.client("ssm")
    for decrypt, readable in ((True, True), (False, False)):
        parameter = ssm.get_parameter(Name="/deploy/web", WithDecryption=decrypt)["Parameter"]
        by_path = ssm.get_parameters_by_path(Path="/deploy", WithDecryption=decrypt)
        for found in (parameter["Value"], by_path["Parameters"][0]["Value"]):
            assert (found == value) is readable
            assert (value in found) is readable


def test_inspector_rejects_a_comparison_it_does_not_know(aws: Workloads) -> None:
    coverage = InspectorCoverage(aws.account_id, aws.region)
    coverage.add(REPO, "sha256:" + "a" * 64, in_use=1)
    with AwsEvents() as events:
        coverage.install(events)
        inspector = boto3.client("inspector2", region_name=aws.region)
        wanted = {"comparison": "EQUALS", "value": "AWS_ECR_CONTAINER_IMAGE"}
        found = inspector.list_coverage(filterCriteria={"resourceType": [wanted]})
        assert len(found["coveredResources"]) == 1
        with pytest.raises(ClientError, match="ValidationException"):
            inspector.list_coverage(
                filterCriteria={"resourceType": [{**wanted, "comparison": "equals"}]}
            )
