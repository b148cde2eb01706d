"""`ecr-sweeper restore` and `ecr-sweeper journal`: after a real run, the journal puts back what
the run deleted, children before indexes, subjects before referrers, tags last; refuses what
lacks a layer; never moves a tag. In-process against the corrected moto registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import OLD
from harness import BuildxPush, FakeRegistry, oci
from sweeper.cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, main
from sweeper.registry import EcrRegistry
from sweeper.run import check_repository
from sweeper.store import DirectoryStore

REPO = "app"
Output = tuple[int, str, str]
Run = Callable[..., Output]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    def call(*args: str) -> Output:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture
def swept(registry: FakeRegistry, cli: Run, tmp_path: Path) -> dict[str, object]:
    """Three builds of `latest`, the oldest two also tagged `v1`/`v2` before the tag moved on
    (then untagged), plus a signed image whose subject goes: a real sweep deleted all but the
    last build, journaled in a directory store."""
    old = registry.push_buildx(REPO, tag="v1", pushed_at=OLD, sbom=True)
    older = registry.push_buildx(REPO, tag="v2", pushed_at=OLD)
    registry.push_buildx(REPO, tag="v1", pushed_at=OLD + timedelta(days=1))
    new = registry.push_buildx(REPO, tag="v2", pushed_at=OLD + timedelta(days=1))
    image = oci.image_manifest("signed")
    registry.push(REPO, image, pushed_at=OLD)
    signature = registry.push(REPO, oci.cosign_signature(image, seed="s"), pushed_at=OLD)
    legacy_tag = "sha256-" + image.digest.removeprefix("sha256:") + ".sig"
    legacy = registry.push(
        REPO, oci.cosign_legacy(image.digest, seed="l"), tags=[legacy_tag], pushed_at=OLD
    )
    before = registry.digests(REPO)
    store = str(tmp_path / "store")
    code, out, _ = cli("sweep", "--yes", "--json", "--manifest-store", store)
    report = json.loads(out)
    assert code == EXIT_OK and report["deleted"]["manifests"] > 0
    deleted = before - registry.digests(REPO)
    assert old.all | older.all | {image.digest, signature, legacy} <= deleted
    return {
        "store": store,
        "run": report["run_id"],
        "before": before,
        "deleted": deleted,
        "old": old,
        "new": new,
        "signature": signature,
        "legacy": legacy,
        "legacy_tag": legacy_tag,
    }


def test_restore_after_a_real_run_brings_back_every_digest_and_nothing_is_broken(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    code, out, err = cli(
        "restore", "--run", str(swept["run"]), "--manifest-store", str(swept["store"]), "--json"
    )
    assert (code, err) == (EXIT_OK, "")
    result = json.loads(out)
    assert {m["digest"] for m in result["manifests"]} == swept["deleted"]
    assert {m["outcome"] for m in result["manifests"]} == {"restored"}
    assert registry.digests(REPO) == swept["before"]
    check = check_repository(EcrRegistry(registry.client), REPO)
    assert check.problems == [] and check.failures == []


def test_a_second_restore_finds_everything_already_present(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    args = ("restore", "--run", str(swept["run"]), "--manifest-store", str(swept["store"]))
    assert cli(*args)[0] == EXIT_OK
    code, out, _ = cli(*args, "--json")
    assert code == EXIT_OK
    assert {m["outcome"] for m in json.loads(out)["manifests"]} == {"already-present"}


def test_restore_never_moves_a_tag_that_now_names_another_manifest(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    new = swept["new"]
    assert isinstance(new, BuildxPush)
    legacy, tag = str(swept["legacy"]), str(swept["legacy_tag"])
    code, out, _ = cli(
        "journal", "--run", str(swept["run"]), "--manifest-store", str(swept["store"]), "--json"
    )
    assert code == EXIT_OK
    [run] = json.loads(out)
    assert {d["digest"]: d["tags"] for d in run["deleted"]}[legacy] == [tag]
    registry.tag(REPO, tag, new.index)  # someone took the tag meanwhile
    code, out, _ = cli(
        "restore", "--run", str(swept["run"]), "--manifest-store", str(swept["store"]), "--json"
    )
    assert code == EXIT_OK
    by_digest = {m["digest"]: m for m in json.loads(out)["manifests"]}
    assert by_digest[legacy]["outcome"] == "restored"
    assert by_digest[legacy]["tags_not_moved"] == {tag: new.index}
    assert registry.tags(REPO)[tag] == new.index


def test_restore_puts_the_recorded_tags_back_last(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    legacy, tag = str(swept["legacy"]), str(swept["legacy_tag"])
    code, out, _ = cli(
        "restore", "--run", str(swept["run"]), "--manifest-store", str(swept["store"]), "--json"
    )
    assert code == EXIT_OK
    by_digest = {m["digest"]: m for m in json.loads(out)["manifests"]}
    assert by_digest[legacy]["tags"] == [tag]
    assert registry.tags(REPO)[tag] == legacy


def test_restore_refuses_what_lacks_a_layer_and_keeps_its_index_out(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    old = swept["old"]
    assert isinstance(old, BuildxPush)
    image = old.images["linux/amd64"]
    layer = json.loads(registry_manifest_from_journal(cli, swept, image))["layers"][-1]["digest"]
    registry.reclaim_layer(REPO, layer)
    code, out, _ = cli(
        "restore",
        "--run",
        str(swept["run"]),
        "--manifest-store",
        str(swept["store"]),
        "--repository",
        REPO,
        "--json",
    )
    assert code == EXIT_FAILURES
    by_digest = {m["digest"]: m for m in json.loads(out)["manifests"]}
    assert by_digest[image]["outcome"] == "not-restorable"
    assert by_digest[image]["missing"] == [f"blob {layer}"]
    # Its index cannot come back without it; the rest does.
    assert by_digest[old.index]["outcome"] == "not-restorable"
    assert by_digest[old.index]["missing"] == [f"child {image}"]
    assert not registry.exists(REPO, image) and not registry.exists(REPO, old.index)
    restored = {d for d, m in by_digest.items() if m["outcome"] == "restored"}
    deleted = swept["deleted"]
    assert isinstance(deleted, set)
    assert restored == deleted - {image, old.index}
    assert check_repository(EcrRegistry(registry.client), REPO).problems == []


def registry_manifest_from_journal(cli: Run, swept: dict[str, object], digest: str) -> str:
    """The bytes the journal recorded for `digest`."""
    store = DirectoryStore(Path(str(swept["store"])))
    [record] = [r for r in store.records(str(swept["run"])) if r.digest == digest]
    return record.text


def test_a_dry_run_restore_puts_nothing_back(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    left = registry.digests(REPO)
    code, out, _ = cli(
        "restore",
        "--run",
        str(swept["run"]),
        "--manifest-store",
        str(swept["store"]),
        "--dry-run",
        "--json",
    )
    assert code == EXIT_OK
    assert {m["outcome"] for m in json.loads(out)["manifests"]} == {"restorable"}
    assert registry.digests(REPO) == left


def test_restore_of_one_digest_and_of_an_unknown_run(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    old = swept["old"]
    assert isinstance(old, BuildxPush)
    child = old.images["linux/amd64"]
    store = str(swept["store"])
    code, out, _ = cli(
        "restore", "--run", str(swept["run"]), "--manifest-store", store, "--digest", child
    )
    assert code == EXIT_OK and "restored" in out
    assert registry.exists(REPO, child) and not registry.exists(REPO, old.index)
    code, _, err = cli("restore", "--run", "nosuch", "--manifest-store", store)
    assert code == EXIT_FAILURES and "nothing of run 'nosuch'" in err
    assert cli("restore", "--run", "x", "--manifest-store", "none")[0] == EXIT_USAGE


def test_journal_lists_the_run_and_what_it_deleted(
    registry: FakeRegistry, cli: Run, swept: dict[str, object]
) -> None:
    code, out, _ = cli("journal", "--manifest-store", str(swept["store"]))
    assert code == EXIT_OK
    deleted = swept["deleted"]
    assert isinstance(deleted, set)
    assert out.startswith(f"{swept['run']}  ")
    assert f"{len(deleted)} manifests in 1 repository" in out
