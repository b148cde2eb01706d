"""Registries of realistic shape at scale: a deterministic generator and a bulk loader.

:func:`realistic_registry` describes a registry the way buildx, cosign, Helm and a few habits of
real teams leave it: repositories of very different sizes, a ``latest`` tag that moves on every
build (leaving the old tree behind, untagged), release tags that stay, single and multi-platform
builds, both buildx attestation forms (legacy in-toto manifests and OCI-artifact attestations),
SBOMs, signatures and SBOM artifacts as OCI referrers, rebuilds that share identical platform
images (one child listed by two indexes), Docker manifest lists, indexes deleted by another tool
(children left without a parent), Helm charts, BuildKit caches, digest pins, recent pulls,
archived manifests and young builds still inside a grace period. The same arguments always give
the same registry, byte for byte.

:func:`load` stores such a description straight into moto's backend through the harness's own
store and tag operations (the state ``FakeRegistry.seed`` reaches), with none of ``seed``'s
per-image lookups: about 40 µs per manifest, so 100,000 manifests load in a few seconds.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from moto.ecr.models import Repository, ecr_backends

from . import ecr, oci
from .ecr import FakeRegistry
from .generated import Kind, Model, Node

__all__ = ["Push", "SyntheticRegistry", "later_builds", "load", "model", "realistic_registry"]

PLATFORMS: tuple[tuple[str, ...], ...] = (
    ("linux/amd64",),
    ("linux/amd64", "linux/arm64"),
    ("linux/amd64", "linux/arm64", "linux/arm/v7"),
)


@dataclass(frozen=True, slots=True)
class Push:
    """One manifest as stored: pushed in list order, so a tag given again later moves."""

    repository: str
    manifest: oci.Manifest
    pushed_at: datetime
    tags: tuple[str, ...] = ()
    last_pulled: datetime | None = None
    archived: bool = False
    kind: Kind = "unknown"  # what the generator made (for the oracle: see `model`)


@dataclass
class SyntheticRegistry:
    """What to store, and the pins a deployment would pass (image URIs with a digest)."""

    repositories: list[str]
    pushes: list[Push]
    pins: list[str] = field(default_factory=list)
    # Each repository's habits (platforms, attestation form, ...), for `later_builds`.
    habits: dict[str, _Repo] = field(default_factory=dict, repr=False)

    @property
    def manifests(self) -> int:
        return len({(p.repository, p.manifest.digest) for p in self.pushes})


def load(registry: FakeRegistry, pushes: Iterable[Push]) -> int:
    """Store ``pushes`` in the (entered) registry's backend; returns how many were stored.

    Repositories are created as needed. As with ``FakeRegistry.seed``, an index whose children
    are not stored yet is refused (``ValueError``).
    """
    backend = ecr_backends[registry.account_id][registry.region]
    repositories: dict[str, Repository] = {}
    count = 0
    for push in pushes:
        repo = repositories.get(push.repository)
        if repo is None:
            repo = backend.repositories.get(push.repository) or backend.create_repository(
                repository_name=push.repository,
                registry_id=None,
                encryption_config=None,  # type: ignore[arg-type]
                image_scan_config=None,
                image_tag_mutability="MUTABLE",
                tags=[],
            )
            repositories[push.repository] = repo
        try:
            image = ecr._store(
                backend,
                repo,
                push.manifest.text,
                tag=None,
                media_type=push.manifest.media_type,
                digest=None,
                require_json=False,
            )
        except ecr.ReferencedImagesNotFoundException as err:
            raise ValueError(err.message) from err
        state = ecr._state(repo)
        for tag in push.tags:
            ecr._tag(backend, repo, state, image, tag)
        meta = ecr._meta(image)
        meta.pushed_at = push.pushed_at
        meta.last_pulled = push.last_pulled
        if push.archived:
            meta.archived, meta.archived_at = True, push.pushed_at + timedelta(days=1)
        count += 1
    return count


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def model(
    estate: SyntheticRegistry, now: datetime, *, grace: timedelta, pulled_within: timedelta
) -> Model:
    """The registry as harness.generated's Oracle reads it: what each push is (the generator
    knows), what it lists and refers to (its JSON), its tags, ages and pulls judged at `now`
    against `grace` and `pulled_within`. Nothing of `sweeper` is used."""
    found: Model = Model(pins=list(estate.pins))
    found.pinned = {d for pin in estate.pins for d in _DIGEST.findall(pin)}
    for push in estate.pushes:
        doc = json.loads(push.manifest.text)
        subject = doc.get("subject") or {}
        pulled = None
        if push.last_pulled is not None:
            pulled = "recently" if push.last_pulled > now - pulled_within else "long ago"
        found.nodes.append(
            Node(
                push.repository,
                push.kind,
                push.manifest,
                push.kind,
                children=tuple(entry["digest"] for entry in doc.get("manifests") or ()),
                subject=subject.get("digest"),
                # an unknown manifest keeps whatever it names (docs/design.md)
                mentions=tuple(_DIGEST.findall(push.manifest.text))
                if push.kind == "unknown"
                else (),
                tags=push.tags,
                young=push.pushed_at > now - grace,
                pulled=pulled,  # type: ignore[arg-type]
                archived=push.archived,
            )
        )
    return found


@dataclass
class _Repo:
    """One repository's habits, drawn once, and what its history has produced so far."""

    name: str
    rng: random.Random
    platforms: tuple[str, ...]
    attestation: str  # legacy | artifact | switched (legacy, then artifact) | none
    sbom: bool
    signs: bool
    docker: bool  # old-style Docker builds: plain manifests and manifest lists, no attestations
    pushes: list[Push] = field(default_factory=list)
    previous: dict[str, oci.Manifest] = field(default_factory=dict)  # last build's platform images
    releases: int = 0
    builds: int = 0  # builds so far: a later build's number, so its bytes are new


