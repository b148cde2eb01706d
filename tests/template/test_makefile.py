"""The Makefile's first-hour targets: `make demo` installs only what the demo needs, `make build`
and `make deploy` run the SAM CLI of .venv-sam and say when Python 3.13 is missing, and
`make check` runs the suite on Python 3.13 where there is one.

Make runs with `-n` (print, do not run) or stops at its own check: nothing is installed or built.
`-B` prints every step, whatever this machine has installed already.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .cfn import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")

# What `make demo` may install: the Lambda's dependencies and the embedded registry.
DEMO_PACKAGES = {"boto3", "botocore", "aws-lambda-powertools", "moto"}
_REQUIREMENT = re.compile(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==\S+$")


def make(*args: str) -> subprocess.CompletedProcess[str]:
    # A make running this suite passes its flags down (MAKEFLAGS): this one must not inherit them.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def requirements(name: str) -> dict[str, str]:
    """Package -> the pinned line, following `-r` includes."""
    found: dict[str, str] = {}
    for text in (ROOT / name).read_text().splitlines():
        line = text.split("#")[0].strip()
        if line.startswith("-r "):
            found |= requirements(line[3:].strip())
        elif line:
            match = _REQUIREMENT.match(line)
            assert match, f"{name}: {line!r} is not pinned (name==version)"
            found[match.group(1).lower()] = line
    return found


def test_demo_installs_the_runtime_and_moto_only() -> None:
    result = make("-n", "-B", "demo")
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if " install " in line]
    assert installs == [
        ".venv/bin/pip install --quiet --disable-pip-version-check --no-compile"
        " -r requirements-demo.txt",
        # `ecr-sweeper` on .venv/bin, and nothing else.
        ".venv/bin/pip install --quiet --disable-pip-version-check --no-compile --no-deps -e .",
    ]
    assert set(requirements("requirements-demo.txt")) == DEMO_PACKAGES
    assert result.stdout.splitlines()[-1] == ".venv/bin/python scripts/demo.py"


def test_demo_cli_runs_one_command_on_the_demos_registry_and_needs_one() -> None:
    result = make("-n", "-B", "demo-cli", "CMD=explain shop/web 3f1a9c")
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last == ".venv/bin/python scripts/demo.py explain shop/web 3f1a9c"
    result = make("-n", "demo-cli", "CMD=")
    assert result.returncode != 0
    assert "CMD is empty: make demo-cli CMD='plan --repository shop/web'" in result.stderr


def test_release_check_builds_offline_and_is_not_part_of_check() -> None:
    result = make("-n", "-B", "release-check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ".venv/bin/python scripts/release_check.py"
    assert {"build", "setuptools", "wheel"} <= set(requirements("requirements-dev.txt"))
    check = make("-n", "-B", "check", "PYTHON313=")
    assert "release_check" not in check.stdout


def test_every_pin_is_written_once() -> None:
    # The files include each other; a package pinned in two of them could drift apart.
    lines: list[str] = []
    for name in ("requirements-demo.txt", "requirements-test.txt", "requirements-dev.txt"):
        lines += [
            line.split("==")[0].split("[")[0].lower()
            for line in (ROOT / name).read_text().splitlines()
            if "==" in line and not line.startswith("#")
        ]
    assert len(lines) == len(set(lines))
    assert set(requirements("requirements-test.txt")) < set(requirements("requirements-dev.txt"))


def test_build_without_python_313_says_so_before_installing_anything() -> None:
    result = make("build", "PYTHON313=")
    assert result.returncode != 0
    assert "Python 3.13 not found: sam build packages the python3.13 Lambda" in result.stderr
    assert "PYTHON313=/path/to/python3.13" in result.stderr
    assert result.stdout == ""  # nothing ran


@pytest.mark.parametrize(
    ("args", "environment", "config_env"),
    [
        (["ENV=staging"], {}, "staging"),
        (["ENV=prod", "ARGS=--no-confirm-changeset"], {}, "prod --no-confirm-changeset"),
        ([], {}, "default"),
        ([], {"ENV": "/home/me/.shrc"}, "default"),  # a shell's own ENV is not a config env
    ],
    ids=["staging", "prod-with-args", "default", "shell-env-ignored"],
)
def test_deploy_builds_with_python_313_then_deploys_the_config_env(
    monkeypatch: pytest.MonkeyPatch, args: list[str], environment: dict[str, str], config_env: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = make("-n", "-B", "deploy", "PYTHON313=/opt/py313/bin/python3.13", *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert 'PATH="/opt/py313/bin/:$PATH" .venv-sam/bin/sam build' in lines
    assert lines[-1].rstrip() == f".venv-sam/bin/sam deploy --config-env {config_env}"


@pytest.mark.parametrize(
    ("python313", "python_is_313", "expected"),
    [
        ("/opt/py313/bin/python3.13", False, ".venv-313/bin/python -m pytest"),
        ("", False, "test-313: skipped: no Python 3.13"),
        ("/opt/py313/bin/python3.13", True, "which make test used"),
    ],
    ids=["python-3.13-found", "no-python-3.13", "make-test-ran-on-3.13"],
)
def test_check_runs_the_suite_on_python_313_too(
    tmp_path: Path, python313: str, python_is_313: bool, expected: str
) -> None:
    # A stand-in for $(PYTHON): the Makefile only asks it whether it is 3.13.
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\necho {'True' if python_is_313 else ''}\n")
    python.chmod(0o755)
    result = make("-n", "-B", "check", f"PYTHON313={python313}", f"PYTHON={python}")
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    installs_313 = f"{python313} -m venv .venv-313" in result.stdout
    assert installs_313 == (expected == ".venv-313/bin/python -m pytest")


def test_the_stackset_template_needs_a_bucket_for_the_code() -> None:
    refused = make("-n", "stackset-template", "PYTHON313=/usr/bin/python3")
    assert refused.returncode != 0
    assert "set BUCKET" in refused.stderr
    planned = make("-n", "stackset-template", "BUCKET=artifacts", "PYTHON313=/usr/bin/python3")
    assert planned.returncode == 0, planned.stderr
    assert "package --s3-bucket artifacts" in planned.stdout
    assert "scripts/stackset_template.py build/sweeper-packaged.yaml" in planned.stdout
