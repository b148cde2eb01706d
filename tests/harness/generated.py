"""Random registries for property tests, and what a sweep must leave, computed independently.

:func:`registries` is a hypothesis strategy for a :class:`Model`: several repositories of OCI
indexes (nested, sharing children), Docker manifest lists, images, buildx attestations in both
forms, referrers (some chained, some whose subject is gone, some that are indexes), tag-scheme
accessories (cosign's `sha256-<hex>.sig|.att|.sbom`, referrers tag schema fallback indexes; some
whose subject is gone, some re-signed so a later one takes the tag), Helm charts, unparseable and
malformed manifests; with tags (some moved on to later manifests), digest pins, ages, pull times
and archived manifests. :func:`seed_into` writes a model into a FakeRegistry.

The model knows every manifest's kind and references because it built them. :class:`Oracle`
derives from that, and from nothing in ``sweeper``, what must survive a run (:meth:`Oracle.live`)
and what a run in a given scope deletes (:meth:`Oracle.garbage`), following the rules of
docs/design.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from hypothesis import strategies as st

from . import malformed, oci
from .ecr import FakeRegistry

__all__ = [
    "History",
    "Model",
    "Node",
    "Oracle",
    "broken_promises",
    "build_history",
    "lost_children",
    "registries",
    "seed_into",
    "sizes",
    "snapshot",
]

Kind = Literal["index", "image", "attestation", "referrer", "unknown"]
Scope = Literal["attestations", "orphans"]
DELETABLE: Mapping[Scope, frozenset[str]] = {
    "attestations": frozenset({"attestation"}),
    "orphans": frozenset({"index", "image", "attestation", "referrer"}),
}
REPOSITORIES = ("app", "team-a/api", "team-b/web", "tools")
TAGS = ("latest", "stable", "v1", "v2")
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
ACCOUNT_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

# Times relative to the run, far from the default windows (72 h grace, 30 days of pulls).
OLD = timedelta(days=30)
YOUNG = timedelta(hours=1)
PULLED_RECENTLY = timedelta(days=2)
PULLED_LONG_AGO = timedelta(days=90)


@dataclass(frozen=True)
class Node:
    """One manifest of the model, with everything the oracle needs to know about it."""

    repo: str
    label: str  # what the generator made, for failure messages
    manifest: oci.Manifest
    kind: Kind
    children: tuple[str, ...] = ()  # digests an index lists
    subject: str | None = None  # the digest a referrer refers to
    mentions: tuple[str, ...] = ()  # digests an unknown manifest names (kept with it)
    tags: tuple[str, ...] = ()  # tags pushed with it, in order (a later push may take one)
    young: bool = False
    pulled: Literal["recently", "long ago"] | None = None
    archived: bool = False
    raw: bool = False  # stored with malformed.store_raw (the harness cannot read it)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def __repr__(self) -> str:  # the bytes can be megabytes: show what the generator made
        return f"<{self.repo} {self.label} {self.digest[7:19]}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints with this
        printer.text(repr(self))


@dataclass
class Model:
    nodes: list[Node] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)  # strings as the event gives them
    pinned: set[str] = field(default_factory=set)  # the digests they name

    @property
    def repositories(self) -> list[str]:
        return sorted({n.repo for n in self.nodes})

    def in_repo(self, repo: str) -> list[Node]:
        return [n for n in self.nodes if n.repo == repo]

    def final_tags(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(repo, digest) -> the tags it still has once every push is done (tags move)."""
        owner: dict[tuple[str, str], str] = {}
        for node in self.nodes:
            for tag in node.tags:
                owner[(node.repo, tag)] = node.digest
        tags: dict[tuple[str, str], tuple[str, ...]] = {}
        for (repo, tag), digest in owner.items():
            tags[(repo, digest)] = (*tags.get((repo, digest), ()), tag)
        return tags

    def __repr__(self) -> str:
        return f"Model(\n{self.describe()}\n)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def describe(self) -> str:
        lines = [f"pins: {self.pins}"]
        for n in self.nodes:
            flags = [
                f"tags={list(n.tags)}" if n.tags else "",
                "young" if n.young else "",
                f"pulled {n.pulled}" if n.pulled else "",
                "archived" if n.archived else "",
            ]
            refs = [f"children={[c[7:15] for c in n.children]}" if n.children else ""]
            refs += [f"subject={n.subject[7:15]}" if n.subject else ""]
            refs += [f"mentions={[c[7:15] for c in n.mentions]}" if n.mentions else ""]
            extra = " ".join(x for x in flags + refs if x)
            lines.append(f"{n.repo} {n.digest[7:15]} {n.label} ({n.kind}) {extra}")
        return "\n".join(lines)


