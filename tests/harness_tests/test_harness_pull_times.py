"""Corrections 12 and 13: a read through the API is a pull, unless the caller is excluded; the
exclusion calls moto lacks; who a request's credentials are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from harness import FakeRegistry, oci
from harness.ecr import MAX_EXCLUSIONS

REPO = "app"
SCANNER = "arn:aws:iam::123456789012:role/scanner"


def last_pulled(reg: FakeRegistry, digest: str) -> Any:
    (detail,) = reg.client.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": digest}])[
        "imageDetails"
    ]
    return detail.get("lastRecordedPullTime")


def test_a_read_sets_the_pull_time_of_what_it_returns_and_only_that(reg: FakeRegistry) -> None:
    read = reg.push(REPO, oci.image_manifest(seed=1), tags=["v1"])
    unread = reg.push(REPO, oci.image_manifest(seed=2), tags=["v2"])
    assert last_pulled(reg, read) is None
    reg.client.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": read}])
    assert last_pulled(reg, read) is not None
    assert last_pulled(reg, unread) is None


def test_an_excluded_caller_reads_without_moving_the_pull_time(reg: FakeRegistry) -> None:
    digest = reg.push(REPO, oci.image_manifest(seed=1), tags=["v1"])
    before = datetime(2026, 1, 1, tzinfo=UTC)
    reg.set_last_pulled(REPO, digest, before)
    reg.client.register_pull_time_update_exclusion(principalArn=reg.caller)
    reg.client.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": digest}])
    assert last_pulled(reg, digest) == before
    reg.pull(REPO, digest)  # a workload: its pulls still count
    assert last_pulled(reg, digest) > before


def test_the_exclusion_calls_list_register_and_deregister_as_ecr_does(reg: FakeRegistry) -> None:
    client = reg.client
    assert client.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == []
    answer = client.register_pull_time_update_exclusion(principalArn=SCANNER)
    assert answer["principalArn"] == SCANNER
    with pytest.raises(ClientError, match="ExclusionAlreadyExistsException"):
        client.register_pull_time_update_exclusion(principalArn=SCANNER)
    with pytest.raises(ClientError, match="InvalidParameterException"):
        # An STS assumed-role ARN is not a principal ECR takes.
        client.register_pull_time_update_exclusion(
            principalArn="arn:aws:sts::123456789012:assumed-role/scanner/s"
        )
    assert client.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == [SCANNER]
    client.deregister_pull_time_update_exclusion(principalArn=SCANNER)
    assert reg.exclusions() == set()


def test_a_registry_holds_at_most_100_exclusions(reg: FakeRegistry) -> None:
    for n in range(MAX_EXCLUSIONS):
        reg.exclude(f"arn:aws:iam::123456789012:role/r{n}")
    with pytest.raises(ClientError, match="LimitExceededException"):
        reg.client.register_pull_time_update_exclusion(principalArn=SCANNER)
    pages = reg.client.list_pull_time_update_exclusions(maxResults=60)
    rest = reg.client.list_pull_time_update_exclusions(nextToken=pages["nextToken"])
    assert len(pages["pullTimeUpdateExclusions"]) + len(rest["pullTimeUpdateExclusions"]) == 100


@pytest.mark.parametrize(
    ("mode", "list_refused", "register_refused"),
    [("register-refused", False, True), ("refused", True, True)],
)
def test_the_exclusion_calls_can_be_refused(
    mode: str, list_refused: bool, register_refused: bool
) -> None:
    with FakeRegistry(exclusion_api=mode) as reg:  # type: ignore[arg-type]
        calls: dict[str, Callable[[], object]] = {
            "list": reg.client.list_pull_time_update_exclusions,
            "register": lambda: reg.client.register_pull_time_update_exclusion(
                principalArn=reg.caller
            ),
        }
        for name, refused in (("list", list_refused), ("register", register_refused)):
            if refused:
                with pytest.raises(ClientError, match="AccessDeniedException"):
                    calls[name]()
            else:
                calls[name]()
        assert reg.exclusions() == set()


def test_the_suites_credentials_are_an_iam_user_as_sts_says(reg: FakeRegistry) -> None:
    arn = boto3.client("sts", region_name=reg.region).get_caller_identity()["Arn"]
    assert arn == reg.caller == "arn:aws:iam::123456789012:user/moto"
