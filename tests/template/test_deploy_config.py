"""samconfig.toml's environments and the events/ requests, checked against the template and the
settings loader: a deploy or a hand invocation must do what its name says."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from sweeper.model import Scope
from sweeper.settings import is_scheduled_event, load

from .cfn import ROOT, Template

SAMCONFIG = ROOT / "samconfig.toml"
EVENTS = ROOT / "events"
_OVERRIDE = re.compile(r'(\w+)="([^"]*)"')


def overrides(environment: dict[str, Any]) -> dict[str, str]:
    text = environment["deploy"]["parameters"].get("parameter_overrides", "")
    return dict(_OVERRIDE.findall(text))


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
