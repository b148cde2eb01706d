"""The command does not pull behind its operator's back (reading a manifest is a pull).

Each scenario starts with the operator's principal not among the registry's pull-time update
exclusions, and checks what the command says, whether it read anything (a pull time moved) and
what it registered.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest

from conftest import OLD
from harness import BuildxPush, FakeRegistry
from sweeper.cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE

from .conftest import Run

REPO = "app"
OPERATOR_EXCLUDED = False  # tests/cli/conftest.py: these scenarios start without the exclusion


@pytest.fixture
def orphan(registry: FakeRegistry) -> BuildxPush:
    old = registry.push_buildx(REPO, tag="latest", pushed_at=OLD)
    registry.push_buildx(REPO, tag="latest", pushed_at=OLD + timedelta(days=1))
    return old


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "command", [["plan"], ["validate"], ["audit"], ["explain", REPO, "0123456789"]]
)
def test_without_a_terminal_the_command_stops_before_reading_and_names_both_flags(
    registry: FakeRegistry, orphan: BuildxPush, cli: Run, command: list[str]
) -> None:
    code, out, err = cli(*command)
    assert (code, out) == (EXIT_USAGE, "")
    assert f"{registry.caller} is not a pull-time update exclusion" in err
    assert "--register-pull-time-exclusion" in err
    assert "--accept-pull-time-updates" in err
    assert registry.last_pulled(REPO, orphan.index) is None  # nothing was read
    assert registry.exclusions() == set()
    assert orphan.all <= registry.digests(REPO)


@pytest.mark.parametrize(
    ("answer", "code", "registered"),
    [("y\n", EXIT_OK, True), ("n\n", EXIT_FAILURES, False), ("", EXIT_FAILURES, False)],
    ids=["yes", "no", "end-of-input"],
)
def test_at_a_terminal_the_command_says_what_reading_does_and_asks(
    registry: FakeRegistry,
    orphan: BuildxPush,
    cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    registered: bool,
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    result, _, err = cli("plan")
    assert result == code
    assert "Reading a manifest is a pull" in err
    assert "[y/N]" in err
    assert registry.exclusions() == ({registry.caller} if registered else set())
    assert ("Not registered: nothing read." in err) is not registered
    assert registry.last_pulled(REPO, orphan.index) is None  # read as an exclusion, or not read


def test_register_flag_registers_without_asking_and_reads_leave_pull_times_alone(
    registry: FakeRegistry, orphan: BuildxPush, cli: Run
) -> None:
    code, out, err = cli("plan", "--register-pull-time-exclusion", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["pull_time_exclusion"] == "registered-now"
    assert f"Registered {registry.caller}" in err
    assert registry.exclusions() == {registry.caller}
    assert registry.last_pulled(REPO, orphan.index) is None
    # The next command finds it registered and says nothing more.
    code, out, err = cli("plan", "--json")
    assert (code, json.loads(out)["pull_time_exclusion"], err) == (EXIT_OK, "registered", "")


def test_yes_answers_the_registration_question_too(
    registry: FakeRegistry, orphan: BuildxPush, cli: Run
) -> None:
    code, _, _ = cli("sweep", "--yes")
    assert code == EXIT_OK
    assert registry.exclusions() == {registry.caller}
    assert not orphan.all & registry.digests(REPO)


def test_accepting_pull_time_updates_reads_and_says_what_it_did(
    registry: FakeRegistry, orphan: BuildxPush, cli: Run
) -> None:
    code, out, err = cli("plan", "--accept-pull-time-updates", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["pull_time_exclusion"] == "missing"
    assert "warning: pull_time_exclusion missing" in err
    assert registry.exclusions() == set()
    assert registry.last_pulled(REPO, orphan.index) is not None  # the read was a pull


def test_both_flags_at_once_are_bad_usage(cli: Run) -> None:
    code, _, err = cli("plan", "--register-pull-time-exclusion", "--accept-pull-time-updates")
    assert code == EXIT_USAGE
    assert "not allowed with argument" in err


def test_a_principal_arn_that_is_not_a_role_or_user_is_bad_usage(
    registry: FakeRegistry, cli: Run
) -> None:
    code, _, err = cli("plan", "--principal-arn", "arn:aws:sts::123456789012:assumed-role/x/y")
    assert code == EXIT_USAGE
    assert "--principal-arn" in err
    assert registry.exclusions() == set()


@pytest.fixture
def as_role_with_a_path(registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The operator's credentials are an assumed role whose ARN has a path (moto's IAM and STS):
    STS names it without the path; IAM knows the full ARN."""
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(
        RoleName="platform-operator", Path="/platform/", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=role, RoleSessionName="alice"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    yield role


def test_an_assumed_role_with_a_path_is_registered_under_its_full_arn(
    registry: FakeRegistry, orphan: BuildxPush, cli: Run, as_role_with_a_path: str
) -> None:
    role = as_role_with_a_path
    assert role == "arn:aws:iam::123456789012:role/platform/platform-operator"
    code, _, err = cli("plan", "--register-pull-time-exclusion")
    assert code == EXIT_OK, err
    assert registry.exclusions() == {role}
    # The registry now ignores this role's reads: the plan's reads left the pull time alone.
    assert registry.last_pulled(REPO, orphan.index) is None


def test_an_assumed_role_registered_with_its_path_is_recognised_without_iam(
    registry: FakeRegistry, orphan: BuildxPush, cli: Run, as_role_with_a_path: str
) -> None:
    registry.exclude(as_role_with_a_path)  # STS's identity lacks the path; the name matches
    code, out, err = cli("plan", "--json")
    assert (code, err) == (EXIT_OK, "")
    assert json.loads(out)["pull_time_exclusions"]["principal"] == as_role_with_a_path


def test_an_identity_that_cannot_be_excluded_stops_unless_reading_anyway_is_accepted(
    registry: FakeRegistry, orphan: BuildxPush, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root user (or a federated one) cannot be a pull-time update exclusion."""
    root = "arn:aws:iam::123456789012:root"
    monkeypatch.setattr("sweeper.identity.caller_arn", lambda *_: root)
    code, _, err = cli("plan")
    assert code == EXIT_USAGE
    assert f"you are {root}" in err
    assert registry.last_pulled(REPO, orphan.index) is None
    code, out, err = cli("plan", "--accept-pull-time-updates", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["pull_time_exclusion"] == "unknown"
    assert "warning: pull_time_exclusion unknown" in err
    assert registry.last_pulled(REPO, orphan.index) is not None  # read, and so pulled
