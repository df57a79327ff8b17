"""The training data: the mixed sample stream of a config, and the DataLoader that batches it
for one rank from a given position."""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Iterator
from typing import Any

import torch

from synthloc.data.datasets import (
    EpochShuffle,
    IcdarFolderDataset,
    InfiniteSource,
    Mixture,
    OnTheFlySynthesis,
    ShardSource,
    SynthTextH5Dataset,
    SynthTextMatDataset,
)
from synthloc.data.loader import Batch, StreamBatchSampler, TrainingStream, collate
from synthloc.train.distributed import DistContext
from synthloc.train.seeds import AUG_TAG, MIX_TAG, SOURCE_TAG, seed_int
from synthloc.train_config import TrainConfig


def build_stream(config: TrainConfig) -> InfiniteSource:
    """The training sample stream: every configured source, mixed with its weight."""
    streams: list[InfiniteSource] = []
    weights: list[float] = []
    for k, source in enumerate(config.data.sources):
        seed = seed_int(config.seed, SOURCE_TAG, k)
        stream: InfiniteSource
        if source.kind == "synth":
            stream = OnTheFlySynthesis(
                source.path or None,
                config.data.synth,
                seed,
                depth=source.depth or None,
                seg=source.seg or None,
            )
        elif source.kind == "shards":
            stream = EpochShuffle(ShardSource(source.path), seed)
        elif source.kind == "synthtext":
            stream = EpochShuffle(SynthTextMatDataset(source.path), seed)
        elif source.kind == "synthtext-h5":
            stream = EpochShuffle(SynthTextH5Dataset(source.path), seed)
        else:
            stream = EpochShuffle(IcdarFolderDataset(source.path), seed)
        streams.append(stream)
        weights.append(source.weight)
    return Mixture(streams, weights, seed_int(config.seed, MIX_TAG))


_WORKER_NICENESS = 5


def _default_sigterm_next_time(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker_init(worker_id: int) -> None:
    """Runs in each DataLoader worker process only: single-threaded OpenCV, lower priority.

    On a CPU-only machine the workers share cores with the training threads; at a lower
    scheduling priority they fill the gaps of the training step instead of pre-empting it
    (when the batch queue runs dry the training threads wait, and the workers get the cores).
    """
    import cv2

    del worker_id
    cv2.setNumThreads(1)
    # Ctrl-C and `kill -- -PGID` signal the whole process group. The main process then ends
    # the run after a checkpoint (StopSignals) and shuts the workers down itself, so they
    # ignore SIGINT and the first SIGTERM (a second one, e.g. from terminate(), still kills).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _default_sigterm_next_time)
    # A worker told to stop mid-stream may still have its queue's feeder thread writing a
    # prefetched batch. Python's finalisation ends such daemon threads with pthread_exit,
    # which aborts inside torch's C++ code ("terminate called without an active exception",
    # worker killed by SIGABRT). The batch is abandoned anyway and torch's worker loop has
    # closed its queues by then, so the worker leaves at the atexit stage instead.
    atexit.register(os._exit, 0)
    if hasattr(os, "nice"):
        try:
            os.nice(_WORKER_NICENESS)
        except OSError:
            pass  # not permitted: keep the default priority


def build_loader(
    config: TrainConfig,
    stream: InfiniteSource,
    dist_ctx: DistContext,
    start_batch: int,
    pin: bool,
    num_batches: int | None = None,
) -> torch.utils.data.DataLoader[Any]:
    """A DataLoader of padded, encoded batches for this rank from ``start_batch``.

    It yields ``num_batches`` batches, or never ends when None. Read it through
    :class:`LoaderBatches` so that its workers are shut down when the run ends early (a
    signal, an error) as well as when the loader is read to its end.
    """
    aug_seed = seed_int(config.seed, AUG_TAG)
    dataset = TrainingStream(
        stream,
        config.data.augment,
        stride=config.model.stride,
        min_size=config.data.min_word_size,
        seed=aug_seed,
        dense_shrink=config.data.dense_shrink if config.model.arch == "fcrn-dense" else None,
        box_pad=config.data.box_pad,
    )
    sampler = StreamBatchSampler(
        config.batch_size,
        dist_ctx.rank,
        dist_ctx.world_size,
        start_batch=start_batch,
        num_batches=num_batches,
    )
    workers = max(0, config.data.workers)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=pin,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        # Forked workers can deadlock in OpenCV/OpenMP thread pools the parent already
        # started; spawned workers start clean (and build their own renderer and caches).
        multiprocessing_context="spawn" if workers else None,
        # The loader draws a base seed per iterator; its own generator keeps that draw off
        # the global RNG (which drives dropout and is restored exactly on resume).
        generator=torch.Generator().manual_seed(aug_seed),
    )


class LoaderBatches(Iterator[Batch]):
    """The batches of a DataLoader, started on the first ``next`` and stopped by ``close``.

    ``close`` shuts the worker processes down at once. Without it, a run that ends by an
    exception keeps the loader's iterator alive in the traceback until interpreter exit,
    where multiprocessing's exit hook sends each worker one SIGTERM (which the workers
    ignore, see ``_worker_init``) and then waits for them forever.
    """

    def __init__(self, loader: torch.utils.data.DataLoader[Any]) -> None:
        self._loader = loader
        self._iterator: Iterator[Batch] | None = None

    def __next__(self) -> Batch:
        if self._iterator is None:
            self._iterator = iter(self._loader)
        return next(self._iterator)

    def close(self) -> None:
        iterator, self._iterator = self._iterator, None
        # torch has no public way to stop the workers of a live iterator; this is the method
        # its own __del__ calls (set the done event, join with a timeout, then terminate).
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
