"""The Lambda's log format: a bulk decision record reads, line by line, as lone decisions."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from log_format import DecisionLinesFormatter
from sweeper.run import DECISION_LINES, DECISION_MESSAGE

DECISIONS: list[dict[str, Any]] = [
    {
        "repository": "web",
        "digest": "sha256:" + str(n) * 64,
        "kind": "attestation",
        "verdict": "delete",
        "reason": "orphan",
        "cause": "",
        "size": 1234 * n,
        "live": False,
    }
    for n in range(1, 4)
]


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "ecr_sweeper", logging.INFO, "/x/run.py", 7, DECISION_MESSAGE, None, None, "_log"
    )
    record.created, record.msecs = 1_700_000_000.25, 250.0  # the same instant for every record
    record.__dict__.update(extra)
    return record


def _formatters() -> tuple[DecisionLinesFormatter, LambdaPowertoolsFormatter]:
    bulk, alone = DecisionLinesFormatter(service="svc"), LambdaPowertoolsFormatter(service="svc")
    for formatter in (bulk, alone):
        formatter.append_keys(run_id="run-1", dry_run=True)
    return bulk, alone


def test_a_bulk_record_is_one_line_per_decision_equal_to_each_logged_alone() -> None:
    bulk, alone = _formatters()
    lines = bulk.format(_record(**{DECISION_LINES: DECISIONS})).split("\n")
    assert [json.loads(line) for line in lines] == [
        json.loads(alone.format(_record(**decision))) for decision in DECISIONS
    ]
    first = json.loads(lines[0])
    assert (first["message"], first["run_id"], first["digest"]) == (
        "decision",
        "run-1",
        DECISIONS[0]["digest"],
    )
    assert DECISION_LINES not in first


def test_any_other_record_is_formatted_as_powertools_formats_it() -> None:
    bulk, alone = _formatters()
    cases = [
        _record(repository="web", manifests=3),  # a plain record with extras
        _record(**{DECISION_LINES: []}),  # an empty batch: one ordinary line, not a blank one
        _record(**{DECISION_LINES: "not a list"}),
    ]
    for record in cases:
        assert bulk.format(record) == alone.format(record)
    other = _record(**{DECISION_LINES: DECISIONS})
    other.msg = "repository"  # only the decision message is split
    assert bulk.format(other) == alone.format(other)
