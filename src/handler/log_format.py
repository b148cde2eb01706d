"""The Lambda's log format: Powertools JSON lines, one line per decision even when logged in bulk.

The core logs its decisions a repository (or a batch) at a time: one record whose `decisions`
extra holds a list of dictionaries (`sweeper.run.Sweeper._log_decisions`, where the cost that
made it so is written down). This formatter writes such a record as one line per decision, each
line the record's own Powertools keys (level, location, timestamp, service, the keys appended
with `append_keys` such as the run id, the Lambda context) with the decision's fields after
them, exactly as if each decision had been logged alone at that instant. Every other record is
formatted as `LambdaPowertoolsFormatter` formats it.

Lambda turns each line written to stdout into its own log event, so CloudWatch and Logs Insights
see one event per decision either way.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from sweeper.run import DECISION_LINES, DECISION_MESSAGE


class DecisionLinesFormatter(LambdaPowertoolsFormatter):
    """`LambdaPowertoolsFormatter`, writing a bulk decision record as one line per decision."""

    def format(self, record: logging.LogRecord) -> str:
        lines = getattr(record, DECISION_LINES, None)
        if record.msg != DECISION_MESSAGE or not isinstance(lines, list) or not lines:
            return super().format(record)
        # The keys every line shares, formatted once by Powertools itself (a copy of the record
        # without the list, so the list is not written into them).
        shared = copy.copy(record)
        del shared.__dict__[DECISION_LINES]
        common: dict[str, Any] = json.loads(super().format(shared))
        serialize = self.serialize
        return "\n".join(serialize(log={**common, **line}) for line in lines)
