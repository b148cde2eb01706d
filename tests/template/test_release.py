"""What a release publishes: one version everywhere, the licence the metadata promises, and the
Serverless Application Repository metadata `sam publish` reads (scripts/release_check.py checks
the same, with the built wheel, in `make release-check`)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sweeper import __version__

from .cfn import ROOT, Template


def release_check() -> Any:
    path = ROOT / "scripts" / "release_check.py"
    spec = importlib.util.spec_from_file_location("release_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_version_has_one_source_which_the_command_prints() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sweeper.__version__"}
    result = subprocess.run(
        [sys.executable, "-m", "sweeper", "--version"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src/handler"), "PATH": ""},
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"ecr-sweeper {__version__}\n")


def test_the_licence_the_metadata_promises_is_there() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_serverless_application_repository_metadata_is_publishable(sam: Template) -> None:
    app = sam["Metadata"]["AWS::ServerlessRepo::Application"]
    assert app["SemanticVersion"] == __version__
    assert (app["Name"], app["SpdxLicenseId"]) == ("ecr-sweeper", "Apache-2.0")
    assert (app["LicenseUrl"], app["ReadmeUrl"]) == ("LICENSE", "README.md")
    assert release_check().sar_problems() == []


# scenario -> (field, wrong value, what the check says)
WRONG_METADATA = {
    "a-version-that-is-not-the-packages": ("SemanticVersion", "9.9.9", "is not the package's"),
    "not-a-semantic-version": ("SemanticVersion", "v1", "is not a semantic version"),
    "a-readme-that-is-not-there": ("ReadmeUrl", "READ.md", "is not a file of the project"),
    "another-licence": ("SpdxLicenseId", "MIT", "is not pyproject's 'Apache-2.0'"),
    "no-author": ("Author", "", "Author is missing"),
}


@pytest.mark.parametrize(
    ("field", "value", "said"), WRONG_METADATA.values(), ids=list(WRONG_METADATA)
)
def test_release_check_names_what_sam_publish_would_get_wrong(
    tmp_path: Path, field: str, value: str, said: str
) -> None:
    for name in ("pyproject.toml", "LICENSE", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    text = (ROOT / "template.yaml").read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith(f"{field}:"))
    indent = line[: len(line) - len(line.lstrip())]
    (tmp_path / "template.yaml").write_text(text.replace(line, f"{indent}{field}: '{value}'"))
    problems = release_check().sar_problems(tmp_path)
    assert problems and all(field in problem for problem in problems)
    assert any(said in problem for problem in problems)
