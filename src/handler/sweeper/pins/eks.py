"""Kubernetes on EKS: what pods run and what workloads will start, in every cluster.

For each cluster (every cluster `ListClusters` gives, or the `eks_clusters` named, less the
`eks_skip_clusters`), `DescribeCluster` gives the API endpoint and its CA; the Kubernetes API is
then read, all namespaces, following `continue` tokens: pods (`spec` containers, init and
ephemeral containers, and `status.*ContainerStatuses[].imageID`, the digest that runs),
Deployments, StatefulSets, DaemonSets, Jobs, CronJobs and ReplicaSets (old ReplicaSets are what
`kubectl rollout undo` starts again). Digests are pins; ECR references by tag are held tags.

Authentication is what `aws eks get-token` prints: a presigned STS `GetCallerIdentity` URL
carrying the header `x-k8s-aws-id: <cluster>`, base64url without padding, prefixed
`k8s-aws-v1.`. The reading role needs an EKS access entry with an access policy such as
`AmazonEKSViewPolicy` (docs/operations.md). TLS is verified against the cluster's own CA.

HTTP: urllib3, which botocore already ships (docs/design.md says why not the Kubernetes client).

Fail closed: a cluster that cannot be read completely (no access entry: 401/403; a timeout; a
page that fails; a private endpoint unreachable from here) raises PinSourceError naming it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlencode

import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from ..model import HeldTag, Pin, digests_in
from .core import DEFAULT_WORKERS, PinSourceError, error, held_in, pages, parallel

log = logging.getLogger("ecr_sweeper")

ACTIONS = ("eks:DescribeCluster", "eks:ListClusters")
TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_HEADER = "x-k8s-aws-id"
TOKEN_SECONDS = 60  # as aws eks get-token: the URL is presigned for a minute
TIMEOUT_SECONDS = 20.0  # connect and each read, per request
PAGE_LIMIT = 500
# (API path, kind, where the pod spec is in an object of that kind)
LISTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/api/v1/pods", "pod", ("spec",)),
    ("/apis/apps/v1/deployments", "deployment", ("spec", "template", "spec")),
    ("/apis/apps/v1/statefulsets", "statefulset", ("spec", "template", "spec")),
    ("/apis/apps/v1/daemonsets", "daemonset", ("spec", "template", "spec")),
    ("/apis/apps/v1/replicasets", "replicaset", ("spec", "template", "spec")),
    ("/apis/batch/v1/jobs", "job", ("spec", "template", "spec")),
    ("/apis/batch/v1/cronjobs", "cronjob", ("spec", "jobTemplate", "spec", "template", "spec")),
)
_CONTAINERS = ("initContainers", "containers", "ephemeralContainers")
_STATUSES = ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")


def token(sts: Any, cluster: str) -> str:
    """The bearer token `aws eks get-token --cluster-name <cluster>` prints, from `sts` (a
    client of the region and credentials that read the cluster; see `register_token_header`)."""
    url = sts.generate_presigned_url(
        "get_caller_identity",
        Params={_CLUSTER_PARAM: cluster},
        ExpiresIn=TOKEN_SECONDS,
        HttpMethod="GET",
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


_CLUSTER_PARAM = "K8sAwsId"  # passed through the request context, never sent as a parameter


def register_token_header(sts: Any) -> None:
    """Make `sts` sign `x-k8s-aws-id` into GetCallerIdentity when a cluster is given, as the AWS
    CLI does (per request, through its context: safe for a client shared by threads)."""

    def take(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if _CLUSTER_PARAM in params:
            context[TOKEN_HEADER] = params.pop(_CLUSTER_PARAM)

    def sign(request: Any, **_: Any) -> None:
        if TOKEN_HEADER in request.context:
            request.headers[TOKEN_HEADER] = request.context[TOKEN_HEADER]

    events = sts.meta.events
    events.register("provide-client-params.sts.GetCallerIdentity", take, "ecr-sweeper-eks-take")
    events.register("before-sign.sts.GetCallerIdentity", sign, "ecr-sweeper-eks-sign")


class EksPins:
    """Digests (and tags) Kubernetes runs or will start, in the EKS clusters of one account and
    region."""

    name = "eks"

    def __init__(
        self,
        client: Callable[[str], Any],
        clusters: Sequence[str] = (),
        skip: Sequence[str] = (),
        workers: int = DEFAULT_WORKERS,
        timeout: float | None = None,
    ) -> None:
        self._eks = client("eks")
        self._sts = client("sts")
        register_token_header(self._sts)
        self.clusters = tuple(clusters)
        self.skip = tuple(skip)
        self.workers = workers
        self.timeout = TIMEOUT_SECONDS if timeout is None else timeout
        self.held: list[HeldTag] = []

    def read(self) -> list[Pin]:
        names = list(self.clusters) or list(
            pages("eks", self._eks, "ListClusters", "list_clusters", "clusters")
        )
        skipped = [name for name in names if name in self.skip]
        if skipped:
            log.warning("eks clusters skipped", extra={"clusters": skipped})
        wanted = [name for name in names if name not in self.skip]
        results = parallel(self.workers, self._cluster, wanted)
        self.held = [tag for _, held in results for tag in held]
        return [pin for found, _ in results for pin in found]

    def _cluster(self, name: str) -> tuple[list[Pin], list[HeldTag]]:
        source = f"eks:{name}"
        try:
            cluster = self._eks.describe_cluster(name=name)["cluster"]
        except (ClientError, BotoCoreError) as exc:
            raise error(source, "DescribeCluster", exc) from exc
        endpoint = cluster.get("endpoint")
        authority = (cluster.get("certificateAuthority") or {}).get("data")
        if not endpoint or not authority:
            raise PinSourceError(
                source, f"DescribeCluster: no endpoint or CA (status {cluster.get('status')})"
            )
        try:
            bearer = token(self._sts, name)
        except (ClientError, BotoCoreError) as exc:
            raise error(source, "STS GetCallerIdentity (token)", exc) from exc
        http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED",
            ca_cert_data=base64.b64decode(authority).decode(),
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            retries=urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0),
        )
        headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
        pins: list[Pin] = []
        held: list[HeldTag] = []
        try:
            for path, kind, at in LISTS:
                for item in _items(http, endpoint, path, headers, source):
                    meta = item.get("metadata") or {}
                    where = f"{source}/{meta.get('namespace', '-')}/{kind}/{meta.get('name', '?')}"
                    spec = _dig(item, at)
                    for field in _CONTAINERS:
                        for container in spec.get(field) or ():
                            image = str(container.get("image") or "")
                            at_container = f"{where} container {container.get('name', '?')}"
                            pins.extend(Pin(d, at_container) for d in digests_in(image))
                            held.extend(held_in(image, at_container))
                    status = item.get("status") or {}
                    for field in _STATUSES:
                        for running in status.get(field) or ():
                            at_container = f"{where} container {running.get('name', '?')}"
                            found = digests_in(str(running.get("imageID") or ""))
                            pins.extend(Pin(d, at_container) for d in found)
        finally:
            http.clear()
        return pins, held


def _dig(item: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = item
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _items(
    http: urllib3.PoolManager, endpoint: str, path: str, headers: dict[str, str], source: str
) -> Iterator[dict[str, Any]]:
    """Every item of a list, page after page (`limit`, `continue`); any failure names the
    cluster."""
    following = ""
    while True:
        query = {"limit": str(PAGE_LIMIT), **({"continue": following} if following else {})}
        url = f"{endpoint.rstrip('/')}{path}?{urlencode(query)}"
        try:
            response = http.request("GET", url, headers=headers, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise PinSourceError(source, f"GET {path}: {type(exc).__name__}: {exc}") from exc
        if response.status != 200:
            text = response.data[:300].decode("utf-8", "replace")
            raise PinSourceError(source, f"GET {path}: HTTP {response.status}: {text}")
        try:
            document = json.loads(response.data)
        except ValueError as exc:
            raise PinSourceError(source, f"GET {path}: not JSON: {exc}") from exc
        yield from document.get("items") or ()
        following = (document.get("metadata") or {}).get("continue") or ""
        if not following:
            return
