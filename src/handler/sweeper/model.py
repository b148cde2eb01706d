"""Value types of the core, named as the OCI image spec names them.

Nothing here knows about ECR: `Image` is "a manifest stored in a repository", whatever registry
holds it. Everything is immutable so a plan can be shared between threads and compared between a
dry run and a real run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

DIGEST_PATTERN = r"sha256:[0-9a-f]{64}"
DIGEST = re.compile(rf"^{DIGEST_PATTERN}$")  # a whole string that is a digest
# Where a digest is looked for in text (pins, the bytes of an unknown manifest), upper-case hex
# counts too and is normalised to lower case: ECR's digests are lower case, and a pin written in
# upper case means the same manifest. One rule, for the `pins` setting and every pin source.
_DIGEST_ANYWHERE = re.compile(r"sha256:[0-9a-fA-F]{64}")


def is_digest(value: object) -> bool:
    return isinstance(value, str) and DIGEST.match(value) is not None


def digests_in(text: str) -> list[str]:
    """Every `sha256:<64 hex>` in a piece of text, in order, in lower case (pins accept full
    image URIs; upper-case hex is the same digest)."""
    return [found.lower() for found in _DIGEST_ANYWHERE.findall(text)]


# An ECR image reference by tag: `<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repo>:<tag>`, not
# followed by `@sha256:` (a reference with a digest pulls the digest, which pins it; its tag is
# not what runs). Repository names as ECR allows them; a tag as the distribution spec allows.
_TAG_REFERENCE = re.compile(
    r"(?<![\w.-])(?P<registry>[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?)/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*[a-z0-9]|[a-z0-9])"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?![A-Za-z0-9_.@:/-])"
)


def tag_references(text: str) -> list[tuple[str, str, str]]:
    """Every ECR image reference by tag in a piece of text: (registry host, repository, tag);
    a reference without a tag names `latest`, as `docker pull` reads it."""
    return [
        (m["registry"], m["repository"], m["tag"] or "latest")
        for m in _TAG_REFERENCE.finditer(text)
    ]


# Tag-scheme accessories (before OCI 1.1 referrers): cosign's `sha256-<hex>.sig`, `.att` and
# `.sbom`, and the distribution spec's referrers tag schema `sha256-<hex>` (a fallback index).
# Exactly this form: `sha256-latest`, or any other tag that merely starts so, is an ordinary tag.
_ACCESSORY_TAG = re.compile(r"^sha256-([0-9a-f]{64})(?:\.(?:sig|att|sbom))?$")


def accessory_subject(tag: str) -> str | None:
    """The digest a tag of the accessory form attaches its manifest to, or None."""
    match = _ACCESSORY_TAG.match(tag)
    return f"sha256:{match.group(1)}" if match else None


def accessory_of(tag: str, digest: str) -> str | None:
    """The subject a tag of manifest `digest` makes it an accessory of, or None.

    A manifest tagged with its own digest's tag (`sha256-<its own hex>`, a mirror's convention)
    is no accessory of itself: that tag is an ordinary tag, and the manifest a tagged root.
    """
    subject = accessory_subject(tag)
    return None if subject == digest else subject


class Kind(StrEnum):
    """What a manifest is, as far as garbage collection cares."""

    INDEX = "index"  # OCI image index or Docker manifest list
    IMAGE = "image"  # container image manifest (config is an OCI or Docker image config)
    ATTESTATION = "attestation"  # buildx attestation manifest, legacy in-toto or OCI-artifact form
    REFERRER = "referrer"  # any other manifest with a `subject` (signatures, SBOM artifacts)
    UNKNOWN = "unknown"  # Helm charts, other artifacts, caches, unparseable bytes: never deleted
    UNCLASSIFIED = "unclassified"  # not read: kept for another reason, its kind did not matter


class Scope(StrEnum):
    ATTESTATIONS = "attestations"
    ORPHANS = "orphans"


SCOPE_KINDS: Mapping[Scope, frozenset[Kind]] = {
    Scope.ATTESTATIONS: frozenset({Kind.ATTESTATION}),
    Scope.ORPHANS: frozenset({Kind.INDEX, Kind.IMAGE, Kind.ATTESTATION, Kind.REFERRER}),
}


# The annotations of every descriptor that has none (most config and layer descriptors): one
# shared read-only mapping, not an empty dict each (64 bytes apiece, millions of them).
NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An entry of an index's `manifests[]` (or a config/layer descriptor)."""

    digest: str
    media_type: str | None = None
    size: int = 0
    platform: str | None = None  # "os/arch[/variant]"
    annotations: Mapping[str, str] = field(default_factory=lambda: NO_ANNOTATIONS)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the bytes of one manifest say.

    `references` are the digests this manifest keeps alive: an index's children, and for an
    unknown manifest every digest its bytes mention (we cannot tell which ones matter, so all do).
    `blobs` are the config and layer descriptors, for the bytes a deletion frees.
    """

    kind: Kind
    media_type: str | None
    references: tuple[Descriptor, ...] = ()
    subject: str | None = None
    artifact_type: str | None = None
    blobs: tuple[Descriptor, ...] = ()
    note: str = ""  # why this kind, in a few words, for the decision log


@dataclass(frozen=True, slots=True)
class Image:
    """A manifest stored in a repository, as the registry lists it (no bytes)."""

    digest: str
    tags: tuple[str, ...] = ()
    pushed_at: datetime | None = None
    size: int = 0
    media_type: str | None = None
    artifact_media_type: str | None = None
    subject: str | None = None
    last_pulled: datetime | None = None
    archived: bool = False
    # When it was last restored from archive storage: a restored image "behaves like a newly
    # pushed image", so the grace period counts from the later of this and `pushed_at`.
    activated_at: datetime | None = None

    @property
    def young_since(self) -> datetime | None:
        """Where the grace period starts: the push, or a later restore (None: no push time)."""
        if self.pushed_at is None:
            return None
        if self.activated_at is not None and self.activated_at > self.pushed_at:
            return self.activated_at
        return self.pushed_at


class Verdict(StrEnum):
    KEEP = "keep"
    DELETE = "delete"


class Reason(StrEnum):
    """Why a manifest is kept or deleted. The first five are roots: they make a manifest live."""

    TAGGED = "tagged"
    PINNED = "pinned"
    YOUNG = "within-grace-period"
    PULLED = "recently-pulled"
    ARCHIVED = "archived"
    # Kept because something kept refers to it.
    LISTED_BY_KEPT_INDEX = "listed-by-kept-index"
    SUBJECT_KEPT = "subject-kept"
    ACCESSORY_OF_KEPT = "accessory-of-kept"  # its accessory tag names a kept manifest
    # Kept for what it is, or for what we could not learn.
    UNKNOWN_KIND = "unknown-kind"
    OUT_OF_SCOPE = "out-of-scope"
    UNREADABLE = "unreadable"
    REFERENCE_CYCLE = "reference-cycle"
    # Kept although the plan wanted it gone.
    PARENT_NOT_DELETED = "parent-not-deleted"
    DELETE_FAILED = "delete-failed"
    GAINED_TAG = "gained-tag"
    NEWLY_PINNED = "newly-pinned"
    # Its re-read before the delete showed a pull since the scan (a workload's: the run's own
    # reads leave pull times alone once it is a pull-time update exclusion).
    PULLED_SINCE_SCAN = "pulled-since-scan"
    NOT_REACHED = "not-reached"  # the run stopped (time budget, failure) before its batch
    # Deleted.
    UNREACHABLE = "unreachable"
    # A retention rule expired it (its tags stopped being roots) and nothing else holds it: the
    # cause names the rule. Apart from UNREACHABLE so that the report and the log can tell a
    # deletion a rule asked for from one of garbage nothing ever tagged.
    EXPIRED = "expired"
    # Kept although a retention rule expired it: a workload names one of its tags (`repo:tag` in
    # a task definition, a Kubernetes spec, a deploy config), and would fail to start without it.
    # A root; its cause says which tag and where it was found.
    TAG_IN_USE = "tag-in-use"


DELETE_REASONS = frozenset({Reason.UNREACHABLE, Reason.EXPIRED})
ROOT_REASONS = frozenset(
    {Reason.TAGGED, Reason.PINNED, Reason.YOUNG, Reason.PULLED, Reason.ARCHIVED, Reason.TAG_IN_USE}
)


@dataclass(frozen=True, slots=True)
class Pin:
    """A digest that something outside the registry uses; `source` says who."""

    digest: str
    source: str


@dataclass(frozen=True, slots=True)
class HeldTag:
    """A tag something runs by: a workload names `repository:tag` of `registry` (the host,
    `<account>.dkr.ecr.<region>.amazonaws.com`); `source` says where it was found."""

    registry: str
    repository: str
    tag: str
    source: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one manifest and why: `cause` is the tag, pin source or digest behind it.

    `accessory` is the accessory tag (`sha256-<hex>.sig`, ...) that ties this manifest to its
    subject, for a tag-scheme accessory; empty for everything else.
    """

    digest: str
    kind: Kind
    verdict: Verdict
    reason: Reason
    cause: str = ""
    size: int = 0
    live: bool = False  # reachable from a root (tag, pin, grace period, pull, archive)
    # The retention rule that expired this manifest's tags ("rule 1: keep 25 CI builds"), kept
    # or deleted; "" when no rule did. A kept one says, by reason and cause, what holds it.
    expired_by: str = ""
    accessory: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """Every decision for one repository, and the deletions in the order they must happen.

    `waves[i]` may only be deleted once every earlier wave is gone: a parent index is always in an
    earlier wave than its children, and a subject in an earlier wave than its referrers, so that
    whatever keeps a candidate at the last moment (a new tag, a refused or failed delete) also
    keeps, before they go, the candidates it lists and the referrers that describe it.

    `absent_subjects`: candidates whose deletion rests on their subject being absent from the
    repository (a referrer whose subject the listing did not show): each may go only once a read
    by digest, right before its batch, confirms that subject absent.
    """

    repository: str
    decisions: Mapping[str, Decision]
    waves: tuple[tuple[str, ...], ...]
    children: Mapping[str, tuple[str, ...]]  # candidate index -> the candidates it lists
    referrers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # subject -> referrers
    # Candidate -> the subjects whose absence from the listing its deletion rests on (a referrer
    # whose `subject`, or an accessory whose tag, names a digest the repository did not list).
    # A listing is no proof of absence: right before the candidate's delete batch, the sweep
    # reads each subject by digest, and keeps the candidate (live, with what it lists) when one
    # exists after all. Candidates whose subjects are listed are not here: they go with them.
    absent_subjects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def deletions(self) -> list[str]:
        return [digest for wave in self.waves for digest in wave]

    @property
    def planned_bytes(self) -> int:
        return sum(self.decisions[d].size for d in self.deletions)
