"""Mutation testing of the modules the promise rests on, one module at a time (`make mutate`).

    python scripts/mutate.py                 # every module of MODULES, one after the other
    python scripts/mutate.py plan manifests  # only those
    python scripts/mutate.py --list          # the modules and the tests that cover each

mutmut 3 (docs/testing.md says why) mutates a copy of the code and runs, for each mutant, only
the tests that call the mutated function (it records which in a first run of the module's tests).
Each module runs in a directory of its own, build/mutate/<module>/, laid out as mutmut expects
(`sweeper/`, `app.py` and `tests/` at the top, no `src/handler` on the path, so that the tests
import the mutated copy): modules are shards that can run on separate machines, and a second run
of a module retests only what changed. The score of each module is printed, with its surviving
mutants; `mutmut show <name>` in the module's directory prints one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLER = ROOT / "src" / "handler"
BUILD = ROOT / "build" / "mutate"

# module -> (files mutated, relative to src/handler; the test files that cover them). Each test
# list is the module's own tests plus the scenarios written from the promise that exercise it;
# the slow property tests are left to `make test`/`make soak`.
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "plan": (
        ["sweeper/plan.py"],
        [
            "tests/unit/test_plan.py",
            "tests/unit/test_explain.py",
            "tests/unit/test_retention_plan.py",
            "tests/unit/test_held_tags_core.py",
            "tests/integration/test_accessories.py",
            "tests/integration/test_promise_holds.py",
            "tests/integration/test_review_holes.py",
            "tests/integration/test_scenarios.py",
        ],
    ),
    "manifests": (
        ["sweeper/manifests.py"],
        [
            "tests/unit/test_manifests.py",
            "tests/unit/test_real_manifests.py",
            "tests/unit/test_plan.py",
            "tests/faults/test_malformed_manifests.py",
            "tests/integration/test_scenarios.py",
        ],
    ),
    "lifecycle": (
        ["sweeper/lifecycle.py"],
        [
            "tests/unit/test_lifecycle.py",
            "tests/unit/test_lifecycle_hazards.py",
            "tests/unit/test_retention_plan.py",
            "tests/unit/test_retention_figures.py",
            "tests/unit/test_held_tags_core.py",
            "tests/integration/test_retention_core.py",
            "tests/integration/test_held_tags.py",
            "tests/integration/test_promise_holds.py",
        ],
    ),
    "audit": (
        ["sweeper/audit.py"],
        [
            "tests/unit/test_lifecycle_hazards.py",
            "tests/unit/test_held_tags_core.py",
            "tests/integration/test_retention.py",
            "tests/integration/test_held_tags.py",
            "tests/integration/test_review_holes.py",
            "tests/integration/test_promise_holds.py",
        ],
    ),
    "settings": (
        ["sweeper/settings.py", "sweeper/settings/*"],  # a package since issue 23
        [
            "tests/unit/test_settings.py",
            "tests/unit/test_opt_in.py",
            "tests/faults/test_bad_input.py",
            "tests/integration/test_promise_holds.py",
            "tests/integration/test_review_holes.py",
            "tests/integration/test_workload_accounts.py",
            "tests/integration/test_held_tags.py",
            "tests/integration/test_pull_times.py",  # the exclusion's settings, as deployed
        ],
    ),
    "pins": (
        # A module today; a package (sweeper/pins/) is on its way: both are mutated.
        ["sweeper/pins.py", "sweeper/pins/*"],
        [
            "tests/unit/test_pin_sources.py",
            "tests/integration/test_pins.py",
            "tests/integration/test_promise_holds.py",
            # EKS, Amazon Inspector and the places in other accounts (issue 20) have their own
            # scenarios; without them, 590 of the 1,710 mutants had no covering test.
            "tests/integration/test_eks.py",
            "tests/integration/test_inspector.py",
            "tests/integration/test_workload_accounts.py",
            "tests/integration/test_held_tags.py",  # tags in use, as ECS, EKS and SSM find them
        ],
    ),
    "run-sweep": (
        ["sweeper/run/sweep.py"],
        [
            "tests/integration/test_scenarios.py",
            "tests/integration/test_guards.py",
            "tests/faults/test_races.py",
            "tests/faults/test_delete_failures.py",
            "tests/faults/test_time_budget.py",
            "tests/faults/test_undocumented_ecr.py",  # archived or gone between scan and delete
            "tests/integration/test_accessories.py",  # dangling referrers' absent subjects
            "tests/integration/test_manifest_store.py",  # the journal written before each batch
            "tests/integration/test_pull_times.py",  # pulled since the scan, on the re-read
        ],
    ),
    "run-scan": (
        ["sweeper/run/scan.py"],
        [
            "tests/integration/test_scenarios.py",
            "tests/faults/test_failed_reads.py",
            "tests/faults/test_undocumented_ecr.py",
            "tests/faults/test_time_budget.py",  # a scan cut short between pages or fetches
            "tests/integration/test_retention_core.py",
            "tests/integration/test_lifecycle_policy_reads.py",  # the audit's reads
            "tests/integration/test_manifest_store.py",  # bytes from the store, and back to it
            "tests/integration/test_observability.py",  # the survivors read for bytes freed
            # The promise's scenarios cross the scan too (what it reads, keeps and passes on).
            "tests/integration/test_promise_holds.py",
            "tests/integration/test_review_holes.py",
            "tests/integration/test_accessories.py",
            # The store's side of the scan, archived indexes, the survivors' reads.
            "tests/integration/test_scan_store.py",
            # The scan's reads, keeps and log lines, and the retention and audit scenarios
            # (tags in use, hazards) that judge what the scan passes to the plan.
            "tests/integration/test_scan_run.py",
            "tests/integration/test_held_tags.py",
            "tests/integration/test_retention.py",
        ],
    ),
}

MUTMUT_VERSION = "3.8.1"  # as pinned in requirements-dev.txt


def prepare(module: str) -> Path:
    """The module's directory: fresh copies of the code and the tests, and its pyproject.toml.
    mutmut's own results (mutants/) are kept, so that a second run retests only what changed."""
    mutated, tests = MODULES[module]
    work = BUILD / module
    work.mkdir(parents=True, exist_ok=True)
    for name in ("sweeper", "tests", "events"):
        shutil.rmtree(work / name, ignore_errors=True)
    shutil.copytree(HANDLER / "sweeper", work / "sweeper", ignore=_ignored)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=_ignored)
    shutil.copytree(ROOT / "events", work / "events")  # the example events some tests read
    for name in ("app.py", "log_format.py"):
        shutil.copy2(HANDLER / name, work / name)
    (work / "pyproject.toml").write_text(_pyproject(mutated, tests))
    return work


