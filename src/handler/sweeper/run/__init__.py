"""The orchestration: one run over a registry, phase by phase.

- `coordinator`: the run (`Sweeper`), the repositories it takes;
- `rotation`: in which order, and where the next run starts (a cursor kept between runs);
- `scan`: list a repository, read the bytes its plan needs, plan it (the core decides);
- `sweep`: delete the plan wave by wave, re-reading each batch first;
- `exclusion`: before the first read, the run's principal among ECR's pull-time exclusions;
- `check`: after a sweep, list the repository again and find what is broken;
- `report`, `state`, `decision_log`: what a run keeps, returns and logs;
- `context`: the options the edges choose, the time budget, the run's limits.

It talks to a registry only through `ports.Registry`.
"""

from .check import RepositoryCheck, check_repository
from .context import (
    FREED_BYTES_READ_LIMIT,
    MAX_LISTED_DELETIONS,
    SWEEP_SHARE,
    TIME_MARGIN_SECONDS,
    RunOptions,
)
from .coordinator import (
    HELD_BY_CIRCUIT_BREAKER,
    NO_PIN_SOURCE,
    NO_PIN_SOURCE_WARNING,
    NO_REPOSITORY_MATCHED,
    Sweeper,
    select_repositories,
    unmatched_patterns,
    warnings_for,
)
from .decision_log import DECISION_LINES, DECISION_MESSAGE
from .exclusion import ExclusionState, PullTimeExclusion
from .report import Report
from .rotation import next_start, rotate
from .state import Failure, RepositoryRun, RepositorySummary, StopReason

__all__ = [
    "DECISION_LINES",
    "DECISION_MESSAGE",
    "FREED_BYTES_READ_LIMIT",
    "HELD_BY_CIRCUIT_BREAKER",
    "MAX_LISTED_DELETIONS",
    "NO_PIN_SOURCE",
    "NO_PIN_SOURCE_WARNING",
    "NO_REPOSITORY_MATCHED",
    "SWEEP_SHARE",
    "TIME_MARGIN_SECONDS",
    "ExclusionState",
    "Failure",
    "PullTimeExclusion",
    "Report",
    "RepositoryCheck",
    "RepositoryRun",
    "RepositorySummary",
    "RunOptions",
    "StopReason",
    "Sweeper",
    "check_repository",
    "next_start",
    "rotate",
    "select_repositories",
    "unmatched_patterns",
    "warnings_for",
]
