"""Missing evidence deletes nothing: a read that fails after botocore's retries stops its
repository (and only it), and the report says which one and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import OLD as LONG_AGO
from conftest import Invoke
from harness import FakeRegistry, oci
from harness.faults import (
    Attempt,
    Inject,
    ServerError,
    Throttle,
    Wire,
    fast_retries,
    intercept_clients,
)
from harness.fresh import fresh_registry
from harness.generated import OLD, build_history, lost_children, snapshot
from harness.lambda_output import captured, log_lines
from harness.workloads import AwsEvents
from sweeper import registry as ecr

BROKEN = "team-a/api"
SIGNED = "app"  # signatures, one of them of an image no repository holds
REQUEST: dict[str, Any] = {"dry_run": False, "scope": "orphans"}


def later_page(attempt: Attempt) -> bool:
    return "nextToken" in attempt.params


def listing(attempt: Attempt) -> bool:
    return "imageIds" not in attempt.params  # DescribeImages pages, not the re-read of a batch


# scenario -> the rule that breaks BROKEN, and the failure code the report must carry
FAILED_READS: list[tuple[str, Inject, str]] = [
    (
        "first listing page throttled past every retry",
        Inject("DescribeImages", Throttle(), repository=BROKEN, when=listing),
        "ThrottlingException",
    ),
    (
        "a later listing page answers 500",
        Inject("DescribeImages", ServerError(), repository=BROKEN, when=later_page),
        "ServerException",
    ),
    (
        "a later listing page answers 503 once, and the retry succeeds",
        Inject(
            "DescribeImages",
            ServerError(503, "ServiceUnavailableException"),
            repository=BROKEN,
            when=later_page,
            attempts={1},
        ),
        "",  # recovers: the repository is swept as usual
    ),
    (
        "manifest fetch answers 500",
        Inject("BatchGetImage", ServerError(), repository=BROKEN),
        "ServerException",
    ),
    (
        "manifest fetch throttled past every retry, on its second batch only",
        Inject("BatchGetImage", Throttle(), repository=BROKEN, when=lambda a: a.call > 1),
        "ThrottlingException",
    ),
]


@pytest.mark.parametrize(
    ("rule", "code"), [(r, c) for _, r, c in FAILED_READS], ids=[n for n, _, _ in FAILED_READS]
)
def test_a_failed_read_stops_only_its_repository(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, rule: Inject, code: str
) -> None:
    monkeypatch.setattr(ecr, "PAGE_SIZE", 10)  # several listing pages per repository
    monkeypatch.setattr(ecr, "_batches", _small_batches)  # several manifest fetches too
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), rebuilds=5)
        before = snapshot(registry, history.repos)
        wire = Wire(rule)
        with intercept_clients(wire), fast_retries():
            report = invoke(**REQUEST)
        after = snapshot(registry, history.repos)
        assert lost_children(registry, before, after) == []
    assert wire.faults, "the fault was never injected"
    for repo in history.repos:
        if repo == BROKEN and code:
            assert after[repo] == before[repo], "a repository with missing evidence deleted"
        else:
            assert after[repo] == history.live[repo]
    if not code:
        assert report["complete"] is True
        return
    assert report["complete"] is False
    failures = report["failures"]
    assert {f["repository"] for f in failures} == {BROKEN}
    assert {f["code"] for f in failures} == {code}
    # Whatever of BROKEN was listed is kept as unreadable (a failed listing lists nothing).
    others = sum(len(before[r]) for r in history.repos if r != BROKEN)
    assert report["kept"].get("unreadable", 0) == report["manifests"] - others
    assert not [d for d in report["deletions"] if d["repository"] == BROKEN]
    assert report["deleted"]["manifests"] == sum(
        len(history.orphans[r]) for r in history.repos if r != BROKEN
    )


@pytest.mark.parametrize("code", ["KmsError", "UpstreamUnavailable", "Missing"])
def test_a_would_be_deletion_whose_bytes_ecr_will_not_give_is_kept_as_unreadable(
    invoke: Invoke, code: str
) -> None:
    """Every would-be deletion is classified from its own bytes. One whose read ECR refuses per
    item (or leaves out of its answer) is kept as unreadable, though its listing alone looks
    like an ordinary image: its bytes could name a subject or be other than they are listed."""
    now = datetime.now(UTC)
    with fresh_registry() as registry:
        kept = registry.push("app", oci.image_manifest("kept"), tags=["v1"], pushed_at=now - OLD)
        refused = registry.push("app", oci.image_manifest("refused"), pushed_at=now - OLD)
        registry.push("app", oci.image_manifest("orphan"), pushed_at=now - OLD)

        def refuse(parsed: dict[str, Any], **_: Any) -> None:
            images = parsed.get("images", [])
            parsed["images"] = [i for i in images if i["imageId"].get("imageDigest") != refused]
            if code != "Missing" and len(parsed["images"]) < len(images):
                parsed["failures"] = [
                    *parsed.get("failures", []),
                    {
                        "imageId": {"imageDigest": refused},
                        "failureCode": code,
                        "failureReason": "no",
                    },
                ]

        with AwsEvents() as events, captured() as out:
            events.on("after-call.ecr.BatchGetImage", refuse)
            report = invoke(dry_run=False, scope="orphans")
        assert registry.digests("app") == {kept, refused}
    assert report["kept"]["unreadable"] == 1
    assert report["deleted"]["manifests"] == 1
    decided = {
        line["digest"]: (line["verdict"], line["reason"], line["cause"])
        for line in log_lines(out.getvalue())
        if line["message"] == "decision"
    }
    # The cause is what ECR answered for it (or that it answered nothing), not a guess.
    cause = "Missing: neither returned nor reported" if code == "Missing" else f"{code}: no"
    assert decided[refused] == ("keep", "unreadable", cause)


def _small_batches(items: Any, size: int = 8) -> Any:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def test_a_failed_repository_listing_deletes_nothing_anywhere(invoke: Invoke) -> None:
    with fresh_registry() as registry:
        history = build_history(registry, datetime.now(UTC), rebuilds=3)
        before = snapshot(registry, history.repos)
        wire = Wire(Inject("DescribeRepositories", ServerError()))
        with intercept_clients(wire), fast_retries():
            report = invoke(**REQUEST)
        assert snapshot(registry, history.repos) == before
    assert report["complete"] is False
    assert [f["code"] for f in report["failures"]] == ["ServerException"]
    assert "DescribeRepositories" in report["failures"][0]["message"]
    assert wire.calls["BatchDeleteImage"] == 0
    # botocore retried before giving up: adaptive mode, max_attempts=10 retries, 11 attempts.
    assert wire.attempts["DescribeRepositories"] == 11


def test_an_archived_index_that_cannot_be_read_keeps_all_that_was_pushed_before_it(
    invoke: Invoke,
) -> None:
    # Whether BatchGetImage serves archived manifests is undocumented: if it does not, an
    # archived index may list whatever was pushed at or before it, and only that is kept.
    with fresh_registry(archived_manifests_readable=False) as registry:
        history = build_history(registry, datetime.now(UTC), rebuilds=3)
        orphans = sorted(history.orphans[BROKEN])
        archived = next(d for d in orphans if b'"manifests"' in registry.manifest(BROKEN, d))
        registry.set_archived(BROKEN, archived)
        pushed = {
            d["imageDigest"]: d["imagePushedAt"]
            for page in registry.client.get_paginator("describe_images").paginate(
                repositoryName=BROKEN, filter={"tagStatus": "ANY", "imageStatus": "ANY"}
            )
            for d in page["imageDetails"]
        }
        before = snapshot(registry, history.repos)
        report = invoke(**REQUEST)
        after = snapshot(registry, history.repos)
    older = {d for d, when in pushed.items() if when <= pushed[archived]}
    assert older <= after[BROKEN]
    assert after[BROKEN] <= before[BROKEN]
    assert report["complete"] is True
    assert report["failures"] == []
    for repo in history.repos:
        if repo != BROKEN:
            assert after[repo] == history.live[repo]


# --- a scan that failed: its repository keeps everything; the others' signatures ----------


class Boom(RuntimeError):
    """An exception nobody foresaw."""


def explode(operation: str) -> Wire:
    def on_attempt(attempt: Attempt) -> None:
        if attempt.operation == operation and attempt.repository == BROKEN:
            raise Boom(f"unexpected answer to {operation}")

    return Wire(on_attempt=on_attempt)


def refuse(operation: str, code: str = "ServerException", status: int = 500) -> Wire:
    return Wire(Inject(operation, ServerError(status, code), repository=BROKEN))


@dataclass(frozen=True)
class Failed:
    wire: Callable[[], Wire]
    code: str
    message: str
    cause: str  # of every manifest of BROKEN, kept as unreadable
    listed: bool  # BROKEN's listing came whole: a subject absent from it is absent


FAILED = {
    "its manifests cannot be read": Failed(
        lambda: refuse("BatchGetImage"),
        "ServerException",
        "BatchGetImage: ServerException: injected",
        "repository incomplete",
        True,
    ),
    "its listing is refused": Failed(
        lambda: refuse("DescribeImages", "AccessDeniedException", 400),
        "AccessDeniedException",
        "DescribeImages: AccessDeniedException: injected",
        "repository incomplete",
        False,
    ),
    "an unexpected exception while reading its manifests": Failed(
        lambda: explode("BatchGetImage"),
        "Internal",
        "Boom: unexpected answer to BatchGetImage",
        "planning failed",
        True,
    ),
    "an unexpected exception while listing it": Failed(
        lambda: explode("DescribeImages"),
        "Internal",
        "Boom: unexpected answer to DescribeImages",
        "planning failed",
        False,
    ),
}


@pytest.mark.parametrize("case", FAILED.values(), ids=FAILED.keys())
def test_a_repository_whose_scan_failed_keeps_everything_and_the_others_know_if_it_was_listed(
    registry: FakeRegistry, invoke: Invoke, case: Failed
) -> None:
    """A failed scan keeps its whole repository, each manifest with the cause. Another
    repository's signature whose subject no repository holds goes, unless a repository could
    not be listed: its subject may be there (a listing that came whole, then a failed read, is
    evidence that it is not)."""
    registry.push_buildx(BROKEN, tag="v1", pushed_at=LONG_AGO)
    registry.push_buildx(BROKEN, tag="v1", pushed_at=LONG_AGO)
    live = registry.push_buildx(SIGNED, tag="v1", pushed_at=LONG_AGO)
    registry.push(
        SIGNED,
        oci.cosign_legacy(live.index),
        tags=[oci.accessory_tag(live.index)],
        pushed_at=LONG_AGO,
    )
    elsewhere = oci.sha256_digest("an image no repository holds")
    waiting = registry.push(
        SIGNED,
        oci.cosign_legacy(elsewhere),
        tags=[oci.accessory_tag(elsewhere)],
        pushed_at=LONG_AGO,
    )
    broken = registry.digests(BROKEN)

    with intercept_clients(case.wire()), fast_retries(), captured() as out:
        report = invoke(**REQUEST, concurrency=1)
    lines = log_lines(out.getvalue())

    assert registry.digests(BROKEN) == broken
    assert [
        (f["repository"], f["digest"], f["code"], f["message"]) for f in report["failures"]
    ] == [(BROKEN, "", case.code, case.message)]
    assert report["complete"] is False
    decided = {
        (line["repository"], line["digest"]): (line["verdict"], line["reason"], line["cause"])
        for line in lines
        if line["message"] == "decision"
    }
    if case.listed:
        assert {d for r, d in decided if r == BROKEN} == broken
    for digest in broken & {d for r, d in decided if r == BROKEN}:
        assert decided[BROKEN, digest] == ("keep", "unreadable", case.cause)
    if case.code == "Internal":
        [failed] = [line for line in lines if line["message"] == "planning failed"]
        assert failed["repository"] == BROKEN
        assert failed["level"] == "ERROR"
    if case.listed:
        assert not registry.exists(SIGNED, waiting)
        assert report["deleted"]["manifests"] == 1
    else:
        assert registry.exists(SIGNED, waiting)
        assert report["deleted"]["manifests"] == 0
        assert decided[SIGNED, waiting] == (
            "keep",
            "unreadable",
            f"subject {elsewhere} may be in {BROKEN}, not listed",
        )
    assert registry.exists(SIGNED, live.index)
