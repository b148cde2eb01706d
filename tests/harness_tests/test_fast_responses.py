"""The short path through moto answers exactly as moto does: same answers, same registry state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from freezegun import freeze_time

from harness import FakeRegistry, oci
from harness.bulk import load, realistic_registry
from harness.fast_responses import fast_responses

OLD = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
REPO = "app"


def _build(reg: FakeRegistry) -> dict[str, str]:
    """A small registry with every field DescribeImages can answer, deterministically."""
    old = reg.push_buildx(REPO, tag="latest", pushed_at=OLD, build_id="old", sbom=True)
    new = reg.push_buildx(
        REPO,
        tag="latest",
        pushed_at=OLD + timedelta(days=1),
        build_id="new",
        attestation="artifact",
        platforms=("linux/amd64", "linux/arm64"),
    )
    signature = reg.push(
        REPO,
        oci.cosign_signature(oci.Manifest(reg.manifest(REPO, new.index), oci.OCI_INDEX)),
        pushed_at=OLD,
    )
    with freeze_time(OLD + timedelta(days=3)):  # lastArchivedAt is "now"
        reg.set_archived(REPO, old.attestations["linux/amd64"])
    reg.set_last_pulled(REPO, new.index, OLD + timedelta(days=2))
    return {
        "old index": old.index,
        "old image": old.images["linux/amd64"],
        "new index": new.index,
        "signature": signature,
        "missing": "sha256:" + "0" * 64,
    }


Call = Callable[[Any, dict[str, str]], Any]

CALLS: dict[str, Call] = {
    "listing, every status, one page": lambda c, d: c.describe_images(
        repositoryName=REPO, filter={"tagStatus": "ANY", "imageStatus": "ANY"}, maxResults=1000
    ),
    "listing, untagged, paged": lambda c, d: c.describe_images(
        repositoryName=REPO, filter={"tagStatus": "UNTAGGED"}, maxResults=2
    ),
    "describe by digest": lambda c, d: c.describe_images(
        repositoryName=REPO,
        imageIds=[{"imageDigest": d["new index"]}, {"imageDigest": d["signature"]}],
    ),
    "describe a missing digest": lambda c, d: c.describe_images(
        repositoryName=REPO, imageIds=[{"imageDigest": d["missing"]}]
    ),
    "get manifests, one missing": lambda c, d: c.batch_get_image(
        repositoryName=REPO,
        imageIds=[{"imageDigest": d["old index"]}, {"imageDigest": d["missing"]}],
        acceptedMediaTypes=[oci.OCI_INDEX, oci.OCI_MANIFEST],
    ),
    "list images": lambda c, d: c.list_images(repositoryName=REPO, maxResults=3),
    "delete a listed child, an orphan index and a missing digest": lambda c, d: (
        c.batch_delete_image(
            repositoryName=REPO,
            imageIds=[
                {"imageDigest": d["old image"]},
                {"imageDigest": d["old index"]},
                {"imageDigest": d["missing"]},
            ],
        )
    ),
    "more than 100 ids": lambda c, d: c.batch_get_image(
        repositoryName=REPO, imageIds=[{"imageDigest": d["missing"]}] * 101
    ),
    "no such repository": lambda c, d: c.batch_delete_image(
        repositoryName="nope", imageIds=[{"imageDigest": d["missing"]}]
    ),
}


def _answer(reg: FakeRegistry, call: Call, digests: dict[str, str]) -> tuple[Any, set[str]]:
    try:
        answer: Any = call(reg.client, digests)
        answer.pop("ResponseMetadata", None)
    except ClientError as err:
        answer = ("error", err.response["Error"]["Code"], err.response["Error"]["Message"])
    return answer, reg.digests(REPO)


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_short_path_answers_as_moto_does(call: Call) -> None:
    with FakeRegistry() as reg:
        digests = _build(reg)
        expected = _answer(reg, call, digests)
    with FakeRegistry() as reg, fast_responses():
        assert _build(reg) == digests
        assert _answer(reg, call, digests) == expected


def test_bulk_load_reaches_the_same_state_as_seeding() -> None:
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    estate = realistic_registry(6, 8, now=now, seed=7)
    with FakeRegistry() as bulk:
        assert load(bulk, estate.pushes) == len(estate.pushes)
        loaded = {name: (bulk.digests(name), bulk.tags(name)) for name in estate.repositories}
        listed = bulk.client.describe_images(repositoryName=estate.repositories[0])
    with FakeRegistry() as seeded:
        for push in estate.pushes:
            seeded.seed(
                push.repository,
                push.manifest,
                tags=push.tags,
                pushed_at=push.pushed_at,
                archived=push.archived,
                last_pulled=push.last_pulled,
            )
        assert loaded == {
            name: (seeded.digests(name), seeded.tags(name)) for name in estate.repositories
        }
        assert (
            seeded.client.describe_images(repositoryName=estate.repositories[0])["imageDetails"]
            == listed["imageDetails"]
        )
