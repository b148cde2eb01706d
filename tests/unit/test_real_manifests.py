"""The classifier on manifests real tools wrote (tests/unit/manifests/, sources in SOURCES.md).

One row per document: the media type ECR would list for it (what the push declared; None where
the document carries none and the row tests the structural fallback), the kind it must get, and,
for documents stored under their digest at the source, that digest (so the bytes are the
source's, unedited).
"""

from __future__ import annotations

import hashlib
import pathlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sweeper.manifests import attestation_entries, parse
from sweeper.model import Image, Kind, Reason, Scope
from sweeper.plan import Policy, make_plan

HERE = pathlib.Path(__file__).parent / "manifests"
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"


@dataclass(frozen=True)
class Row:
    file: str
    media_type: str | None
    kind: Kind
    digest: str = ""  # the digest the source stores it under, where it is content-addressed
    subject: str | None = None  # for a referrer: the digest it refers to


ROWS = [
    Row(
        "docker-attest--buildx-index.json",
        OCI_INDEX,
        Kind.INDEX,
        "db8f2a6e112ea6396f57d073269ecfac61e8dcdad3a4a643dcb577522492f898",
    ),
    Row(
        "docker-attest--buildx-legacy-attestation.json",
        OCI_MANIFEST,
        Kind.ATTESTATION,
        "26da286bbc886aa14d191808db8fcbbd5d8ec68cf0047f954133e76d8e73d71c",
    ),
    Row(
        "docker-attest--buildx-platform-image.json",
        OCI_MANIFEST,
        Kind.IMAGE,
        "da8b190665956ea07890a0273e2a9c96bfe291662f08e2860e868eef69c34620",
    ),
    Row("buildkit--golden-oci-mediatypes-image.json", OCI_MANIFEST, Kind.IMAGE),
    Row("buildkit-docs--attestation-index.json", OCI_INDEX, Kind.INDEX),
    Row(
        "buildkit-docs--attestation-artifact.json",
        OCI_MANIFEST,
        Kind.ATTESTATION,
        subject="sha256:23678f31b3b3586c4fb318aecfe64a96a1f0916ba8faf9b2be2abee63fa9e827",
    ),
    Row("buildkit-docs--attestation-legacy.json", OCI_MANIFEST, Kind.ATTESTATION),
    Row(
        "regclient--testrepo-buildx-index.json",
        OCI_INDEX,
        Kind.INDEX,
        "6fe828b32b9b4572f32b16c1c0a4d675660b19ec207d010724309374252c2d6d",
    ),
    Row(
        "regclient--testrepo-builder-entries-index.json",
        OCI_INDEX,
        Kind.INDEX,
        "7ceb9b6bcc274697d0c38be6214b50cec79d601bc61708747d3f6cb772f6c6fa",
    ),
    Row(
        "regclient--testrepo-artifact-referrer.json",
        OCI_MANIFEST,
        Kind.REFERRER,
        "0484e93c23cddf24a8400547119558312023295af241d4cd1eaf1b27145c5026",
        subject="sha256:dfae8f425735a5e3a72e40d6609e03079995511d48157c74d54801ff4430491e",
    ),
    Row(
        "regclient--testrepo-referrer-index.json",
        OCI_INDEX,
        Kind.REFERRER,
        "d69399e05204fac05b0184eef72e984538cdc9c5854a6484e8852e4357c543cb",
        subject="sha256:8e54c6754f08d22f85c7552bb1951b228b8194d29b14a1639dbe50868da0273e",
    ),
    Row(
        "regclient--testrepo-artifact-without-subject.json",
        OCI_MANIFEST,
        Kind.UNKNOWN,
        "905693978d033f94767ce99edd9a3b285853343c148a4057cf00d47c67f9fb83",
    ),
    Row(
        "regclient--testrepo-referrers-fallback-index.json",
        OCI_INDEX,
        Kind.INDEX,
        "955b8a891713a806107edb6dd09410233a9e7926584b1d6fd8b7b5342296188b",
    ),
    Row("regclient--schema1-signed.json", SCHEMA1_SIGNED, Kind.IMAGE),
    Row("regclient--schema1-signed.json", None, Kind.IMAGE),
    Row("regclient--oci-artifact-manifest.json", ARTIFACT_MANIFEST, Kind.UNKNOWN),
    Row("regclient--ambiguous-without-media-type.json", None, Kind.UNKNOWN),
    Row("regclient--image-without-media-type.json", None, Kind.IMAGE),
    Row("regclient--index-without-media-type.json", None, Kind.INDEX),
    Row(
        "oras-go--docker-hub-hello-world-list.json",
        DOCKER_LIST,
        Kind.INDEX,
        "faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af",
    ),
    Row(
        "oras-go--docker-hub-hello-world-image.json",
        DOCKER_MANIFEST,
        Kind.IMAGE,
        "f54a58bc1aac5ea1a25d796ae155dc228b3f0e11d046ae276b39c4bf2f13d8c4",
    ),
    Row(
        "notation--signature.json",
        OCI_MANIFEST,
        Kind.REFERRER,
        "90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f",
        subject="sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9",
    ),
    Row(
        "notation--signed-artifact.json",
        OCI_MANIFEST,
        Kind.UNKNOWN,
        "b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9",
    ),
    Row(
        "notation--referrers-fallback-index.json",
        OCI_INDEX,
        Kind.INDEX,
        "13e107e0dd246f07ff18998a3d39e226965c41477a1bc1765f7617632ff3f283",
    ),
    Row(
        "notation-go--alpine-image.json",
        OCI_MANIFEST,
        Kind.IMAGE,
        "19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0",
    ),
    # cosign gives a signature an image config: the bytes say image; the tag
    # `sha256-<hex>.sig` is what makes it an accessory (see test_plan's accessory scenarios).
    Row(
        "cosign--legacy-signature.json",
        OCI_MANIFEST,
        Kind.IMAGE,
        "7ebe8964225fa4619b53aa35416ef0246c037e36ddf81776b21b15e1dda2262b",
    ),
    Row(
        "soci-docs--soci-index-v1.json",
        OCI_MANIFEST,
        Kind.REFERRER,
        subject="sha256:ab5a62720aa71c964aae400825284ca3e8229934928394e68a06e395a225faae",
    ),
    Row(
        "image-spec--artifact-manifest-with-subject.json",
        ARTIFACT_MANIFEST,
        Kind.REFERRER,
        subject="sha256:cc06a2839488b8bd2a2b99dcdc03d5cfd818eed72ad08ef3cc197aac64c0d0a0",
    ),
]


