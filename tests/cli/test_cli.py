"""The `ecr-sweeper` command, in-process, against the corrected moto registry.

Each test is a scenario named for what an operator sees; each asserts the exit code, what was
printed and, where something could be deleted, what is left in the registry.
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType

import boto3
import pytest

from conftest import NOW, OLD, Invoke
from harness import BuildxPush, FakeRegistry, oci
from harness.breakage import remove_behind_ecr
from harness.retention import seed_ci_repositories
from sweeper.cli import (
    EXIT_FAILURES,
    EXIT_OK,
    EXIT_USAGE,
    FLAGS,
    Interrupts,
    Progress,
    build_parser,
    human_bytes,
)
from sweeper.cli import settings_from as cli_settings
from sweeper.clock import use_clock
from sweeper.explain import short
from sweeper.model import Scope
from sweeper.ports import Deleted
from sweeper.registry import EcrRegistry
from sweeper.run import NO_PIN_SOURCE_WARNING, rotate
from sweeper.settings import FIELDS, InvalidSettings

from .conftest import Run

REPO = "app"
UNPROTECTED = f"ecr-sweeper: warning: {NO_PIN_SOURCE_WARNING}\n"  # a sweep with no pin source


@pytest.fixture
def moved_tag(registry: FakeRegistry) -> tuple[BuildxPush, BuildxPush]:
    """`latest` pushed twice a month ago: the first tree is an untagged orphan."""
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)
    new = registry.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1), fast=True)
    return old, new


class Terminal(io.StringIO):
    """Standard input of an operator at a terminal, who types `answer`."""

    def isatty(self) -> bool:
        return True


# --- plan --------------------------------------------------------------------------------------


def test_plan_prints_what_would_go_and_why_and_deletes_nothing(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    old, new = moved_tag
    code, out, err = cli("plan", "--scope", "orphans", "--show", "all")
    assert code == EXIT_OK
    assert registry.digests(REPO) == old.all | new.all
    assert "app: 6 manifests, 3 to delete, 3 kept" in out
    # KIND DIGEST AGE SIZE (number unit) VERDICT REASON CAUSE
    rows = {line.split()[1]: line.split() for line in out.splitlines() if "sha256:" in line}
    assert rows[short(old.index)][:1] + rows[short(old.index)][5:7] == [
        "index",
        "delete",
        "unreachable",
    ]
    assert rows[short(new.index)][5:8] == ["keep", "tagged", "latest"]
    assert rows[short(new.attestations["linux/amd64"])][5:8] == [
        "keep",
        "listed-by-kept-index",
        short(new.index),
    ]
    assert "Would delete 3 manifests" in out
    assert err == ""  # no progress bar when stderr is not a terminal


def test_plan_shows_the_deletions_and_counts_what_it_keeps_by_default(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    old, _ = moved_tag
    code, out, _ = cli("plan", "--scope", "orphans")
    assert code == EXIT_OK
    rows = {line.split()[1] for line in out.splitlines() if "sha256:" in line}
    assert rows == {short(d) for d in old.all}
    assert "  kept: 2 listed-by-kept-index, 1 tagged" in out
    assert "Would delete 3 manifests" in out


def test_plan_json_is_the_report_the_lambda_returns(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run, invoke: Invoke
) -> None:
    code, out, _ = cli("plan", "--json", "--scope", "orphans", "--manifest-store", "none")
    report = json.loads(out)
    lambda_report = invoke(dry_run=True, scope="orphans")
    assert code == EXIT_OK
    assert report["run_id"] and report["run_id"] != lambda_report["run_id"]  # each its own
    del report["duration_seconds"], lambda_report["duration_seconds"]
    del report["run_id"], lambda_report["run_id"]
    assert report == json.loads(json.dumps(lambda_report))
    assert report["planned"]["manifests"] == 3


def test_plan_keeps_what_an_archived_index_it_cannot_read_may_list(cli: Run) -> None:
    with FakeRegistry(archived_manifests_readable=False) as fake:
        fake.exclude()
        build = fake.push_buildx(REPO, tag=None, pushed_at=OLD)
        fake.set_archived(REPO, build.index)
        code, out, _ = cli("plan", "--scope", "orphans", "--show", "all")
        assert code == EXIT_OK
        assert "(archived, unreadable)" in out
        assert "Kept 3: 2 unreadable, 1 archived" in out
        assert fake.digests(REPO) == build.all


@pytest.mark.parametrize(
    ("command", "unreadable_survivor", "line"),
    [
        (["plan"], False, "Would delete 3 manifests: {freed} freed, {nominal} nominal (dry run"),
        (
            ["plan"],
            True,
            "Would delete 3 manifests: bytes freed not known in 1 repository, {nominal}",
        ),
        (["sweep", "--yes"], False, "Deleted 3 of 3 planned manifests: {freed} freed, {nominal}"),
    ],
    ids=["plan", "plan-freed-unknown", "sweep"],
)
def test_totals_show_the_bytes_really_freed_beside_the_nominal_sizes(
    cli: Run, command: list[str], unreadable_survivor: bool, line: str
) -> None:
    with FakeRegistry(archived_manifests_readable=False) as fake:
        fake.exclude()
        old = fake.push_buildx(REPO, tag="latest", pushed_at=OLD, fast=True)
        new = fake.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1), fast=True)
        if unreadable_survivor:  # kept, so the figure cannot say which blobs it still holds
            fake.set_archived(REPO, new.images["linux/amd64"])
        _, out, _ = cli("plan", "--json", "--scope", "orphans")
        planned = json.loads(out)["planned"]
        code, out, _ = cli(*command, "--scope", "orphans")
        after = fake.digests(REPO)
    assert code == EXIT_OK
    assert planned["bytes_freed"] < planned["bytes"]  # shared layers are not freed
    figures = {
        "freed": human_bytes(planned["bytes_freed"]),
        "nominal": human_bytes(planned["bytes"]),
    }
    assert line.format(**figures) in out
    assert ("bytes freed not known in app: " in out) is unreadable_survivor
    assert after == (new.all if command[0] == "sweep" else old.all | new.all)


def test_one_of_each_reads_in_the_singular_and_times_read_as_how_long_ago(
    registry: FakeRegistry, cli: Run
) -> None:
    orphan = registry.push(REPO, oci.image_manifest(1), pushed_at=OLD)
    young = registry.push(REPO, oci.image_manifest(2), pushed_at=OLD + timedelta(days=30))
    with use_clock(lambda: OLD + timedelta(days=30, minutes=20)):
        code, out, _ = cli("plan", "--scope", "orphans", "--show", "all")
        _, json_out, _ = cli("plan", "--scope", "orphans", "--json")
    assert code == EXIT_OK
    assert "app: 2 manifests, 1 to delete, 1 kept" in out
    assert "1 repository, 2 manifests." in out
    assert "Would delete 1 manifest: " in out
    row = next(line for line in out.splitlines() if short(young) in line)
    assert row.split()[5:] == ["keep", "within-grace-period", "pushed", "20", "min", "ago"]
    # The JSON keeps the ISO time; deletions list the orphan with its own.
    report = json.loads(json_out)
    assert [d["digest"] for d in report["deletions"]] == [orphan]
    with use_clock(lambda: OLD + timedelta(days=30, minutes=20)):
        _, out, _ = cli("explain", REPO, young, "--scope", "orphans")
        _, json_out, _ = cli("explain", REPO, young, "--scope", "orphans", "--json")
    assert "<- within the grace period (pushed 20 min ago)" in out
    explained = json.loads(json_out)
    assert explained["cause"] == explained["pushed_at"]  # the ISO time


# repositories given -> (exit code, what stderr warns, what stdout says, repositories left alone)
UNMATCHED = {
    "nothing-matched": (
        ["plan", "--repository", "nosuch"],
        "ecr-sweeper: warning: --repository 'nosuch' matches no repository\n",
        "",
    ),
    "one-of-two-matched": (
        ["plan", "--repository", "nosuch", "--repository", REPO],
        "ecr-sweeper: warning: --repository 'nosuch' matches no repository\n",
        "Would delete 3 manifests",
    ),
    "from-the-event-file": (
        ["plan", "--event", "events/dry-run-one-repository.json"],
        "ecr-sweeper: warning: repositories 'my-app' matches no repository "
        "(in events/dry-run-one-repository.json)\n",
        "",
    ),
    "sweep-goes-on-with-the-rest": (
        ["sweep", "--yes", "--scope", "orphans", "--repository", "nosuch", "--repository", REPO],
        UNPROTECTED + "ecr-sweeper: warning: --repository 'nosuch' matches no repository\n",
        "Deleted 3 of 3 planned manifests",
    ),
    "validate": (
        ["validate", "--repository", "nosuch"],
        "ecr-sweeper: warning: --repository 'nosuch' matches no repository\n",
        "",
    ),
    "validate-one-of-two": (
        ["validate", "--repository", "nosuch", "--repository", REPO],
        "ecr-sweeper: warning: --repository 'nosuch' matches no repository\n",
        "Checked 1 repository, 6 manifests: nothing broken.",
    ),
    "audit": (
        ["audit", "--repository", "nosuch"],
        "ecr-sweeper: warning: --repository 'nosuch' matches no repository\n",
        "",
    ),
    "audit-one-of-two": (
        ["audit", "--repository", "nosuch", "--repository", REPO],
        "ecr-sweeper: warning: --repository 'nosuch' matches no repository\n",
        "Audited 1 repository: 0 hazards.",
    ),
}


@pytest.mark.parametrize(("args", "warning", "said"), UNMATCHED.values(), ids=list(UNMATCHED))
def test_a_repository_pattern_matching_nothing_is_a_failure_named_on_stderr(
    registry: FakeRegistry,
    moved_tag: tuple[BuildxPush, BuildxPush],
    cli: Run,
    args: list[str],
    warning: str,
    said: str,
) -> None:
    old, new = moved_tag
    code, out, err = cli(*args)
    assert code == EXIT_FAILURES  # the same for plan, sweep, validate and audit
    assert err == warning  # one line, once: not repeated among the failures on stdout
    assert "NoRepositoryMatched" not in out
    assert said in out if said else out == ""
    assert registry.digests(REPO) == (new.all if args[0] == "sweep" else old.all | new.all)


def test_a_pattern_whose_repositories_are_all_excluded_did_match(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    code, out, err = cli("plan", "--repository", "ap?", "--exclude", REPO)
    assert (code, err) == (EXIT_OK, "")
    assert "0 repositories, 0 manifests." in out


def test_the_lambda_reports_a_pattern_matching_nothing(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run, invoke: Invoke
) -> None:
    # The command first: the handler's logger, once set up, would print to this stdout too.
    _, out, _ = cli("plan", "--json", "--scope", "orphans", "--repository", "nosuch")
    assert json.loads(out)["failures"][0]["code"] == "NoRepositoryMatched"
    report = invoke(dry_run=True, scope="orphans", repositories=["nosuch", REPO])
    assert report["complete"] is False
    assert report["failures"] == [
        {
            "repository": "",
            "digest": "",
            "code": "NoRepositoryMatched",
            "message": "repositories: 'nosuch' matches no repository",
        }
    ]
    assert report["planned"]["manifests"] == 3  # the pattern that matched is planned as usual


def test_event_file_and_flags_make_one_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"scope": "attestations", "min_age_hours": 1, "dry_run": False}))
    monkeypatch.setenv("SCOPE", "orphans")  # the deployed function's variables are not read
    monkeypatch.setenv("MAX_DELETIONS", "7")
    args = build_parser().parse_args(
        ["sweep", "--event", str(event), "--min-age-hours", "5", "--pin", f"x@sha256:{'a' * 64}"]
    )
    settings = cli_settings(args, dry_run=False)
    assert settings.scope is Scope.ATTESTATIONS  # from the file, not the default
    assert settings.min_age_hours == 5  # the flag wins over the file
    assert settings.dry_run is False  # the command decides, not the file
    assert settings.max_deletions == 5000
    assert [p.digest for p in settings.pins] == [f"sha256:{'a' * 64}"]


# scenario -> (command, the event file's dry_run, exit code, what stderr says)
EVENT_DRY_RUN: dict[str, tuple[list[str], object, int, str]] = {
    "sweep-given-a-dry-run-event-stops": (
        ["sweep", "--yes"],
        True,
        EXIT_USAGE,
        'ecr-sweeper: error: this event asks for a dry run ("dry_run": true in {event}): use '
        "`ecr-sweeper plan`, or drop the field to sweep\n",
    ),
    "plan-given-a-real-run-event-plans-anyway": (
        ["plan"],
        False,
        EXIT_OK,
        'ecr-sweeper: note: this event asks for a real run ("dry_run": false in {event}); plan '
        "is a dry run, and plans anyway (`ecr-sweeper sweep` deletes)\n",
    ),
    "sweep-given-a-real-run-event-sweeps": (["sweep", "--yes"], False, EXIT_OK, UNPROTECTED),
    "plan-given-a-dry-run-event-plans": (["plan"], True, EXIT_OK, ""),
    # Refused as the Lambda refuses it: "false" is a string, and a truthy one.
    "dry-run-as-a-string-refused-by-plan": (
        ["plan"],
        "false",
        EXIT_USAGE,
        "ecr-sweeper: error: invalid setting dry_run: must be true or false (a JSON boolean), "
        'got a string ("false") (in {event})\n',
    ),
    "dry-run-as-a-string-refused-by-sweep": (
        ["sweep", "--yes"],
        "false",
        EXIT_USAGE,
        "ecr-sweeper: error: invalid setting dry_run: must be true or false (a JSON boolean), "
        'got a string ("false") (in {event})\n',
    ),
}


@pytest.mark.parametrize(
    ("command", "dry_run", "code", "said"), EVENT_DRY_RUN.values(), ids=list(EVENT_DRY_RUN)
)
def test_an_event_files_dry_run_is_read_not_ignored(
    registry: FakeRegistry,
    moved_tag: tuple[BuildxPush, BuildxPush],
    cli: Run,
    tmp_path: Path,
    command: list[str],
    dry_run: object,
    code: int,
    said: str,
) -> None:
    old, new = moved_tag
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"dry_run": dry_run, "scope": "orphans"}))
    result, _, err = cli(*command, "--event", str(event))
    assert (result, err) == (code, said.format(event=event))
    swept = command[0] == "sweep" and code == EXIT_OK
    assert registry.digests(REPO) == (new.all if swept else old.all | new.all)


def test_the_lambda_says_a_dry_run_given_as_a_string_is_a_string(
    registry: FakeRegistry, invoke: Invoke
) -> None:
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    with pytest.raises(InvalidSettings, match=r'dry_run: .* got a string \("false"\)'):
        invoke(dry_run="false")


def test_a_scheduled_event_file_carries_no_settings(tmp_path: Path) -> None:
    event = tmp_path / "envelope.json"
    event.write_text(json.dumps({"detail-type": "Scheduled Event", "source": "aws.events"}))
    args = build_parser().parse_args(["plan", "--event", str(event), "--scope", "attestations"])
    settings = cli_settings(args, dry_run=True)
    assert settings.scope is Scope.ATTESTATIONS
    assert settings.min_age_hours == 72


# --- sweep -------------------------------------------------------------------------------------


def test_sweep_yes_deletes_the_orphan_tree_and_finds_nothing_broken(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    _, new = moved_tag
    code, out, _ = cli("sweep", "--yes", "--scope", "orphans")
    assert code == EXIT_OK
    assert registry.digests(REPO) == new.all
    assert "Deleted 3 of 3 planned manifests" in out
    code, out, _ = cli("sweep", "--yes", "--scope", "orphans", "--json")
    report = json.loads(out)
    assert (code, report["planned"]["manifests"], report["broken"]) == (EXIT_OK, 0, [])


def test_sweep_json_reports_validation(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    _, new = moved_tag
    code, out, _ = cli("sweep", "--yes", "--json", "--scope", "orphans")
    report = json.loads(out)
    assert code == EXIT_OK
    assert registry.digests(REPO) == new.all
    assert report["deleted"]["manifests"] == 3
    assert (report["validated"], report["broken"]) == (1, [])


def test_sweep_without_yes_and_without_a_terminal_refuses(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    before = registry.digests(REPO)
    code, out, err = cli("sweep", "--scope", "orphans")
    assert code == EXIT_USAGE
    assert "--yes" in err
    assert out == ""
    assert registry.digests(REPO) == before


@pytest.mark.parametrize(
    ("answer", "code", "deleted"),
    [("y\n", EXIT_OK, True), ("yes\n", EXIT_OK, True), ("n\n", EXIT_FAILURES, False),
     ("\n", EXIT_FAILURES, False), ("", EXIT_FAILURES, False)],
    ids=["y", "yes", "n", "enter", "end-of-input"],
)  # fmt: skip
def test_sweep_at_a_terminal_asks_first(
    registry: FakeRegistry,
    moved_tag: tuple[BuildxPush, BuildxPush],
    cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    deleted: bool,
) -> None:
    old, new = moved_tag
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    result, out, err = cli("sweep", "--scope", "orphans")
    assert result == code
    assert short(old.index) in out  # the plan was shown before the question
    assert "Delete 3 manifests (" in err
    assert "in 1 repository? [y/N]" in err
    assert ("Not confirmed: nothing deleted." in err) is not deleted
    assert registry.digests(REPO) == (new.all if deleted else old.all | new.all)


def test_sweep_over_the_circuit_breaker_deletes_nothing(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    before = registry.digests(REPO)
    code, out, _ = cli("sweep", "--yes", "--scope", "orphans", "--max-deletions", "2")
    assert code == EXIT_FAILURES
    assert "Circuit breaker: 3 deletions planned" in out
    assert registry.digests(REPO) == before


# --- explain -----------------------------------------------------------------------------------


def test_explain_a_kept_attestation_shows_the_path_to_its_tag(
    registry: FakeRegistry, cli: Run
) -> None:
    build = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    attestation = build.attestations["linux/amd64"]
    code, out, _ = cli("explain", REPO, attestation)
    assert code == EXIT_OK
    assert "verdict: kept (listed-by-kept-index)" in out
    assert (
        f"why:     {short(attestation)} (attestation) <- listed by index {short(build.index)}"
        " <- tagged 'latest'"
    ) in out
    code, out, _ = cli("explain", REPO, attestation[:15], "--json")  # a prefix is enough
    explained = json.loads(out)
    assert [(step["digest"], step["reason"]) for step in explained["path"]] == [
        (attestation, "listed-by-kept-index"),
        (build.index, "tagged"),
    ]


@pytest.mark.parametrize(
    ("scope", "which", "verdict", "path"),
    [
        ("orphans", "attestation", "deletable (unreachable)",
         "{att} (attestation) <- listed only by index {index}, deleted first <- unreachable"),
        ("orphans", "index", "deletable (unreachable)", "{index} (index) <- unreachable"),
        ("attestations", "attestation", "kept (listed-by-kept-index)",
         "{att} (attestation) <- listed by index {index} <- out-of-scope (index not in scope"),
    ],
    ids=["orphan-attestation", "orphan-index", "attestation-of-an-out-of-scope-index"],
)  # fmt: skip
def test_explain_an_orphan(
    registry: FakeRegistry,
    moved_tag: tuple[BuildxPush, BuildxPush],
    cli: Run,
    scope: str,
    which: str,
    verdict: str,
    path: str,
) -> None:
    old, _ = moved_tag
    att = old.attestations["linux/amd64"]
    code, out, _ = cli(
        "explain", REPO, att if which == "attestation" else old.index, "--scope", scope
    )
    assert code == EXIT_OK
    assert f"verdict: {verdict}" in out
    assert path.format(att=short(att), index=short(old.index)) in out
    assert registry.exists(REPO, old.index)


def test_explain_a_pinned_index_and_a_signature(registry: FakeRegistry, cli: Run) -> None:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    image = oci.Manifest(registry.manifest(REPO, old.images["linux/amd64"]), oci.OCI_MANIFEST)
    signature = registry.push(REPO, oci.cosign_signature(image), pushed_at=OLD)
    pin = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPO}@{old.index}"
    code, out, _ = cli("explain", REPO, signature, "--scope", "orphans", "--pin", pin)
    assert code == EXIT_OK
    assert (
        # The image is kept without being read: the same kind as plan's table gives it.
        f"{short(signature)} (referrer) <- refers to unclassified "
        f"{short(old.images['linux/amd64'])}"
        f" <- listed by index {short(old.index)} <- pinned (--pin {pin})"
    ) in out


def test_explain_young_manifest_and_excluded_repository(registry: FakeRegistry, cli: Run) -> None:
    young = registry.push(REPO, oci.image_manifest("young"), pushed_at=NOW - timedelta(hours=1))
    code, out, _ = cli("explain", REPO, young, "--exclude", REPO)
    assert code == EXIT_OK
    assert "verdict: kept (within-grace-period)" in out
    assert "a run with these settings does not touch it" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([REPO, f"sha256:{'0' * 64}"], EXIT_FAILURES, "is not in repository 'app'"),
        (["nowhere", f"sha256:{'0' * 64}"], EXIT_FAILURES, "no repository 'nowhere'"),
        ([REPO, "latest"], EXIT_USAGE, "DIGEST: 'latest' is not sha256:<hex>"),
        ([REPO, "sha256:abc"], EXIT_USAGE, "DIGEST"),
    ],
    ids=["unknown-digest", "unknown-repository", "a-tag-is-not-a-digest", "prefix-too-short"],
)
def test_explain_what_is_not_there(
    registry: FakeRegistry, cli: Run, args: list[str], code: int, message: str
) -> None:
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    result, out, err = cli("explain", *args)
    assert result == code
    assert err.count(message) == 1  # a failed call's code is not said twice
    assert err.count("\n") == 1  # one line: not also "digest not in repository"
    assert out == ""


def test_plan_and_explain_give_a_manifest_the_same_kind(registry: FakeRegistry, cli: Run) -> None:
    # The platform image of a tagged index is kept without being read: its kind did not matter.
    build = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    image = build.images["linux/amd64"]
    _, out, _ = cli("plan", "--show", "all")
    row = next(line.split() for line in out.splitlines() if short(image) in line)
    code, out, _ = cli("explain", REPO, image)
    assert code == EXIT_OK
    assert f"kind:    {row[0]} (the plan did not need to read it; its bytes say image)" in out
    assert f"{short(image)} ({row[0]}) <- listed by index" in out
    _, out, _ = cli("explain", REPO, image, "--json")
    explained = json.loads(out)
    assert (explained["kind"], explained["kind_read"]) == (row[0], "image")
    assert explained["path"][0]["kind"] == row[0]


# --- validate ----------------------------------------------------------------------------------


def test_validate_finds_an_index_missing_a_child(registry: FakeRegistry, cli: Run) -> None:
    broken = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push_buildx("other", tag="latest", pushed_at=OLD)
    lost = broken.attestations["linux/amd64"]
    remove_behind_ecr(registry, REPO, lost)
    code, out, _ = cli("validate")
    assert code == EXIT_FAILURES
    row = next(line.split() for line in out.splitlines() if short(broken.index) in line)
    assert row == [REPO, short(broken.index), "index", "missing-child", short(lost)]
    assert "Checked 2 repositories, 5 manifests: 1 broken." in out
    code, out, _ = cli("validate", "--json")
    assert json.loads(out)["broken"] == [
        {
            "repository": REPO,
            "digest": broken.index,
            "kind": "index",
            "problem": "missing-child",
            "missing": [lost],
        }
    ]
    code, out, _ = cli("validate", "--exclude", REPO)
    assert (code, out.strip()) == (EXIT_OK, "Checked 1 repository, 3 manifests: nothing broken.")


def test_validate_reports_a_dangling_referrer_as_dangling_not_broken(
    registry: FakeRegistry, cli: Run
) -> None:
    # Nothing pulls a referrer through its subject, and a sweep may leave one by design: it is
    # listed, and the exit status stays 0.
    never_pushed = oci.image_manifest("gone")
    signature = registry.push(REPO, oci.cosign_signature(never_pushed), pushed_at=OLD)
    code, out, _ = cli("validate", "--json")
    assert code == EXIT_OK
    report = json.loads(out)
    assert (report["broken"], report["complete"]) == ([], True)
    assert report["dangling"] == [
        {
            "repository": REPO,
            "digest": signature,
            "kind": "referrer",
            "problem": "missing-subject",
            "missing": [never_pushed.digest],
        }
    ]
    code, out, _ = cli("validate")
    assert code == EXIT_OK
    assert "Dangling referrers" in out
    row = next(line.split() for line in out.splitlines() if short(signature) in line)
    assert row == [
        REPO,
        short(signature),
        "referrer",
        "missing-subject",
        short(never_pushed.digest),
    ]
    assert out.splitlines()[-1] == (
        "Checked 1 repository, 1 manifest: nothing broken, 1 dangling referrer."
    )


def test_validate_exits_1_for_a_broken_index_beside_a_dangling_referrer(
    registry: FakeRegistry, cli: Run
) -> None:
    broken = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    remove_behind_ecr(registry, REPO, broken.attestations["linux/amd64"])
    registry.push(REPO, oci.cosign_signature(oci.image_manifest("gone")), pushed_at=OLD)
    code, out, _ = cli("validate", "--json")
    report = json.loads(out)
    assert code == EXIT_FAILURES
    assert [p["problem"] for p in report["broken"]] == ["missing-child"]
    assert [p["problem"] for p in report["dangling"]] == ["missing-subject"]


# --- bad usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["plan", "--scope", "all"],
            "invalid setting scope: must be 'attestations' or 'orphans', got 'all' (--scope)",
        ),
        (
            ["plan", "--event", "{events}/bad-scope.json"],
            "invalid setting scope: must be 'attestations' or 'orphans', got 'bogus' "
            "(in {events}/bad-scope.json)",
        ),
        (
            ["plan", "--event", "{events}/bad-pin.json"],
            "invalid setting pins[0]: 'latest' does not contain a valid digest",
        ),
        (["plan", "--event", "{events}/bad-pin.json"], "(in {events}/bad-pin.json)"),
        (
            ["plan", "--event", "{events}/bad-scope.json", "--min-age-hours", "-1"],
            "invalid setting min_age_hours: must be between 0 and",
        ),
        (["plan", "--min-age-hours", "-1"], "min_age_hours: must be between 0 and"),
        (["plan", "--min-age-hours", "soon"], "--min-age-hours: not a number: 'soon'"),
        # At least an hour on the command line too: buildx pushes children before their index.
        (["sweep", "--yes", "--min-age-hours", "0"], "min_age_hours: must be at least 1"),
        (["plan", "--min-age-hours", "0.5"], "min_age_hours: must be at least 1"),
        (["plan", "--exclude", "keep-*\n"], "exclude_repositories[0]: 'keep-*\\n': control"),
        (["plan", "--keep-pulled-within-days", "nan"], "keep_pulled_within_days: must be a number"),
        (["plan", "--pin", "latest"], "pins[0]: 'latest' does not contain a valid digest"),
        (["plan", "--repository", "Team/App"], "repositories[0]"),
        (["plan", "--exclude", "a[b"], "exclude_repositories[0]"),
        (["plan", "--concurrency", "0"], "concurrency: must be between 1 and 64"),
        (["plan", "--max-deletions", "1.5"], "max_deletions: must be a whole number"),
        (["sweep", "--yes", "--scope", "everything"], "scope"),
        (["plan", "--event", "no/such/file.json"], "--event: cannot read no/such/file.json"),
        (
            ["plan", "--event", "{events}/unknown-field.json"],
            "surprise: unknown field",
        ),
        (["plan", "--event", "{events}/unknown-field.json"], "(in {events}/unknown-field.json)"),
        (["plan", "--event", "{events}/not-json.json"], "--event:"),
        (["plan", "--event", "{events}/a-list.json"], "event: must be a JSON object"),
        (["explain", REPO], "DIGEST"),
        (
            ["validate", "--scope", "orphans"],
            "ecr-sweeper validate: error: --scope does not apply to validate",
        ),
        # The breaker means nothing where nothing is deleted.
        (
            ["audit", "--max-deletions", "10"],
            "ecr-sweeper audit: error: --max-deletions does not apply to audit "
            "(see `ecr-sweeper audit --help`)\n",
        ),
        (
            ["explain", REPO, "sha256:abcdef", "--max-deletions=10"],
            "ecr-sweeper explain: error: --max-deletions does not apply to explain",
        ),
        (["audit", "--retention", "[]"], "--retention does not apply to audit"),
        (["plan", "--frobnicate"], "ecr-sweeper plan: error: unrecognized arguments: --frobnicate"),
        ([], "COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else None,
)
def test_bad_usage_exits_2_naming_what_is_wrong_and_deletes_nothing(
    registry: FakeRegistry,
    moved_tag: tuple[BuildxPush, BuildxPush],
    cli: Run,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "unknown-field.json").write_text('{"scope": "orphans", "surprise": 1}')
    (tmp_path / "not-json.json").write_text("scope: orphans")
    (tmp_path / "a-list.json").write_text("[1, 2]")
    (tmp_path / "bad-scope.json").write_text('{"scope": "bogus"}')
    (tmp_path / "bad-pin.json").write_text('{"pins": ["latest"]}')
    before = registry.digests(REPO)
    code, out, err = cli(*(arg.format(events=tmp_path) for arg in args))
    assert code == EXIT_USAGE
    assert message.format(events=tmp_path) in err
    assert err.count("\n") == 1  # one line, not a usage dump
    assert registry.digests(REPO) == before
    assert out == ""


def test_a_flag_that_is_not_json_is_one_line_naming_the_flag(cli: Run) -> None:
    code, out, err = cli("plan", "--retention", "{not json")
    assert (code, out) == (EXIT_USAGE, "")
    assert err == (
        "ecr-sweeper plan: error: argument --retention: not JSON: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1) (see `ecr-sweeper plan --help`)\n"
    )


@pytest.mark.parametrize("command", ["plan", "sweep", "explain", "audit", "validate"])
def test_each_subcommands_help_describes_it_and_shows_an_example(cli: Run, command: str) -> None:
    code, out, _ = cli(command, "--help")
    assert code == EXIT_OK
    usage, description = out.split("\n\n")[:2]
    assert usage.startswith(f"usage: ecr-sweeper {command}")
    assert len(description.split()) >= 10 and not description.startswith(("options", " "))
    example = out.rstrip("\n").split("\n")[-2:]
    assert example[0] == "example:"
    assert example[1].startswith(f"  ecr-sweeper {command} ")


def test_flags_mirror_every_request_field_but_dry_run() -> None:
    assert set(FLAGS) == set(FIELDS) - {"dry_run"}


def test_the_readme_flag_table_lists_every_flag() -> None:
    readme = Path("README.md").read_text()
    table = readme.split("| flag | request field |", 1)[1].split("\n\n", 1)[0]
    rows: list[tuple[str, str]] = []
    for line in table.splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line)  # `a\|b` in a cell is one cell
        flag = re.match(r"\s*`(--[a-z-]+)", cells[1])
        field = re.fullmatch(r"\s*`([a-z_]+)`\s*", cells[2])
        assert flag, line
        rows.append((flag.group(1), field.group(1) if field else ""))
    assert {flag: field for flag, field in rows if field} == {f: n for n, f in FLAGS.items()}
    assert [flag for flag, field in rows if not field] == ["--event"]


def test_no_credentials_says_so_and_prints_no_empty_summary(
    cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance to ask
    for command in (["plan"], ["sweep", "--yes"], ["validate"]):
        code, out, err = cli(*command)
        assert (code, out) == (EXIT_USAGE, ""), command
        # The first call asks who the operator is (the pull-time exclusion check).
        assert err == (UNPROTECTED if command[0] == "sweep" else "") + (
            "ecr-sweeper: error: GetCallerIdentity: NoCredentialsError: Unable to locate "
            "credentials (no AWS credentials: pass --profile, or run `aws configure`)\n"
        )


def test_no_region_and_unknown_profile_are_bad_usage(
    cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    code, _, err = cli("plan")
    assert (code, "--region: no AWS region" in err) == (EXIT_USAGE, True)
    code, _, err = cli("plan", "--region", "us-east-1", "--profile", "nobody")
    assert (code, "--profile:" in err) == (EXIT_USAGE, True)


# --- the command itself ----------------------------------------------------------------------


def test_progress_bar_only_on_a_terminal() -> None:
    class Screen(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen, pipe = Screen(), io.StringIO()
    for stream in (screen, pipe):
        with Progress(stream) as progress:
            progress.step("team/web", 3, 12)
    assert screen.getvalue().startswith("\rscanning [######..................] 3/12 team/web")
    assert screen.getvalue().endswith("\r\x1b[K")  # the line is cleared when done
    assert pipe.getvalue() == ""


def test_entry_points_run_the_command() -> None:
    scripts = tomllib.loads(Path("pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"ecr-sweeper": "sweeper.cli:main"}
    result = subprocess.run(
        [sys.executable, "-m", "sweeper", "--version"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": "src/handler", "PATH": ""},
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ecr-sweeper 0.1.0")


# Run in a process of its own: the command writes to a pipe whose reader has gone.
_PIPED = """
import sys
from harness import FakeRegistry
from sweeper.cli import main

