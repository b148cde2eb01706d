"""The bytes a set of deletions really frees in one repository. Pure; no I/O.

A registry stores each blob (config or layer) once per repository, however many manifests list
it, so the sum of the deleted manifests' sizes overstates what a deletion frees: a rebuild shares
its base layers with the image that replaced it. A blob is freed only when every manifest that
references it is gone. This module counts exactly those blobs, from parsed manifests.

The manifest documents themselves (a few KB each) are not counted: only config and layer blobs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from .model import Manifest


def held_digests(manifest: Manifest) -> set[str]:
    """Every blob digest a manifest keeps alive.

    Its config and layers, and every digest in its `references`: for an unknown manifest (a Helm
    chart, a BuildKit cache index) those are all the digests its bytes mention, blobs included,
    since we cannot tell which ones it uses. An index's children are manifests, not blobs; naming
    them here is harmless (a manifest digest is never a blob of the same repository's images).
    """
    return {blob.digest for blob in manifest.blobs} | {ref.digest for ref in manifest.references}


def freed_bytes(
    manifests: Mapping[str, Manifest], gone: Iterable[str], surviving: Iterable[str]
) -> int | None:
    """Bytes of the blobs that manifests in `gone` reference and no manifest in `surviving` does.

    `manifests` holds the parsed content by digest. Returns None when the figure cannot be known:
    a manifest in `gone` or `surviving` has no parsed content (a survivor we could not read may
    hold any blob). A blob listed with different sizes counts with the smallest (a malformed
    manifest must not inflate the figure). Nothing gone frees nothing, whatever else is unknown.
    """
    sizes: dict[str, int] = {}
    for digest in gone:
        parsed = manifests.get(digest)
        if parsed is None:
            return None
        for blob in parsed.blobs:
            known = sizes.get(blob.digest)
            sizes[blob.digest] = blob.size if known is None else min(known, blob.size)
    if not sizes:
        return 0
    held: set[str] = set()
    for digest in surviving:
        parsed = manifests.get(digest)
        if parsed is None:
            return None
        held |= held_digests(parsed)
    return sum(size for digest, size in sizes.items() if digest not in held)


@dataclass(frozen=True, slots=True)
class Unknown:
    """Why a ledger's figures cannot be known (a manifest not read, say)."""

    reason: str


@dataclass(frozen=True, slots=True)
class FreedLedger:
    """What a repository's planned deletions can free, worked out once, at planning.

    Only the blobs that planned deletions reference and no other manifest does count, grouped by
    who references them: `own` holds, for each planned manifest, the bytes of the blobs that it
    alone references; `shared` the bytes of the blobs that several planned manifests reference,
    by that set (freed once all of them are gone). `unknown`, when set, says why the figure
    cannot be known (then every figure with something gone is None). Keeping this, not the
    parsed manifests, lets a run forget a repository's manifests as soon as it is planned.
    """

    own: Mapping[str, int]
    shared: Mapping[frozenset[str], int]
    unknown: Unknown | None = None

    def freed(self, gone: Iterable[str]) -> int | None:
        """Bytes of the blobs only manifests in `gone` (a subset of the planned) referenced."""
        gone = set(gone)
        if not gone:
            return 0
        if self.unknown is not None:
            return None
        alone = sum(self.own.get(digest, 0) for digest in gone)
        return alone + sum(size for refs, size in self.shared.items() if refs <= gone)


# A blob planned deletions may free: who references it (the planned manifests), and its size.
Candidates = dict[str, tuple[frozenset[str], int]]


def ledger(
    manifests: Mapping[str, Manifest], planned: Iterable[str], others: Iterable[str]
) -> FreedLedger:
    """The ledger of `planned` deletions, `others` being every other manifest still there.

    Same rules as `freed_bytes`: a manifest without parsed content makes the figure unknown,
    and a blob listed with different sizes counts with the smallest.
    """
    found = candidates(manifests, planned, others)
    return unknown(found) if isinstance(found, str) else from_candidates(found)


def from_candidates(
    found: Candidates, held_elsewhere: Collection[str] = frozenset()
) -> FreedLedger:
    """The ledger of `candidates`, leaving out the blobs in `held_elsewhere` (those another
    repository's manifests use, where blobs are shared between repositories)."""
    own: dict[str, int] = {}
    shared: dict[frozenset[str], int] = {}
    for blob, (by, size) in found.items():
        if blob in held_elsewhere:
            continue
        if len(by) == 1:
            (digest,) = by
            own[digest] = own.get(digest, 0) + size
        else:
            shared[by] = shared.get(by, 0) + size
    return FreedLedger(own, shared)


def candidates(
    manifests: Mapping[str, Manifest], planned: Iterable[str], others: Iterable[str]
) -> Candidates | str:
    """The blobs `planned` deletions reference and no manifest of `others` does, or why that
    cannot be known."""
    sizes: dict[str, int] = {}
    refs: dict[str, set[str]] = {}
    for digest in planned:
        parsed = manifests.get(digest)
        if parsed is None:
            return f"{digest} not read"
        for blob in parsed.blobs:
            known = sizes.get(blob.digest)
            sizes[blob.digest] = blob.size if known is None else min(known, blob.size)
            refs.setdefault(blob.digest, set()).add(digest)
    held: set[str] = set()
    if sizes:
        for digest in others:
            parsed = manifests.get(digest)
            if parsed is None:
                return f"{digest} not read"
            held |= held_digests(parsed)
    return {blob: (frozenset(refs[blob]), size) for blob, size in sizes.items() if blob not in held}


def unknown(reason: str) -> FreedLedger:
    """A ledger whose figures cannot be known, and why."""
    return FreedLedger({}, {}, Unknown(reason))
