"""The manifest store's objects: what goes in comes out, and nothing comes out unchecked."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from harness import oci
from sweeper.ports import JournalRecord, Stored, StoreError
from sweeper.store import DirectoryStore, parse_s3_uri
from sweeper.store.codec import (
    decode_manifests,
    decode_records,
    digest_of,
    encode_manifests,
    encode_records,
    iter_manifests,
    verified,
)

IMAGE = oci.image_manifest("one")
OTHER = oci.image_manifest("two")
TEXT, OTHER_TEXT = IMAGE.bytes.decode(), OTHER.bytes.decode()


def test_entries_survive_the_round_trip_byte_for_byte() -> None:
    entries = {IMAGE.digest: Stored(TEXT, oci.OCI_MANIFEST), OTHER.digest: Stored(OTHER_TEXT)}
    assert decode_manifests(encode_manifests(entries)) == entries


@pytest.mark.parametrize(
    ("scenario", "entry", "kept"),
    [
        ("the bytes of its digest", Stored(TEXT), True),
        ("a flipped byte", Stored(TEXT.replace("sha256:", "sha256:0", 1)), False),
        ("another manifest's bytes", Stored(OTHER_TEXT), False),
        ("the same JSON re-serialised", Stored(json.dumps(json.loads(TEXT), indent=1)), False),
        ("nothing", Stored(""), False),
    ],
)
def test_an_entry_is_believed_only_when_its_bytes_hash_to_its_digest(
    scenario: str, entry: Stored, kept: bool
) -> None:
    good, rejected = verified({IMAGE.digest: entry}, {IMAGE.digest: object()})
    assert (IMAGE.digest in good, rejected == [IMAGE.digest]) == (kept, not kept)


def test_entries_of_manifests_no_longer_listed_are_dropped_not_rejected() -> None:
    good, rejected = verified({IMAGE.digest: Stored(TEXT)}, {})
    assert (good, rejected) == ({}, [])


def test_an_entry_filed_under_no_digest_is_rejected() -> None:
    _, rejected = verified({"latest": Stored(TEXT)}, {"latest": object()})
    assert rejected == ["latest"]


@pytest.mark.parametrize(
    "data",
    [b"", b"not gzip", gzip.compress(b"[]"), gzip.compress(b'{"format": 2, "manifests": {}}')],
    ids=["empty", "not-gzip", "not-an-object", "another-format"],
)
def test_an_object_that_is_not_one_fails_as_the_store_failing(data: bytes) -> None:
    with pytest.raises(StoreError):
        decode_manifests(data)


def test_entries_read_one_at_a_time_are_the_whole_objects_even_past_a_chunk() -> None:
    # One manifest larger than what is decompressed at a time, in UTF-8 beyond ASCII.
    large = json.dumps({"annotations": {"note": "é" * 100_000}})
    entries = {
        IMAGE.digest: Stored(TEXT, oci.OCI_MANIFEST),
        digest_of(large): Stored(large),
        OTHER.digest: Stored(OTHER_TEXT),
    }
    data = encode_manifests(entries)
    assert dict(iter_manifests(data)) == entries
    assert dict(iter_manifests(data, {OTHER.digest})) == {OTHER.digest: Stored(OTHER_TEXT)}


def test_an_object_written_another_way_is_read_whole() -> None:
    document = {"format": 1, "manifests": {IMAGE.digest: [None, TEXT]}}
    data = gzip.compress(json.dumps(document, indent=2).encode())
    assert dict(iter_manifests(data)) == {IMAGE.digest: Stored(TEXT)}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not gzip",
        gzip.compress(b'{"format": 2, "manifests": {}}'),
        gzip.compress(b'{"format":1,"manifests":{"a":[null,"x"]'),
        gzip.compress(b'{"format":1,"manifests":{"a":[null,"x"]}}')[:-12],
        gzip.compress(b'{"format":1,"manifests":{"a" [null,"x"]}}'),
        gzip.compress(b'{"format":1,"manifests":{"a":[null,"x"] "b":[null,"y"]}}'),
        gzip.compress(b'{"format":1,"manifests":{}}{}'),
    ],
    ids=[
        "empty",
        "not-gzip",
        "another-format",
        "not-closed",
        "cut-short",
        "no-colon",
        "no-comma",
        "more-after",
    ],
)
def test_an_object_read_one_entry_at_a_time_that_is_not_one_fails_as_the_store_failing(
    data: bytes,
) -> None:
    with pytest.raises(StoreError):
        list(iter_manifests(data))


def test_journal_records_round_trip() -> None:
    record = JournalRecord(
        "run", "app", IMAGE.digest, oci.OCI_MANIFEST, ("v1",), "unreachable", "image", "t", TEXT
    )
    assert decode_records(encode_records([record])) == [record]
    assert digest_of(decode_records(encode_records([record]))[0].text) == IMAGE.digest


def test_a_directory_store_keeps_repositories_and_journal_batches_apart(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert store.load("team/app") == {}  # nothing yet is not a failure
    store.save("team/app", {IMAGE.digest: Stored(TEXT)})
    store.save("team", {OTHER.digest: Stored(OTHER_TEXT)})
    assert set(store.load("team/app")) == {IMAGE.digest}
    assert set(store.load("team")) == {OTHER.digest}
    assert store.load("team/app", {OTHER.digest}) == {}  # only what is wanted
    for n in range(2):
        store.journal(
            [JournalRecord("r1", "team/app", f"sha256:{n}", None, (), "unreachable", "", "", "")]
        )
    assert store.runs() == ["r1"]
    assert [r.digest for r in store.records("r1")] == ["sha256:0", "sha256:1"]
    with pytest.raises(StoreError):
        store.records("../manifests")
    assert not list(tmp_path.rglob(".partial-*"))


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://my.bucket/ecr-sweeper", ("my.bucket", "ecr-sweeper")),
        ("s3://bucket/a/b", ("bucket", "a/b")),
        ("s3://bucket/", None),
        ("s3://Bucket/x", None),
        ("s3://bucket/x*", None),
        ("/var/cache/store", None),
    ],
)
def test_s3_locations(uri: str, parsed: tuple[str, str] | None) -> None:
    assert parse_s3_uri(uri) == parsed
