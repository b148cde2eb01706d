"""Amazon Inspector's coverage as a pin source (harness.workloads.InspectorCoverage serves
ListCoverage, which moto lacks), end to end through the handler.

The registry is conftest's: `latest` pushed twice a month ago, the first tree an untagged orphan
that an `orphans` run deletes unless something pins it.
"""

from __future__ import annotations

import pytest

from conftest import NOW, Builds, Invoke
from harness import FakeRegistry
from harness.workloads import AwsEvents, InspectorCoverage, Workloads
from sweeper.clock import use_clock
from sweeper.pins import PinSourceError

REPO = "app"
DAY = 86400.0


@pytest.fixture
def coverage(registry: FakeRegistry, aws_events: AwsEvents) -> InspectorCoverage:
    covered = InspectorCoverage(registry.account_id, registry.region)
    covered.install(aws_events)
    return covered


# scenario -> (inUseCount, lastInUseAt in days before now, whether the old tree is kept)
CASES = {
    "running-now": (2, None, True),
    "last-in-use-within-the-pull-window": (0, 10.0, True),
    "last-in-use-before-the-pull-window": (0, 45.0, False),
    "never-in-use": (0, None, False),
}


@pytest.mark.parametrize(("in_use", "days_ago", "kept"), CASES.values(), ids=CASES.keys())
def test_inspector_pins_what_it_shows_in_use(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    coverage: InspectorCoverage,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    in_use: int,
    days_ago: float | None,
    kept: bool,
) -> None:
    last = None if days_ago is None else NOW.timestamp() - days_ago * DAY
    coverage.add(REPO, builds.old.index, in_use=in_use, last_in_use=last)
    coverage.add(REPO, builds.new.index, in_use=1)
    monkeypatch.setenv("PIN_FROM_INSPECTOR", "true")
    with use_clock(lambda: NOW):
        report = invoke(dry_run=False, scope="orphans")
    old = builds.old.all if kept else set()
    assert registry.digests(REPO) == old | builds.new.all
    assert report["pins"] == {"inspector": 2 if kept else 1}
    assert coverage.calls >= 2  # in use now, and within the window: two filtered listings


def test_inspector_unreadable_fails_closed(
    registry: FakeRegistry,
    workloads: Workloads,
    builds: Builds,
    invoke: Invoke,
    aws_events: AwsEvents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws_events.fail("inspector2", "ListCoverage", "AccessDeniedException", status=403)
    monkeypatch.setenv("PIN_FROM_INSPECTOR", "true")
    before = registry.digests(REPO)
    with pytest.raises(PinSourceError) as raised:
        invoke(dry_run=False, scope="orphans")
    assert raised.value.source == "inspector"
    assert "AccessDeniedException" in str(raised.value)
    assert registry.digests(REPO) == before
