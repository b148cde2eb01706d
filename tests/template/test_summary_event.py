"""The summary event: one per run on the default bus, heard by the template's own rules (moto's
EventBridge, each rule's pattern as the template writes it, delivering to an SQS queue), with the
fields docs/operations.md documents; a failed PutEvents never fails the run; the rules' input
transformers (and the Chatbot one the docs give) make the message they should from an event.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

import app
from conftest import OLD, Invoke, LambdaContext
from harness import FakeRegistry
from harness.lambda_output import captured, emf_metrics, log_lines
from harness.workloads import AwsEvents, Workloads
from sweeper import metrics, notify
from sweeper.pins import PinSourceError
from sweeper.run import Report, RepositorySummary
from sweeper.run.state import RetentionTally

from .cfn import Template, resolve_sub
from .conftest import FUNCTION_NAME

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
REFS = {"SweeperFunction": FUNCTION_NAME}


# --- reading the template and the docs ----------------------------------------------------------


def rule(cfn: Template, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = cfn["Resources"][name]["Properties"]
    return properties


def pattern(cfn: Template, name: str) -> dict[str, Any]:
    """The rule's event pattern, the function's ARN in place of its GetAtt."""
    found = dict(rule(cfn, name)["EventPattern"])
    assert found["resources"] == [{"Fn::GetAtt": ["SweeperFunction", "Arn"]}]
    found["resources"] = [FUNCTION_ARN]
    return found


def transformer(cfn: Template, name: str) -> dict[str, Any]:
    (target,) = rule(cfn, name)["Targets"]
    assert target["Arn"] == {"Ref": "SummaryTopic"}
    found = dict(target["InputTransformer"])
    found["InputTemplate"] = resolve_sub(cfn, found["InputTemplate"], REFS)
    return found


def documented_fields() -> list[str]:
    """The `Sweep Completed` detail's fields, from the table of docs/operations.md."""
    text = OPERATIONS.read_text(encoding="utf-8")
    table = text.split("`Sweep Completed` detail", 1)[1].split("\n\n", 2)[1]
    fields: list[str] = []
    for row in table.splitlines()[2:]:
        fields += re.findall(r"`([a-z_]+)`", row.split("|")[1])
    return fields


def dashboard_url(cfn: Template) -> str:
    variables = cfn["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    return resolve_sub(cfn, variables["DASHBOARD_URL"], REFS)


# --- an input transformer, as EventBridge applies one --------------------------------------------

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")


def _path(event: Any, path: str) -> tuple[bool, Any]:
    """A JSON path of dot notation (`$.detail.bytes.planned`): (found, value)."""
    assert path.startswith("$."), path
    value = event
    for key in path[2:].split("."):
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def transform(spec: dict[str, Any], event: dict[str, Any]) -> str:
    """The text EventBridge sends the target: each `<name>` of the template replaced by its
    path's value, a string as it is (unescaped), anything else as JSON (`true`, `null`, `12`);
    a path the event lacks creates no variable, and its placeholder is left empty."""
    values: dict[str, str] = {}
    for name, path in spec["InputPathsMap"].items():
        found, value = _path(event, path)
        if found:
            values[name] = value if isinstance(value, str) else json.dumps(value)

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), "")

    return _PLACEHOLDER.sub(fill, spec["InputTemplate"])


def sample_event(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": detail_type,
        "source": notify.EVENT_SOURCE,
        "account": "123456789012",
        "time": "2026-01-01T03:00:41Z",
        "region": "us-east-1",
        "resources": [FUNCTION_ARN],
        "detail": detail,
    }


def summary(name: str, planned: int = 0, freed: int | None = 0, **fields: Any) -> RepositorySummary:
    """A repository's summary with the figures a test is about; the rest empty."""
    values: dict[str, Any] = {
        "repository": name,
        "scanned": True,
        "manifests": planned + 10,
        "planned": planned,
        "planned_bytes": planned * 1000,
        "deleted": 0,
        "deleted_bytes": 0,
        "planned_bytes_freed": freed,
        "deleted_bytes_freed": 0,
        "bytes_freed_unknown": "" if freed is not None else "an unreadable survivor",
        "already_gone": 0,
        "delete_failures": 0,
        "kept": Counter({"tagged": 10}),
        "failures": [],
        "complete": True,
        "out_of_time": False,
        "validated": False,
        "broken": [],
        "deletions": [],
        "retention": RetentionTally(),
        "hazards": [],
        "spared": [],
    }
    values.update(fields)
    return RepositorySummary(**values)


