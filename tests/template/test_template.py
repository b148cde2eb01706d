"""template.yaml as CloudFormation, checked against the code it describes: the settings the
function reads, the IAM actions the registry module calls, the metrics and log fields the handler
emits. Each test names what a deployed stack would get wrong if it failed.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cfnlint.api import lint

from app import DASHBOARD_URL
from conftest import OLD, Invoke
from harness import FakeRegistry
from harness.lambda_output import captured, emf_metrics, log_lines
from sweeper import audit, cursor, metrics
from sweeper.registry import EXCLUSION_ACTIONS, REQUIRED_IAM_ACTIONS
from sweeper.run import TIME_MARGIN_SECONDS
from sweeper.settings import Settings, load

from .cfn import (
    REGION,
    ROOT,
    Template,
    evaluate,
    load_sam,
    parameter_defaults,
    resolve_sub,
    resources_of_type,
)
from .conftest import FUNCTION_NAME, LOG_GROUP

FUNCTION = "SweeperFunction"
REFS = {FUNCTION: FUNCTION_NAME, "SweeperLogGroup": LOG_GROUP}
LAMBDA_METRICS = {"Errors", "Throttles", "Duration", "Invocations"}
DAY = 86_400
HOUR = 3_600


def function(cfn: Template) -> dict[str, Any]:
    props: dict[str, Any] = cfn["Resources"][FUNCTION]["Properties"]
    return props


ROLE_ARN = "arn:aws:iam::123456789012:role/ecr-sweeper-SweeperFunctionRole-ABC"
STORE_URI = "s3://ecr-sweeper-manifeststorebucket-abc123/ecr-sweeper"


def environment(cfn: Template) -> dict[str, str]:
    """The function's environment as deployed with every parameter at its default (the role's
    ARN, a resource's attribute, as `ROLE_ARN`; a resource's name, its logical id)."""
    defaults = parameter_defaults(cfn)
    env: dict[str, str] = {}
    for name, value in function(cfn)["Environment"]["Variables"].items():
        if name == "MANIFEST_STORE":  # the stack's own bucket, named at deploy time
            env[name] = STORE_URI
        elif value == {"Fn::GetAtt": [f"{FUNCTION}Role", "Arn"]}:
            env[name] = ROLE_ARN
        elif isinstance(value, dict) and "Fn::Sub" in value:
            env[name] = resolve_sub(cfn, value, REFS)
        elif isinstance(value, dict):
            ref = str(value["Ref"])
            env[name] = defaults.get(ref, ref)
        else:
            env[name] = str(value)
    return env


# --- the template as a whole --------------------------------------------------------------------


def test_translated_template_has_no_cfn_lint_errors(cfn: Template) -> None:
    # cfn-lint on the SAM source misses errors inside SAM resources: lint the translation.
    matches = lint(json.dumps(cfn), regions=[REGION])
    errors = [str(match) for match in matches if match.rule.id.startswith("E")]
    assert errors == []


# --- schedule and function ----------------------------------------------------------------------


def test_the_schedule_invokes_the_function_nightly_with_an_empty_request(cfn: Template) -> None:
    schedules = resources_of_type(cfn, "AWS::Scheduler::Schedule")
    assert len(schedules) == 1
    (props,) = (schedule["Properties"] for schedule in schedules.values())
    assert props["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert parameter_defaults(cfn)["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert "Name" not in props  # generated per stack: staging and prod can share an account
    target = props["Target"]
    assert target["Arn"] == {"Fn::GetAtt": [FUNCTION, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    # Scheduler delivers exactly `Input`: an empty request, so every setting is the environment's.
    request = json.loads(target["Input"])
    assert request == {}
    assert load(request, environment(cfn)) == Settings(
        sweeper_role_arn=ROLE_ARN, manifest_store=STORE_URI
    )


def test_the_function_runs_python_3_13_on_arm64_with_the_whole_timeout(cfn: Template) -> None:
    props = function(cfn)
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Timeout"] == 900  # Lambda's maximum: the run stops itself a margin before
    # One full vCPU, and room for a first run's backlog (docs/performance.md, "Defaults").
    assert props["MemorySize"] == 1769
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"] == {"LogGroup": {"Ref": "SweeperLogGroup"}}
    module, name = props["Handler"].rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))


def test_the_environment_sets_every_setting_and_the_metrics_identity(cfn: Template) -> None:
    variables = dict(function(cfn)["Environment"]["Variables"])
    # within_repositories is derived: the deployment's REPOSITORIES when a request names its own.
    derived = {"WITHIN_REPOSITORIES"}
    settings = {field.name.upper() for field in dataclasses.fields(Settings)} - derived
    wiring = {cursor.CURSOR_PARAMETER_ENV, DASHBOARD_URL}  # the stack's own, not settings
    assert {
        name for name in variables if not name.startswith("POWERTOOLS_") and name not in wiring
    } == settings
    # each one a parameter, so a deploy can change it; but the role the function reads as
    assert variables.pop("SWEEPER_ROLE_ARN") == {"Fn::GetAtt": [f"{FUNCTION}Role", "Arn"]}
    # and the manifest store, the stack's own bucket (a prefix in it)
    assert variables.pop("MANIFEST_STORE") == {"Fn::Sub": "s3://${ManifestStoreBucket}/ecr-sweeper"}
    for name in settings - {"SWEEPER_ROLE_ARN", "MANIFEST_STORE"}:
        assert variables[name]["Ref"] in cfn["Parameters"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == metrics.SERVICE
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == metrics.NAMESPACE


def test_the_template_defaults_are_the_code_defaults(cfn: Template) -> None:
    # In particular DryRun: a stack deployed without parameters deletes nothing.
    settings = load({}, environment(cfn))
    assert settings == Settings(sweeper_role_arn=ROLE_ARN, manifest_store=STORE_URI)
    assert settings.dry_run is True
    assert settings.register_pull_time_exclusion is True


# --- IAM ----------------------------------------------------------------------------------------


def _statements(cfn: Template) -> list[dict[str, Any]]:
    """Every statement of the function role's inline policies; a conditional one (`Fn::If`) counts
    with both of its branches, since either may be deployed."""
    role = cfn["Resources"][f"{FUNCTION}Role"]["Properties"]
    found: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    for policy in role["Policies"]:
        # A pin source's policy is there only when the source is configured: Fn::If on the
        # whole policy, whose other branch is AWS::NoValue.
        if "Fn::If" in policy:
            policies.extend(
                b for b in policy["Fn::If"][1:] if isinstance(b, dict) and "PolicyDocument" in b
            )
        else:
            policies.append(policy)
    # The delete grant is a role policy of its own; its branch with a tag condition is a JSON
    # text (test_repository_iam evaluates it), the other one a document like these.
    delete = cfn["Resources"]["DeleteImagesPolicy"]["Properties"]
    assert delete["RoleName"] == {"Ref": f"{FUNCTION}Role"}
    policies.append({"PolicyDocument": delete["PolicyDocument"]["Fn::If"][2]})
    pending = [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]
    while pending:
        statement = pending.pop()
        if "Fn::If" in statement:
            pending.extend(
                b for b in statement["Fn::If"][1:] if isinstance(b, dict) and "Ref" not in b
            )
        else:
            found.append(statement)
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_iam_grants_exactly_the_ecr_actions_the_registry_calls(cfn: Template) -> None:
    statements = _statements(cfn)
    actions = [action for s in statements for action in _actions(s)]
    assert all(s["Effect"] == "Allow" for s in statements)
    assert not [action for action in actions if "*" in action]
    assert sorted(a for a in actions if a.startswith("ecr:")) == sorted(REQUIRED_IAM_ACTIONS)
    managed = cfn["Resources"][f"{FUNCTION}Role"]["Properties"]["ManagedPolicyArns"]
    assert sorted(evaluate(cfn, managed)) == [  # logs and X-Ray segments only
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ]


VPC = {"VpcSubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b", "VpcSecurityGroupIds": "sg-0123abcd"}


@pytest.mark.parametrize(
    ("scenario", "parameters", "vpc_config", "eni_grant"),
    [
        ("outside-any-vpc-by-default", {}, None, False),
        (
            "in-the-subnets-given",
            VPC,
            {
                "SubnetIds": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
                "SecurityGroupIds": ["sg-0123abcd"],
            },
            True,
        ),
    ],
)
def test_the_function_runs_in_a_vpc_only_when_given_subnets_and_only_then_may_make_enis(
    cfn: Template,
    scenario: str,
    parameters: dict[str, str],
    vpc_config: dict[str, list[str]] | None,
    eni_grant: bool,
) -> None:
    """A deployment outside a VPC must not carry the network-interface grant: SAM would attach
    AWSLambdaVPCAccessExecutionRole to a role it generates whenever VpcConfig is present, even
    behind an Fn::If, so the template writes the role out and attaches it only under InVpc."""
    function = cfn["Resources"][FUNCTION]["Properties"]
    assert evaluate(cfn, {"v": function.get("VpcConfig", {"Ref": "AWS::NoValue"})}, parameters).get(
        "v"
    ) == (vpc_config)
    managed = evaluate(
        cfn, cfn["Resources"][f"{FUNCTION}Role"]["Properties"]["ManagedPolicyArns"], parameters
    )
    vpc_policy = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    assert (vpc_policy in managed) is eni_grant
    assert function["Role"] == {"Fn::GetAtt": [f"{FUNCTION}Role", "Arn"]}


@pytest.mark.parametrize(
    ("scenario", "subnets", "groups", "accepted"),
    [
        ("neither", "", "", True),
        ("both", "subnet-0a1b2c3d", "sg-0123abcd", True),
        ("subnets-without-groups", "subnet-0a1b2c3d", "", False),
        ("groups-without-subnets", "", "sg-0123abcd", False),
    ],
)
def test_subnets_and_security_groups_are_given_together(
    cfn: Template, scenario: str, subnets: str, groups: str, accepted: bool
) -> None:
    """CloudFormation's Rules refuse half a network before anything is created."""
    parameters = {"VpcSubnetIds": subnets, "VpcSecurityGroupIds": groups}
    failed = [
        name
        for name, rule in cfn["Rules"].items()
        if evaluate(cfn, rule.get("RuleCondition", True), parameters)
        and not all(evaluate(cfn, a["Assert"], parameters) for a in rule["Assertions"])
    ]
    assert (failed == []) is accepted


