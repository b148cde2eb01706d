"""The rotation: which repository a run starts at, and where the next run starts.

A run too short for the whole registry covers a prefix of its order. The next run starts where
this one stopped, so runs that reach k of n repositories each reach all of them in about n / k
runs. The position is kept between runs by a `RotationCursor` (ports): the repository to start
at. A name rather than an index, so repositories created or deleted meanwhile shift nothing: the
run starts at the first selected name at or after it, in sorted order, wrapping round.

The cursor is a convenience, never evidence: a run that cannot read it starts where the day
says (`rotate` without a start), one that cannot write it has still swept what it swept, and both
are logged. A run stopped by a guard (the circuit breaker, a new pin, a refused confirmation)
deleted nothing, so it leaves the cursor where it was: the dry run that reviews it and the real
run that goes past it cover the same repositories. Which cursor a run reads, and whether it may
write it, is the edges' choice (sweeper.cursor).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from datetime import datetime

from ..ports import RotationCursor
from .state import RepositorySummary

log = logging.getLogger("ecr_sweeper")


def rotate(names: Sequence[str], now: datetime, start_at: str | None = None) -> list[str]:
    """Sorted `names`, starting at `start_at` (the first name at or after it, wrapping round), or
    without one at an offset that moves on by one every day.

    The day's offset is the day number (days since 0001-01-01, UTC) modulo the number of
    repositories: no state, and no jump at New Year as a day-of-year offset would make. Alone it
    reaches every repository only within n - k + 1 runs of k; it is what a run without a
    readable cursor falls back to.
    """
    ordered = sorted(names)
    if not ordered:
        return []
    if start_at is None:
        start = now.date().toordinal() % len(ordered)
    else:
        start = bisect.bisect_left(ordered, start_at) % len(ordered)
    return [*ordered[start:], *ordered[:start]]


def reached(summary: RepositorySummary) -> bool:
    """Whether the run gave the repository its whole turn: not cut short by the time budget (or
    an interrupt). A repository whose reads failed was reached: what failed is in the report, and
    trying it again first would only hold the rotation up."""
    return not summary.out_of_time


def next_start(order: Sequence[str], summaries: Sequence[RepositorySummary]) -> str | None:
    """Where the next run starts, given this run's `order` and what it reached; None: leave the
    cursor where it is.

    The first repository not reached, so none is passed over. But when that is the one this run
    started at while it reached others (a repository too large for a whole run), the next one not
    reached: a single repository cannot hold the rotation up, and it comes first again a round
    later. None when every repository was reached (the start does not matter) or none was
    (nothing to move past).
    """
    done = {s.repository for s in summaries if reached(s)}
    left = [i for i, name in enumerate(order) if name not in done]
    if not left or not done:
        return None
    if left[0] == 0 and len(left) > 1:
        return order[left[1]]
    return order[left[0]]


def read_start(cursor: RotationCursor | None) -> str | None:
    """The cursor's repository, or None (start where the day says) when there is no cursor or
    it cannot be read."""
    if cursor is None:
        return None
    try:
        return cursor.read()
    except Exception as exc:  # any failure: the run starts where the day says instead
        log.warning("rotation cursor not read: starting where the day says", extra=_error(exc))
        return None


def write_start(cursor: RotationCursor | None, repository: str | None) -> None:
    """Keep where the next run starts; a failure is logged, and the run is not failed by it."""
    if cursor is None or repository is None:
        return
    try:
        cursor.write(repository)
    except Exception as exc:  # the sweep is done; only the next run's start is lost
        log.warning(
            "rotation cursor not written: the next run starts where the day says",
            extra={**_error(exc), "next_repository": repository},
        )


def _error(exc: Exception) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}"}
