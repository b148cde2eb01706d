"""Where pins live: moto's SSM, S3, ECS and Lambda, corrected where they differ from AWS in what
the sweeper's pin sources read, plus helpers to build those states and to inject faults.

Use inside an entered :class:`harness.FakeRegistry` (which starts moto)::

    with FakeRegistry() as registry, Workloads(registry) as aws:
        aws.put_parameter("/deploy/app", aws.image_uri("app", digest))

While a :class:`Workloads` is entered these moto functions are replaced
(``unittest.mock.patch.object``, undone on exit, reference-counted like harness.ecr):

==============================================  ===============================================
patched                                         correction
==============================================  ===============================================
``EC2ContainerServiceResponse.list_task_        moto returns everything in one answer; AWS pages
definitions``, ``list_clusters``,               (``maxResults`` 1..100, default 100, and
``list_tasks``                                  ``nextToken``). Pages are served here.
``ecs.models.Task.__init__``                    moto gives a task one container (the first
                                                definition) without ``imageDigest``; ECS runs
                                                every container and records the digest its image
                                                resolved to *when the task started*. Resolved
                                                here against moto's ECR (by tag or digest);
                                                ``lastStatus`` RUNNING.
``EC2ContainerServiceResponse.list_services``   ECS pages by 10 by default (``maxResults`` up to
                                                100); moto does not. Pages are served here.
``ecs.models.Service.__init__``,                moto has no service revisions (5.2.1 does not
``EC2ContainerServiceBackend.update_service``,  implement ``DescribeServiceRevisions``). ECS makes
``describe_service_revisions`` (added)          one when a service is created or deployed (a new
                                                task definition, ``forceNewDeployment``), with
                                                ``containerImages[].imageDigest`` resolved then,
                                                and lists it in ``currentServiceRevisions``, at
                                                any desired count (zero included). So here.
``LambdaResponse.list_functions``,              moto does not page; AWS returns at most 50 items
``list_versions_by_function``                   per answer with ``NextMarker``.
``LambdaFunction._set_function_code``,          moto fakes ``ResolvedImageUri`` (a hash of the
``LambdaFunction.get_code``                     URI string, and a broken URI for ``repo@digest``)
                                                unless ``MOTO_LAMBDA_STUB_ECR=false``, whose path
                                                cannot read the corrected ECR and fails on an
                                                index. Lambda resolves ``ImageUri`` to a digest
                                                when code is deployed and keeps it in every
                                                published version; so does the harness (a
                                                missing image is ``InvalidParameterValueException``
                                                as in Lambda). Stub mode is forced on.
``ssm.models.Parameter.encrypt``, ``decrypt``   moto answers a SecureString asked for without
                                                decryption with its plain text behind a
                                                ``kms:<key>:`` prefix; SSM gives ciphertext, in
                                                which no digest can be read. So here (base64).
==============================================  ===============================================

Paging tokens are offsets into the current listing: good enough for tests that do not change
the listing while paging through it. Why patch moto rather than split pages in a botocore hook:
the code under test then drives real paginators against a server that pages, exactly as in AWS,
and the tests need no knowledge of which calls the code makes.

:class:`AwsEvents` registers botocore event handlers on boto3's default session, so clients that
the handler under test creates later (``boto3.client(...)`` in app.py) get them; it unregisters
them on exit. Its :meth:`AwsEvents.fail` answers an operation with an AWS error from
``before-send`` (botocore's retry logic still runs, as against AWS).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar
from unittest import mock

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.loaders import Loader, create_loader
from botocore.session import Session as BotocoreSession
from moto import settings as moto_settings
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.awslambda.responses import LambdaResponse
from moto.core.responses import ActionResult
from moto.ecr.models import ecr_backends
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import Container, EC2ContainerServiceBackend, Service, Task, ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.eks.models import eks_backends
from moto.ssm.models import Parameter as SsmParameter

from .ecr import FakeRegistry

__all__ = ["AwsEvents", "Workloads", "resolve_image", "shared_botocore_loader"]

ECS_PAGE = 100  # ListTaskDefinitions, ListClusters, ListTasks: maxResults 1..100, default 100
ECS_SERVICES_PAGE = 10  # ListServices: maxResults 1..100, default 10
ECS_REVISIONS_BATCH = 20  # DescribeServiceRevisions: at most 20 ARNs
LAMBDA_PAGE = 50  # ListFunctions, ListVersionsByFunction: at most 50 items per answer

_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<rest>.+)$"
)
_T = TypeVar("_T")


def _split_reference(rest: str) -> tuple[str, str | None, str | None]:
    """repo[:tag][@digest] -> (repo, tag, digest); no tag and no digest means tag latest."""
    name, _, digest = rest.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    if not digest and tag is None:
        tag = "latest"
    return name, tag, digest or None


def resolve_image(reference: str) -> str | None:
    """The digest an ECR image reference names in moto's ECR right now (None when it is not an
    ECR reference, or the repository, tag or digest does not exist)."""
    match = _ECR_URI.match(reference)
    if match is None:
        return None
    repo_name, tag, digest = _split_reference(match["rest"])
    try:
        backend = ecr_backends[match["account"]][match["region"]]
    except KeyError:
        return None
    repository = backend.repositories.get(repo_name)
    if repository is None:
        return None
    for image in repository.images:
        image_digest = image.get_image_digest()
        if digest is not None and image_digest == digest:
            return str(image_digest)
        if digest is None and tag in image.image_tags:
            return str(image_digest)
    return None


def _repository_part(reference: str) -> str:
    match = _ECR_URI.match(reference)
    rest = match["rest"] if match else reference
    repo_name, _, _ = _split_reference(rest)
    prefix = reference[: len(reference) - len(rest)]
    return prefix + repo_name


# --- paging --------------------------------------------------------------------------------------


def _token(op: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"op": op, "offset": offset}).encode()).decode()


def _offset(op: str, token: str | None, error: Callable[[str], Exception]) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["op"] != op:
            raise ValueError(token)
        return int(data["offset"])
    except (ValueError, KeyError, TypeError):
        raise error("Invalid token") from None


def _page(
    items: Sequence[_T],
    op: str,
    token: str | None,
    requested: int | None,
    maximum: int,
    error: Callable[[str], Exception],
) -> tuple[list[_T], str | None]:
    start = _offset(op, token, error)
    size = maximum if requested is None else min(int(requested), maximum)
    if size < 1:
        raise error(f"maximum results must be at least 1, got {requested}")
    page = list(items[start : start + size])
    following = start + len(page)
    return page, (_token(op, following) if following < len(items) else None)


def _ecs_page(
    self: EC2ContainerServiceResponse, op: str, items: Sequence[_T]
) -> tuple[list[_T], str | None]:
    requested = self._get_param("maxResults")
    if requested is not None and not 1 <= int(requested) <= ECS_PAGE:
        raise InvalidParameterException(f"maxResults must be between 1 and {ECS_PAGE}")
    return _page(
        items, op, self._get_param("nextToken"), requested, ECS_PAGE, InvalidParameterException
    )


def _ecs_list_task_definitions(self: EC2ContainerServiceResponse) -> ActionResult:
    arns = self.ecs_backend.list_task_definitions(
        self._get_param("familyPrefix"), self._get_param("status", "ACTIVE")
    )
    page, token = _ecs_page(self, "ListTaskDefinitions", arns)
    return ActionResult({"taskDefinitionArns": page, **({"nextToken": token} if token else {})})


def _ecs_list_clusters(self: EC2ContainerServiceResponse) -> ActionResult:
    page, token = _ecs_page(self, "ListClusters", self.ecs_backend.list_clusters())
    return ActionResult({"clusterArns": page, **({"nextToken": token} if token else {})})


def _ecs_list_tasks(self: EC2ContainerServiceResponse) -> ActionResult:
    tasks = self.ecs_backend.list_tasks(
        self._get_param("cluster", "default"),
        self._get_param("containerInstance"),
        self._get_param("family"),
        self._get_param("startedBy"),
        self._get_param("serviceName"),
        self._get_param("desiredStatus"),
    )
    page, token = _ecs_page(self, "ListTasks", [t.task_arn for t in tasks])
    return ActionResult({"taskArns": page, **({"nextToken": token} if token else {})})


def _ecs_list_services(self: EC2ContainerServiceResponse) -> ActionResult:
    arns = self.ecs_backend.list_services(
        self._get_param("cluster", "default"),
        self._get_param("schedulingStrategy"),
        launch_type=self._get_param("launchType"),
    )
    requested = self._get_param("maxResults")
    if requested is not None and not 1 <= int(requested) <= ECS_PAGE:
        raise InvalidParameterException(f"maxResults must be between 1 and {ECS_PAGE}")
    page, token = _page(
        arns,
        "ListServices",
        self._get_param("nextToken"),
        requested,
        ECS_SERVICES_PAGE,
        InvalidParameterException,
    )
    return ActionResult({"serviceArns": page, **({"nextToken": token} if token else {})})


# --- ECS service revisions -----------------------------------------------------------------------

_original_service_init = Service.__init__
_original_update_service = EC2ContainerServiceBackend.update_service


def _deploy(service: Service) -> None:
    """A new service revision, the service's only current one: its images resolved now."""
    if not service.task_definition:
        return
    backend = service._backend
    definition = backend.describe_task_definition(service.task_definition)
    revisions: dict[str, dict[str, Any]] = getattr(service, "_harness_revisions", {})
    arn = (
        f"arn:aws:ecs:{service.region_name}:{service._account_id}:service-revision/"
        f"{service.cluster_name}/{service.name}/{len(revisions) + 1:019d}"
    )
    images = []
    for spec in definition.container_definitions:
        image = str(spec.get("image") or "")
        entry = {"containerName": spec.get("name"), "image": image}
        digest = resolve_image(image)
        if digest is not None:
            entry["imageDigest"] = digest
        images.append(entry)
    revisions[arn] = {
        "serviceRevisionArn": arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster_arn,
        "taskDefinition": service.task_definition,
        "containerImages": images,
    }
    service._harness_revisions = revisions  # type: ignore[attr-defined]
    service.current_service_revisions = [  # type: ignore[attr-defined]  # serialised by moto
        {
            "arn": arn,
            "requestedTaskCount": service.desired_count,
            "runningTaskCount": service.desired_count,
            "pendingTaskCount": 0,
        }
    ]


