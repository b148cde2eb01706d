"""The only module that speaks ECR: paging, batching, retries and per-item failures.

Everything it returns is in the core's words (`Image`, digests, bytes). Every limit of the API is
respected here (1000 per listing page, 100 ids per batch call) because ECR enforces them and
botocore's client-side validation checks types and required members, not these maxima.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .manifests import ALL_MANIFEST_TYPES
from .model import Image
from .ports import (
    ARCHIVED_UNREADABLE,
    BATCH_SIZE,
    NOT_FOUND,
    TIME_BUDGET,
    Deleted,
    Fetched,
    PutOutcome,
    RegistryError,
    Stop,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
else:
    ECRClient = Any

PAGE_SIZE = 1000  # DescribeImages / DescribeRepositories maximum

# What the code calls, and so all the IAM it needs; template tests compare this with template.yaml.
REPOSITORY_ACTIONS = (
    "ecr:DescribeImages",
    "ecr:BatchGetImage",
    "ecr:BatchDeleteImage",
    "ecr:GetLifecyclePolicy",  # the audit of ECR's own policy (`lifecycle_policy`)
    "ecr:ListTagsForResource",  # the repository's tags, when a tag must opt it in (opt_in.py)
)
ACCOUNT_ACTIONS = (
    "ecr:DescribeRepositories",
    "ecr:GetAccountSetting",  # BLOB_MOUNTING, for the bytes-freed figure (`blob_mounting`)
)
# The registry's pull-time update exclusions (sweeper/run/exclusion.py): registry-level actions,
# which take no resource-level permissions.
EXCLUSION_ACTIONS = ("ecr:ListPullTimeUpdateExclusions", "ecr:RegisterPullTimeUpdateExclusion")
REQUIRED_IAM_ACTIONS = tuple(sorted(REPOSITORY_ACTIONS + ACCOUNT_ACTIONS + EXCLUSION_ACTIONS))
EXCLUSION_EXISTS = "ExclusionAlreadyExistsException"
# What `ecr-sweeper restore` calls besides reading (the function never does: docs/operations.md
# gives the operator's policy).
RESTORE_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeImages",
    "ecr:PutImage",
)

NO_LIFECYCLE_POLICY = "LifecyclePolicyNotFoundException"
# The imageStatus values a listing hides by default.
NOT_ACTIVE: Final[tuple[Literal["ARCHIVED"], Literal["ACTIVATING"]]] = ("ARCHIVED", "ACTIVATING")


def client_config(
    max_attempts: int = 10, mode: Literal["legacy", "standard", "adaptive"] = "adaptive"
) -> Config:
    """Retries are botocore's own (adaptive mode backs off on throttling across threads); the
    pool holds a connection for every worker thread."""
    return Config(
        retries={"max_attempts": max_attempts, "mode": mode},
        max_pool_connections=64,
    )


def make_client(session: boto3.Session | None = None) -> ECRClient:
    """The ECR client for a run, botocore as shipped: one per run, shared by every thread
    (clients are thread-safe, sessions are not, so it is made once, before the threads).

    `session` carries the credentials and the region (the command's profile); None is boto3's
    default session, as `boto3.client` uses (the Lambda's: its role and region from the
    environment, and whatever event hooks are registered there).
    """
    if session is None:
        default: ECRClient = boto3.client("ecr", config=client_config())
        return default
    client: ECRClient = session.client("ecr", config=client_config())
    return client


def _batches(items: Sequence[str], size: int = BATCH_SIZE) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _error(operation: str, exc: Exception) -> RegistryError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return RegistryError(operation, err.get("Code", "ClientError"), err.get("Message", ""))
    return RegistryError(operation, type(exc).__name__, str(exc))


api_error = _error  # for the other edges' AWS calls (sweeper.identity): one wording of failures


class EcrRegistry:
    """`ports.Registry` for one ECR registry (account and region), behind a thread-safe boto3
    ECR client."""

    def __init__(self, client: ECRClient, registry_id: str | None = None) -> None:
        self._client = client
        # Passed as **kwargs to every call; typed Any because the stubs type each call's kwargs.
        self._registry: dict[str, Any] = {"registryId": registry_id} if registry_id else {}
        # Whether DescribeImages takes a filter beside imageIds (undocumented: see `describe`).
        # Set to False, once, by the first call that ECR refuses for it; a plain bool, so a
        # race between threads at worst repeats that one refused call.
        self._filter_with_ids = True

    def repositories(self) -> list[str]:
        return list(self.repository_arns())

    def repository_arns(self) -> dict[str, str]:
        """Every repository's name and ARN, in ECR's order (the ARN names it to
        ListTagsForResource)."""
        arns: dict[str, str] = {}
        try:
            for page in self._client.get_paginator("describe_repositories").paginate(
                **self._registry, PaginationConfig={"PageSize": PAGE_SIZE}
            ):
                for repo in page.get("repositories", []):
                    arns[repo["repositoryName"]] = repo.get("repositoryArn", "")
        except (ClientError, BotoCoreError) as exc:
            raise _error("DescribeRepositories", exc) from exc
        return arns

    def repository_tags(self, arn: str) -> dict[str, str]:
        """The tags of one repository (ListTagsForResource: one call, never paged)."""
        try:
            response = self._client.list_tags_for_resource(resourceArn=arn)
        except (ClientError, BotoCoreError) as exc:
            raise _error("ListTagsForResource", exc) from exc
        return {tag["Key"]: tag.get("Value", "") for tag in response.get("tags") or ()}

    def images(self, repository: str, stop: Stop | None = None) -> list[Image]:
        """Every manifest of the repository, archived ones too (they are parents and roots).

        `stop` is asked before every page after the first; when it says so, the listing is
        abandoned with a RegistryError coded TIME_BUDGET (a partial listing is no evidence).
        """
        images: list[Image] = []
        try:
            for page in self._client.get_paginator("describe_images").paginate(
                **self._registry,
                repositoryName=repository,
                filter={"tagStatus": "ANY", "imageStatus": "ANY"},
                PaginationConfig={"PageSize": PAGE_SIZE},
            ):
                images.extend(image_from_detail(detail) for detail in page.get("imageDetails", []))
                # Pages are fetched lazily: raising here means the next one is never asked for.
                if page.get("nextToken") and stop is not None and stop():
                    raise RegistryError("DescribeImages", TIME_BUDGET, "stopped between pages")
        except (ClientError, BotoCoreError) as exc:
            raise _error("DescribeImages", exc) from exc
        return images

    def manifests(
        self, repository: str, digests: Sequence[str], stop: Stop | None = None
    ) -> Fetched:
        """Exact bytes of each manifest, asking for every manifest type so ECR converts none.

        `stop` is asked before every call after the first, as for `images`.

        Whether BatchGetImage serves an archived manifest is undocumented: it may, or refuse it
        per item, and the refusal may well be `ImageNotFound` (an archived image cannot be
        pulled). Read as gone, an archived index would leave its children unprotected; so any
        manifest answered `ImageNotFound` is looked for among the repository's archived (and
        restoring) manifests, and one found there fails as ARCHIVED_UNREADABLE instead.
        """
        fetched = Fetched()
        for number, batch in enumerate(_batches(digests)):
            if number and stop is not None and stop():
                raise RegistryError("BatchGetImage", TIME_BUDGET, "stopped between batches")
            try:
                response = self._client.batch_get_image(
                    **self._registry,
                    repositoryName=repository,
                    imageIds=[{"imageDigest": d} for d in batch],
                    acceptedMediaTypes=sorted(ALL_MANIFEST_TYPES),
                )
            except (ClientError, BotoCoreError) as exc:
                raise _error("BatchGetImage", exc) from exc
            for image in response.get("images", []):
                digest = image.get("imageId", {}).get("imageDigest")
                body = image.get("imageManifest")
                if digest and body is not None:
                    fetched.content[digest] = body
            for failure in response.get("failures", []):
                digest = failure.get("imageId", {}).get("imageDigest", "")
                fetched.failures[digest] = (
                    failure.get("failureCode", "Unknown"),
                    failure.get("failureReason", ""),
                )
            for digest in batch:
                if digest not in fetched.content and digest not in fetched.failures:
                    fetched.failures[digest] = ("Missing", "neither returned nor reported")
        not_found = [d for d, (code, _) in fetched.failures.items() if code == NOT_FOUND]
        for digest in self._not_active(repository, not_found):
            fetched.failures[digest] = (
                ARCHIVED_UNREADABLE,
                "BatchGetImage answered ImageNotFound, but the repository lists it as archived",
            )
        return fetched

    def _not_active(self, repository: str, digests: Sequence[str]) -> set[str]:
        """Those of `digests` that the repository lists as not ACTIVE (archived, or being
        restored): the documented listing, DescribeImages with `filter.imageStatus`, is the
        evidence that a manifest some answer by id called missing is still there. Archived
        manifests are few, so this is usually one call per status."""
        wanted, found = set(digests), set[str]()
        if not wanted:
            return found
        for status in NOT_ACTIVE:
            try:
                for page in self._client.get_paginator("describe_images").paginate(
                    **self._registry,
                    repositoryName=repository,
                    filter={"tagStatus": "ANY", "imageStatus": status},
                    PaginationConfig={"PageSize": PAGE_SIZE},
                ):
                    found.update(
                        d["imageDigest"]
                        for d in page.get("imageDetails", [])
                        if d.get("imageDigest") in wanted
                    )
                    if found == wanted:
                        return found
            except (ClientError, BotoCoreError) as exc:
                raise _error("DescribeImages", exc) from exc
        return found

    def describe(self, repository: str, digests: Sequence[str]) -> dict[str, Image]:
        """Re-read up to 100 manifests right now; vanished ones are absent from the answer.

        DescribeImages fails the whole call when one id is missing, so a failing call is split
        in halves until the missing ones are isolated (log2(100) extra calls at worst).

        What ECR does with `imageIds` and a `filter` together is not documented. It may honour
        `imageStatus: ANY` (archived manifests are answered, as ARCHIVED), refuse the pair
        (InvalidParameterException: the ids are then asked for alone, the documented form, from
        then on), or ignore the filter, and so answer by id as it lists, hiding what is not
        ACTIVE. A hidden manifest would read as gone, and an archived candidate must never be
        deleted; so every id that does not come back is asked for once more, with BatchGetImage
        (which looks among the archived manifests before it calls one not found: see
        `manifests`): only an `ImageNotFound` there makes it gone (absent from the answer). One
        that is read, or refused for another reason, is still there but not ACTIVE: it comes
        back as an archived Image without tags, which the sweep keeps.
        """
        if len(digests) > BATCH_SIZE:
            raise ValueError(f"at most {BATCH_SIZE} digests per call")
        if not digests:
            return {}
        found = self._describe(repository, list(digests))
        unseen = [d for d in dict.fromkeys(digests) if d not in found]
        if unseen:
            found |= self._still_there(repository, unseen)
        return found

    def _describe(self, repository: str, digests: list[str]) -> dict[str, Image]:
        status: dict[str, Any] = (
            {"filter": {"tagStatus": "ANY", "imageStatus": "ANY"}} if self._filter_with_ids else {}
        )
        try:
            response = self._client.describe_images(
                **self._registry,
                repositoryName=repository,
                imageIds=[{"imageDigest": d} for d in digests],
                **status,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "InvalidParameterException" and status:
                self._filter_with_ids = False  # refused with ids: ask for the ids alone
                return self._describe(repository, digests)
            if code != "ImageNotFoundException":
                raise _error("DescribeImages", exc) from exc
            if len(digests) == 1:
                return {}
            half = len(digests) // 2
            return self._describe(repository, digests[:half]) | self._describe(
                repository, digests[half:]
            )
        except BotoCoreError as exc:
            raise _error("DescribeImages", exc) from exc
        return {
            image.digest: image
            for image in (image_from_detail(d) for d in response.get("imageDetails", []))
            if image.digest in digests
        }

    def lifecycle_policy(self, repository: str) -> str | None:
        """The repository's ECR lifecycle policy text, or None when it has none (one call)."""
        try:
            response = self._client.get_lifecycle_policy(
                **self._registry, repositoryName=repository
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == NO_LIFECYCLE_POLICY:
                return None
            raise _error("GetLifecyclePolicy", exc) from exc
        except BotoCoreError as exc:
            raise _error("GetLifecyclePolicy", exc) from exc
        text = response.get("lifecyclePolicyText")
        if not isinstance(text, str):
            # A policy that exists but whose text did not come: nothing proves there is none.
            raise RegistryError("GetLifecyclePolicy", "Missing", "no lifecyclePolicyText")
        return text

    def blob_mounting(self) -> bool:
        """Whether the account setting BLOB_MOUNTING is ENABLED: layers are then shared between
        the registry's repositories, and a blob is freed only when no repository uses it."""
        try:
            response = self._client.get_account_setting(name="BLOB_MOUNTING")
        except (ClientError, BotoCoreError) as exc:
            raise _error("GetAccountSetting", exc) from exc
        return response.get("value") == "ENABLED"

    def _still_there(self, repository: str, digests: list[str]) -> dict[str, Image]:
        """Of manifests DescribeImages did not show, those BatchGetImage does not call gone."""
        fetched = self.manifests(repository, digests)
        return {
            digest: Image(digest, archived=True)
            for digest in digests
            if digest in fetched.content
            or fetched.failures.get(digest, (NOT_FOUND,))[0] != NOT_FOUND
        }

    def delete(self, repository: str, digests: Sequence[str]) -> Deleted:
        """Delete up to 100 manifests by digest and read every per-item answer."""
        if len(digests) > BATCH_SIZE:
            raise ValueError(f"at most {BATCH_SIZE} digests per call")
        outcome = Deleted()
        if not digests:
            return outcome
        try:
            response = self._client.batch_delete_image(
                **self._registry,
                repositoryName=repository,
                imageIds=[{"imageDigest": d} for d in digests],
            )
        except (ClientError, BotoCoreError) as exc:
            raise _error("BatchDeleteImage", exc) from exc
        asked = set(digests)
        for image_id in response.get("imageIds", []):
            digest = image_id.get("imageDigest")
            if digest in asked:
                outcome.deleted.add(digest)
                tag = image_id.get("imageTag")
                if tag:
                    outcome.tags_removed.setdefault(digest, []).append(tag)
        for failure in response.get("failures", []):
            digest = failure.get("imageId", {}).get("imageDigest", "")
            code = failure.get("failureCode", "Unknown")
            if code == NOT_FOUND:
                outcome.already_gone.add(digest)
            else:
                outcome.failures[digest] = (code, failure.get("failureReason", ""))
        outcome.deleted -= outcome.already_gone | set(outcome.failures)
        unconfirmed = sorted(asked - outcome.deleted - outcome.already_gone - set(outcome.failures))
        if unconfirmed:
            # Neither confirmed nor refused: whether ECR lists a deleted untagged digest in
            # `imageIds` is undocumented. Never counted as deleted; a read by digest tells
            # whether it is gone (then it counts as already gone, and what it listed may go
            # this run) or still there (a failure: what it lists stays).
            try:
                present: Collection[str] = self.describe(repository, unconfirmed)
            except RegistryError:
                present = unconfirmed  # not known gone: failures, as if still there
            for digest in unconfirmed:
                if digest in present:
                    outcome.failures[digest] = ("Unconfirmed", "not listed in the response")
                else:
                    outcome.already_gone.add(digest)
        return outcome

    # --- restore (ports.RegistryWriter) --------------------------------------------------------

    def missing_layers(self, repository: str, digests: Sequence[str]) -> list[str]:
        """Of the blob `digests`, those the repository does not have (BatchCheckLayerAvailability,
        100 a call): ECR may clean up a layer no manifest uses at any time."""
        missing: list[str] = []
        for batch in _batches(list(dict.fromkeys(digests))):
            try:
                response = self._client.batch_check_layer_availability(
                    **self._registry, repositoryName=repository, layerDigests=batch
                )
            except (ClientError, BotoCoreError) as exc:
                raise _error("BatchCheckLayerAvailability", exc) from exc
            available = {
                layer["layerDigest"]
                for layer in response.get("layers", [])
                if layer.get("layerAvailability") == "AVAILABLE" and "layerDigest" in layer
            }
            missing.extend(d for d in batch if d not in available)
        return missing

    def put(
        self, repository: str, text: str, media_type: str | None, digest: str, tag: str | None
    ) -> PutOutcome:
        """PutImage of these exact bytes, by digest (ECR refuses bytes of another digest), and
        the tag when given. A refusal is an outcome, not an error."""
        request: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": text,
            "imageDigest": digest,
        }
        if media_type:
            request["imageManifestMediaType"] = media_type
        if tag:
            request["imageTag"] = tag
        try:
            response = self._client.put_image(**self._registry, **request)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            return PutOutcome(None, err.get("Code", "ClientError"), err.get("Message", ""))
        except BotoCoreError as exc:
            raise _error("PutImage", exc) from exc
        stored = response.get("image", {}).get("imageId", {}).get("imageDigest")
        return PutOutcome(stored)

    def tagged(self, repository: str, tag: str) -> str | None:
        """The digest `tag` names now, or None (DescribeImages by tag)."""
        try:
            response = self._client.describe_images(
                **self._registry, repositoryName=repository, imageIds=[{"imageTag": tag}]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
                return None
            raise _error("DescribeImages", exc) from exc
        except BotoCoreError as exc:
            raise _error("DescribeImages", exc) from exc
        details = response.get("imageDetails", [])
        return details[0].get("imageDigest") if details else None

    def pull_time_exclusions(self) -> list[str]:
        principals: list[str] = []
        token: str | None = None
        try:
            while True:
                page = (
                    self._client.list_pull_time_update_exclusions(nextToken=token)
                    if token
                    else self._client.list_pull_time_update_exclusions()
                )
                principals.extend(page.get("pullTimeUpdateExclusions") or ())
                token = page.get("nextToken")
                if not token:
                    return principals
        except (ClientError, BotoCoreError) as exc:
            raise _error("ListPullTimeUpdateExclusions", exc) from exc

    def register_pull_time_exclusion(self, principal: str) -> None:
        try:
            self._client.register_pull_time_update_exclusion(principalArn=principal)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != EXCLUSION_EXISTS:
                raise _error("RegisterPullTimeUpdateExclusion", exc) from exc
        except BotoCoreError as exc:
            raise _error("RegisterPullTimeUpdateExclusion", exc) from exc


# A run holds an Image for every planned deletion, and the parser gives each listed image its own
# copy of the same few media types: one copy of each is kept instead (bounded, since any string
# may be a media type).
_MEDIA_TYPES: dict[str, str] = {}
_MEDIA_TYPES_KEPT = 1000


def _one_copy(value: str | None) -> str | None:
    if value is None:
        return None
    found = _MEDIA_TYPES.get(value)
    if found is not None:
        return found
    if len(_MEDIA_TYPES) >= _MEDIA_TYPES_KEPT:
        return value
    return _MEDIA_TYPES.setdefault(value, value)


def image_from_detail(detail: Any) -> Image:
    """An ECR ImageDetail in the core's words."""
    return Image(
        digest=detail["imageDigest"],
        tags=tuple(detail.get("imageTags") or ()),
        pushed_at=_utc(detail.get("imagePushedAt")),
        size=int(detail.get("imageSizeInBytes") or 0),
        media_type=_one_copy(detail.get("imageManifestMediaType")),
        artifact_media_type=_one_copy(detail.get("artifactMediaType")),
        subject=detail.get("subjectManifestDigest"),
        last_pulled=_utc(detail.get("lastRecordedPullTime")),
        archived=detail.get("imageStatus", "ACTIVE") not in ("ACTIVE",),
        activated_at=_utc(detail.get("lastActivatedAt")),
    )


def _utc(moment: datetime | None) -> datetime | None:
    # botocore gives ECR's epoch seconds in the host's local time zone; the core and its reports
    # speak UTC wherever the command runs.
    return None if moment is None else moment.astimezone(UTC)
