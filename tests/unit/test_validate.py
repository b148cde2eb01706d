"""validate.find_problems on hand-built listings: each case is a repository state, named for it."""

from __future__ import annotations

import hashlib

import pytest

from sweeper.model import Descriptor, Image, Kind, Manifest
from sweeper.validate import MISSING_CHILD, MISSING_SUBJECT, find_problems

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def index(*children: str, subject: str | None = None) -> Manifest:
    kind = Kind.REFERRER if subject else Kind.INDEX
    return Manifest(kind, OCI_INDEX, tuple(Descriptor(d(c)) for c in children), subject=subject)


Expected = list[tuple[str, str, tuple[str, ...]]]  # (digest, problem, missing)

# name -> (listed manifests, parsed bytes of the indexes, expected problems)
CASES: dict[str, tuple[list[Image], dict[str, Manifest], Expected]] = {
    "whole-index": (
        [Image(d("i"), ("latest",)), Image(d("a")), Image(d("b"))],
        {d("i"): index("a", "b")},
        [],
    ),
    "index-missing-one-child": (
        [Image(d("i"), ("latest",)), Image(d("a"))],
        {d("i"): index("a", "b")},
        [(d("i"), MISSING_CHILD, (d("b"),))],
    ),
    "child-listed-twice-is-reported-once": (
        [Image(d("i"))],
        {d("i"): index("b", "b")},
        [(d("i"), MISSING_CHILD, (d("b"),))],
    ),
    "referrer-from-the-listing-missing-its-subject": (
        [Image(d("sig"), media_type=OCI_MANIFEST, subject=d("gone"))],
        {},
        [(d("sig"), MISSING_SUBJECT, (d("gone"),))],
    ),
    "referrer-index-missing-child-and-subject": (
        [Image(d("r"))],
        {d("r"): index("a", subject=d("s"))},
        [(d("r"), MISSING_CHILD, (d("a"),)), (d("r"), MISSING_SUBJECT, (d("s"),))],
    ),
    "unknown-manifest-mentions-are-not-children": (
        [Image(d("helm"))],
        {d("helm"): Manifest(Kind.UNKNOWN, OCI_MANIFEST, (Descriptor(d("blob")),))},
        [],
    ),
    "referrer-with-its-subject": (
        [Image(d("img")), Image(d("sig"), media_type=OCI_MANIFEST, subject=d("img"))],
        {},
        [],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_find_problems(name: str) -> None:
    images, manifests, expected = CASES[name]
    problems = find_problems("app", images, manifests)
    assert [(p.digest, p.problem, p.missing) for p in problems] == expected
    assert all(p.repository == "app" for p in problems)
