"""samconfig.toml's environments and the events/ requests, checked against the template and the
settings loader: a deploy or a hand invocation must do what its name says."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sweeper.model import Scope
from sweeper.settings import is_scheduled_event, load

from .cfn import ROOT, Template

SAMCONFIG = ROOT / "samconfig.toml"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
EVENTS = ROOT / "events"
# How the SAM CLI reads parameter_overrides (samcli/cli/types.py, CfnParameterOverridesType, the
# pinned 1.170): a list is flattened; each string, with a space in front, is matched by
# ` KEY=VALUE`, VALUE being a double-quoted string, a single-quoted one (both with backslash
# escapes) or a run of characters other than space, quotes and backslash; wrapping quotes are
# then removed and `\ `, `\"`, `\'` unescaped. A string that matches nothing is an error.
_SAM_VALUE = r"""("(?:\\.|[^"\\]+)*"|'(?:\\.|[^'\\]+)*'|(?:\\.|[^ "\\]+)+)"""
_SAM_PAIR = re.compile(r"""(?: )([A-Za-z0-9"']+)=""" + _SAM_VALUE)
# A commented list entry of samconfig.toml: an example to uncomment.
_COMMENTED_ENTRY = re.compile(r"""^(\s*)# (["'].*,)$""", re.MULTILINE)


def sam_overrides(value: str | list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for text in [value] if isinstance(value, str) else value:
        pairs = _SAM_PAIR.findall(" " + text.strip())
        assert pairs, f"sam deploy refuses {text!r}"
        parsed.update(pairs)
    return {_sam_unquote(key): _sam_unquote(item) for key, item in parsed.items()}


def _sam_unquote(text: str) -> str:
    if text and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text.replace("\\ ", " ").replace('\\"', '"').replace("\\'", "'")


def overrides(environment: dict[str, Any]) -> dict[str, str]:
    return sam_overrides(environment["deploy"]["parameters"].get("parameter_overrides", []))


def uncommented(text: str) -> dict[str, Any]:
    """samconfig.toml with every commented example entry of a list uncommented."""
    return tomllib.loads(_COMMENTED_ENTRY.sub(r"\1\2", text))


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    return tomllib.loads(SAMCONFIG.read_text())


# environment -> (deletes?, stack name)
ENVIRONMENTS = {
    "default": (False, "ecr-sweeper"),
    "staging": (True, "ecr-sweeper-staging"),
    "prod": (True, "ecr-sweeper-prod"),
}


@pytest.mark.parametrize(("name", "expected"), ENVIRONMENTS.items(), ids=list(ENVIRONMENTS))
def test_samconfig_environment_deploys_what_its_name_says(
    samconfig: dict[str, Any], sam: Template, name: str, expected: tuple[bool, str]
) -> None:
    deletes, stack = expected
    environment = samconfig[name]
    values = overrides(environment)
    assert set(values) <= set(sam["Parameters"])  # no typo silently ignored by sam deploy
    assert values["DryRun"] == ("false" if deletes else "true")
    assert values["Scope"] == Scope.ORPHANS  # every environment reclaims what buildx leaves
    stack_name = environment["deploy"]["parameters"].get(
        "stack_name", samconfig["default"]["global"]["parameters"]["stack_name"]
    )
    assert stack_name == stack
    assert environment["deploy"]["parameters"]["confirm_changeset"] is True


PIN_SOURCES = {"PinFromEcs", "PinFromLambda", "PinParameterPath", "PinObjectUris"}


def test_every_environment_ships_the_same_commented_pin_sources_and_retention_example(
    samconfig: dict[str, Any], sam: Template
) -> None:
    examples = uncommented(SAMCONFIG.read_text())
    added = {
        name: {
            key: value
            for key, value in overrides(examples[name]).items()
            if key not in overrides(samconfig[name])
        }
        for name in ENVIRONMENTS
    }
    assert set(added["default"]) == PIN_SOURCES | {"Retention"}
    assert added["staging"] == added["prod"] == added["default"]
    assert set(added["default"]) <= set(sam["Parameters"])


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_the_examples_parsed_as_sam_parses_them_are_settings_the_function_accepts(
    sam: Template, name: str
) -> None:
    values = overrides(uncommented(SAMCONFIG.read_text())[name])
    variables = sam["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    environ = {
        variable: values[ref["Ref"]]
        for variable, ref in variables.items()
        if isinstance(ref, dict) and ref.get("Ref") in values
    }
    settings = load({}, environ)  # as the function reads its environment: no InvalidSettings
    assert settings.pin_from_ecs and settings.pin_from_lambda
    assert settings.pin_parameter_path == ("/deploy",)
    assert settings.pin_object_uris == ("s3://my-deploy-bucket/pins.txt",)
    (policy,) = settings.retention
    assert policy.repositories == ("ci/*",)
    assert len(values["Retention"].encode()) <= 4096  # CloudFormation's parameter size


@pytest.mark.skipif(not SAM_PYTHON.exists(), reason="no .venv-sam: `make template` installs it")
def test_the_sam_cli_itself_reads_samconfig_as_these_tests_do(tmp_path: Path) -> None:
    examples = tmp_path / "samconfig.toml"
    examples.write_text(_COMMENTED_ENTRY.sub(r"\1\2", SAMCONFIG.read_text()))
    script = (
        "import json, sys, tomllib\n"
        "from samcli.cli.types import CfnParameterOverridesType\n"
        "convert = CfnParameterOverridesType().convert\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    doc = tomllib.loads(open(path).read())\n"
        "    for env in doc:\n"
        "        if env != 'version':\n"
        "            value = doc[env]['deploy']['parameters']['parameter_overrides']\n"
        "            out[path + ':' + env] = convert(value, None, None)\n"
        "print(json.dumps(out))\n"
    )
    paths = [str(SAMCONFIG), str(examples)]
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", script, *paths], capture_output=True, text=True, check=True
    )
    expected = {
        f"{path}:{env}": overrides(tomllib.loads(Path(path).read_text())[env])
        for path in paths
        for env in ENVIRONMENTS
    }
    assert json.loads(result.stdout) == expected


def test_samconfig_has_exactly_the_documented_environments(samconfig: dict[str, Any]) -> None:
    assert set(samconfig) - {"version"} == set(ENVIRONMENTS)


# event file -> the settings it must give (over an empty environment)
EVENT_FILES: dict[str, dict[str, Any]] = {
    "dry-run.json": {"dry_run": True, "scope": Scope.ORPHANS},  # the default scope reclaims
    "dry-run-attestations.json": {"dry_run": True, "scope": Scope.ATTESTATIONS},
    "dry-run-one-repository.json": {
        "dry_run": True,
        "scope": Scope.ORPHANS,
        "repositories": ("my-app",),
    },
    "real-run.json": {"dry_run": False, "scope": Scope.ORPHANS},
    "scheduled.json": {"dry_run": True},  # everything from the environment: here, the defaults
}
SCHEDULED = "scheduled.json"


def test_events_folder_holds_exactly_the_documented_requests() -> None:
    assert {path.name for path in EVENTS.glob("*.json")} == set(EVENT_FILES)


@pytest.mark.parametrize(("name", "expected"), EVENT_FILES.items(), ids=list(EVENT_FILES))
def test_event_file_gives_the_settings_its_name_says(name: str, expected: dict[str, Any]) -> None:
    event = json.loads((EVENTS / name).read_text())
    settings = load(event, {})
    assert {key: getattr(settings, key) for key in expected} == expected
    assert not is_scheduled_event(event)  # no envelope: the schedule sends its Input (below)


def test_the_scheduled_event_file_is_what_the_schedule_sends(sam: Template) -> None:
    """events/scheduled.json must be exactly what the nightly run receives. An EventBridge
    Scheduler schedule (ScheduleV2) sends its Input as the event, no envelope around it; an
    EventBridge rule (Schedule) would send a Scheduled Event envelope, and this file with it."""
    sent = json.loads((EVENTS / SCHEDULED).read_text())
    events = sam["Resources"]["SweeperFunction"]["Properties"]["Events"]
    schedules = [e for e in events.values() if e["Type"] in {"ScheduleV2", "Schedule"}]
    assert [e["Type"] for e in schedules] == ["ScheduleV2"]
    assert sent == json.loads(schedules[0]["Properties"]["Input"])
