"""ECS: task definitions and running tasks."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..model import Pin, digests_in
from .core import DEFAULT_WORKERS, PinSourceError, error, pages, parallel

ACTIONS = (
    "ecs:DescribeTaskDefinition",
    "ecs:DescribeTasks",
    "ecs:ListClusters",
    "ecs:ListTaskDefinitions",
    "ecs:ListTasks",
)
DESCRIBE_TASKS_BATCH = 100  # DescribeTasks takes at most 100 task ARNs


class EcsPins:
    """Digests ECS uses: images of ACTIVE task definitions that name a digest, and the
    `imageDigest` of every container of every running task in every cluster.

    A task started from `repo:tag` runs the digest the tag had then, which may be untagged now:
    only the task's own record says which one.
    """

    name = "ecs"

    def __init__(self, client: Any, workers: int = DEFAULT_WORKERS) -> None:
        self._client = client
        self.workers = workers

    def read(self) -> list[Pin]:
        return self._task_definitions() + self._running_tasks()

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
        task = definition.get("taskDefinition", {})
        where = f"ecs:task-definition/{task.get('family', '?')}:{task.get('revision', '?')}"
        return [
            Pin(digest, f"{where} container {container.get('name', '?')}")
            for container in task.get("containerDefinitions", [])
            for digest in digests_in(container.get("image", ""))
        ]

    def _running_tasks(self) -> list[Pin]:
        clusters = list(pages("ecs", self._client, "ListClusters", "list_clusters", "clusterArns"))
        return [pin for pins in parallel(self.workers, self._cluster, clusters) for pin in pins]

    def _cluster(self, cluster: str) -> list[Pin]:
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
