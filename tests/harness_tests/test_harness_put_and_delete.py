"""PutImage and BatchDeleteImage as ECR does them (corrections 1, 2, 3, 8 and 10 in detail)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from harness import FakeRegistry, oci

REPO = "app"


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def describe(reg: FakeRegistry, digest: str) -> dict[str, Any]:
    response = reg.client.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": digest}])
    return dict(response["imageDetails"][0])


def delete(reg: FakeRegistry, *ids: dict[str, str]) -> dict[str, Any]:
    image_ids: Any = list(ids)
    return dict(reg.client.batch_delete_image(repositoryName=REPO, imageIds=image_ids))


def build(reg: FakeRegistry, tag: str | None = "latest", seed: str = "s") -> tuple[str, str]:
    image = reg.push(REPO, oci.image_manifest(seed=seed))
    idx = reg.push(
        REPO,
        oci.index([oci.image_manifest(seed=seed).descriptor(platform="linux/amd64")]),
        tags=[tag] if tag else [],
    )
    return image, idx


# --- 1: digests ----------------------------------------------------------------------------------


def test_whitespace_matters_for_the_digest(reg: FakeRegistry) -> None:
    compact = oci.image_manifest(seed=1)
    pretty = json.dumps(compact.json, indent=2)
    a = reg.push(REPO, compact)
    b = reg.push(REPO, pretty)
    assert a != b
    assert reg.digests(REPO) == {compact.digest, oci.sha256_digest(pretty)}
    assert reg.manifest(REPO, b) == pretty.encode()


def test_put_image_without_digest_reports_the_computed_one(reg: FakeRegistry) -> None:
    reg.create_repository(REPO)
    idx_children = [reg.push(REPO, oci.image_manifest(seed=i)) for i in range(2)]
    assert len(idx_children) == 2
    idx = oci.index(
        [oci.image_manifest(seed=i).descriptor(platform=f"linux/arch{i}") for i in range(2)]
    )
    response = reg.client.put_image(repositoryName=REPO, imageManifest=idx.text, imageTag="v1")
    assert response["image"]["imageId"] == {"imageDigest": idx.digest, "imageTag": "v1"}
    assert response["image"]["imageManifest"] == idx.text


def test_same_bytes_twice_is_one_image(reg: FakeRegistry) -> None:
    m = oci.image_manifest(seed=1)
    assert reg.push(REPO, m) == reg.push(REPO, m)
    assert reg.digests(REPO) == {m.digest}


# --- 2 and 10: tags ------------------------------------------------------------------------------


def test_retag_keeps_the_previous_image_untagged(reg: FakeRegistry) -> None:
    old_image, old_idx = build(reg, seed="v1")
    new_image, new_idx = build(reg, seed="v2")
    assert reg.digests(REPO) == {old_image, old_idx, new_image, new_idx}
    assert reg.tags(REPO) == {"latest": new_idx}
    assert "imageTags" not in describe(reg, old_idx)


def test_tag_helper_moves_and_adds_tags(reg: FakeRegistry) -> None:
    a = reg.push(REPO, oci.image_manifest(seed="a"), tags=["v1", "stable"])
    b = reg.push(REPO, oci.image_manifest(seed="b"))
    reg.tag(REPO, "stable", b)
    reg.tag(REPO, "stable", b)  # idempotent
    assert reg.tags(REPO) == {"v1": a, "stable": b}
    assert describe(reg, a)["imageTags"] == ["v1"]
    reg.tag(REPO, "extra", a)
    assert describe(reg, a)["imageTags"] == ["v1", "extra"]


def test_moving_the_only_tag_leaves_an_untagged_image(reg: FakeRegistry) -> None:
    a = reg.push(REPO, oci.image_manifest(seed="a"), tags=["v1"])
    b = reg.push(REPO, oci.image_manifest(seed="b"))
    reg.tag(REPO, "v1", b)
    assert reg.exists(REPO, a)
    assert "imageTags" not in describe(reg, a)
    untagged = reg.client.list_images(repositoryName=REPO, filter={"tagStatus": "UNTAGGED"})[
        "imageIds"
    ]
    assert untagged == [{"imageDigest": a}]


def test_pushing_an_existing_tag_again_is_refused_by_the_api_but_push_tolerates_it(
    reg: FakeRegistry,
) -> None:
    m = oci.image_manifest(seed=1)
    reg.push(REPO, m, tags=["v1"])
    with pytest.raises(ClientError) as err:
        reg.client.put_image(repositoryName=REPO, imageManifest=m.text, imageTag="v1")
    assert error_code(err) == "ImageAlreadyExistsException"
    assert reg.push(REPO, m, tags=["v1"]) == m.digest  # docker push semantics


def test_immutable_repository_refuses_moving_a_tag(reg: FakeRegistry) -> None:
    reg.client.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")
    reg.push("frozen", oci.image_manifest(seed=1), tags=["v1"])
    with pytest.raises(ClientError) as err:
        reg.push("frozen", oci.image_manifest(seed=2), tags=["v1"])
    assert error_code(err) == "ImageTagAlreadyExistsException"
    assert reg.digests("frozen") == {oci.image_manifest(seed=1).digest}  # nothing stored


# --- 3: deletes ----------------------------------------------------------------------------------


def test_index_and_child_in_one_call_deletes_only_the_index(reg: FakeRegistry) -> None:
    image, idx = build(reg)
    response = delete(reg, {"imageDigest": idx}, {"imageDigest": image})
    assert response["imageIds"] == [{"imageDigest": idx, "imageTag": "latest"}]
    assert [(f["imageId"], f["failureCode"]) for f in response["failures"]] == [
        ({"imageDigest": image}, "ImageReferencedByManifestList")
    ]
    assert idx in response["failures"][0]["failureReason"]
    # Parents first, then children in a later call.
    response = delete(reg, {"imageDigest": image})
    assert response == {**response, "imageIds": [{"imageDigest": image}], "failures": []}
    assert reg.digests(REPO) == set()


def test_other_items_in_the_call_proceed(reg: FakeRegistry) -> None:
    image, _ = build(reg)
    loose = reg.push(REPO, oci.image_manifest(seed="loose"))
    missing = oci.sha256_digest(b"missing")
    response = delete(reg, {"imageDigest": image}, {"imageDigest": loose}, {"imageDigest": missing})
    assert response["imageIds"] == [{"imageDigest": loose}]
    assert [f["failureCode"] for f in response["failures"]] == [
        "ImageReferencedByManifestList",
        "ImageNotFound",
    ]
    assert response["failures"][1]["imageId"] == {"imageDigest": missing}
    assert not reg.exists(REPO, loose) and reg.exists(REPO, image)


def test_a_deleted_untagged_digest_may_be_left_out_of_the_answer() -> None:
    """ECR does not document whether it lists a deleted untagged digest: the harness plays
    both; a tagged one is listed with its tag either way."""
    with FakeRegistry(delete_untagged_answer="omitted") as reg:
        loose = reg.push(REPO, oci.image_manifest(seed="loose"))
        tagged = reg.push(REPO, oci.image_manifest(seed="tagged"), tags=["v1"])
        response = delete(reg, {"imageDigest": loose}, {"imageDigest": tagged})
        assert response["imageIds"] == [{"imageDigest": tagged, "imageTag": "v1"}]
        assert response["failures"] == []
        assert not reg.exists(REPO, loose) and not reg.exists(REPO, tagged)


def test_child_shared_by_two_indexes_needs_both_gone(reg: FakeRegistry) -> None:
    first = reg.push_buildx(REPO, tag="v1")
    second = reg.push_buildx(REPO, tag="v2", shared_images_from=first)
    shared = first.images["linux/amd64"]
    assert second.images["linux/amd64"] == shared
    delete(reg, {"imageDigest": first.index})
    assert (
        delete(reg, {"imageDigest": shared})["failures"][0]["failureCode"]
        == "ImageReferencedByManifestList"
    )
    delete(reg, {"imageDigest": second.index})
    assert delete(reg, {"imageDigest": shared})["imageIds"] == [{"imageDigest": shared}]


def test_an_archived_index_still_protects_its_children(reg: FakeRegistry) -> None:
    image, idx = build(reg)
    reg.set_archived(REPO, idx)
    assert (
        delete(reg, {"imageDigest": image})["failures"][0]["failureCode"]
        == "ImageReferencedByManifestList"
    )


def test_delete_by_digest_removes_every_tag(reg: FakeRegistry) -> None:
    d = reg.push(REPO, oci.image_manifest(seed=1), tags=["a", "b"])
    response = delete(reg, {"imageDigest": d})
    assert response["imageIds"] == [
        {"imageDigest": d, "imageTag": "a"},
        {"imageDigest": d, "imageTag": "b"},
    ]
    assert reg.tags(REPO) == {} and reg.digests(REPO) == set()


def test_delete_by_tag_untags_until_the_last_tag(reg: FakeRegistry) -> None:
    d = reg.push(REPO, oci.image_manifest(seed=1), tags=["a", "b"])
    assert delete(reg, {"imageTag": "a"})["imageIds"] == [{"imageDigest": d, "imageTag": "a"}]
    assert reg.exists(REPO, d) and reg.tags(REPO) == {"b": d}
    assert delete(reg, {"imageTag": "b"})["imageIds"] == [{"imageDigest": d, "imageTag": "b"}]
    assert not reg.exists(REPO, d)


def test_deleting_the_last_tag_of_a_referenced_child_is_refused(reg: FakeRegistry) -> None:
    child = reg.push(REPO, oci.image_manifest(seed=1), tags=["child"])
    reg.push(REPO, oci.index([oci.image_manifest(seed=1).descriptor()]), tags=["idx"])
    response = delete(reg, {"imageTag": "child"})
    assert response["failures"][0]["failureCode"] == "ImageReferencedByManifestList"
    assert reg.tags(REPO)["child"] == child


def test_malformed_ids(reg: FakeRegistry) -> None:
    reg.create_repository(REPO)
    response = delete(
        reg,
        {"imageDigest": "not-a-digest"},
        {"imageTag": "nope"},
        {"imageDigest": oci.sha256_digest(b"x"), "imageTag": "t"},
    )
    assert [f["failureCode"] for f in response["failures"]] == [
        "InvalidImageDigest",
        "ImageNotFound",
        "ImageNotFound",
    ]
    assert response["imageIds"] == []


def test_delete_in_missing_repository(reg: FakeRegistry) -> None:
    with pytest.raises(ClientError) as err:
        reg.client.batch_delete_image(repositoryName="nope", imageIds=[{"imageTag": "x"}])
    assert error_code(err) == "RepositoryNotFoundException"


# --- 8: indexes need their children --------------------------------------------------------------


def test_index_is_accepted_once_every_child_exists(reg: FakeRegistry) -> None:
    images = [oci.image_manifest(seed=p, platform=p) for p in ("linux/amd64", "linux/arm64")]
    idx = oci.index(
        [
            m.descriptor(platform=p)
            for m, p in zip(images, ("linux/amd64", "linux/arm64"), strict=True)
        ]
    )
    reg.push(REPO, images[0])
    with pytest.raises(ClientError) as err:
        reg.push(REPO, idx, tags=["v1"])
    assert error_code(err) == "ReferencedImagesNotFoundException"
    assert images[1].digest in str(err.value)
    assert reg.tags(REPO) == {}
    reg.push(REPO, images[1])
    assert reg.push(REPO, idx, tags=["v1"]) == idx.digest


def test_docker_manifest_list_and_nested_index_need_children_too(reg: FakeRegistry) -> None:
    child = oci.image_manifest(seed=1, docker=True)
    lst = oci.manifest_list([child.descriptor(platform="linux/amd64")])
    with pytest.raises(ClientError):
        reg.push(REPO, lst)
    reg.push(REPO, child)
    reg.push(REPO, lst)
    outer = oci.nested_index([lst])
    reg.push(REPO, outer, tags=["nested"])
    assert reg.digests(REPO) == {child.digest, lst.digest, outer.digest}


def test_seed_refuses_missing_children_with_value_error(reg: FakeRegistry) -> None:
    idx = oci.index([oci.image_manifest(seed=1).descriptor()])
    with pytest.raises(ValueError, match="not found"):
        reg.seed(REPO, idx)
    assert reg.digests(REPO) == set()


def test_buildkit_cache_index_lists_blobs_so_it_is_accepted(reg: FakeRegistry) -> None:
    # Harness choice: only manifest-typed entries must exist. (Real ECR is reported to refuse
    # this legacy cache format outright; the harness lets it in so classification can be tested.)
    cache = oci.buildkit_cache_index(seed=1)
    assert reg.push(REPO, cache, tags=["cache"]) == cache.digest


def test_put_image_rejects_invalid_json_and_missing_repository(reg: FakeRegistry) -> None:
    reg.create_repository(REPO)
    bad = oci.unparseable()
    with pytest.raises(ClientError) as err:
        reg.push(REPO, bad)
    assert error_code(err) == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        reg.client.put_image(repositoryName="missing", imageManifest=oci.image_manifest().text)
    assert error_code(err) == "RepositoryNotFoundException"
    # No mediaType in the document and none given: ECR needs one.
    bare = oci.without_media_type(oci.helm_chart())
    with pytest.raises(ClientError) as err:
        reg.client.put_image(repositoryName=REPO, imageManifest=bare.text)
    assert error_code(err) == "InvalidParameterException"
    assert reg.push(REPO, bare) == bare.digest  # push sends bare.media_type
    assert describe(reg, bare.digest)["imageManifestMediaType"] == oci.OCI_MANIFEST
