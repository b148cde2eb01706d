"""Classification from exact bytes: one row per manifest shape found in real registries."""

from __future__ import annotations

import json

import pytest

from harness import oci
from sweeper.manifests import ALL_MANIFEST_TYPES, attestation_entries, parse, parse_all
from sweeper.model import NO_ANNOTATIONS, Descriptor, Image, Kind, Manifest

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


# What the decision log shows for each shape, and what the bytes declare, in full: the media
# type the manifest was classified by (the registry's only when the bytes state none), its
# artifact type and subject, and the note a kept or deleted manifest carries as its reason.
D = {c: "sha256:" + c * 64 for c in "abcdef"}
CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D["a"], "size": 7}
LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D["b"], "size": 9}
IN_TOTO = {
    "mediaType": "application/vnd.in-toto+json",
    "digest": D["c"],
    "size": 3,
    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
}
SUBJECT = {"mediaType": oci.OCI_MANIFEST, "digest": D["f"], "size": 5}
ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _blob(d: dict[str, object]) -> Descriptor:
    annotations = d.get("annotations")
    return Descriptor(
        str(d["digest"]),
        str(d["mediaType"]),
        int(str(d["size"])),
        annotations=dict(annotations) if isinstance(annotations, dict) else NO_ANNOTATIONS,
    )


def _mentions(*digests: str) -> tuple[Descriptor, ...]:
    return tuple(Descriptor(d) for d in digests)


