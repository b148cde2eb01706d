"""The one clock of the edges.

The core never reads the time: it takes `now`. The Lambda handler and the command ask `now()`
here, once per run, and pass it down; tests set the clock with `use_clock`, so nothing a test
checks depends on the day it runs (the order repositories are swept in, `run.rotate`, does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Clock = system_clock


def now() -> datetime:
    """The current time, timezone-aware UTC, from the clock in use."""
    return _clock()


@contextmanager
def use_clock(clock: Clock) -> Iterator[None]:
    """Read the time from `clock` meanwhile (tests: a fixed instant, or a shifted one)."""
    global _clock  # noqa: PLW0603  # the seam itself: one process-wide clock, set for a test
    previous, _clock = _clock, clock
    try:
        yield
    finally:
        _clock = previous