def _service_init(self: Service, *args: Any, **kwargs: Any) -> None:
    _original_service_init(self, *args, **kwargs)
    _deploy(self)


def _update_service(self: EC2ContainerServiceBackend, properties: dict[str, Any]) -> Service:
    deploys = bool(properties.get("task_definition") or properties.get("force_new_deployment"))
    service = _original_update_service(self, properties)
    if deploys:
        _deploy(service)
    elif hasattr(service, "current_service_revisions"):
        for current in service.current_service_revisions:
            current["requestedTaskCount"] = current["runningTaskCount"] = service.desired_count
    return service


def _ecs_describe_service_revisions(self: EC2ContainerServiceResponse) -> ActionResult:
    arns = self._get_param("serviceRevisionArns", [])
    if not 1 <= len(arns) <= ECS_REVISIONS_BATCH:
        raise InvalidParameterException(
            f"serviceRevisionArns: 1 to {ECS_REVISIONS_BATCH} ARNs, got {len(arns)}"
        )
    found, failures = [], []
    for arn in arns:
        _, cluster, name, _ = (arn.split(":", 5)[-1] + "///").split("/", 3)
        service = self.ecs_backend.services.get(f"{cluster}:{name}")
        revision = getattr(service, "_harness_revisions", {}).get(arn)
        if revision is None:
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(revision)
    return ActionResult({"serviceRevisions": found, "failures": failures})