def test_ecr_actions_are_scoped_by_the_repository_arn_pattern(cfn: Template) -> None:
    # The repository part of the pattern ("*" when it is empty) in this account and region; the
    # template tests in test_repository_iam.py evaluate it for real patterns.
    repositories = {
        "Fn::Sub": [
            "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${Name}",
            {
                "Name": {
                    "Fn::Select": [
                        1,
                        {
                            "Fn::Split": [
                                ":repository/",
                                {"Fn::Sub": "${RepositoryArnPattern}:repository/*"},
                            ]
                        },
                    ]
                }
            },
        ]
    }
    every = {"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/*"}
    for statement in _statements(cfn):
        if _actions(statement) == ["ecr:DescribeRepositories"]:
            # ECR authorises the listing against repository/*: it is granted there, alone.
            assert statement["Resource"] == every
        elif set(_actions(statement)) <= {"ecr:GetAccountSetting", *EXCLUSION_ACTIONS}:
            # account- and registry-level actions: no resource-level permissions
            assert statement["Resource"] == "*"
        elif any(action.startswith("ecr:") for action in _actions(statement)):
            assert statement["Resource"] == repositories
    assert parameter_defaults(cfn)["RepositoryArnPattern"] == ""


# --- alarms and their topic ---------------------------------------------------------------------

