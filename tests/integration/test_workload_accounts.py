"""A central registry: workloads in other accounts and regions protect its images.

The registry (account 123456789012, us-east-1) holds a build whose tag moved on: its old tree is
untagged and old, so an `orphans` run deletes it unless something pins it. Here what pins it runs
in workload accounts, read through a role the sweeper assumes (moto's STS: an assumed role's
credentials select that account's backends), and in a second region.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import OLD, Builds, Invoke
from harness import FakeRegistry
from harness.kubernetes import KubernetesApi, pod
from harness.workloads import AwsEvents, Workloads, error_response
from sweeper.pins import PinSourceError

REPO = "app"
WORKLOAD = "222222222222"
OTHER = "333333333333"
ROLE = f"arn:aws:iam::{WORKLOAD}:role/ecr-sweeper-reader"
OTHER_ROLE = f"arn:aws:iam::{OTHER}:role/ecr-sweeper-reader"
HOME = "us-east-1"
EU = "eu-west-1"


@pytest.fixture
def workload(registry: FakeRegistry) -> Iterator[Workloads]:
    with Workloads(registry, account_id=WORKLOAD) as aws:
        yield aws


@pytest.fixture
def workload_eu(registry: FakeRegistry) -> Iterator[Workloads]:
    with Workloads(registry, account_id=WORKLOAD, region=EU) as aws:
        yield aws


@pytest.fixture
def other_eu(registry: FakeRegistry) -> Iterator[Workloads]:
    with Workloads(registry, account_id=OTHER, region=EU) as aws:
        yield aws


def planned(report: dict[str, object]) -> set[str]:
    deletions = report["deletions"]
    assert isinstance(deletions, list)
    return {d["digest"] for d in deletions}


def test_a_service_in_a_workload_account_protects_the_registrys_image(
    registry: FakeRegistry,
    workloads: Workloads,
    workload: Workloads,
    builds: Builds,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    definition = workload.register_task_definition(
        "web", [workload.image_uri(REPO, builds.old.index)]
    )
    workload.run_task("prod", definition)
    monkeypatch.setenv("PIN_FROM_ECS", "true")
    # The registry account alone runs nothing: the old tree would go.
    assert builds.old.all <= planned(invoke(dry_run=True, scope="orphans"))
    monkeypatch.setenv("PIN_ROLE_ARNS", ROLE)
    report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"] == {f"ecs@123456789012/{HOME}": 0, f"ecs@{WORKLOAD}/{HOME}": 1}
    assert report["kept"]["pinned"] == 1


def test_workloads_in_two_accounts_and_two_regions_each_pin_their_own(
    registry: FakeRegistry,
    workloads: Workloads,
    workload: Workloads,
    workload_eu: Workloads,
    other_eu: Workloads,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trees = [registry.push_buildx(REPO, tag="latest", pushed_at=OLD) for _ in range(5)]
    uri = [workloads.image_uri(REPO, tree.index) for tree in trees]
    workload.put_parameter("/deploy/web", uri[0])  # SSM, workload account, home region
    workload_eu.create_image_function("worker", uri[1])  # Lambda, workload account, EU
    other_eu.register_task_definition("api", [uri[2]])  # ECS, other account, EU
    workloads.put_parameter("/deploy/registry", uri[3])  # the registry account's own
    # The SSM path is read in every (account, region), and fails closed where it is missing or
    # names no digest, as in the registry's own: here each names the tagged build.
    for place in (workloads, workload, workload_eu, other_eu):
        place.put_parameter("/deploy/latest", uri[4])
    other_home = Workloads(registry, account_id=OTHER)
    other_home.put_parameter("/deploy/latest", uri[4])
    workloads_eu = Workloads(registry, region=EU)
    workloads_eu.put_parameter("/deploy/latest", uri[4])
    for name, value in {
        "PIN_ROLE_ARNS": f"{ROLE},{OTHER_ROLE}",
        "PIN_REGIONS": EU,
        "PIN_FROM_ECS": "true",
        "PIN_FROM_LAMBDA": "true",
    }.items():
        monkeypatch.setenv(name, value)
    report = invoke(dry_run=False, scope="orphans", pin_parameter_path="/deploy")
    # trees[4] is tagged latest; trees[0..3] are pinned somewhere.
    assert registry.digests(REPO) == {d for tree in trees for d in tree.all}
    pins = report["pins"]
    running = {("lambda", WORKLOAD, EU), ("ecs", OTHER, EU)}
    assert {k: v for k, v in pins.items() if not k.startswith("ssm")} == {
        f"{source}@{account}/{region}": int((source, account, region) in running)
        for source in ("ecs", "lambda")
        for account in ("123456789012", WORKLOAD, OTHER)
        for region in (HOME, EU)
    }
    assert pins[f"ssm@123456789012/{HOME}"] == 2  # its own and the tagged build
    assert pins[f"ssm@{WORKLOAD}/{HOME}"] == 2
    places = {f"{a}/{r}" for a in ("123456789012", WORKLOAD, OTHER) for r in (HOME, EU)}
    assert set(pins) == {f"{s}@{p}" for s in ("ssm", "ecs", "lambda") for p in places}


@pytest.mark.parametrize(
    ("code", "step"),
    [("AccessDenied", "sts:AssumeRole"), ("RegionDisabledException", "sts:AssumeRole")],
)
def test_a_role_that_cannot_be_assumed_fails_closed_naming_account_and_region(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    step: str,
) -> None:
    aws_events.fail("sts", "AssumeRole", code, status=403)
    monkeypatch.setenv("PIN_FROM_LAMBDA", "true")
    monkeypatch.setenv("PIN_ROLE_ARNS", ROLE)
    before = registry.digests(REPO)
    with pytest.raises(PinSourceError) as raised:
        invoke(dry_run=False, scope="orphans")
    assert raised.value.source == f"lambda@{WORKLOAD}/{HOME}"
    assert f"{step} {ROLE}: {code}" in str(raised.value)
    assert "Nothing was deleted" in str(raised.value)
    assert registry.digests(REPO) == before


def test_a_region_that_cannot_be_read_fails_closed_naming_it(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def deny_in_eu(request: object, **_: object) -> object:
        url = str(getattr(request, "url", ""))
        if f".{EU}." in url:
            return error_response("ecs", "UnrecognizedClientException", "region not enabled")
        return None

    aws_events.on("before-send.ecs.ListTaskDefinitions", deny_in_eu)
    monkeypatch.setenv("PIN_FROM_ECS", "true")
    monkeypatch.setenv("PIN_REGIONS", EU)
    before = registry.digests(REPO)
    with pytest.raises(PinSourceError) as raised:
        invoke(dry_run=False, scope="orphans")
    assert raised.value.source == f"ecs@123456789012/{EU}"
    assert "UnrecognizedClientException" in str(raised.value)
    assert registry.digests(REPO) == before


def test_a_request_adds_a_workload_role_to_the_deployments(
    registry: FakeRegistry,
    workloads: Workloads,
    workload: Workloads,
    builds: Builds,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workload.create_image_function("worker", workload.image_uri(REPO, builds.old.index))
    monkeypatch.setenv("PIN_FROM_LAMBDA", "true")
    monkeypatch.setenv("PIN_ROLE_ARNS", OTHER_ROLE)
    report = invoke(dry_run=False, scope="orphans", pin_role_arns=[ROLE])
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert set(report["pins"]) == {
        f"lambda@123456789012/{HOME}",
        f"lambda@{OTHER}/{HOME}",
        f"lambda@{WORKLOAD}/{HOME}",
    }


def test_an_eks_cluster_in_a_workload_account_and_region_protects_what_its_pods_run(
    registry: FakeRegistry,
    workloads: Workloads,
    workload_eu: Workloads,
    builds: Builds,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with KubernetesApi() as api:
        running = workload_eu.image_uri(REPO, builds.old.index)
        api.add("pods", pod("web-1", [workload_eu.image_uri(REPO, "latest")], [running]))
        workload_eu.create_eks_cluster("prod", api.endpoint, api.ca_pem)
        monkeypatch.setenv("PIN_FROM_EKS", "true")
        monkeypatch.setenv("PIN_ROLE_ARNS", ROLE)
        monkeypatch.setenv("PIN_REGIONS", EU)
        report = invoke(dry_run=False, scope="orphans")
    assert registry.digests(REPO) == builds.old.all | builds.new.all
    assert report["pins"][f"eks@{WORKLOAD}/{EU}"] == 1
    assert report["held_tags"] == {f"eks@{WORKLOAD}/{EU}": 1}
    assert sum(report["pins"].values()) == 1