def _lambda_error(message: str) -> Exception:
    return LambdaClientError("InvalidParameterValueException", message)


def _lambda_page(self: LambdaResponse, op: str, items: Sequence[_T]) -> tuple[list[_T], str | None]:
    marker = self.querystring.get("Marker", [None])[0]
    requested = self.querystring.get("MaxItems", [None])[0]
    return _page(
        items, op, marker, None if requested is None else int(requested), LAMBDA_PAGE, _lambda_error
    )


def _lambda_list_functions(self: LambdaResponse) -> str:
    version = self.querystring.get("FunctionVersion", [None])[0]
    functions = sorted(
        self.backend.list_functions(version), key=lambda fn: (fn.function_name, str(fn.version))
    )
    page, marker = _lambda_page(self, "ListFunctions", functions)
    result: dict[str, Any] = {"Functions": [fn.get_configuration() for fn in page]}
    if marker:
        result["NextMarker"] = marker
    return json.dumps(result)


def _lambda_list_versions_by_function(self: LambdaResponse) -> str:
    function_name = self.path.split("/")[-2]
    versions = list(self.backend.list_versions_by_function(function_name))
    page, marker = _lambda_page(self, f"ListVersionsByFunction:{function_name}", versions)
    result: dict[str, Any] = {"Versions": [fn.get_configuration() for fn in page]}
    if marker:
        result["NextMarker"] = marker
    return json.dumps(result)


