"""The only module that speaks ECR: paging, batching, retries and per-item failures.

Everything it returns is in the core's words (`Image`, digests, bytes). Every limit of the API is
respected here (1000 per listing page, 100 ids per batch call) because ECR enforces them and
botocore's client-side validation checks types and required members, not these maxima.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .manifests import ALL_MANIFEST_TYPES
from .model import Image
from .ports import (
    BATCH_SIZE,
    NOT_FOUND,
    TIME_BUDGET,
    Deleted,
    Fetched,
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
)
ACCOUNT_ACTIONS = ("ecr:DescribeRepositories",)
REQUIRED_IAM_ACTIONS = tuple(sorted(REPOSITORY_ACTIONS + ACCOUNT_ACTIONS))

NO_LIFECYCLE_POLICY = "LifecyclePolicyNotFoundException"


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


class EcrRegistry:
    """`ports.Registry` for one ECR registry (account and region), behind a thread-safe boto3
    ECR client."""

    def __init__(self, client: ECRClient, registry_id: str | None = None) -> None:
        self._client = client
        # Passed as **kwargs to every call; typed Any because the stubs type each call's kwargs.
        self._registry: dict[str, Any] = {"registryId": registry_id} if registry_id else {}

    def repositories(self) -> list[str]:
        names: list[str] = []
        try:
            for page in self._client.get_paginator("describe_repositories").paginate(
                **self._registry, PaginationConfig={"PageSize": PAGE_SIZE}
            ):
                names.extend(repo["repositoryName"] for repo in page.get("repositories", []))
        except (ClientError, BotoCoreError) as exc:
            raise _error("DescribeRepositories", exc) from exc
        return names

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
        return fetched

    def describe(self, repository: str, digests: Sequence[str]) -> dict[str, Image]:
        """Re-read up to 100 manifests right now; vanished ones are absent from the answer.

        DescribeImages fails the whole call when one id is missing, so a failing call is split
        in halves until the missing ones are isolated (log2(100) extra calls at worst).
        """
        if len(digests) > BATCH_SIZE:
            raise ValueError(f"at most {BATCH_SIZE} digests per call")
        if not digests:
            return {}
        try:
            response = self._client.describe_images(
                **self._registry,
                repositoryName=repository,
                imageIds=[{"imageDigest": d} for d in digests],
                filter={"tagStatus": "ANY", "imageStatus": "ANY"},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ImageNotFoundException":
                raise _error("DescribeImages", exc) from exc
            if len(digests) == 1:
                return {}
            half = len(digests) // 2
            return self.describe(repository, digests[:half]) | self.describe(
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
        for digest in asked - outcome.deleted - outcome.already_gone - set(outcome.failures):
            # Neither confirmed nor refused: never count a deletion that was not confirmed.
            outcome.failures[digest] = ("Unconfirmed", "not listed in the response")
        outcome.deleted -= outcome.already_gone | set(outcome.failures)
        return outcome


def image_from_detail(detail: Any) -> Image:
    """An ECR ImageDetail in the core's words."""
    return Image(
        digest=detail["imageDigest"],
        tags=tuple(detail.get("imageTags") or ()),
        pushed_at=_utc(detail.get("imagePushedAt")),
        size=int(detail.get("imageSizeInBytes") or 0),
        media_type=detail.get("imageManifestMediaType"),
        artifact_media_type=detail.get("artifactMediaType"),
        subject=detail.get("subjectManifestDigest"),
        last_pulled=_utc(detail.get("lastRecordedPullTime")),
        archived=detail.get("imageStatus", "ACTIVE") not in ("ACTIVE",),
    )


def _utc(moment: datetime | None) -> datetime | None:
    # botocore gives ECR's epoch seconds in the host's local time zone; the core and its reports
    # speak UTC wherever the command runs.
    return None if moment is None else moment.astimezone(UTC)
