"""Reviewing a plan from the command line: a summary per repository, the deletions (or every
manifest), the same decisions as a table, as CSV and as JSON, every one of them, in name order;
a tripped circuit breaker that still shows what it held back and why; progress while deleting.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import NOW, OLD
from harness import FakeRegistry, oci
from harness.retention import seed_ci_repositories
from sweeper.cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, human_bytes, main
from sweeper.explain import short
from sweeper.run import MAX_LISTED_DELETIONS

from .conftest import Run


@pytest.fixture
def two_repositories(registry: FakeRegistry) -> dict[str, set[str]]:
    """`zeta` with one moved tag (3 planned deletions), `alpha` with two (6), `mid` with none:
    repository -> the digests a run deletes there."""
    planned: dict[str, set[str]] = {}
    for name, moves in (("zeta", 1), ("alpha", 2), ("mid", 0)):
        planned[name] = set()
        for i in range(moves + 1):
            build = registry.push_buildx(
                name, tag="latest", pushed_at=OLD + timedelta(days=i), fast=True
            )
            if i < moves:
                planned[name] |= build.all
    return planned


def table_rows(out: str) -> list[list[str]]:
    """The decision tables' rows: KIND DIGEST AGE SIZE(2 words) VERDICT REASON CAUSE..."""
    return [line.split() for line in out.splitlines() if re.match(r"\s+\w+\s+sha256:", line)]


# --- the circuit breaker holds the run, not the manifests ---------------------------------------


def test_a_tripped_breaker_still_lists_every_planned_deletion_with_its_real_reason(
    registry: FakeRegistry, two_repositories: dict[str, set[str]], cli: Run
) -> None:
    planned = set().union(*two_repositories.values())
    before = {name: registry.digests(name) for name in two_repositories}
    code, out, _ = cli("plan", "--scope", "orphans", "--max-deletions", "5")
    _, json_out, _ = cli("plan", "--scope", "orphans", "--max-deletions", "5", "--json")
    _, csv_out, _ = cli("plan", "--scope", "orphans", "--max-deletions", "5", "--format", "csv")
    assert code == EXIT_FAILURES  # a held run is not complete
    assert {name: registry.digests(name) for name in two_repositories} == before
    # The table: each planned deletion, verdict delete and its own reason.
    rows = table_rows(out)
    assert {row[1] for row in rows} == {short(d) for d in planned}
    assert {(row[5], row[6]) for row in rows} == {("delete", "unreachable")}
    assert "alpha: 9 manifests, 6 to delete (held by the circuit-breaker), 3 kept" in out
    assert "Would delete 9 manifests (held: over max_deletions 5): " in out
    assert "Circuit breaker: 9 deletions planned, more than max_deletions=5" in out
    # The JSON: every deletion, its reason and cause, held.
    report = json.loads(json_out)
    assert {d["digest"] for d in report["deletions"]} == planned
    assert {(d["reason"], d["held_by"], d["deleted"]) for d in report["deletions"]} == {
        ("unreachable", "circuit-breaker", False)
    }
    assert all(d["cause"] for d in report["deletions"])
    assert "circuit-breaker" not in report["kept"]
    # The CSV: the same.
    records = list(csv.DictReader(io.StringIO(csv_out)))
    assert {(r["digest"], r["verdict"], r["held_by"]) for r in records} == {
        (d, "delete", "circuit-breaker") for d in planned
    }


# --- one plan, three formats --------------------------------------------------------------------