# --- what ECS tasks and Lambda functions run -----------------------------------------------------

_original_task_init = Task.__init__
_original_set_function_code = LambdaFunction._set_function_code
_original_get_code = LambdaFunction.get_code


def _task_init(self: Task, *args: Any, **kwargs: Any) -> None:
    _original_task_init(self, *args, **kwargs)
    definition = self._backend.describe_task_definition(self.task_definition_arn)
    containers = []
    for spec in definition.container_definitions:
        container = Container(definition)  # type: ignore[abstract]  # moto's own call
        container.name = spec.get("name")
        container.image = spec.get("image")
        container.cpu = spec.get("cpu")
        container.memory = spec.get("memory")
        container.environment = spec.get("environment")
        container.command = spec.get("command")
        container.last_status = "RUNNING"
        digest = resolve_image(str(spec.get("image") or ""))
        if digest is not None:
            container.image_digest = digest  # type: ignore[attr-defined]  # serialised as imageDigest
        containers.append(container)
    self.containers = containers


def _set_function_code(self: LambdaFunction, updated_spec: dict[str, Any]) -> None:
    _original_set_function_code(self, updated_spec)
    from_update = updated_spec is not self.code
    if "ImageUri" not in updated_spec or (from_update and updated_spec.get("DryRun")):
        return
    uri = updated_spec["ImageUri"]
    digest = resolve_image(uri)
    if digest is None:
        raise LambdaClientError(
            "InvalidParameterValueException",
            f"Source image {uri} does not exist. Provide a valid source image.",
        )
    # Attributes, not self.code: moto's published versions share the code dict with $LATEST.
    self._harness_image_uri = uri  # type: ignore[attr-defined]
    self._harness_resolved_uri = f"{_repository_part(uri)}@{digest}"  # type: ignore[attr-defined]
    self.code_sha_256 = digest.removeprefix("sha256:")


def _get_code(self: LambdaFunction) -> dict[str, Any]:
    response: dict[str, Any] = _original_get_code(self)
    resolved = getattr(self, "_harness_resolved_uri", None)
    if resolved is not None and "Code" in response:
        response["Code"]["ImageUri"] = self._harness_image_uri  # type: ignore[attr-defined]
        response["Code"]["ResolvedImageUri"] = resolved
    return response


def _ssm_encrypt(self: SsmParameter, value: str) -> str:
    """A SecureString's value as SSM gives it without decryption: ciphertext, in which no digest
    can be read (moto gives the plain text behind a `kms:<key>:` prefix)."""
    return f"kms:{self.keyid}:" + base64.b64encode(value.encode()).decode()


def _ssm_decrypt(self: SsmParameter, value: str) -> str | None:
    plain = _original_ssm_decrypt(self, value)
    if self.parameter_type != "SecureString" or plain is None:
        return plain
    return base64.b64decode(plain).decode()


_original_ssm_decrypt = SsmParameter.decrypt