with FakeRegistry() as fake:
    fake.exclude()
    fake.push_buildx("app", tag="latest")
    sys.stdin.readline()  # the reader has closed its end: write now
    sys.exit(main(["plan", "--json", "--region", "us-east-1"]))
"""


def test_a_reader_that_stops_reading_ends_the_command_quietly() -> None:
    # `ecr-sweeper plan --json | head -1`, with `head` gone before the report is written. A clean
    # environment: PYTHONUNBUFFERED (set by some shells and IDEs) would write the report while
    # the command still handles a broken pipe, hiding the buffered case an ordinary shell has.
    process = subprocess.Popen(
        [sys.executable, "-c", _PIPED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": "src/handler:tests", "PATH": ""},
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdout.close()
    _, err = process.communicate("go\n", timeout=60)
    assert (process.returncode, err) == (EXIT_FAILURES, "")


def test_ctrl_c_before_deleting_stops_at_once_and_while_deleting_after_the_batch() -> None:
    interrupts = Interrupts(io.StringIO())
    with pytest.raises(KeyboardInterrupt):
        interrupts._handle(signal.SIGINT, None)  # scanning or asking: nothing deleted yet
    assert interrupts.stopping.is_set()  # repositories not scanned yet are skipped
    interrupts = Interrupts(io.StringIO())
    interrupts.deleting.set()
    interrupts._handle(signal.SIGINT, None)
    assert interrupts.stopping.is_set()
    with pytest.raises(KeyboardInterrupt):
        interrupts._handle(signal.SIGINT, None)  # the second one stops at once


@pytest.mark.parametrize("days_later", [0, 1], ids=["one-day", "the-next-day"])
def test_a_sweep_interrupted_after_its_first_batch_leaves_nothing_broken(
    registry: FakeRegistry, cli: Run, monkeypatch: pytest.MonkeyPatch, days_later: int
) -> None:
    # The repositories' order moves on by one a day (run.rotate): on the clock of two days running,
    # each repository in turn is the one the first batch reaches.
    when = NOW + timedelta(days=days_later)
    swept_first, swept_second = rotate(["first", "second"], when)
    trees = {}
    for repo in ("first", "second"):
        old = registry.push_buildx(repo, tag="latest", pushed_at=OLD, fast=True)
        registry.push_buildx(repo, tag="latest", pushed_at=OLD, fast=True)
        trees[repo] = old
    before = {repo: registry.digests(repo) for repo in trees}
    handled = threading.Event()
    handle = Interrupts._handle

    def handle_and_tell(self: Interrupts, signum: int, frame: FrameType | None) -> None:
        handle(self, signum, frame)
        handled.set()

    delete = EcrRegistry.delete
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def delete_then_ctrl_c(self: EcrRegistry, repository: str, digests: Sequence[str]) -> Deleted:
        outcome = delete(self, repository, digests)
        if not handled.is_set():
            # The operator presses Ctrl-C. Sent to the main thread, which runs Python's handlers:
            # os.kill may land on this worker, and the main thread, blocked waiting for it, would
            # run the handler only after the wait below gave up.
            signal.pthread_kill(main_thread, signal.SIGINT)
            assert handled.wait(10)
        return outcome

    monkeypatch.setattr(Interrupts, "_handle", handle_and_tell)
    monkeypatch.setattr(EcrRegistry, "delete", delete_then_ctrl_c)
    with use_clock(lambda: when):
        code, _, err = cli("sweep", "--yes", "--scope", "orphans", "--concurrency", "1")
    assert code == EXIT_FAILURES
    assert "Stopping before the next batch" in err
    assert "Interrupted: stopped before the next batch" in err
    first = trees[swept_first]
    assert registry.digests(swept_first) == before[swept_first] - {first.index}  # first wave only
    assert registry.digests(swept_second) == before[swept_second]
    monkeypatch.setattr(EcrRegistry, "delete", delete)
    code, out, _ = cli("validate")
    assert (code, out) == (EXIT_OK, "Checked 2 repositories, 11 manifests: nothing broken.\n")


def test_a_sweep_without_any_pin_source_warns_before_deleting_and_in_its_report(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    _, new = moved_tag
    code, out, err = cli("plan")  # a dry run deletes nothing: no warning
    assert (code, err) == (EXIT_OK, "")
    code, out, err = cli("sweep", "--yes", "--json")
    assert (code, err) == (EXIT_OK, UNPROTECTED)
    assert json.loads(out)["warnings"] == [NO_PIN_SOURCE_WARNING]
    assert registry.digests(REPO) == new.all  # a warning, not a refusal
    code, out, err = cli("sweep", "--yes", "--pin", f"app@sha256:{'e' * 64}")
    assert (code, err) == (EXIT_OK, "")


def test_sweep_honours_pins_from_ssm_and_fails_closed_on_a_missing_path(
    registry: FakeRegistry, moved_tag: tuple[BuildxPush, BuildxPush], cli: Run
) -> None:
    old, new = moved_tag
    boto3.client("ssm").put_parameter(
        Name="/deploy/web/image",
        Value=f"123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{old.index}",
        Type="String",
    )
    code, _, err = cli("sweep", "--yes", "--scope", "orphans", "--pin-parameter-path", "/nowhere")
    assert code == EXIT_FAILURES
    assert "ssm" in err.lower()
    assert registry.digests(REPO) == old.all | new.all
    code, _, _ = cli("sweep", "--yes", "--scope", "orphans", "--pin-parameter-path", "/deploy")
    assert code == EXIT_OK
    assert registry.digests(REPO) == old.all | new.all  # the pinned tree and the tagged one


def test_audit_lists_what_ecrs_own_policy_would_expire_that_is_in_use_and_exits_1(
    registry: FakeRegistry, cli: Run
) -> None:
    (web,) = seed_ci_repositories(registry, NOW, names=("web",))
    pin = web.pins[0]
    code, out, _ = cli("audit", "--pin", pin)
    assert code == EXIT_FAILURES
    assert "REASON" in out and "pinned" in out and "other-tag" in out
    assert short(web.pinned[0].index) in out
    assert "Audited 1 repository: 3 hazards" in out  # a pin, the pull, the release tag
    code, out, _ = cli("audit", "--json", "--pin", pin)
    hazards = json.loads(out)["lifecycle_hazards"]
    assert {(h["digest"], h["reason"]) for h in hazards} == {
        (web.pinned[0].index, "pinned"),
        (web.pulled.index, "recently-pulled"),
        (web.promoted.index, "other-tag"),
    }
    assert registry.digests("web") == {d for build in web.builds for d in build.all}