def row_id(row: Row) -> str:
    return f"{row.file.removesuffix('.json')}{'' if row.media_type else ' (no media type)'}"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_real_manifest_is_classified(row: Row) -> None:
    data = (HERE / row.file).read_bytes()
    if row.digest:
        assert hashlib.sha256(data).hexdigest() == row.digest, "not the bytes the source stores"
    parsed = parse(data, media_type=row.media_type)
    assert parsed.kind is row.kind, parsed.note
    assert parsed.subject == row.subject


def test_every_stored_document_has_a_row_and_a_source() -> None:
    stored = {p.name for p in HERE.glob("*.json")}
    assert stored == {row.file for row in ROWS}
    sources = (HERE / "SOURCES.md").read_text()
    assert all(f"`{name}`" in sources for name in stored)


def test_buildx_index_marks_its_attestations_for_their_platform_images() -> None:
    parsed = parse((HERE / "docker-attest--buildx-index.json").read_bytes())
    assert attestation_entries(parsed) == {
        "sha256:26da286bbc886aa14d191808db8fcbbd5d8ec68cf0047f954133e76d8e73d71c": (
            "sha256:da8b190665956ea07890a0273e2a9c96bfe291662f08e2860e868eef69c34620"
        ),
        "sha256:e0a9b9404ac2691b9b1c9ef217f22bb1e106efd5ee791640411764e1cf39ea2c": (
            "sha256:7a76cec943853f9f7105b1976afa1bf7cd5bb6afc4e9d5852dd8da7cf81ae86e"
        ),
    }


def test_entries_of_another_reference_type_are_not_attestations() -> None:
    """regctl's `vnd.docker.reference.type: builder` entries: only `attestation-manifest` is."""
    parsed = parse((HERE / "regclient--testrepo-builder-entries-index.json").read_bytes())
    assert len(parsed.references) == 4
    assert attestation_entries(parsed) == {}


@pytest.mark.parametrize(
    "file",
    [
        "notation--referrers-fallback-index.json",
        "regclient--testrepo-referrers-fallback-index.json",
    ],
)
def test_referrers_fallback_index_lists_the_referrers_it_stands_for(file: str) -> None:
    parsed = parse((HERE / file).read_bytes())
    assert parsed.references
    assert all(child.media_type == OCI_MANIFEST for child in parsed.references)


def test_schema1_layers_are_its_blobs() -> None:
    parsed = parse(
        (HERE / "regclient--schema1-signed.json").read_bytes(), media_type=SCHEMA1_SIGNED
    )
    assert [blob.digest for blob in parsed.blobs] == [
        "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4",
        "sha256:069873d23334d65630bbe5e303ced0c68181b694c7f5506b54bf5d8115b5af20",
    ]


def test_notation_fallback_index_follows_the_artifact_it_stands_for() -> None:
    """notation's own layout: the signed artifact tagged v1, its signature (an OCI 1.1 referrer)
    and the referrers tag schema index tagged `sha256-<artifact hex>`: both follow the artifact."""
    artifact = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
    signature = "sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"
    fallback = "sha256:13e107e0dd246f07ff18998a3d39e226965c41477a1bc1765f7617632ff3f283"
    stored = {
        artifact: ("notation--signed-artifact.json", ("v1",), OCI_MANIFEST),
        signature: ("notation--signature.json", (), OCI_MANIFEST),
        fallback: (
            "notation--referrers-fallback-index.json",
            (f"sha256-{artifact[7:]}",),
            OCI_INDEX,
        ),
    }
    old = NOW - timedelta(days=30)
    images = [Image(d, tags, old, media_type=t) for d, (_, tags, t) in stored.items()]
    manifests = {d: parse((HERE / f).read_bytes(), media_type=t) for d, (f, _, t) in stored.items()}
    plan = make_plan("e2e", images, manifests, {}, Policy(Scope.ORPHANS), NOW)
    assert plan.deletions == []
    assert (plan.decisions[fallback].reason, plan.decisions[fallback].cause) == (
        Reason.ACCESSORY_OF_KEPT,
        artifact,
    )
    assert plan.decisions[signature].live
