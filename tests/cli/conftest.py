"""The command's scenarios: an operator who registered their principal as a pull-time update
exclusion before (reading a manifest is a pull), unless a module says otherwise
(`OPERATOR_EXCLUDED = False`, the scenarios of a missing one: test_cli_pull_times.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _operator_is_an_exclusion(request: pytest.FixtureRequest) -> None:
    if getattr(request.module, "OPERATOR_EXCLUDED", True) and "registry" in request.fixturenames:
        request.getfixturevalue("registry").exclude()