def test_csv_and_table_agree_with_the_json_in_name_order(
    two_repositories: dict[str, set[str]], cli: Run
) -> None:
    code, json_out, _ = cli("plan", "--scope", "orphans", "--json")
    _, csv_out, _ = cli("plan", "--scope", "orphans", "--format", "csv")
    _, table_out, _ = cli("plan", "--scope", "orphans")
    assert code == EXIT_OK
    deletions = json.loads(json_out)["deletions"]
    records = list(csv.DictReader(io.StringIO(csv_out)))
    rows = table_rows(table_out)
    # Name order everywhere (the run's order rotates with the date; the output's does not).
    assert [d["repository"] for d in deletions] == ["alpha"] * 6 + ["zeta"] * 3
    assert [
        (r["repository"], r["digest"], r["kind"], r["reason"], r["cause"], int(r["size"]))
        for r in records
    ] == [
        (d["repository"], d["digest"], d["kind"], d["reason"], d["cause"], d["size"])
        for d in deletions
    ]
    assert [r["pushed"] for r in records] == [d["pushed_at"] for d in deletions]
    assert {r["verdict"] for r in records} == {"delete"}
    assert [(row[0], row[1], row[5], row[6]) for row in rows] == [
        (d["kind"], short(d["digest"]), "delete", d["reason"]) for d in deletions
    ]
    assert [" ".join(row[3:5]) for row in rows] == [human_bytes(d["size"]) for d in deletions]


def test_show_all_lists_every_manifest_in_csv_and_tables(
    registry: FakeRegistry, two_repositories: dict[str, set[str]], cli: Run
) -> None:
    every = {d for name in two_repositories for d in registry.digests(name)}
    _, csv_out, _ = cli("plan", "--scope", "orphans", "--format", "csv", "--show", "all")
    _, table_out, _ = cli("plan", "--scope", "orphans", "--show", "all")
    records = list(csv.DictReader(io.StringIO(csv_out)))
    assert {r["digest"] for r in records} == every
    tagged = [r for r in records if r["reason"] == "tagged"]
    assert {r["tags"] for r in tagged} == {"latest"}
    assert {row[1] for row in table_rows(table_out)} == {short(d) for d in every}


def test_the_summary_comes_first_most_bytes_freed_first_and_kept_counts_by_reason(
    two_repositories: dict[str, set[str]], cli: Run
) -> None:
    _, out, _ = cli("plan", "--scope", "orphans")
    header, *lines = out.split("\n\n", 1)[0].splitlines()
    assert header.split() == [
        "REPOSITORY",
        "MANIFESTS",
        "DELETE",
        "NOMINAL",
        "FREED",
        "KEPT",
        "HAZARDS",
    ]
    assert [(line.split()[0], line.split()[2]) for line in lines] == [
        ("alpha", "6"),
        ("zeta", "3"),
        ("mid", "0"),
    ]
    # With the default --show deletions: no table for `mid`, the kept ones counted.
    assert "\nmid:" not in out
    assert "  kept: 2 listed-by-kept-index, 1 tagged" in out


def test_json_on_the_command_line_lists_every_deletion_past_the_lambdas_cap(
    registry: FakeRegistry, cli: Run, invoke: Callable[..., dict[str, object]]
) -> None:
    count = MAX_LISTED_DELETIONS + 5
    orphans = {registry.seed("bulk", oci.image_manifest(i), pushed_at=OLD) for i in range(count)}
    code, out, _ = cli("plan", "--scope", "orphans", "--json")
    report = json.loads(out)
    assert code == EXIT_OK
    assert {d["digest"] for d in report["deletions"]} == orphans
    assert report["deletions_truncated"] is False
    answer = invoke(dry_run=True, scope="orphans")  # the Lambda keeps its response small
    assert len(answer["deletions"]) == MAX_LISTED_DELETIONS  # type: ignore[arg-type]
    assert answer["deletions_truncated"] is True


def test_output_writes_the_file_and_prints_nothing(
    two_repositories: dict[str, set[str]], cli: Run, tmp_path: Path
) -> None:
    target = tmp_path / "plan.csv"
    code, out, _ = cli("plan", "--scope", "orphans", "--format", "csv", "--output", str(target))
    assert (code, out) == (EXIT_OK, "")
    records = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(records) == 9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "--format", "csv"], "--json: conflicts with --format csv"),
        (["--output", "/nonexistent/dir/plan.csv"], "--output: cannot write"),
    ],
    ids=["json-and-csv", "unwritable-output"],
)
def test_bad_output_flags_are_usage_errors(
    two_repositories: dict[str, set[str]], cli: Run, args: list[str], message: str
) -> None:
    code, _, err = cli("plan", "--scope", "orphans", *args)
    assert code == EXIT_USAGE
    assert message in err


