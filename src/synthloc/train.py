"""Training: ``fit`` (the loop), ``validate``, checkpoints that resume a run exactly.

A run directory holds::

    config.yaml       the resolved TrainConfig
    last.pt          latest checkpoint (model, optimizer, scheduler, scaler, EMA, step,
                      curriculum weight, RNG states, config); written atomically
    best.pt           the checkpoint with the best validation F so far
    best_model.pt     its weights as a model file (synthloc.model.save_model)
    model.pt          final weights as a model file (EMA weights when EMA is on)
    metrics.jsonl     one JSON object per log/validation row; metrics.csv the same, long format
    tb/               TensorBoard events (only when tensorboard is installed)

Determinism: the data stream is addressed by index (see :mod:`synthloc.data.loader`), and the
stream position is a function of the global step, so resuming needs no data-loader state.  The
model is initialised and trained inside ``torch.random.fork_rng`` seeded from the config, so the
caller's global torch RNG is untouched; the RNG states are saved in each checkpoint.

``step`` counts optimiser updates (including skipped non-finite ones, so the data position stays
``step * accum_steps * batch_size`` per rank).  The negative-weight curriculum uses this global
step and therefore survives resume.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from synthloc.atomic import atomic_path
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
from synthloc.data.sample import Sample
from synthloc.data.transforms import resize_to_fit
from synthloc.train_config import (
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    ValConfig,
    config_from_dict,
    config_to_dict,
    save_config,
)

__all__ = [
    "CHECKPOINT_VERSION",
    "DistContext",
    "ModelEMA",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "build_stream",
    "fit",
    "load_checkpoint",
    "lr_factor",
    "predict_quads",
    "save_checkpoint",
    "validate",
]

CHECKPOINT_VERSION = 1
_log = logging.getLogger(__name__)
# Seed-sequence tags separating the random streams derived from the run seed.
_INIT_TAG, _LOSS_TAG, _SOURCE_TAG, _MIX_TAG, _AUG_TAG = 1, 2, 3, 4, 5


class NonFiniteLossError(RuntimeError):
    """Raised after ``max_nonfinite`` consecutive steps with a NaN/inf loss."""


@dataclass
class DistContext:
    """Where this process sits in a (possibly single-process) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


@dataclass
class TrainResult:
    """What ``fit`` returns: the step reached, the best validation F, where files are, and the
    trained model (the EMA copy when EMA is on; this rank's copy under torchrun)."""

    step: int
    out_dir: Path
    best_hmean: float | None = None
    last_validation: dict[str, float] = field(default_factory=dict)
    nonfinite_steps: int = 0
    data_failures: int = 0
    model_path: Path | None = None
    model: nn.Module | None = None
    stopped_by: str | None = None


# --------------------------------------------------------------------------- building blocks


def resolve_device(name: str, dist_ctx: DistContext) -> torch.device:
    """ "auto" -> CUDA (this rank's local GPU) when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dist_ctx.local_rank % max(1, torch.cuda.device_count()))
    return device


def init_distributed(device_name: str) -> DistContext:
    """Join the process group when run by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return DistContext(rank, world, local_rank, False)
    use_cuda = device_name.startswith("cuda") or (
        device_name == "auto" and torch.cuda.is_available()
    )
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world, local_rank, True)


