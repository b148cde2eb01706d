"""Realistic, deterministic OCI / Docker manifest builders for tests.

Every builder is a pure function: the same arguments always give the same bytes, hence the
same digest. Manifests are serialised compactly (no whitespace) with a fixed key order that
follows what the producing tools emit (``schemaVersion, mediaType, artifactType, config,
layers/manifests, subject, annotations``). The digest of a manifest is the sha256 of those
exact bytes, which is what ECR reports as ``imageDigest``.

Blobs (configs and layers) are never stored anywhere; only their descriptors appear in
manifests. Their digests are sha256 of a deterministic string derived from the builder's
``seed``, and their sizes are plausible numbers, also derived from the seed unless given.
Pass the same ``base_layers`` to several images to model layers shared between manifests.

Shapes follow section 3 of ``/work/shared/reference/ecr-facts.md``.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ATTESTATION_MANIFEST",
    "BUILDKIT_CACHE_CONFIG",
    "COSIGN_BUNDLE",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "EMPTY_DESCRIPTOR",
    "HELM_CHART",
    "HELM_CONFIG",
    "INDEX_MEDIA_TYPES",
    "IN_TOTO",
    "MANIFEST_MEDIA_TYPES",
    "NOTATION_SIGNATURE",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "PREDICATE_TYPE_ANNOTATION",
    "PROVENANCE_V02",
    "PROVENANCE_V1",
    "REFERENCE_DIGEST_ANNOTATION",
    "REFERENCE_TYPE_ANNOTATION",
    "SPDX_DOCUMENT",
    "SPDX_JSON",
    "Descriptor",
    "Manifest",
    "accessory_tag",
    "artifact_attestation",
    "blob",
    "buildkit_cache_index",
    "buildkit_cache_manifest",
    "buildx_index",
    "cosign_legacy",
    "cosign_signature",
    "helm_chart",
    "image_manifest",
    "index",
    "layer",
    "legacy_attestation",
    "manifest_list",
    "nested_index",
    "notation_signature",
    "platform_dict",
    "referrers_fallback_index",
    "sbom_referrer",
    "sha256_digest",
    "unparseable",
    "without_media_type",
]

# --- media types ---------------------------------------------------------------------------------

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

IN_TOTO = "application/vnd.in-toto+json"
ATTESTATION_MANIFEST = "application/vnd.docker.attestation.manifest.v1+json"
COSIGN_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
SPDX_JSON = "application/spdx+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
BUILDKIT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"

# --- annotations and predicate types -------------------------------------------------------------

PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"
REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type"
REFERENCE_DIGEST_ANNOTATION = "vnd.docker.reference.digest"
PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SPDX_DOCUMENT = "https://spdx.dev/Document"

Descriptor = dict[str, Any]
Seed = str | int
Platform = str | Mapping[str, str]

# The OCI 1.1 "empty" blob is the two bytes ``{}``; this digest is fixed by the spec.
EMPTY_DESCRIPTOR: Mapping[str, Any] = {
    "mediaType": OCI_EMPTY,
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}

# A fixed timestamp for annotations that tools fill with "now": keeps builders pure.
_CREATED = "2026-01-01T00:00:00Z"


def sha256_digest(data: builtins.bytes | str) -> str:
    """``sha256:<hex>`` of ``data`` (str is UTF-8 encoded)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A manifest as stored in a registry: exact bytes plus the media type to push it with.

    ``media_type`` is what ``put_image`` should receive as ``imageManifestMediaType`` when the
    document has no ``mediaType`` field of its own (or cannot be parsed at all).
    """

    bytes: builtins.bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.bytes)

    @property
    def size(self) -> int:
        return len(self.bytes)

    @property
    def text(self) -> str:
        return self.bytes.decode("utf-8")

    @property
    def json(self) -> Any:
        """The parsed document (raises ``ValueError`` for unparseable manifests)."""
        return json.loads(self.bytes)

    def descriptor(
        self,
        platform: Platform | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """OCI descriptor pointing at this manifest, in buildx's key order."""
        desc: Descriptor = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if annotations:
            desc["annotations"] = dict(annotations)
        if platform is not None:
            desc["platform"] = platform_dict(platform)
        return desc