# --- generation --------------------------------------------------------------------------------

# Weighted: realistic registries are mostly images, attestations and indexes.
_LABELS = (
    ["image"] * 4
    + ["docker image"] * 2
    + ["legacy attestation"] * 3
    + ["artifact attestation"] * 3
    + ["index"] * 5
    + ["docker list"] * 2
    + ["referrer"] * 3
    + ["referrer index", "helm chart", "unparseable", "cache manifest", "malformed index"]
    + ["malformed", "deeply nested"]
)
_REFERRERS = ("cosign", "notation", "sbom")
_ACCESSORIES = ["accessory"] * 3 + ["fallback index"]
_SUFFIXES = (".sig", ".att", ".sbom")


def _chance(one_in: int) -> st.SearchStrategy[bool]:
    return st.sampled_from([True] + [False] * (one_in - 1))


@st.composite
def _repository(
    draw: st.DrawFn, repo: str, max_nodes: int, shared: list[str], labels: Sequence[str]
) -> list[Node]:
    count = draw(st.integers(min_value=0, max_value=max_nodes))
    nodes: list[Node] = []
    seen: set[str] = set()
    for i in range(count):
        label = draw(st.sampled_from(labels))
        node = _build(draw, repo, f"{repo}#{i}", label, nodes, shared)
        if node.digest in seen:
            continue  # the same bytes twice (a shared image): one manifest in the registry
        seen.add(node.digest)
        tagged = draw(_chance(6)) and not node.raw  # the harness cannot tag what it cannot read
        tags = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True))
        nodes.append(
            replace(
                node,
                tags=node.tags + (tuple(tags) if tagged else ()),
                young=draw(_chance(12)),
                pulled=draw(st.sampled_from([None] * 10 + ["recently", "long ago"])),
                archived=draw(_chance(20)),
            )
        )
    return nodes


def _pick(draw: st.DrawFn, nodes: Sequence[Node], *kinds: str, most: int = 3) -> list[Node]:
    pool = [n for n in nodes if not kinds or n.label in kinds]
    if not pool:
        return []
    return draw(
        st.lists(st.sampled_from(pool), min_size=1, max_size=most, unique_by=lambda n: n.digest)
    )


def _entry(node: Node, nodes: Sequence[Node]) -> dict[str, Any]:
    """The descriptor an index has for `node`, as buildx writes it."""
    if node.kind == "attestation":
        described = node.subject or next((n.digest for n in nodes if n.kind == "image"), "")
        return node.manifest.descriptor(
            platform="unknown/unknown",
            annotations={
                oci.REFERENCE_DIGEST_ANNOTATION: described,
                oci.REFERENCE_TYPE_ANNOTATION: "attestation-manifest",
            },
        )
    if node.kind == "image":
        return node.manifest.descriptor(platform="linux/amd64")
    return node.manifest.descriptor()