ALARMS: dict[str, dict[str, Any]] = {
    "FunctionErrorsAlarm": {
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Statistic": "Sum",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1,
        "TreatMissingData": "notBreaching",
    },
    "NoSuccessfulRunAlarm": {
        "Namespace": metrics.NAMESPACE,
        "MetricName": metrics.RUN_COMPLETED,
        "Statistic": "Maximum",
        "ComparisonOperator": "LessThanThreshold",
        "Threshold": 1,
        "TreatMissingData": "breaching",
        "Period": HOUR,
        "EvaluationPeriods": 26,
        "DatapointsToAlarm": 26,
    },
    "CircuitBreakerAlarm": {
        "Namespace": metrics.NAMESPACE,
        "MetricName": metrics.CIRCUIT_BREAKER_TRIPPED,
        "Statistic": "Maximum",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1,
        "TreatMissingData": "notBreaching",
    },
    "DeleteFailuresAlarm": {
        "Namespace": metrics.NAMESPACE,
        "MetricName": metrics.DELETE_FAILURES,
        "Statistic": "Sum",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1,
        "TreatMissingData": "notBreaching",
    },
    # Any hazard at all: something in use that ECR's own lifecycle policy will expire.
    "LifecycleHazardsAlarm": {
        "Namespace": metrics.NAMESPACE,
        "MetricName": metrics.LIFECYCLE_HAZARDS,
        "Statistic": "Maximum",
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0,
        "TreatMissingData": "notBreaching",
        "Period": HOUR,
        "EvaluationPeriods": 1,
    },
    # Any run whose reads were pulls: the pull window then holds what the sweeper read.
    "PullTimeExclusionAlarm": {
        "Namespace": metrics.NAMESPACE,
        "MetricName": metrics.PULL_TIME_EXCLUSION_MISSING,
        "Statistic": "Maximum",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1,
        "TreatMissingData": "notBreaching",
        "Period": HOUR,
        "EvaluationPeriods": 1,
    },
}


