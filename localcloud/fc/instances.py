"""Function instances: one worker process each, started on demand and reused while warm.

As on FC with the default instance concurrency of 1, an instance runs one request at a time;
a function gets up to ``max_instances`` of them and further requests wait for one to free up.
The initializer runs once per instance, before its first invocation. A request that overruns
its timeout kills the instance (FC does the same: the next request starts a fresh one).

Each instance runs on the Python of its function's runtime (:mod:`localcloud.fc.runtimes`). On
another Python than the local cloud's, the worker starts isolated (``-E -S``): the code folder,
the worker's extra paths and the standard library are all it sees, as on FC, so the code folder
must carry its dependencies built for that Python (``immflow package --runtime``). On the local
cloud's own Python (the runtime's version, or the fallback when it is missing) the instance also
sees the local cloud's packages and ``PYTHONPATH``.

Scaling out differs from FC on purpose: FC starts another instance as soon as a request finds
every instance busy; the local FC, whose instances share a laptop's few cores with the media work
of the local IMM, first waits for a busy instance of the function to come free, for as long as the
function's last cold start took (spawn to ready: handler imported, initializer run; measured here),
bounded by ``scale_out_after`` (0.3 s, also the wait until a cold start was measured) and
``scale_out_at_most`` (2 s). A new instance could not serve sooner than that, and its cold start
costs several hundred milliseconds of CPU where a warm event costs a few, so a burst of uploads is
served by a few warm instances in turn rather than by a cold instance each competing with ffmpeg.
For the same reason a function starts one instance at a time: while one is starting, requests
wait for it (or for a busy one to come free), and the wait starts again when it is ready. A function
with no instance at all starts one at once; ``max_instances`` still caps the instances.

Pre-warming (``FcService(prewarm=True)``, what ``immflow local up`` runs) differs from FC too: a
deploy starts one instance of each function at once, has it import its handler's module and run
the function's initializer, so the first event of a fresh deploy waits for neither. FC does this
only for provisioned instances (which run the initializer when they are created); its on-demand
instances start at the first request and run the initializer just before it, as the local FC's
instances started on demand do. A pre-warmed instance does not run the initializer again.

Not enforced locally: ``memorySize`` (a Python process's address space is no measure of FC's
memory accounting), the 4 KB limit on environment variables, and idle reclaiming: warm
instances are kept until the function is redeployed or the service closes.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from localcloud.fc import runtimes
from localcloud.fc.protocol import read_frame, write_frame

#: The folder holding the ``localcloud`` package: the worker starts there to import its module,
#: then makes the code folder its working directory and first import path.
_WORKER_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class InvokeResult:
    """The result of one invocation, as the invoke API will report it."""

    ok: bool
    body: bytes = b""
    error: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0

    @classmethod
    def failure(cls, message: str, error_type: str, duration: float = 0.0) -> InvokeResult:
        return cls(
            False,
            error={"errorMessage": message, "errorType": error_type, "stackTrace": []},
            duration=duration,
        )


@dataclass(frozen=True)
class Launch:
    """What a worker process needs: its code folder, environment and the per-request metadata."""

    function: str
    version: str
    code_path: Path
    env: dict[str, str]
    meta: dict[str, Any]
    initializer_timeout: int
    log_path: Path


class Instance:
    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.instance_id = uuid.uuid4().hex
        self.initialized = not launch.meta.get("initializer")
        self.loaded = False
        self.spawned_at = time.monotonic()
        #: Its cold start, spawn to ready (handler imported, initializer run): None until then.
        self.ready_seconds: float | None = None
        requests_read, self._requests = os.pipe()
        self._replies, replies_write = os.pipe()
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: BinaryIO = open(launch.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        env = {**launch.env, "FC_INSTANCE_ID": self.instance_id}
        self.interpreter = runtimes.interpreter_for(launch.meta["runtime"])
        if self.interpreter.host:
            python = [sys.executable]
        else:
            python = [self.interpreter.path, "-E", "-S"]
            env.pop("PYTHONPATH", None)  # the local cloud's paths hold packages built for its own Python
        code_dir = os.path.abspath(launch.code_path)  # the worker starts elsewhere
        worker = ["-m", "localcloud.fc.worker", str(requests_read), str(replies_write), code_dir]
        self.process = subprocess.Popen(
            [*python, *worker],
            cwd=_WORKER_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(requests_read, replies_write),
            start_new_session=True,
        )
        os.close(requests_read)
        os.close(replies_write)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _exchange(
        self, op: str, request_id: str, payload: bytes, timeout: float, crash_after: float | None = None
    ) -> InvokeResult:
        started = time.monotonic()
        try:
            write_frame(
                self._requests, {"op": op, "request_id": request_id, "meta": self.launch.meta}, payload
            )
            if crash_after is not None and crash_after < timeout:
                # The fault plan's fc.crash: the process dies now, whatever it was doing; a reply it
                # already wrote is lost with it, as when an instance dies before FC has the result.
                select.select([self._replies], [], [], crash_after)
                self.kill()
                return InvokeResult.failure(
                    f"the function's process exited unexpectedly (killed after {crash_after:.2f} s by the "
                    f"local cloud's fault plan: fc.crash); see its log {self.launch.log_path}",
                    "UnhandledInvocationError",
                    time.monotonic() - started,
                )
            ready, _, _ = select.select([self._replies], [], [], timeout)
            if not ready:
                self.kill()
                what = "initializer" if op == "init" else "function"
                return InvokeResult.failure(
                    f"{what} timed out after {timeout:g} seconds (instance {self.instance_id} was stopped)",
                    "FunctionTimeoutError",
                    time.monotonic() - started,
                )
            header, body = read_frame(self._replies)
        except (EOFError, BrokenPipeError, OSError):
            self.kill()
            return InvokeResult.failure(
                f"the function's process exited unexpectedly (exit code {self.process.poll()}); "
                f"see its log {self.launch.log_path}",
                "UnhandledInvocationError",
                time.monotonic() - started,
            )
        duration = time.monotonic() - started
        if header.get("ok"):
            return InvokeResult(True, body, duration=duration)
        return InvokeResult(False, error=header["error"], duration=duration)

    def start(self, request_id: str, timeout: float) -> InvokeResult:
        """Make the instance ready, once: import the handler's module, then run the initializer (a
        failure of either kills the instance: FC retries on a fresh one). Measures `ready_seconds`."""
        if not self.loaded:
            outcome = self._exchange("load", request_id, b"", timeout)
            if not outcome.ok:
                self.kill()
                return outcome
            self.loaded = True
        if not self.initialized:
            outcome = self._exchange("init", request_id, b"", self.launch.initializer_timeout)
            if not outcome.ok:
                self.kill()
                outcome.error["errorMessage"] = "initializer failed: " + str(
                    outcome.error.get("errorMessage", "")
                )
                return outcome
            self.initialized = True
        if self.ready_seconds is None:
            self.ready_seconds = time.monotonic() - self.spawned_at
        return InvokeResult(True)

    def invoke(
        self, request_id: str, payload: bytes, timeout: float, crash_after: float | None = None
    ) -> InvokeResult:
        outcome = self.start(request_id, timeout)  # nothing left to do on a pre-warmed instance
        if not outcome.ok:
            return outcome
        return self._exchange("invoke", request_id, payload, timeout, crash_after)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for fd in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._requests = self._replies = -1
        self._log.close()


class Pool:
    """The warm instances of every function, keyed by function name (scaling out: module docstring)."""

    def __init__(
        self, max_instances: int, scale_out_after: float = 0.3, scale_out_at_most: float = 2.0
    ) -> None:
        self.max_instances = max_instances
        #: How long a request waits for a busy instance before starting one: the function's last
        #: cold start (`_cold_starts`) within these bounds, the lower one until one was measured.
        self.scale_out_after = scale_out_after
        self.scale_out_at_most = scale_out_at_most
        #: Per function, the last cold start measured (spawn to ready: `Instance.ready_seconds`).
        self._cold_starts: dict[str, float] = {}
        self._lock = threading.Condition()
        self._idle: dict[str, list[Instance]] = {}
        self._busy: dict[str, int] = {}
        #: Instances being started (by `prewarm` or a request), per function (also counted in ``_busy``).
        self._starting: dict[str, int] = {}
        #: When an instance of the function last finished starting (`_started`).
        self._ready_at: dict[str, float] = {}
        #: Warm-ups run one at a time, in the order they were asked for (`prewarm`).
        self._warm_tickets = 0
        self._warm_turn = 0
        self._closed = False

    def invoke(
        self,
        launch: Launch,
        request_id: str,
        payload: bytes,
        timeout: float,
        crash_after: float | None = None,
    ) -> InvokeResult:
        """Run one request; ``crash_after`` kills the instance that many seconds into it (fc.crash)."""
        instance, new = self._acquire(launch)
        try:
            if new:
                try:
                    outcome = instance.start(request_id, timeout)
                finally:
                    self._started(instance)
                if not outcome.ok:
                    return outcome
            return instance.invoke(request_id, payload, timeout, crash_after)
        finally:
            self._release(instance)

    def scale_out_wait(self, function: str) -> float:
        """How long a request finding every instance of `function` busy waits for one (module docstring)."""
        measured = self._cold_starts.get(function, self.scale_out_after)
        return min(max(measured, self.scale_out_after), self.scale_out_at_most)

    def _started(self, instance: Instance) -> None:
        with self._lock:
            self._mark_started(instance.launch.function, instance)

    def _mark_started(self, function: str, instance: Instance | None) -> None:
        """With the lock held: an instance `_acquire` or `prewarm` started is ready (or failed, or was
        never made): requests waiting for an instance may start another now, and its cold start is
        the function's latest measure (`scale_out_wait`)."""
        self._starting[function] -= 1
        self._ready_at[function] = time.monotonic()
        if instance is not None and instance.ready_seconds is not None:
            self._cold_starts[function] = instance.ready_seconds
        self._lock.notify_all()

    def _acquire(self, launch: Launch) -> tuple[Instance, bool]:
        """An idle instance of the function, or a new one (True) that the caller must `Instance.start`."""
        function = launch.function
        with self._lock:
            arrived = time.monotonic()
            while True:
                if self._closed:
                    raise RuntimeError("the local FC is shutting down")
                idle = self._idle.setdefault(function, [])
                while idle:
                    instance = idle.pop()
                    if instance.alive and instance.launch.version == launch.version:
                        self._busy[function] = self._busy.get(function, 0) + 1
                        return instance, False
                    instance.kill()
                if self._starting.get(function):
                    self._lock.wait()  # one cold start at a time: an instance almost ready may serve
                    continue
                busy = self._busy.get(function, 0)
                # Waited from this request's arrival, or from the function's last cold start ending.
                scale_out_at = max(arrived, self._ready_at.get(function, 0.0)) + self.scale_out_wait(function)
                if busy < self.max_instances and (busy == 0 or time.monotonic() >= scale_out_at):
                    self._busy[function] = busy + 1
                    self._starting[function] = 1
                    break
                if busy < self.max_instances:
                    self._lock.wait(max(0.0, scale_out_at - time.monotonic()))
                else:
                    self._lock.wait()
        try:
            return Instance(launch), True
        except BaseException:
            with self._lock:
                self._busy[function] -= 1
                self._mark_started(function, None)
            raise

    def _release(self, instance: Instance) -> None:
        with self._lock:
            self._busy[instance.launch.function] -= 1
            if instance.alive and not self._closed:
                self._idle.setdefault(instance.launch.function, []).append(instance)
            else:
                instance.kill()
            self._lock.notify_all()

    def prewarm(self, launch: Launch, timeout: float) -> threading.Thread | None:
        """Start one instance of a function that has none, load its handler's module and run its
        initializer, in the background, so the first request finds it warm (a local difference: FC
        keeps instances ready only with provisioned concurrency, and runs their initializer when it
        creates them, as here; see the module docstring). Returns the thread, or None when the
        function already has an instance.

        Warm-ups run one after another, in the order asked (a deploy's: its s.yaml's order): side by
        side, the instances' imports shared a laptop's few cores, so the first function (the one the
        first upload needs) was ready only about when the last one was."""
        with self._lock:
            function = launch.function
            if self._closed or self._busy.get(function, 0) or self._idle.get(function):
                return None
            self._busy[function] = 1
            self._starting[function] = 1
            ticket = self._warm_tickets
            self._warm_tickets += 1

        def warm() -> None:
            instance: Instance | None = None
            try:
                with self._lock:
                    while self._warm_turn != ticket and not self._closed:
                        self._lock.wait()
                if not self._closed:
                    instance = Instance(launch)
                    # A failure kills the instance: the first request, on a fresh one, reports it.
                    instance.start(f"prewarm-{instance.instance_id}", timeout)
            finally:
                with self._lock:
                    self._warm_turn += 1
                    self._busy[function] -= 1
                    if instance is not None and instance.alive and not self._closed:
                        self._idle.setdefault(function, []).append(instance)
                    elif instance is not None:
                        instance.kill()
                    self._mark_started(function, instance)

        thread = threading.Thread(target=warm, name=f"localcloud-fc-prewarm-{function}", daemon=True)
        thread.start()
        return thread

    def retire(self, function: str, version: str) -> None:
        """Stop the idle instances of a function that are not of ``version``, after a redeploy (busy
        ones are dropped when next picked). Those of ``version`` run the same code and configuration,
        so an unchanged redeploy (the demo deploys at every run) keeps its warm instances."""
        with self._lock:
            idle = self._idle.pop(function, [])
            for instance in idle:
                if instance.launch.version != version:
                    instance.kill()
            kept = [instance for instance in idle if instance.launch.version == version]
            if kept:
                self._idle[function] = kept

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for instances in self._idle.values():
                for instance in instances:
                    instance.kill()
            self._idle.clear()
            self._lock.notify_all()