def realistic_registry(
    repositories: int,
    builds: int,
    *,
    now: datetime,
    seed: int = 0,
    history_days: int = 180,
    grace: timedelta = timedelta(hours=72),
) -> SyntheticRegistry:
    """A registry of ``repositories`` with about ``builds`` builds each on average.

    Each build stores about four manifests, so ``repositories * builds * 4`` is the rough size.
    Sizes are skewed as in real registries: most repositories are small, a few hold thousands of
    manifests (more than one listing page). Pushes span ``history_days`` before ``now``; the
    newest build of an active repository lands inside ``grace``.
    """
    result = SyntheticRegistry(repositories=[], pushes=[])
    for number in range(repositories):
        rng = random.Random(f"{seed}:{number}")
        repo = _Repo(
            name=f"team-{number % 40:02d}/service-{number:05d}",
            rng=rng,
            platforms=rng.choices(PLATFORMS, weights=(60, 30, 10))[0],
            attestation=rng.choices(("legacy", "artifact", "switched", "none"), (55, 25, 10, 10))[
                0
            ],
            sbom=rng.random() < 0.3,
            signs=rng.random() < 0.25,
            docker=rng.random() < 0.08,
        )
        result.repositories.append(repo.name)
        draw = rng.random()
        scale = 12.0 if draw < 0.02 else 2.0 if draw < 0.2 else 0.6
        count = max(1, round(builds * scale * rng.uniform(0.5, 1.5)))
        span = timedelta(days=history_days)
        times = sorted(now - span * rng.random() for _ in range(count))
        if rng.random() < 0.3:  # an active repository: its newest build is still young
            times[-1] = now - grace * rng.uniform(0.05, 0.9)
        switch_at = now - span / 2
        for number_in_repo, when in enumerate(times):
            if repo.docker:
                _docker_build(repo, number_in_repo, when)
            else:
                form = repo.attestation
                if form == "switched":
                    form = "legacy" if when < switch_at else "artifact"
                _buildx_build(repo, number_in_repo, when, form, now)
        repo.builds = count
        _extras(repo, times[0], now)
        if rng.random() < 0.03:
            old = [p for p in repo.pushes if p.manifest.media_type == oci.OCI_INDEX]
            if old:
                pinned = rng.choice(old[: max(1, len(old) // 2)])
                result.pins.append(
                    f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo.name}@"
                    f"{pinned.manifest.digest}"
                )
        result.pushes.extend(repo.pushes)
        repo.pushes = []
        result.habits[repo.name] = repo
    return result


def later_builds(
    estate: SyntheticRegistry,
    present: Mapping[str, set[str]],
    *,
    now: datetime,
    share: float,
    seed: int = 0,
) -> list[Push]:
    """Builds pushed in the day before `now`, each made as its repository makes them and moving
    a tag that a build of the repository carries (`latest`, a release's), until `share` of the
    `present` manifests (repository -> digests, the registry as it is) are new. The tree a tag
    moves from is left behind, untagged. New builds share no platform image with older ones
    (what an older build shared may be gone), are neither pulled nor archived, and carry a tag
    each (unless, as in `realistic_registry`, another tool deleted the index). Returns the
    pushes, in order; append them to `estate.pushes` so that `model` describes them."""
    rng = random.Random(f"{seed}:later:{len(estate.pushes)}")
    names = sorted(n for n in present if n in estate.habits)
    tags = _build_tags(estate)
    total = sum(len(digests) for digests in present.values())
    pushes: list[Push] = []
    seen = {(p.repository, p.manifest.digest) for p in estate.pushes}
    while len(pushes) < share * total:
        repo = estate.habits[rng.choice(names)]
        tag = rng.choice(sorted(tags.get(repo.name, ())) or ["latest"])
        when = now - timedelta(hours=rng.uniform(1, 20))
        number, repo.builds = repo.builds, repo.builds + 1
        if repo.docker:
            _docker_build(repo, number, when, tags=(tag,))
        else:
            # A repository that switched attestation forms makes the newer one now.
            form = "artifact" if repo.attestation == "switched" else repo.attestation
            _buildx_build(repo, number, when, form, now, tags=(tag,), share=False)
        for push in repo.pushes:
            if (push.repository, push.manifest.digest) not in seen:
                seen.add((push.repository, push.manifest.digest))
                pushes.append(replace(push, last_pulled=None, archived=False))
        repo.pushes = []
    return pushes


def _build_tags(estate: SyntheticRegistry) -> dict[str, set[str]]:
    """repository -> the tags its builds (indexes, images) carry once every push is done."""
    owner: dict[tuple[str, str], Push] = {}
    for push in estate.pushes:
        for tag in push.tags:
            owner[(push.repository, tag)] = push
    found: dict[str, set[str]] = {}
    for (repository, tag), push in owner.items():
        if push.kind in ("index", "image"):
            found.setdefault(repository, set()).add(tag)
    return found


def _push(repo: _Repo, kind: Kind, manifest: oci.Manifest, when: datetime, **kw: object) -> None:
    repo.pushes.append(Push(repo.name, manifest, when, kind=kind, **kw))  # type: ignore[arg-type]


def _tags(repo: _Repo) -> tuple[str, ...]:
    if repo.rng.random() < 0.1:  # a release: its tag stays
        repo.releases += 1
        return ("latest", f"v1.{repo.releases}")
    return ("latest",)


def _buildx_build(
    repo: _Repo,
    number: int,
    when: datetime,
    form: str,
    now: datetime,
    *,
    tags: tuple[str, ...] | None = None,
    share: bool = True,
) -> None:
    """What ``docker buildx build --push`` stores, plus the referrers a pipeline adds. `tags`:
    the index's (default: `latest`, sometimes a release's); `share`: whether it may be an
    identical rebuild of the last build's platform images."""
    rng, bid = repo.rng, f"{repo.name}#{number}"
    # an identical rebuild of the platforms
    shared = share and bool(repo.previous) and rng.random() < 0.15
    images: dict[str, oci.Manifest] = {}
    for platform in repo.platforms:
        if shared:
            images[platform] = repo.previous[platform]
            continue
        base = [oci.layer(f"{repo.name}:base:{platform}:{i}") for i in range(2)]
        image = oci.image_manifest(f"{bid}:{platform}", platform=platform, base_layers=base)
        _push(repo, "image", image, when)
        images[platform] = image
    repo.previous = images
    attestations: dict[str, oci.Manifest] = {}
    if form != "none":
        for platform, image in images.items():
            seed = f"{bid}:{platform}"
            if form == "legacy":
                att = oci.legacy_attestation(image.digest, seed=seed, sbom=repo.sbom)
            else:
                att = oci.artifact_attestation(image, seed=seed, sbom=repo.sbom)
            _push(repo, "attestation", att, when)
            attestations[platform] = att
    if rng.random() < 0.03:
        return  # another tool deleted the index: its children stay behind without a parent
    index = oci.buildx_index(images, attestations)
    pulled = now - timedelta(days=rng.uniform(0, 20)) if rng.random() < 0.04 else None
    _push(
        repo,
        "index",
        index,
        when,
        tags=_tags(repo) if tags is None else tags,
        last_pulled=pulled,
        archived=rng.random() < 0.01,
    )
    if repo.signs:
        _push(repo, "referrer", oci.cosign_signature(index, seed=bid), when)
    if rng.random() < 0.05:
        first = next(iter(images.values()))
        _push(repo, "referrer", oci.sbom_referrer(first, seed=bid), when)


def _docker_build(
    repo: _Repo, number: int, when: datetime, *, tags: tuple[str, ...] | None = None
) -> None:
    """Classic Docker builds: a plain image, or (multi-platform) a manifest list of images."""
    bid = f"{repo.name}#{number}"
    if len(repo.platforms) == 1:
        image = oci.image_manifest(bid, docker=True, platform=repo.platforms[0])
        _push(repo, "image", image, when, tags=_tags(repo) if tags is None else tags)
        return
    entries = []
    for platform in repo.platforms:
        image = oci.image_manifest(f"{bid}:{platform}", docker=True, platform=platform)
        _push(repo, "image", image, when)
        entries.append(image.descriptor(platform=platform))
    _push(
        repo, "index", oci.manifest_list(entries), when, tags=_tags(repo) if tags is None else tags
    )


def _extras(repo: _Repo, first: datetime, now: datetime) -> None:
    """Artifacts that are not images: Helm charts (tagged) and a registry cache (a moving tag)."""
    rng = repo.rng
    if rng.random() < 0.1:
        for version in range(rng.randint(1, 5)):
            chart = oci.helm_chart(repo.name.rsplit("/", 1)[-1], f"0.{version}.0")
            _push(repo, "unknown", chart, _between(rng, first, now), tags=(f"chart-0.{version}.0",))
    if rng.random() < 0.05:
        for n in range(rng.randint(2, 6)):
            cache = oci.buildkit_cache_manifest(f"{repo.name}:cache:{n}")
            _push(repo, "unknown", cache, _between(rng, first, now), tags=("buildcache",))


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + (end - start) * rng.random()