# --- small helpers -------------------------------------------------------------------------------


def _dump(doc: Mapping[str, Any]) -> builtins.bytes:
    # Compact, insertion-ordered, UTF-8: the exact bytes we "push".
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _manifest(doc: Mapping[str, Any]) -> Manifest:
    return Manifest(bytes=_dump(doc), media_type=str(doc["mediaType"]))


def _number(*parts: object, low: int, high: int) -> int:
    """Deterministic integer in [low, high) derived from ``parts``."""
    h = hashlib.sha256("\x00".join(map(str, parts)).encode("utf-8")).digest()
    return low + int.from_bytes(h[:8], "big") % (high - low)


def platform_dict(platform: Platform) -> dict[str, str]:
    """``"linux/arm64/v8"`` -> ``{"architecture": "arm64", "os": "linux", "variant": "v8"}``."""
    if not isinstance(platform, str):
        return dict(platform)
    parts = platform.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"platform must look like os/arch[/variant], got {platform!r}")
    out = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def _subject(subject: Manifest | Mapping[str, Any]) -> Descriptor:
    if isinstance(subject, Manifest):
        return subject.descriptor()
    return {k: subject[k] for k in ("mediaType", "digest", "size")}


def blob(
    media_type: str,
    seed: Seed,
    size: int,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Descriptor of a blob whose digest is sha256 of a deterministic string."""
    desc: Descriptor = {
        "mediaType": media_type,
        "digest": sha256_digest(f"blob\x00{media_type}\x00{seed}"),
        "size": size,
    }
    if annotations:
        desc["annotations"] = dict(annotations)
    return desc


def layer(seed: Seed, size: int | None = None, *, docker: bool = False) -> Descriptor:
    """A compressed filesystem layer descriptor (1 MiB to 60 MiB unless ``size`` is given)."""
    if size is None:
        size = _number("layer", seed, low=1 << 20, high=60 << 20)
    return blob(DOCKER_LAYER if docker else OCI_LAYER, f"layer:{seed}", size)


# --- image manifests -----------------------------------------------------------------------------


def image_manifest(
    seed: Seed = 0,
    *,
    layers: int = 3,
    layer_sizes: Sequence[int] | None = None,
    config_size: int | None = None,
    base_layers: Sequence[Descriptor] = (),
    platform: Platform = "linux/amd64",
    docker: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    """A runnable container image manifest: config plus ``base_layers`` then ``layers`` own layers.

    ``docker=True`` gives the Docker v2 schema 2 form (Docker media types throughout).
    ``layer_sizes`` overrides the sizes of the own layers (its length then sets their count).
    The platform only feeds the config blob's digest (a real config records os/arch).
    """
    if layer_sizes is not None:
        own = [layer(f"{seed}:{i}", s, docker=docker) for i, s in enumerate(layer_sizes)]
    else:
        own = [layer(f"{seed}:{i}", docker=docker) for i in range(layers)]
    if config_size is None:
        config_size = _number("config", seed, low=900, high=12_000)
    plat = platform if isinstance(platform, str) else json.dumps(dict(platform), sort_keys=True)
    config = blob(DOCKER_CONFIG if docker else OCI_CONFIG, f"config:{seed}:{plat}", config_size)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config,
        "layers": [*map(dict, base_layers), *own],
    }
    if annotations:
        if docker:
            raise ValueError("Docker v2 manifests have no annotations")
        doc["annotations"] = dict(annotations)
    return _manifest(doc)


def _in_toto_layers(
    seed: Seed,
    subject_digest: str,
    provenance: Literal["v0.2", "v1"] | None,
    sbom: bool,
) -> list[Descriptor]:
    out: list[Descriptor] = []
    # BuildKit writes the SBOM layer(s) before the provenance layer.
    if sbom:
        out.append(
            blob(
                IN_TOTO,
                f"sbom:{seed}:{subject_digest}",
                _number("sbom", seed, low=20_000, high=400_000),
                {PREDICATE_TYPE_ANNOTATION: SPDX_DOCUMENT},
            )
        )
    if provenance is not None:
        predicate = {"v0.2": PROVENANCE_V02, "v1": PROVENANCE_V1}[provenance]
        out.append(
            blob(
                IN_TOTO,
                f"provenance:{provenance}:{seed}:{subject_digest}",
                _number("provenance", seed, low=1_500, high=30_000),
                {PREDICATE_TYPE_ANNOTATION: predicate},
            )
        )
    if not out:
        raise ValueError("an attestation needs provenance and/or sbom")
    return out


def legacy_attestation(
    image_digest: str,
    *,
    seed: Seed = 0,
    provenance: Literal["v0.2", "v1"] | None = "v0.2",
    sbom: bool = False,
) -> Manifest:
    """BuildKit 0.11-0.31 attestation: a plain OCI image manifest of in-toto layers, no subject.

    Its config blob says ``unknown/unknown``; the link to ``image_digest`` lives only in the
    index entry's annotations (see :func:`buildx_index`) and in the in-toto statements, whose
    digests therefore depend on it. ``seed`` stands for the build (provenance embeds build
    timestamps, so each rebuild gives new attestation digests).
    """
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": blob(OCI_CONFIG, f"attestation-config:{seed}:{image_digest}", 241),
            "layers": _in_toto_layers(seed, image_digest, provenance, sbom),
        }
    )


def artifact_attestation(
    subject: Manifest | Mapping[str, Any],
    *,
    seed: Seed = 0,
    provenance: Literal["v0.2", "v1"] | None = "v1",
    sbom: bool = False,
) -> Manifest:
    """BuildKit 0.32+ attestation: OCI artifact with ``subject`` = the platform image manifest."""
    subj = _subject(subject)
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ATTESTATION_MANIFEST,
            "config": dict(EMPTY_DESCRIPTOR),
            "layers": _in_toto_layers(seed, subj["digest"], provenance, sbom),
            "subject": subj,
        }
    )


# --- indexes -------------------------------------------------------------------------------------


def index(
    manifests: Sequence[Mapping[str, Any]],
    *,
    annotations: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
    subject: Manifest | Mapping[str, Any] | None = None,
) -> Manifest:
    """An OCI image index listing ``manifests`` (descriptors, e.g. ``Manifest.descriptor()``)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["manifests"] = [dict(m) for m in manifests]
    if subject is not None:
        doc["subject"] = _subject(subject)
    if annotations:
        doc["annotations"] = dict(annotations)
    return _manifest(doc)


def manifest_list(manifests: Sequence[Mapping[str, Any]]) -> Manifest:
    """A Docker manifest list (children should be Docker v2 manifests with a platform)."""
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [dict(m) for m in manifests],
        }
    )


