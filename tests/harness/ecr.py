"""FakeRegistry: moto's ECR, corrected where it differs from real ECR.

moto 5.2 serves the ECR API well enough to host tests, but on several points (section 4 of
``/work/shared/reference/ecr-facts.md``) it is wrong in ways that would let a garbage collector
pass for the wrong reasons. While a :class:`FakeRegistry` is entered, the following moto
functions are replaced (``unittest.mock.patch.object``, undone on exit):

=========================================  ======================================================
patched                                    correction (numbers as in the harness brief)
=========================================  ======================================================
``ECRBackend.put_image`` and               1. digest = sha256 of the exact manifest bytes (a given
``ECRResponse.put_image``                  ``imageDigest`` is verified); 2. moving a tag leaves
                                           the old image in place, untagged; 8. an index whose
                                           child manifests are missing is refused
                                           (``ReferencedImagesNotFoundException``); invalid JSON
                                           is an ``InvalidParameterException`` (moto raised a bare
                                           ``Exception`` through boto3); a missing repository is
                                           ``RepositoryNotFoundException``.
``ECRBackend.batch_delete_image``          3. children of an index that exists when the call starts
                                           are refused (``ImageReferencedByManifestList``); by
                                           digest removes the image and all its tags; deleted
                                           untagged images are listed (configurable, below);
                                           4. more than 100 ids.
``ECRBackend.batch_get_image`` and         9. exact bytes, ``acceptedMediaTypes`` accepted and
``ECRResponse.batch_get_image``            ignored, archived images readable (configurable: or
                                           refused per item, with a configurable code);
                                           failures echo the requested id; 4. 12. through the
                                           API, a read is a pull: it sets
                                           ``lastRecordedPullTime`` of what it returns to now,
                                           unless the caller is a pull-time update exclusion.
``ECRResponse.list_pull_time_update_       12. the exclusion calls moto lacks (a registry's list,
exclusions``, ``register_...``,            100 at most, ``ExclusionAlreadyExistsException``);
``deregister_...``                         configurable refusals (below).
``STSBackend.get_caller_identity``         13. credentials moto does not know are an IAM user
                                           (``arn:aws:iam::<account>:user/moto``), as STS
                                           answers for a user; moto said ``arn:aws:sts::...``.
``ECRResponse.describe_images``            5. ``filter.tagStatus``/``filter.imageStatus``,
                                           ``maxResults`` 1..1000 (default 100) and ``nextToken``;
                                           6. ``imageSizeInBytes``; 7. ``artifactMediaType``,
                                           ``subjectManifestDigest``, ``lastRecordedPullTime``,
                                           ``imageStatus``, ``lastActivatedAt`` (``restore``);
                                           10. ``imageTags`` only when tagged;
                                           4. at most 100 ``imageIds``; with ``imageIds``, what
                                           ECR does not document is configurable (below).
``ECRResponse.list_images``                5. same filters and paging.
``ECRResponse.describe_repositories``      5. ``maxResults``/``nextToken`` paging.
``ECRResponse.get_account_setting``        14. moto has no GetAccountSetting: ``BLOB_MOUNTING``
                                           answers ``FakeRegistry(blob_mounting=...)``.
``Image._create_digest``                   1. for any moto code path that still creates an image
                                           without a digest.
``ECRResponse.batch_check_layer_availability``  12. not implemented by moto (moto stores no
                                           layers): a blob is available while some manifest
                                           stored in the repository, now or before, names it,
                                           unless a test reclaimed it (``reclaim_layer``, as
                                           ECR may clean up unreferenced layers at any time);
                                           ``PutImage`` of a manifest naming a reclaimed blob is
                                           refused (``LayersNotFoundException``).
``ECRBackend.put_lifecycle_policy``        11. today's ECR policy language: moto 5.2.1 refuses
                                           ``sinceImagePulled``, ``sinceImageTransitioned``,
                                           ``storageClass`` and the ``transition`` action, and
                                           accepts what ECR refuses (one priority twice, an
                                           ``any`` rule not last, a ``tagged`` rule without a
                                           list, a list on an ``untagged`` or ``any`` rule).
=========================================  ======================================================

``GetLifecyclePolicy`` needs no correction: moto 5.2.1 answers
``LifecyclePolicyNotFoundException`` for a repository without a policy, as ECR does (checked on
both by ``tests/harness_tests``).

The patches are process-wide (moto keeps one class for every account and region), so they are
reference-counted: several registries (say, two regions) may be entered at once; the patches
go when the last one exits.

Where ECR's behaviour is not documented, the harness can play each plausible one
(``FakeRegistry`` arguments), so the sweeper can be shown safe under all of them:

- ``describe_ids_filter``: ``DescribeImages`` with ``imageIds`` and a ``filter`` together is
  ``"accepted"`` (the default) or ``"refused"`` (``InvalidParameterException``);
- ``describe_ids_archived``: an archived manifest asked for by id is ``"shown"`` (the default,
  as ARCHIVED), or hidden as if it were not ACTIVE, whatever the filter says (a filter that is
  accepted but ignored): the call fails with ``ImageNotFoundException`` as for a missing id
  (``"not-found"``), or the id is silently left out of the answer (``"omitted"``);
- ``delete_untagged_answer``: ``BatchDeleteImage`` lists a deleted untagged digest in its
  ``imageIds`` (``"listed"``, the default) or deletes it and lists nothing for it
  (``"omitted"``, as moto does): ECR does not document which;
- ``archived_manifests_readable`` / ``archived_manifest_failure``: ``BatchGetImage`` serves an
  archived manifest (the default), or refuses it per item with that failure code
  (``ImageInaccessible`` by default; ``ImageNotFound`` is as plausible: an archived image
  cannot be pulled).

Who calls (correction 12): the caller of a request is its credentials' principal as an IAM ARN,
the form exclusions take: an assumed role's role (with its path, when moto's IAM has the role),
an IAM user's ARN, or ``arn:aws:iam::<account>:user/moto`` for credentials moto does not know
(the ``testing`` keys the suite uses). ``FakeRegistry.pull`` is a workload's pull: it refreshes
the time whoever is excluded. ``exclusion_api`` plays a registry whose exclusion calls are
``"allowed"`` (the default), where registering is refused (``"register-refused"``: an
``AccessDeniedException``, as for a role without the grant), or where even the list is
(``"refused"``).

Harness-side state lives on moto's own objects: ``Repository._harness_state`` (digest and tag
indexes, for O(1) lookups when seeding thousands of images) and ``Image._harness_meta``
(push time, archive status, last pull). The indexes are rebuilt whenever the repository's image
list changes behind the harness's back.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from unittest import mock

import boto3
import boto3.session
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.exceptions import ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.ecr.exceptions import (
    ImageAlreadyExistsException,
    ImageNotFoundException,
    InvalidParameterException,
)
from moto.ecr.models import ECRBackend, Image, Repository, RepoTagMutability, ecr_backends
from moto.ecr.responses import ECRResponse
from moto.iam.models import iam_backends
from moto.sts.models import STSBackend, sts_backends

from . import oci

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

__all__ = [
    "MAX_EXCLUSIONS",
    "MAX_IMAGE_IDS",
    "MOTO_USER",
    "BuildxPush",
    "FakeRegistry",
    "ImageDigestDoesNotMatchException",
    "ImageTagAlreadyExistsException",
    "ReferencedImagesNotFoundException",
    "image_size",
]

MAX_IMAGE_IDS = 100  # BatchGetImage, BatchDeleteImage, DescribeImages(imageIds=...)
MAX_EXCLUSIONS = 100  # pull-time update exclusions per registry
MOTO_USER = "arn:aws:iam::{account}:user/moto"  # who credentials moto does not know are
DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

_DIGEST_RE = re.compile(r"[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+")
_TAG_STATUSES = frozenset({"TAGGED", "UNTAGGED", "ANY"})
_IMAGE_STATUSES = frozenset({"ACTIVE", "ARCHIVED", "ACTIVATING", "ANY"})
# Descriptors in an index's manifests[] that name a manifest (and so must exist in ECR).
# A descriptor without mediaType is treated as a manifest, to err on ECR's strict side.
_CHILD_MEDIA_TYPES = oci.INDEX_MEDIA_TYPES | oci.MANIFEST_MEDIA_TYPES

# Each ECR call is atomic in ECR. moto runs requests in the calling thread, and the code under
# test may call from several threads (bounded concurrency), so harness operations take a lock.
_LOCK = threading.RLock()
_F = TypeVar("_F", bound=Callable[..., Any])


def _atomic(func: _F) -> _F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --- error codes moto does not define (both are in botocore's ECR model for PutImage) ------------


class ImageDigestDoesNotMatchException(ServiceException):
    code = "ImageDigestDoesNotMatchException"


class ReferencedImagesNotFoundException(ServiceException):
    code = "ReferencedImagesNotFoundException"


class ImageTagAlreadyExistsException(ServiceException):
    code = "ImageTagAlreadyExistsException"


# --- what the harness knows about each stored image ----------------------------------------------


@dataclass
class _Meta:
    seq: int  # insertion order; stable across deletions, so it can back page tokens
    pushed_at: datetime
    archived: bool = False
    archived_at: datetime | None = None
    last_pulled: datetime | None = None
    activated_at: datetime | None = None  # lastActivatedAt: when last restored from archive


@dataclass(frozen=True)
class _Info:
    """What the manifest bytes say, parsed once per image."""

    kind: Literal["index", "manifest", "other", "unparseable"]
    child_digests: tuple[str, ...]  # manifests an index lists (blob entries excluded)
    own_size: int  # manifest: layers + config; anything else: len(bytes)
    artifact_media_type: str | None
    subject_digest: str | None


def _parse(text: str, media_type: str | None) -> _Info:
    raw_len = len(text.encode("utf-8"))
    try:
        doc = json.loads(text)
    except ValueError:
        return _Info("unparseable", (), raw_len, None, None)
    if not isinstance(doc, dict):
        return _Info("other", (), raw_len, None, None)
    declared = doc.get("mediaType") or media_type
    artifact_type = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
    subject = doc.get("subject")
    subject_digest = subject.get("digest") if isinstance(subject, dict) else None
    is_index = declared in oci.INDEX_MEDIA_TYPES or (
        declared not in oci.MANIFEST_MEDIA_TYPES and isinstance(doc.get("manifests"), list)
    )
    if is_index:
        children = tuple(
            d["digest"]
            for d in doc.get("manifests") or ()
            if isinstance(d, dict)
            and isinstance(d.get("digest"), str)
            and d.get("mediaType", oci.OCI_MANIFEST) in _CHILD_MEDIA_TYPES
        )
        return _Info("index", children, raw_len, artifact_type, subject_digest)
    config, layers = doc.get("config"), doc.get("layers")
    if isinstance(config, dict) and isinstance(layers, list):
        # imageSizeInBytes: ECR documents it as the compressed size of the image. We use the
        # total of the layers' ``size`` fields plus the config blob's size (what a pull
        # downloads besides the manifest itself).
        try:
            size = int(config["size"]) + sum(int(layer["size"]) for layer in layers)
        except (KeyError, TypeError, ValueError):
            size = raw_len
        config_type = config.get("mediaType") if isinstance(config.get("mediaType"), str) else None
        return _Info("manifest", (), size, artifact_type or config_type, subject_digest)
    return _Info("other", (), raw_len, artifact_type, subject_digest)


def _info(image: Image) -> _Info:
    cached: tuple[str, _Info] | None = getattr(image, "_harness_info", None)
    if cached is None or cached[0] is not image.image_manifest:
        cached = (
            image.image_manifest,
            _parse(image.image_manifest, image.image_manifest_media_type),
        )
        image._harness_info = cached  # type: ignore[attr-defined]
    return cached[1]


def _digest_of(text: str) -> str:
    return oci.sha256_digest(text)


def _now() -> datetime:
    return datetime.now(UTC)  # honours freezegun


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# --- per-repository indexes ----------------------------------------------------------------------


@dataclass
class _RepoState:
    by_digest: dict[str, Image] = field(default_factory=dict)
    by_tag: dict[str, Image] = field(default_factory=dict)
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))


def _meta(image: Image) -> _Meta:
    meta: _Meta | None = getattr(image, "_harness_meta", None)
    if meta is None:
        # An image the harness has not seen yet (pushed before it was installed).
        pushed = datetime.fromtimestamp(int(image.image_pushed_at), tz=UTC)
        meta = _Meta(seq=0, pushed_at=pushed)
        image._harness_meta = meta  # type: ignore[attr-defined]
    return meta


def _state(repo: Repository) -> _RepoState:
    state: _RepoState | None = getattr(repo, "_harness_state", None)
    if state is not None and len(state.by_digest) == len(repo.images):
        return state
    # First use, or the image list changed behind our back: rebuild from moto's list.
    counter = state.seq if state is not None else itertools.count(1)
    state = _RepoState(seq=counter)
    for image in repo.images:
        meta = _meta(image)
        if meta.seq == 0:
            meta.seq = next(counter)
        state.by_digest[image.get_image_digest()] = image
        for tag in image.image_tags:
            state.by_tag[tag] = image
    repo._harness_state = state  # type: ignore[attr-defined]
    return state


def _sorted_images(repo: Repository) -> list[Image]:
    _state(repo)
    return sorted(repo.images, key=lambda img: _meta(img).seq)


def _untag(state: _RepoState, image: Image, tag: str) -> None:
    image.image_tags.remove(tag)
    state.by_tag.pop(tag, None)
    image.image_tag = image.image_tags[-1] if image.image_tags else None  # type: ignore[assignment]


def _check_tag_mutability(
    backend: ECRBackend, repo: Repository, state: _RepoState, image: Image | None, tag: str
) -> None:
    """Raise as ECR does when ``tag`` may not move to ``image`` (immutable repositories)."""
    if repo.image_tag_mutability != RepoTagMutability.MUTABLE and state.by_tag.get(tag) not in (
        None,
        image,
    ):
        # moto's own checks know the *_WITH_EXCLUSION variants; ECR's error code is another one.
        try:
            backend._resolve_image_tag_mutability(repo, tag)
        except ImageAlreadyExistsException as err:
            raise ImageTagAlreadyExistsException(
                f"The image tag '{tag}' already exists in the '{repo.name}' repository "
                "and cannot be overwritten because the repository is immutable."
            ) from err


def _tag(backend: ECRBackend, repo: Repository, state: _RepoState, image: Image, tag: str) -> None:
    """Point ``tag`` at ``image``. As in ECR, an image losing the tag stays, untagged."""
    previous = state.by_tag.get(tag)
    if previous is image:
        return
    _check_tag_mutability(backend, repo, state, image, tag)
    if previous is not None:
        _untag(state, previous, tag)  # moto deleted the previous image here
    image.image_tags.append(tag)
    image.image_tag = tag
    state.by_tag[tag] = image


def _blob_digests(text: str) -> set[str]:
    """The config and layer blobs a manifest names (schema 1 fsLayers, OCI 1.1-rc blobs too)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return set()
    if not isinstance(doc, dict):
        return set()
    found: set[str] = set()
    config = doc.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        found.add(config["digest"])
    for key, field_name in (("layers", "digest"), ("blobs", "digest"), ("fsLayers", "blobSum")):
        for entry in doc.get(key) or ():
            if isinstance(entry, dict) and isinstance(entry.get(field_name), str):
                found.add(entry[field_name])
    return found


