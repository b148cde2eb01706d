"""Mark and sweep planning: roots -> kept set -> deletion candidates in waves. Pure; no I/O.

Mark: every root (tag, pin, grace period, recent pull, archive) is live, and so is everything it
reaches through index -> child edges, subject -> referrer edges and subject -> accessory edges,
transitively. Manifests that may not be deleted for what they are (unknown kind, out of scope,
unreadable) are kept too, and keep what *they* reach the same way, so that no surviving index
ever loses a child.
Sweep: whatever is left is deleted, parents before children.

Retention (`expired`, from lifecycle.expire) changes one thing: the tags of an expired image stop
being roots, unless something runs by one of them (`held`, lifecycle.held: then it is a root, kept
as `tag-in-use`). Everything else still holds it (a pin, a recent pull, the grace period, an
archive, a kept index listing it), its decision then saying what holds it and `expired_by` naming
the rule; otherwise it is deleted, reason `expired` with the rule as its cause, with everything
only it reaches, parents first, as any orphan is. An expired image is never deleted for its expiry
alone.

Accessories: a tag of the form `sha256-<hex>[.sig|.att|.sbom]` (model.accessory_subject) is not a
root; it ties its manifest to the subject `sha256:<hex>` as `subject` ties a referrer. Only in a
repository that holds some of those subjects, though: where every accessory names a digest the
repository lacks, the subjects live elsewhere (cosign's COSIGN_REPOSITORY keeps signatures in a
repository of their own), absence proves nothing, and the tags stay ordinary tags.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .manifests import (
    ATTESTATION_ARTIFACT,
    DOCKER_CONFIG,
    IMAGE_CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    attestation_entries,
)
from .model import (
    SCOPE_KINDS,
    Decision,
    Image,
    Kind,
    Manifest,
    Pin,
    Plan,
    Reason,
    Scope,
    Verdict,
    accessory_of,
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the core needs; `now` is passed separately so the core stays clock-free."""

    scope: Scope = Scope.ORPHANS
    min_age: timedelta = timedelta(hours=72)
    keep_pulled_within: timedelta | None = timedelta(days=30)

    def pulled_within_window(self, pulled: datetime | None, now: datetime) -> bool:
        """Whether a pull recorded at `pulled` keeps a manifest (None: never pulled; no window:
        pulls keep nothing). The plan, the audit and the sweep's re-read judge it alike."""
        window = self.keep_pulled_within
        return window is not None and pulled is not None and pulled > now - window


def metadata_kind(image: Image, marked_attestation: bool) -> Kind | None:
    """The kind the registry's listing alone proves, or None when only the bytes can tell."""
    if image.media_type in INDEX_TYPES:
        return Kind.INDEX if image.subject is None else Kind.REFERRER
    if image.media_type not in MANIFEST_TYPES:
        return None
    if image.artifact_media_type == ATTESTATION_ARTIFACT or marked_attestation:
        return Kind.ATTESTATION
    if image.subject is not None:
        return Kind.REFERRER
    if image.artifact_media_type == DOCKER_CONFIG:
        return Kind.IMAGE  # buildx never writes attestations with Docker media types
    return None


def needs_content(image: Image) -> bool:
    """Manifests whose bytes are read whatever else we know: they may list other manifests."""
    return image.media_type not in MANIFEST_TYPES


def may_mention_manifests(image: Image) -> bool:
    """Whether a manifest's bytes may name other manifests it keeps alive, so that they are read,
    tagged or not, whenever something in the repository could be deleted.

    Indexes (and manifests of unstated type) list children; an artifact whose kind its listing
    does not tell may be of a kind we do not know, and an unknown kind keeps alive every digest
    its bytes mention. A plain image, an attestation or a referrer (its subject is listed) names
    no manifest that its listing does not show.
    """
    if needs_content(image):
        return True
    if image.subject is not None:
        return False
    return image.artifact_media_type not in IMAGE_CONFIG_TYPES | {ATTESTATION_ARTIFACT}


def may_delete(
    image: Image,
    pins: Mapping[str, Pin],
    policy: Policy,
    now: datetime,
    expired: Collection[str] = frozenset(),
) -> bool:
    """Whether some bytes could still make this manifest a deletion candidate.

    False for a root, and for a manifest whose listing alone proves it out of scope, whatever an
    index entry may say about it. A repository where no manifest may be deleted needs no bytes
    read at all: every decision there is a keep, which needs no evidence. `expired` digests
    (retention) are not roots for their tags.
    """
    tags = () if image.digest in expired else _ordinary(image)
    if _root(image, tags, pins, policy, now) is not None:
        return False
    kinds = {metadata_kind(image, False), metadata_kind(image, True)}
    return None in kinds or not kinds.isdisjoint(SCOPE_KINDS[policy.scope])


