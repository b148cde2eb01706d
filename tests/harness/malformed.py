"""Manifests a tolerant reader must survive, and registry metadata that lies.

Builders return :class:`oci.Manifest` (exact bytes plus the media type ECR would report), ready
for :meth:`FakeRegistry.seed`, which stores what ECR's API would accept from a sloppy or hostile
client. What the harness cannot store that way goes through :func:`store_raw`: bytes the
harness's own JSON reading cannot digest (deep nesting), and digests that are not the sha256 of
the bytes, which ECR never stores: a manifest listing itself, indexes listing each other. Those
model metadata that lies (a corrupted or compromised registry), which the sweeper must survive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from moto.ecr.models import Image

from . import oci
from .ecr import FakeRegistry, _Info, _Meta, _now, _state

__all__ = [
    "MALFORMED",
    "RAW",
    "index_listing_itself",
    "index_with_bad_entry",
    "indexes_listing_each_other",
    "store_raw",
]


def _raw(doc: Any, media_type: str) -> oci.Manifest:
    return oci.Manifest(json.dumps(doc, separators=(",", ":")).encode(), media_type)


def _config(seed: str) -> dict[str, Any]:
    return oci.blob(oci.OCI_CONFIG, f"malformed-config:{seed}", 1234)


def _layer(seed: str) -> dict[str, Any]:
    return oci.layer(f"malformed:{seed}", 4321)


def index_with_bad_entry(children: Sequence[oci.Manifest | Mapping[str, Any]]) -> oci.Manifest:
    """An OCI index whose entries carry a size that is not a number: it still names `children`."""
    entries = []
    for child in children:
        desc = child.descriptor() if isinstance(child, oci.Manifest) else dict(child)
        entries.append({**desc, "size": str(desc.get("size", 0))})
    return _raw(
        {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries}, oci.OCI_INDEX
    )


# name -> builder(seed): each one is something the sweeper must classify `unknown` and keep.
MALFORMED: dict[str, Callable[[str], oci.Manifest]] = {
    "not JSON": oci.unparseable,
    "not JSON, reported as an index": lambda seed: oci.unparseable(seed, media_type=oci.OCI_INDEX),
    "a JSON array": lambda seed: _raw(["not", "a", "manifest", seed], oci.OCI_MANIFEST),
    "JSON null": lambda seed: oci.Manifest(b"null", oci.OCI_MANIFEST),
    "manifest without layers": lambda seed: _raw(
        {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": _config(seed)},
        oci.OCI_MANIFEST,
    ),
    "manifest whose layers are not a list": lambda seed: _raw(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": _config(seed),
            "layers": _layer(seed),
        },
        oci.OCI_MANIFEST,
    ),
    "layer without a digest": lambda seed: _raw(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": _config(seed),
            "layers": [{"mediaType": oci.OCI_LAYER, "size": 12}],
        },
        oci.OCI_MANIFEST,
    ),
    "layer with a broken digest": lambda seed: _raw(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": _config(seed),
            "layers": [{"mediaType": oci.OCI_LAYER, "digest": "sha256:xyz", "size": 12}],
        },
        oci.OCI_MANIFEST,
    ),
    "unknown media type": lambda seed: _raw(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.example.thing.v1+json",
            "config": _config(seed),
            "layers": [_layer(seed)],
        },
        "application/vnd.example.thing.v1+json",
    ),
    "withdrawn OCI artifact manifest": lambda seed: _raw(
        {
            "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
            "artifactType": "application/vnd.example.sbom",
            "blobs": [_layer(seed)],
        },
        "application/vnd.oci.artifact.manifest.v1+json",
    ),
    "index without manifests": lambda seed: _raw(
        {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "annotations": {"seed": str(seed)}},
        oci.OCI_INDEX,
    ),
    "index whose manifests are strings": lambda seed: _raw(
        {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [f"{seed}"]},
        oci.OCI_INDEX,
    ),
    "malformed subject": lambda seed: _raw(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": dict(oci.EMPTY_DESCRIPTOR),
            "layers": [_layer(seed)],
            "subject": {"digest": "sha256:nothex", "size": 1},
        },
        oci.OCI_MANIFEST,
    ),
    "annotations that are a list": lambda seed: _raw(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": _config(seed),
            "layers": [{**_layer(seed), "annotations": ["a", "b"]}],
        },
        oci.OCI_MANIFEST,
    ),
    "BuildKit cache index (lists blobs)": oci.buildkit_cache_index,
}

# Like MALFORMED, for bytes only `store_raw` can store.
RAW: dict[str, Callable[[str], oci.Manifest]] = {
    "deeply nested JSON": lambda seed: oci.Manifest(
        b'{"x":' * 100_000 + f'"{seed}"'.encode() + b"}" * 100_000, oci.OCI_MANIFEST
    ),
}


def store_raw(
    registry: FakeRegistry,
    repo: str,
    manifest: oci.Manifest,
    *,
    digest: str | None = None,
    pushed_at: datetime | None = None,
) -> str:
    """Store `manifest` as it is, bypassing the harness's checks and its reading of the bytes.

    `digest` defaults to the honest one; another one forges metadata ECR would never hold. The
    harness sees the manifest as opaque bytes (no children), so it refuses no delete for it.
    """
    digest = digest or manifest.digest
    registry.create_repository(repo)
    repository = registry._backend.repositories[repo]
    state = _state(repository)
    if digest in state.by_digest:
        raise ValueError(f"{digest} already exists in {repo}")
    text = manifest.text
    image = Image(
        registry.account_id,
        None,  # type: ignore[arg-type]
        text,
        repo,
        manifest.media_type,
        digest,
        repository.registry_id,
    )
    # The harness caches what it read of the bytes per manifest text; give it "opaque".
    image._harness_info = (text, _Info("unparseable", (), len(manifest.bytes), None, None))  # type: ignore[attr-defined]
    image._harness_meta = _Meta(seq=next(state.seq), pushed_at=pushed_at or _now())  # type: ignore[attr-defined]
    repository.images.append(image)
    state.by_digest[digest] = image
    return digest


def index_listing_itself(
    registry: FakeRegistry, repo: str, *, pushed_at: datetime | None = None
) -> str:
    """A forged index whose only entry is its own digest."""
    digest = oci.sha256_digest("forged: an index listing itself")
    listed = [{"mediaType": oci.OCI_INDEX, "digest": digest, "size": 200}]
    doc = _raw({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": listed}, oci.OCI_INDEX)
    return store_raw(registry, repo, doc, digest=digest, pushed_at=pushed_at)


def indexes_listing_each_other(
    registry: FakeRegistry, repo: str, *, pushed_at: datetime | None = None
) -> tuple[str, str]:
    """Two forged indexes, each listing the other: a cycle content addressing makes impossible."""
    first = oci.sha256_digest("forged: cycle one")
    second = oci.sha256_digest("forged: cycle two")
    for digest, other in ((first, second), (second, first)):
        listed = [{"mediaType": oci.OCI_INDEX, "digest": other, "size": 200}]
        doc = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": listed}
        store_raw(registry, repo, _raw(doc, oci.OCI_INDEX), digest=digest, pushed_at=pushed_at)
    return first, second