CLASSIFIED: list[tuple[str, dict[str, object], str | None, Manifest]] = [
    (
        "an-image",
        {"mediaType": oci.OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]},
        None,
        Manifest(
            Kind.IMAGE,
            oci.OCI_MANIFEST,
            blobs=(_blob(CONFIG), _blob(LAYER)),
            note="container image",
        ),
    ),
    (
        "an-image-whose-bytes-state-no-type-takes-the-registrys",
        {"config": CONFIG, "layers": [LAYER]},
        oci.DOCKER_MANIFEST,
        Manifest(
            Kind.IMAGE,
            oci.DOCKER_MANIFEST,
            blobs=(_blob(CONFIG), _blob(LAYER)),
            note="container image",
        ),
    ),
    (
        "an-empty-or-non-text-media-type-is-no-media-type",
        {"mediaType": "", "config": CONFIG, "layers": [LAYER], "artifactType": ""},
        oci.OCI_MANIFEST,
        Manifest(
            Kind.IMAGE,
            oci.OCI_MANIFEST,
            blobs=(_blob(CONFIG), _blob(LAYER)),
            note="container image",
        ),
    ),
    (
        "a-media-type-that-is-not-text-is-no-media-type",
        {"mediaType": 5, "config": CONFIG, "layers": [LAYER], "artifactType": 5},
        oci.OCI_MANIFEST,
        Manifest(
            Kind.IMAGE,
            oci.OCI_MANIFEST,
            blobs=(_blob(CONFIG), _blob(LAYER)),
            note="container image",
        ),
    ),
    (
        "in-toto-layers-are-an-attestation",
        {"mediaType": oci.OCI_MANIFEST, "config": CONFIG, "layers": [IN_TOTO]},
        None,
        Manifest(
            Kind.ATTESTATION,
            oci.OCI_MANIFEST,
            blobs=(_blob(CONFIG), _blob(IN_TOTO)),
            note="buildx attestation (in-toto layers)",
        ),
    ),
    (
        "in-toto-layers-without-a-predicate-type-are-an-image",
        {
            "mediaType": oci.OCI_MANIFEST,
            "config": CONFIG,
            "layers": [{**IN_TOTO, "annotations": {"other": "x"}}],
        },
        None,
        Manifest(
            Kind.IMAGE,
            oci.OCI_MANIFEST,
            blobs=(_blob(CONFIG), _blob({**IN_TOTO, "annotations": {"other": "x"}})),
            note="container image",
        ),
    ),
    (
        "a-buildx-attestation-artifact",
        {
            "mediaType": oci.OCI_MANIFEST,
            "artifactType": "application/vnd.docker.attestation.manifest.v1+json",
            "config": CONFIG,
            "layers": [IN_TOTO],
        },
        None,
        Manifest(
            Kind.ATTESTATION,
            oci.OCI_MANIFEST,
            artifact_type="application/vnd.docker.attestation.manifest.v1+json",
            blobs=(_blob(CONFIG), _blob(IN_TOTO)),
            note="buildx attestation (OCI artifact)",
        ),
    ),
    (
        "a-referrer-names-its-artifact-type",
        {
            "mediaType": oci.OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": CONFIG,
            "layers": [LAYER],
            "subject": SUBJECT,
        },
        None,
        Manifest(
            Kind.REFERRER,
            oci.OCI_MANIFEST,
            subject=D["f"],
            artifact_type="application/spdx+json",
            blobs=(_blob(CONFIG), _blob(LAYER)),
            note="application/spdx+json referrer",
        ),
    ),
    (
        "a-referrer-without-an-artifact-type-names-its-config-type",
        {"mediaType": oci.OCI_MANIFEST, "config": CONFIG, "layers": [], "subject": SUBJECT},
        None,
        Manifest(
            Kind.REFERRER,
            oci.OCI_MANIFEST,
            subject=D["f"],
            blobs=(_blob(CONFIG),),
            note="application/vnd.oci.image.config.v1+json referrer",
        ),
    ),
    (
        "an-artifact-of-unknown-type-keeps-what-it-mentions",
        {
            "mediaType": oci.OCI_MANIFEST,
            "artifactType": "application/x-chart",
            "config": CONFIG,
            "layers": [LAYER],
        },
        None,
        Manifest(
            Kind.UNKNOWN,
            oci.OCI_MANIFEST,
            _mentions(D["a"], D["b"]),
            note="artifact application/x-chart",
        ),
    ),
    (
        "an-index-of-one-with-its-platform-variant",
        {
            "mediaType": oci.OCI_INDEX,
            "artifactType": "application/x-bundle",
            "manifests": [
                {
                    "mediaType": oci.OCI_MANIFEST,
                    "digest": D["d"],
                    "size": 11,
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                }
            ],
        },
        None,
        Manifest(
            Kind.INDEX,
            oci.OCI_INDEX,
            (Descriptor(D["d"], oci.OCI_MANIFEST, 11, "linux/arm64/v8"),),
            artifact_type="application/x-bundle",
            note="index of 1",
        ),
    ),
    (
        "an-index-entry-with-an-empty-media-type-states-none",
        {"mediaType": oci.OCI_INDEX, "manifests": [{"mediaType": "", "digest": D["d"]}]},
        None,
        Manifest(Kind.INDEX, oci.OCI_INDEX, (Descriptor(D["d"]),), note="index of 1"),
    ),
    (
        "an-index-with-a-subject-is-a-referrer",
        {"mediaType": oci.OCI_INDEX, "manifests": [], "subject": SUBJECT},
        None,
        Manifest(Kind.REFERRER, oci.OCI_INDEX, subject=D["f"], note=f"index referring to {D['f']}"),
    ),
    (
        "a-schema1-image-whose-layer-sizes-are-unknown",
        {"schemaVersion": 1, "fsLayers": [{"blobSum": D["b"]}]},
        SCHEMA1,
        Manifest(
            Kind.IMAGE,
            SCHEMA1,
            blobs=(Descriptor(D["b"]),),
            note="container image (Docker schema 1)",
        ),
    ),
    (
        "a-vendor-type-with-schema1-layers-is-unknown",
        {"mediaType": "application/x-vendor", "fsLayers": [{"blobSum": D["b"]}]},
        None,
        Manifest(
            Kind.UNKNOWN,
            "application/x-vendor",
            _mentions(D["b"]),
            note="unrecognised media type 'application/x-vendor'",
        ),
    ),
    (
        "an-artifact-manifest-with-its-blobs",
        {
            "mediaType": ARTIFACT,
            "artifactType": "application/vnd.cncf.notary.signature",
            "blobs": [LAYER],
            "subject": SUBJECT,
        },
        None,
        Manifest(
            Kind.REFERRER,
            ARTIFACT,
            subject=D["f"],
            artifact_type="application/vnd.cncf.notary.signature",
            blobs=(_blob(LAYER),),
            note="application/vnd.cncf.notary.signature referrer (artifact manifest)",
        ),
    ),
    (
        "an-artifact-manifest-without-blobs-or-artifact-type",
        {"mediaType": ARTIFACT, "subject": SUBJECT},
        None,
        Manifest(
            Kind.REFERRER, ARTIFACT, subject=D["f"], note="artifact referrer (artifact manifest)"
        ),
    ),
]


@pytest.mark.parametrize(
    ("doc", "registry_type", "expected"),
    [c[1:] for c in CLASSIFIED],
    ids=[c[0] for c in CLASSIFIED],
)
def test_what_each_shape_is_classified_as_in_full(
    doc: dict[str, object], registry_type: str | None, expected: Manifest
) -> None:
    assert parse(json.dumps(doc).encode(), media_type=registry_type) == expected


