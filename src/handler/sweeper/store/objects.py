"""The store over any flat object space (S3, a directory): keys to bytes."""

from __future__ import annotations

import threading
from collections.abc import Container, Mapping, Sequence
from typing import Protocol

from ..ports import JournalRecord, Stored, StoreError
from . import codec

MANIFESTS = "manifests/"
JOURNAL = "journal/"
SUFFIX = ".json.gz"


class Objects(Protocol):
    """Where the bytes live. Every method raises StoreError when the place cannot be used."""

    def get(self, key: str) -> bytes | None:
        """The object's bytes, None when there is no such object."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix`."""
        ...


class ObjectStore:
    """`ports.ManifestStore` over `Objects`."""

    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self._lock = threading.Lock()
        self._batches: dict[tuple[str, str], int] = {}

    def load(self, repository: str, wanted: Container[str] | None = None) -> dict[str, Stored]:
        data = self.objects.get(MANIFESTS + repository + SUFFIX)
        return {} if data is None else dict(codec.iter_manifests(data, wanted))

    def save(self, repository: str, entries: Mapping[str, Stored]) -> None:
        self.objects.put(MANIFESTS + repository + SUFFIX, codec.encode_manifests(entries))

    def journal(self, records: Sequence[JournalRecord]) -> None:
        if not records:
            return
        first = records[0]
        if any(r.run_id != first.run_id or r.repository != first.repository for r in records):
            raise ValueError("one journal batch holds one run's deletions in one repository")
        with self._lock:
            number = self._batches.get((first.run_id, first.repository), 0)
            self._batches[first.run_id, first.repository] = number + 1
        key = f"{JOURNAL}{first.run_id}/{first.repository}/{number:06d}{SUFFIX}"
        self.objects.put(key, codec.encode_records(records))

    def runs(self) -> list[str]:
        return sorted({key[len(JOURNAL) :].partition("/")[0] for key in self.objects.keys(JOURNAL)})

    def records(self, run_id: str) -> list[JournalRecord]:
        if "/" in run_id or not run_id:
            raise StoreError(f"not a run id: {run_id!r}")
        records: list[JournalRecord] = []
        for key in sorted(self.objects.keys(f"{JOURNAL}{run_id}/")):
            data = self.objects.get(key)
            if data is not None:
                records.extend(codec.decode_records(data))
        return records
