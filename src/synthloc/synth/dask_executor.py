"""Scheduling on a Dask cluster: ``synthloc synth --dask ADDRESS`` or ``--dask local:N``.

One Dask task per shard. A task that raises is retried by Dask (``retries``); a task whose
worker dies is rescheduled by the scheduler on another worker, up to the scheduler's
``distributed.scheduler.allowed-failures`` (set to ``attempts - 1`` for a ``local:N`` cluster
started here; a remote scheduler keeps its own setting, 3 by default). After that the shard is
reported as failed. A ``local:N`` cluster also turns off two Dask worker defaults that slow
rendering down (see :class:`DaskExecutor`); configure remote workers the same way.

Tasks write their shard themselves, so on a multi-machine cluster the output folder must be a
place every worker reaches (a shared file system or an fsspec URL).

Needs ``pip install 'synthloc[cluster]'`` (dask[distributed], fsspec).
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from synthloc.data.store import CLUSTER_EXTRA
from synthloc.synth.errors import OutputError, SynthError
from synthloc.synth.executors import Outcome, describe_error

T = TypeVar("T")
R = TypeVar("R")

LOCAL_PREFIX = "local:"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise SynthError(
            f"--dask needs dask.distributed, which is not installed: {CLUSTER_EXTRA}"
        ) from exc
    return distributed


def _worker_setup_plugin(distributed: Any, ignore_interrupts: bool) -> Any:
    class SynthWorkerSetup(distributed.WorkerPlugin):  # type: ignore[misc]
        """Each worker is one process on one core: OpenCV's own thread pool would
        oversubscribe the machine (as in the local worker processes). Workers of a
        ``local:N`` cluster also ignore Ctrl-C, which the terminal sends to the whole process
        group: this process alone handles it and stops them (one message, no tracebacks)."""

        def setup(self, worker: Any) -> None:
            import cv2

            cv2.setNumThreads(1)
            if ignore_interrupts and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return SynthWorkerSetup()


class DaskExecutor:
    """Runs tasks on a Dask cluster (see the module docstring).

    address: a scheduler address (``tcp://host:8786``) or ``local:N`` to start a LocalCluster
    of N single-threaded worker processes on this machine (closed again by :meth:`close`).
    Raises :class:`SynthError` when dask.distributed is missing, ``local:N`` is malformed or
    the scheduler cannot be reached.
    """

    def __init__(self, address: str, attempts: int = 3) -> None:
        distributed = _import_distributed()
        self.address = address
        self._cluster: Any = None
        # distributed logs every connection at INFO; keep its warnings (lost workers) only,
        # while this executor is open.
        self._log = logging.getLogger("distributed")
        self._log_level = self._log.level
        self._log.setLevel(max(self._log_level, logging.WARNING))
        if address.startswith(LOCAL_PREFIX):
            count = address[len(LOCAL_PREFIX) :]
            if not count.isdigit() or int(count) < 1:
                raise SynthError(f"--dask {address}: expected local:N with N >= 1 processes")
            import dask

            settings = {
                "distributed.scheduler.allowed-failures": attempts - 1,
                # Measured with benchmarks/synth_speed.py (48 images, 2 workers): rendering was
                # 45% slower than local processes with Dask's defaults, 28% slower without
                # the workers' statistical profiler (it samples the task's stack every 10 ms,
                # taking the GIL), and as fast without Dask's MALLOC_TRIM_THRESHOLD_=65536
                # (glibc then hands memory back after every large temporary image and faults
                # it in again for the next).
                "distributed.worker.profile.enabled": False,
                "distributed.nanny.pre-spawn-environ": {
                    "OMP_NUM_THREADS": 1,
                    "MKL_NUM_THREADS": 1,
                    "OPENBLAS_NUM_THREADS": 1,
                },
            }
            # Started with SIGINT ignored, the worker processes ignore it from their first
            # instruction (the disposition survives exec); the plugin below covers restarts.
            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                with dask.config.set(settings):
                    self._cluster = distributed.LocalCluster(
                        n_workers=int(count),
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.ERROR,
                    )
            finally:
                if main:
                    signal.signal(signal.SIGINT, previous)
        try:
            self.client = distributed.Client(self._cluster or address, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            self._close_cluster()
            self._log.setLevel(self._log_level)
            raise SynthError(f"--dask {address}: cannot reach the scheduler ({exc})") from exc
        plugin = _worker_setup_plugin(distributed, ignore_interrupts=self._cluster is not None)
        self.client.register_plugin(plugin)

    def worker_pids(self) -> list[int]:
        """Process ids of the cluster's workers (for tests and diagnostics)."""
        import os

        return sorted(self.client.run(os.getpid).values())

    def run(
        self, function: Callable[[T], R], tasks: Sequence[T], attempts: int
    ) -> Iterator[Outcome[T, R]]:
        distributed = _import_distributed()
        run_id = uuid.uuid4().hex[:8]
        futures = {
            self.client.submit(
                function, task, key=f"synthloc-shard-{run_id}-{i}", retries=attempts - 1
            ): i
            for i, task in enumerate(tasks)
        }
        try:
            for future in distributed.as_completed(list(futures)):
                task = tasks[futures[future]]
                if future.status == "finished":
                    yield Outcome(task, future.result(), None, 1)
                    continue
                error = future.exception()
                if isinstance(error, OutputError):
                    raise error
                yield Outcome(task, None, describe_error(error), attempts)
        finally:
            # Nothing keeps running after the caller stops (Ctrl-C, a full disk).
            if self.client.status == "running":
                self.client.cancel([f for f in futures if not f.done()])

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            # We are shutting the workers down on purpose: a nanny that has to kill a busy
            # worker ("still alive after 4.0 seconds, killing") is not news to the user.
            self._log.setLevel(logging.ERROR)
            self._cluster.close()
            self._cluster = None

    def close(self) -> None:
        self.client.close()
        self._close_cluster()
        self._log.setLevel(self._log_level)