_PATCHES: list[tuple[Any, str, Any]] = [
    (SsmParameter, "encrypt", _ssm_encrypt),
    (SsmParameter, "decrypt", _ssm_decrypt),
    (EC2ContainerServiceResponse, "list_task_definitions", _ecs_list_task_definitions),
    (EC2ContainerServiceResponse, "list_clusters", _ecs_list_clusters),
    (EC2ContainerServiceResponse, "list_tasks", _ecs_list_tasks),
    (EC2ContainerServiceResponse, "list_services", _ecs_list_services),
    (EC2ContainerServiceResponse, "describe_service_revisions", _ecs_describe_service_revisions),
    (Service, "__init__", _service_init),
    (EC2ContainerServiceBackend, "update_service", _update_service),
    (Task, "__init__", _task_init),
    (LambdaResponse, "list_functions", _lambda_list_functions),
    (LambdaResponse, "list_versions_by_function", _lambda_list_versions_by_function),
    (LambdaFunction, "_set_function_code", _set_function_code),
    (LambdaFunction, "get_code", _get_code),
    (moto_settings, "lambda_stub_ecr", lambda: True),
]


class _Installed:
    """The patches, applied while at least one Workloads is entered (moto's classes are global)."""

    lock = threading.Lock()
    users = 0
    stack: ExitStack | None = None

    @classmethod
    def install(cls) -> None:
        with cls.lock:
            if cls.users == 0:
                stack = ExitStack()
                for target, name, replacement in _PATCHES:
                    stack.enter_context(
                        mock.patch.object(
                            target, name, replacement, create=not hasattr(target, name)
                        )
                    )
                cls.stack = stack
            cls.users += 1

    @classmethod
    def uninstall(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users == 0 and cls.stack is not None:
                cls.stack.close()
                cls.stack = None


# --- the test-facing API -----------------------------------------------------------------------


class Workloads:
    """SSM parameters, S3 objects, ECS task definitions and tasks, Lambda image functions, in the
    account and region of a :class:`FakeRegistry`, with the corrections above installed."""

    def __init__(
        self, registry: FakeRegistry, *, account_id: str | None = None, region: str | None = None
    ) -> None:
        """Beside the registry, or in a workload account and region of a central registry
        (`account_id`, `region`): its clients then use credentials of a role assumed in that
        account through moto's STS, which is how moto selects an account's backends."""
        self.registry = registry
        self.region = region or registry.region
        self.account_id = account_id or registry.account_id
        self._entered = False
        self._role_arn: str | None = None
        self._clients: dict[str, Any] = {}
        self._credentials: dict[str, str] = {}

    def __enter__(self) -> Workloads:
        _Installed.install()
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._entered:
            self._entered = False
            _Installed.uninstall()

    def client(self, service: str) -> Any:
        """The harness's own client (made once: it does not see handlers added later)."""
        if service not in self._clients:
            if self.account_id != self.registry.account_id and not self._credentials:
                answer = boto3.client("sts", region_name=self.region).assume_role(
                    RoleArn=f"arn:aws:iam::{self.account_id}:role/harness-workloads",
                    RoleSessionName="harness",
                )["Credentials"]
                self._credentials = {
                    "aws_access_key_id": answer["AccessKeyId"],
                    "aws_secret_access_key": answer["SecretAccessKey"],
                    "aws_session_token": answer["SessionToken"],
                }
            self._clients[service] = boto3.client(  # type: ignore[call-overload]
                service, region_name=self.region, **self._credentials
            )
        return self._clients[service]

    def image_uri(self, repo: str, reference: str) -> str:
        """``<account>.dkr.ecr.<region>.amazonaws.com/repo@sha256:...`` or ``...repo:tag``, in
        the registry's account and region (where the images are, wherever they run)."""
        separator = "@" if reference.startswith("sha256:") else ":"
        registry = f"{self.registry.account_id}.dkr.ecr.{self.registry.region}.amazonaws.com"
        return f"{registry}/{repo}{separator}{reference}"

    # -- SSM and S3 --

    def put_parameter(self, name: str, value: str, *, secure: bool = False) -> None:
        self.client("ssm").put_parameter(
            Name=name, Value=value, Type="SecureString" if secure else "String", Overwrite=True
        )

    def put_object(self, uri: str, body: str | bytes) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
        except s3.exceptions.ClientError:
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    # -- ECS --

    def register_task_definition(
        self, family: str, images: Sequence[str], *, fast: bool = False
    ) -> str:
        """One container per image; ``fast`` writes straight into moto's backend (no HTTP)."""
        containers = [
            {"name": f"c{i}", "image": image, "memory": 128} for i, image in enumerate(images)
        ]
        if fast:
            backend = ecs_backends[self.account_id][self.region]
            return str(
                backend.register_task_definition(
                    family=family, container_definitions=containers, volumes=None
                ).arn
            )
        response = self.client("ecs").register_task_definition(
            family=family, containerDefinitions=containers
        )
        return str(response["taskDefinition"]["taskDefinitionArn"])

    def deregister_task_definition(self, arn: str) -> None:
        self.client("ecs").deregister_task_definition(taskDefinition=arn)

    def run_task(self, cluster: str, task_definition: str) -> str:
        """Start a Fargate task now: its containers record the digests their images have now."""
        ecs = self.client("ecs")
        if not ecs.describe_clusters(clusters=[cluster])["clusters"]:
            ecs.create_cluster(clusterName=cluster)
        response = ecs.run_task(
            cluster=cluster, taskDefinition=task_definition, launchType="FARGATE"
        )
        return str(response["tasks"][0]["taskArn"])

    def stop_task(self, cluster: str, task: str) -> None:
        self.client("ecs").stop_task(cluster=cluster, task=task)

    def create_service(
        self, cluster: str, name: str, task_definition: str, *, desired: int = 1
    ) -> str:
        """A service, deployed now: its revision records the digests its images have now."""
        ecs = self.client("ecs")
        if not ecs.describe_clusters(clusters=[cluster])["clusters"]:
            ecs.create_cluster(clusterName=cluster)
        response = ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=task_definition,
            desiredCount=desired,
            launchType="FARGATE",
        )
        return str(response["service"]["serviceArn"])

    def forget_service_revisions(self, cluster: str, name: str) -> None:
        """As a service last deployed before ECS recorded revisions (late 2024): none."""
        service = ecs_backends[self.account_id][self.region].services[f"{cluster}:{name}"]
        service._harness_revisions = {}  # type: ignore[attr-defined]
        service.current_service_revisions = []  # type: ignore[attr-defined]

    def update_service(
        self,
        cluster: str,
        name: str,
        *,
        desired: int | None = None,
        task_definition: str | None = None,
    ) -> None:
        """Scale (no new revision) or deploy a task definition (a new revision)."""
        arguments: dict[str, Any] = {"cluster": cluster, "service": name}
        if desired is not None:
            arguments["desiredCount"] = desired
        if task_definition is not None:
            arguments["taskDefinition"] = task_definition
        self.client("ecs").update_service(**arguments)

    # -- EKS --

    def create_eks_cluster(self, name: str, endpoint: str, ca_pem: bytes) -> None:
        """An EKS cluster whose DescribeCluster points at `endpoint` (a harness.kubernetes
        server) with `ca_pem` as its CA; moto makes up both."""
        self.client("eks").create_cluster(
            name=name,
            roleArn=f"arn:aws:iam::{self.account_id}:role/eks",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]},
        )
        cluster = eks_backends[self.account_id][self.region].clusters[name]
        cluster.endpoint = endpoint
        cluster.certificate_authority = {"data": base64.b64encode(ca_pem).decode()}

    # -- Lambda --

    def _role(self) -> str:
        if self._role_arn is None:
            iam = self.client("iam")
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            try:
                self._role_arn = iam.get_role(RoleName="harness-lambda")["Role"]["Arn"]
            except iam.exceptions.NoSuchEntityException:
                self._role_arn = iam.create_role(
                    RoleName="harness-lambda", AssumeRolePolicyDocument=json.dumps(trust)
                )["Role"]["Arn"]
        return self._role_arn

    def create_image_function(self, name: str, image_uri: str, *, publish: bool = True) -> str:
        """A container-image function; returns the published version (or ``$LATEST``)."""
        response = self.client("lambda").create_function(
            FunctionName=name,
            Role=self._role(),
            PackageType="Image",
            Code={"ImageUri": image_uri},
            Publish=publish,
        )
        return str(response.get("Version", "$LATEST"))

    def create_zip_function(self, name: str) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return event\n")
        self.client("lambda").create_function(
            FunctionName=name,
            Role=self._role(),
            Runtime="python3.13",
            Handler="app.handler",
            Code={"ZipFile": buffer.getvalue()},
        )

    def update_image_function(self, name: str, image_uri: str, *, publish: bool = True) -> str:
        """Deploy new code; earlier published versions keep running what they resolved to."""
        lam = self.client("lambda")
        lam.update_function_code(FunctionName=name, ImageUri=image_uri)
        if not publish:
            return "$LATEST"
        return str(lam.publish_version(FunctionName=name)["Version"])

    def publish_versions(self, name: str, image_uris: Sequence[str]) -> list[str]:
        """Deploy and publish each URI in turn, straight into moto's backend (no HTTP: fast);
        the same state as :meth:`update_image_function` with ``publish=True`` for each."""
        backend = lambda_backends[self.account_id][self.region]
        versions = []
        for uri in image_uris:
            backend.get_function(name).update_function_code({"ImageUri": uri})
            published = backend.publish_version(name)
            assert published is not None, name
            versions.append(str(published.version))
        return versions


