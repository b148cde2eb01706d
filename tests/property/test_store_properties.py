"""The manifest store on random registries: whatever is done to it, the sweep decides as the
oracle does. The function runs with its S3 store (moto); between a dry run that fills the store
and the real run, each stored entry may be left alone, have a byte flipped, lose an index child,
or be swapped for another entry's bytes. Nothing in the store may make a kept manifest go."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conftest import Invoke
from harness.fresh import fresh_registry
from harness.generated import Model, Oracle, broken_promises, registries, seed_into, snapshot
from sweeper.ports import Stored
from sweeper.store.codec import decode_manifests, digest_of, encode_manifests

BUCKET, PREFIX = "sweeper-store", "ecr-sweeper"
SHARED_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
TAMPERINGS = ("none", "flip", "cut-a-child", "swap")


def tamper(text: str, how: str, other: str) -> str:
    if how == "flip":
        return text[:-1] + ("}" if text[-1] != "}" else " ")
    if how == "swap":
        return other
    if how == "cut-a-child":
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
            return text + " "
        if isinstance(document, dict) and isinstance(document.get("manifests"), list):
            document["manifests"] = document["manifests"][1:]
        return json.dumps(document)
    return text


@SHARED_FIXTURES
@given(model=registries(), data=st.data())
def test_a_tampered_store_never_changes_what_the_oracle_says_goes(
    model: Model, data: st.DataObject, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    note(model.describe())
    oracle = Oracle(model)
    monkeypatch.setenv("MANIFEST_STORE", f"s3://{BUCKET}/{PREFIX}")
    with fresh_registry() as registry:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        seed_into(registry, model, datetime.now(UTC))
        repos = model.repositories
        request: dict[str, Any] = {"scope": "orphans", "pins": model.pins}
        before = snapshot(registry, repos)
        garbage = {(r, d) for r in repos for d in oracle.garbage(r, before[r], "orphans")}
        invoke(dry_run=True, **request)  # fills the store
        tampered = 0
        for repo in repos:
            key = f"{PREFIX}/manifests/{repo}.json.gz"
            try:
                body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue
            entries = decode_manifests(body)
            texts = [e.text for e in entries.values()]
            changed: dict[str, Stored] = {}
            for number, (digest, entry) in enumerate(sorted(entries.items())):
                how = data.draw(st.sampled_from(TAMPERINGS), label=f"{repo} {digest[:15]}")
                text = tamper(entry.text, how, texts[(number + 1) % len(texts)])
                tampered += digest_of(text) != digest
                changed[digest] = Stored(text, entry.media_type)
            s3.put_object(Bucket=BUCKET, Key=key, Body=encode_manifests(changed))
        real = invoke(dry_run=False, **request)
        after = snapshot(registry, repos)
        assert broken_promises(oracle, before, after) == []
        gone = {(r, d) for r in repos for d in before[r] - after[r]}
        assert gone == garbage
        assert real["complete"] is True, real["failures"]
        assert real["store"] == "ok"
        assert real["store_rejected"] == tampered
