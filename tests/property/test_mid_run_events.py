"""The orchestration against a registry in memory (harness.memory), with the registry changing
while the run deletes: a tag added to a planned manifest, a subject pushed for a dangling
referrer, a new tagged index listing a planned child. After each, the promise holds: nothing live
at the end was deleted, no surviving index lost a child, and what a kept manifest's referrers
describe stayed with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import event as hypothesis_event
from hypothesis import given, note, settings
from hypothesis import strategies as st

from harness import oci
from harness.memory import InMemoryRegistry
from sweeper.run import RunOptions, Sweeper
from sweeper.settings import Settings

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=30)
REPO = "app"
EVENTS = ("tag a planned manifest", "push a missing subject", "list a planned child")
# When: as the batch is re-read (the sweep sees it), or between that and the delete call.
MOMENTS = ("re-read", "delete")


@dataclass
class Estate:
    registry: InMemoryRegistry
    builds: list[dict[str, str]] = field(default_factory=list)  # index, image, attestation
    signatures: dict[str, str] = field(default_factory=dict)  # signature -> subject
    missing: dict[str, bytes] = field(default_factory=dict)  # subject digest -> its bytes


def build_estate(draw: st.DrawFn) -> Estate:
    """Several buildx builds of one tag (each moves `latest`), some signed with a cosign
    referrer, and signatures whose subject was never pushed."""
    registry = InMemoryRegistry()
    estate = Estate(registry)
    for n in range(draw(st.integers(min_value=2, max_value=5))):
        image = oci.image_manifest(f"image {n}")
        attestation = oci.artifact_attestation(image, seed=n)
        index = oci.buildx_index({"linux/amd64": image}, {"linux/amd64": attestation})
        registry.put(REPO, image.bytes, pushed_at=OLD)
        registry.put(REPO, attestation.bytes, pushed_at=OLD)
        registry.put(REPO, index.bytes, tags=["latest"], pushed_at=OLD + timedelta(hours=n))
        estate.builds.append(
            {"index": index.digest, "image": image.digest, "attestation": attestation.digest}
        )
        for signed in draw(st.lists(st.sampled_from([index, image]), max_size=2, unique=True)):
            signature = oci.cosign_signature(signed, seed=n)
            registry.put(REPO, signature.bytes, pushed_at=OLD)
            estate.signatures[signature.digest] = signed.digest
    for n in range(draw(st.integers(min_value=0, max_value=2))):
        absent = oci.image_manifest(f"never pushed {n}")
        signature = oci.notation_signature(absent, seed=n)
        registry.put(REPO, signature.bytes, pushed_at=OLD)
        estate.signatures[signature.digest] = absent.digest
        estate.missing[absent.digest] = absent.bytes
    return estate


@st.composite
def estates_and_events(draw: st.DrawFn) -> tuple[Estate, str, str, int]:
    estate = build_estate(draw)
    event = draw(st.sampled_from(EVENTS))
    moment = draw(st.sampled_from(MOMENTS))
    return estate, event, moment, draw(st.integers(min_value=0, max_value=99))


def listed_children(registry: InMemoryRegistry, digests: set[str]) -> dict[str, set[str]]:
    stored = registry.repositories_[REPO]
    return {
        d: {entry["digest"] for entry in json.loads(stored[d].text).get("manifests", [])}
        for d in digests
        if d in stored
    }


@settings(max_examples=200, deadline=None)
@given(case=estates_and_events())
def test_the_promise_holds_whatever_changes_while_the_run_deletes(
    case: tuple[Estate, str, str, int],
) -> None:
    estate, event, moment, pick = case
    registry = estate.registry
    before = registry.digests(REPO)
    happened: list[str] = []

    def change(repository: str, digests: Sequence[str]) -> None:
        if happened:
            return
        planned = [d for d in digests if d in registry.digests(REPO)]
        if event == "tag a planned manifest" and planned:
            target = planned[pick % len(planned)]
            registry.tag(REPO, f"hotfix-{pick}", target)
            happened.append(target)
        elif event == "push a missing subject" and estate.missing:
            subject = sorted(estate.missing)[pick % len(estate.missing)]
            registry.put(REPO, estate.missing[subject], pushed_at=OLD)
            happened.append(subject)
        elif event == "list a planned child":
            children = [d for d in planned if any(d == b["image"] for b in estate.builds)]
            if children:
                child = oci.Manifest(
                    registry.repositories_[REPO][children[pick % len(children)]].text.encode(),
                    oci.OCI_MANIFEST,
                )
                newcomer = oci.index([child.descriptor(platform="linux/amd64")])
                registry.put(REPO, newcomer.bytes, tags=[f"v{pick}"], pushed_at=NOW)
                happened.append(child.digest)

    if moment == "re-read":
        registry.on_describe = change
    else:
        registry.on_delete = change
    report = Sweeper(registry, Settings(dry_run=False), NOW, RunOptions()).run()
    hypothesis_event(f"{event} at {moment}: {'happened' if happened else 'no change'}")
    note(f"{event} at {moment}: {happened}; failures {[f.code for f in report.all_failures]}")
    after = registry.digests(REPO)
    stored = registry.repositories_[REPO]

    # Live at the end: tagged, and everything a live manifest lists or is described by.
    live = {d for d, s in stored.items() if s.image.tags}
    frontier = set(live)
    while frontier:
        children = listed_children(registry, frontier)
        reached = {c for kids in children.values() for c in kids}
        reached |= {sig for sig, subject in estate.signatures.items() if subject in frontier}
        frontier = (reached & after) - live
        live |= frontier
    assert live <= after
    # No surviving index lost a child.
    for parent, kids in listed_children(registry, after).items():
        assert kids <= after, f"{parent} lost {kids - after}"
    # A referrer of a surviving manifest survived (a signature is never lost before its subject),
    # but for the window no collector closes: a subject pushed after the read that confirmed it
    # absent, right before the delete call (as a tag added then is lost, and reported).
    late = set(happened) if (event, moment) == ("push a missing subject", "delete") else set()
    for signature, subject in estate.signatures.items():
        if subject in after and signature in before and subject not in late:
            assert signature in after
    # A tag the re-read saw is kept with its manifest; one lost in the window (added after the
    # last re-read, right before the delete call) is reported, never silent.
    if event == "tag a planned manifest" and happened:
        if moment == "re-read":
            assert happened[0] in after
            assert f"hotfix-{pick}" in registry.repositories_[REPO][happened[0]].image.tags
        elif happened[0] not in after:
            assert "TagLost" in {f.code for f in report.all_failures}