def buildx_index(
    images: Mapping[str, Manifest],
    attestations: Mapping[str, Manifest] | None = None,
) -> Manifest:
    """The index ``docker buildx build --push`` writes: platform images first, then attestations.

    ``images`` and ``attestations`` are keyed by platform (``"linux/amd64"``). Each attestation
    entry has platform ``unknown/unknown`` and the ``vnd.docker.reference.*`` annotations that
    point at its platform image, in both the legacy and the OCI-artifact form.
    """
    entries = [m.descriptor(platform=p) for p, m in images.items()]
    for p, att in (attestations or {}).items():
        entries.append(
            att.descriptor(
                platform="unknown/unknown",
                annotations={
                    REFERENCE_DIGEST_ANNOTATION: images[p].digest,
                    REFERENCE_TYPE_ANNOTATION: "attestation-manifest",
                },
            )
        )
    return index(entries)


def nested_index(
    children: Sequence[Manifest], *, annotations: Mapping[str, str] | None = None
) -> Manifest:
    """An index of indexes (children are themselves indexes)."""
    return index([c.descriptor() for c in children], annotations=annotations)


def buildkit_cache_index(seed: Seed = 0, *, layers: int = 3) -> Manifest:
    """Legacy BuildKit registry cache (``--cache-to type=registry`` without image-manifest=true).

    An OCI index whose ``manifests[]`` are *blobs*: the cache layers and one
    ``application/vnd.buildkit.cacheconfig.v0`` config. None of them is a manifest. (Real ECR is
    reported to refuse this form on push; see the harness docs.)
    """
    entries = [
        blob(
            OCI_LAYER,
            f"cache-layer:{seed}:{i}",
            _number("cache", seed, i, low=1 << 20, high=80 << 20),
            {"buildkit/createdat": _CREATED},
        )
        for i in range(layers)
    ]
    entries.append(
        blob(
            BUILDKIT_CACHE_CONFIG,
            f"cache-config:{seed}",
            _number("cachecfg", seed, low=800, high=9_000),
        )
    )
    return index(entries)


