"""Lambda entry point: parse event -> settings -> run -> report + metrics + summary event."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from log_format import DecisionLinesFormatter
from sweeper import clock, cursor, notify, pins, store
from sweeper import metrics as metric_names
from sweeper.model import Pin
from sweeper.registry import EcrRegistry, client_config, make_client
from sweeper.run import Report, RunOptions, Sweeper
from sweeper.settings import Settings, load

# The dashboard's address, for the summary event (set by the template; absent: null).
DASHBOARD_URL = "DASHBOARD_URL"

# One JSON line per decision, from the core's bulk decision records (log_format.py says why).
logger = Logger(service=metric_names.SERVICE, logger_formatter=DecisionLinesFormatter())
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", metric_names.NAMESPACE),
    service=metric_names.SERVICE,
)
# The core logs through the standard library; give it the same JSON output and run context.
copy_config_to_registered_loggers(source_logger=logger, include={"ecr_sweeper"})


def _client(service: str, **arguments: Any) -> Any:
    return boto3.client(service, config=client_config(), **arguments)  # type: ignore[call-overload]


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=context.aws_request_id)  # on every line, the core's too
    settings = load(event, os.environ)  # raises InvalidSettings, naming the field, before any call
    logger.append_keys(dry_run=settings.dry_run)
    set_dimensions(context.function_name)
    events = _client("events")
    resource = function_arn(context.invoked_function_arn)
    dashboard = os.environ.get(DASHBOARD_URL) or None
    try:
        report = run(settings, context)
    except Exception as exc:
        detail = notify.failed_detail(
            exc, run_id=context.aws_request_id, dry_run=settings.dry_run, dashboard_url=dashboard
        )
        count_summary(notify.publish(events, notify.DETAIL_FAILED, detail, resource))
        raise
    publish(report)
    detail = notify.completed_detail(report, run_id=context.aws_request_id, dashboard_url=dashboard)
    count_summary(notify.publish(events, notify.DETAIL_COMPLETED, detail, resource))
    answer = report.as_dict()
    logger.info("run", extra={"report": {k: v for k, v in answer.items() if k != "deletions"}})
    return answer


def function_arn(invoked: str) -> str:
    """The function's ARN without a version or alias (`arn:...:function:NAME`): the summary
    event's resource, which a rule can match whatever qualifier the invocation named."""
    return ":".join(invoked.split(":")[:7])


def run(settings: Settings, context: LambdaContext) -> Report:
    ecr = make_client()
    registry = EcrRegistry(ecr)
    sources = pins.sources(settings, _client)

    def read_pins() -> tuple[dict[str, Pin], dict[str, int]]:
        # An unreadable source fails the invocation, naming the source, before any delete: once
        # here, before anything is listed, and once more right before the first delete.
        try:
            return pins.collect(sources, workers=settings.concurrency)
        except pins.PinSourceError as exc:
            logger.error("pin source unreadable", extra={"source": exc.source, "error": str(exc)})
            raise

    pinned, pin_counts = read_pins()
    # Tags something runs by, of this registry: the function's account (from its own ARN) and
    # the region of its ECR client.
    account = context.invoked_function_arn.split(":")[4]
    held, held_counts = pins.held_tags(sources, account, ecr.meta.region_name)
    logger.info("pins", extra={"pins": pin_counts, "held_tags": held_counts})
    options = RunOptions(
        pins=pinned,
        held_tags=held,
        reload_pins=lambda: read_pins()[0],
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        store=store.open_store(settings.manifest_store, _client)
        if settings.manifest_store
        else None,
        run_id=context.aws_request_id,
        cursor=cursor.for_run(
            settings, load({}, os.environ), os.environ.get(cursor.CURSOR_PARAMETER_ENV, ""), _client
        ),
    )
    report = Sweeper(registry, settings, clock.now(), options).run()
    report.pins = pin_counts
    if report.store == "unavailable":
        logger.warning("store unavailable", extra={"store": settings.manifest_store})
    report.held_tags = held_counts
    return report


def set_dimensions(function_name: str) -> None:
    if metrics.default_dimensions.get(metric_names.FUNCTION_DIMENSION) != function_name:
        # Set once per container: setting it again on a warm start warns of a duplicate.
        metrics.set_default_dimensions(**{metric_names.FUNCTION_DIMENSION: function_name})


def count_summary(published: bool) -> None:
    """SummaryEventFailures, on every run (0 when the event went out), failed ones included."""
    metrics.add_metric(
        name=metric_names.SUMMARY_EVENT_FAILURES,
        unit=metric_names.COUNT,
        value=0 if published else 1,
    )


def publish(report: Report) -> None:
    """The run's metrics (flushed by `log_metrics` as one EMF line) and one EMF line per kept
    reason (a `Reason` dimension needs a metric set of its own); see sweeper/metrics.py."""
    function_name = metrics.default_dimensions[metric_names.FUNCTION_DIMENSION]
    for figure in metric_names.run_figures(report):
        metrics.add_metric(name=figure.name, unit=figure.unit, value=figure.value)
    dimensions = {
        metric_names.SERVICE_DIMENSION: metric_names.SERVICE,
        metric_names.FUNCTION_DIMENSION: function_name,
    }
    for reason, count in metric_names.kept_figures(report):
        with single_metric(
            name=metric_names.MANIFESTS_KEPT,
            unit=metric_names.COUNT,  # type: ignore[arg-type]  # Powertools accepts the unit's name
            value=count,
            namespace=metrics.namespace,
            default_dimensions=dimensions,
        ) as metric:
            metric.add_dimension(name=metric_names.REASON_DIMENSION, value=reason)
