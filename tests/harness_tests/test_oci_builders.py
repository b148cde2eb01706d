"""The manifest builders are pure, deterministic and shaped like what real tools push."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from harness import oci

IMAGE = oci.image_manifest(seed="app", layer_sizes=[100, 200], config_size=10)

ALL_BUILDERS: dict[str, Callable[[], oci.Manifest]] = {
    "oci image": lambda: oci.image_manifest(seed=1),
    "docker image": lambda: oci.image_manifest(seed=1, docker=True),
    "legacy attestation": lambda: oci.legacy_attestation(IMAGE.digest, seed=1, sbom=True),
    "artifact attestation": lambda: oci.artifact_attestation(IMAGE, seed=1),
    "oci index": lambda: oci.index([IMAGE.descriptor(platform="linux/amd64")]),
    "docker list": lambda: oci.manifest_list(
        [oci.image_manifest(seed=1, docker=True).descriptor(platform="linux/amd64")]
    ),
    "buildx index": lambda: oci.buildx_index(
        {"linux/amd64": IMAGE}, {"linux/amd64": oci.legacy_attestation(IMAGE.digest)}
    ),
    "cosign": lambda: oci.cosign_signature(IMAGE),
    "notation": lambda: oci.notation_signature(IMAGE),
    "sbom referrer": lambda: oci.sbom_referrer(IMAGE),
    "helm": lambda: oci.helm_chart("web", "1.2.3"),
    "nested index": lambda: oci.nested_index([oci.index([IMAGE.descriptor()])]),
    "cache index": lambda: oci.buildkit_cache_index(seed=1),
    "cache manifest": lambda: oci.buildkit_cache_manifest(seed=1),
    "cosign .sig": lambda: oci.cosign_legacy(IMAGE.digest, ".sig"),
    "cosign .att": lambda: oci.cosign_legacy(IMAGE.digest, ".att"),
    "cosign .sbom": lambda: oci.cosign_legacy(IMAGE.digest, ".sbom"),
    "referrers fallback index": lambda: oci.referrers_fallback_index([oci.cosign_signature(IMAGE)]),
}


@pytest.mark.parametrize("build", ALL_BUILDERS.values(), ids=ALL_BUILDERS.keys())
def test_builders_are_deterministic_compact_and_self_describing(
    build: Callable[[], oci.Manifest],
) -> None:
    first, second = build(), build()
    assert first == second
    assert first.digest == "sha256:" + hashlib.sha256(first.bytes).hexdigest()
    assert first.size == len(first.bytes)
    doc = json.loads(first.bytes)
    # Compact and in the producers' key order: re-serialising gives the very same bytes.
    assert json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() == first.bytes
    assert list(doc)[:2] == ["schemaVersion", "mediaType"]
    assert doc["mediaType"] == first.media_type


def test_descriptors_carry_sha256_digests_and_sizes() -> None:
    for build in ALL_BUILDERS.values():
        doc = build().json
        for desc in [doc.get("config"), *doc.get("layers", []), *doc.get("manifests", [])]:
            if desc is None:
                continue
            assert desc["digest"].startswith("sha256:") and len(desc["digest"]) == 71
            assert isinstance(desc["size"], int) and desc["size"] > 0


def test_seed_changes_digests_and_base_layers_are_shared() -> None:
    base = [oci.layer("debian:0"), oci.layer("debian:1")]
    a = oci.image_manifest(seed="a", base_layers=base)
    b = oci.image_manifest(seed="b", base_layers=base)
    assert a.digest != b.digest
    assert a.json["layers"][:2] == b.json["layers"][:2] == base
    assert a.json["layers"][2:] != b.json["layers"][2:]
    assert len(a.json["layers"]) == 5


def test_oci_and_docker_image_manifests() -> None:
    oci_doc = IMAGE.json
    assert oci_doc["mediaType"] == oci.OCI_MANIFEST
    assert oci_doc["config"] == {
        "mediaType": oci.OCI_CONFIG,
        "digest": oci_doc["config"]["digest"],
        "size": 10,
    }
    assert [layer["size"] for layer in oci_doc["layers"]] == [100, 200]
    assert {layer["mediaType"] for layer in oci_doc["layers"]} == {oci.OCI_LAYER}

    docker = oci.image_manifest(seed=1, docker=True).json
    assert docker["mediaType"] == oci.DOCKER_MANIFEST
    assert docker["config"]["mediaType"] == oci.DOCKER_CONFIG
    assert {layer["mediaType"] for layer in docker["layers"]} == {oci.DOCKER_LAYER}
    # The platform feeds the config digest, as a real config records os/arch.
    amd, arm = (oci.image_manifest(seed=1, platform=p).json for p in ("linux/amd64", "linux/arm64"))
    assert amd["config"]["digest"] != arm["config"]["digest"]


def test_legacy_attestation_is_an_image_manifest_of_in_toto_layers_without_subject() -> None:
    att = oci.legacy_attestation(IMAGE.digest, seed=7, provenance="v0.2", sbom=True)
    doc = att.json
    assert att.media_type == oci.OCI_MANIFEST
    assert "subject" not in doc and "artifactType" not in doc
    assert doc["config"]["mediaType"] == oci.OCI_CONFIG
    assert {layer["mediaType"] for layer in doc["layers"]} == {oci.IN_TOTO}
    predicates = [layer["annotations"][oci.PREDICATE_TYPE_ANNOTATION] for layer in doc["layers"]]
    assert predicates == [oci.SPDX_DOCUMENT, oci.PROVENANCE_V02]
    v1 = oci.legacy_attestation(IMAGE.digest, seed=7, provenance="v1").json
    assert [layer["annotations"][oci.PREDICATE_TYPE_ANNOTATION] for layer in v1["layers"]] == [
        oci.PROVENANCE_V1
    ]
    # A rebuild (new seed) or another image gives another attestation.
    assert oci.legacy_attestation(IMAGE.digest, seed=8) != oci.legacy_attestation(
        IMAGE.digest, seed=7
    )
    with pytest.raises(ValueError):
        oci.legacy_attestation(IMAGE.digest, provenance=None, sbom=False)


def test_artifact_attestation_has_artifact_type_empty_config_and_subject() -> None:
    doc = oci.artifact_attestation(IMAGE, seed=1).json
    assert doc["artifactType"] == oci.ATTESTATION_MANIFEST
    assert doc["config"] == dict(oci.EMPTY_DESCRIPTOR)
    assert oci.EMPTY_DESCRIPTOR["digest"] == oci.sha256_digest(b"{}")
    assert doc["subject"] == {
        "mediaType": oci.OCI_MANIFEST,
        "digest": IMAGE.digest,
        "size": IMAGE.size,
    }
    assert doc["layers"][0]["annotations"][oci.PREDICATE_TYPE_ANNOTATION] == oci.PROVENANCE_V1


def test_buildx_index_lists_images_then_attestations_with_reference_annotations() -> None:
    arm = oci.image_manifest(seed="arm", platform="linux/arm64/v8")
    atts = {
        p: oci.legacy_attestation(m.digest)
        for p, m in (("linux/amd64", IMAGE), ("linux/arm64/v8", arm))
    }
    doc = oci.buildx_index({"linux/amd64": IMAGE, "linux/arm64/v8": arm}, atts).json
    assert doc["mediaType"] == oci.OCI_INDEX
    entries = doc["manifests"]
    assert [e["digest"] for e in entries] == [
        IMAGE.digest,
        arm.digest,
        *(a.digest for a in atts.values()),
    ]
    assert entries[1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert entries[2] == {
        "mediaType": oci.OCI_MANIFEST,
        "digest": atts["linux/amd64"].digest,
        "size": atts["linux/amd64"].size,
        "annotations": {
            oci.REFERENCE_DIGEST_ANNOTATION: IMAGE.digest,
            oci.REFERENCE_TYPE_ANNOTATION: "attestation-manifest",
        },
        "platform": {"architecture": "unknown", "os": "unknown"},
    }


def test_docker_manifest_list() -> None:
    child = oci.image_manifest(seed=1, docker=True)
    doc = oci.manifest_list([child.descriptor(platform="linux/amd64")]).json
    assert doc["mediaType"] == oci.DOCKER_MANIFEST_LIST
    assert doc["manifests"][0]["mediaType"] == oci.DOCKER_MANIFEST


@pytest.mark.parametrize(
    ("build", "artifact_type", "layer_type"),
    [
        (oci.cosign_signature, oci.COSIGN_BUNDLE, oci.COSIGN_BUNDLE),
        (oci.notation_signature, oci.NOTATION_SIGNATURE, "application/jose+json"),
        (oci.sbom_referrer, oci.SPDX_JSON, oci.SPDX_JSON),
    ],
)
def test_referrers_point_at_their_subject(
    build: Callable[[oci.Manifest], oci.Manifest], artifact_type: str, layer_type: str
) -> None:
    doc = build(IMAGE).json
    assert doc["mediaType"] == oci.OCI_MANIFEST
    assert doc["artifactType"] == artifact_type
    assert doc["config"]["mediaType"] == oci.OCI_EMPTY
    assert doc["layers"][0]["mediaType"] == layer_type
    assert doc["subject"]["digest"] == IMAGE.digest


def test_helm_chart() -> None:
    doc = oci.helm_chart("web", "1.2.3").json
    assert doc["config"]["mediaType"] == oci.HELM_CONFIG
    assert [layer["mediaType"] for layer in doc["layers"]] == [oci.HELM_CHART]
    assert doc["annotations"]["org.opencontainers.image.version"] == "1.2.3"


def test_nested_index_lists_indexes() -> None:
    inner = [
        oci.index([IMAGE.descriptor(platform="linux/amd64")], annotations={"n": str(i)})
        for i in range(2)
    ]
    doc = oci.nested_index(inner).json
    assert [e["mediaType"] for e in doc["manifests"]] == [oci.OCI_INDEX, oci.OCI_INDEX]
    assert [e["digest"] for e in doc["manifests"]] == [m.digest for m in inner]


def test_buildkit_cache_index_lists_blobs_not_manifests() -> None:
    doc = oci.buildkit_cache_index(seed=1, layers=2).json
    assert doc["mediaType"] == oci.OCI_INDEX
    assert [e["mediaType"] for e in doc["manifests"]] == [
        oci.OCI_LAYER,
        oci.OCI_LAYER,
        oci.BUILDKIT_CACHE_CONFIG,
    ]
    assert (
        oci.buildkit_cache_manifest(seed=1).json["config"]["mediaType"] == oci.BUILDKIT_CACHE_CONFIG
    )


def test_unparseable_and_missing_media_type() -> None:
    bad = oci.unparseable(seed=3)
    with pytest.raises(ValueError):
        json.loads(bad.bytes)
    assert bad.media_type == oci.OCI_MANIFEST
    bare = oci.without_media_type(oci.helm_chart())
    assert "mediaType" not in bare.json
    assert bare.media_type == oci.OCI_MANIFEST
    assert bare.digest != oci.helm_chart().digest


def test_descriptor_options() -> None:
    assert IMAGE.descriptor() == {
        "mediaType": oci.OCI_MANIFEST,
        "digest": IMAGE.digest,
        "size": IMAGE.size,
    }
    desc = IMAGE.descriptor(
        platform={"architecture": "s390x", "os": "linux"}, annotations={"a": "b"}
    )
    assert list(desc) == ["mediaType", "digest", "size", "annotations", "platform"]
    with pytest.raises(ValueError):
        IMAGE.descriptor(platform="linux")


def test_cosign_tag_scheme_accessory_is_tied_to_its_subject_by_its_tag_alone() -> None:
    sig = oci.cosign_legacy(IMAGE.digest, ".sig")
    assert "subject" not in sig.json
    assert sig.json["config"]["mediaType"] == oci.OCI_CONFIG  # as cosign writes it
    assert oci.accessory_tag(IMAGE.digest, ".sig") == f"sha256-{IMAGE.digest[7:]}.sig"
    assert oci.accessory_tag(IMAGE.digest, "") == f"sha256-{IMAGE.digest[7:]}"


def test_referrers_fallback_index_lists_each_referrer_with_its_artifact_type() -> None:
    signature = oci.cosign_signature(IMAGE)
    entries = oci.referrers_fallback_index([signature]).json["manifests"]
    assert entries == [{**signature.descriptor(), "artifactType": oci.COSIGN_BUNDLE}]