def _blobs_once_held(repo: Repository) -> set[str]:
    """Blobs of deleted manifests: ECR keeps layers after the manifests that used them go,
    until it cleans them up (at any time)."""
    held: set[str] | None = getattr(repo, "_harness_blobs", None)
    if held is None:
        held = set()
        repo._harness_blobs = held  # type: ignore[attr-defined]
    return held


def _reclaimed(repo: Repository) -> set[str]:
    gone: set[str] | None = getattr(repo, "_harness_reclaimed", None)
    if gone is None:
        gone = set()
        repo._harness_reclaimed = gone  # type: ignore[attr-defined]
    return gone


def _available_blobs(repo: Repository) -> set[str]:
    present = {b for image in repo.images for b in _blob_digests(image.image_manifest)}
    return (present | _blobs_once_held(repo)) - _reclaimed(repo)


def _remove(repo: Repository, state: _RepoState, image: Image) -> None:
    _blobs_once_held(repo).update(_blob_digests(image.image_manifest))
    repo.images.remove(image)
    state.by_digest.pop(image.get_image_digest(), None)
    for tag in list(image.image_tags):
        state.by_tag.pop(tag, None)


def image_size(repo: Repository, image: Image) -> int:
    """``imageSizeInBytes`` as the harness reports it (see :func:`_parse` for manifests).

    An index reports its largest stored child (recursively, for indexes of indexes); an index
    none of whose children are stored (e.g. a BuildKit cache index) reports its own length.
    """
    state = _state(repo)

    def size(img: Image, seen: frozenset[str]) -> int:
        info = _info(img)
        if info.kind != "index":
            return info.own_size
        sizes = [
            size(child, seen | {digest})
            for digest in info.child_digests
            if digest not in seen and (child := state.by_digest.get(digest)) is not None
        ]
        return max(sizes) if sizes else info.own_size

    return size(image, frozenset({image.get_image_digest()}))


