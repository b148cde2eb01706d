"""Is the repository whole? Every index has all its children, every referrer its subject. Pure.

The sweeper never deletes a child that a surviving index lists, so it never makes a broken index;
this check is how a run (and an operator, with `ecr-sweeper validate`) confirms that, and finds
the broken ones something else made. A referrer whose subject is gone is reported too: it does
not break a pull, but it is dangling, and it can be left by design (a referrer kept for its own
reason, say younger than the grace period, while its old subject went).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Descriptor, Image, Kind, Manifest
from .plan import metadata_kind

MISSING_CHILD = "missing-child"  # an index lists a manifest the repository does not have
MISSING_SUBJECT = "missing-subject"  # a referrer's subject is not in the repository


@dataclass(frozen=True, slots=True)
class Problem:
    repository: str
    digest: str
    kind: Kind
    problem: str
    missing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "kind": self.kind.value,
            "problem": self.problem,
            "missing": list(self.missing),
        }


def outline(manifest: Manifest) -> Manifest:
    """What `find_problems` reads of a manifest: its kind, the manifests it lists and its subject.

    A run keeps this, not the whole parse, of the indexes it read, for its check after the sweep.
    """
    listed = () if manifest.kind is Kind.UNKNOWN else manifest.references
    return Manifest(
        manifest.kind,
        None,
        tuple(Descriptor(ref.digest) for ref in listed),
        manifest.subject,
    )


def find_problems(
    repository: str, images: Sequence[Image], manifests: Mapping[str, Manifest]
) -> list[Problem]:
    """What is broken in one repository, given its listing and the parsed bytes of its indexes.

    Only indexes can list children, so only their bytes are needed; a referrer's subject comes
    from its bytes when read, else from the listing (ECR's `subjectManifestDigest`). Unknown
    manifests are not checked: the digests they mention need not be manifests.
    """
    present = {image.digest for image in images}
    problems: list[Problem] = []
    for image in sorted(images, key=lambda i: i.digest):
        parsed = manifests.get(image.digest)
        if parsed is not None and parsed.kind in (Kind.INDEX, Kind.REFERRER):
            missing = tuple(
                dict.fromkeys(c.digest for c in parsed.references if c.digest not in present)
            )
            if missing:
                problems.append(
                    Problem(repository, image.digest, parsed.kind, MISSING_CHILD, missing)
                )
        if parsed is not None and parsed.kind is Kind.UNKNOWN:
            continue
        subject = parsed.subject if parsed is not None else image.subject
        if subject is not None and subject not in present:
            kind = parsed.kind if parsed is not None else metadata_kind(image, False)
            problems.append(
                Problem(
                    repository, image.digest, kind or Kind.REFERRER, MISSING_SUBJECT, (subject,)
                )
            )
    return problems