def make_plan(
    repository: str,
    images: Sequence[Image],
    manifests: Mapping[str, Manifest],
    pins: Mapping[str, Pin],
    policy: Policy,
    now: datetime,
    *,
    unreadable: Mapping[str, str] | None = None,
    provisional: bool = False,
    expired: Mapping[str, str] | None = None,
    held: Mapping[str, str] | None = None,
    rule_tags: Callable[[str], bool] | None = None,
) -> Plan:
    """Decide every manifest of one repository.

    `manifests` holds the parsed bytes read so far; a manifest without bytes is judged from its
    listing. With `provisional`, a manifest whose kind only its bytes can tell counts as deletable,
    so that the plan's deletions are exactly the manifests whose bytes must be read before the
    final plan; without it, such a manifest is kept as unreadable. `expired` maps the digests a
    retention rule expired to that rule's label (see the module's docstring). `held` maps those of
    them that carry a tag something runs by (lifecycle.held) to where it was found: they are
    roots, kept as `tag-in-use`. `rule_tags` says whether a retention rule selects a tag: a tagged
    root's cause is then a tag no rule selects when it has one (the release tag that keeps it,
    not the CI tag a rule will expire).
    """
    unreadable = unreadable or {}
    expired = expired or {}
    held = held or {}
    by_digest = {image.digest: image for image in images}
    marked = _marked_attestations(manifests)
    accessories = _accessories(by_digest)
    kinds: dict[str, Kind] = {}
    notes: dict[str, str] = {}
    edges: dict[str, list[tuple[str, Reason]]] = defaultdict(list)
    absent: dict[str, list[str]] = {}  # manifest -> the subjects it names that are not listed

    def link(subject: str, digest: str, reason: Reason) -> None:
        if subject in by_digest:
            edges[subject].append((digest, reason))
        else:
            absent.setdefault(digest, []).append(subject)

    for image in images:
        parsed = manifests.get(image.digest)
        if parsed is not None:
            kind = parsed.kind
            if kind is Kind.IMAGE and image.digest in marked:
                kind = Kind.ATTESTATION  # its index entry says so, whatever its layers look like
            kinds[image.digest] = kind
            notes[image.digest] = parsed.note
            for child in parsed.references:
                if child.digest in by_digest:
                    edges[image.digest].append((child.digest, Reason.LISTED_BY_KEPT_INDEX))
            subject = parsed.subject
        else:
            kind_or_none = metadata_kind(image, image.digest in marked)
            kinds[image.digest] = kind_or_none or Kind.UNCLASSIFIED
            notes[image.digest] = "judged from the listing" if kind_or_none else "not read"
            subject = image.subject
        if subject is not None:
            link(subject, image.digest, Reason.SUBJECT_KEPT)
        for named in accessories.get(image.digest, ()):
            link(named, image.digest, Reason.ACCESSORY_OF_KEPT)

    decisions: dict[str, Decision] = {}

    def accessory(digest: str, subject: str = "") -> str:
        """The accessory tag of `digest` naming `subject`, else its first one, else ""."""
        named = accessories.get(digest)
        return (named.get(subject) or next(iter(named.values()))) if named else ""

    def keep(digest: str, reason: Reason, cause: str, live: bool) -> None:
        image = by_digest[digest]
        decisions[digest] = Decision(
            digest,
            kinds[digest],
            Verdict.KEEP,
            reason,
            cause,
            image.size,
            live,
            expired.get(digest, ""),
            accessory(digest, cause),
        )

    def mark(starts: Iterable[str], live: bool) -> None:
        queue = deque(starts)
        while queue:
            parent = queue.popleft()
            for child, reason in edges.get(parent, ()):
                if child not in decisions:
                    keep(child, reason, parent, live)
                    queue.append(child)

    roots: list[str] = []
    for digest, image in by_digest.items():
        if digest in held:
            keep(digest, Reason.TAG_IN_USE, held[digest], live=True)
            roots.append(digest)
            continue
        tags = _ordinary(image) if digest in accessories else image.tags
        if rule_tags is not None and len(tags) > 1:
            tags = tuple(sorted(tags, key=rule_tags))  # stable: unselected first, in their order
        root = _root(image, () if digest in expired else tags, pins, policy, now)
        if root is not None:
            keep(digest, *root, live=True)
            roots.append(digest)
    mark(roots, live=True)

    scope_kinds = SCOPE_KINDS[policy.scope]
    pending: list[str] = []
    not_read: list[str] = []
    for digest, image in by_digest.items():
        if digest in decisions:
            continue
        kind = kinds[digest]
        if digest in unreadable:
            keep(digest, Reason.UNREADABLE, unreadable[digest], live=False)
        elif digest not in manifests and metadata_kind(image, digest in marked) is None:
            if not provisional:
                not_read.append(digest)  # decided below, unless something kept lists it
            continue  # only its bytes can tell: read them before deciding
        elif kind is Kind.UNKNOWN:
            keep(digest, Reason.UNKNOWN_KIND, notes[digest], live=False)
        elif kind not in scope_kinds:
            keep(digest, Reason.OUT_OF_SCOPE, f"{kind} not in scope {policy.scope}", live=False)
        else:
            continue
        pending.append(digest)
    mark(pending, live=False)
    # Bytes not read because the provisional plan kept it (an out-of-scope index lists it, say):
    # the mark above gave it that reason; only a manifest nothing reaches is kept as not read.
    unread = [digest for digest in not_read if digest not in decisions]
    for digest in unread:
        keep(digest, Reason.UNREADABLE, "content not read", live=False)
    mark(unread, live=False)

    while True:
        candidates = [d for d in by_digest if d not in decisions]
        waves, children, referrers, cyclic = _order(candidates, edges)
        if not cyclic:
            break
        # Content addressing makes real cycles impossible; forged metadata could still claim one.
        for digest in cyclic:
            keep(digest, Reason.REFERENCE_CYCLE, "", live=False)
        mark(cyclic, live=False)

    deleted_parent = {child: parent for parent, kids in children.items() for child in kids}
    wave_of = {digest: number for number, wave in enumerate(waves) for digest in wave}
    deleted_subject = {
        ref: subject
        for subject, refs in referrers.items()
        for ref in refs
        if wave_of[subject] < wave_of[ref]  # not on a cycle, whose own edges were broken
    }
    causes: dict[str, str] = {}
    for wave in waves:
        for digest in wave:
            rule = expired.get(digest, "")
            reason = Reason.EXPIRED if rule else Reason.UNREACHABLE
            tied = accessories.get(digest)
            missing = absent.get(digest, ())
            if rule:
                cause = rule
            elif digest in deleted_parent:
                cause = f"listed only by {deleted_parent[digest]}, deleted first"
            elif tied:
                subject = next(iter(tied))
                gone = "not in the repository" if subject in missing else "deleted first"
                cause = f"accessory of {subject}, {gone}"
            elif digest in deleted_subject:
                cause = f"refers to {deleted_subject[digest]}, deleted first"
            elif missing:
                cause = f"{notes[digest]}; subject {missing[0]} not in the repository"
            else:
                cause = notes[digest]
            # The children of one index share a cause: one copy of it (a run holds every
            # planned deletion's decision until the sweep).
            cause = causes.setdefault(cause, cause)
            decisions[digest] = Decision(
                digest,
                kinds[digest],
                Verdict.DELETE,
                reason,
                cause,
                by_digest[digest].size,
                live=False,
                expired_by=rule,
                accessory=accessory(digest),
            )
    absent_subjects = {
        digest: tuple(absent[digest]) for wave in waves for digest in wave if digest in absent
    }
    return Plan(repository, decisions, waves, children, referrers, absent_subjects)


