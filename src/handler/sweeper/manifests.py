"""Bytes -> Manifest: classify one manifest from its exact bytes. Pure; no I/O.

The rules follow docs/design.md ("Classification"). When in doubt the answer is
`Kind.UNKNOWN`, which is never deleted and keeps alive every digest its bytes mention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .model import (
    DIGEST,
    NO_ANNOTATIONS,
    Descriptor,
    Image,
    Kind,
    Manifest,
    digests_in,
    is_digest,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# Docker image manifest v2 schema 1, unsigned and signed: an image with `fsLayers`, no config.
SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
# The OCI 1.1 release candidates' artifact manifest (`blobs`, optional `subject`), dropped from
# the final 1.1 but written by ORAS and Notation of that time.
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ALL_MANIFEST_TYPES = INDEX_TYPES | MANIFEST_TYPES | SCHEMA1_TYPES  # what BatchGetImage accepts
LISTABLE_TYPES = ALL_MANIFEST_TYPES | {OCI_ARTIFACT_MANIFEST}  # what an index may list

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
IMAGE_CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
IN_TOTO_LAYER = "application/vnd.in-toto+json"
ATTESTATION_ARTIFACT = "application/vnd.docker.attestation.manifest.v1+json"

# How buildx marks the attestation entry of an index.
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_REFERENCE = "attestation-manifest"


def parse(
    data: bytes | str,
    *,
    media_type: str | None = None,
    digest: str | None = None,
) -> Manifest:
    """Classify `data`. `media_type` is the registry's view, used only when the bytes say nothing.

    `data` is the manifest's bytes, or their text as a registry's API returns it (JSON in
    UTF-8 either way); the text spares decoding the bytes again.

    `digest`, when given, is the manifest's own digest: a manifest that claims to list itself is
    malformed and classified unknown rather than trusted.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return _unknown(data, media_type, "unparseable bytes")
    except RecursionError:
        # Nested deeper than the parser's stack allows: one hostile manifest must not stop the run.
        return _unknown(data, media_type, "JSON nested too deeply")
    if not isinstance(doc, dict):
        return _unknown(data, media_type, "not a JSON object")

    declared = doc.get("mediaType")
    kind_type = declared if isinstance(declared, str) and declared else media_type
    artifact_type = _str(doc.get("artifactType"))
    subject = _subject(doc.get("subject"))
    if doc.get("subject") is not None and subject is None:
        return _unknown(data, kind_type, "malformed subject")

    # The structure decides only when no media type is known at all: a type we do not know
    # (a vendor type) is unknown whatever fields it happens to have.
    if kind_type is None and "manifests" in doc and ("config" in doc or "layers" in doc):
        return _unknown(data, kind_type, "both manifests and layers, and no media type")
    if kind_type in INDEX_TYPES or (kind_type is None and "manifests" in doc):
        return _parse_index(data, doc, kind_type, artifact_type, subject, digest)
    if kind_type in MANIFEST_TYPES or (kind_type is None and "config" in doc and "layers" in doc):
        return _parse_manifest(data, doc, kind_type, artifact_type, subject)
    if kind_type in SCHEMA1_TYPES or (
        kind_type is None and doc.get("schemaVersion") == 1 and "fsLayers" in doc
    ):
        return _parse_schema1(data, doc, kind_type)
    if kind_type == OCI_ARTIFACT_MANIFEST:
        return _parse_artifact(data, doc, kind_type, artifact_type, subject)
    return _unknown(data, kind_type, f"unrecognised media type {kind_type!r}")


def parse_all(
    content: Mapping[str, bytes | str], images: Mapping[str, Image]
) -> dict[str, Manifest]:
    """`parse` each manifest of `content` (digest -> bytes or text, one call's answer) that `images`
    lists, with the media type the registry lists for it; the others are not asked about. Keyed
    by the listing's own digest strings: a run keeps some of these keys, and one copy of a
    digest is enough."""
    return {
        images[digest].digest: parse(data, media_type=images[digest].media_type, digest=digest)
        for digest, data in content.items()
        if digest in images
    }


def _parse_index(
    data: bytes | str,
    doc: Mapping[str, Any],
    media_type: str | None,
    artifact_type: str | None,
    subject: str | None,
    digest: str | None,
) -> Manifest:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        return _unknown(data, media_type, "index without a manifests list")
    children: list[Descriptor] = []
    for entry in entries:
        child = _descriptor(entry)
        if child is None:
            return _unknown(data, media_type, "index with a malformed entry")
        if child.media_type is not None and child.media_type not in LISTABLE_TYPES:
            # BuildKit cache indexes list layer blobs, not manifests: not an image index.
            return _unknown(data, media_type, f"index listing {child.media_type}")
        if digest is not None and child.digest == digest:
            return _unknown(data, media_type, "index listing itself")
        children.append(child)
    if subject is not None:
        kind, note = Kind.REFERRER, f"index referring to {subject}"
    else:
        kind, note = Kind.INDEX, f"index of {len(children)}"
    return Manifest(
        kind=kind,
        media_type=media_type,
        references=tuple(children),
        subject=subject,
        artifact_type=artifact_type,
        note=note,
    )