# --- core operations (shared by the API patches and FakeRegistry.seed) ---------------------------


@_atomic
def _store(
    backend: ECRBackend,
    repo: Repository,
    text: str,
    *,
    tag: str | None,
    media_type: str | None,
    digest: str | None,
    require_json: bool,
) -> Image:
    """Store a manifest as ECR's PutImage would and return the (new or existing) image."""
    info = _parse(text, media_type)
    if info.kind == "unparseable" and require_json:
        raise InvalidParameterException(
            "Invalid parameter at 'ImageManifest' failed to satisfy constraint: "
            "'Invalid JSON syntax'"
        )
    if media_type is None:
        declared = json.loads(text).get("mediaType") if info.kind != "unparseable" else None
        if not isinstance(declared, str):
            raise InvalidParameterException(
                "image manifest mediatype not provided in manifest or parameter"
            )
        media_type = declared
    computed = _digest_of(text)
    if digest is not None and digest != computed:
        raise ImageDigestDoesNotMatchException(
            f"Invalid parameter at 'imageDigest' failed to satisfy constraint: "
            f"'{digest}' does not match the digest of the manifest ({computed})"
        )
    state = _state(repo)
    image = state.by_digest.get(computed)
    if tag is not None:  # before anything is stored: a refused tag refuses the whole put
        _check_tag_mutability(backend, repo, state, image, tag)
    if image is not None:
        if tag is not None and tag in image.image_tags:
            raise ImageAlreadyExistsException(
                repository_name=repo.name,
                registry_id=repo.registry_id,
                digest=computed,
                image_tag=tag,
            )
        meta = _meta(image)
        meta.archived, meta.archived_at = False, None  # re-pushing an archived image restores it
    else:
        missing = [d for d in info.child_digests if d not in state.by_digest]
        if missing:
            raise ReferencedImagesNotFoundException(
                f"The following referenced images were not found: {', '.join(missing)}"
            )
        # moto types the tag as str, but None is how it models an untagged image.
        no_tag: Any = None
        image = Image(
            backend.account_id, no_tag, text, repo.name, media_type, computed, repo.registry_id
        )
        image._harness_meta = _Meta(seq=next(state.seq), pushed_at=_now())  # type: ignore[attr-defined]
        repo.images.append(image)
        state.by_digest[computed] = image
    if tag is not None:
        _tag(backend, repo, state, image, tag)
    return image


def _check_id_count(image_ids: Sequence[Any] | None) -> None:
    # botocore only enforces the minimum (1) client-side; ECR rejects more than 100.
    if image_ids is not None and len(image_ids) > MAX_IMAGE_IDS:
        raise InvalidParameterException(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: "
            f"'Member must have length less than or equal to {MAX_IMAGE_IDS}'"
        )


def _failure(image_id: Mapping[str, str], code: str, reason: str) -> dict[str, Any]:
    return {"imageId": dict(image_id), "failureCode": code, "failureReason": reason}


def _lookup(state: _RepoState, image_id: Mapping[str, str]) -> Image | None:
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    if digest:
        image = state.by_digest.get(digest)
        if image is not None and tag and tag not in image.image_tags:
            return None
        return image
    return state.by_tag.get(tag) if tag else None


@_atomic
def _batch_delete(
    backend: ECRBackend,
    repository_name: str,
    registry_id: str | None,
    image_ids: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    repo = backend._get_repository(repository_name, registry_id)
    _check_id_count(image_ids)
    state = _state(repo)
    # ECR checks references against the repository as it is when the call starts, so an index
    # and its child in the same call leave the child in place (the facts say not to rely on
    # either outcome; this is the conservative one).
    parents: dict[str, list[str]] = {}
    for img in repo.images:
        for child in _info(img).child_digests:
            parents.setdefault(child, []).append(img.get_image_digest())

    deleted: list[dict[str, str]] = []
    failures: list[dict[str, Any]] = []
    for image_id in image_ids:
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        if not digest and not tag:
            failures.append(
                _failure(
                    image_id,
                    "MissingDigestAndTag",
                    "Invalid request parameters: both tag and digest cannot be null",
                )
            )
            continue
        if digest and not _DIGEST_RE.fullmatch(digest):
            failures.append(
                _failure(
                    image_id,
                    "InvalidImageDigest",
                    "Invalid request parameters: image digest should satisfy the regex "
                    "'[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
                )
            )
            continue
        image = _lookup(state, image_id)
        if image is None:
            failures.append(_failure(image_id, "ImageNotFound", "Requested image not found"))
            continue
        image_digest = image.get_image_digest()
        if tag and len(image.image_tags) > 1:
            # Removing one of several tags only untags; the image stays.
            _untag(state, image, tag)
            deleted.append({"imageDigest": image_digest, "imageTag": tag})
            continue
        if image_digest in parents:
            failures.append(
                _failure(
                    image_id,
                    "ImageReferencedByManifestList",
                    "Requested image referenced by manifest list: ["
                    + ", ".join(parents[image_digest])
                    + "]",
                )
            )
            continue
        # By digest (or by its last tag): the image goes, with every tag it had.
        if tag:
            deleted.append({"imageDigest": image_digest, "imageTag": tag})
        elif image.image_tags:
            deleted.extend({"imageDigest": image_digest, "imageTag": t} for t in image.image_tags)
        elif getattr(backend, "_harness_delete_untagged", "listed") == "listed":
            deleted.append({"imageDigest": image_digest})  # moto listed nothing here
        # else "omitted": deleted, and not listed (what moto does; ECR does not document it)
        _remove(repo, state, image)
    return {"imageIds": deleted, "failures": failures}


@_atomic
def _batch_get(
    backend: ECRBackend,
    repository_name: str,
    registry_id: str | None,
    image_ids: Sequence[Mapping[str, str]],
    pull: bool = False,
) -> dict[str, Any]:
    """BatchGetImage. ``acceptedMediaTypes`` is ignored: manifests come back exactly as stored.
    With ``pull`` (an API caller that is not a pull-time update exclusion) every manifest
    returned has its ``lastRecordedPullTime`` set to now (correction 12).

    Archived images: the ECR docs say an archived image "cannot be pulled" (404 on pull) but
    can still be described and listed; whether the BatchGetImage *API* still returns its
    manifest is not documented. The harness returns it by default, because the sweeper reads
    manifests of archived images to build its graph; ``FakeRegistry(archived_manifests_readable=
    False)`` instead answers with a per-item failure ``ImageInaccessible`` (a failure code
    that appeared in the API model alongside archiving) so the other outcome can be tested.
    """
    repo = backend._get_repository(repository_name, registry_id)
    _check_id_count(image_ids)
    readable = getattr(backend, "_harness_archived_readable", True)
    archived_code = getattr(backend, "_harness_archived_failure", "ImageInaccessible")
    state = _state(repo)
    images: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    seen: set[tuple[str | None, str | None]] = set()
    for image_id in image_ids:
        key = (image_id.get("imageDigest"), image_id.get("imageTag"))
        if key in seen:  # duplicate ids are answered once
            continue
        seen.add(key)
        image = _lookup(state, image_id)
        if image is None:
            failures.append(_failure(image_id, "ImageNotFound", "Requested image not found"))
            continue
        if _meta(image).archived and not readable:
            reason = (
                "Requested image not found"
                if archived_code == "ImageNotFound"
                else "The requested image is archived"
            )
            failures.append(_failure(image_id, archived_code, reason))
            continue
        if pull:
            _meta(image).last_pulled = _now()
        answered_id = {"imageDigest": image.get_image_digest()}
        if image_id.get("imageTag"):
            answered_id["imageTag"] = image_id["imageTag"]
        images.append(
            {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "imageId": answered_id,
                "imageManifest": image.image_manifest,
                "imageManifestMediaType": image.image_manifest_media_type,
            }
        )
    return {"images": images, "failures": failures}


def _image_detail(repo: Repository, image: Image) -> dict[str, Any]:
    info, meta = _info(image), _meta(image)
    detail: dict[str, Any] = {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageDigest": image.get_image_digest(),
        "imageSizeInBytes": image_size(repo, image),
        "imagePushedAt": meta.pushed_at,
        "imageManifestMediaType": image.image_manifest_media_type,
        "imageStatus": "ARCHIVED" if meta.archived else "ACTIVE",
    }
    if image.image_tags:  # ECR omits the key for untagged images
        detail["imageTags"] = list(image.image_tags)
    if info.artifact_media_type is not None:
        detail["artifactMediaType"] = info.artifact_media_type
    if info.subject_digest is not None:
        detail["subjectManifestDigest"] = info.subject_digest
    if meta.last_pulled is not None:
        detail["lastRecordedPullTime"] = meta.last_pulled
    if meta.archived and meta.archived_at is not None:
        detail["lastArchivedAt"] = meta.archived_at
    if meta.activated_at is not None:
        detail["lastActivatedAt"] = meta.activated_at
    return detail


# --- filters and paging --------------------------------------------------------------------------

_T = TypeVar("_T")


def _filter_value(
    flt: Mapping[str, Any] | None, key: str, allowed: frozenset[str], default: str
) -> str:
    value = (flt or {}).get(key) or default
    if value not in allowed:
        raise InvalidParameterException(
            f"Invalid parameter at 'filter.{key}' failed to satisfy constraint: "
            f"'Member must satisfy enum value set: [{', '.join(sorted(allowed))}]'"
        )
    return str(value)


def _status_matches(image: Image, image_status: str) -> bool:
    archived = _meta(image).archived
    return {
        "ANY": True,
        "ACTIVE": not archived,
        "ARCHIVED": archived,
        "ACTIVATING": False,  # the harness restores instantly
    }[image_status]


def _encode_token(op: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"op": op, "after": key}).encode()).decode()


