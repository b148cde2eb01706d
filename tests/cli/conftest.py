"""The command's scenarios: an operator who registered their principal as a pull-time update
exclusion before (reading a manifest is a pull), unless a module says otherwise
(`OPERATOR_EXCLUDED = False`, the scenarios of a missing one: test_cli_pull_times.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sweeper.cli import main

Output = tuple[int, str, str]  # exit code, stdout, stderr
Run = Callable[..., Output]


@pytest.fixture(autouse=True)
def _operator_is_an_exclusion(request: pytest.FixtureRequest) -> None:
    if getattr(request.module, "OPERATOR_EXCLUDED", True) and "registry" in request.fixturenames:
        request.getfixturevalue("registry").exclude()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """`ecr-sweeper ARGS...` in-process: (exit code, stdout, stderr)."""

    def call(*args: str) -> Output:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call
