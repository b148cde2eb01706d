"""A registry in memory, behind `sweeper.ports.Registry`: the orchestration without moto.

It keeps ECR's rules that matter to a collector: a manifest an index lists cannot be deleted
(`ImageReferencedByManifestList`), deleting by digest removes every tag (and says so), an
archived manifest is listed with `archived`, ids past 100 per call are refused, and a read of a
missing manifest fails per item. `on_describe` and `on_delete` let a test change the registry at
the moment another client would (a tag added after the scan, a subject pushed, an index listing a
planned child). Manifests are stored as their exact text; digests are the sha256 of it.

A read is a pull, as in ECR: with a `pull_clock`, every manifest `manifests` returns gets that
time as its pull time unless `caller` is among `exclusions` (tests/harness/ecr.py, correction 12).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sweeper.model import Image
from sweeper.ports import BATCH_SIZE, Deleted, Fetched, RegistryError, Stop

__all__ = ["InMemoryRegistry", "Stored"]


@dataclass
class Stored:
    text: str
    image: Image


@dataclass
class InMemoryRegistry:
    """`ports.Registry` over dictionaries: repository -> digest -> what is stored."""

    repositories_: dict[str, dict[str, Stored]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    on_describe: Callable[[str, Sequence[str]], None] | None = None
    on_delete: Callable[[str, Sequence[str]], None] | None = None
    calls: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    caller: str = "arn:aws:iam::123456789012:role/ecr-sweeper"
    exclusions: set[str] = field(default_factory=set)
    pull_clock: Callable[[], datetime] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- building it -----------------------------------------------------------------------

    def put(
        self,
        repository: str,
        data: bytes,
        *,
        tags: Sequence[str] = (),
        pushed_at: datetime,
    ) -> str:
        """Store a manifest's exact bytes (as pushed) and return its digest."""
        text = data.decode()
        document = json.loads(text)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        media_type = document.get("mediaType")
        subject = document.get("subject")
        image = Image(
            digest,
            tuple(tags),
            pushed_at,
            size=len(text),
            media_type=media_type if isinstance(media_type, str) else None,
            subject=subject.get("digest") if isinstance(subject, dict) else None,
        )
        with self._lock:
            repo = self.repositories_.setdefault(repository, {})
            for stored in repo.values():  # a tag moves: the old manifest stays, untagged
                kept = tuple(t for t in stored.image.tags if t not in tags)
                stored.image = replace(stored.image, tags=kept)
            repo[digest] = Stored(text, image)
        return digest

    def tag(self, repository: str, tag: str, digest: str) -> None:
        with self._lock:
            for stored in self.repositories_[repository].values():
                stored.image = replace(
                    stored.image, tags=tuple(t for t in stored.image.tags if t != tag)
                )
            stored = self.repositories_[repository][digest]
            stored.image = replace(stored.image, tags=(*stored.image.tags, tag))

    def digests(self, repository: str) -> set[str]:
        with self._lock:
            return set(self.repositories_.get(repository, {}))

    # --- ports.Registry --------------------------------------------------------------------

    def repositories(self) -> list[str]:
        return list(self.repository_arns())

    def repository_arns(self) -> dict[str, str]:
        with self._lock:
            return {
                name: f"arn:aws:ecr:us-east-1:0:repository/{name}" for name in self.repositories_
            }

    def repository_tags(self, arn: str) -> dict[str, str]:
        return {}

    def images(self, repository: str, stop: Stop | None = None) -> list[Image]:
        with self._lock:
            self.calls.append(("images", repository, ()))
            return [stored.image for stored in self._repo(repository).values()]

    def manifests(
        self, repository: str, digests: Sequence[str], stop: Stop | None = None
    ) -> Fetched:
        fetched = Fetched()
        with self._lock:
            self.calls.append(("manifests", repository, tuple(digests)))
            repo = self._repo(repository)
            pulled = (
                self.pull_clock()
                if self.pull_clock and self.caller not in self.exclusions
                else None
            )
            for digest in digests:
                if digest in repo:
                    fetched.content[digest] = repo[digest].text
                    if pulled is not None:
                        repo[digest].image = replace(repo[digest].image, last_pulled=pulled)
                else:
                    fetched.failures[digest] = ("ImageNotFound", "Requested image not found")
        return fetched

    def describe(self, repository: str, digests: Sequence[str]) -> dict[str, Image]:
        self._check(digests)
        if self.on_describe is not None:
            self.on_describe(repository, digests)
        with self._lock:
            self.calls.append(("describe", repository, tuple(digests)))
            repo = self._repo(repository)
            return {d: repo[d].image for d in digests if d in repo}

    def lifecycle_policy(self, repository: str) -> str | None:
        return self.policies.get(repository)

    def blob_mounting(self) -> bool:
        return False  # each repository stores its own layers

    def delete(self, repository: str, digests: Sequence[str]) -> Deleted:
        self._check(digests)
        if self.on_delete is not None:
            self.on_delete(repository, digests)
        outcome = Deleted()
        with self._lock:
            self.calls.append(("delete", repository, tuple(digests)))
            repo = self._repo(repository)
            listed_by: dict[str, str] = {}
            for parent, stored in repo.items():
                for entry in json.loads(stored.text).get("manifests", []):
                    listed_by.setdefault(entry["digest"], parent)
            for digest in digests:
                if digest not in repo:
                    outcome.already_gone.add(digest)
                elif digest in listed_by:
                    outcome.failures[digest] = (
                        "ImageReferencedByManifestList",
                        f"referenced by {listed_by[digest]}",
                    )
                else:
                    tags = list(repo.pop(digest).image.tags)
                    outcome.deleted.add(digest)
                    if tags:
                        outcome.tags_removed[digest] = tags
        return outcome

    def pull_time_exclusions(self) -> list[str]:
        with self._lock:
            return sorted(self.exclusions)

    def register_pull_time_exclusion(self, principal: str) -> None:
        with self._lock:
            self.exclusions.add(principal)

    def _repo(self, repository: str) -> dict[str, Stored]:
        if repository not in self.repositories_:
            raise RegistryError("DescribeImages", "RepositoryNotFoundException", repository)
        return self.repositories_[repository]

    @staticmethod
    def _check(digests: Sequence[str]) -> None:
        if len(digests) > BATCH_SIZE:
            raise RegistryError("DescribeImages", "InvalidParameterException", "too many ids")
