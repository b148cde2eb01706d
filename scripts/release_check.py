"""`make release-check`: build what a release publishes, offline, and check it.

- The `ecr-sweeper` command as a wheel and an sdist (`python -m build --no-isolation`, with the
  setuptools, wheel and build that requirements-dev.txt pins, so no index is needed): its
  version is `sweeper.__version__`, it installs the `ecr-sweeper` entry point, carries the
  LICENSE, and holds the `sweeper` package and nothing else (no tests, no handler module).
- The Serverless Application Repository metadata of template.yaml, what `sam publish` reads:
  the fields SAR requires and their limits, the licence and readme files `sam package` uploads,
  and a semantic version equal to the package's. `sam package` and `sam publish` themselves need
  an AWS account and a bucket; this checks everything that can be checked without them.

    PYTHONPATH=src/handler:tests python scripts/release_check.py [--outdir DIR]

Prints each check; exits 1 when one fails. The build's leftovers in the source tree (build/,
*.egg-info) are removed unless they were there before.
"""

from __future__ import annotations

import argparse
import email
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "handler"))

from sweeper import __version__  # noqa: E402

PACKAGE = "sweeper"
ENTRY_POINT = "ecr-sweeper = sweeper.cli:main"
SAR_KEY = "AWS::ServerlessRepo::Application"
# https://docs.aws.amazon.com/serverlessrepo/latest/devguide/serverlessrepo-how-to-publish.html
SAR_REQUIRED = ("Name", "Description", "Author")
SAR_LIMITS = {"Name": 140, "Description": 256, "Author": 127}
_NUMBER = r"(0|[1-9]\d*)"
_SEMVER = re.compile(rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_LABEL = re.compile(r"^[a-zA-Z0-9+\-_:/@]{1,127}$")
_LEFTOVERS = ("build", "src/handler/ecr_sweeper.egg-info")


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsics (!Ref, !Sub, ...), read as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def sar_problems(root: Path = ROOT) -> list[str]:
    """What `sam publish` would refuse, or publish wrongly, in template.yaml's SAR metadata."""
    template = yaml.load((root / "template.yaml").read_text(), Loader=_Loader)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    app: dict[str, Any] = template.get("Metadata", {}).get(SAR_KEY) or {}
    if not app:
        return [f"template.yaml: no Metadata.{SAR_KEY}"]
    problems = [f"{SAR_KEY}: {field} is missing" for field in SAR_REQUIRED if not app.get(field)]
    for field, limit in SAR_LIMITS.items():
        if len(str(app.get(field, ""))) > limit:
            problems.append(f"{SAR_KEY}: {field} is longer than {limit} characters")
    version = str(app.get("SemanticVersion", ""))
    if not _SEMVER.match(version):
        problems.append(f"{SAR_KEY}: SemanticVersion {version!r} is not a semantic version")
    if version != __version__:
        problems.append(
            f"{SAR_KEY}: SemanticVersion {version!r} is not the package's {__version__!r}"
        )
    if app.get("SpdxLicenseId") != project["license"]:
        problems.append(
            f"{SAR_KEY}: SpdxLicenseId {app.get('SpdxLicenseId')!r} is not pyproject's "
            f"{project['license']!r}"
        )
    for field in ("LicenseUrl", "ReadmeUrl"):
        path = root / str(app.get(field, ""))
        if not app.get(field) or not path.is_file():
            problems.append(f"{SAR_KEY}: {field} {app.get(field)!r} is not a file of the project")
    if "Apache License" not in (root / "LICENSE").read_text()[:200]:
        problems.append("LICENSE is not the Apache License")
    labels = app.get("Labels", [])
    if len(labels) > 10 or not all(_LABEL.match(str(label)) for label in labels):
        problems.append(f"{SAR_KEY}: Labels: at most 10, each of letters, digits and +-_:/@")
    source = project.get("urls", {}).get("Source")
    if app.get("SourceCodeUrl") != source or not str(source).startswith("https://"):
        problems.append(
            f"{SAR_KEY}: SourceCodeUrl {app.get('SourceCodeUrl')!r} is not pyproject's Source "
            f"URL {source!r} (https)"
        )
    return problems


def wheel_problems(wheel: Path) -> list[str]:
    """What is wrong with the built wheel of the command."""
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(info))
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    if metadata["Version"] != __version__:
        problems.append(f"wheel: version {metadata['Version']} is not {__version__}")
    if metadata["License-Expression"] != "Apache-2.0":
        problems.append(f"wheel: License-Expression is {metadata['License-Expression']!r}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("wheel: no LICENSE")
    if ENTRY_POINT not in entry_points.splitlines():
        problems.append(f"wheel: no console script {ENTRY_POINT!r}")
    if not any(r.startswith("boto3") for r in metadata.get_all("Requires-Dist") or []):
        problems.append("wheel: does not require boto3")
    code = [n for n in names if ".dist-info/" not in n]
    if f"{PACKAGE}/cli/__init__.py" not in code:
        problems.append("wheel: no sweeper.cli")
    strays = sorted(n for n in code if not n.startswith(f"{PACKAGE}/"))
    if strays:
        problems.append(f"wheel: files outside the package: {strays[:5]}")
    return problems


def sdist_problems(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = ("LICENSE", "README.md", "pyproject.toml")
    return [f"sdist: no {name}" for name in needed if name not in names]


def build(outdir: Path) -> tuple[Path, Path]:
    """The sdist and the wheel, built with what is installed (`--no-isolation`: no index)."""
    before = {path for path in _LEFTOVERS if (ROOT / path).exists()}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(ROOT)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            sys.exit(f"python -m build failed:\n{result.stdout}{result.stderr}")
    finally:
        for path in _LEFTOVERS:
            if path not in before:
                shutil.rmtree(ROOT / path, ignore_errors=True)
    (wheel,) = outdir.glob("*.whl")
    (sdist,) = outdir.glob("*.tar.gz")
    return sdist, wheel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, help="keep the built files here (default: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        outdir = args.outdir or Path(scratch)
        sdist, wheel = build(outdir)
        checks = {
            f"wheel {wheel.name}": wheel_problems(wheel),
            f"sdist {sdist.name}": sdist_problems(sdist),
            f"{SAR_KEY} metadata (template.yaml)": sar_problems(),
        }
    failed = False
    for what, problems in checks.items():
        print(f"{'FAIL' if problems else 'ok'}   {what}")
        for problem in problems:
            print(f"       {problem}")
        failed = failed or bool(problems)
    print("sam package / sam publish: not run (they need an AWS account and an S3 bucket)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
