"""What the benchmarks measure with: API calls, memory, and the machine the figures come from.

Nothing here changes what a call does: the meter only notes.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# The re-read before each delete is a DescribeImages with imageIds; the listing is one without.
VERIFY = "DescribeImages(imageIds)"
LIST = "DescribeImages(listing)"
# The manifest store's own requests (loads, saves, journal writes): not ECR's, but a run's.
STORE = "ManifestStore"
# Before its first read, a run finds its principal among the registry's pull-time update
# exclusions: one list, and on the registry's first run one register.
LIST_EXCLUSIONS = "ListPullTimeUpdateExclusions"
REGISTER_EXCLUSION = "RegisterPullTimeUpdateExclusion"
OPERATIONS = (
    LIST_EXCLUSIONS,
    REGISTER_EXCLUSION,
    "DescribeRepositories",
    "GetAccountSetting",
    LIST,
    "GetLifecyclePolicy",
    "BatchGetImage",
    VERIFY,
    "BatchDeleteImage",
    STORE,
)

MIB = 1024 * 1024


class CallMeter:
    """Counts every HTTP attempt per operation, and the ids it carried (a `before-send` hook,
    so botocore's retries are counted like any other attempt), and every logical call (a
    `before-call` hook). Thread-safe: the hooks only append (atomic) or write under a lock;
    `tally` counts.

    What was sent is noted in a temporary file, not in memory: the run's peak memory is
    measured while it runs, and a meter holding every request it saw would count there."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()
        self.logical: Counter[str] = Counter()
        self.fetched: set[tuple[str, str]] = set()
        self.fetched_twice = 0  # manifests whose bytes were asked for more than once
        self._sent = tempfile.TemporaryFile()  # noqa: SIM115 (read and closed by `tally`)
        self._lock = threading.Lock()
        self._asked: list[str] = []
        self._stored: list[str] = []

    def attach(self, client: Any) -> None:
        """Count `client`'s calls (first among its handlers, so before anything answers)."""
        client.meta.events.register_first("before-send.ecr", self._before_send)
        client.meta.events.register_first("before-call.ecr", self._before_call)

    def note_store(self, request: str) -> None:
        """One request of the manifest store (load, save, journal)."""
        self._stored.append(request)

    def _before_call(self, model: Any, **_: Any) -> None:
        self._asked.append(model.name)

    def _before_send(self, request: Any, event_name: str, **_: Any) -> None:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else bytes(body)
        with self._lock:
            self._sent.write(b"%s %d\n" % (event_name.encode(), len(body)) + body)

    def _read_sent(self) -> Iterator[tuple[str, bytes]]:
        self._sent.seek(0)
        while header := self._sent.readline():
            event_name, size = header.decode().split()
            yield event_name, self._sent.read(int(size))
        self._sent.close()
        self._sent = tempfile.TemporaryFile()  # noqa: SIM115

    def tally(self) -> None:
        """Count what was sent (call once the run is over)."""
        sent = self._read_sent()
        self.logical.update(self._asked)
        self._asked = []
        stored, self._stored = self._stored, []
        self.calls[STORE] += len(stored)
        self.logical[STORE] += len(stored)
        for event_name, body in sent:
            operation = event_name.rsplit(".", 1)[-1]
            doc = json.loads(body) if body else {}
            ids = doc.get("imageIds") or ()
            if operation == "DescribeImages":
                operation = VERIFY if ids else LIST
            self.calls[operation] += 1
            self.ids[operation] += len(ids)
            if operation == "BatchGetImage":
                for image_id in ids:
                    key = (doc.get("repositoryName", ""), image_id.get("imageDigest", ""))
                    self.fetched_twice += key in self.fetched
                    self.fetched.add(key)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def retries(self) -> int:
        return self.total - sum(self.logical.values())


@dataclass
class Growth:
    """The peak of Python memory allocated inside a `growth()` block and not yet freed."""

    peak_mib: float = 0.0


@contextmanager
def growth() -> Iterator[Growth]:
    """Trace Python's allocations while entered (tracemalloc, every thread) and give their
    peak: what the block grew the process's Python heap by at its fullest. Memory allocated
    before the block is left out even when the block frees it, so reusing such memory still
    counts (a peak RSS would not see it). Tracing slows allocation down; its own bookkeeping
    is not counted."""
    if tracemalloc.is_tracing():
        raise RuntimeError("tracemalloc is already tracing: the peak would not be this block's")
    measured = Growth()
    tracemalloc.start()
    try:
        yield measured
    finally:
        measured.peak_mib = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()


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
    """The machine the figures come from (printed beside the figures: nproc, free -h and Python)."""

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


class Latency:
    """A network's round trip on a client: every HTTP attempt waits `seconds` before it is sent
    (a `before-send` hook, so a retry waits again), and the time each attempt takes, from being
    sent to its response being read, is added up. `in_flight(wall)`, that sum over the wall time,
    is the average number of calls under way at once: what the pool really overlaps.

    `server_cpu_seconds`: the CPU the stand-in server spent. moto answers in-process from a
    handler of every `before-send` event, which botocore calls after the handlers of the more
    specific `before-send.ecr`: the server's share is the thread's CPU between the last of those
    (the wait) and a handler registered last on `before-send`. The rest of the process's CPU is
    the client's. Nothing in a call's content changes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0
        self.busy_seconds = 0.0
        self.server_cpu_seconds = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()

    def attach(self, client: Any) -> None:
        client.meta.events.register_last("before-send.ecr", self._before_send)
        client.meta.events.register_last("before-send", self._answered)
        client.meta.events.register("response-received.ecr", self._response_received)

    def _before_send(self, **_: Any) -> None:
        self._local.at = time.perf_counter()
        if self.seconds > 0:
            time.sleep(self.seconds)
        self._local.cpu = time.thread_time()

    def _answered(self, event_name: str, **_: Any) -> None:
        cpu = getattr(self._local, "cpu", None)
        if cpu is None or not event_name.startswith("before-send.ecr."):
            return
        self._local.cpu = None
        spent = time.thread_time() - cpu
        with self._lock:
            self.server_cpu_seconds += spent

    def _response_received(self, **_: Any) -> None:
        started = getattr(self._local, "at", None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        self._local.at = None
        with self._lock:
            self.calls += 1
            self.busy_seconds += elapsed

    def in_flight(self, wall_seconds: float) -> float:
        return self.busy_seconds / wall_seconds if wall_seconds > 0 else 0.0
