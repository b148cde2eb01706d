"""One test per correction, run twice: on the harness (must pass) and on plain moto (must fail).

These tests use only the boto3 API and the pure ``oci`` builders, so the very same scenario runs
on both. The plain-moto run is a strict xfail: if a moto upgrade fixes a gap, that run starts
passing, the suite fails, and the correction can be reconsidered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import boto3.session
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from harness import FakeRegistry, oci

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

REPO = "app"
# moto resets boto3's default session at every mock start; a session of our own keeps botocore's
# loaded data between tests (plain ``boto3.client`` costs ~0.3 s each time).
SESSION = boto3.session.Session()


def _client(mode: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ECRClient]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if mode == "harness":
        with FakeRegistry() as reg:
            reg.create_repository(REPO)
            yield reg.client
    else:
        with mock_aws():
            client = SESSION.client("ecr", region_name="us-east-1")
            client.create_repository(repositoryName=REPO)
            yield client


# How plain moto shows a gap: an answer that is not ECR's (an assertion), a call it accepts that
# ECR refuses (pytest.raises' "DID NOT RAISE"), or one it refuses that ECR accepts. Anything else
# (a TypeError, a KeyError) is a broken test, and must not pass as the expected failure.
MOTO_GAP = (AssertionError, pytest.fail.Exception, ClientError)


@pytest.fixture(
    params=[
        "harness",
        pytest.param(
            "plain-moto",
            marks=pytest.mark.xfail(
                strict=True, raises=MOTO_GAP, reason="the moto gap it corrects"
            ),
        ),
    ]
)
def ecr(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[ECRClient]:
    yield from _client(request.param, monkeypatch)


def put(
    client: ECRClient, manifest: oci.Manifest, tag: str | None = None, *, with_digest: bool = False
) -> Any:
    kwargs: dict[str, Any] = {"repositoryName": REPO, "imageManifest": manifest.text}
    kwargs["imageManifestMediaType"] = manifest.media_type
    if tag:
        kwargs["imageTag"] = tag
    if with_digest:
        kwargs["imageDigest"] = manifest.digest
    return client.put_image(**kwargs)


def details(client: ECRClient, **kwargs: Any) -> list[dict[str, Any]]:
    return [dict(d) for d in client.describe_images(repositoryName=REPO, **kwargs)["imageDetails"]]


def detail_of(client: ECRClient, digest: str) -> dict[str, Any]:
    return next(
        d for d in details(client, filter={"imageStatus": "ANY"}) if d["imageDigest"] == digest
    )


def push_index(
    client: ECRClient, tag: str | None = None, seed: str = "s", *, with_digest: bool = True
) -> tuple[oci.Manifest, oci.Manifest]:
    """Push an image and an index listing it. By default ``imageDigest`` is passed, so that on
    plain moto the digests are right too and each test fails for its own reason only."""
    image = oci.image_manifest(seed=seed)
    put(client, image, with_digest=with_digest)
    idx = oci.index([image.descriptor(platform="linux/amd64")])
    put(client, idx, tag, with_digest=with_digest)
    return image, idx


# 1 -----------------------------------------------------------------------------------------------


def test_1_digest_is_sha256_of_the_exact_bytes(ecr: ECRClient) -> None:
    image, idx = push_index(ecr, with_digest=False)  # the registry computes the digests
    stored = {d["imageDigest"] for d in details(ecr)}
    assert stored == {image.digest, idx.digest}
    assert idx.digest == "sha256:" + hashlib.sha256(idx.bytes).hexdigest()


def test_1_a_wrong_image_digest_is_refused(ecr: ECRClient) -> None:
    image = oci.image_manifest(seed=1)
    with pytest.raises(ClientError) as err:
        ecr.put_image(
            repositoryName=REPO,
            imageManifest=image.text,
            imageDigest=oci.sha256_digest(b"something else"),
        )
    assert err.value.response["Error"]["Code"] == "ImageDigestDoesNotMatchException"


# 2 -----------------------------------------------------------------------------------------------


def test_2_moving_a_tag_leaves_the_old_image_untagged(ecr: ECRClient) -> None:
    _, old = push_index(ecr, "latest", seed="v1")
    _, new = push_index(ecr, "latest", seed="v2")
    by_digest = {d["imageDigest"]: d for d in details(ecr)}
    assert old.digest in by_digest
    assert "imageTags" not in by_digest[old.digest]
    assert by_digest[new.digest]["imageTags"] == ["latest"]


# 3 -----------------------------------------------------------------------------------------------


def test_3_a_child_of_a_live_index_is_not_deleted(ecr: ECRClient) -> None:
    image, idx = push_index(ecr, "latest")
    response = ecr.batch_delete_image(repositoryName=REPO, imageIds=[{"imageDigest": image.digest}])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [f["failureCode"] for f in response["failures"]] == ["ImageReferencedByManifestList"]
    assert response["failures"][0]["imageId"] == {"imageDigest": image.digest}
    assert {d["imageDigest"] for d in details(ecr)} == {image.digest, idx.digest}


def test_3_deleting_an_untagged_image_lists_it(ecr: ECRClient) -> None:
    image = oci.image_manifest(seed=1)
    put(ecr, image, with_digest=True)
    response = ecr.batch_delete_image(repositoryName=REPO, imageIds=[{"imageDigest": image.digest}])
    assert response["imageIds"] == [{"imageDigest": image.digest}]
    assert response["failures"] == []


# 4 -----------------------------------------------------------------------------------------------


def test_4_more_than_100_image_ids_are_refused(ecr: ECRClient) -> None:
    ids: Any = [{"imageDigest": oci.sha256_digest(str(i))} for i in range(101)]
    with pytest.raises(ClientError) as err:
        ecr.batch_get_image(repositoryName=REPO, imageIds=ids)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"


# 5 -----------------------------------------------------------------------------------------------


def test_5_describe_images_filters_by_tag_status(ecr: ECRClient) -> None:
    image, idx = push_index(ecr, "latest")
    assert [d["imageDigest"] for d in details(ecr, filter={"tagStatus": "UNTAGGED"})] == [
        image.digest
    ]
    assert [d["imageDigest"] for d in details(ecr, filter={"tagStatus": "TAGGED"})] == [idx.digest]


def test_5_describe_images_pages(ecr: ECRClient) -> None:
    for i in range(5):
        put(ecr, oci.image_manifest(seed=i), with_digest=True)
    first = ecr.describe_images(repositoryName=REPO, maxResults=2)
    assert len(first["imageDetails"]) == 2 and "nextToken" in first
    pages = list(
        ecr.get_paginator("describe_images").paginate(
            repositoryName=REPO, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["imageDetails"]) for p in pages] == [2, 2, 1]


def test_5_describe_repositories_pages(ecr: ECRClient) -> None:
    for i in range(3):
        ecr.create_repository(repositoryName=f"more-{i}")
    first = ecr.describe_repositories(maxResults=2)
    assert len(first["repositories"]) == 2 and "nextToken" in first


def test_5_max_results_over_1000_is_refused(ecr: ECRClient) -> None:
    with pytest.raises(ClientError) as err:
        ecr.describe_images(repositoryName=REPO, maxResults=1001)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"


# 6 -----------------------------------------------------------------------------------------------


def test_6_image_size_is_layers_plus_config_and_index_is_largest_child(ecr: ECRClient) -> None:
    small = oci.image_manifest(seed="s", layer_sizes=[1000, 2000], config_size=100)
    large = oci.image_manifest(seed="l", layer_sizes=[5000, 6000], config_size=200)
    put(ecr, small, with_digest=True)
    put(ecr, large, with_digest=True)
    idx = oci.index(
        [small.descriptor(platform="linux/amd64"), large.descriptor(platform="linux/arm64")]
    )
    put(ecr, idx, "v1", with_digest=True)
    assert detail_of(ecr, small.digest)["imageSizeInBytes"] == 3100
    assert detail_of(ecr, large.digest)["imageSizeInBytes"] == 11200
    assert detail_of(ecr, idx.digest).get("imageSizeInBytes") == 11200  # largest child, not a sum


# 7 -----------------------------------------------------------------------------------------------


def test_7_referrer_fields_and_image_status(ecr: ECRClient) -> None:
    image = oci.image_manifest(seed=1)
    put(ecr, image, "v1", with_digest=True)
    sig = oci.cosign_signature(image)
    put(ecr, sig, with_digest=True)
    d = detail_of(ecr, sig.digest)
    assert d.get("artifactMediaType") == oci.COSIGN_BUNDLE
    assert d.get("subjectManifestDigest") == image.digest
    assert d.get("imageStatus") == "ACTIVE"
    assert d["imageManifestMediaType"] == oci.OCI_MANIFEST


# 8 -----------------------------------------------------------------------------------------------


def test_8_an_index_with_missing_children_is_refused(ecr: ECRClient) -> None:
    image = oci.image_manifest(seed=1)  # never pushed
    idx = oci.index([image.descriptor(platform="linux/amd64")])
    with pytest.raises(ClientError) as err:
        put(ecr, idx, "v1", with_digest=True)
    assert err.value.response["Error"]["Code"] == "ReferencedImagesNotFoundException"
    assert details(ecr) == []


# 9 -----------------------------------------------------------------------------------------------


def test_9_batch_get_image_returns_exact_bytes_and_echoes_failed_ids(ecr: ECRClient) -> None:
    doc = oci.image_manifest(seed=1).json
    text = json.dumps(doc, indent=3) + "\n"  # unusual but valid formatting
    digest = oci.sha256_digest(text)
    ecr.put_image(repositoryName=REPO, imageManifest=text, imageDigest=digest)
    missing = oci.sha256_digest(b"missing")
    response = ecr.batch_get_image(
        repositoryName=REPO,
        imageIds=[{"imageDigest": digest}, {"imageDigest": missing}],
        acceptedMediaTypes=[
            oci.OCI_MANIFEST,
            oci.OCI_INDEX,
            oci.DOCKER_MANIFEST,
            oci.DOCKER_MANIFEST_LIST,
        ],
    )
    assert [i["imageManifest"] for i in response["images"]] == [text]
    assert response["images"][0]["imageId"]["imageDigest"] == digest
    assert response["failures"] == [
        {
            "imageId": {"imageDigest": missing},
            "failureCode": "ImageNotFound",
            "failureReason": "Requested image not found",
        }
    ]


# 10 ----------------------------------------------------------------------------------------------
# moto already gets this right (several tags on one digest; no imageTags key when untagged), so
# it runs on both without xfail: a regression check that the harness keeps it.


@pytest.fixture(params=["harness", "plain-moto"])
def ecr_both(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ECRClient]:
    yield from _client(request.param, monkeypatch)


def test_10_all_tags_listed_and_untagged_images_have_no_tags_key(ecr_both: ECRClient) -> None:
    image = oci.image_manifest(seed=1)
    put(ecr_both, image, "a", with_digest=True)
    put(ecr_both, image, "b", with_digest=True)
    other = oci.image_manifest(seed=2)
    put(ecr_both, other, with_digest=True)
    assert sorted(detail_of(ecr_both, image.digest)["imageTags"]) == ["a", "b"]
    assert "imageTags" not in detail_of(ecr_both, other.digest)


# 11 ----------------------------------------------------------------------------------------------


def lifecycle_rule(priority: int, selection: dict[str, Any], **action: str) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "selection": selection,
        "action": {"type": "expire", **action},
    }


TODAYS_POLICY = {  # every rule here is one ECR accepts today
    "rules": [
        lifecycle_rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["rc-*"],
                "countType": "sinceImagePulled",
                "countUnit": "days",
                "countNumber": 30,
            },
            type="transition",
            targetStorageClass="archive",
        ),
        lifecycle_rule(
            2,
            {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 90,
            },
        ),
    ]
}
KEEP_ONE = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}
UNTAGGED = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}


def test_11_a_policy_in_todays_language_is_stored_verbatim(ecr: ECRClient) -> None:
    text = json.dumps(TODAYS_POLICY)
    ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=text)
    assert ecr.get_lifecycle_policy(repositoryName=REPO)["lifecyclePolicyText"] == text


@pytest.mark.parametrize(
    "rules",
    [
        [lifecycle_rule(1, UNTAGGED), lifecycle_rule(1, KEEP_ONE)],
        [lifecycle_rule(1, KEEP_ONE), lifecycle_rule(2, UNTAGGED)],
        [lifecycle_rule(1, {**KEEP_ONE, "tagStatus": "tagged"})],
        [lifecycle_rule(1, {**UNTAGGED, "tagPrefixList": ["ci-"]})],
    ],
    ids=["one priority twice", "any not last", "tagged without a list", "untagged with a list"],
)
def test_11_a_policy_ecr_refuses_is_refused(ecr: ECRClient, rules: list[dict[str, Any]]) -> None:
    with pytest.raises(ClientError) as err:
        ecr.put_lifecycle_policy(
            repositoryName=REPO, lifecyclePolicyText=json.dumps({"rules": rules})
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"


def test_11_no_policy_is_lifecycle_policy_not_found_on_both(ecr_both: ECRClient) -> None:
    with pytest.raises(ClientError) as err:
        ecr_both.get_lifecycle_policy(repositoryName=REPO)
    assert err.value.response["Error"]["Code"] == "LifecyclePolicyNotFoundException"
    policy = json.dumps({"rules": [lifecycle_rule(1, KEEP_ONE)]})
    ecr_both.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=policy)
    assert ecr_both.get_lifecycle_policy(repositoryName=REPO)["lifecyclePolicyText"] == policy
    ecr_both.delete_lifecycle_policy(repositoryName=REPO)
    with pytest.raises(ClientError) as err:
        ecr_both.get_lifecycle_policy(repositoryName=REPO)
    assert err.value.response["Error"]["Code"] == "LifecyclePolicyNotFoundException"