# --- botocore events on the default session -----------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(service: str, code: str, message: str, status: int = 400) -> AWSResponse:
    """An AWS error answer in the service's protocol (XML for S3 and STS, JSON for the others)."""
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        content_type = "application/xml"
    elif service == "sts":  # the query protocol
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
        )
        content_type = "text/xml"
    else:
        body = json.dumps({"__type": code, "message": message, "Message": message})
        content_type = "application/x-amz-json-1.1"
    headers = HTTPHeaders()
    headers["Content-Type"] = content_type
    headers["x-amzn-ErrorType"] = code
    return AWSResponse("https://harness.invalid/", status, headers, _Raw(body.encode()))


@dataclass
class AwsEvents:
    """botocore event handlers on boto3's default session, removed on exit."""

    calls: dict[str, int] = field(default_factory=dict)
    _registered: list[tuple[str, Callable[..., Any], str]] = field(default_factory=list)

    def __enter__(self) -> AwsEvents:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        events = boto3._get_default_session().events
        for event, handler, unique_id in self._registered:
            events.unregister(event, handler, unique_id=unique_id)
        self._registered.clear()

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Register ``handler`` for ``event`` (e.g. ``before-call.ecr.DescribeImages``)."""
        unique_id = f"harness-{len(self._registered)}-{id(handler)}"
        boto3._get_default_session().events.register(event, handler, unique_id=unique_id)
        self._registered.append((event, handler, unique_id))

    def count(self, event: str) -> None:
        """Count ``event`` in :attr:`calls` (``before-call`` counts pages, ``before-send``
        attempts, retries included)."""

        def counter(**_: Any) -> None:
            self.calls[event] = self.calls.get(event, 0) + 1

        self.on(event, counter)

    def fail(
        self,
        service: str,
        operation: str,
        code: str,
        message: str = "injected by the harness",
        *,
        status: int = 400,
        when: Callable[[int], bool] = lambda attempt: True,
    ) -> None:
        """Answer ``operation`` with an AWS error on the attempts ``when(attempt)`` selects
        (attempts counted from 1 across the whole test). Registered on ``before-send``, so it
        wins over moto's own answer and botocore retries as it would against AWS."""
        event = f"before-send.{service}.{operation}"
        attempts = [0]

        def answer(**_: Any) -> AWSResponse | None:
            attempts[0] += 1
            return error_response(service, code, message, status) if when(attempts[0]) else None

        self.on(event, answer)

    def answer(self, service: str, operation: str, document: dict[str, Any]) -> None:
        """Answer ``operation`` with HTTP 200 and ``document`` (a JSON protocol's body): what a
        service says when the call succeeds and an item of it did not (PutEvents' failed
        entries), which moto never says."""
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        body = json.dumps(document).encode()

        def respond(**_: Any) -> AWSResponse:
            return AWSResponse("https://harness.invalid/", 200, headers, _Raw(body))

        self.on(f"before-send.{service}.{operation}", respond)