# --- moto's EventBridge, a rule to a queue -------------------------------------------------------


@contextmanager
def heard(cfn: Template, *rules: str) -> Iterator[Any]:
    """An SQS queue receiving what the template's `rules` match (their patterns, moto's bus)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    url = sqs.create_queue(QueueName="summary")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    for name in rules:
        events.put_rule(Name=name, EventPattern=json.dumps(pattern(cfn, name)))
        events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    yield received


@pytest.fixture
def deployed(cfn: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_URL", dashboard_url(cfn))


def test_every_run_puts_one_summary_event_with_the_documented_fields(
    cfn: Template,
    registry: FakeRegistry,
    invoke: Invoke,
    lambda_context: LambdaContext,
    deployed: None,
) -> None:
    registry.push_buildx("app", tag="latest", pushed_at=OLD)
    registry.push_buildx("app", tag="latest", pushed_at=OLD)
    with heard(cfn, "SummaryCompletedRule", "SummaryFailedRule") as received:
        dry = invoke(dry_run=True, scope="orphans")
        (first,) = received()
        real = invoke(dry_run=False, scope="orphans")
        (second,) = received()
    assert lambda_context.invoked_function_arn == FUNCTION_ARN
    for event, report in ((first, dry), (second, real)):
        assert event["source"] == "ecr-sweeper"
        assert event["detail-type"] == "Sweep Completed"
        assert event["resources"] == [FUNCTION_ARN]
        detail = event["detail"]
        assert list(detail) == documented_fields()
        assert detail["run_id"] == lambda_context.aws_request_id
        assert detail["dry_run"] is report["dry_run"]
        assert detail["complete"] is report["complete"] is True
        assert detail["total"] == report["manifests"] == 6
        assert detail["deleted"] == report["deleted"]["manifests"]
        assert detail["retained"] == 6 - detail["deleted"]
        assert detail["planned"] == report["planned"]["manifests"] == 3
        assert detail["bytes"]["planned_freed"] == report["planned"]["bytes_freed"] > 0
        assert detail["bytes"]["deleted_freed"] == report["deleted"]["bytes_freed"]
        assert detail["retention"] == report["retention"]
        assert (detail["hazards"], detail["failures"], detail["held_by"]) == (0, 0, None)
        assert detail["repositories"]["count"] == 1
        (app,) = detail["repositories"]["top"]
        assert (app["repository"], app["planned"]) == ("app", 3)
        assert detail["dashboard_url"] == dashboard_url(cfn)
    assert (first["detail"]["deleted"], second["detail"]["deleted"]) == (0, 3)


def test_a_tripped_breaker_says_so_in_the_summary(
    cfn: Template, registry: FakeRegistry, invoke: Invoke, deployed: None
) -> None:
    for _ in range(3):
        registry.push_buildx("app", tag="latest", pushed_at=OLD)
    with heard(cfn, "SummaryCompletedRule") as received:
        invoke(dry_run=True, scope="orphans", max_deletions=5)
        (event,) = received()
    detail = event["detail"]
    assert (detail["planned"], detail["held_by"]) == (6, "circuit-breaker")
    assert detail["circuit_breaker"] == {"planned": 6, "max_deletions": 5}
    assert detail["complete"] is False


def test_a_run_that_fails_after_its_settings_load_puts_a_sweep_failed_event(
    cfn: Template, registry: FakeRegistry, workloads: Workloads, invoke: Invoke, deployed: None
) -> None:
    registry.push_buildx("app", tag="latest", pushed_at=OLD)
    with heard(cfn, "SummaryFailedRule") as failed, pytest.raises(PinSourceError):
        invoke(dry_run=True, scope="orphans", pin_parameter_path="/nothing")
    (event,) = failed()
    assert event["detail-type"] == "Sweep Failed"
    detail = event["detail"]
    assert list(detail) == ["run_id", "dry_run", "complete", "error", "message", "dashboard_url"]
    assert (detail["error"], detail["complete"], detail["dry_run"]) == (
        "PinSourceError",
        False,
        True,
    )
    assert "ssm:/nothing" in detail["message"]


def test_invalid_settings_put_no_event(
    cfn: Template, registry: FakeRegistry, invoke: Invoke
) -> None:
    # Refused before anything runs: the FunctionErrorsAlarm says so, not a summary.
    with heard(cfn, "SummaryCompletedRule", "SummaryFailedRule") as received:
        with pytest.raises(ValueError, match="min_age_hours"):
            invoke(dry_run=True, min_age_hours=0)
        assert received() == []


# How PutEvents fails -> what the harness answers.
FAILURES = {
    "refused": lambda aws: aws.fail("events", "PutEvents", "AccessDeniedException"),
    "entry-failed": lambda aws: aws.answer(
        "events",
        "PutEvents",
        {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
        },
    ),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failed_put_events_is_logged_and_counted_and_the_run_goes_on(
    cfn: Template,
    registry: FakeRegistry,
    aws_events: AwsEvents,
    invoke: Invoke,
    failure: str,
) -> None:
    old = registry.push_buildx("app", tag="latest", pushed_at=OLD)
    new = registry.push_buildx("app", tag="latest", pushed_at=OLD)
    FAILURES[failure](aws_events)
    with captured() as out:
        report = invoke(dry_run=False, scope="orphans")
    assert report["deleted"]["manifests"] == 3
    assert registry.digests("app") == new.all
    assert not old.all & registry.digests("app")
    emitted = {m.name: m.value for m in emf_metrics(out.getvalue())}
    assert emitted[metrics.SUMMARY_EVENT_FAILURES] == 1
    assert [line["message"] for line in log_lines(out.getvalue())].count(
        "summary event not published"
    ) == 1


def test_a_published_event_counts_no_failure(
    cfn: Template, registry: FakeRegistry, invoke: Invoke
) -> None:
    with captured() as out:
        invoke(dry_run=True)
    emitted = {m.name: m.value for m in emf_metrics(out.getvalue())}
    assert emitted[metrics.SUMMARY_EVENT_FAILURES] == 0


# --- the detail's size and shape ------------------------------------------------------------------


def test_the_largest_registry_lists_its_top_50_repositories_and_sums_the_rest_under_256_kb() -> (
    None
):
    # 300 repositories with names of ECR's longest (256 characters).
    names = [f"{i:03d}-" + "x" * 252 for i in range(300)]
    report = Report(
        dry_run=True,
        repositories=[
            summary(name, planned=i + 1, freed=(i + 1) * 100) for i, name in enumerate(names)
        ],
    )
    detail = notify.completed_detail(report, run_id="r", dashboard_url=None)
    entry = notify.entry(notify.DETAIL_COMPLETED, detail, FUNCTION_ARN)
    assert len(json.dumps(entry).encode()) < notify.MAX_EVENT_BYTES
    section = json.loads(entry["Detail"])["repositories"]
    assert [r["repository"] for r in section["top"]] == names[::-1][:50]  # most bytes first
    rest = section["rest"]
    assert rest["repositories"] == 250
    assert rest["planned"] == sum(range(1, 251))
    assert rest["bytes_freed"] == 100 * sum(range(1, 251))
    assert sum(r["planned"] for r in section["top"]) + rest["planned"] == sum(range(1, 301))


def test_an_event_over_the_limit_drops_the_repository_list_not_the_totals() -> None:
    report = Report(dry_run=True, repositories=[summary("app", planned=1, freed=1)])
    detail = notify.completed_detail(report, run_id="r", dashboard_url=None)
    detail["repositories"]["top"] = [{"repository": "x" * 1000}] * 300  # as if names were long
    entry = notify.entry(notify.DETAIL_COMPLETED, detail, FUNCTION_ARN)
    assert len(json.dumps(entry).encode()) < notify.MAX_EVENT_BYTES
    sent = json.loads(entry["Detail"])
    assert sent["repositories"]["top"] == []
    assert sent["planned"] == 1


# --- the messages --------------------------------------------------------------------------------


def completed_sample() -> dict[str, Any]:
    report = Report(
        dry_run=False,
        repositories=[
            summary("web", planned=57, freed=402113, deleted=57),
            summary("api", planned=0),
        ],
    )
    detail = notify.completed_detail(
        report, run_id="52fdfc07", dashboard_url="https://example.invalid/dashboard"
    )
    return sample_event(notify.DETAIL_COMPLETED, detail)


def test_the_completed_rule_turns_the_event_into_a_readable_message(cfn: Template) -> None:
    spec = transformer(cfn, "SummaryCompletedRule")
    event = completed_sample()
    assert all(_path(event, p)[0] for p in spec["InputPathsMap"].values())
    assert set(_PLACEHOLDER.findall(spec["InputTemplate"])) == set(spec["InputPathsMap"])
    message = json.loads(transform(spec, event))  # a quoted string: SNS gets its text
    assert message == (
        "ecr-sweeper (ecr-sweeper-test) run 52fdfc07 (dry run: false, complete: true, stopped "
        "early: null): 2 repositories, 77 manifests, 20 retained; 57 planned (402113 bytes "
        "freed), 57 deleted (0 bytes freed); 0 expired by retention; 0 lifecycle hazards; 0 "
        "failures. Dashboard: https://example.invalid/dashboard"
    )


def test_the_failed_rule_turns_the_event_into_a_readable_message(cfn: Template) -> None:
    spec = transformer(cfn, "SummaryFailedRule")
    detail = notify.failed_detail(
        PinSourceError("ssm:/deploy", 'a "quoted" reason'),
        run_id="52fdfc07",
        dry_run=True,
        dashboard_url="https://example.invalid/dashboard",
    )
    event = sample_event(notify.DETAIL_FAILED, detail)
    assert all(_path(event, p)[0] for p in spec["InputPathsMap"].values())
    message = json.loads(transform(spec, event))
    assert message == (
        "ecr-sweeper (ecr-sweeper-test) run 52fdfc07 (dry run: true) failed: PinSourceError. It "
        "deleted nothing after the failure; the log says why. Dashboard: "
        "https://example.invalid/dashboard"
    )


def test_the_chatbot_transformer_in_the_docs_makes_a_custom_notification() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```json\n(.*?)```", text, re.S) if "InputPathsMap" in b]
    spec = json.loads(block)
    event = completed_sample()
    assert all(_path(event, p)[0] for p in spec["InputPathsMap"].values())
    notification = json.loads(transform(spec, event))
    assert (notification["version"], notification["source"]) == ("1.0", "custom")
    content = notification["content"]
    assert content["textType"] == "client-markdown"
    assert content["title"] == "ecr-sweeper run: complete true, dry run false"
    assert content["description"].startswith("77 manifests: 57 planned, 57 deleted")


def test_the_summary_email_makes_the_rules_topic_and_subscription_only_when_given(
    cfn: Template,
) -> None:
    conditional = {"SummaryTopic", "SummaryTopicPolicy", "SummaryEmailSubscription"}
    conditional |= {"SummaryCompletedRule", "SummaryFailedRule"}
    for name in conditional:
        assert cfn["Resources"][name]["Condition"] == "HasSummaryEmail", name
    assert cfn["Conditions"]["HasSummaryEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SummaryEmail"}, ""]}]
    }
    subscription = cfn["Resources"]["SummaryEmailSubscription"]["Properties"]
    assert subscription == {
        "TopicArn": {"Ref": "SummaryTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "SummaryEmail"},
    }
    for name in ("SummaryCompletedRule", "SummaryFailedRule"):
        assert rule(cfn, name)["EventBusName"] == notify.EVENT_BUS
        assert pattern(cfn, name)["source"] == [notify.EVENT_SOURCE]
    assert pattern(cfn, "SummaryCompletedRule")["detail-type"] == [notify.DETAIL_COMPLETED]
    assert pattern(cfn, "SummaryFailedRule")["detail-type"] == [notify.DETAIL_FAILED]
    (statement,) = cfn["Resources"]["SummaryTopicPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"


def test_the_function_may_put_events_on_the_default_bus_only(cfn: Template) -> None:
    policies = cfn["Resources"]["SweeperFunctionRole"]["Properties"]["Policies"]
    statements = [
        s
        for p in policies
        if "PolicyDocument" in p
        for s in p["PolicyDocument"]["Statement"]
        if s.get("Action") == notify.PUT_EVENTS_ACTION
    ]
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    resource = resolve_sub(cfn, statement["Resource"])
    assert resource == f"arn:aws:events:us-east-1:123456789012:event-bus/{notify.EVENT_BUS}"


@pytest.mark.parametrize(
    "invoked",
    [FUNCTION_ARN, f"{FUNCTION_ARN}:$LATEST", f"{FUNCTION_ARN}:7", f"{FUNCTION_ARN}:live"],
    ids=["unqualified", "latest", "version", "alias"],
)
def test_the_event_names_the_function_whatever_qualifier_invoked_it(invoked: str) -> None:
    # The rules match the function's unqualified ARN (GetAtt Arn).
    assert app.function_arn(invoked) == FUNCTION_ARN
