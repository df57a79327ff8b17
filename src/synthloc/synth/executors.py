"""Scheduling: run shard tasks somewhere, retry failures a bounded number of times.

The seam is :class:`Executor`: ``run(function, tasks, attempts)`` yields one :class:`Outcome`
per task, in completion order, either the function's result or, after ``attempts`` failed tries,
the last error. A try fails when the function raises or when the process running it dies
(killed by the OOM killer, by a user, a lost machine). A task raising
:class:`~synthloc.synth.errors.OutputError` (disk full) stops the run: ``run`` raises it.
Implementations:

* :class:`InProcessExecutor`: this process, one task at a time (``--workers 1``).
* :class:`ProcessExecutor`: worker processes of this machine (``--workers N``).
* :class:`synthloc.synth.dask_executor.DaskExecutor`: a Dask cluster (``--dask``).

``function`` and the tasks must be picklable (a module-level function, or a
``functools.partial`` of one). Adding an executor means adding one class with ``run``.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, Protocol, TypeVar

from synthloc.synth.errors import OutputError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    """What became of one task: ``result`` if it succeeded, else ``error`` (the last one)."""

    task: T
    result: R | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs tasks; see the module docstring."""

    def run(
        self, function: Callable[[T], R], tasks: Sequence[T], attempts: int
    ) -> Iterator[Outcome[T, R]]:
        """Yield one outcome per task as tasks finish; each task is tried at most ``attempts``
        times. Closing the iterator early stops the work."""
        ...

    def close(self) -> None:
        """Release processes or connections."""
        ...


def describe_error(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class InProcessExecutor:
    """Runs every task in this process, in order."""

    def run(
        self, function: Callable[[T], R], tasks: Sequence[T], attempts: int
    ) -> Iterator[Outcome[T, R]]:
        for task in tasks:
            error = None
            for attempt in range(1, attempts + 1):
                try:
                    result = function(task)
                except OutputError:
                    raise
                except Exception as exc:  # bounded retries, then reported by the caller
                    error = describe_error(exc)
                    continue
                yield Outcome(task, result, None, attempt)
                break
            else:
                yield Outcome(task, None, error, attempts)

    def close(self) -> None:
        return None


def _worker_main(connection: Connection) -> None:
    """A worker process: run ``(position, function, task)`` messages until told to stop."""
    # Ctrl-C reaches the whole process group; the parent alone handles it (one message, then
    # it stops the workers), so workers ignore it instead of printing tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One process per core: OpenCV's own thread pool would oversubscribe the machine. This
    # runs only in worker processes, never in the caller.
    import cv2

    cv2.setNumThreads(1)
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        position, function, task = message
        reply: tuple[int, Any, str | OutputError | None]
        try:
            reply = (position, function(task), None)
        except OutputError as exc:  # the parent stops the run
            reply = (position, None, exc)
        except Exception as exc:  # sent back; the parent retries or reports it
            reply = (position, None, describe_error(exc))
        connection.send(reply)


@dataclass
class _Worker:
    process: Any  # multiprocessing.process.BaseProcess
    connection: Connection
    position: int | None = None  # the task it is running


class ProcessExecutor:
    """Worker processes on this machine (``spawn``: safe with threads in the parent).

    Each worker runs one task at a time, so a worker that dies takes exactly one task with it:
    that task's try counts as failed, the worker is replaced, and the task is tried again
    (up to ``attempts`` tries). A script using this must guard its entry point with
    ``if __name__ == "__main__":``.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []

    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [w.process.pid for w in self._pool]

    def _start(self) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child_end,), daemon=True)
        # Started with SIGINT ignored, a worker ignores it from its first instruction (the
        # disposition survives exec), before _worker_main can say so.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        child_end.close()
        return _Worker(process, parent_end)

    def run(
        self, function: Callable[[T], R], tasks: Sequence[T], attempts: int
    ) -> Iterator[Outcome[T, R]]:
        queue = deque(range(len(tasks)))
        tries = [0] * len(tasks)
        remaining = len(tasks)
        try:
            self._pool = [self._start() for _ in range(min(self.workers, len(tasks)))]
            while remaining:
                for worker in self._pool:
                    if worker.position is None and queue:
                        worker.position = queue.popleft()
                        tries[worker.position] += 1
                        try:
                            worker.connection.send(
                                (worker.position, function, tasks[worker.position])
                            )
                        except OSError:
                            pass  # it just died: handled below like any death
                waitables: list[Any] = [w.connection for w in self._pool]
                waitables += [w.process.sentinel for w in self._pool]
                wait(waitables)
                for slot, worker in enumerate(list(self._pool)):
                    reply = self._receive(worker)
                    if reply is not None:
                        position, result, error = reply
                        worker.position = None
                        if isinstance(error, OutputError):
                            raise error
                        if error is None:
                            remaining -= 1
                            yield Outcome(tasks[position], result, None, tries[position])
                        elif tries[position] < attempts:
                            queue.append(position)
                        else:
                            remaining -= 1
                            yield Outcome(tasks[position], None, error, tries[position])
                    if worker.process.is_alive():
                        continue
                    # Died (killed, out of memory): its task, if any, failed this try.
                    worker.process.join()
                    worker.connection.close()
                    lost = worker.position
                    if lost is not None:
                        code = worker.process.exitcode
                        how = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
                        error = f"worker process {worker.process.pid} died ({how})"
                        if tries[lost] < attempts:
                            queue.appendleft(lost)
                        else:
                            remaining -= 1
                            yield Outcome(tasks[lost], None, error, tries[lost])
                    self._pool[slot] = self._start()
        finally:
            # Early exit (Ctrl-C, the caller stopped): busy workers are stopped, not awaited.
            self._stop(graceful=remaining == 0)

    @staticmethod
    def _receive(worker: _Worker) -> tuple[int, Any, str | OutputError | None] | None:
        try:
            if worker.connection.poll():
                reply: tuple[int, Any, str | OutputError | None] = worker.connection.recv()
                return reply
        except (EOFError, OSError):
            return None  # the pipe closed: the process died (handled by the caller)
        return None

    def _stop(self, graceful: bool) -> None:
        for worker in self._pool:
            if graceful:
                try:
                    worker.connection.send(None)
                except (OSError, ValueError):
                    pass
            else:
                worker.process.terminate()
        for worker in self._pool:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._pool = []

    def close(self) -> None:
        self._stop(graceful=False)
