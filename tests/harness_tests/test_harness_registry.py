"""FakeRegistry's own API: seeding, buildx pushes, helpers, and the patch life cycle."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3.session
import pytest
from moto import mock_aws
from moto.ecr.models import ECRBackend

from harness import FakeRegistry, oci
from harness.ecr import corrections_active

REPO = "app"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def describe_all(reg: FakeRegistry, repo: str = REPO) -> list[dict[str, Any]]:
    pages = reg.client.get_paginator("describe_images").paginate(
        repositoryName=repo, filter={"imageStatus": "ANY"}, PaginationConfig={"PageSize": 1000}
    )
    return [dict(d) for page in pages for d in page["imageDetails"]]


def scenario(reg: FakeRegistry, store: str) -> None:
    """The same registry state, built with push or with seed."""
    put = getattr(reg, store)
    image = oci.image_manifest(seed=1)
    put(REPO, image, tags=["v1", "stable"], pushed_at=T0)
    put(REPO, oci.legacy_attestation(image.digest), pushed_at=T0)
    put(
        REPO,
        oci.buildx_index(
            {"linux/amd64": image}, {"linux/amd64": oci.legacy_attestation(image.digest)}
        ),
        tags=["latest"],
        pushed_at=T0,
    )
    put(REPO, oci.cosign_signature(image), pushed_at=T0, last_pulled=T0)
    put(REPO, oci.helm_chart(), tags=["chart"], archived=True, pushed_at=T0)
    put(REPO, oci.image_manifest(seed=2), tags=["v1"], pushed_at=T0)  # moves v1


def test_seed_reaches_the_same_state_as_push() -> None:
    results = []
    for store in ("push", "seed"):
        with FakeRegistry() as reg:
            scenario(reg, store)
            details = describe_all(reg)
            for d in details:
                d.pop("lastArchivedAt", None)  # set from the wall clock
            results.append((details, reg.tags(REPO), reg.digests(REPO)))
    assert results[0] == results[1]
    details, tags, _ = results[0]
    assert tags == {
        "stable": oci.image_manifest(seed=1).digest,
        "latest": tags["latest"],
        "chart": tags["chart"],
        "v1": oci.image_manifest(seed=2).digest,
    }
    assert all(d["imagePushedAt"] == T0 for d in details)


def test_seeding_thousands_is_fast_and_pages_through(reg: FakeRegistry) -> None:
    start = time.perf_counter()
    digests = [
        reg.seed(REPO, oci.image_manifest(seed=i, layers=1), tags=[f"t{i}"] if i % 10 == 0 else [])
        for i in range(3000)
    ]
    assert time.perf_counter() - start < 5
    assert len(reg.digests(REPO)) == 3000
    pages = reg.client.get_paginator("list_images").paginate(
        repositoryName=REPO, filter={"tagStatus": "UNTAGGED"}, PaginationConfig={"PageSize": 1000}
    )
    listed = [i["imageDigest"] for page in pages for i in page["imageIds"]]
    assert listed == [d for i, d in enumerate(digests) if i % 10]
    untagged = reg.client.describe_images(
        repositoryName=REPO, filter={"tagStatus": "UNTAGGED"}, maxResults=1000
    )
    assert len(untagged["imageDetails"]) == 1000 and "nextToken" in untagged


def test_seed_accepts_unparseable_bytes_and_requires_a_media_type(reg: FakeRegistry) -> None:
    bad = oci.unparseable(seed=1)
    d = reg.seed(REPO, bad.bytes, media_type=oci.OCI_MANIFEST)
    assert d == bad.digest and reg.manifest(REPO, d) == bad.bytes
    with pytest.raises(ValueError, match="media"):
        reg.seed(REPO, b"not json at all")
    assert (
        reg.seed(REPO, oci.image_manifest(seed=1).text) == oci.image_manifest(seed=1).digest
    )  # str input


def test_helpers(reg: FakeRegistry) -> None:
    a = reg.push(REPO, oci.image_manifest(seed="a"), tags=["x"])
    assert (
        reg.exists(REPO, a)
        and not reg.exists(REPO, oci.sha256_digest(b"?"))
        and not reg.exists("nope", a)
    )
    assert reg.manifest(REPO, a) == oci.image_manifest(seed="a").bytes
    assert reg.tags(REPO) == {"x": a}
    with pytest.raises(KeyError):
        reg.manifest(REPO, oci.sha256_digest(b"?"))
    with pytest.raises(KeyError):
        reg.digests("nope")
    reg.create_repository(REPO)  # idempotent
    assert reg.client.describe_repositories()["repositories"][0]["repositoryName"] == REPO


# --- buildx --------------------------------------------------------------------------------------


def test_buildx_single_platform_with_legacy_attestation(reg: FakeRegistry) -> None:
    build = reg.push_buildx(REPO, tag="latest", pushed_at=T0)
    assert build.all == {
        build.index,
        build.images["linux/amd64"],
        build.attestations["linux/amd64"],
    }
    assert reg.digests(REPO) == build.all
    assert reg.tags(REPO) == {"latest": build.index}
    entries = oci.Manifest(reg.manifest(REPO, build.index), oci.OCI_INDEX).json["manifests"]
    assert [e["digest"] for e in entries] == [
        build.images["linux/amd64"],
        build.attestations["linux/amd64"],
    ]
    assert entries[1]["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert entries[1]["annotations"][oci.REFERENCE_DIGEST_ANNOTATION] == build.images["linux/amd64"]
    att = oci.Manifest(reg.manifest(REPO, build.attestations["linux/amd64"]), oci.OCI_MANIFEST).json
    assert "subject" not in att
    assert {layer["mediaType"] for layer in att["layers"]} == {oci.IN_TOTO}
    untagged = {
        d["imageDigest"]
        for d in reg.client.describe_images(repositoryName=REPO, filter={"tagStatus": "UNTAGGED"})[
            "imageDetails"
        ]
    }
    assert untagged == build.all - {build.index}


def test_buildx_multi_platform_artifact_form_with_sbom(reg: FakeRegistry) -> None:
    build = reg.push_buildx(
        REPO, tag="v2", platforms=("linux/amd64", "linux/arm64"), attestation="artifact", sbom=True
    )
    assert set(build.images) == set(build.attestations) == {"linux/amd64", "linux/arm64"}
    assert len(build.all) == 5
    for platform, att in build.attestations.items():
        d = reg.client.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": att}])[
            "imageDetails"
        ][0]
        assert d["artifactMediaType"] == oci.ATTESTATION_MANIFEST
        assert d["subjectManifestDigest"] == build.images[platform]
        layers = oci.Manifest(reg.manifest(REPO, att), oci.OCI_MANIFEST).json["layers"]
        assert [la["annotations"][oci.PREDICATE_TYPE_ANNOTATION] for la in layers] == [
            oci.SPDX_DOCUMENT,
            oci.PROVENANCE_V1,
        ]


def test_buildx_without_attestations(reg: FakeRegistry) -> None:
    build = reg.push_buildx(
        REPO, tag=None, platforms=("linux/amd64", "linux/arm64"), attestation="none"
    )
    assert build.attestations == {} and len(build.all) == 3 and reg.tags(REPO) == {}


def test_rebuild_leaves_the_old_build_untagged(reg: FakeRegistry) -> None:
    first = reg.push_buildx(REPO, tag="latest")
    second = reg.push_buildx(REPO, tag="latest")
    assert first.all.isdisjoint(second.all)
    assert reg.digests(REPO) == first.all | second.all
    assert reg.tags(REPO) == {"latest": second.index}


def test_build_id_makes_builds_reproducible() -> None:
    digests = []
    for _ in range(2):
        with FakeRegistry() as reg:
            digests.append(
                reg.push_buildx(
                    REPO, tag="x", build_id=42, platforms=("linux/amd64", "linux/arm64")
                )
            )
    assert digests[0] == digests[1]
    with FakeRegistry() as reg:
        assert reg.push_buildx(REPO, tag="x", build_id=43).index != digests[0].index


def test_shared_images_are_listed_by_both_indexes(reg: FakeRegistry) -> None:
    first = reg.push_buildx(REPO, tag="v1", platforms=("linux/amd64", "linux/arm64"), pushed_at=T0)
    second = reg.push_buildx(
        REPO, tag="v2", platforms=("linux/amd64", "linux/arm64"), shared_images_from=first
    )
    assert second.images == first.images
    assert second.index != first.index and set(second.attestations.values()).isdisjoint(
        first.attestations.values()
    )
    assert (
        len(reg.digests(REPO)) == 1 + 2 + 2 + 1 + 2
    )  # two indexes, shared images, two sets of attestations
    # The shared images were not pushed again: their push time is unchanged.
    for digest in first.images.values():
        d = reg.client.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": digest}])[
            "imageDetails"
        ][0]
        assert d["imagePushedAt"] == T0


def test_buildx_fast_path_matches_the_api_path() -> None:
    states = []
    for fast in (False, True):
        with FakeRegistry() as reg:
            build = reg.push_buildx(
                REPO,
                tag="t",
                platforms=("linux/amd64", "linux/arm64"),
                build_id="b",
                fast=fast,
                pushed_at=T0,
            )
            states.append((build, reg.tags(REPO), describe_all(reg)))
    assert states[0] == states[1]


def test_base_layers_are_shared_between_rebuilds(reg: FakeRegistry) -> None:
    a, b = (reg.push_buildx(REPO, tag="t") for _ in range(2))
    layers = [
        oci.Manifest(reg.manifest(REPO, x.images["linux/amd64"]), oci.OCI_MANIFEST).json["layers"]
        for x in (a, b)
    ]
    assert layers[0][:2] == layers[1][:2] and layers[0][2:] != layers[1][2:]


# --- life cycle ----------------------------------------------------------------------------------


def test_patches_are_removed_on_exit() -> None:
    original = ECRBackend.put_image
    with FakeRegistry():
        assert corrections_active()
        assert ECRBackend.put_image is not original
    assert not corrections_active()
    assert ECRBackend.put_image is original


def test_patches_are_removed_when_the_body_raises() -> None:
    original = ECRBackend.batch_delete_image
    with pytest.raises(RuntimeError), FakeRegistry():
        raise RuntimeError("boom")
    assert ECRBackend.batch_delete_image is original and not corrections_active()


def test_two_regions_at_once_inside_one_mock() -> None:
    with mock_aws(), FakeRegistry("us-east-1", start_mock=False) as east:
        with FakeRegistry("eu-west-1", start_mock=False) as west:
            east.push(REPO, oci.image_manifest(seed=1))
            west.push(REPO, oci.image_manifest(seed=2))
            assert east.digests(REPO) != west.digests(REPO)
        # The inner exit keeps the corrections for the outer registry.
        assert corrections_active()
        child = oci.image_manifest(seed=9)
        with pytest.raises(Exception, match="ReferencedImagesNotFound"):
            east.push(REPO, oci.index([child.descriptor()]))
    assert not corrections_active()


def test_code_under_test_sees_the_same_registry(reg: FakeRegistry) -> None:
    d = reg.push(REPO, oci.image_manifest(seed=1), tags=["v1"])
    other = boto3.session.Session().client("ecr", region_name="us-east-1")
    assert other.describe_images(repositoryName=REPO)["imageDetails"][0]["imageDigest"] == d


def test_credentials_are_set_only_while_entered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mine")
    with FakeRegistry():
        assert os.environ.get("AWS_ACCESS_KEY_ID")  # dummy value (moto's mock sets its own too)
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "mine"


def test_another_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    with FakeRegistry(account_id="210987654321") as reg:
        reg.push(REPO, oci.image_manifest(seed=1))
        repo = reg.client.describe_repositories()["repositories"][0]
        assert repo["registryId"] == "210987654321"
    assert "MOTO_ACCOUNT_ID" not in os.environ


def test_client_needs_an_entered_registry() -> None:
    reg = FakeRegistry()
    with pytest.raises(RuntimeError):
        _ = reg.client


def test_concurrent_calls_keep_the_registry_consistent(reg: FakeRegistry) -> None:
    digests = [reg.seed(REPO, oci.image_manifest(seed=i, layers=1)) for i in range(200)]
    keep = reg.seed(REPO, oci.image_manifest(seed="keep"), tags=["keep"])

    def delete(chunk: list[str]) -> int:
        ids: Any = [{"imageDigest": d} for d in chunk]
        response = reg.client.batch_delete_image(repositoryName=REPO, imageIds=ids)
        reg.client.describe_images(repositoryName=REPO)
        return len(response["imageIds"])

    with ThreadPoolExecutor(8) as pool:
        deleted = sum(pool.map(delete, [digests[i : i + 25] for i in range(0, 200, 25)]))
    assert deleted == 200
    assert reg.digests(REPO) == {keep} and reg.tags(REPO) == {"keep": keep}