def _ignored(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in {"__pycache__", ".hypothesis", ".pytest_cache"}}


def _pyproject(mutated: list[str], tests: list[str]) -> str:
    def strings(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"

    # The tests' own pytest settings (pyproject.toml), but for the path: the mutated copy of the
    # code is the only one importable (mutmut puts mutants/ first on sys.path).
    return f"""\
[tool.pytest.ini_options]
pythonpath = ["tests"]
addopts = "-q --strict-markers -p no:cacheprovider"
markers = ["slow: larger scenarios (still part of make test)"]
filterwarnings = [
    "ignore::DeprecationWarning:botocore.*",
    "ignore:No application metrics to publish:UserWarning",
]

[tool.mutmut]
source_paths = ["sweeper"]
only_mutate = {strings(mutated)}
also_copy = ["app.py", "log_format.py", "events"]
pytest_add_cli_args_test_selection = {strings(tests)}
use_git_change_detection = false
"""


def run(module: str, max_children: int) -> dict[str, int]:
    work = prepare(module)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    started = time.monotonic()
    print(f"== {module}: mutmut run in {work.relative_to(ROOT)}", flush=True)
    mutmut = [sys.executable, "-m", "mutmut"]
    subprocess.run(
        [*mutmut, "run", "--max-children", str(max_children)], cwd=work, env=env, check=True
    )
    subprocess.run([*mutmut, "export-cicd-stats"], cwd=work, env=env, check=True)
    stats: dict[str, int] = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    survivors = subprocess.run(
        [*mutmut, "results"], cwd=work, env=env, check=True, capture_output=True, text=True
    ).stdout
    minutes = (time.monotonic() - started) / 60
    print(f"== {module}: {score_line(stats)} in {minutes:.1f} min", flush=True)
    print(survivors, flush=True)
    return stats


def score_line(stats: dict[str, int]) -> str:
    tested = stats.get("total", 0) - stats.get("skipped", 0)
    killed = stats.get("killed", 0) + stats.get("timeout", 0)
    score = 100 * killed / tested if tested else 0.0
    return (
        f"{killed} of {tested} mutants killed ({score:.1f}%), {stats.get('survived', 0)} "
        f"survived, {stats.get('no_tests', 0)} without a covering test"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(MODULES))
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    args = parser.parse_args(argv)
    if args.list:
        for name, (mutated, tests) in MODULES.items():
            print(f"{name}: {' '.join(mutated)}\n  " + "\n  ".join(tests))
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r} (known: {', '.join(MODULES)})")
    results = {module: run(module, args.max_children) for module in args.modules or MODULES}
    print("== scores")
    for module, stats in results.items():
        print(f"  {module:<10} {score_line(stats)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