def _decode_token(op: str, token: str) -> list[Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["op"] != op or not isinstance(data["after"], list):
            raise ValueError(token)
        return list(data["after"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidParameterException(
            "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid token'"
        ) from None


def _paginate(
    items: Sequence[_T],
    key: Callable[[_T], list[Any]],
    max_results: int | None,
    next_token: str | None,
    op: str,
) -> tuple[list[_T], str | None]:
    """One page of ``items`` (sorted by ``key``), plus the token for the next page, if any."""
    if max_results is None:
        max_results = DEFAULT_MAX_RESULTS
    if not 1 <= int(max_results) <= MAX_MAX_RESULTS:
        raise InvalidParameterException(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: "
            f"'Member must have value between 1 and {MAX_MAX_RESULTS}'"
        )
    remaining = list(items)
    if next_token:
        after = _decode_token(op, next_token)
        remaining = [item for item in remaining if key(item) > after]
    page = remaining[: int(max_results)]
    token = _encode_token(op, key(page[-1])) if len(remaining) > len(page) else None
    return page, token


# --- the patched functions -----------------------------------------------------------------------
# Backend replacements keep moto's signatures so any other moto caller gets ECR's behaviour.


def _backend_put_image(
    self: ECRBackend,
    repository_name: str,
    image_manifest: str,
    image_tag: str | None,
    image_manifest_mediatype: str | None = None,
    digest: str | None = None,
) -> Image:
    repo = self._get_repository(repository_name)
    return _store(
        self,
        repo,
        image_manifest,
        tag=image_tag,
        media_type=image_manifest_mediatype,
        digest=digest,
        require_json=True,
    )


def _backend_batch_delete_image(
    self: ECRBackend,
    repository_name: str,
    registry_id: str | None = None,
    image_ids: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return _batch_delete(self, repository_name, registry_id, image_ids or [])


def _backend_batch_get_image(
    self: ECRBackend,
    repository_name: str,
    registry_id: str | None = None,
    image_ids: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return _batch_get(self, repository_name, registry_id, image_ids or [])


_LP_RULE_KEYS = frozenset({"rulePriority", "description", "selection", "action"})
_LP_SELECTION_KEYS = frozenset(
    {
        "tagStatus",
        "tagPrefixList",
        "tagPatternList",
        "countType",
        "countUnit",
        "countNumber",
        "storageClass",
    }
)
_LP_ACTION_KEYS = frozenset({"type", "targetStorageClass"})
_LP_COUNT_TYPES = frozenset(
    {"imageCountMoreThan", "sinceImagePushed", "sinceImagePulled", "sinceImageTransitioned"}
)


def _lifecycle_policy_problem(text: str) -> str | None:
    """What ECR's PutLifecyclePolicy would refuse in `text`, per its documentation (None: fine)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return "Could not map policyString into LifecyclePolicy."
    rules = doc.get("rules") if isinstance(doc, dict) else None
    if not isinstance(rules, list) or not rules:
        return 'object has missing required properties (["rules"])'
    priorities: list[int] = []
    any_priority: int | None = None
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - _LP_RULE_KEYS:
            return "a rule is not an object of rulePriority, description, selection and action"
        priority, selection, action = (rule.get(k) for k in ("rulePriority", "selection", "action"))
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 1:
            return "rulePriority must be an integer from 1"
        if not isinstance(selection, dict) or set(selection) - _LP_SELECTION_KEYS:
            return "selection is not an object of the known fields"
        if not isinstance(action, dict) or set(action) - _LP_ACTION_KEYS:
            return "action is not an object of the known fields"
        status, lists = (
            selection.get("tagStatus"),
            {"tagPrefixList", "tagPatternList"} & set(selection),
        )
        if status == "tagged" and len(lists) != 1:
            return "a tagged rule needs exactly one of tagPrefixList and tagPatternList"
        if status in ("untagged", "any") and lists:
            return f"tagPrefixList and tagPatternList are for tagged rules, not {status}"
        if status not in ("tagged", "untagged", "any"):
            return f"unknown tagStatus {status!r}"
        count_type, unit, number = (
            selection.get(k) for k in ("countType", "countUnit", "countNumber")
        )
        if count_type not in _LP_COUNT_TYPES:
            return f"unknown countType {count_type!r}"
        if (unit == "days") != (count_type != "imageCountMoreThan") or unit not in (None, "days"):
            return "countUnit days goes with the since* count types, and only with them"
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            return "countNumber must be an integer from 1"
        storage = selection.get("storageClass", "standard")
        if storage not in ("standard", "archive") or (storage == "archive") != (
            count_type == "sinceImageTransitioned"
        ):
            return "storageClass archive goes with sinceImageTransitioned, and only with it"
        kind, target = action.get("type"), action.get("targetStorageClass")
        if kind not in ("expire", "transition") or (kind == "transition") != (target == "archive"):
            return "action is expire, or transition with targetStorageClass archive"
        if priority in priorities:
            return f"rulePriority {priority} is used twice"
        priorities.append(priority)
        if status == "any":
            if any_priority is not None:
                return "only one rule may have tagStatus any"
            any_priority = priority
    if any_priority is not None and any_priority != max(priorities):
        return "the rule with tagStatus any must have the highest rulePriority"
    return None


def _backend_put_lifecycle_policy(
    self: ECRBackend, registry_id: str, repository_name: str, lifecycle_policy_text: str
) -> dict[str, Any]:
    repo = self._get_repository(repository_name, registry_id)
    problem = _lifecycle_policy_problem(lifecycle_policy_text)
    if problem is not None:
        raise InvalidParameterException(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
            f"'Lifecycle policy validation failure: {problem}'"
        )
    repo.lifecycle_policy = lifecycle_policy_text
    return {
        "registryId": repo.registry_id,
        "repositoryName": repository_name,
        "lifecyclePolicyText": repo.lifecycle_policy,
    }


def _image_create_digest(self: Image) -> None:
    self._image_digest = _digest_of(self.image_manifest)


class LayersNotFoundException(ServiceException):
    code = "LayersNotFoundException"


def _response_put_image(self: ECRResponse) -> ActionResult:
    backend = self.ecr_backend
    repo = backend._get_repository(self._get_param("repositoryName"), self._get_param("registryId"))
    tag = self._get_param("imageTag")
    reclaimed = _blob_digests(self._get_param("imageManifest")) & _reclaimed(repo)
    if reclaimed:
        raise LayersNotFoundException(
            f"The following layers were not found: {', '.join(sorted(reclaimed))}"
        )
    image = _store(
        backend,
        repo,
        self._get_param("imageManifest"),
        tag=tag,
        media_type=self._get_param("imageManifestMediaType"),
        digest=self._get_param("imageDigest"),
        require_json=True,
    )
    image_id = {"imageDigest": image.get_image_digest()}
    if tag:
        image_id["imageTag"] = tag
    return ActionResult(
        {
            "image": {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "imageId": image_id,
                "imageManifest": image.image_manifest,
                "imageManifestMediaType": image.image_manifest_media_type,
            }
        }
    )


def _response_batch_get_image(self: ECRResponse) -> ActionResult:
    backend = self.ecr_backend
    return ActionResult(
        _batch_get(
            backend,
            self._get_param("repositoryName"),
            self._get_param("registryId"),
            self._get_param("imageIds") or [],
            pull=_caller(self) not in _exclusions(backend),
        )
    )


# --- who calls, and the pull-time update exclusions (corrections 12, 13) --------------------------


def _caller(response: Any) -> str:
    """The principal of a request's credentials, as an exclusion names it (module docstring)."""
    account = response.current_account
    key = response.get_access_key()
    assumed = sts_backends[account]["global"].get_assumed_role_from_access_key(key)
    iam = iam_backends[account]["global"]
    if assumed is not None:
        # arn:aws:sts::<account>:assumed-role/<name>/<session>
        name = assumed.arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
        role = next((r for r in iam.roles.values() if r.name == name), None)
        return role.arn if role is not None else f"arn:aws:iam::{account}:role/{name}"
    user = iam.get_user_from_access_key_id(key)
    return user.arn if user is not None else MOTO_USER.format(account=account)


def _exclusions(backend: ECRBackend) -> dict[str, datetime]:
    found: dict[str, datetime] | None = getattr(backend, "_harness_exclusions", None)
    if found is None:
        found = backend._harness_exclusions = {}  # type: ignore[attr-defined]
    return found


def _exclusion_call(response: ECRResponse, register: bool) -> None:
    mode = getattr(response.ecr_backend, "_harness_exclusion_api", "allowed")
    if mode == "refused" or (register and mode == "register-refused"):
        action = "RegisterPullTimeUpdateExclusion" if register else "ListPullTimeUpdateExclusions"
        raise _AccessDenied(
            f"User: {_caller(response)} is not authorized to perform: ecr:{action} on resource: "
            f"arn:aws:ecr:{response.region}:{response.current_account}:registry"
        )


class _AccessDenied(ServiceException):
    code = "AccessDeniedException"


class _ExclusionAlreadyExists(ServiceException):
    code = "ExclusionAlreadyExistsException"


class _ExclusionNotFound(ServiceException):
    code = "ExclusionNotFoundException"


class _LimitExceeded(ServiceException):
    code = "LimitExceededException"


_PRINCIPAL_RE = re.compile(
    r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$"
)


def _principal_param(response: ECRResponse) -> str:
    arn = response._get_param("principalArn")
    if not isinstance(arn, str) or not _PRINCIPAL_RE.match(arn):
        raise InvalidParameterException(
            f"Invalid parameter at 'principalArn' failed to satisfy constraint: {arn!r}"
        )
    return arn


@_atomic
def _response_list_exclusions(self: ECRResponse) -> ActionResult:
    _exclusion_call(self, register=False)
    principals = sorted(_exclusions(self.ecr_backend))
    page, token = _paginate(
        principals,
        lambda arn: [arn],
        self._get_param("maxResults"),
        self._get_param("nextToken"),
        "ListPullTimeUpdateExclusions",
    )
    result: dict[str, Any] = {"pullTimeUpdateExclusions": page}
    if token:
        result["nextToken"] = token
    return ActionResult(result)


@_atomic
def _response_register_exclusion(self: ECRResponse) -> ActionResult:
    _exclusion_call(self, register=True)
    arn = _principal_param(self)
    exclusions = _exclusions(self.ecr_backend)
    if arn in exclusions:
        raise _ExclusionAlreadyExists(f"The exclusion for {arn} already exists")
    if len(exclusions) >= MAX_EXCLUSIONS:
        raise _LimitExceeded(f"At most {MAX_EXCLUSIONS} pull-time update exclusions")
    exclusions[arn] = _now()
    return ActionResult({"principalArn": arn, "createdAt": exclusions[arn]})


@_atomic
def _response_deregister_exclusion(self: ECRResponse) -> ActionResult:
    _exclusion_call(self, register=True)
    arn = _principal_param(self)
    if _exclusions(self.ecr_backend).pop(arn, None) is None:
        raise _ExclusionNotFound(f"No exclusion for {arn}")
    return ActionResult({"principalArn": arn})


_moto_caller_identity = STSBackend.get_caller_identity


def _sts_caller_identity(self: STSBackend, access_key_id: str, region: str) -> tuple[str, str, str]:
    user_id, arn, account = _moto_caller_identity(self, access_key_id, region)
    if arn.endswith(":user/moto") and ":sts::" in arn:
        arn = MOTO_USER.format(account=account)
    return user_id, arn, account


@_atomic
def _response_describe_images(self: ECRResponse) -> ActionResult:
    backend = self.ecr_backend
    repo = backend._get_repository(self._get_param("repositoryName"), self._get_param("registryId"))
    image_ids = self._get_param("imageIds")
    max_results = self._get_param("maxResults")
    next_token = self._get_param("nextToken")
    state = _state(repo)
    if image_ids:
        if max_results is not None or next_token is not None:
            raise InvalidParameterException(
                "Invalid parameter: maxResults and nextToken cannot be used when imageIds are given"
            )
        _check_id_count(image_ids)
        if (
            self._get_param("filter") is not None
            and getattr(backend, "_harness_describe_ids_filter", "accepted") == "refused"
        ):
            raise InvalidParameterException(
                "Invalid parameter: filter cannot be used when imageIds are given"
            )
        archived = getattr(backend, "_harness_describe_ids_archived", "shown")
        # Explicit ids are answered whatever their status (unless the harness plays an ECR that
        # hides what is not ACTIVE); a missing one fails the whole call.
        found: dict[str, Image] = {}
        for image_id in image_ids:
            image = _lookup(state, image_id)
            if image is not None and archived != "shown" and _meta(image).archived:
                if archived == "omitted":
                    continue
                image = None  # "not-found": as if it were not there
            if image is None:
                raise ImageNotFoundException(
                    image_id=(
                        f"{{imageDigest:'{image_id.get('imageDigest', 'null')}', "
                        f"imageTag:'{image_id.get('imageTag', 'null')}'}}"
                    ),
                    repository_name=repo.name,
                    registry_id=repo.registry_id,
                )
            found.setdefault(image.get_image_digest(), image)
        return ActionResult({"imageDetails": [_image_detail(repo, img) for img in found.values()]})

    flt = self._get_param("filter")
    tag_status = _filter_value(flt, "tagStatus", _TAG_STATUSES, "ANY")
    image_status = _filter_value(flt, "imageStatus", _IMAGE_STATUSES, "ACTIVE")
    candidates = [
        img
        for img in _sorted_images(repo)
        if _status_matches(img, image_status)
        and (tag_status == "ANY" or (tag_status == "TAGGED") == bool(img.image_tags))
    ]
    page, token = _paginate(
        candidates, lambda img: [_meta(img).seq], max_results, next_token, "DescribeImages"
    )
    result: dict[str, Any] = {"imageDetails": [_image_detail(repo, img) for img in page]}
    if token:
        result["nextToken"] = token
    return ActionResult(result)


@_atomic
def _response_list_images(self: ECRResponse) -> ActionResult:
    backend = self.ecr_backend
    repo = backend._get_repository(self._get_param("repositoryName"), self._get_param("registryId"))
    flt = self._get_param("filter")
    tag_status = _filter_value(flt, "tagStatus", _TAG_STATUSES, "ANY")
    image_status = _filter_value(flt, "imageStatus", _IMAGE_STATUSES, "ACTIVE")
    # One entry per (image, tag); an untagged image gives one digest-only entry.
    entries: list[tuple[list[int], dict[str, str]]] = []
    for img in _sorted_images(repo):
        if not _status_matches(img, image_status):
            continue
        seq, digest = _meta(img).seq, img.get_image_digest()
        if img.image_tags and tag_status != "UNTAGGED":
            entries.extend(
                ([seq, i], {"imageDigest": digest, "imageTag": t})
                for i, t in enumerate(img.image_tags)
            )
        elif not img.image_tags and tag_status != "TAGGED":
            entries.append(([seq, 0], {"imageDigest": digest}))
    page, token = _paginate(
        entries,
        lambda e: e[0],
        self._get_param("maxResults"),
        self._get_param("nextToken"),
        "ListImages",
    )
    result: dict[str, Any] = {"imageIds": [e[1] for e in page]}
    if token:
        result["nextToken"] = token
    return ActionResult(result)


@_atomic
def _response_describe_repositories(self: ECRResponse) -> ActionResult:
    names = self._get_param("repositoryNames")
    max_results = self._get_param("maxResults")
    next_token = self._get_param("nextToken")
    if names and (max_results is not None or next_token is not None):
        raise InvalidParameterException(
            "Invalid parameter: maxResults and nextToken cannot be used "
            "when repositoryNames are given"
        )
    repos = self.ecr_backend.describe_repositories(
        registry_id=self._get_param("registryId"), repository_names=names
    )
    if names:
        return ActionResult({"repositories": repos})
    ordered = sorted(repos, key=lambda r: (r.created_at.isoformat(), r.name))
    page, token = _paginate(
        ordered,
        lambda r: [r.created_at.isoformat(), r.name],
        max_results,
        next_token,
        "DescribeRepositories",
    )
    result: dict[str, Any] = {"repositories": page}
    if token:
        result["nextToken"] = token
    return ActionResult(result)


@_atomic
def _response_batch_check_layer_availability(self: ECRResponse) -> ActionResult:
    backend = self.ecr_backend
    repo = backend._get_repository(self._get_param("repositoryName"), self._get_param("registryId"))
    asked: list[str] = self._get_param("layerDigests") or []
    if len(asked) > MAX_IMAGE_IDS:
        raise InvalidParameterException("layerDigests: at most 100")
    available = _available_blobs(repo)
    return ActionResult(
        {
            "layers": [
                {"layerDigest": d, "layerAvailability": "AVAILABLE"}
                for d in asked
                if d in available
            ],
            "failures": [
                {
                    "layerDigest": d,
                    "failureCode": "MissingLayerDigest",
                    "failureReason": "Layer not found",
                }
                for d in asked
                if d not in available
            ],
        }
    )


def _response_get_account_setting(self: ECRResponse) -> ActionResult:
    """GetAccountSetting (moto 5.2 has none): `BLOB_MOUNTING` is ENABLED or DISABLED, as
    ``FakeRegistry(blob_mounting=...)`` says; the other names ECR documents answer their one
    value; anything else is refused."""
    name = self._get_param("name")
    known = {"BASIC_SCAN_TYPE_VERSION": "AWS_NATIVE", "REGISTRY_POLICY_SCOPE": "V2"}
    if name == "BLOB_MOUNTING":
        mounting = getattr(self.ecr_backend, "_harness_blob_mounting", False)
        return ActionResult({"name": name, "value": "ENABLED" if mounting else "DISABLED"})
    if name in known:
        return ActionResult({"name": name, "value": known[name]})
    raise InvalidParameterException(f"Invalid parameter: unknown account setting {name!r}")


_PATCHES: tuple[tuple[type, str, Callable[..., Any]], ...] = (
    (ECRBackend, "put_image", _backend_put_image),
    (ECRBackend, "batch_delete_image", _backend_batch_delete_image),
    (ECRBackend, "batch_get_image", _backend_batch_get_image),
    (ECRBackend, "put_lifecycle_policy", _backend_put_lifecycle_policy),
    (Image, "_create_digest", _image_create_digest),
    (ECRResponse, "put_image", _response_put_image),
    (ECRResponse, "batch_get_image", _response_batch_get_image),
    (ECRResponse, "describe_images", _response_describe_images),
    (ECRResponse, "list_images", _response_list_images),
    (ECRResponse, "describe_repositories", _response_describe_repositories),
    (ECRResponse, "batch_check_layer_availability", _response_batch_check_layer_availability),
    (ECRResponse, "get_account_setting", _response_get_account_setting),
    (ECRResponse, "list_pull_time_update_exclusions", _response_list_exclusions),
    (ECRResponse, "register_pull_time_update_exclusion", _response_register_exclusion),
    (ECRResponse, "deregister_pull_time_update_exclusion", _response_deregister_exclusion),
    (STSBackend, "get_caller_identity", _sts_caller_identity),
)


class _Corrections:
    """Reference-counted installation of ``_PATCHES`` (moto's classes are process-wide)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._patchers: list[Any] = []

    @property
    def active(self) -> bool:
        return self._users > 0

    def install(self) -> None:
        with self._lock:
            if self._users == 0:
                for target, name, replacement in _PATCHES:
                    # create: the exclusion calls and GetAccountSetting: methods moto lacks
                    patcher = mock.patch.object(target, name, replacement, create=True)
                    patcher.start()
                    self._patchers.append(patcher)
            self._users += 1

    def uninstall(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                while self._patchers:
                    self._patchers.pop().stop()


_CORRECTIONS = _Corrections()


def corrections_active() -> bool:
    """Whether the moto corrections are currently installed."""
    return _CORRECTIONS.active


# --- the test-facing API -------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildxPush:
    """What one simulated ``docker buildx build --push`` stored."""

    index: str
    images: dict[str, str]  # platform -> image manifest digest
    attestations: dict[str, str]  # platform -> attestation manifest digest
    all: frozenset[str]  # every digest this build references (shared images included)


ManifestInput = bytes | str | oci.Manifest


class FakeRegistry:
    """moto ECR with the corrections above, plus helpers to build registry states quickly.

    ``push`` goes through the real ``put_image`` API (ECR's rules checked); ``seed`` writes
    straight into moto's backend (no HTTP round trip, O(1) per image) and reaches the same
    state. Both take ``bytes``, ``str`` or an :class:`oci.Manifest` (whose ``media_type`` is then
    the default). Times given as naive datetimes are taken as UTC.
    """

    def __init__(
        self,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
        *,
        start_mock: bool = True,
        archived_manifests_readable: bool = True,
        archived_manifest_failure: str = "ImageInaccessible",
        describe_ids_filter: Literal["accepted", "refused"] = "accepted",
        describe_ids_archived: Literal["shown", "not-found", "omitted"] = "shown",
        delete_untagged_answer: Literal["listed", "omitted"] = "listed",
        blob_mounting: bool = False,
        exclusion_api: Literal["allowed", "register-refused", "refused"] = "allowed",
    ) -> None:
        self.region = region
        self.account_id = account_id
        self._start_mock = start_mock
        self._archived_readable = archived_manifests_readable
        # ECR's undocumented corners, as the module's docstring describes them.
        self._undocumented = {
            "_harness_archived_failure": archived_manifest_failure,
            "_harness_describe_ids_filter": describe_ids_filter,
            "_harness_describe_ids_archived": describe_ids_archived,
            "_harness_delete_untagged": delete_untagged_answer,
            # The account setting BLOB_MOUNTING (GetAccountSetting): layers shared between the
            # registry's repositories.
            "_harness_blob_mounting": blob_mounting,
            "_harness_exclusion_api": exclusion_api,
        }
        self._stack: ExitStack | None = None
        self._client: ECRClient | None = None
        self._backend_cache: ECRBackend | None = None
        self._build_ids = itertools.count(1)

    # -- context management --

    def __enter__(self) -> FakeRegistry:
        if self._stack is not None:
            raise RuntimeError("FakeRegistry is already entered")
        with ExitStack() as stack:
            for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                if not os.environ.get(var):
                    _set_env(stack, var, "testing")
            effective = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
            if effective != self.account_id:
                if "MOTO_ACCOUNT_ID" in os.environ:
                    raise ValueError(
                        f"MOTO_ACCOUNT_ID={effective} is set; "
                        f"cannot serve account {self.account_id}"
                    )
                # moto picks the account per request from this variable; setting it also puts
                # the code under test (its own boto3 clients) in the same account.
                _set_env(stack, "MOTO_ACCOUNT_ID", self.account_id)
            if self._start_mock:
                stack.enter_context(mock_aws())
            _CORRECTIONS.install()
            stack.callback(_CORRECTIONS.uninstall)
            backend = self._backend_cache = self._backend
            stack.callback(setattr, self, "_backend_cache", None)
            stack.enter_context(
                mock.patch.object(
                    backend, "_harness_archived_readable", self._archived_readable, create=True
                )
            )
            for name, value in self._undocumented.items():
                stack.enter_context(mock.patch.object(backend, name, value, create=True))
            self._client = _session().client("ecr", region_name=self.region)
            stack.callback(setattr, self, "_client", None)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    @property
    def client(self) -> ECRClient:
        """A boto3 ECR client for ``region`` (only while the registry is entered)."""
        if self._client is None:
            raise RuntimeError("FakeRegistry is not entered")
        return self._client

    @property
    def _backend(self) -> ECRBackend:
        # moto's BackendDict lookup is slow enough to matter when seeding thousands of images,
        # so it is cached while entered (moto replaces backends only when a mock starts).
        if self._backend_cache is None:
            backend: ECRBackend = ecr_backends[self.account_id][self.region]
            return backend
        return self._backend_cache

    def _repo(self, name: str) -> Repository:
        repo = self._backend.repositories.get(name)
        if repo is None:
            raise KeyError(f"no repository {name!r} in {self.account_id}/{self.region}")
        return repo

    def _image(self, repo: str, digest: str) -> Image:
        image = _state(self._repo(repo)).by_digest.get(digest)
        if image is None:
            raise KeyError(f"no image {digest} in repository {repo!r}")
        return image

    # -- building state --

    def create_repository(self, name: str) -> None:
        """Create ``name`` through the API; an existing repository is left as it is."""
        if name not in self._backend.repositories:
            self.client.create_repository(repositoryName=name)

    def push(
        self,
        repo: str,
        manifest: ManifestInput,
        *,
        tags: Iterable[str] = (),
        media_type: str | None = None,
        pushed_at: datetime | None = None,
        archived: bool = False,
        last_pulled: datetime | None = None,
    ) -> str:
        """Push through ``put_image`` with ``imageDigest`` = sha256 of the exact bytes.

        ECR's rules apply (e.g. an index whose children are missing is refused with a
        ``ClientError``; so is a manifest that is not JSON: use :meth:`seed` for those). Extra
        tags are added with one more ``put_image`` each; re-pushing a tag that already names this
        digest is a no-op, as with ``docker push``. Then the metadata is set on the stored image.
        Creates the repository if missing. Returns ``sha256:<hex>``.
        """
        raw, mt = _coerce(manifest, media_type)
        text = raw.decode("utf-8")
        digest = oci.sha256_digest(raw)
        self.create_repository(repo)
        request: dict[str, Any] = {
            "repositoryName": repo,
            "imageManifest": text,
            "imageDigest": digest,
        }
        if mt is not None:
            request["imageManifestMediaType"] = mt
        tag_list: list[str | None] = [*tags] or [None]  # one put_image per tag
        for tag in tag_list:
            try:
                self.client.put_image(**request, **({"imageTag": tag} if tag else {}))
            except ClientError as err:
                code = err.response.get("Error", {}).get("Code")
                if (
                    code == "ImageAlreadyExistsException"
                    and self.tags(repo).get(str(tag)) == digest
                ):
                    continue
                raise
        self._set_metadata(
            repo, digest, pushed_at=pushed_at, archived=archived, last_pulled=last_pulled
        )
        return digest

    def seed(
        self,
        repo: str,
        manifest: ManifestInput,
        *,
        tags: Iterable[str] = (),
        media_type: str | None = None,
        pushed_at: datetime | None = None,
        archived: bool = False,
        last_pulled: datetime | None = None,
    ) -> str:
        """Fast path: write straight into moto's backend; same resulting state as :meth:`push`.

        Still refuses an index with missing children (``ValueError``). Unlike ``push`` it accepts
        bytes that are not JSON (give ``media_type``, or pass an ``oci.unparseable()`` manifest),
        to model what a tolerant reader must survive.
        """
        raw, mt = _coerce(manifest, media_type)
        if mt is None:
            raise ValueError("no media type: the manifest has no mediaType field; pass media_type=")
        self.create_repository(repo)
        backend, repository = self._backend, self._repo(repo)
        try:
            image = _store(
                backend,
                repository,
                raw.decode("utf-8"),
                tag=None,
                media_type=mt,
                digest=None,
                require_json=False,
            )
        except ReferencedImagesNotFoundException as err:
            raise ValueError(err.message) from err
        state = _state(repository)
        for tag in tags:
            _tag(backend, repository, state, image, tag)
        digest = image.get_image_digest()
        self._set_metadata(
            repo, digest, pushed_at=pushed_at, archived=archived, last_pulled=last_pulled
        )
        return digest

    def _set_metadata(
        self,
        repo: str,
        digest: str,
        *,
        pushed_at: datetime | None,
        archived: bool,
        last_pulled: datetime | None,
    ) -> None:
        if pushed_at is not None:
            self.set_pushed_at(repo, digest, pushed_at)
        self.set_archived(repo, digest, archived)
        if last_pulled is not None:
            self.set_last_pulled(repo, digest, last_pulled)

    def tag(self, repo: str, tag: str, digest: str) -> None:
        """Point ``tag`` at ``digest`` through ``put_image``, as ECR retags.

        The image that had the tag stays in the repository, untagged. Like any re-push, this
        makes an archived image ACTIVE again.
        """
        image = self._image(repo, digest)
        try:
            self.client.put_image(
                repositoryName=repo,
                imageManifest=image.image_manifest,
                imageManifestMediaType=image.image_manifest_media_type or oci.OCI_MANIFEST,
                imageDigest=digest,
                imageTag=tag,
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ImageAlreadyExistsException":
                raise

    def set_pushed_at(self, repo: str, digest: str, when: datetime) -> None:
        _meta(self._image(repo, digest)).pushed_at = _aware(when)

    def set_last_pulled(self, repo: str, digest: str, when: datetime) -> None:
        _meta(self._image(repo, digest)).last_pulled = _aware(when)

    def pull(self, repo: str, digest: str, when: datetime | None = None) -> None:
        """A workload pulls ``digest`` (at ``when``, default now): its pull time moves, whoever
        is excluded (the workload is not)."""
        _meta(self._image(repo, digest)).last_pulled = _aware(when) if when else _now()

    def last_pulled(self, repo: str, digest: str) -> datetime | None:
        return _meta(self._image(repo, digest)).last_pulled

    @property
    def caller(self) -> str:
        """The principal the suite's own credentials (unknown to moto) call as."""
        return MOTO_USER.format(account=self.account_id)

    def exclude(self, principal: str | None = None) -> None:
        """Register ``principal`` (default: ``caller``) as a pull-time update exclusion, as an
        operator would have done before (straight into the registry, no API call)."""
        _exclusions(self._backend)[principal or self.caller] = _now()

    def exclusions(self) -> set[str]:
        return set(_exclusions(self._backend))

    def set_archived(self, repo: str, digest: str, archived: bool = True) -> None:
        meta = _meta(self._image(repo, digest))
        if archived and not meta.archived:
            meta.archived_at = _now()
        meta.archived = archived
        if not archived:
            meta.archived_at = None

    def reclaim_layer(self, repo: str, digest: str) -> None:
        """ECR cleaned up a blob no manifest uses (it may, at any time): it is no longer
        available, and a manifest naming it can no longer be put."""
        _reclaimed(self._repo(repo)).add(digest)

    def restore(self, repo: str, digest: str, when: datetime | None = None) -> None:
        """Restore an archived image as ECR does (UpdateImageStorageClass to STANDARD, then
        ACTIVE): it "behaves like a newly pushed image", and DescribeImages reports
        `lastActivatedAt` (``when``, default now); `imagePushedAt` stays the push's."""
        self.set_archived(repo, digest, False)
        _meta(self._image(repo, digest)).activated_at = _aware(when or _now())

    def put_lifecycle_policy(self, repo: str, policy: Mapping[str, Any] | str) -> None:
        """Give ``repo`` an ECR lifecycle policy through ``PutLifecyclePolicy`` (a document, or
        its text verbatim); ECR's checks apply (correction 11)."""
        self.create_repository(repo)
        text = policy if isinstance(policy, str) else json.dumps(policy)
        self.client.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)

    # -- reading state (straight from the backend, no API call) --

    def digests(self, repo: str) -> set[str]:
        """Every stored manifest digest, archived ones included."""
        return set(_state(self._repo(repo)).by_digest)

    def derive_details(self) -> None:
        """Work out now, for every stored manifest, what the harness derives from its bytes for
        a listing (size, children, artifact type), which it otherwise does at the first listing
        and keeps: a benchmark measuring a run's memory calls this first, so that the harness's
        bookkeeping is not counted as the run's."""
        for repo in self._backend.repositories.values():
            for image in _state(repo).by_digest.values():
                _info(image)

    def tags(self, repo: str) -> dict[str, str]:
        """tag -> digest."""
        return {tag: img.get_image_digest() for tag, img in _state(self._repo(repo)).by_tag.items()}

    def exists(self, repo: str, digest: str) -> bool:
        repository = self._backend.repositories.get(repo)
        return repository is not None and digest in _state(repository).by_digest

    def manifest(self, repo: str, digest: str) -> bytes:
        return self._image(repo, digest).image_manifest.encode("utf-8")

    def is_archived(self, repo: str, digest: str) -> bool:
        return _meta(self._image(repo, digest)).archived

    # -- buildx --

    def push_buildx(
        self,
        repo: str,
        *,
        tag: str | None,
        platforms: Sequence[str] = ("linux/amd64",),
        attestation: Literal["legacy", "artifact", "none"] = "legacy",
        sbom: bool = False,
        pushed_at: datetime | None = None,
        build_id: str | int | None = None,
        shared_images_from: BuildxPush | None = None,
        fast: bool = False,
    ) -> BuildxPush:
        """Store what ``docker buildx build --push`` stores: children first, then the OCI index.

        ``attestation="legacy"`` gives BuildKit 0.11-0.31 attestations (OCI image manifests of
        in-toto layers, provenance v0.2); ``"artifact"`` the BuildKit 0.32+ OCI-artifact form
        (subject = the platform image, provenance v1); ``"none"`` an index of images only
        (``--provenance=false`` on a multi-platform build). ``sbom`` adds an SPDX layer.
        ``build_id`` (default: a fresh one per call) makes rebuilds produce new digests.
        ``shared_images_from`` reuses that build's platform image manifests (identical children
        listed by two indexes; they are not pushed again) while attestations and index are new.
        Platform images share two base layers per platform across builds, as real rebuilds do.
        ``fast=True`` stores through :meth:`seed` instead of the API.
        """
        bid = build_id if build_id is not None else f"build-{next(self._build_ids)}"
        store = self.seed if fast else self.push
        images: dict[str, oci.Manifest] = {}
        attestations: dict[str, oci.Manifest] = {}
        for platform in platforms:
            shared = shared_images_from.images.get(platform) if shared_images_from else None
            if shared is not None:
                stored = self._image(repo, shared)
                media_type = stored.image_manifest_media_type or oci.OCI_MANIFEST
                images[platform] = oci.Manifest(self.manifest(repo, shared), media_type)
                continue  # buildx finds it in the registry and does not push it again
            base = [oci.layer(f"buildx-base:{platform}:{i}") for i in range(2)]
            image = oci.image_manifest(f"{bid}:{platform}", platform=platform, base_layers=base)
            store(repo, image, pushed_at=pushed_at)
            images[platform] = image
        for platform, image in images.items():
            seed = f"{bid}:{platform}"
            if attestation == "legacy":
                att = oci.legacy_attestation(image.digest, seed=seed, provenance="v0.2", sbom=sbom)
            elif attestation == "artifact":
                att = oci.artifact_attestation(image, seed=seed, provenance="v1", sbom=sbom)
            else:
                continue
            store(repo, att, pushed_at=pushed_at)
            attestations[platform] = att
        idx = oci.buildx_index(images, attestations)
        store(repo, idx, tags=[tag] if tag else [], pushed_at=pushed_at)
        return BuildxPush(
            index=idx.digest,
            images={p: m.digest for p, m in images.items()},
            attestations={p: m.digest for p, m in attestations.items()},
            all=frozenset(
                {
                    idx.digest,
                    *(m.digest for m in images.values()),
                    *(m.digest for m in attestations.values()),
                }
            ),
        )


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session for every registry's own client.

    moto resets ``boto3.DEFAULT_SESSION`` whenever a mock starts, so ``boto3.client`` would load
    botocore's endpoint and service data again for each test (~0.1 s). A session created after
    moto is imported carries moto's request hook like any other.
    """
    return boto3.session.Session()


def _set_env(stack: ExitStack, name: str, value: str) -> None:
    """Set one environment variable until ``stack`` closes (other variables are left alone)."""
    previous = os.environ.get(name)
    os.environ[name] = value

    def restore() -> None:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous

    stack.callback(restore)


def _coerce(manifest: ManifestInput, media_type: str | None) -> tuple[bytes, str | None]:
    """Exact bytes, and the media type to push with (given, else the document's own)."""
    if isinstance(manifest, oci.Manifest):
        return manifest.bytes, media_type or manifest.media_type
    raw = manifest.encode("utf-8") if isinstance(manifest, str) else bytes(manifest)
    if media_type is None:
        try:
            declared = json.loads(raw).get("mediaType")
        except (ValueError, AttributeError):
            declared = None
        media_type = declared if isinstance(declared, str) else None
    return raw, media_type
