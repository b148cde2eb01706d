"""Classification from exact bytes: one row per manifest shape found in real registries."""

from __future__ import annotations

import json

import pytest

from harness import oci
from sweeper.manifests import ALL_MANIFEST_TYPES, attestation_entries, parse
from sweeper.model import Kind

IMAGE = oci.image_manifest("img")
DOCKER_IMAGE = oci.image_manifest("img", docker=True)

CASES: list[tuple[str, oci.Manifest, Kind]] = [
    ("oci image", IMAGE, Kind.IMAGE),
    ("docker v2 image", DOCKER_IMAGE, Kind.IMAGE),
    ("legacy provenance attestation", oci.legacy_attestation(IMAGE.digest), Kind.ATTESTATION),
    (
        "legacy sbom attestation",
        oci.legacy_attestation(IMAGE.digest, provenance=None, sbom=True),
        Kind.ATTESTATION,
    ),
    ("oci-artifact attestation", oci.artifact_attestation(IMAGE), Kind.ATTESTATION),
    ("buildx index", oci.buildx_index({"linux/amd64": IMAGE}), Kind.INDEX),
    (
        "docker manifest list",
        oci.manifest_list([DOCKER_IMAGE.descriptor("linux/amd64")]),
        Kind.INDEX,
    ),
    ("nested index", oci.nested_index([oci.buildx_index({"linux/amd64": IMAGE})]), Kind.INDEX),
    ("cosign signature", oci.cosign_signature(IMAGE), Kind.REFERRER),
    ("notation signature", oci.notation_signature(IMAGE), Kind.REFERRER),
    ("sbom artifact", oci.sbom_referrer(IMAGE), Kind.REFERRER),
    ("helm chart", oci.helm_chart(), Kind.UNKNOWN),
    ("buildkit cache index", oci.buildkit_cache_index(), Kind.UNKNOWN),
    ("buildkit cache manifest", oci.buildkit_cache_manifest(), Kind.UNKNOWN),
    ("unparseable bytes", oci.unparseable(), Kind.UNKNOWN),
]


@pytest.mark.parametrize(("manifest", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kind_from_bytes(manifest: oci.Manifest, kind: Kind) -> None:
    assert parse(manifest.bytes, media_type=manifest.media_type).kind is kind


def test_missing_media_type_falls_back_to_the_registry_then_to_structure() -> None:
    bare = oci.without_media_type(oci.buildx_index({"linux/amd64": IMAGE}))
    assert parse(bare.bytes, media_type=oci.OCI_INDEX).kind is Kind.INDEX
    assert parse(bare.bytes).kind is Kind.INDEX
    assert parse(oci.without_media_type(IMAGE).bytes).kind is Kind.IMAGE


def test_index_lists_children_and_marks_its_attestations() -> None:
    att = oci.legacy_attestation(IMAGE.digest)
    parsed = parse(oci.buildx_index({"linux/amd64": IMAGE}, {"linux/amd64": att}).bytes)
    assert [c.digest for c in parsed.references] == [IMAGE.digest, att.digest]
    assert attestation_entries(parsed) == {att.digest: IMAGE.digest}
    assert parsed.references[0].platform == "linux/amd64"


def test_referrer_subject_and_blobs_are_read() -> None:
    parsed = parse(oci.artifact_attestation(IMAGE).bytes)
    assert parsed.subject == IMAGE.digest
    assert parse(IMAGE.bytes).blobs[0].media_type == oci.OCI_CONFIG


@pytest.mark.parametrize(
    ("data", "note"),
    [
        (b"{not json", "unparseable bytes"),
        (b"[]", "not a JSON object"),
        (
            b'{"mediaType": "application/vnd.oci.image.index.v1+json"}',
            "index without a manifests list",
        ),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', "manifest without config or layers"),
        (b'{"mediaType": "application/x-whatever"}', "unrecognised media type"),
        (b'{"subject": {"digest": "nope"}, "config": {}, "layers": []}', "malformed subject"),
    ],
)
def test_malformed_manifests_are_unknown_with_a_note(data: bytes, note: str) -> None:
    parsed = parse(data)
    assert parsed.kind is Kind.UNKNOWN
    assert note in parsed.note


def test_unknown_manifest_keeps_every_digest_it_mentions() -> None:
    chart = oci.helm_chart()
    parsed = parse(chart.bytes)
    assert parsed.kind is Kind.UNKNOWN
    assert {r.digest for r in parsed.references} >= {
        d["digest"] for d in json.loads(chart.bytes)["layers"]
    }


def test_index_listing_itself_is_unknown() -> None:
    digest = "sha256:" + "c" * 64
    data = (
        '{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":'
        f'"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":1}}]}}'
    ).encode()
    assert parse(data, digest=digest).kind is Kind.UNKNOWN


def test_docker_manifest_list_of_schema1_images_is_an_index() -> None:
    """Synthetic (no real one was found): a manifest list whose entries are schema 1."""
    child = "sha256:" + "d" * 64
    data = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws",
                    "digest": child,
                    "size": 2000,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    parsed = parse(data)
    assert parsed.kind is Kind.INDEX
    assert [c.digest for c in parsed.references] == [child]


def test_batch_get_image_is_asked_for_schema1_too() -> None:
    assert {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    } <= ALL_MANIFEST_TYPES


@pytest.mark.parametrize(
    ("doc", "media_type", "note"),
    [
        ({"schemaVersion": 1, "fsLayers": []}, None, "schema 1 manifest without fsLayers"),
        (
            {"schemaVersion": 1, "fsLayers": [{"blobSum": "md5:x"}]},
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "schema 1 manifest with a malformed layer",
        ),
        (
            {
                "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
                "blobs": [{"digest": "nope"}],
                "subject": {"digest": "sha256:" + "e" * 64},
            },
            None,
            "artifact manifest with a malformed blob",
        ),
    ],
    ids=["schema1-without-layers", "schema1-bad-layer", "artifact-bad-blob"],
)
def test_malformed_newly_known_forms_are_unknown(
    doc: dict[str, object], media_type: str | None, note: str
) -> None:
    parsed = parse(json.dumps(doc).encode(), media_type=media_type)
    assert parsed.kind is Kind.UNKNOWN
    assert note in parsed.note
