"""freed_bytes on hand-built manifests: each case is a scenario, named for what it shows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest

from sweeper.freed import Unknown, freed_bytes, ledger
from sweeper.model import Descriptor, Kind, Manifest


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def image(*blobs: tuple[str, int]) -> Manifest:
    return Manifest(Kind.IMAGE, None, blobs=tuple(Descriptor(d(b), size=s) for b, s in blobs))


def index(*children: str) -> Manifest:
    return Manifest(Kind.INDEX, None, references=tuple(Descriptor(d(c)) for c in children))


def unknown(*mentioned: str) -> Manifest:
    # What manifests.parse makes of a Helm chart or cache index: every digest it mentions.
    return Manifest(Kind.UNKNOWN, None, references=tuple(Descriptor(d(m)) for m in mentioned))


@dataclass
class Case:
    manifests: dict[str, Manifest]
    gone: list[str]
    surviving: list[str]
    expected: int | None
    unread: list[str] = field(default_factory=list)  # survivors whose content is unknown


CASES = {
    "base layer shared with a survivor is not freed": Case(
        {
            "old": image(("base", 1000), ("old-app", 30), ("old-cfg", 2)),
            "new": image(("base", 1000), ("new-app", 40), ("new-cfg", 3)),
        },
        gone=["old"],
        surviving=["new"],
        expected=32,
    ),
    "blob shared by two deleted manifests counts once": Case(
        {"a": image(("shared", 500), ("a-cfg", 1)), "b": image(("shared", 500), ("b-cfg", 2))},
        gone=["a", "b"],
        surviving=[],
        expected=503,
    ),
    "nothing deleted frees nothing, even beside unreadable survivors": Case(
        {"a": image(("x", 10))},
        gone=[],
        surviving=["a", "unread"],
        expected=0,
        unread=["unread"],
    ),
    "an unreadable survivor makes the figure unknown": Case(
        {"a": image(("x", 10))},
        gone=["a"],
        surviving=["unread"],
        expected=None,
        unread=["unread"],
    ),
    "an unread deleted manifest makes the figure unknown": Case(
        {},
        gone=["unread"],
        surviving=[],
        expected=None,
        unread=["unread"],
    ),
    "an unknown survivor holds every blob its bytes mention": Case(
        {"img": image(("layer", 700), ("cfg", 5)), "chart": unknown("layer")},
        gone=["img"],
        surviving=["chart"],
        expected=5,
    ),
    "a deleted index frees no blob of its own": Case(
        {"idx": index("img"), "img": image(("layer", 700))},
        gone=["idx"],
        surviving=["img"],
        expected=0,
    ),
    "an index and its children deleted together free the children's blobs": Case(
        {"idx": index("img"), "img": image(("layer", 700), ("cfg", 5))},
        gone=["idx", "img"],
        surviving=[],
        expected=705,
    ),
    "conflicting sizes for one blob count the smallest": Case(
        {"a": image(("blob", 900)), "b": image(("blob", 100))},
        gone=["a", "b"],
        surviving=[],
        expected=100,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_freed_bytes(case: Case) -> None:
    manifests = {d(name): manifest for name, manifest in case.manifests.items()}
    assert not set(case.unread) & set(case.manifests)
    result = freed_bytes(manifests, [d(n) for n in case.gone], [d(n) for n in case.surviving])
    assert result == case.expected


def test_freed_never_exceeds_the_nominal_sum_of_the_deleted_images() -> None:
    old = image(("base", 1000), ("old-app", 30), ("old-cfg", 2))
    new = image(("base", 1000), ("new-app", 40), ("new-cfg", 3))
    manifests = {d("old"): old, d("new"): new}
    nominal = sum(blob.size for blob in old.blobs)
    freed = freed_bytes(manifests, [d("old")], [d("new")])
    assert freed is not None and freed < nominal


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_ledger_agrees_with_freed_bytes_and_says_why_when_it_cannot_know(case: Case) -> None:
    manifests = {d(name): manifest for name, manifest in case.manifests.items()}
    gone, surviving = [d(n) for n in case.gone], [d(n) for n in case.surviving]
    book = ledger(manifests, gone, surviving)
    assert book.freed(gone) == case.expected
    assert book.freed([]) == 0  # nothing gone frees nothing, whatever is unknown
    if case.expected is None:
        assert isinstance(book.unknown, Unknown) and book.unknown.reason.endswith("not read")
    else:
        assert book.unknown is None
