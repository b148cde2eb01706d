"""The store's objects in S3 (the Lambda's store, and the command's with `s3://`)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..ports import StoreError

# What the store calls, and so the IAM it needs on its bucket; template tests compare these with
# template.yaml (s3:ListBucket is what ListObjectsV2 is authorised as).
S3_ACTIONS = ("s3:GetObject", "s3:ListBucket", "s3:PutObject")
_ABSENT = ("NoSuchKey", "404", "NotFound")


class S3Objects:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""

    def get(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            data: bytes = response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _ABSENT:
                return None
            raise _error("GetObject", exc) from exc
        except BotoCoreError as exc:
            raise _error("GetObject", exc) from exc
        return data

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                ContentType="application/json",
                ContentEncoding="gzip",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _error("PutObject", exc) from exc

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            ):
                found.extend(o["Key"][len(self.prefix) :] for o in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise _error("ListObjectsV2", exc) from exc
        return found


def _error(operation: str, exc: Exception) -> StoreError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, message = err.get("Code", "ClientError"), err.get("Message", "")
        return StoreError(f"{operation}: {code}: {message}")
    return StoreError(f"{operation}: {type(exc).__name__}: {exc}")