# --- what the run knows, shown --------------------------------------------------------------


def test_plan_shows_the_retention_summary(registry: FakeRegistry, cli: Run) -> None:
    for i in range(4):
        registry.push_buildx("web", tag=f"ci-{i}", pushed_at=OLD + timedelta(hours=i), fast=True)
    rules = json.dumps(
        [
            {
                "rules": [
                    {
                        "rulePriority": 1,
                        "selection": {
                            "tagStatus": "tagged",
                            "tagPatternList": ["ci-*"],
                            "countType": "imageCountMoreThan",
                            "countNumber": 2,
                        },
                        "action": {"type": "expire"},
                    }
                ]
            }
        ]
    )
    code, out, _ = cli("plan", "--scope", "orphans", "--retention", rules)
    assert code == EXIT_OK
    assert "Retention: 2 expired, 2 to delete." in out


# --- progress while deleting ----------------------------------------------------------------


class Screen(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_sweep_shows_its_deleting_progress_on_a_terminal_only(
    registry: FakeRegistry,
    two_repositories: dict[str, set[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = Screen()
    monkeypatch.setattr("sys.stderr", screen)
    assert main(["sweep", "--yes", "--scope", "orphans", "--repository", "alpha"]) == EXIT_OK
    shown = screen.getvalue()
    # Parents first: the two indexes in one batch, then their four children.
    assert "deleting [############............] 1/2 batches, 2/6 manifests, " in shown
    assert re.search(r"deleting \[#{24}\] 2/2 batches, 6/6 manifests, \d+(\.\d)? \w+ freed", shown)
    assert not two_repositories["alpha"] & registry.digests("alpha")
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    assert main(["sweep", "--yes", "--scope", "orphans", "--repository", "zeta"]) == EXIT_OK
    assert not two_repositories["zeta"] & registry.digests("zeta")
    # No progress line in a pipe: only the warning that this sweep has no pin source.
    assert "deleting [" not in pipe.getvalue()
    assert pipe.getvalue().startswith("ecr-sweeper: warning: no pin source configured")


def test_explain_names_the_tag_that_keeps_an_image_not_the_one_a_rule_expires(
    registry: FakeRegistry, cli: Run
) -> None:
    builds = [
        registry.push_buildx("web", tag=f"ci-{i}", pushed_at=OLD + timedelta(hours=i), fast=True)
        for i in range(3)
    ]
    registry.tag("web", "v1.0", builds[0].index)  # the oldest CI build was released
    rules = json.dumps(
        [
            {
                "rules": [
                    {
                        "rulePriority": 1,
                        "selection": {
                            "tagStatus": "tagged",
                            "tagPatternList": ["ci-*"],
                            "countType": "imageCountMoreThan",
                            "countNumber": 1,
                        },
                        "action": {"type": "expire"},
                    }
                ]
            }
        ]
    )
    code, out, _ = cli(
        "explain", "web", builds[0].index, "--scope", "orphans", "--retention", rules
    )
    assert code == EXIT_OK
    assert "verdict: kept (tagged)" in out
    assert "<- tagged 'v1.0'" in out
    _, plan, _ = cli("plan", "--scope", "orphans", "--retention", rules)
    assert "Retention: 1 expired, 1 to delete." in plan  # ci-1; ci-0 is released, ci-2 the newest


def test_plan_and_sweep_show_the_lifecycle_hazards_they_found(
    registry: FakeRegistry, cli: Run
) -> None:
    (web,) = seed_ci_repositories(registry, NOW, names=("web",))
    for command in (["plan"], ["sweep", "--yes"]):
        _, out, _ = cli(*command, "--scope", "orphans", "--pin", web.pins[0])
        assert (
            "Lifecycle hazards: 3 manifests in use that an ECR lifecycle policy will expire:" in out
        )
        hazards = out.split("Lifecycle hazards:", 1)[1]
        (pinned,) = [line for line in hazards.splitlines() if short(web.pinned[0].index) in line]
        assert " pinned " in pinned
        assert short(web.promoted.index) in hazards