def buildkit_cache_manifest(seed: Seed = 0, *, layers: int = 3) -> Manifest:
    """BuildKit registry cache with ``image-manifest=true`` (the form ECR accepts)."""
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": blob(
                BUILDKIT_CACHE_CONFIG,
                f"cache-config:{seed}",
                _number("cachecfg", seed, low=800, high=9_000),
            ),
            "layers": [
                blob(
                    OCI_LAYER,
                    f"cache-layer:{seed}:{i}",
                    _number("cache", seed, i, low=1 << 20, high=80 << 20),
                )
                for i in range(layers)
            ],
        }
    )


# --- referrers (OCI 1.1 artifacts with a subject) ------------------------------------------------


def cosign_signature(subject: Manifest | Mapping[str, Any], *, seed: Seed = 0) -> Manifest:
    """cosign v3 / sigstore bundle signature stored as an OCI 1.1 referrer of ``subject``."""
    subj = _subject(subject)
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": COSIGN_BUNDLE,
            "config": dict(EMPTY_DESCRIPTOR),
            "layers": [
                blob(
                    COSIGN_BUNDLE,
                    f"cosign:{seed}:{subj['digest']}",
                    _number("cosign", seed, low=3_000, high=9_000),
                    {
                        "dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
                    },
                )
            ],
            "subject": subj,
            "annotations": {"org.opencontainers.image.created": _CREATED},
        }
    )


def notation_signature(subject: Manifest | Mapping[str, Any], *, seed: Seed = 0) -> Manifest:
    """Notary Project (Notation) signature referrer of ``subject``."""
    subj = _subject(subject)
    thumb = sha256_digest(f"notation-cert:{seed}").removeprefix("sha256:")
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": NOTATION_SIGNATURE,
            "config": dict(EMPTY_DESCRIPTOR),
            "layers": [
                blob(
                    "application/jose+json",
                    f"notation:{seed}:{subj['digest']}",
                    _number("notation", seed, low=2_000, high=8_000),
                )
            ],
            "subject": subj,
            "annotations": {
                "io.cncf.notary.x509chain.thumbprint#S256": json.dumps([thumb]),
                "org.opencontainers.image.created": _CREATED,
            },
        }
    )


def sbom_referrer(
    subject: Manifest | Mapping[str, Any],
    *,
    seed: Seed = 0,
    artifact_type: str = SPDX_JSON,
) -> Manifest:
    """An SBOM attached as an OCI 1.1 referrer (e.g. ``oras attach --artifact-type``)."""
    subj = _subject(subject)
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": dict(EMPTY_DESCRIPTOR),
            "layers": [
                blob(
                    artifact_type,
                    f"sbom-artifact:{seed}:{subj['digest']}",
                    _number("sbomart", seed, low=10_000, high=500_000),
                )
            ],
            "subject": subj,
            "annotations": {"org.opencontainers.image.created": _CREATED},
        }
    )


# --- tag-scheme accessories (before OCI 1.1 referrers) -------------------------------------------