# --- speed ---------------------------------------------------------------------------------------


@contextmanager
def shared_botocore_loader() -> Iterator[None]:
    """One botocore data loader (service models, endpoints) for every session in the process.

    moto gives every mock a fresh boto3 default session, and each session would parse the
    models of every service it touches again (megabytes of JSON: about a second per test that
    uses SSM, S3, ECS and Lambda). A loader only reads files that never change, so sharing it
    changes nothing but the time.
    """
    loaders: dict[str | None, Loader] = {}
    lock = threading.Lock()

    def loader_for(path: str | None) -> Loader:
        with lock:
            if path not in loaders:
                loaders[path] = create_loader(path)
            return loaders[path]

    def register(self: BotocoreSession) -> None:
        self._components.lazy_register_component(  # type: ignore[attr-defined]
            "data_loader", lambda: loader_for(self.get_config_variable("data_path"))
        )

    with mock.patch.object(BotocoreSession, "_register_data_loader", register):
        yield


# --- Amazon Inspector's coverage ----------------------------------------------------------------

INSPECTOR_PAGE = 200  # ListCoverage: maxResults 1..200


@dataclass
class InspectorCoverage:
    """Inspector's ECR image coverage, which moto (5.2.1) does not serve: `ListCoverage` answered
    from `before-send` (so botocore's real paginator and parser run), with the filters the pin
    source uses (`resourceType`, `ecrImageInUseCount`, `ecrImageLastInUseAt`) applied as
    Inspector applies them, paged by `maxResults` and `nextToken`."""

    account_id: str
    region: str
    images: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    def add(
        self, repository: str, digest: str, *, in_use: int = 0, last_in_use: float | None = None
    ) -> None:
        """An image covered by enhanced scanning; `last_in_use` in epoch seconds."""
        metadata: dict[str, Any] = {"inUseCount": in_use}
        if last_in_use is not None:
            metadata["lastInUseAt"] = last_in_use
        self.images.append(
            {
                "resourceType": "AWS_ECR_CONTAINER_IMAGE",
                "resourceId": (
                    f"arn:aws:ecr:{self.region}:{self.account_id}:repository/{repository}/{digest}"
                ),
                "accountId": self.account_id,
                "scanType": "PACKAGE",
                "resourceMetadata": {"ecrImage": metadata},
            }
        )

    def install(self, events: AwsEvents) -> None:
        events.on("before-send.inspector2.ListCoverage", self._answer)

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        self.calls += 1
        body = json.loads(request.body or b"{}")
        criteria = body.get("filterCriteria", {})
        for wanted in criteria.get("resourceType", []):
            # What Inspector accepts (a StringFilter's comparison); botocore checks no enum.
            if wanted.get("comparison") not in {"EQUALS", "PREFIX", "NOT_EQUALS"}:
                return error_response(
                    "inspector2",
                    "ValidationException",
                    f"comparison {wanted.get('comparison')!r}: EQUALS, PREFIX or NOT_EQUALS",
                )
        found = [image for image in self.images if _covers(image, criteria)]
        page, token = _page(
            found,
            "ListCoverage",
            body.get("nextToken"),
            body.get("maxResults"),
            INSPECTOR_PAGE,
            ValueError,
        )
        answer: dict[str, Any] = {"coveredResources": page}
        if token:
            answer["nextToken"] = token
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/json"
        return AWSResponse(
            "https://harness.invalid/", 200, headers, _Raw(json.dumps(answer).encode())
        )


def _covers(image: dict[str, Any], criteria: dict[str, Any]) -> bool:
    metadata = image["resourceMetadata"]["ecrImage"]
    for wanted in criteria.get("resourceType", []):
        if wanted["comparison"] == "EQUALS" and image["resourceType"] != wanted["value"]:
            return False
    for bounds in criteria.get("ecrImageInUseCount", []):
        count = metadata.get("inUseCount", 0)
        if count < bounds.get("lowerInclusive", count) or count > bounds.get(
            "upperInclusive", count
        ):
            return False
    for bounds in criteria.get("ecrImageLastInUseAt", []):
        when = metadata.get("lastInUseAt")
        if when is None:
            return False
        if when < bounds.get("startInclusive", when) or when > bounds.get("endInclusive", when):
            return False
    return True
