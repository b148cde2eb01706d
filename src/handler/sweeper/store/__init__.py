"""The manifest store: an edge beside registry.py (S3, or a local directory for the command).

It keeps the bytes of every manifest a run reads, one compressed object per repository, so no
manifest is read from ECR twice in its life (manifests are immutable: a digest names its bytes
forever), and a journal of every deletion, written before the delete, so `ecr-sweeper restore`
can put it back. Layout under the store's prefix:

    manifests/<repository>.json.gz          what the store holds for that repository
    journal/<run id>/<repository>/<n>.json.gz  one batch of deletions, before its delete call

The store is never trusted (`codec.verified`) and never needed: a store that cannot be read or
written only costs reads (`store: unavailable` in the report); only a journal write that fails
stops a deletion, since a deletion the journal does not hold could not be undone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..ports import ManifestStore
from ..settings import MANIFEST_STORE_PATTERN
from .local import DirectoryStore
from .objects import ObjectStore
from .s3 import S3_ACTIONS, S3Objects

__all__ = [
    "S3_ACTIONS",
    "DirectoryStore",
    "ObjectStore",
    "S3Objects",
    "default_directory",
    "open_store",
    "parse_s3_uri",
]

_S3_URI = re.compile(MANIFEST_STORE_PATTERN)


def parse_s3_uri(uri: str) -> tuple[str, str] | None:
    """(bucket, prefix) of `s3://bucket[/prefix]`, or None when it is not one."""
    if not _S3_URI.fullmatch(uri):
        return None
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def open_store(location: str, client: Callable[[str], Any]) -> ManifestStore:
    """The store at `s3://bucket[/prefix]` (through `client("s3")`) or in a local directory."""
    parsed = parse_s3_uri(location)
    if parsed is not None:
        return ObjectStore(S3Objects(client("s3"), *parsed))
    return DirectoryStore(Path(location))


def default_directory() -> Path:
    """The command's store when none is given: under the user's cache directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ecr-sweeper" / "manifests"