def _build(
    draw: st.DrawFn, repo: str, seed: str, label: str, nodes: list[Node], shared: list[str]
) -> Node:
    """One new manifest of kind `label`, referring only to manifests made before it."""
    listable = ("image", "docker image", "legacy attestation", "artifact attestation", "index")
    if label in ("image", "docker image"):
        image_seed = draw(st.sampled_from([seed, seed, seed, *shared]))
        manifest = oci.image_manifest(
            image_seed,
            layers=1,
            docker=label == "docker image",
            platform=draw(st.sampled_from(PLATFORMS)),
        )
        return Node(repo, label, manifest, "image")
    if label == "legacy attestation":
        images = _pick(draw, nodes, "image", most=1)
        target = images[0].digest if images else oci.sha256_digest(f"gone:{seed}")
        manifest = oci.legacy_attestation(target, seed=seed, sbom=draw(st.booleans()))
        # No subject: buildx links it to its image only from the index entry.
        return Node(repo, label, manifest, "attestation")
    if label == "artifact attestation":
        images = _pick(draw, nodes, "image", "docker image", most=1)
        subject = images[0].manifest if images else oci.image_manifest(f"gone:{seed}", layers=1)
        manifest = oci.artifact_attestation(subject, seed=seed, sbom=draw(st.booleans()))
        return Node(repo, label, manifest, "attestation", subject=subject.digest)
    if label in ("index", "referrer index"):
        children = _pick(draw, nodes, *listable)
        if not children:
            return _build(draw, repo, seed, "image", nodes, shared)
        entries = [_entry(c, nodes) for c in children]
        if label == "referrer index":
            subject = draw(st.sampled_from(nodes)).manifest
            manifest = oci.index(
                entries, artifact_type="application/vnd.example.bundle.v1", subject=subject
            )
            return Node(
                repo,
                label,
                manifest,
                "referrer",
                children=tuple(c.digest for c in children),
                subject=subject.digest,
            )
        manifest = oci.index(entries, annotations={"seed": seed})
        return Node(repo, label, manifest, "index", children=tuple(c.digest for c in children))
    if label == "docker list":
        children = _pick(draw, nodes, "docker image")
        if not children:
            return _build(draw, repo, seed, "index", nodes, shared)
        manifest = oci.manifest_list(
            [c.manifest.descriptor(platform="linux/amd64") for c in children]
        )
        return Node(repo, label, manifest, "index", children=tuple(c.digest for c in children))
    if label == "referrer":
        dangling = draw(st.integers(0, 5)) == 0
        if nodes and not dangling:
            subject = draw(st.sampled_from(nodes)).manifest  # chained when it is a referrer
        else:
            subject = oci.image_manifest(f"gone:{seed}", layers=1)  # its subject is gone
        flavour = draw(st.sampled_from(_REFERRERS))
        if flavour == "cosign":
            manifest = oci.cosign_signature(subject, seed=seed)
        elif flavour == "notation":
            manifest = oci.notation_signature(subject, seed=seed)
        else:
            manifest = oci.sbom_referrer(subject, seed=seed)
        return Node(repo, f"{flavour} {label}", manifest, "referrer", subject=subject.digest)
    if label == "accessory":
        named = _accessory_subject(draw, seed, nodes)
        suffix = draw(st.sampled_from(_SUFFIXES))
        # The same subject and suffix twice is a re-signing: the later manifest takes the tag.
        signature = oci.cosign_legacy(named, suffix, seed=seed)
        return Node(
            repo, f"cosign {suffix}", signature, "image", tags=(oci.accessory_tag(named, suffix),)
        )
    if label == "fallback index":
        named = _accessory_subject(draw, seed, nodes)
        pool = [n for n in nodes if n.kind == "referrer" and not n.children]
        listed: list[Node] = (
            draw(st.lists(st.sampled_from(pool), max_size=2, unique_by=lambda n: n.digest))
            if pool
            else []
        )
        fallback = oci.referrers_fallback_index([n.manifest for n in listed])
        return Node(
            repo,
            label,
            fallback,
            "index",
            children=tuple(n.digest for n in listed),
            tags=(oci.accessory_tag(named, ""),),
        )
    if label == "helm chart":
        return Node(repo, label, oci.helm_chart(seed=seed), "unknown")
    if label == "cache manifest":
        return Node(repo, label, oci.buildkit_cache_manifest(seed), "unknown")
    if label == "unparseable":
        media_type = draw(st.sampled_from([oci.OCI_MANIFEST, oci.OCI_INDEX]))
        return Node(repo, label, oci.unparseable(seed, media_type=media_type), "unknown")
    if label == "malformed index":
        children = _pick(draw, nodes, *listable)
        if not children:
            return _build(draw, repo, seed, "unparseable", nodes, shared)
        manifest = malformed.index_with_bad_entry([c.manifest for c in children])
        digests = tuple(c.digest for c in children)
        return Node(repo, label, manifest, "unknown", mentions=digests)
    if label == "malformed":
        name = draw(st.sampled_from(sorted(malformed.MALFORMED)))
        return Node(repo, name, malformed.MALFORMED[name](seed), "unknown")
    if label == "deeply nested":
        return Node(repo, label, malformed.RAW["deeply nested JSON"](seed), "unknown", raw=True)
    raise AssertionError(label)