def _parse_manifest(
    data: bytes | str,
    doc: Mapping[str, Any],
    media_type: str | None,
    artifact_type: str | None,
    subject: str | None,
) -> Manifest:
    config = _descriptor(doc.get("config"))
    raw_layers = doc.get("layers")
    if config is None or not isinstance(raw_layers, list):
        return _unknown(data, media_type, "manifest without config or layers")
    layers = _descriptors(raw_layers)
    if layers is None:
        return _unknown(data, media_type, "manifest with a malformed layer")
    blobs = (config, *layers)

    def made(kind: Kind, note: str) -> Manifest:
        return Manifest(kind, media_type, (), subject, artifact_type, blobs, note)

    if artifact_type == ATTESTATION_ARTIFACT:
        return made(Kind.ATTESTATION, "buildx attestation (OCI artifact)")
    if subject is not None:
        return made(Kind.REFERRER, f"{artifact_type or config.media_type} referrer")
    if config.media_type in IMAGE_CONFIG_TYPES and artifact_type is None:
        if blobs[1:] and all(
            layer.media_type == IN_TOTO_LAYER and "in-toto.io/predicate-type" in layer.annotations
            for layer in blobs[1:]
        ):
            return made(Kind.ATTESTATION, "buildx attestation (in-toto layers)")
        return made(Kind.IMAGE, "container image")
    return _unknown(data, media_type, f"artifact {artifact_type or config.media_type}")


def _parse_schema1(data: bytes | str, doc: Mapping[str, Any], media_type: str | None) -> Manifest:
    # No config: `fsLayers[].blobSum` are its layers (sizes unknown), `history` its config.
    entries = doc.get("fsLayers")
    if not isinstance(entries, list) or not entries:
        return _unknown(data, media_type, "schema 1 manifest without fsLayers")
    blobs = _descriptors(
        [{"digest": e.get("blobSum")} if isinstance(e, dict) else e for e in entries]
    )
    if blobs is None:
        return _unknown(data, media_type, "schema 1 manifest with a malformed layer")
    return Manifest(Kind.IMAGE, media_type, blobs=blobs, note="container image (Docker schema 1)")


def _parse_artifact(
    data: bytes | str,
    doc: Mapping[str, Any],
    media_type: str | None,
    artifact_type: str | None,
    subject: str | None,
) -> Manifest:
    if subject is None:
        return _unknown(data, media_type, f"artifact manifest {artifact_type} without a subject")
    blobs = _descriptors(doc.get("blobs", []))
    if blobs is None:
        return _unknown(data, media_type, "artifact manifest with a malformed blob")
    return Manifest(
        kind=Kind.REFERRER,
        media_type=media_type,
        subject=subject,
        artifact_type=artifact_type,
        blobs=blobs,
        note=f"{artifact_type or 'artifact'} referrer (artifact manifest)",
    )


def attestation_entries(manifest: Manifest) -> dict[str, str]:
    """Children an index marks as buildx attestations: attestation digest -> described image."""
    return {
        child.digest: child.annotations.get(REFERENCE_DIGEST, "")
        for child in manifest.references
        if child.annotations.get(REFERENCE_TYPE) == ATTESTATION_REFERENCE
    }


def _unknown(data: bytes | str, media_type: str | None, note: str) -> Manifest:
    text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
    mentioned = tuple(dict.fromkeys(digests_in(text)))
    return Manifest(
        kind=Kind.UNKNOWN,
        media_type=media_type,
        references=tuple(Descriptor(digest=d) for d in mentioned),
        note=note,
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _subject(value: object) -> str | None:
    if isinstance(value, dict) and is_digest(value.get("digest")):
        return str(value["digest"])
    return None


def _descriptors(values: object) -> tuple[Descriptor, ...] | None:
    """Each entry of a JSON list as a descriptor; None if it is no list or an entry is malformed."""
    if not isinstance(values, list):
        return None
    found: list[Descriptor] = []
    for value in values:
        descriptor = _descriptor(value)
        if descriptor is None:
            return None
        found.append(descriptor)
    return tuple(found)


def _descriptor(value: object) -> Descriptor | None:
    # Called for every config, layer and index entry (four per manifest on average): written
    # for speed, with the same checks as is_digest and the dataclass's own defaults.
    if not isinstance(value, dict):
        return None
    digest = value.get("digest")
    if not isinstance(digest, str) or DIGEST.match(digest) is None:
        return None
    size = value.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool):
        return None
    annotations = value.get("annotations") or NO_ANNOTATIONS
    if annotations is not NO_ANNOTATIONS:
        if not isinstance(annotations, dict):
            return None
        annotations = {str(k): str(v) for k, v in annotations.items()}
    media_type = value.get("mediaType")
    platform = value.get("platform")
    return Descriptor(
        digest,
        media_type if isinstance(media_type, str) and media_type else None,
        size,
        _platform(platform) if isinstance(platform, dict) else None,
        annotations,
    )


def _platform(platform: Mapping[str, Any]) -> str:
    parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
    return "/".join(str(p) for p in parts if p)
