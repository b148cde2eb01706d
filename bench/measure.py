"""What the benchmarks measure with: API calls, a stand-in network, CPU by part, memory.

Nothing here changes what a call does: the meter notes (and may sleep), the clocks time.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any
from unittest import mock

# The re-read before each delete is a DescribeImages with imageIds; the listing is one without.
VERIFY = "DescribeImages(imageIds)"
LIST = "DescribeImages(listing)"
OPERATIONS = ("DescribeRepositories", LIST, "BatchGetImage", VERIFY, "BatchDeleteImage")


class CallMeter:
    """Counts every HTTP attempt per operation, and the ids it carried (a `before-send` hook,
    so botocore's retries are counted like any other attempt). Thread-safe.

    With `sleeps`, it also stands in for the network: each attempt sleeps `latency` seconds.
    The benchmark's stand-in registry (stand_in.py) applies the latency itself instead, so that
    a call waits once; `latency` then only sets the floors."""

    def __init__(self, latency: float, *, sleeps: bool = True) -> None:
        self.latency = latency
        self.sleeps = sleeps
        self.calls: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()
        self.logical: Counter[str] = Counter()
        self.fetched: set[tuple[str, str]] = set()
        self.fetched_twice = 0  # manifests whose bytes were asked for more than once
        # Calls per repository in each phase of a run: planning (listing, reads) and sweeping
        # (re-reads, deletes); all planning ends before any sweeping starts.
        self.planning: Counter[str] = Counter()
        self.sweeping: Counter[str] = Counter()
        self._names: list[str] = []
        self._bodies: list[Any] = []
        self._asked: list[str] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-send.ecr", self._before_send)
        client.meta.events.register_first("before-call.ecr", self._before_call)

    def _before_call(self, model: Any, params: Any, **_: Any) -> None:
        self._asked.append(model.name)  # counted by `tally`

    def _before_send(self, request: Any, event_name: str, **_: Any) -> None:
        # Only noted here (a list's append is atomic): counting, with a lock the sixteen
        # workers would contend for, would cost each call a turn at the GIL that a sweep does
        # not pay. `tally` counts, after the run.
        self._names.append(event_name)
        self._bodies.append(request.body)
        if self.latency and self.sleeps:
            time.sleep(self.latency)

    def tally(self) -> None:
        """Count what was sent (call once the run is over)."""
        sent = list(zip(self._names, self._bodies, strict=True))
        self._names, self._bodies = [], []
        self.logical.update(self._asked)
        self._asked = []
        for event_name, body in sent:
            operation = event_name.rsplit(".", 1)[-1]
            doc = json.loads(body) if body else {}
            ids = doc.get("imageIds") or ()
            if operation == "DescribeImages":
                operation = VERIFY if ids else LIST
            self.calls[operation] += 1
            self.ids[operation] += len(ids)
            repository = doc.get("repositoryName")
            if repository is not None:
                phase = (
                    self.sweeping if operation in (VERIFY, "BatchDeleteImage") else self.planning
                )
                phase[repository] += 1
            if operation == "BatchGetImage":
                for image_id in ids:
                    key = (doc.get("repositoryName", ""), image_id.get("imageDigest", ""))
                    self.fetched_twice += key in self.fetched
                    self.fetched.add(key)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def schedule_floor(self, concurrency: int) -> float:
        """The least wall time these calls allow with `concurrency` workers, each repository's
        calls being one after another within a phase: per phase, the busiest worker has at
        least the average share, and the longest repository chain runs on one worker."""
        calls: float = self.total - sum(self.planning.values()) - sum(self.sweeping.values())
        for phase in (self.planning, self.sweeping):
            if phase:
                calls += max(sum(phase.values()) / concurrency, *phase.values())
        return calls * self.latency

    @property
    def retries(self) -> int:
        return self.total - sum(self.logical.values())


class GcClock:
    """Time spent in the garbage collector while installed, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[int, float] = defaultdict(float)
        self.collections: Counter[int] = Counter()
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        # The collector runs with the GIL held, in one thread at a time.
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    @contextmanager
    def installed(self) -> Iterator[GcClock]:
        gc.callbacks.append(self._callback)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._callback)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as status:
            found = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the system (glibc), so that a run's RSS
    figures do not depend on what an earlier run in the same process left behind."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> bool:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def peak_mib() -> float | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024


def machine() -> dict[str, Any]:
    """The machine the figures come from (the README asks for nproc, free -h and Python)."""

    def run(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""

    free = run("free", "-h").splitlines()
    return {
        "nproc": os.cpu_count(),
        "free_h": " | ".join(" ".join(line.split()) for line in free[:2]),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            found = re.search(r"^model name\s*:\s*(.+)$", info.read(), re.MULTILINE)
    except OSError:
        return platform.processor()
    return found.group(1).strip() if found else platform.processor()


class CpuLedger:
    """Thread CPU spent inside chosen functions, by label: where a run's CPU goes.

    Each function is wrapped for the ledger's lifetime (`mock.patch`); a call inside another
    wrapped call counts in both (the report subtracts). The wrapper costs about a microsecond.
    """

    def __init__(self) -> None:
        self._spent: list[tuple[str, float]] = []

    @contextmanager
    def watching(self, targets: Sequence[tuple[str, Any, str]]) -> Iterator[CpuLedger]:
        """`targets`: (label, object, attribute name) of each function to time."""
        with ExitStack() as stack:
            for label, owner, name in targets:
                stack.enter_context(
                    mock.patch.object(owner, name, self._timed(label, getattr(owner, name)))
                )
            yield self

    def _timed(self, label: str, function: Any) -> Any:
        ledger = self

        spent_by_label = ledger._spent

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                # Appended, not added up under a lock the workers would contend for.
                spent_by_label.append((label, time.thread_time() - started))

        return timed

    def total(self) -> dict[str, float]:
        """CPU seconds by label, so far."""
        cpu: defaultdict[str, float] = defaultdict(float)
        for label, seconds in list(self._spent):
            cpu[label] += seconds
        return dict(cpu)