def test_the_stack_registers_its_role_as_a_pull_time_exclusion_unless_told_not_to(
    cfn: Template,
) -> None:
    (exclusion, *others) = resources_of_type(cfn, "AWS::ECR::PullTimeUpdateExclusion").values()
    assert others == []
    assert exclusion["Properties"] == {"PrincipalArn": {"Fn::GetAtt": [f"{FUNCTION}Role", "Arn"]}}
    assert exclusion["Condition"] == "RegistersPullTimeExclusion"
    assert cfn["Conditions"]["RegistersPullTimeExclusion"] == {
        "Fn::Equals": [{"Ref": "RegisterPullTimeExclusion"}, "true"]
    }
    assert parameter_defaults(cfn)["RegisterPullTimeExclusion"] == "true"
    variables = function(cfn)["Environment"]["Variables"]
    assert variables["REGISTER_PULL_TIME_EXCLUSION"] == {"Ref": "RegisterPullTimeExclusion"}


def test_the_template_has_exactly_the_alarms_tested_here(cfn: Template) -> None:
    assert set(resources_of_type(cfn, "AWS::CloudWatch::Alarm")) == set(ALARMS)


@pytest.mark.parametrize(("alarm", "expected"), ALARMS.items(), ids=list(ALARMS))
def test_alarm_settings(cfn: Template, alarm: str, expected: dict[str, Any]) -> None:
    props = cfn["Resources"][alarm]["Properties"]
    assert {key: props.get(key) for key in expected} == expected
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert "AlarmName" not in props  # generated per stack
    # CloudWatch refuses an evaluation range over a day (periods under an hour) or a week.
    window = props["Period"] * props["EvaluationPeriods"]
    assert window <= (7 * DAY if props["Period"] >= HOUR else DAY)


def test_no_successful_run_alarm_fires_after_26_hours_without_a_completed_run(
    cfn: Template,
) -> None:
    props = cfn["Resources"]["NoSuccessfulRunAlarm"]["Properties"]
    assert props["Period"] * props["EvaluationPeriods"] == 26 * HOUR
    # Every hour of the window must lack a completed run (missing data counts as breaching):
    # one completed run, dry or real, keeps the alarm quiet for the next 26 hours.
    assert props["DatapointsToAlarm"] == props["EvaluationPeriods"]
    assert props["OKActions"] == [{"Ref": "AlarmTopic"}]
    # Nothing ran is what it is for, so a fresh deploy is in ALARM until its first run (there is
    # no telling the two apart from the metric): docs/operations.md says so, and to invoke the
    # first dry run at once. A dry run that only the breaker stopped counts as completed
    # (metrics.run_completed; tests/integration/test_observability.py).
    assert props["TreatMissingData"] == "breaching"
    assert "fresh deploy" in " ".join(str(props["AlarmDescription"]).split())