def _accessory_subject(draw: st.DrawFn, seed: str, nodes: Sequence[Node]) -> str:
    """What an accessory is of: a manifest made before it, or (one in five) a digest never here."""
    here: bool = bool(nodes) and draw(st.integers(0, 4)) > 0
    if here:
        subject: Node = draw(st.sampled_from(list(nodes)))
        return subject.digest
    return oci.sha256_digest(f"gone:{seed}")


@st.composite
def registries(
    draw: st.DrawFn, max_repositories: int = 3, max_nodes: int = 10, accessories: bool = True
) -> Model:
    """A random registry: 1 to `max_repositories` repositories of up to `max_nodes` manifests,
    with tag-scheme accessories unless `accessories` is false."""
    repos = draw(
        st.lists(st.sampled_from(REPOSITORIES), min_size=1, max_size=max_repositories, unique=True)
    )
    shared = ["shared-1", "shared-2"]  # image seeds several repositories may use: same digest
    model = Model()
    for repo in repos:
        labels = [*_LABELS, *_ACCESSORIES] if accessories else list(_LABELS)
        model.nodes.extend(draw(_repository(repo, max_nodes, shared, labels)))
    for node in model.nodes:
        if draw(_chance(15)):
            form = draw(st.sampled_from(["digest", "uri", "tagged uri"]))
            if form == "digest":
                model.pins.append(node.digest)
            elif form == "uri":
                model.pins.append(f"{ACCOUNT_HOST}/{node.repo}@{node.digest}")
            else:
                model.pins.append(f"{ACCOUNT_HOST}/{node.repo}:latest@{node.digest}")
            model.pinned.add(node.digest)
    return model


def seed_into(registry: FakeRegistry, model: Model, now: datetime) -> None:
    """Store every manifest, in model order (children before the indexes that list them)."""
    for i, node in enumerate(model.nodes):
        pushed = now - (YOUNG if node.young else OLD) - timedelta(minutes=i)
        pulled = None
        if node.pulled == "recently":
            pulled = now - PULLED_RECENTLY
        elif node.pulled == "long ago":
            pulled = now - PULLED_LONG_AGO
        if node.raw:
            malformed.store_raw(registry, node.repo, node.manifest, pushed_at=pushed)
            registry.set_archived(node.repo, node.digest, node.archived)
            if pulled is not None:
                registry.set_last_pulled(node.repo, node.digest, pulled)
            continue
        registry.seed(
            node.repo,
            node.manifest,
            tags=node.tags,
            pushed_at=pushed,
            archived=node.archived,
            last_pulled=pulled,
        )
    for repo in model.repositories:
        registry.create_repository(repo)


# --- observing the registry --------------------------------------------------------------------


