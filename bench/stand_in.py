"""The stand-in registry, served from its own process, as a real registry is served elsewhere.

In one process, moto's work (dispatching, the harness's corrections, encoding answers) holds
the GIL the sweeper's workers need, and its heap is walked by their garbage collector: at
100,000 manifests a quarter of the run's CPU was the stand-in's. A real ECR spends that on
its own machines. So the benchmark builds the registry in a child process (moto's backend,
written straight into, as before) and answers the sweeper's requests there:

- the sweeper's client is the real one (`registry.make_client`), unchanged: it builds, signs
  and parses every request and response as against AWS;
- where it would send a request over HTTP, a `before-send` handler hands the request (method,
  URL, headers, body) to the child and turns the child's answer (status, headers, body) into
  botocore's response; nothing reaches the network (the handler answers every request or
  raises). Each calling thread has its own slot of shared memory and a pair of semaphores:
  the thread writes its request there, posts one semaphore and waits on the other;
- the fixed latency per call (the network) is applied by the child: it answers no sooner than
  `latency` after the request arrived, its own processing inside that time, as a real
  registry's is inside its round trip. The calling thread so waits once per call, as on the
  issue's sleeping `before-send` hook: writing to shared memory and posting a semaphore do not
  let go of the GIL, and each further wait (a socket's send and read each are one) would cost
  the thread a turn at the GIL, which sixteen busy workers make dear;
- the child answers as the in-process harness does: the short path (`harness.fast_responses`)
  for the high-volume calls, moto itself (with the harness's corrections) for the rest and for
  every error, and times its own CPU;
- the oracle's lower bound and the registry's contents before and after are read in the child,
  straight from the backend, and sent back.

The estate is rebuilt in the child from the same arguments (it is deterministic), so nothing
big crosses the process boundary.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import struct
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HeadersDict
from moto.core.models import botocore_stubber

from harness import FakeRegistry
from harness.bulk import load, realistic_registry
from harness.fast_responses import FAST_OPERATIONS, answer_request
from sweeper.model import Pin
from sweeper.plan import Policy

__all__ = ["EstateSpec", "StandIn", "serving"]


@dataclass(frozen=True)
class EstateSpec:
    """What the child needs to build the same registry as the parent's estate."""

    repositories: int
    builds: int
    now: datetime
    seed: int
    pins: Mapping[str, Pin]  # for the oracle, as the sweeper gets them
    policy: Policy
    dry_run: bool
    short_path: bool  # answer the high-volume calls through harness.fast_responses


