"""ImageDetail fields and BatchGetImage (corrections 6, 7 and 9 in detail)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from freezegun import freeze_time

from harness import FakeRegistry, oci

if TYPE_CHECKING:
    from mypy_boto3_ecr.type_defs import DescribeImagesFilterTypeDef

REPO = "app"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def detail(reg: FakeRegistry, digest: str) -> dict[str, Any]:
    response = reg.client.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": digest}])
    return dict(response["imageDetails"][0])


# --- 6: sizes ------------------------------------------------------------------------------------


def test_image_size_is_layer_total_plus_config(reg: FakeRegistry) -> None:
    m = oci.image_manifest(seed=1, layer_sizes=[10_000, 20_000, 30_000], config_size=1_234)
    docker = oci.image_manifest(seed=2, layer_sizes=[5], config_size=7, docker=True)
    assert detail(reg, reg.push(REPO, m))["imageSizeInBytes"] == 61_234
    assert detail(reg, reg.push(REPO, docker))["imageSizeInBytes"] == 12


def test_index_size_is_its_largest_child_recursively(reg: FakeRegistry) -> None:
    small = oci.image_manifest(seed="s", layer_sizes=[100], config_size=1)
    big = oci.image_manifest(seed="b", layer_sizes=[900], config_size=1)
    att = oci.legacy_attestation(big.digest)
    for m in (small, big, att):
        reg.push(REPO, m)
    inner = oci.buildx_index({"linux/amd64": small, "linux/arm64": big}, {"linux/arm64": att})
    reg.push(REPO, inner)
    lone = oci.index([small.descriptor()])
    reg.push(REPO, lone)
    outer = oci.nested_index([lone, inner])
    reg.push(REPO, outer)
    # Every listed manifest counts, the attestation too ("max size of all manifests in the list").
    att_size = att.json["config"]["size"] + sum(layer["size"] for layer in att.json["layers"])
    assert detail(reg, att.digest)["imageSizeInBytes"] == att_size
    assert detail(reg, inner.digest)["imageSizeInBytes"] == max(901, att_size)
    assert detail(reg, lone.digest)["imageSizeInBytes"] == 101
    assert detail(reg, outer.digest)["imageSizeInBytes"] == max(901, att_size)
    plain = oci.index([small.descriptor(), big.descriptor()])
    assert detail(reg, reg.push(REPO, plain))["imageSizeInBytes"] == 901  # not a sum


def test_unparseable_and_blob_only_indexes_report_their_own_length(reg: FakeRegistry) -> None:
    bad = oci.unparseable(seed=1)
    cache = oci.buildkit_cache_index(seed=1)
    assert detail(reg, reg.seed(REPO, bad))["imageSizeInBytes"] == len(bad.bytes)
    assert detail(reg, reg.seed(REPO, cache))["imageSizeInBytes"] == len(cache.bytes)


# --- 7: artifact fields, status, times -----------------------------------------------------------


def test_artifact_media_type_and_subject(reg: FakeRegistry) -> None:
    image = oci.image_manifest(seed=1)
    docker = oci.image_manifest(seed=2, docker=True)
    reg.push(REPO, image, tags=["v1"])
    reg.push(REPO, docker)
    cases = {
        image: (oci.OCI_CONFIG, None),
        docker: (oci.DOCKER_CONFIG, None),
        oci.legacy_attestation(image.digest): (oci.OCI_CONFIG, None),
        oci.artifact_attestation(image): (oci.ATTESTATION_MANIFEST, image.digest),
        oci.cosign_signature(image): (oci.COSIGN_BUNDLE, image.digest),
        oci.notation_signature(image): (oci.NOTATION_SIGNATURE, image.digest),
        oci.sbom_referrer(image): (oci.SPDX_JSON, image.digest),
        oci.helm_chart(): (oci.HELM_CONFIG, None),
        oci.index([image.descriptor()], artifact_type="application/vnd.example+type"): (
            "application/vnd.example+type",
            None,
        ),
        oci.index([image.descriptor()]): (None, None),
        oci.index([image.descriptor()], subject=docker): (None, docker.digest),
    }
    for manifest, (artifact_media_type, subject) in cases.items():
        d = detail(reg, reg.push(REPO, manifest))
        assert d.get("artifactMediaType") == artifact_media_type, manifest.json
        assert d.get("subjectManifestDigest") == subject, manifest.json
        assert d["imageManifestMediaType"] == manifest.media_type


def test_referrers_are_untagged_images(reg: FakeRegistry) -> None:
    image = reg.push(REPO, oci.image_manifest(seed=1), tags=["v1"])
    sig = reg.push(REPO, oci.cosign_signature(oci.image_manifest(seed=1)))
    untagged = reg.client.describe_images(repositoryName=REPO, filter={"tagStatus": "UNTAGGED"})[
        "imageDetails"
    ]
    assert [(d["imageDigest"], d["subjectManifestDigest"]) for d in untagged] == [(sig, image)]


def test_pushed_at_last_pulled_and_status(reg: FakeRegistry) -> None:
    d = reg.push(REPO, oci.image_manifest(seed=1), pushed_at=T0)
    got = detail(reg, d)
    assert got["imagePushedAt"] == T0
    assert got["imageStatus"] == "ACTIVE"
    assert "lastRecordedPullTime" not in got
    reg.set_last_pulled(REPO, d, T0 + timedelta(days=3))
    reg.set_pushed_at(REPO, d, datetime(2026, 1, 1))  # naive = UTC
    got = detail(reg, d)
    assert got["lastRecordedPullTime"] == T0 + timedelta(days=3)
    assert got["imagePushedAt"] == datetime(2026, 1, 1, tzinfo=UTC)
    reg.set_archived(REPO, d)
    assert detail(reg, d)["imageStatus"] == "ARCHIVED"
    assert "lastArchivedAt" in detail(reg, d)
    reg.set_archived(REPO, d, False)
    assert detail(reg, d)["imageStatus"] == "ACTIVE"


def test_a_restored_image_reports_last_activated_at_and_keeps_its_push_time(
    reg: FakeRegistry,
) -> None:
    d = reg.push(REPO, oci.image_manifest(seed=1), pushed_at=T0, archived=True)
    assert "lastActivatedAt" not in detail(reg, d)
    reg.restore(REPO, d, T0 + timedelta(days=200))
    got = detail(reg, d)
    assert got["imageStatus"] == "ACTIVE"
    assert got["lastActivatedAt"] == T0 + timedelta(days=200)
    assert got["imagePushedAt"] == T0


def test_pushed_at_follows_frozen_time(reg: FakeRegistry) -> None:
    with freeze_time(T0):
        d = reg.push(REPO, oci.image_manifest(seed=1))
    assert detail(reg, d)["imagePushedAt"] == T0


def test_repushing_an_archived_image_restores_it(reg: FakeRegistry) -> None:
    m = oci.image_manifest(seed=1)
    d = reg.push(REPO, m, archived=True)
    assert detail(reg, d)["imageStatus"] == "ARCHIVED"
    reg.client.put_image(repositoryName=REPO, imageManifest=m.text)
    assert detail(reg, d)["imageStatus"] == "ACTIVE"


# --- 9: batch_get_image --------------------------------------------------------------------------


ALL_TYPES = [oci.OCI_INDEX, oci.OCI_MANIFEST, oci.DOCKER_MANIFEST_LIST, oci.DOCKER_MANIFEST]


def test_batch_get_returns_stored_bytes_whatever_is_accepted(reg: FakeRegistry) -> None:
    image = oci.image_manifest(seed=1)
    unicode_doc = oci.image_manifest(
        seed=2, annotations={"org.opencontainers.image.title": "café ☕"}
    )
    reg.push(REPO, image)
    reg.push(REPO, unicode_doc)
    idx = oci.index([image.descriptor(platform="linux/amd64")])
    reg.push(REPO, idx, tags=["v1"])
    response = reg.client.batch_get_image(
        repositoryName=REPO,
        imageIds=[{"imageTag": "v1"}, {"imageDigest": unicode_doc.digest}],
        acceptedMediaTypes=[
            oci.DOCKER_MANIFEST
        ],  # ECR might convert; the harness returns as stored
    )
    got = {i["imageId"]["imageDigest"]: i for i in response["images"]}
    assert got[idx.digest]["imageManifest"].encode() == idx.bytes
    assert got[idx.digest]["imageId"] == {"imageDigest": idx.digest, "imageTag": "v1"}
    assert got[idx.digest]["imageManifestMediaType"] == oci.OCI_INDEX
    assert oci.sha256_digest(got[unicode_doc.digest]["imageManifest"]) == unicode_doc.digest
    assert response["failures"] == []


def test_batch_get_failures_and_duplicates(reg: FakeRegistry) -> None:
    d = reg.push(REPO, oci.image_manifest(seed=1), tags=["v1"])
    response = reg.client.batch_get_image(
        repositoryName=REPO,
        imageIds=[
            {"imageDigest": d},
            {"imageDigest": d},
            {"imageTag": "nope"},
            {"imageDigest": d, "imageTag": "other"},
        ],
        acceptedMediaTypes=ALL_TYPES,
    )
    assert [i["imageId"] for i in response["images"]] == [{"imageDigest": d}]
    assert [(f["imageId"], f["failureCode"]) for f in response["failures"]] == [
        ({"imageTag": "nope"}, "ImageNotFound"),
        ({"imageDigest": d, "imageTag": "other"}, "ImageNotFound"),
    ]


def test_archived_manifests_stay_readable_by_default(reg: FakeRegistry) -> None:
    m = oci.image_manifest(seed=1)
    d = reg.push(REPO, m, archived=True)
    response = reg.client.batch_get_image(
        repositoryName=REPO, imageIds=[{"imageDigest": d}], acceptedMediaTypes=ALL_TYPES
    )
    assert [i["imageManifest"] for i in response["images"]] == [m.text]


def test_archived_manifests_can_be_made_inaccessible() -> None:
    with FakeRegistry(archived_manifests_readable=False) as reg:
        live = reg.push(REPO, oci.image_manifest(seed=1))
        cold = reg.push(REPO, oci.image_manifest(seed=2), archived=True)
        response = reg.client.batch_get_image(
            repositoryName=REPO,
            imageIds=[{"imageDigest": live}, {"imageDigest": cold}],
            acceptedMediaTypes=ALL_TYPES,
        )
        assert [i["imageId"]["imageDigest"] for i in response["images"]] == [live]
        assert [(f["imageId"], f["failureCode"]) for f in response["failures"]] == [
            ({"imageDigest": cold}, "ImageInaccessible")
        ]


@pytest.mark.parametrize("readable", [True, False])
def test_archived_image_still_counts_in_digests(readable: bool) -> None:
    with FakeRegistry(archived_manifests_readable=readable) as reg:
        d = reg.seed(REPO, oci.image_manifest(seed=1), archived=True)
        assert reg.digests(REPO) == {d}
        assert reg.is_archived(REPO, d)
        assert reg.manifest(REPO, d) == oci.image_manifest(seed=1).bytes


def test_archived_manifests_can_be_refused_as_not_found() -> None:
    with FakeRegistry(
        archived_manifests_readable=False, archived_manifest_failure="ImageNotFound"
    ) as reg:
        cold = reg.push(REPO, oci.image_manifest(seed=2), archived=True)
        response = reg.client.batch_get_image(
            repositoryName=REPO, imageIds=[{"imageDigest": cold}], acceptedMediaTypes=ALL_TYPES
        )
        assert response["images"] == []
        assert [f["failureCode"] for f in response["failures"]] == ["ImageNotFound"]


# --- DescribeImages by id: what ECR does not document, played as configured --------------------

ANY: DescribeImagesFilterTypeDef = {"tagStatus": "ANY", "imageStatus": "ANY"}


def test_ids_with_a_filter_are_accepted_and_archived_shown_by_default(reg: FakeRegistry) -> None:
    cold = reg.push(REPO, oci.image_manifest(seed=2), archived=True)
    details = reg.client.describe_images(
        repositoryName=REPO, imageIds=[{"imageDigest": cold}], filter=ANY
    )["imageDetails"]
    assert [(d["imageDigest"], d["imageStatus"]) for d in details] == [(cold, "ARCHIVED")]


def test_ids_with_a_filter_can_be_refused() -> None:
    with FakeRegistry(describe_ids_filter="refused") as reg:
        live = reg.push(REPO, oci.image_manifest(seed=1))
        with pytest.raises(ClientError) as raised:
            reg.client.describe_images(
                repositoryName=REPO, imageIds=[{"imageDigest": live}], filter=ANY
            )
        assert raised.value.response["Error"]["Code"] == "InvalidParameterException"
        alone = reg.client.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": live}])
        assert [d["imageDigest"] for d in alone["imageDetails"]] == [live]


def test_archived_ids_can_be_hidden_as_not_found_whatever_the_filter() -> None:
    with FakeRegistry(describe_ids_archived="not-found") as reg:
        live = reg.push(REPO, oci.image_manifest(seed=1))
        cold = reg.push(REPO, oci.image_manifest(seed=2), archived=True)
        with pytest.raises(ClientError) as raised:
            reg.client.describe_images(
                repositoryName=REPO,
                imageIds=[{"imageDigest": live}, {"imageDigest": cold}],
                filter=ANY,
            )
        assert raised.value.response["Error"]["Code"] == "ImageNotFoundException"
        # The listing still shows it: only the answer by id hides it.
        listed = reg.client.describe_images(repositoryName=REPO, filter=ANY)["imageDetails"]
        assert {d["imageDigest"] for d in listed} == {live, cold}


def test_archived_ids_can_be_left_out_of_the_answer() -> None:
    with FakeRegistry(describe_ids_archived="omitted") as reg:
        live = reg.push(REPO, oci.image_manifest(seed=1))
        cold = reg.push(REPO, oci.image_manifest(seed=2), archived=True)
        details = reg.client.describe_images(
            repositoryName=REPO,
            imageIds=[{"imageDigest": live}, {"imageDigest": cold}],
            filter=ANY,
        )["imageDetails"]
        assert [d["imageDigest"] for d in details] == [live]
