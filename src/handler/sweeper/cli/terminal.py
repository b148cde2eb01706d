"""The terminal: a progress line, and Ctrl-C made safe."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from ..ports import BATCH_SIZE
from ..run import RepositoryRun
from .render import human_bytes


class Progress:
    """A one-line progress bar on `stream`, only when it is a terminal (never in a pipe or log)."""

    WIDTH = 24

    def __init__(self, stream: TextIO, label: str = "scanning") -> None:
        self.stream = stream
        self.label = label
        self.enabled = stream.isatty()
        self.shown = False
        self._lock = threading.Lock()
        self.batches = self.manifests = self.batches_done = self.manifests_done = 0
        self.freed: dict[str, int] = {}  # repository -> bytes its confirmed deletions free

    def planned(self, repo: RepositoryRun, done: int, total: int) -> None:
        self.step(repo.repository, done, total)

    def step(self, name: str, done: int, total: int) -> None:
        self._show(f"{done}/{total} {name}", done, total)

    def _show(self, text: str, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        filled = self.WIDTH * done // total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {text}"[:200] + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def deleting(self, repos: list[RepositoryRun]) -> None:
        """Count the delete batches to come (each wave in batches of ports.BATCH_SIZE): the
        sweep's progress is then shown as batches and manifests done and bytes freed so far."""
        self.label = "deleting"
        self.batches = sum(-(-len(wave) // BATCH_SIZE) for r in repos for wave in r.waves)
        self.manifests = sum(len(r.planned) for r in repos)
        self.batches_done = self.manifests_done = 0
        self.freed = {}

    def deleted(self, repo: RepositoryRun, batch: list[str]) -> None:
        """After each delete call (from the run's worker threads)."""
        if not self.enabled:
            return
        # What the repository's confirmed deletions free so far; the ledger is the plan's.
        freed = repo.ledger.freed(repo.deleted) or 0
        with self._lock:
            self.batches_done += 1
            self.manifests_done += len(batch)
            self.freed[repo.repository] = freed
            text = (
                f"{self.batches_done}/{self.batches} batches, "
                f"{self.manifests_done}/{self.manifests} manifests, "
                f"{human_bytes(sum(self.freed.values()))} freed"
            )
            self._show(text, self.batches_done, self.batches)

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Interrupts:
    """Ctrl-C, made safe. Before anything is deleted (scanning, or at the question) it stops the
    command at once. Once deleting, the first Ctrl-C asks the run to stop before its next batch
    (the run's `interrupted` option: the same safe stop as a Lambda running out of time, no
    index is left without a child); a second one stops at once."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.stopping = threading.Event()
        self.deleting = threading.Event()
        self._previous: Callable[..., Any] | int | None = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = self.stopping.is_set()
        self.stopping.set()  # repositories not yet scanned are skipped
        if again or not self.deleting.is_set():
            raise KeyboardInterrupt
        self.err.write("\nStopping before the next batch (Ctrl-C again to stop at once)...\n")

    def __enter__(self) -> Interrupts:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        except ValueError:  # not the main thread: Ctrl-C behaves as usual
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
