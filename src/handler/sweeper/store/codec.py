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

import codecs
import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Container, Iterator, Mapping, Sequence
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
    return {digest: _entry(value) for digest, value in manifests.items()}


_PREFIX = f'{{"format":{FORMAT},"manifests":{{'  # as encode_manifests begins
_CHUNK = 1 << 16  # decompressed bytes taken at a time
_SPACE = re.compile(r"[ \t\n\r]*")


def iter_manifests(
    data: bytes, wanted: Container[str] | None = None
) -> Iterator[tuple[str, Stored]]:
    """The entries of a repository's object (those of `wanted` digests, when given), one at a
    time, decompressed and parsed as they come: never the whole JSON text, nor the whole of its
    parse, at once (a run loads up to `concurrency` repositories at a time). An object that is
    not one raises StoreError, possibly after some entries: the caller drops them then. An
    object that does not begin as `encode_manifests` writes one is decoded whole."""
    stream = _Text(data)
    if not stream.fill(len(_PREFIX)) or not stream.buffer.startswith(_PREFIX):
        entries = decode_manifests(data)
        yield from ((d, e) for d, e in entries.items() if wanted is None or d in wanted)
        return
    stream.position = len(_PREFIX)
    if stream.punctuation("}"):
        stream.close()
        return
    while True:
        digest = stream.value()
        if not isinstance(digest, str) or not stream.punctuation(":"):
            raise StoreError("not a manifest store object: an entry without a digest")
        value = stream.value()
        if wanted is None or digest in wanted:
            yield digest, _entry(value)
        if stream.punctuation(","):
            continue
        if stream.punctuation("}"):
            stream.close()
            return
        raise StoreError("not a manifest store object: entries not separated")


def _entry(value: object) -> Stored:
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[1], str)
        and (value[0] is None or isinstance(value[0], str))
    ):
        return Stored(value[1], value[0])
    return Stored("")  # malformed: `verified` rejects it


class _Text:
    """A gzip-compressed UTF-8 text, decompressed as far as it is read."""

    def __init__(self, data: bytes) -> None:
        self._inflate = zlib.decompressobj(_GZIP)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._pending = data
        self._done = False
        self._decoder = json.JSONDecoder()
        self.buffer = ""
        self.position = 0

    def more(self, at_least: int) -> bool:
        """Decompress at least `at_least` more bytes (as many as there are); False at the end."""
        if self._done:
            return False
        try:
            if self.position > _CHUNK:  # what was parsed is not kept
                self.buffer, self.position = self.buffer[self.position :], 0
            chunk = self._inflate.decompress(self._pending, max(at_least, _CHUNK))
            self._pending = self._inflate.unconsumed_tail
            if self._inflate.eof and self._inflate.unused_data:
                # Another gzip member follows (gzip.decompress reads them all, so does this).
                self._pending = self._inflate.unused_data
                self._inflate = zlib.decompressobj(_GZIP)
            self._done = self._inflate.eof or not (chunk or self._pending)
            if self._done and not self._inflate.eof:
                raise StoreError("not a gzip-compressed object: it is cut short")
            self.buffer += self._utf8.decode(chunk, final=self._done)
        except (zlib.error, UnicodeDecodeError) as exc:
            raise StoreError(f"not a gzip-compressed JSON object: {exc}") from None
        return True

    def fill(self, size: int) -> bool:
        """At least `size` characters past the position (False: the text is shorter)."""
        while len(self.buffer) - self.position < size:
            if not self.more(size):
                return False
        return True

    def skip_space(self) -> None:
        while True:
            found = _SPACE.match(self.buffer, self.position)
            self.position = found.end() if found else self.position
            if self.position < len(self.buffer) or not self.more(_CHUNK):
                return

    def punctuation(self, mark: str) -> bool:
        """Step over `mark` (after any space) if it is next."""
        self.skip_space()
        if self.buffer.startswith(mark, self.position):
            self.position += len(mark)
            return True
        return False

    def value(self) -> Any:
        """The JSON value that comes next: more text is decompressed until it is whole (twice
        as much each time, so a large value costs no more than reading it twice)."""
        self.skip_space()
        while True:
            try:
                found, end = self._decoder.raw_decode(self.buffer, self.position)
            except json.JSONDecodeError:
                if self.more(2 * (len(self.buffer) - self.position)):
                    continue
                raise StoreError("not a manifest store object: malformed JSON") from None
            except RecursionError:
                raise StoreError("not a manifest store object: nested too deep") from None
            self.position = end
            return found

    def close(self) -> None:
        """The object closes, with nothing but space after it."""
        if not self.punctuation("}"):
            raise StoreError("not a manifest store object: not closed")
        self.skip_space()
        if self.position < len(self.buffer):
            raise StoreError("not a manifest store object: more after its end")


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
