"""Subjects in another repository: what one repository's listing cannot prove absent.

A referrer or tag-scheme accessory whose subject its own repository lacks is a candidate
(plan.Plan.absent_subjects). But signatures are often kept apart from what they sign (cosign's
COSIGN_REPOSITORY), and a repository may hold both signatures of images elsewhere and images
signed in place. So the run records which digests every repository it lists holds, and after
planning, before anything is deleted (and in a dry run the same way), keeps each candidate whose
subject is in another repository of the registry, with what it lists and what describes it.

Only the repositories the run lists count: one it does not select (or cannot read under the
function's IAM grants), one the time budget leaves for another night, and other registries
(accounts, regions) are not looked into (docs/design.md, "Accessories"). A selected repository
whose listing failed (an error, not the time budget) could hold any subject: then every such
candidate of the run is kept, as the evidence is incomplete.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

from .. import freed
from ..model import Reason, Verdict
from .decision_log import log_decisions
from .state import RepositoryRun


def _key(digest: str) -> int:
    # 64 bits of the digest: a set of ints holds a registry of a million manifests in tens of
    # MiB. Two digests sharing them would only keep a candidate that could have gone.
    return int(digest[7:23], 16) if digest.startswith("sha256:") and len(digest) >= 23 else 0


class Listings:
    """What the run's repositories hold, registry-wide; shared by the planning threads."""

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._missing: list[str] = []
        self._lock = threading.Lock()

    def listed(self, digests: Iterable[str]) -> None:
        keys = {_key(d) for d in digests}
        with self._lock:
            self._held |= keys

    def not_listed(self, repository: str) -> None:
        with self._lock:
            self._missing.append(repository)

    @property
    def missing(self) -> list[str]:
        return sorted(self._missing)

    def holds(self, digest: str) -> bool:
        return _key(digest) in self._held


def keep_subjects_elsewhere(repos: Iterable[RepositoryRun], listings: Listings) -> None:
    """Keep every planned candidate whose absent subject is held by another listed repository
    (or whose repositories were not all listed), with what it lists and what describes it."""
    missing = listings.missing
    for repo in repos:
        held: dict[str, tuple[Reason, str]] = {}
        for digest, subjects in repo.absent_subjects.items():
            found = next((s for s in subjects if listings.holds(s)), None)
            if found is not None:
                held[digest] = (Reason.SUBJECT_KEPT, found)
            elif missing:
                why = f"subject {subjects[0]} may be in {missing[0]}, not listed"
                held[digest] = (Reason.UNREADABLE, why)
        if held:
            _keep(repo, held)


def _keep(repo: RepositoryRun, held: dict[str, tuple[Reason, str]]) -> None:
    kept: dict[str, tuple[Reason, str]] = {}
    stack = [(digest, reason, cause) for digest, (reason, cause) in sorted(held.items())]
    while stack:
        current, reason, cause = stack.pop()
        if current in kept:
            continue
        kept[current] = (reason, cause)
        stack.extend(
            (child, Reason.LISTED_BY_KEPT_INDEX, current)
            for child in repo.children.get(current, ())
        )
        stack.extend((ref, Reason.SUBJECT_KEPT, current) for ref in repo.referrers.get(current, ()))
    decisions = []
    for digest, (reason, cause) in kept.items():
        decision = replace(repo.decisions[digest], verdict=Verdict.KEEP, reason=reason, cause=cause)
        repo.decisions[digest] = decision
        decisions.append(decision)
        repo.kept[reason.value] += 1
        repo.absent_subjects.pop(digest, None)
    repo.waves = tuple(
        left for left in (tuple(d for d in wave if d not in kept) for wave in repo.waves) if left
    )
    log_decisions(repo.repository, decisions)


class SharedBlobs:
    """Layers shared between the registry's repositories (ECR's BLOB_MOUNTING): which blobs
    each repository's manifests use, so that a blob counts as freed only where no other
    repository uses it (bytes freed, never what is deleted).

    `repositories` are all of the registry's; the figure of a repository is known only once every
    other one was read in full (`read`). `reason`, when set, says why nothing can be known (the
    setting could not be read).
    """

    def __init__(self, repositories: Iterable[str], reason: str = "") -> None:
        self.reason = reason
        self._unread = set(repositories)
        self._held: dict[int, str] = {}  # blob -> the one repository using it, "" for several
        self._lock = threading.Lock()

    def read(self, repository: str, blobs: Iterable[str]) -> None:
        """Every blob `repository`'s manifests use (all of them read)."""
        keys = {_key(b) for b in blobs}
        with self._lock:
            self._unread.discard(repository)
            for key in keys:
                holder = self._held.setdefault(key, repository)
                if holder != repository:
                    self._held[key] = ""

    def unknown(self, repository: str) -> str:
        """Why `repository`'s figure cannot be known, or ""."""
        if self.reason:
            return self.reason
        unread = sorted(self._unread - {repository})
        if not unread:
            return ""
        more = f" and {len(unread) - 1} more" if len(unread) > 1 else ""
        return (
            "blob mounting is on: layers may be shared with repositories not read in full "
            f"({unread[0]}{more})"
        )

    def held_elsewhere(self, repository: str, blobs: Iterable[str]) -> set[str]:
        return {b for b in blobs if self._held.get(_key(b), repository) != repository}


def settle_shared_blobs(repos: Iterable[RepositoryRun], shared: SharedBlobs | None) -> None:
    """Each repository's bytes-freed ledger, counting only blobs no other repository uses."""
    if shared is None:
        return
    for repo in repos:
        found, repo.freed_candidates = repo.freed_candidates, None
        if not repo.waves or repo.ledger.unknown:
            continue
        why = shared.unknown(repo.repository)
        if why:
            repo.ledger = freed.unknown(why)
        elif found is not None:
            repo.ledger = freed.from_candidates(
                found, shared.held_elsewhere(repo.repository, found)
            )
