"""Why one manifest is kept or deletable: the chain of decisions back to what settles it. Pure.

Every decision names its cause. For a manifest kept because something kept refers to it
(`listed-by-kept-index`, `subject-kept`, `accessory-of-kept`, `parent-not-deleted`) the cause is
that manifest's digest, so following causes leads back to a decision that stands on its own: a
root (tag, pin, grace period, pull, archive) or a manifest kept for what it is. A deletable
manifest listed by a deletable index follows that index instead (the plan deletes the index
first), and a deletable accessory its subject.

A manifest a retention rule expired but something still holds says so first: `sha256:abc (index,
expired by rule 1: keep 25 CI builds, held) <- pinned (ecs:...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

from .model import Decision, Reason, Verdict, accessory_subject

# Kept because of another manifest, named by the cause; and how that link reads.
FOLLOWED: Mapping[Reason, str] = {
    Reason.LISTED_BY_KEPT_INDEX: "listed by",
    Reason.SUBJECT_KEPT: "refers to",
    Reason.ACCESSORY_OF_KEPT: "of",
    Reason.PARENT_NOT_DELETED: "listed by",
}


def path(
    decisions: Mapping[str, Decision],
    digest: str,
    children: Mapping[str, tuple[str, ...]] | None = None,
) -> list[Decision]:
    """The decision on `digest`, then each decision its cause leads to, ending at one that stands
    on its own. `children` is the plan's candidate index -> candidate children map, which leads a
    deletion to the deletable index that lists it; a deletable accessory leads to its subject."""
    deleted_parent = {child: parent for parent, kids in (children or {}).items() for child in kids}
    chain = [decisions[digest]]
    seen = {digest}
    while True:
        last = chain[-1]
        if last.verdict is Verdict.KEEP and last.reason in FOLLOWED:
            following = last.cause
        elif last.verdict is Verdict.DELETE:
            following = deleted_parent.get(last.digest) or _subject(last)
        else:
            break
        if following not in decisions or following in seen:
            break
        chain.append(decisions[following])
        seen.add(following)
    return chain


def _subject(decision: Decision) -> str:
    return accessory_subject(decision.accessory) or ""


def label(decision: Decision) -> str:
    """What a manifest is, for an explanation: its kind, or which accessory it is."""
    if not decision.accessory:
        return decision.kind.value
    _, dot, suffix = decision.accessory.partition(".")
    return f"accessory .{suffix}" if dot else "accessory referrers index"


def short(digest: str) -> str:
    """`sha256:` and the first 12 hex digits, as `docker images` shows them."""
    return digest[: len("sha256:") + 12] if digest.startswith("sha256:") else digest


def settled_by(decision: Decision) -> str:
    """What settles a decision that stands on its own, in a few words."""
    cause = decision.cause
    match decision.reason:
        case Reason.TAGGED:
            return f"tagged {cause!r}"
        case Reason.PINNED:
            return f"pinned ({cause})"
        case Reason.YOUNG:
            return f"within the grace period (pushed {cause})"
        case Reason.PULLED:
            return f"recently pulled ({cause})"
        case Reason.ARCHIVED:
            return "archived"
        case Reason.UNKNOWN_KIND:
            return f"unknown kind, never deleted ({cause})"
        case Reason.UNREACHABLE:
            return "unreachable: no tag, pin, grace period, pull or kept manifest reaches it"
        case Reason.EXPIRED:
            return (
                f"expired by {cause}, and no other tag, pin, grace period, pull or kept "
                "manifest holds it"
            )
        case _:
            return f"{decision.reason.value} ({cause})" if cause else decision.reason.value


def render(chain: list[Decision]) -> str:
    """`sha256:abc (attestation) <- listed by index sha256:def <- tagged 'latest'`;
    `sha256:ab1 (accessory .sig) <- of index sha256:9f2 <- tagged 'v1'`."""
    first = chain[0]
    about = label(first)
    if first.verdict is Verdict.KEEP and first.expired_by:
        about = f"{about}, expired by {first.expired_by}, held"
    parts = [f"{short(first.digest)} ({about})"]
    for here, there in pairwise(chain):
        if here.verdict is Verdict.KEEP:
            parts.append(f"{FOLLOWED[here.reason]} {there.kind.value} {short(there.digest)}")
        elif there.digest == _subject(here):
            parts.append(f"of {there.kind.value} {short(there.digest)}, deleted first")
        else:
            parts.append(f"listed only by {there.kind.value} {short(there.digest)}, deleted first")
    last = chain[-1]
    if last.verdict is Verdict.KEEP and last.reason in FOLLOWED:
        # Its cause is not a manifest of this repository (should not happen): say what it is.
        parts.append(f"{FOLLOWED[last.reason]} {short(last.cause)}")
    elif last.verdict is Verdict.DELETE and _subject(last) not in {"", *(d.digest for d in chain)}:
        # A deletable accessory ends the chain only when its subject has no decision: not listed.
        parts.append(f"of {short(_subject(last))}, which is not in the repository")
    else:
        parts.append(settled_by(last))
    return " <- ".join(parts)