UNKNOWN: list[tuple[str, bytes, str | None, str]] = [
    ("unparseable", b"{not json " + D["a"].encode(), oci.OCI_MANIFEST, "unparseable bytes"),
    (
        "not-utf8",
        b"\xff\xfe" + D["a"].encode() + b"\xff",
        oci.OCI_MANIFEST,
        "unparseable bytes",
    ),
    (
        "nested-too-deeply",
        b"[" * 100_000 + D["a"].encode(),
        oci.OCI_INDEX,
        "JSON nested too deeply",
    ),
    ("not-an-object", json.dumps([D["a"]]).encode(), oci.OCI_INDEX, "not a JSON object"),
    (
        "malformed-subject",
        json.dumps({"config": CONFIG, "layers": [], "subject": {"digest": 5}}).encode(),
        oci.OCI_MANIFEST,
        "malformed subject",
    ),
    (
        "manifests-and-config-without-a-media-type",
        json.dumps({"manifests": [], "config": CONFIG}).encode(),
        None,
        "both manifests and layers, and no media type",
    ),
    (
        "manifests-and-layers-without-a-media-type",
        json.dumps({"manifests": [], "layers": [LAYER]}).encode(),
        None,
        "both manifests and layers, and no media type",
    ),
    (
        "no-media-type-and-no-known-structure",
        json.dumps({"schemaVersion": 2, "blobs": [LAYER]}).encode(),
        None,
        "unrecognised media type None",
    ),
    (
        "index-without-manifests",
        json.dumps({"x": D["a"]}).encode(),
        oci.OCI_INDEX,
        "index without a manifests list",
    ),
    (
        "index-with-a-malformed-entry",
        json.dumps({"manifests": [{"digest": D["a"], "size": "big"}]}).encode(),
        oci.OCI_INDEX,
        "index with a malformed entry",
    ),
    (
        "index-listing-blobs",
        json.dumps({"manifests": [LAYER]}).encode(),
        oci.OCI_INDEX,
        "index listing application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        "manifest-without-layers",
        json.dumps({"config": CONFIG}).encode(),
        oci.OCI_MANIFEST,
        "manifest without config or layers",
    ),
    (
        "manifest-with-a-malformed-layer",
        json.dumps({"config": CONFIG, "layers": [{"digest": D["a"], "size": True}]}).encode(),
        oci.OCI_MANIFEST,
        "manifest with a malformed layer",
    ),
    (
        "schema1-without-layers",
        json.dumps({"schemaVersion": 1, "fsLayers": [], "x": D["a"]}).encode(),
        SCHEMA1,
        "schema 1 manifest without fsLayers",
    ),
    (
        "schema1-with-a-layer-that-is-no-object",
        json.dumps({"schemaVersion": 1, "fsLayers": [D["a"]]}).encode(),
        SCHEMA1,
        "schema 1 manifest with a malformed layer",
    ),
    (
        "artifact-manifest-without-a-subject",
        json.dumps({"artifactType": "application/x-sig", "blobs": [LAYER]}).encode(),
        ARTIFACT,
        "artifact manifest application/x-sig without a subject",
    ),
    (
        "artifact-manifest-with-a-malformed-blob",
        json.dumps({"blobs": [{"digest": D["a"], "size": -0.5}], "subject": SUBJECT}).encode(),
        ARTIFACT,
        "artifact manifest with a malformed blob",
    ),
]


@pytest.mark.parametrize(
    ("data", "registry_type", "note"), [c[1:] for c in UNKNOWN], ids=[c[0] for c in UNKNOWN]
)
def test_a_manifest_that_cannot_be_read_is_kept_with_its_reason_and_what_it_mentions(
    data: bytes, registry_type: str | None, note: str
) -> None:
    """Unknown: never deleted, every digest its bytes mention kept, and the note says why."""
    parsed = parse(data, media_type=registry_type)
    assert parsed.kind is Kind.UNKNOWN
    assert parsed.note == note
    assert parsed.media_type == registry_type
    assert {r.digest for r in parsed.references} == {d for d in D.values() if d.encode() in data}


def test_an_index_listing_itself_keeps_its_media_type_and_says_why() -> None:
    doc = {"manifests": [{"mediaType": oci.OCI_MANIFEST, "digest": D["a"]}]}
    parsed = parse(json.dumps(doc), media_type=oci.OCI_INDEX, digest=D["a"])
    assert parsed == Manifest(
        Kind.UNKNOWN, oci.OCI_INDEX, _mentions(D["a"]), note="index listing itself"
    )


def test_a_scan_classifies_with_the_type_the_registry_lists_and_only_what_it_lists() -> None:
    """Bytes that state no type and whose fields say nothing: only the listing tells."""
    doc = json.dumps({"blobs": [LAYER], "subject": SUBJECT})
    listed = {D["d"]: Image(D["d"], media_type=ARTIFACT)}
    parsed = parse_all({D["d"]: doc, D["e"]: doc}, listed)
    assert set(parsed) == {D["d"]}
    assert parsed[D["d"]].kind is Kind.REFERRER
    assert parsed[D["d"]].media_type == ARTIFACT


def test_an_attestation_entry_without_the_digest_it_describes_describes_nothing() -> None:
    doc = {
        "mediaType": oci.OCI_INDEX,
        "manifests": [
            {"digest": D["d"], "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
        ],
    }
    assert attestation_entries(parse(json.dumps(doc))) == {D["d"]: ""}
