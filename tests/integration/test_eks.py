"""Kubernetes on EKS protects what it runs and will start: a fake API server (HTTPS, a test CA,
`continue` paging) behind moto's EKS DescribeCluster, end to end through the handler.

The registry is conftest's: `latest` pushed twice, the first tree an untagged orphan that an
`orphans` run deletes unless something pins it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import NOW, Builds, Invoke
from harness import FakeRegistry
from harness.ecr import BuildxPush
from harness.kubernetes import KubernetesApi, cronjob, pod, workload
from harness.workloads import Workloads
from sweeper import pins
from sweeper.clock import use_clock
from sweeper.pins import PinSourceError

REPO = "app"


@pytest.fixture
def api() -> Iterator[KubernetesApi]:
    with KubernetesApi() as server:
        yield server


def test_a_pod_running_an_untagged_digest_keeps_it_and_the_token_is_eks_get_tokens(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    api: KubernetesApi,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Started from `app:latest` while it named the old index: the status says which digest runs.
    running = workloads.image_uri(REPO, builds.old.index)
    api.add("pods", pod("web-1", [workloads.image_uri(REPO, "latest")], [running]))
    for i in range(5):  # pages of two: the pod above is on the third
        api.add(
            "pods",
            pod(f"other-{i}", ["nginx:1.27"], ["docker.io/library/nginx@sha256:" + "0" * 64]),
        )
    api.objects["/api/v1/pods"].reverse()
    workloads.create_eks_cluster("prod", api.endpoint, api.ca_pem)
    monkeypatch.setenv("PIN_FROM_EKS", "true")
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == {"eks": 2}  # the old index, and nginx's digest
    pod_pages = [r for r in api.requests if r.path == "/api/v1/pods"]
    # Nothing is deleted, so the pins are read once: three pages of two.
    assert [r.query.get("continue") for r in pod_pages] == [None, "2", "4"]
    bearer = pod_pages[0].authorization.removeprefix("Bearer ")
    assert bearer.startswith("k8s-aws-v1.")
    encoded = bearer.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    query = parse_qs(urlsplit(url).query)
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert query["X-Amz-Expires"] == ["60"]


def test_an_old_replicaset_and_a_cronjob_keep_their_digests(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    api: KubernetesApi,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `kubectl rollout undo` starts the old ReplicaSet's image again.
    third = registry.push_buildx(REPO, tag="latest", pushed_at=NOW - timedelta(days=30))
    api.add(
        "replicasets", workload("web-6d4cf56db6", [workloads.image_uri(REPO, builds.old.index)])
    )
    api.add("cronjobs", cronjob("nightly", [workloads.image_uri(REPO, builds.new.index)]))
    workloads.create_eks_cluster("prod", api.endpoint, api.ca_pem)
    monkeypatch.setenv("PIN_FROM_EKS", "true")
    invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.old.all | builds.new.all | third.all


KEEP_TWO_CI = [
    {
        "rulePriority": 1,
        "selection": {
            "tagStatus": "tagged",
            "tagPatternList": ["ci-*"],
            "countType": "imageCountMoreThan",
            "countNumber": 2,
        },
        "action": {"type": "expire"},
    }
]


@pytest.fixture
def ci(registry: FakeRegistry) -> Iterator[dict[str, BuildxPush]]:
    pushed = {
        f"ci-{n}": registry.push_buildx(REPO, tag=f"ci-{n}", pushed_at=NOW - timedelta(days=60 - n))
        for n in range(48, 53)
    }
    with use_clock(lambda: NOW):
        yield pushed


def test_a_deployment_naming_a_tag_holds_it_against_retention_and_the_audit_reports_the_rule(
    registry: FakeRegistry,
    workloads: Workloads,
    ci: dict[str, BuildxPush],
    api: KubernetesApi,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api.add("deployments", workload("web", [workloads.image_uri(REPO, "ci-50")], namespace="shop"))
    workloads.create_eks_cluster("prod", api.endpoint, api.ca_pem)
    registry.put_lifecycle_policy(REPO, {"rules": KEEP_TWO_CI})
    monkeypatch.setenv("PIN_FROM_EKS", "true")
    monkeypatch.setenv("RETENTION", json.dumps([{"rules": KEEP_TWO_CI}]))
    report = invoke(dry_run=False, scope="orphans")
    assert set(registry.tags(REPO)) == {"ci-50", "ci-51", "ci-52"}
    assert report["held_tags"] == {"eks": 1}
    assert report["retention"]["held"] == {"tag-in-use": 1}
    (hazard,) = report["lifecycle_hazards"]
    assert (hazard["digest"], hazard["reason"]) == (ci["ci-50"].index, "tag-in-use")
    assert "eks:prod/shop/deployment/web container c0" in hazard["cause"]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 403}, "GET /api/v1/pods: HTTP 403"),
        ({"status": 401}, "GET /api/v1/pods: HTTP 401"),
        ({"fail_page": 3}, "HTTP 500"),
        ({"delay": 60.0}, "ReadTimeoutError"),  # answers only once the test is over
    ],
    ids=["no-access-entry", "unauthorized", "a-page-fails", "slower-than-the-timeout"],
)
def test_a_cluster_that_cannot_be_read_fails_closed_naming_it(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    fault: dict[str, object],
    message: str,
) -> None:
    monkeypatch.setattr(pins.eks, "TIMEOUT_SECONDS", 0.5)
    with KubernetesApi(**fault) as broken, KubernetesApi() as fine:  # type: ignore[arg-type]
        for server in (broken, fine):
            server.add("pods", *(pod(f"p{i}", ["nginx:1"]) for i in range(5)))
        workloads.create_eks_cluster("good", fine.endpoint, fine.ca_pem)
        workloads.create_eks_cluster("broken", broken.endpoint, broken.ca_pem)
        monkeypatch.setenv("PIN_FROM_EKS", "true")
        before = registry.digests(REPO)
        with pytest.raises(PinSourceError) as raised:
            invoke(dry_run=False, scope="orphans")
    assert raised.value.source == "eks:broken"
    assert message in str(raised.value)
    assert registry.digests(REPO) == before


def test_a_cluster_whose_ca_is_not_its_servers_fails_closed(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    api: KubernetesApi,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other_ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    workloads.create_eks_cluster("prod", api.endpoint, other_ca)
    monkeypatch.setenv("PIN_FROM_EKS", "true")
    before = registry.digests(REPO)
    with pytest.raises(PinSourceError) as raised:
        invoke(dry_run=False, scope="orphans")
    assert raised.value.source == "eks:prod"
    assert registry.digests(REPO) == before


def test_a_skipped_cluster_is_left_out_knowingly_and_named_clusters_only_are_read(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    api: KubernetesApi,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with KubernetesApi(status=403) as broken:
        api.add("pods", pod("web", [workloads.image_uri(REPO, builds.old.index)]))
        workloads.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        workloads.create_eks_cluster("sandbox", broken.endpoint, broken.ca_pem)
        monkeypatch.setenv("PIN_FROM_EKS", "true")
        monkeypatch.setenv("EKS_SKIP_CLUSTERS", "sandbox")
        report = invoke(dry_run=False, scope="orphans")
        assert registry.digests(REPO) == builds.old.all | builds.new.all
        assert report["pins"] == {"eks": 1}
        assert broken.requests == []
        monkeypatch.delenv("EKS_SKIP_CLUSTERS")
        monkeypatch.setenv("EKS_CLUSTERS", "prod")
        assert invoke(dry_run=True, scope="orphans")["pins"] == {"eks": 1}
        assert broken.requests == []