def snapshot(registry: FakeRegistry, repos: Iterable[str]) -> dict[str, set[str]]:
    """repo -> the digests stored in it (from the backend: no API call, no fault)."""
    return {repo: registry.digests(repo) for repo in repos}


def sizes(registry: FakeRegistry, repos: Iterable[str]) -> dict[tuple[str, str], int]:
    """(repo, digest) -> imageSizeInBytes, as DescribeImages reports it to the test's client."""
    out: dict[tuple[str, str], int] = {}
    paginator = registry.client.get_paginator("describe_images")
    for repo in repos:
        for page in paginator.paginate(repositoryName=repo, filter={"imageStatus": "ANY"}):
            for detail in page["imageDetails"]:
                out[(repo, detail["imageDigest"])] = int(detail.get("imageSizeInBytes") or 0)
    return out


# --- the oracle ---------------------------------------------------------------------------------


# `sha256-<64 hex>` with `.sig`, `.att`, `.sbom` or nothing: the accessory tag of docs/design.md.
_ACCESSORY_TAG = re.compile(r"sha256-([0-9a-f]{64})(?:\.sig|\.att|\.sbom)?")


class Oracle:
    """What the rules of docs/design.md say about a model, worked out from the model alone.

    Edges: an index (or referrer index) to each child it lists, an unknown manifest to every
    digest it mentions, a subject to each of its referrers ("a referrer lives while its
    subject lives") and to each of its accessories (a manifest whose final tags include an
    accessory tag naming it). Roots: tagged with some other tag, pinned, young, recently
    pulled, archived. Accessory tags count as other tags in a repository where no accessory's
    subject is present (its subjects live elsewhere).
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.nodes = {(n.repo, n.digest): n for n in model.nodes}
        self.tags = model.final_tags()

    def accessories(self, repo: str, present: set[str]) -> dict[str, set[str]]:
        """Accessory -> the subjects its tags name; empty where none of them is present."""
        found: dict[str, set[str]] = {}
        for digest in present:
            for tag in self.tags.get((repo, digest), ()):
                match = _ACCESSORY_TAG.fullmatch(tag)
                if match:
                    found.setdefault(digest, set()).add(f"sha256:{match.group(1)}")
        held = any(s in present and s not in found for named in found.values() for s in named)
        return found if held else {}

    def _edges(self, repo: str, present: set[str]) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {d: set() for d in present}
        for digest in present:
            node = self.nodes[(repo, digest)]
            edges[digest] |= {c for c in (*node.children, *node.mentions) if c in present}
            if node.subject in present:
                edges[node.subject].add(digest)
        for accessory, subjects in self.accessories(repo, present).items():
            for subject in subjects & present:
                edges[subject].add(accessory)
        return edges

    def roots(self, repo: str, present: set[str]) -> set[str]:
        accessories = self.accessories(repo, present)

        def is_root(node: Node) -> bool:
            tags = self.tags.get((repo, node.digest), ())
            if node.digest in accessories:
                tags = tuple(t for t in tags if not _ACCESSORY_TAG.fullmatch(t))
            return bool(
                tags
                or node.digest in self.model.pinned
                or node.young
                or node.pulled == "recently"
                or node.archived
            )

        return {d for d in present if is_root(self.nodes[(repo, d)])}

    def _closure(self, repo: str, present: set[str], starts: set[str]) -> set[str]:
        edges = self._edges(repo, present)
        reached, stack = set(starts), list(starts)
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt not in reached:
                    reached.add(nxt)
                    stack.append(nxt)
        return reached

    def edges(self, repo: str, present: set[str]) -> dict[str, set[str]]:
        """digest -> what it keeps alive: children, mentions, referrers, accessories."""
        return self._edges(repo, present)

    def reach(self, repo: str, present: set[str], starts: set[str]) -> set[str]:
        """`starts` and everything they keep alive, transitively."""
        return self._closure(repo, present, starts)

    def live(self, repo: str, present: set[str]) -> set[str]:
        """Roots and everything they reach: what no run may ever delete."""
        return self._closure(repo, present, self.roots(repo, present))

    def garbage(self, repo: str, present: set[str], scope: Scope) -> set[str]:
        """What a complete run in `scope` deletes: everything nothing kept reaches.

        Kept: the roots, and every manifest whose kind is not deleted in `scope` (unknown ones
        always); and everything those reach.
        """
        protected = self.roots(repo, present) | {
            d for d in present if self.nodes[(repo, d)].kind not in DELETABLE[scope]
        }
        return present - self._closure(repo, present, protected)

    def kind(self, repo: str, digest: str) -> str:
        return self.nodes[(repo, digest)].kind


def broken_promises(
    oracle: Oracle, before: Mapping[str, set[str]], after: Mapping[str, set[str]]
) -> list[str]:
    """Every way `after` breaks the promise, given `before` (empty when it holds).

    Nothing live was deleted; no surviving manifest lost anything it lists (an index its
    children, an unknown manifest what it mentions); nothing appeared.
    """
    problems: list[str] = []
    for repo, was in before.items():
        now = after[repo]
        for digest in sorted(oracle.live(repo, was) - now):
            problems.append(f"{repo}: live {oracle.nodes[(repo, digest)].label} {digest} deleted")
        for digest in sorted(now):
            node = oracle.nodes[(repo, digest)]
            for ref in sorted(set(node.children + node.mentions) & (was - now)):
                problems.append(f"{repo}: surviving {node.label} {digest} lost {ref}")
        if now - was:
            problems.append(f"{repo}: manifests appeared: {sorted(now - was)}")
    return problems


def lost_children(
    registry: FakeRegistry, before: Mapping[str, set[str]], after: Mapping[str, set[str]]
) -> list[str]:
    """Surviving manifests that list (``manifests[].digest``) something the run removed.

    Reads the stored bytes with plain ``json``: for registries not built from a :class:`Model`.
    """
    problems: list[str] = []
    for repo, now in after.items():
        gone = before[repo] - now
        for digest in sorted(now):
            for child in sorted(_listed(registry.manifest(repo, digest)) & gone):
                problems.append(f"{repo}: surviving {digest} lost {child}")
    return problems


def _listed(data: bytes) -> set[str]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return set()
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return set()
    return {
        e["digest"] for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)
    }


@dataclass(frozen=True)
class History:
    """A realistic registry: per repository, rebuilds of a multi-platform image; the tag moved on
    at every rebuild, so all but the last build are orphans. Signatures on every build."""

    live: dict[str, frozenset[str]]  # repo -> the last build's tree and its signatures
    orphans: dict[str, frozenset[str]]  # repo -> everything else

    @property
    def repos(self) -> list[str]:
        return sorted(self.live)


def build_history(
    registry: FakeRegistry,
    now: datetime,
    repos: Sequence[str] = ("app", "team-a/api", "team-b/web"),
    rebuilds: int = 4,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
) -> History:
    live: dict[str, frozenset[str]] = {}
    orphans: dict[str, frozenset[str]] = {}
    for repo in repos:
        trees: list[frozenset[str]] = []
        for i in range(rebuilds):
            build = registry.push_buildx(
                repo,
                tag="latest",
                platforms=platforms,
                attestation="legacy" if i % 2 else "artifact",
                sbom=i % 3 == 0,
                pushed_at=now - OLD + timedelta(hours=i),
                build_id=f"{repo}:{i}",
                fast=True,
            )
            signature = oci.cosign_signature(
                oci.Manifest(registry.manifest(repo, build.index), oci.OCI_INDEX), seed=i
            )
            registry.seed(repo, signature, pushed_at=now - OLD + timedelta(hours=i))
            trees.append(build.all | {signature.digest})
        live[repo] = trees[-1]
        orphans[repo] = frozenset().union(*trees[:-1]) - trees[-1]
    return History(live, orphans)
