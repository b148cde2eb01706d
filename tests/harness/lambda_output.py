"""What the Lambda writes to its log, read back as CloudWatch would: EMF metrics and JSON lines.

In Lambda, stdout is the log: Powertools prints one EMF blob per metric set and its Logger writes
one JSON object per line. `captured()` collects both, in order, while the handler runs in-process:

    with captured() as out:
        report = invoke(dry_run=True)
    metrics = emf_metrics(out.getvalue())
    lines = log_lines(out.getvalue())
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any

# The loggers whose handlers write the Lambda's log lines: the handler's Powertools logger (named
# after the service) and the core's standard-library logger (app.py copies the first's config).
LOGGER_NAMES = ("ecr-sweeper", "ecr_sweeper")


@contextmanager
def captured() -> Iterator[io.StringIO]:
    """Everything printed (EMF) and logged (JSON lines) meanwhile, in one buffer, in order.

    Logger handlers keep the stream they were created with, so redirecting stdout alone would
    miss the log lines: their streams are swapped for the buffer too, and restored afterwards.
    """
    buffer = io.StringIO()
    handlers = {
        handler
        for name in LOGGER_NAMES
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, logging.StreamHandler)
    }
    previous = [(handler, handler.stream) for handler in handlers]
    for handler in handlers:
        if getattr(handler.stream, "closed", False):
            # The capture file of an earlier pytest session in this process (mutmut runs the
            # tests twice in one): closed, so setStream's flush of it would raise.
            handler.stream = buffer
        else:
            handler.setStream(buffer)
    try:
        with redirect_stdout(buffer):
            yield buffer
    finally:
        for handler, stream in previous:
            handler.flush()
            handler.stream = stream


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def recorded() -> Iterator[list[logging.LogRecord]]:
    """The records the core's logger (`ecr_sweeper`) takes meanwhile, whatever its level was:
    for code called without the handler, which formats nothing."""
    logger = logging.getLogger("ecr_sweeper")
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass(frozen=True)
class EmittedMetric:
    """One value of one metric in one EMF blob, with the dimension set it was published under."""

    namespace: str
    name: str
    unit: str
    dimensions: frozenset[tuple[str, str]]
    value: float

    @property
    def key(self) -> tuple[str, str, frozenset[tuple[str, str]]]:
        """What identifies a CloudWatch metric: namespace, name and the exact dimension set."""
        return (self.namespace, self.name, self.dimensions)


def _objects(text: str) -> Iterator[dict[str, Any]]:
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        doc = json.loads(line)  # anything JSON-looking that is not JSON is a bug worth failing on
        if isinstance(doc, dict):
            yield doc


def emf_metrics(text: str) -> list[EmittedMetric]:
    """Every metric value of every EMF blob (lines with an `_aws.CloudWatchMetrics` directive)."""
    found: list[EmittedMetric] = []
    for doc in _objects(text):
        directives = doc.get("_aws", {}).get("CloudWatchMetrics")
        if directives is None:
            continue
        for directive in directives:
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((key, str(doc[key])) for key in dimension_set)
                for metric in directive["Metrics"]:
                    raw = doc[metric["Name"]]
                    for value in raw if isinstance(raw, list) else [raw]:
                        found.append(
                            EmittedMetric(
                                directive["Namespace"],
                                metric["Name"],
                                metric.get("Unit", "None"),
                                dimensions,
                                float(value),
                            )
                        )
    return found


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines (everything but EMF blobs)."""
    return [doc for doc in _objects(text) if "_aws" not in doc]