def build_stream(config: TrainConfig) -> InfiniteSource:
    """The training sample stream: every configured source, mixed with its weight."""
    streams: list[InfiniteSource] = []
    weights: list[float] = []
    for k, source in enumerate(config.data.sources):
        seed = int(np.random.SeedSequence([config.seed, _SOURCE_TAG, k]).generate_state(1)[0])
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
    mix_seed = int(np.random.SeedSequence([config.seed, _MIX_TAG]).generate_state(1)[0])
    return Mixture(streams, weights, mix_seed)


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

    It yields ``num_batches`` batches, or never ends when None.  A loader that is read to its
    end shuts its workers down cleanly; one dropped while workers are mid-batch may make them
    abort noisily at exit, so runs of known length should say how many batches they need.
    """
    aug_seed = int(np.random.SeedSequence([config.seed, _AUG_TAG]).generate_state(1)[0])
    dataset = TrainingStream(
        stream,
        config.data.augment,
        stride=config.model.stride,
        min_size=config.data.min_word_size,
        seed=aug_seed,
        dense_shrink=config.data.dense_shrink if config.model.arch == "fcrn-dense" else None,
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


def _decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation parameters (1-D tensors)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or AdamW, with decay only on weight matrices/kernels."""
    groups = _decay_groups(model, config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
        )
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def lr_factor(step: int, schedule: ScheduleConfig, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (linear warmup, then the schedule)."""
    if schedule.warmup_steps > 0 and step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    if schedule.kind == "constant":
        return 1.0
    if schedule.kind == "step":
        return float(schedule.gamma ** sum(1 for m in schedule.milestones if step >= m))
    span = max(1, total_steps - schedule.warmup_steps)
    progress = min(1.0, (step - schedule.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return schedule.min_lr_ratio + (1.0 - schedule.min_lr_ratio) * cosine


class ModelEMA:
    """Exponential moving average of a model's floating-point weights and buffers (BatchNorm
    statistics included); integer buffers are copied.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    average forgets the random initial weights within the first few hundred steps instead of
    keeping ``decay ** n`` of them (with 0.999 that is still 22% after 1,500 steps).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = source[name].detach()
            if value.dtype.is_floating_point:
                value.lerp_(new.to(value.dtype), 1.0 - decay)
            else:
                value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "module" in state and "updates" in state:
            self.module.load_state_dict(state["module"])
            self.updates = int(state["updates"])
        else:  # checkpoints written before the warmup existed hold the weights only
            self.module.load_state_dict(state)
            self.updates = 10**9


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", None)
    return inner if isinstance(model, nn.parallel.DistributedDataParallel) and inner else model


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename (atomic)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit`; ValueError naming the file if it is not one."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no checkpoint to resume from")
    try:
        state = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as error:  # torch.load raises many types for corrupt files
        raise ValueError(f"{source}: cannot read checkpoint: {error}") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{source}: not a synthloc training checkpoint (version mismatch)")
    return state


def model_from_checkpoint(path: str | os.PathLike[str], weights: str = "ema") -> nn.Module:
    """The model of a training checkpoint in eval mode: its EMA weights or its raw weights.

    weights: "ema" (the run's moving average; raises if the run kept none) or "raw" (the
    optimiser's current weights). Save it with :func:`synthloc.model.save_model`.
    """
    from synthloc.model import build_model

    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    checkpoint = load_checkpoint(path)
    config = config_from_dict(TrainConfig, checkpoint["config"])
    model = build_model(config.model)
    if weights == "raw":
        state = checkpoint["model"]
    else:
        ema = checkpoint.get("ema")
        if ema is None:
            raise ValueError(f"{path}: this run kept no EMA weights; use weights='raw'")
        state = ema["module"] if "module" in ema and "updates" in ema else ema
    model.load_state_dict(state)
    return model.eval()


# --------------------------------------------------------------------------- validation


def _validation_synth_set(config: TrainConfig) -> list[Sample]:
    """``synth_count`` images rendered with the validation seed, resized to ``max_side``."""
    val = config.val
    if val.synth_count <= 0:
        return []
    source = OnTheFlySynthesis(val.synth_backgrounds or None, config.data.synth, val.synth_seed)
    samples = []
    for i in range(val.synth_count):
        sample = source[i]
        samples.append(resize_to_fit(sample, val.max_side))
    return samples


def predict_quads(
    model: nn.Module,
    images: list[np.ndarray],
    max_side: int,
    score_threshold: float,
    nms_iou: float,
    device: torch.device,
    batch_size: int = 8,
    min_size: float = 0.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Single-scale detection for validation, with :class:`synthloc.detect.Detector` (on a
    BatchNorm-folded copy, so ``model`` itself is left as it is): long side ``max_side``,
    decode, the ``min_size`` filter, rotated NMS, quads mapped back. images: uint8 [H, W, 3]
    RGB each. Returns per image quads float32 [K, 4, 2] in the image's own pixels and scores
    float32 [K]."""
    from synthloc.detect import Detector

    detector = Detector.from_model(
        _unwrap(model),
        scales=[float(max_side)],
        threshold=score_threshold,
        nms_iou=nms_iou,
        min_size=min_size,
        batch_size=batch_size,
        device=device,
    )
    return [
        (
            np.array([d.quad for d in found], np.float32).reshape(-1, 4, 2),
            np.array([d.score for d in found], np.float32),
        )
        for found in detector.detect_batch(images)
    ]


def _score(
    model: nn.Module,
    samples: list[Sample],
    max_side: int,
    val: ValConfig,
    device: torch.device,
) -> dict[str, float]:
    """ic15 scores of ``model`` on ``samples`` at ``val``'s settings. With
    ``val.score_thresholds``, one detection pass at the lowest threshold is scored at each
    (keeping the detections at or above it), and the best F is returned with its threshold."""
    from synthloc.data.icdar import IcdarGT
    from synthloc.evaluate import evaluate_ic15

    thresholds = sorted(val.score_thresholds) or [val.score_threshold]
    predictions = predict_quads(
        model,
        [s.image for s in samples],
        max_side,
        thresholds[0],
        val.nms_iou,
        device,
        val.batch_size,
        val.min_size,
    )
    gt = {
        f"{k:06d}_{s.name}": IcdarGT(quads=s.word_quads, words=s.words, ignore=s.ignore)
        for k, s in enumerate(samples)
    }
    best: dict[str, float] = {}
    per_threshold: dict[str, float] = {}
    for threshold in thresholds:
        pred: dict[str, Any] = {
            key: (quads[scores >= threshold], scores[scores >= threshold])
            for key, (quads, scores) in zip(gt, predictions)
        }
        result = evaluate_ic15(gt, pred)
        per_threshold[f"hmean@{threshold:g}"] = result.hmean
        if not best or result.hmean > best["hmean"]:
            best = {"precision": result.precision, "recall": result.recall, "hmean": result.hmean}
            best["threshold"] = threshold
    if not val.score_thresholds:
        return {k: best[k] for k in ("precision", "recall", "hmean")}
    return {**best, **per_threshold}


def validate(
    model: nn.Module,
    config: TrainConfig,
    device: torch.device,
    synth_set: list[Sample] | None = None,
) -> dict[str, float]:
    """Score ``model`` (ic15) on the fixed synthetic set and each ICDAR folder of ``config.val``.

    Returns flat metrics ``{"synth/hmean": ..., "icdar2015_dev/precision": ..., ...}`` and
    ``"hmean"``: the synthetic F when that set exists, else the first folder's F.
    """
    val = config.val
    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    try:
        samples = synth_set if synth_set is not None else _validation_synth_set(config)
        if samples:
            for key, value in _score(model, samples, val.max_side, val, device).items():
                metrics[f"synth/{key}"] = value
        for folder in val.icdar:
            dataset = IcdarFolderDataset(folder)
            real = [dataset[i] for i in range(len(dataset))]
            name = Path(folder).name
            for key, value in _score(model, real, val.icdar_max_side, val, device).items():
                metrics[f"{name}/{key}"] = value
    finally:
        model.train(was_training)
    if "synth/hmean" in metrics:
        metrics["hmean"] = metrics["synth/hmean"]
    elif val.icdar:
        metrics["hmean"] = metrics[f"{Path(val.icdar[0]).name}/hmean"]
    return metrics


# --------------------------------------------------------------------------- logging


class MetricsLog:
    """Append-only metrics: JSONL rows, a long-format CSV (step, kind, name, value) and
    TensorBoard scalars when ``torch.utils.tensorboard`` can be imported."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.jsonl = out_dir / "metrics.jsonl"
        self.csv = out_dir / "metrics.csv"
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tb"))
        except ImportError:
            self.writer = None

    def write(self, kind: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"kind": kind, "step": step, "time": time.time(), **values}
        with self.jsonl.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        new_file = not self.csv.exists()
        with self.csv.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(["step", "kind", "name", "value"])
            for name, value in values.items():
                writer.writerow([step, kind, name, value])
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------- the loop


def _all_finite(value: torch.Tensor, dist_ctx: DistContext) -> bool:
    """True when the loss is finite on every rank (all ranks then skip or step together)."""
    flag = torch.tensor([1.0 if bool(torch.isfinite(value).all()) else 0.0])
    if dist_ctx.enabled:
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0.5)


def _broadcast_buffers(modules: list[nn.Module], dist_ctx: DistContext) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics).

    DDP broadcasts them before each forward, but the last forward leaves each rank with its
    own running statistics; syncing before saving or evaluating makes all ranks identical.
    """
    if not dist_ctx.enabled:
        return
    for module in modules:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def _batches(loader: torch.utils.data.DataLoader[Any]) -> Iterator[Batch]:
    yield from loader


class StopSignals:
    """Between ``install`` and ``restore``, the first SIGTERM or SIGINT only asks the training
    loop to stop: it ends after the current step and a checkpoint, like ``stop_at_step``. The
    previous handlers are then put back, so a second signal acts as usual (SIGINT raises
    KeyboardInterrupt). Handlers can only be set from the main thread; elsewhere this does
    nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signal.Signals(signum).name
        self.restore()

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def _any_rank(flag: bool, dist_ctx: DistContext, device: torch.device) -> bool:
    """True when ``flag`` is set on some rank (one tiny all-reduce under torchrun)."""
    if not dist_ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def _seed_int(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def fit(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.steps`` optimiser steps, writing the run to ``out_dir``.

    resume: continue from ``out_dir/last.pt``; ``config`` must match the saved run in model,
    seed, batch size, accumulation and data (steps, schedule, validation may change).
    stop_at_step: end early at that step after writing a checkpoint (as if the run were
    killed after that checkpoint). Under torchrun the process group is joined here (gloo on
    CPU, nccl on GPU) and only rank 0 writes files. Raises NonFiniteLossError
    after ``max_nonfinite`` consecutive non-finite losses.
    """
    run_dir = Path(out_dir)
    dist_ctx = init_distributed(config.device)
    try:
        with torch.random.fork_rng(devices=[]):
            return _fit(config, run_dir, resume, stop_at_step, progress, dist_ctx)
    finally:
        if dist_ctx.initialised_here:
            dist.destroy_process_group()


def _check_resumable(config: TrainConfig, checkpoint: dict[str, Any], where: Path) -> None:
    saved = config_from_dict(TrainConfig, checkpoint["config"])
    # The stream is the same for any number of loader workers, so that may change.
    saved.data = replace(saved.data, workers=config.data.workers)
    for part in ("model", "seed", "batch_size", "accum_steps", "data"):
        if getattr(saved, part) != getattr(config, part):
            raise ValueError(
                f"{where}: cannot resume with a different {part!r} config "
                f"(saved: {getattr(saved, part)!r})"
            )


def _fit(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    stop_at_step: int | None,
    progress: bool,
    dist_ctx: DistContext,
) -> TrainResult:
    checkpoint: dict[str, Any] | None = None
    if resume:
        checkpoint = load_checkpoint(run_dir / "last.pt")
        _check_resumable(config, checkpoint, run_dir / "last.pt")
    # Open the data sources first: a bad path fails here, before any run folder is made.
    stream = build_stream(config)
    if dist_ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    trainer = Trainer(config, run_dir, dist_ctx)
    if checkpoint is not None:
        trainer.restore(checkpoint)
    else:
        # Each rank's dropout stream differs; the rank offset keeps them apart but reproducible.
        torch.manual_seed(_seed_int(config.seed, _INIT_TAG, 1 + dist_ctx.rank))
    final = min(config.steps, stop_at_step if stop_at_step is not None else config.steps)
    return trainer.run(final, progress, stream)


def _init_weights(path: Path, config: TrainConfig) -> dict[str, torch.Tensor]:
    """State dict of the model file ``path``, checked against the run's architecture."""
    from synthloc.model import load_model

    if not path.is_file():
        raise FileNotFoundError(f"{path}: init model file not found")
    source = load_model(path)
    source_config = getattr(source, "config", None)
    if source_config != config.model:
        raise ValueError(
            f"{path}: its model config {source_config} differs from the run's {config.model}"
        )
    return source.state_dict()


class Trainer:
    """One training run's state (model, optimiser, schedule, EMA, counters) and its loop.

    Build it inside ``torch.random.fork_rng`` (the model is initialised from the run seed);
    :func:`fit` is the entry point.
    """

    def __init__(self, config: TrainConfig, run_dir: Path, dist_ctx: DistContext) -> None:
        from synthloc.model import FCRNLoss, build_model

        self.config = config
        self.run_dir = run_dir
        self.dist = dist_ctx
        self.device = resolve_device(config.device, dist_ctx)
        torch.manual_seed(_seed_int(config.seed, _INIT_TAG))
        self.model = build_model(config.model)
        if config.init:
            self.model.load_state_dict(_init_weights(Path(config.init), config))
        elif config.backbone_init:
            from synthloc.model.efficientnet import load_imagenet_weights

            if config.backbone_init != "imagenet" or config.model.arch != "fcrn-dense":
                raise ValueError(
                    f"backbone_init {config.backbone_init!r}: only 'imagenet' for an fcrn-dense "
                    f"model is supported (model.arch is {config.model.arch!r})"
                )
            load_imagenet_weights(self.model.backbone)  # type: ignore[arg-type]
        self.model.to(self.device)
        self.memory_format = (
            torch.channels_last if config.channels_last else torch.contiguous_format
        )
        self.model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.loss_fn = FCRNLoss(config.loss)
        self.optimizer = build_optimizer(self.model, config.optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            partial(lr_factor, schedule=config.schedule, total_steps=config.steps),
        )
        self.use_amp = bool(config.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = ModelEMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.loss_generator = torch.Generator(device="cpu")
        self.loss_generator.manual_seed(_seed_int(config.seed, _LOSS_TAG))
        self.accum = max(1, config.accum_steps)
        self.step = 0
        self.best_hmean: float | None = None
        self.nonfinite_total = 0
        self.consecutive_bad = 0
        self.data_failures = 0
        self.train_model: nn.Module = self.model
        self.synth_val: list[Sample] = []
        self.log = MetricsLog(run_dir, dist_ctx.is_main)

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (a checkpoint)."""
        return {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "neg_weight": self.loss_fn.neg_weight(self.step),
            "rng": {"torch": torch.get_rng_state(), "loss": self.loss_generator.get_state()},
            "data_position": {
                "batches_per_rank": self.step * self.accum,
                "world_size": self.dist.world_size,
            },
            "best_hmean": self.best_hmean,
            "nonfinite_total": self.nonfinite_total,
            "data_failures": self.data_failures,
            "config": config_to_dict(self.config),
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        if self.ema is not None and checkpoint.get("ema") is not None:
            self.ema.load_state_dict(checkpoint["ema"])
        self.loss_generator.set_state(checkpoint["rng"]["loss"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.step = int(checkpoint["step"])
        self.best_hmean = checkpoint.get("best_hmean")
        self.nonfinite_total = int(checkpoint.get("nonfinite_total", 0))
        self.data_failures = int(checkpoint.get("data_failures", 0))

    def eval_model(self) -> nn.Module:
        """The weights to evaluate and export: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def sync_buffers(self) -> None:
        modules = [self.model] + ([] if self.ema is None else [self.ema.module])
        _broadcast_buffers(modules, self.dist)

    def save_checkpoint(self) -> None:
        self.sync_buffers()
        if self.dist.is_main:
            save_checkpoint(self.run_dir / "last.pt", self.state_dict())

    # -- one optimiser step -----------------------------------------------------------------

    def train_step(self, batches: Iterator[Batch]) -> dict[str, float] | None:
        """``accum_steps`` micro-batches, then one update; None when the update was skipped
        because the loss was not finite on some rank (the model is then left unchanged)."""
        from synthloc.model import preprocess

        model, device = self.model, self.device
        self.optimizer.zero_grad(set_to_none=True)
        # A non-finite forward also corrupts BatchNorm running statistics; keep a copy
        # (a few KB) so a skipped step leaves the model exactly as it was.
        buffers = [b.detach().clone() for b in model.buffers()]
        terms_sum: dict[str, float] = {}
        finite = True
        for micro in range(self.accum):
            batch = next(batches)
            self.data_failures += batch.failures
            images = preprocess(batch.images, self.memory_format).to(device, non_blocking=True)
            target = batch.target.to(device, non_blocking=True)
            positive = batch.positive.to(device, non_blocking=True)
            ignore = batch.ignore.to(device, non_blocking=True)
            # Gradients are all-reduced only on the last micro-batch of an update.
            sync = (
                self.train_model.no_sync()  # type: ignore[operator]
                if self.dist.enabled and micro < self.accum - 1
                else contextlib.nullcontext()
            )
            with sync:
                with torch.autocast(device_type=device.type, enabled=self.use_amp):
                    pred = self.train_model(images)
                terms = self.loss_fn(
                    pred.float(), target, positive, ignore, self.step, self.loss_generator
                )
                total = terms["total"]
                assert isinstance(total, torch.Tensor)
                finite = finite and bool(torch.isfinite(total.detach()).all())
                self.scaler.scale(total / self.accum).backward()
            for name, value in terms.items():
                number = float(value.detach() if isinstance(value, torch.Tensor) else value)
                terms_sum[name] = terms_sum.get(name, 0.0) + number / self.accum
        if _all_finite(torch.tensor(0.0 if finite else float("nan")), self.dist):
            self.scaler.unscale_(self.optimizer)
            if self.config.optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), self.config.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(model)
            self.consecutive_bad = 0
            return terms_sum
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for live, saved_buffer in zip(model.buffers(), buffers):
                live.copy_(saved_buffer)
        self.nonfinite_total += 1
        self.consecutive_bad += 1
        _log.warning("step %d: non-finite loss, update skipped", self.step)
        if self.consecutive_bad >= self.config.max_nonfinite:
            raise NonFiniteLossError(
                f"training stopped at step {self.step}: the loss was NaN/inf for "
                f"{self.consecutive_bad} steps in a row (max_nonfinite="
                f"{self.config.max_nonfinite}); lower optim.lr or enable optim.grad_clip, "
                f"then --resume from the last checkpoint"
            )
        return None

    # -- validation -------------------------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Rank 0 scores the eval model, logs, and keeps best.pt / best_model.pt."""
        from synthloc.model import save_model

        self.sync_buffers()
        metrics: dict[str, float] = {}
        if self.dist.is_main:
            metrics = validate(self.eval_model(), self.config, self.device, self.synth_val)
            self.log.write("val", self.step, metrics)
            score = metrics.get("hmean")
            if score is not None and (self.best_hmean is None or score > self.best_hmean):
                self.best_hmean = score
                save_checkpoint(self.run_dir / "best.pt", self.state_dict())
                extra = {"step": self.step, **metrics}
                save_model(self.run_dir / "best_model.pt", self.eval_model(), extra)
        if self.dist.enabled:
            dist.barrier()
        return metrics

    # -- the loop ---------------------------------------------------------------------------

    def run(self, final: int, progress: bool, stream: InfiniteSource) -> TrainResult:
        """Train from ``self.step`` to ``final`` on ``stream`` (:func:`build_stream`);
        validate, log and checkpoint on schedule. SIGTERM or SIGINT ends the run early after
        the current step and a checkpoint (:class:`StopSignals`)."""
        from tqdm import tqdm

        from synthloc.model import save_model

        config, dist_ctx = self.config, self.dist
        if dist_ctx.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids
            )
        self.model.train()
        loader = build_loader(
            config,
            stream,
            dist_ctx,
            start_batch=self.step * self.accum,
            pin=self.device.type == "cuda",
            num_batches=max(0, final - self.step) * self.accum,
        )
        batches = _batches(loader)
        self.synth_val = _validation_synth_set(config) if dist_ctx.is_main else []
        images_per_step = config.batch_size * self.accum * dist_ctx.world_size
        bar = tqdm(
            total=config.steps,
            initial=self.step,
            disable=not (progress and dist_ctx.is_main),
            dynamic_ncols=True,
            unit="step",
        )
        window: dict[str, float] = {}
        window_steps = 0
        window_start = time.perf_counter()
        last_val: dict[str, float] = {}
        stopped_by: str | None = None
        signals = StopSignals()
        try:
            signals.install()
            while self.step < final:
                terms = self.train_step(batches)
                if terms is not None:
                    for name, value in terms.items():
                        window[name] = window.get(name, 0.0) + value
                    window_steps += 1
                self.scheduler.step()
                self.step += 1
                bar.update(1)
                step = self.step

                if step % max(1, config.log_every) == 0 or step == final:
                    elapsed = max(1e-9, time.perf_counter() - window_start)
                    rate = images_per_step * max(1, window_steps) / elapsed
                    averaged = {k: v / max(1, window_steps) for k, v in window.items()}
                    row = {
                        **averaged,
                        "lr": float(self.optimizer.param_groups[0]["lr"]),
                        "images_per_s": rate,
                        "nonfinite_steps": float(self.nonfinite_total),
                        "data_failures": float(self.data_failures),
                    }
                    self.log.write("train", step, row)
                    bar.set_postfix(
                        loss=f"{averaged.get('total', float('nan')):.3f}",
                        pose=f"{averaged.get('pose', float('nan')):.3f}",
                        cpos=f"{averaged.get('conf_pos', float('nan')):.3f}",
                        cneg=f"{averaged.get('conf_neg', float('nan')):.3f}",
                        img_s=f"{rate:.1f}",
                    )
                    window, window_steps, window_start = {}, 0, time.perf_counter()

                if step == config.steps or (config.val.every > 0 and step % config.val.every == 0):
                    last_val = self.validate()
                # A stop request ends the run like stop_at_step: after a checkpoint.
                stop = _any_rank(signals.received is not None, dist_ctx, self.device)
                if step % max(1, config.checkpoint_every) == 0 or step == final or stop:
                    self.save_checkpoint()
                if stop:
                    stopped_by = signals.received or "a signal to another rank"
                    break
        finally:
            signals.restore()
            bar.close()
            self.log.close()

        model_path = None
        if dist_ctx.is_main and self.step == config.steps:
            model_path = self.run_dir / "model.pt"
            save_model(model_path, self.eval_model(), {"step": self.step, **last_val})
        return TrainResult(
            step=self.step,
            out_dir=self.run_dir,
            best_hmean=self.best_hmean,
            last_validation=last_val,
            nonfinite_steps=self.nonfinite_total,
            data_failures=self.data_failures,
            model_path=model_path,
            model=self.eval_model(),
            stopped_by=stopped_by,
        )