def _root(
    image: Image, tags: Sequence[str], pins: Mapping[str, Pin], policy: Policy, now: datetime
) -> tuple[Reason, str] | None:
    """What makes `image` live on its own, if anything; `tags` are those of its tags that count
    (not accessory tags where accessories hold, none for an image retention expired)."""
    if tags:
        return Reason.TAGGED, tags[0]
    if image.digest in pins:
        return Reason.PINNED, pins[image.digest].source
    since = image.young_since  # the push, or a later restore from archive
    if since is None or since > now - policy.min_age:
        # No push time means we cannot prove it is old: keep.
        when = since.isoformat() if since else "unknown push time"
        return Reason.YOUNG, when
    if image.last_pulled is not None and policy.pulled_within_window(image.last_pulled, now):
        return Reason.PULLED, image.last_pulled.isoformat()
    if image.archived:
        return Reason.ARCHIVED, ""
    return None


def _ordinary(image: Image) -> tuple[str, ...]:
    """The tags that are not accessory tags: those make a manifest a root (a manifest's tag
    naming its own digest is an ordinary tag: model.accessory_of)."""
    return tuple(tag for tag in image.tags if accessory_of(tag, image.digest) is None)


def _accessories(images: Mapping[str, Image]) -> dict[str, dict[str, str]]:
    """Tag-scheme accessory -> {subject: the tag naming it}, in tag order.

    Empty unless some subject is in the repository and is not an accessory itself: a repository
    whose accessories all name digests it lacks keeps subjects elsewhere (module docstring).
    """
    found: dict[str, dict[str, str]] = {}
    for digest, image in images.items():
        for tag in image.tags:
            subject = accessory_of(tag, digest)
            if subject is not None:
                found.setdefault(digest, {}).setdefault(subject, tag)
    holds_subjects = any(
        subject in images and subject not in found for named in found.values() for subject in named
    )
    return found if holds_subjects else {}


