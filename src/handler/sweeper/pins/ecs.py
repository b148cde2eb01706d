"""ECS: task definitions, running tasks, and the service revisions services will start again."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..model import HeldTag, Pin, digests_in
from .core import DEFAULT_WORKERS, PinSourceError, error, held_in, pages, parallel

ACTIONS = (
    "ecs:DescribeServiceRevisions",
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:DescribeTasks",
    "ecs:ListClusters",
    "ecs:ListServices",
    "ecs:ListTaskDefinitions",
    "ecs:ListTasks",
)
DESCRIBE_TASKS_BATCH = 100  # DescribeTasks takes at most 100 task ARNs
DESCRIBE_SERVICES_BATCH = 10  # DescribeServices takes at most 10 services
DESCRIBE_REVISIONS_BATCH = 20  # DescribeServiceRevisions takes at most 20 ARNs


class EcsPins:
    """Digests ECS uses: images of ACTIVE task definitions that name a digest, and the
    `imageDigest` of every container of every running task in every cluster.

    A task started from `repo:tag` runs the digest the tag had then, which may be untagged now:
    only the task's own record says which one.

    And what every service will start again, even scaled to zero: the `imageDigest` of each
    container of its current service revisions (ECS resolves a tag to a digest when it deploys
    a revision, and starts that digest again when the service scales up). A service without
    revisions (not deployed since ECS records them, late 2024) pins the digests its task
    definition names, which may be deregistered (INACTIVE) and so not among the ACTIVE ones.

    ECR images an ACTIVE task definition or a current service revision names by tag are held
    tags (`held`): a task started from it pulls that tag again.
    """

    name = "ecs"

    def __init__(self, client: Any, workers: int = DEFAULT_WORKERS) -> None:
        self._client = client
        self.workers = workers
        self.held: list[HeldTag] = []
        self._found: list[HeldTag] = []  # this read's, appended from worker threads

    def read(self) -> list[Pin]:
        self._found = []
        pins = self._task_definitions() + self._running_tasks()
        self.held = self._found
        return pins

    def _task_definitions(self) -> list[Pin]:
        arns = list(
            pages(
                "ecs",
                self._client,
                "ListTaskDefinitions",
                "list_task_definitions",
                "taskDefinitionArns",
                status="ACTIVE",
            )
        )
        return [pin for pins in parallel(self.workers, self._task_definition, arns) for pin in pins]

    def _task_definition(self, arn: str) -> list[Pin]:
        try:
            definition = self._client.describe_task_definition(taskDefinition=arn)
        except (ClientError, BotoCoreError) as exc:
            raise error("ecs", f"DescribeTaskDefinition {arn}", exc) from exc
        task = definition.get("taskDefinition")
        if task is None:
            # Read as empty, it would pin nothing of a definition that may run: fail closed.
            raise PinSourceError("ecs", f"DescribeTaskDefinition {arn}: not described")
        where = f"ecs:task-definition/{task.get('family', '?')}:{task.get('revision', '?')}"
        for container in task.get("containerDefinitions", []):
            # list.extend is atomic under the GIL: workers may append at once.
            self._found.extend(
                held_in(container.get("image", ""), f"{where} container {container.get('name')}")
            )
        return [
            Pin(digest, f"{where} container {container.get('name', '?')}")
            for container in task.get("containerDefinitions", [])
            for digest in digests_in(container.get("image", ""))
        ]

    def _running_tasks(self) -> list[Pin]:
        clusters = list(pages("ecs", self._client, "ListClusters", "list_clusters", "clusterArns"))
        return [pin for pins in parallel(self.workers, self._cluster, clusters) for pin in pins]

    def _cluster(self, cluster: str) -> list[Pin]:
        return self._tasks(cluster) + self._services(cluster)

    def _services(self, cluster: str) -> list[Pin]:
        arns = list(
            pages(
                "ecs",
                self._client,
                f"ListServices {cluster}",
                "list_services",
                "serviceArns",
                cluster=cluster,
            )
        )
        revisions: list[str] = []
        definitions: list[str] = []
        for start in range(0, len(arns), DESCRIBE_SERVICES_BATCH):
            batch = arns[start : start + DESCRIBE_SERVICES_BATCH]
            try:
                response = self._client.describe_services(cluster=cluster, services=batch)
            except (ClientError, BotoCoreError) as exc:
                raise error("ecs", f"DescribeServices {cluster}", exc) from exc
            self._check_failures(f"DescribeServices {cluster}", response)
            self._check_answered(
                f"DescribeServices {cluster}",
                batch,
                [service.get("serviceArn") for service in response.get("services", [])],
                response,
            )
            for service in response.get("services", []):
                current = [r["arn"] for r in service.get("currentServiceRevisions", [])]
                revisions.extend(current)
                if not current and service.get("taskDefinition"):
                    definitions.append(service["taskDefinition"])
        pins: list[Pin] = []
        for start in range(0, len(revisions), DESCRIBE_REVISIONS_BATCH):
            batch = revisions[start : start + DESCRIBE_REVISIONS_BATCH]
            try:
                response = self._client.describe_service_revisions(serviceRevisionArns=batch)
            except (ClientError, BotoCoreError) as exc:
                raise error("ecs", f"DescribeServiceRevisions {cluster}", exc) from exc
            # A revision a service lists as current is kept by ECS: any failure is unexplained.
            self._check_failures(f"DescribeServiceRevisions {cluster}", response, missing=False)
            self._check_answered(
                f"DescribeServiceRevisions {cluster}",
                batch,
                [r.get("serviceRevisionArn") for r in response.get("serviceRevisions", [])],
                response,
            )
            for revision in response.get("serviceRevisions", []):
                where = f"ecs:service-revision/{revision.get('serviceRevisionArn', '?')}"
                for image in revision.get("containerImages", []):
                    container = f"{where} container {image.get('containerName', '?')}"
                    self._found.extend(held_in(image.get("image", ""), container))
                    found = digests_in(image.get("imageDigest", ""))
                    found += digests_in(image.get("image", ""))
                    pins.extend(
                        Pin(digest, f"{where} container {image.get('containerName', '?')}")
                        for digest in dict.fromkeys(found)
                    )
        for definition in dict.fromkeys(definitions):
            pins.extend(self._task_definition(definition))
        return pins

    @staticmethod
    def _check_failures(operation: str, response: dict[str, Any], *, missing: bool = True) -> None:
        for failure in response.get("failures", []):
            # MISSING: deleted since it was listed, so it will start nothing any more.
            if not (missing and failure.get("reason") == "MISSING"):
                raise PinSourceError(
                    "ecs",
                    f"{operation}: {failure.get('arn', '?')}: "
                    f"{failure.get('reason', '?')} {failure.get('detail', '')}".rstrip(),
                )

    @staticmethod
    def _check_answered(
        operation: str, asked: list[str], answered: list[Any], response: dict[str, Any]
    ) -> None:
        """Every item asked about is described or reported as a failure: one the answer leaves
        out silently would pin nothing and say nothing (unknown means keep: fail closed). An
        item described without its ARN (the API model allows it) stands for one asked about."""
        told = {*answered, *(f.get("arn") for f in response.get("failures", []))}
        left_out = [arn for arn in dict.fromkeys(asked) if arn not in told]
        if len(left_out) > sum(1 for arn in answered if not arn):
            raise PinSourceError(
                "ecs", f"{operation}: {left_out[0]}: neither described nor reported as a failure"
            )

    def _tasks(self, cluster: str) -> list[Pin]:
        tasks = list(
            pages(
                "ecs",
                self._client,
                f"ListTasks {cluster}",
                "list_tasks",
                "taskArns",
                cluster=cluster,
                desiredStatus="RUNNING",
            )
        )
        pins: list[Pin] = []
        for start in range(0, len(tasks), DESCRIBE_TASKS_BATCH):
            batch = tasks[start : start + DESCRIBE_TASKS_BATCH]
            try:
                response = self._client.describe_tasks(cluster=cluster, tasks=batch)
            except (ClientError, BotoCoreError) as exc:
                raise error("ecs", f"DescribeTasks {cluster}", exc) from exc
            for failure in response.get("failures", []):
                # MISSING: the task stopped since it was listed, so it runs nothing any more.
                if failure.get("reason") != "MISSING":
                    raise PinSourceError(
                        "ecs",
                        f"DescribeTasks {cluster}: {failure.get('arn', '?')}: "
                        f"{failure.get('reason', '?')} {failure.get('detail', '')}".rstrip(),
                    )
            for task in response.get("tasks", []):
                for container in task.get("containers", []):
                    where = f"ecs:task/{task.get('taskArn', '?')} container {container.get('name')}"
                    # imageDigest once the image is pulled; a digest in the image reference
                    # also covers a container still pending whose task definition is inactive.
                    found = digests_in(container.get("imageDigest", ""))
                    found += digests_in(container.get("image", ""))
                    pins.extend(Pin(digest, where) for digest in dict.fromkeys(found))
        return pins
