"""Lambda entry point: parse event -> settings -> run -> report + metrics. Nothing else."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sweeper import metrics as metric_names
from sweeper.registry import Registry, make_client
from sweeper.run import Sweeper
from sweeper.settings import load

logger = Logger(service=metric_names.SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", metric_names.NAMESPACE),
    service=metric_names.SERVICE,
)
# The core logs through the standard library; give it the same JSON output and run context.
copy_config_to_registered_loggers(source_logger=logger, include={"ecr_sweeper"})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = load(event, os.environ)  # raises InvalidSettings, naming the field, before any call
    logger.append_keys(run_id=context.aws_request_id, dry_run=settings.dry_run)
    registry = Registry(make_client())
    sweeper = Sweeper(
        registry,
        settings,
        datetime.now(UTC),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    report = sweeper.run().report()
    metric_names.publish(metrics, report, MetricUnit)
    logger.info("run", extra={"report": {k: v for k, v in report.items() if k != "deletions"}})
    return report