def test_the_alarm_email_subscription_exists_only_when_an_address_is_given(
    cfn: Template,
) -> None:
    subscription = resources_of_type(cfn, "AWS::SNS::Subscription")["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert cfn["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    parameter = cfn["Parameters"]["AlarmEmail"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    accepted = ["", "ops@example.com", "team+ecr@corp.example"]
    refused = ["ops", "ops@", "two words@example.com", "a@b@c"]
    assert [bool(pattern.fullmatch(value)) for value in accepted + refused] == [True] * len(
        accepted
    ) + [False] * len(refused)


# --- the dashboard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard(cfn: Template) -> dict[str, Any]:
    (resource,) = resources_of_type(cfn, "AWS::CloudWatch::Dashboard").values()
    body: dict[str, Any] = json.loads(
        resolve_sub(cfn, resource["Properties"]["DashboardBody"], REFS)
    )
    return body


def widgets(dashboard: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [w for w in dashboard["widgets"] if w["type"] == kind]


def titled(dashboard: dict[str, Any], start: str) -> dict[str, Any]:
    properties: dict[str, Any]
    (properties,) = (
        w["properties"]
        for w in dashboard["widgets"]
        if w["properties"].get("title", "").startswith(start)
    )
    return properties


@dataclass(frozen=True)
class Shown:
    """A metric a dashboard widget or an alarm reads."""

    where: str
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]

    @property
    def key(self) -> tuple[str, str, frozenset[tuple[str, str]]]:
        return (self.namespace, self.name, self.dimensions)


def dashboard_metrics(dashboard: dict[str, Any]) -> Iterator[Shown]:
    """Every metric of every metric widget; "." repeats the previous row's item, as CloudWatch
    reads it; rows that are only an options object are math expressions over the others."""
    for widget in widgets(dashboard, "metric"):
        previous: list[Any] = []
        for row in widget["properties"]["metrics"]:
            items = [item for item in row if not isinstance(item, dict)]
            if not items:
                continue
            items = [
                previous[i] if item == "." and i < len(previous) else item
                for i, item in enumerate(items)
            ]
            previous = items
            namespace, name, *pairs = items
            dimensions = frozenset(zip(pairs[::2], pairs[1::2], strict=True))
            yield Shown(widget["properties"]["title"], namespace, name, dimensions)


def alarm_metrics(cfn: Template) -> Iterator[Shown]:
    for name, alarm in resources_of_type(cfn, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        dimensions = frozenset(
            (d["Name"], REFS[d["Value"]["Ref"]] if isinstance(d["Value"], dict) else d["Value"])
            for d in props["Dimensions"]
        )
        yield Shown(name, props["Namespace"], props["MetricName"], dimensions)


def test_the_dashboard_body_is_json_whose_widgets_tile_the_grid(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for widget in dashboard["widgets"]:
        x, y, width, height = (widget[k] for k in ("x", "y", "width", "height"))
        assert x >= 0 and x + width <= 24, widget
        cells = {(col, row) for col in range(x, x + width) for row in range(y, y + height)}
        assert not cells & taken, f"overlapping widget: {widget['properties'].get('title')}"
        taken |= cells
    for widget in widgets(dashboard, "metric") + widgets(dashboard, "log"):
        assert widget["properties"]["region"] == REGION


def test_every_metric_shown_or_alarmed_on_is_one_the_handler_emits(
    cfn: Template, dashboard: dict[str, Any], registry: FakeRegistry, invoke: Invoke
) -> None:
    registry.push_buildx("app", tag="latest", pushed_at=OLD)
    registry.push_buildx("app", tag="latest", pushed_at=OLD)
    with captured() as out:
        invoke(dry_run=True, scope="orphans")
    emitted = {metric.key for metric in emf_metrics(out.getvalue())}
    shown = [*dashboard_metrics(dashboard), *alarm_metrics(cfn)]
    ours = [s for s in shown if s.namespace != "AWS/Lambda"]
    assert {s.name for s in ours} == set(metrics.ALL_METRICS)  # and every one is on show
    assert [s for s in ours if s.key not in emitted] == []
    for s in shown:
        if s.namespace == "AWS/Lambda":
            assert s.name in LAMBDA_METRICS
            assert s.dimensions == {("FunctionName", FUNCTION_NAME)}


def test_the_kept_widget_shows_every_reason_a_manifest_can_be_kept_for(
    dashboard: dict[str, Any],
) -> None:
    kept = titled(dashboard, "Manifests kept")
    reasons = [
        dict(s.dimensions)[metrics.REASON_DIMENSION]
        for s in dashboard_metrics({"widgets": [{"type": "metric", "properties": kept}]})
    ]
    assert sorted(reasons) == sorted(metrics.KEPT_REASONS)
    assert kept["stacked"] is True


def test_the_duration_widget_marks_the_timeout_and_the_stop_margin(
    cfn: Template, dashboard: dict[str, Any]
) -> None:
    lines = {
        a["label"]: a["value"]
        for a in titled(dashboard, "Run duration")["annotations"]["horizontal"]
    }
    timeout = function(cfn)["Timeout"]
    assert lines == {
        "Lambda timeout": timeout,
        "No new delete batch after this": timeout - TIME_MARGIN_SECONDS,
    }


def test_the_bytes_widget_shows_freed_and_nominal_bytes_per_day(
    dashboard: dict[str, Any],
) -> None:
    widget = titled(dashboard, "Bytes reclaimed per day")
    assert widget["period"] == DAY
    assert widget["stat"] == "Sum"
    names = [
        s.name for s in dashboard_metrics({"widgets": [{"type": "metric", "properties": widget}]})
    ]
    assert names[:2] == [metrics.BYTES_FREED, metrics.NOMINAL_BYTES_DELETED]


def test_the_alarm_widget_lists_every_alarm(cfn: Template, dashboard: dict[str, Any]) -> None:
    (widget,) = widgets(dashboard, "alarm")
    expected = {
        resolve_sub(cfn, {"Fn::Sub": f"${{{name}.Arn}}"})
        for name in resources_of_type(cfn, "AWS::CloudWatch::Alarm")
    }
    assert set(widget["properties"]["alarms"]) == expected


_FIELDS = re.compile(r"\|\s*fields\s+([^|]+)")
_MESSAGE = re.compile(r'message\s*=\s*"([^"]+)"')
_FILTERED = re.compile(r"(\w+)\s*(?:=|>|<)")


def test_the_log_widgets_query_fields_the_handler_logs(
    dashboard: dict[str, Any], registry: FakeRegistry, invoke: Invoke
) -> None:
    registry.push_buildx("app", tag="latest", pushed_at=OLD)
    registry.push_buildx("app", tag="latest", pushed_at=OLD)
    with captured() as out:
        invoke(dry_run=True, scope="orphans")
        invoke(dry_run=False, scope="orphans")
    lines = log_lines(out.getvalue())
    assert lines and all(line["run_id"] for line in lines)
    queries = [
        w["properties"]["query"]
        for w in widgets(dashboard, "log")
        if _MESSAGE.findall(w["properties"]["query"]) != [audit.HAZARD_MESSAGE]
    ]
    assert len(queries) == 2
    for query in queries:
        assert query.startswith(f"SOURCE '{LOG_GROUP}' |")
        (message,) = _MESSAGE.findall(query)
        logged = [line for line in lines if line["message"] == message]
        assert logged, message
        (fields,) = _FIELDS.findall(query)
        names = [f.strip() for f in fields.split(",") if not f.strip().startswith("@")]
        names += [name for name in _FILTERED.findall(query) if name != "message"]
        missing = {name for name in names for line in logged if name not in line}
        assert missing == set(), f"{message} lines lack {missing}"


def test_the_hazards_table_queries_the_fields_of_a_hazard_line(dashboard: dict[str, Any]) -> None:
    """The lines are the lead's to emit (`log.warning(HAZARD_MESSAGE, extra=hazard.as_dict())`,
    beside the run_id and dry_run keys every line carries): the query asks for nothing else."""
    (query,) = (
        w["properties"]["query"]
        for w in widgets(dashboard, "log")
        if _MESSAGE.findall(w["properties"]["query"]) == [audit.HAZARD_MESSAGE]
    )
    assert query.startswith(f"SOURCE '{LOG_GROUP}' |")
    (fields,) = _FIELDS.findall(query)
    names = {f.strip() for f in fields.split(",") if not f.strip().startswith("@")}
    hazard = audit.Hazard("app", "sha256:" + "0" * 64, ("v1",), 1, audit.HazardReason.PINNED, "")
    assert names == set(hazard.as_dict()) | {"run_id", "dry_run"}


def cfn_function_timeout() -> int:
    timeout: int = load_sam()["Resources"]["SweeperFunction"]["Properties"]["Timeout"]
    return timeout


def test_the_text_widget_says_how_to_run_a_dry_run_by_hand(dashboard: dict[str, Any]) -> None:
    (widget,) = widgets(dashboard, "text")
    markdown = widget["properties"]["markdown"]
    command = next(line for line in markdown.splitlines() if "aws lambda invoke" in line)
    assert f"--function-name {FUNCTION_NAME} " in command
    assert f"--region {REGION} " in command
    # The read timeout the README uses: the function's whole timeout, or the CLI retries.
    timeout = cfn_function_timeout()
    assert f"--cli-read-timeout {timeout} " in command
    readme = (ROOT / "README.md").read_text()
    assert f"--function-name <SweeperFunctionName> --cli-read-timeout {timeout}" in readme
    (payload,) = re.findall(r"--payload '([^']*)'", command)
    assert load(json.loads(payload), {}).dry_run is True
    for request in re.findall(r"`(\{[^`]*\})`", markdown):  # the other examples parse too
        assert load(json.loads(request), {}).dry_run is True
