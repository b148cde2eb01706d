"""The store's objects, as bytes, and the check every entry passes before it is believed. Pure.

One object per repository: `{"format": 1, "manifests": {digest: [media type, text]}}` as JSON,
gzip-compressed (docs/performance.md, "The manifest store", compares the alternatives). One
object per journal batch: `{"format": 1, "records": [...]}`, the same way.

Nothing read back is trusted: `verified` keeps an entry only if the SHA-256 of its bytes is the
digest it is filed under, so a flipped byte, an index with a child cut out or one manifest's
bytes filed under another's digest are dropped (and read from the registry again). What is left
is byte for byte what the registry would serve for that digest; the media type the scan uses is
the listing's, never the store's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..model import is_digest
from ..ports import JournalRecord, Stored, StoreError

FORMAT = 1
LEVEL = 6  # gzip's default: most of the gain of 9 at a fraction of its time
_GZIP = 31  # zlib's window bits for a gzip header and trailer (gzip.decompress reads it)


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_manifests(entries: Mapping[str, Stored]) -> bytes:
    """The repository's object, compressed as it is serialised: never the whole JSON text at
    once (a run saves up to `concurrency` repositories at a time)."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, _GZIP)
    chunks = [compressor.compress(b'{"format":%d,"manifests":{' % FORMAT)]
    for number, (digest, entry) in enumerate(sorted(entries.items())):
        item = json.dumps({digest: [entry.media_type, entry.text]}, separators=(",", ":"))
        chunks.append(compressor.compress(("," if number else "").encode() + item[1:-1].encode()))
    chunks.append(compressor.compress(b"}}"))
    chunks.append(compressor.flush())
    return b"".join(chunks)


def decode_manifests(data: bytes) -> dict[str, Stored]:
    """The entries of a repository's object; an object that is not one raises StoreError."""
    manifests = _document(data).get("manifests")
    if not isinstance(manifests, dict):
        raise StoreError("not a manifest store object: no manifests")
    entries: dict[str, Stored] = {}
    for digest, value in manifests.items():
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[1], str)
            and (value[0] is None or isinstance(value[0], str))
        ):
            entries[digest] = Stored(value[1], value[0])
        else:
            entries[digest] = Stored("")  # malformed: `verified` rejects it
    return entries


def verified(
    entries: Mapping[str, Stored], listed: Mapping[str, object]
) -> tuple[dict[str, Stored], list[str]]:
    """The entries of `listed` digests whose bytes hash to their digest, and the digests of those
    that do not (rejected). Entries of digests not listed (deleted since) are left out."""
    good: dict[str, Stored] = {}
    rejected: list[str] = []
    for digest, entry in entries.items():
        if digest not in listed:
            continue
        if is_digest(digest) and digest_of(entry.text) == digest:
            good[digest] = entry
        else:
            rejected.append(digest)
    return good, rejected


def encode_records(records: Sequence[JournalRecord]) -> bytes:
    document = {
        "format": FORMAT,
        "records": [
            {
                "run_id": r.run_id,
                "repository": r.repository,
                "digest": r.digest,
                "media_type": r.media_type,
                "tags": list(r.tags),
                "reason": r.reason,
                "cause": r.cause,
                "recorded_at": r.recorded_at,
                "manifest": r.text,
            }
            for r in records
        ],
    }
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), LEVEL, mtime=0)


def decode_records(data: bytes) -> list[JournalRecord]:
    records = _document(data).get("records")
    if not isinstance(records, list):
        raise StoreError("not a journal object: no records")
    decoded: list[JournalRecord] = []
    for item in records:
        try:
            decoded.append(
                JournalRecord(
                    run_id=str(item["run_id"]),
                    repository=str(item["repository"]),
                    digest=str(item["digest"]),
                    media_type=None if item["media_type"] is None else str(item["media_type"]),
                    tags=tuple(str(t) for t in item["tags"]),
                    reason=str(item["reason"]),
                    cause=str(item["cause"]),
                    recorded_at=str(item["recorded_at"]),
                    text=str(item["manifest"]),
                )
            )
        except (KeyError, TypeError) as exc:
            raise StoreError(f"malformed journal record: {exc}") from None
    return decoded


def _document(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise StoreError(f"not a gzip-compressed JSON object: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StoreError("not a store object of format 1")
    return document
