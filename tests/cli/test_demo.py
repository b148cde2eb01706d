"""`make demo` runs scripts/demo.py: it must keep working, and keep telling the truth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def test_demo_plans_sweeps_explains_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("demo", Path("scripts/demo.py"))
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
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