def _marked_attestations(manifests: Mapping[str, Manifest]) -> set[str]:
    marked: set[str] = set()
    for parsed in manifests.values():
        if parsed.kind is Kind.INDEX:
            marked.update(attestation_entries(parsed))
    return marked


# Edges from a manifest to what describes it: ordered after it, and kept with it.
_DESCRIBES = frozenset({Reason.SUBJECT_KEPT, Reason.ACCESSORY_OF_KEPT})


def _order(
    candidates: Sequence[str], edges: Mapping[str, list[tuple[str, Reason]]]
) -> tuple[
    tuple[tuple[str, ...], ...],
    dict[str, tuple[str, ...]],
    dict[str, tuple[str, ...]],
    list[str],
]:
    """Waves of candidates such that every index precedes the children it lists and every subject
    the referrers that describe it.

    An index goes before its children because ECR refuses to delete a listed child; a subject
    before its referrers so that a subject kept at the last moment keeps them too (deleting a
    referrer first would lose the signature of what stays). Returns the waves, each candidate
    index's candidate children, each candidate subject's candidate referrers, and the
    candidates on a cycle.
    """
    members = set(candidates)
    children: dict[str, tuple[str, ...]] = {}
    referrers: dict[str, tuple[str, ...]] = {}
    for parent in candidates:
        listed = edges.get(parent)
        if not listed:
            continue  # most candidates list nothing: no tuple, no entry
        kids = tuple(
            c for c, reason in listed if reason is Reason.LISTED_BY_KEPT_INDEX and c in members
        )
        if kids:
            children[parent] = kids
        refs = tuple(c for c, reason in listed if reason in _DESCRIBES and c in members)
        if refs:
            referrers[parent] = refs
    waves, cyclic = _waves(candidates, (children, referrers))
    if cyclic:
        # A referrer that also lists its subject, an accessory naming an accessory of its own
        # (a chain that comes back): ECR's rule, index before child, wins over subject before
        # referrer, on the cycle's own edges only; the rest of the repository keeps both orders.
        # Only a cycle of listings is kept.
        ordering = _without_cycle_edges(candidates, children, referrers)
        waves, cyclic = _waves(candidates, (children, ordering))
    return waves, children, referrers, cyclic


def _without_cycle_edges(
    candidates: Sequence[str],
    children: Mapping[str, tuple[str, ...]],
    referrers: Mapping[str, tuple[str, ...]],
) -> dict[str, tuple[str, ...]]:
    """`referrers` without its edges that lie on a cycle of the graph of both orders: those whose
    two ends are in one strongly connected component. Deterministic (components do not depend on
    the order of the walk), and no other edge is dropped."""
    component = _components(candidates, (children, referrers))
    kept: dict[str, tuple[str, ...]] = {}
    for subject, refs in referrers.items():
        left = tuple(r for r in refs if component[r] != component[subject])
        if left:
            kept[subject] = left
    return kept


def _components(
    candidates: Sequence[str], orders: Sequence[Mapping[str, tuple[str, ...]]]
) -> dict[str, int]:
    """Each candidate's strongly connected component under `orders` (Tarjan's, iterative)."""
    after: dict[str, list[str]] = defaultdict(list)
    for source in orders:
        for parent, kids in source.items():
            after[parent].extend(kids)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = 0
    for start in candidates:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            following = after.get(node, [])
            if position < len(following):
                work.append((node, position + 1))
                nxt = following[position]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                found += 1
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = found
                    if member == node:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return component


def _waves(
    candidates: Sequence[str], orders: Sequence[Mapping[str, tuple[str, ...]]]
) -> tuple[tuple[tuple[str, ...], ...], list[str]]:
    """Topological waves of `candidates` under `orders` (each: digest -> digests after it), and
    the candidates on a cycle."""
    after: dict[str, list[str]] = defaultdict(list)
    for source in orders:
        for parent, kids in source.items():
            after[parent].extend(kids)
    indegree = dict.fromkeys(candidates, 0)
    for following_ones in after.values():
        for child in following_ones:
            indegree[child] += 1
    wave = sorted(d for d, n in indegree.items() if n == 0)
    waves: list[tuple[str, ...]] = []
    while wave:
        waves.append(tuple(wave))
        following: set[str] = set()
        for parent in wave:
            for child in after.get(parent, ()):
                indegree[child] -= 1
                if indegree[child] == 0:
                    following.add(child)
        wave = sorted(following)
    if sum(map(len, waves)) == len(candidates):
        return tuple(waves), []  # the usual case: every candidate has a wave
    ordered = {d for w in waves for d in w}
    return tuple(waves), [d for d in candidates if d not in ordered]
