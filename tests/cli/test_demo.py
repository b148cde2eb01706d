"""`make demo` runs scripts/demo.py: it must keep working, and keep telling the truth."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sweeper import clock


def load_demo() -> Any:
    spec = importlib.util.spec_from_file_location("demo", Path("scripts/demo.py"))
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def test_demo_plans_sweeps_explains_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    demo = load_demo()
    assert demo.run() == 0
    out = capsys.readouterr().out
    planned = next(line for line in out.splitlines() if line.startswith("Would delete"))
    reclaimed = next(line for line in out.splitlines() if line.startswith("Reclaimed"))
    # The dry run announced exactly what the real run then deleted.
    assert planned.split()[2] == reclaimed.split()[1] != "0"
    assert "<- pinned (--pin " in out  # the pinned release's attestation, explained
    assert "<- within the grace period" in out
    assert "<- refers to index" in out
    assert "(accessory .sig) <- of index" in out  # the release's cosign signature
    assert "unknown kind, never deleted" in out
    assert "nothing broken." in out
    # ECR's own policy would expire builds in use; the same rules, pin-aware, hold them.
    assert "Audited 1 repository: 4 hazards" in out
    assert "held: 2 pinned, 1 recently-pulled" in out
    assert "v1.4.0 and latest still tagged: True" in out


def test_a_command_of_yours_runs_on_the_demos_registry_with_the_same_digests_each_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `make demo-cli CMD='...'`: each command seeds the registry afresh; a digest from one
    # command's table is still there for the next, on another day too.
    demo = load_demo()
    assert demo.one_command(["plan", "--repository", "shop/web", "--json"]) == 0
    deletions = json.loads(capsys.readouterr().out)["deletions"]
    attestation = next(d["digest"] for d in deletions if d["kind"] == "attestation")
    tomorrow = clock.now() + timedelta(days=1)
    with clock.use_clock(lambda: tomorrow):
        assert demo.one_command(["explain", "shop/web", attestation[:19]]) == 0
    out = capsys.readouterr().out
    assert f"shop/web@{attestation}" in out and "verdict: deletable (unreachable)" in out
    # ECR's own policy on shop/ci expires builds in use: the audit's exit 1.
    assert demo.one_command(["audit", "--repository", "shop/ci"]) == 1
    assert "Audited 1 repository: 2 hazards" in capsys.readouterr().out


def test_the_readmes_demo_cli_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    readme = Path("README.md").read_text()
    examples = re.findall(r"make demo-cli CMD='([^']+)'", readme)
    assert [example.split()[0] for example in examples] == ["plan", "explain"]
    demo = load_demo()
    for example in examples:
        assert demo.one_command(example.split()) == 0, example
    assert "verdict:" in capsys.readouterr().out  # the digest prefix is in the demo's registry
