"""The model-independent part of a training run: optimiser, schedule, AMP scaler, EMA, step
counters, the checkpoint / validation / metrics schedule and stop signals.

A model's trainer subclasses :class:`TrainerBase` and supplies its step (``train_step``,
which ends with :meth:`TrainerBase.apply_update`), its validation (``evaluate``), its model
file (``save_model_file``) and whatever else its checkpoints must carry (``extra_state`` /
``restore_extra``).
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from synthloc.train.checkpoint import CHECKPOINT_VERSION, CheckpointWriteError, save_checkpoint
from synthloc.train.distributed import (
    DistContext,
    all_finite,
    any_rank,
    broadcast_buffers,
)
from synthloc.train.ema import ModelEMA, WeightAverage
from synthloc.train.metrics import MetricsLog
from synthloc.train.run_folder import RunFolder
from synthloc.train.schedule import build_optimizer, lr_factor
from synthloc.train.signals import StopSignals
from synthloc.train_config import OptimConfig, ScheduleConfig

_log = logging.getLogger("synthloc.train")


class BatchStream(Protocol):
    """What the loop hands to ``train_step``: an iterator of a model's batches that ``close``
    stops (a DataLoader's workers, :class:`synthloc.train.data.LoaderBatches`, or in-memory
    batches)."""

    def close(self) -> None: ...


class NonFiniteLossError(RuntimeError):
    """Raised after ``max_nonfinite`` consecutive steps with a NaN/inf loss."""


@dataclass(frozen=True)
class LoopSettings:
    """How a run steps, logs, validates and checkpoints (taken from the model's run config).

    images_per_update: images one rank sees per optimiser update (batch size x accumulation).
    """

    steps: int
    accum_steps: int
    images_per_update: int
    log_every: int
    checkpoint_every: int
    val_every: int
    max_nonfinite: int
    grad_clip: float
    ema_decay: float
    amp: bool
    swa_start: int = 0
    swa_every: int = 100


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


class TrainerBase(abc.ABC):
    """One run's generic state and loop; see the module docstring for what a subclass adds.

    ``model`` is already on ``device`` (and in its memory format). ``best_hmean`` is the best
    validation ``"hmean"`` so far: the score that selects best.pt.
    """

    def __init__(
        self,
        model: nn.Module,
        run_dir: Path,
        dist_ctx: DistContext,
        device: torch.device,
        loop: LoopSettings,
        optim: OptimConfig,
        schedule: ScheduleConfig,
    ) -> None:
        self.model = model
        self.run_dir = run_dir
        self.folder = RunFolder(run_dir)
        self.dist = dist_ctx
        self.device = device
        self.loop = loop
        self.optimizer = build_optimizer(model, optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(lr_factor, schedule=schedule, total_steps=loop.steps)
        )
        self.use_amp = bool(loop.amp and device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = ModelEMA(model, loop.ema_decay) if loop.ema_decay > 0 else None
        self.swa = WeightAverage(model) if loop.swa_start > 0 else None
        self.accum = max(1, loop.accum_steps)
        self.step = 0
        self.best_hmean: float | None = None
        self.nonfinite_total = 0
        self.consecutive_bad = 0
        self.data_failures = 0
        self.train_model: nn.Module = model
        self.log = MetricsLog(run_dir, dist_ctx.is_main)

    # -- what a model's trainer supplies ----------------------------------------------------

    @abc.abstractmethod
    def train_step(self, batches: Any) -> dict[str, float] | None:
        """One optimiser update from ``batches``; the loss terms, or None when skipped."""
        ...

    @abc.abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Validation metrics of :meth:`eval_model` (rank 0 only); ``"hmean"`` selects best.pt."""
        ...

    @abc.abstractmethod
    def save_model_file(self, path: Path, extra: dict[str, Any]) -> None:
        """Write :meth:`eval_model` as a model file with ``extra`` metadata."""
        ...

    @abc.abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """The run's config as a plain dict (stored in each checkpoint)."""
        ...

    def extra_state(self) -> dict[str, Any]:
        """Model-specific checkpoint entries (merged into :meth:`state_dict`)."""
        return {}

    def restore_extra(self, checkpoint: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`extra_state` saved (nothing by default)."""

    def progress_postfix(self, averaged: dict[str, float]) -> dict[str, str]:
        """Loss terms shown on the progress bar."""
        return {"loss": f"{averaged.get('total', float('nan')):.3f}"}

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
            "swa": None if self.swa is None else self.swa.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "data_position": {
                "batches_per_rank": self.step * self.accum,
                "world_size": self.dist.world_size,
            },
            "best_hmean": self.best_hmean,
            "nonfinite_total": self.nonfinite_total,
            "data_failures": self.data_failures,
            "config": self.config_dict(),
            **self.extra_state(),
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        if self.ema is not None and checkpoint.get("ema") is not None:
            self.ema.load_state_dict(checkpoint["ema"])
        if self.swa is not None and checkpoint.get("swa") is not None:
            self.swa.load_state_dict(checkpoint["swa"])
        self.restore_extra(checkpoint)
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.step = int(checkpoint["step"])
        self.best_hmean = checkpoint.get("best_hmean")
        self.nonfinite_total = int(checkpoint.get("nonfinite_total", 0))
        self.data_failures = int(checkpoint.get("data_failures", 0))

    def averaged_model(self) -> nn.Module:
        """The weights stochastic weight averaging samples: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def eval_model(self) -> nn.Module:
        """The weights to evaluate and export: the weight average once it holds a snapshot,
        else the EMA copy when EMA is on, else the raw weights."""
        if self.swa is not None and self.swa.count > 0:
            return self.swa.module
        return self.averaged_model()

    def sync_buffers(self) -> None:
        modules = [self.model] + ([] if self.ema is None else [self.ema.module])
        broadcast_buffers(modules, self.dist)

    def swa_due(self, step: int) -> bool:
        """Whether the weight average takes a snapshot after ``step``: every ``swa_every``
        steps from ``swa_start`` on, and the last step. An early stop (``stop_at_step``, a
        signal) is not a sample point, so a run in segments averages what a straight one
        does."""
        loop = self.loop
        if self.swa is None or step < loop.swa_start:
            return False
        return step % loop.swa_every == 0 or step == loop.steps

    def save_checkpoint(self) -> None:
        self.sync_buffers()
        if self.dist.is_main:
            save_checkpoint(self.folder.last, self.state_dict())

    def _write_model_file(self, path: Path, extra: dict[str, Any]) -> None:
        try:
            self.save_model_file(path, extra)
        except (OSError, RuntimeError) as error:  # torch.save reports a failed write as either
            raise CheckpointWriteError(f"{path}: cannot write the model file ({error})") from error

    # -- one optimiser update ---------------------------------------------------------------

    def apply_update(
        self, finite: bool, terms: dict[str, float], saved_buffers: list[torch.Tensor]
    ) -> dict[str, float] | None:
        """Finish an update whose gradients are accumulated: step (clip, scaler, EMA) when the
        loss was finite on every rank and return ``terms``; otherwise restore the model's
        buffers from ``saved_buffers``, count the skip and return None (NonFiniteLossError
        after ``max_nonfinite`` skips in a row)."""
        if all_finite(torch.tensor(0.0 if finite else float("nan")), self.dist):
            self.scaler.unscale_(self.optimizer)
            if self.loop.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.loop.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model)
            self.consecutive_bad = 0
            return terms
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for live, saved_buffer in zip(self.model.buffers(), saved_buffers):
                live.copy_(saved_buffer)
        self.nonfinite_total += 1
        self.consecutive_bad += 1
        _log.warning("step %d: non-finite loss, update skipped", self.step)
        if self.consecutive_bad >= self.loop.max_nonfinite:
            raise NonFiniteLossError(
                f"training stopped at step {self.step}: the loss was NaN/inf for "
                f"{self.consecutive_bad} steps in a row (max_nonfinite="
                f"{self.loop.max_nonfinite}); lower optim.lr or enable optim.grad_clip, "
                f"then --resume from the last checkpoint"
            )
        return None

    # -- validation -------------------------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Rank 0 scores the eval model, logs, and keeps best.pt / best_model.pt."""
        self.sync_buffers()
        metrics: dict[str, float] = {}
        if self.dist.is_main:
            metrics = self.evaluate()
            self.log.write("val", self.step, metrics)
            score = metrics.get("hmean")
            if score is not None and (self.best_hmean is None or score > self.best_hmean):
                self.best_hmean = score
                save_checkpoint(self.folder.best, self.state_dict())
                self._write_model_file(self.folder.best_model, {"step": self.step, **metrics})
        if self.dist.enabled:
            dist.barrier()
        return metrics

    # -- the loop ---------------------------------------------------------------------------

    def loop_over(self, final: int, progress: bool, batches: BatchStream) -> TrainResult:
        """Train from ``self.step`` to ``final`` on ``batches``; validate, log and checkpoint
        on schedule. SIGTERM or SIGINT ends the run early after the current step and a
        checkpoint (:class:`StopSignals`). The loader's workers are shut down however the
        loop ends."""
        from tqdm import tqdm

        loop, dist_ctx = self.loop, self.dist
        if dist_ctx.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids
            )
        self.model.train()
        images_per_step = loop.images_per_update * dist_ctx.world_size
        bar = tqdm(
            total=loop.steps,
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

                if step % max(1, loop.log_every) == 0 or step == final:
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
                    bar.set_postfix({**self.progress_postfix(averaged), "img_s": f"{rate:.1f}"})
                    window, window_steps, window_start = {}, 0, time.perf_counter()

                if self.swa is not None and self.swa_due(step):
                    self.sync_buffers()
                    self.swa.add(self.averaged_model())
                if step == loop.steps or (loop.val_every > 0 and step % loop.val_every == 0):
                    last_val = self.validate()
                # A stop request ends the run like stop_at_step: after a checkpoint.
                stop = any_rank(signals.received is not None, dist_ctx, self.device)
                if step % max(1, loop.checkpoint_every) == 0 or step == final or stop:
                    self.save_checkpoint()
                if stop:
                    stopped_by = signals.received or "a signal to another rank"
                    break
        finally:
            batches.close()
            signals.restore()
            bar.close()
            self.log.close()

        model_path = None
        if dist_ctx.is_main and self.step == loop.steps:
            model_path = self.folder.final_model
            self._write_model_file(model_path, {"step": self.step, **last_val})
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