class _Body:
    """What botocore reads of a raw HTTP response: the whole body, in one chunk."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


_LENGTH = struct.Struct("!I")


def _send(sock: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive(sock: socket.socket, buffer: bytearray) -> Any:
    """One message; usually one read (the buffer and the socket's hold a whole answer)."""
    view = memoryview(buffer)
    got = 0
    while got < _LENGTH.size or got < _LENGTH.size + _LENGTH.unpack_from(buffer)[0]:
        if got == len(buffer):  # a larger answer than any before: the buffer grows, for good
            view.release()
            buffer.extend(bytes(len(buffer)))
            view = memoryview(buffer)
        count = sock.recv_into(view[got:])
        if not count:
            raise EOFError("the stand-in registry closed the connection")
        got += count
    size = _LENGTH.unpack_from(buffer)[0]
    try:
        return pickle.loads(view[_LENGTH.size : _LENGTH.size + size])
    finally:
        view.release()


_REQUEST_BYTES = 1 << 18  # a request is a few KiB at most (100 image ids)
_ANSWER_BYTES = 8 << 20  # an answer: a listing page of 1,000 image details is some 400 KiB
_SLOT_BYTES = _REQUEST_BYTES + _ANSWER_BYTES
_SPARE_SLOTS = 4  # beyond the workers: the calling thread, and room to spare


def _put(buffer: memoryview, offset: int, room: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if _LENGTH.size + len(data) > room:
        raise ValueError(f"{len(data)} bytes do not fit the stand-in's slot ({room})")
    _LENGTH.pack_into(buffer, offset, len(data))
    buffer[offset + _LENGTH.size : offset + _LENGTH.size + len(data)] = data


def _get(buffer: memoryview, offset: int) -> Any:
    size = _LENGTH.unpack_from(buffer, offset)[0]
    return pickle.loads(buffer[offset + _LENGTH.size : offset + _LENGTH.size + size])


@dataclass
class _Slots:
    """Shared memory, and a semaphore each way, per calling thread."""

    memory: SharedMemory
    asked: list[Any]  # multiprocessing semaphores: posted by the caller
    answered: list[Any]  # posted by the stand-in

    @classmethod
    def create(cls, context: Any, count: int) -> _Slots:
        return cls(
            SharedMemory(create=True, size=count * _SLOT_BYTES),
            [context.Semaphore(0) for _ in range(count)],
            [context.Semaphore(0) for _ in range(count)],
        )


class StandIn:
    """The parent's side: forwards a client's requests, asks for the registry's contents."""

    def __init__(self, address: str, region: str, slots: _Slots) -> None:
        self.address = address
        self.region = region
        self._slots = slots
        buffer = slots.memory.buf
        assert buffer is not None  # None only once closed
        self._buffer = buffer
        self._local = threading.local()
        self._lock = threading.Lock()
        self._next_slot = 0
        self._control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._control.connect(address)

    def attach(self, client: Any) -> None:
        """Answer `client`'s ECR requests from the child (registered after any other
        `before-send` handler, so one registered first, a call meter, still sees each call)."""
        client.meta.events.register("before-send.ecr", self._send)

    def _slot(self) -> int:
        slot: int | None = getattr(self._local, "slot", None)
        if slot is None:
            with self._lock:
                slot, self._next_slot = self._next_slot, self._next_slot + 1
            if slot >= len(self._slots.asked):
                raise RuntimeError("more calling threads than the stand-in has slots for")
            self._local.slot = slot
        return slot

    def _send(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
        slot = self._slot()
        body: Any = request.body
        if isinstance(body, str | bytearray):
            body = body.encode() if isinstance(body, str) else bytes(body)
        elif body is not None and not isinstance(body, bytes):
            body = body.read()
        offset = slot * _SLOT_BYTES
        message = (event_name, request.method, request.url, dict(request.headers), body)
        _put(self._buffer, offset, _REQUEST_BYTES, message)
        self._slots.asked[slot].release()
        self._slots.answered[slot].acquire()  # the one wait: the latency, the answer
        outcome, answer = _get(self._buffer, offset + _REQUEST_BYTES)
        if outcome != "answer":
            raise RuntimeError(f"the stand-in registry failed on {event_name}: {answer}")
        status, headers, content = answer
        return AWSResponse(request.url, status, headers, _Body(content))

    def ask(self, *message: Any) -> Any:
        _send(self._control, message)
        return _receive(self._control, bytearray(1 << 16))

    def close(self) -> None:
        self._control.close()
        self._buffer.release()


@contextmanager
def serving(spec: EstateSpec, latency: float, threads: int) -> Iterator[tuple[StandIn, Any, float]]:
    """Start the child, build the registry there; yields (stand-in, the oracle's bound, the
    seconds the build took) for clients called from up to `threads` threads at once (and the
    calling one). The child stops when the block ends."""
    context = get_context("spawn")  # a clean child: no parent threads, no parent mocks
    parent_end, child_end = context.Pipe()
    slots = _Slots.create(context, threads + _SPARE_SLOTS)
    process = context.Process(target=_serve, args=(spec, latency, child_end, slots), daemon=True)
    process.start()
    with ExitStack() as stack:
        stack.callback(slots.memory.unlink)
        stack.callback(slots.memory.close)
        stack.callback(process.join, 30)
        stack.callback(process.kill)
        child_end.close()
        message = parent_end.recv()
        if message[0] == "failed":
            raise RuntimeError(f"the stand-in registry did not start: {message[1]}")
        _, address, region, bound, build_seconds = message
        stand_in = StandIn(address, region, slots)
        stack.callback(stand_in.close)
        yield stand_in, bound, build_seconds
        stand_in.ask("stop")


# --- the child ------------------------------------------------------------------------------


def _serve(spec: EstateSpec, latency: float, parent: Connection, slots: _Slots) -> None:
    try:
        from . import registry_bench as rb  # noqa: PLC0415 (here: it imports this module)

        registry = FakeRegistry()
        registry.__enter__()
        estate = realistic_registry(spec.repositories, spec.builds, now=spec.now, seed=spec.seed)
        started = time.perf_counter()
        load(registry, estate.pushes)
        build_seconds = time.perf_counter() - started
        bound = rb.lower_bound(registry, spec.pins, spec.policy, spec.now, dry_run=spec.dry_run)
        del estate
        server = _Server(registry, spec.short_path, latency, slots)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = os.path.join(tempfile.mkdtemp(prefix="stand-in-"), "socket")
        listener.bind(address)
        listener.listen(64)
    except BaseException as exc:
        parent.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    parent.send(("ready", address, registry.region, bound, build_seconds))
    parent.close()
    try:
        server.run(listener)
    finally:
        shutil.rmtree(os.path.dirname(address), ignore_errors=True)


class _Server:
    """Answers requests, one thread per connection, until told to stop."""

    def __init__(self, registry: Any, short_path: bool, latency: float, slots: _Slots) -> None:
        self.registry = registry
        self.short_path = short_path
        self.latency = latency
        self.slots = slots
        self.cpu = 0.0
        self.wall = 0.0
        self._clock = threading.Lock()
        self._stop = threading.Event()

    def run(self, listener: socket.socket) -> None:
        listener_thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        listener_thread.start()
        for slot in range(len(self.slots.asked)):
            threading.Thread(target=self._answer, args=(slot,), daemon=True).start()
        self._stop.wait()
        listener.close()
        self.registry.__exit__(None, None, None)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _answer(self, slot: int) -> None:
        """Serve one calling thread's slot: a request in, an answer out, no sooner than the
        latency after the request came (the network)."""
        buffer = self.slots.memory.buf
        assert buffer is not None  # None only once closed
        offset = slot * _SLOT_BYTES
        while True:
            self.slots.asked[slot].acquire()
            arrived = time.perf_counter()
            reply: Any
            try:
                reply = ("answer", self._call(*_get(buffer, offset)))
            except Exception as exc:
                traceback.print_exc()
                reply = ("failed", f"{type(exc).__name__}: {exc}")
            wait = self.latency - (time.perf_counter() - arrived)
            if wait > 0:
                time.sleep(wait)
            try:
                _put(buffer, offset + _REQUEST_BYTES, _ANSWER_BYTES, reply)
            except ValueError as exc:
                _put(buffer, offset + _REQUEST_BYTES, _ANSWER_BYTES, ("failed", str(exc)))
            self.slots.answered[slot].release()

    def _talk(self, connection: socket.socket) -> None:
        """The control connection: the registry's contents, the stand-in's clock, stop."""
        buffer = bytearray(1 << 16)
        with connection:
            while True:
                try:
                    message = _receive(connection, buffer)
                except (EOFError, OSError):
                    return
                kind = message[0]
                reply: Any = None
                if kind == "digests":
                    reply = {name: self.registry.digests(name) for name in message[1]}
                elif kind == "clock":
                    with self._clock:
                        reply = (self.cpu, self.wall)
                _send(connection, reply)
                if kind == "stop":
                    self._stop.set()
                    return

    def _call(
        self, event_name: str, method: str, url: str, headers: Mapping[str, Any], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        wall, cpu = time.perf_counter(), time.thread_time()
        # botocore's own requests carry a HeadersDict, whatever its type stubs say.
        request = AWSPreparedRequest(
            method,
            url,
            HeadersDict(),  # type: ignore[arg-type]
            body,
            stream_output=False,
        )
        for name, value in headers.items():
            request.headers[name] = value
        operation = event_name.rsplit(".", 1)[-1]
        answer = None
        if self.short_path and operation in FAST_OPERATIONS:
            answer = answer_request(operation, request)
        if answer is None:
            answer = botocore_stubber(event_name=event_name, request=request)
        if answer is None:
            raise RuntimeError(f"moto did not answer {event_name}")
        reply = (answer.status_code, dict(answer.headers), answer.content)
        spent_wall, spent_cpu = time.perf_counter() - wall, time.thread_time() - cpu
        with self._clock:
            self.wall += spent_wall
            self.cpu += spent_cpu
        return reply