# What cosign (before its OCI 1.1 mode) stores under `sha256-<hex>.sig`, `.att` and `.sbom`: an
# image manifest (cosign gives it an image config) whose layers carry the payload. Shapes as in
# tests/unit/manifests/cosign--legacy-signature.json (a real `.sig`).
_COSIGN_LAYERS = {
    ".sig": ("application/vnd.dev.cosign.simplesigning.v1+json", 240, 260),
    ".att": ("application/vnd.dsse.envelope.v1+json", 2_000, 9_000),
    ".sbom": ("text/spdx+json", 20_000, 400_000),
}


def accessory_tag(subject_digest: str, suffix: str = ".sig") -> str:
    """The tag an accessory of ``subject_digest`` is stored under: ``sha256-<hex><suffix>``
    (``suffix`` ``""`` gives the referrers tag schema's fallback index tag)."""
    algorithm, _, hex_digest = subject_digest.partition(":")
    return f"{algorithm}-{hex_digest}{suffix}"


def cosign_legacy(subject_digest: str, suffix: str = ".sig", *, seed: Seed = 0) -> Manifest:
    """cosign's tag-scheme ``.sig``, ``.att`` or ``.sbom`` manifest for ``subject_digest``.

    No ``subject``: only its tag (:func:`accessory_tag`) ties it to the image it signs.
    """
    media_type, low, high = _COSIGN_LAYERS[suffix]
    payload = f"cosign{suffix}:{seed}:{subject_digest}"
    annotations = {"dev.cosignproject.cosign/signature": "" if suffix == ".att" else payload}
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": blob(OCI_CONFIG, f"cosign-config:{payload}", 247),
            "layers": [
                blob(media_type, payload, _number(payload, low=low, high=high), annotations)
            ],
        }
    )


def referrers_fallback_index(referrers: Sequence[Manifest]) -> Manifest:
    """The index the distribution spec's referrers tag schema stores under ``sha256-<hex>``
    (:func:`accessory_tag` with suffix ``""``): one descriptor per referrer of that subject."""
    entries = []
    for referrer in referrers:
        entry = referrer.descriptor()
        artifact_type = referrer.json.get("artifactType")
        if artifact_type:
            entry["artifactType"] = artifact_type
        entries.append(entry)
    return index(entries)


# --- other artifacts -----------------------------------------------------------------------------


def helm_chart(name: str = "chart", version: str = "0.1.0", *, seed: Seed = 0) -> Manifest:
    """A Helm 3 chart pushed with ``helm push`` (OCI manifest, Helm config and chart layer)."""
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": blob(
                HELM_CONFIG,
                f"helm-config:{name}:{version}:{seed}",
                _number("helmcfg", name, version, seed, low=100, high=600),
            ),
            "layers": [
                blob(
                    HELM_CHART,
                    f"helm-chart:{name}:{version}:{seed}",
                    _number("helm", name, version, seed, low=2_000, high=80_000),
                )
            ],
            "annotations": {
                "org.opencontainers.image.created": _CREATED,
                "org.opencontainers.image.description": f"{name} chart",
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": version,
            },
        }
    )


def without_media_type(manifest: Manifest) -> Manifest:
    """The same document minus its ``mediaType`` field (older ORAS / Helm clients push these).

    ``.media_type`` is kept, so pushing it still sends ``imageManifestMediaType`` as ECR requires.
    """
    doc = {k: v for k, v in manifest.json.items() if k != "mediaType"}
    return Manifest(bytes=_dump(doc), media_type=manifest.media_type)


def unparseable(seed: Seed = 0, *, media_type: str = OCI_MANIFEST) -> Manifest:
    """Bytes that are not JSON (a truncated manifest). ``media_type`` is what ECR would report."""
    raw = (
        f'{{"schemaVersion":2,"mediaType":"{media_type}","x-seed":"{seed}","config":{{"mediaType":'
    )
    return Manifest(bytes=raw.encode("utf-8"), media_type=media_type)
