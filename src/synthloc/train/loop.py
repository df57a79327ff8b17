"""FCRN training: :class:`Trainer` (the FCRN step on top of :class:`TrainerBase`) and
:func:`fit`, the entry point that checks every input, prepares the run folder and trains."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from synthloc.data.datasets import IcdarFolderDataset, InfiniteSource, OnTheFlySynthesis
from synthloc.data.sample import Sample
from synthloc.train.base import LoopSettings, TrainerBase, TrainResult
from synthloc.train.checkpoint import check_resumable, init_weights, load_checkpoint
from synthloc.train.data import LoaderBatches, build_loader, build_stream
from synthloc.train.distributed import DistContext, init_distributed, resolve_device
from synthloc.train.run_folder import RunFolder
from synthloc.train.seeds import INIT_TAG, LOSS_TAG, seed_int
from synthloc.train.validation import validate, validation_synth_set
from synthloc.train_config import TrainConfig, config_to_dict, save_config


def loop_settings(config: TrainConfig) -> LoopSettings:
    return LoopSettings(
        steps=config.steps,
        accum_steps=config.accum_steps,
        images_per_update=config.batch_size * max(1, config.accum_steps),
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        val_every=config.val.every,
        max_nonfinite=config.max_nonfinite,
        grad_clip=config.optim.grad_clip,
        ema_decay=config.ema_decay,
        amp=config.amp,
        swa_start=config.swa_start,
        swa_every=config.swa_every,
    )


class Trainer(TrainerBase):
    """An FCRN run: the model and loss of ``config``, its step, validation and model file.

    Build it inside ``torch.random.fork_rng`` (the model is initialised from the run seed);
    :func:`fit` is the entry point.
    """

    def __init__(self, config: TrainConfig, run_dir: Path, dist_ctx: DistContext) -> None:
        from synthloc.model import FCRNLoss, build_model

        self.config = config
        device = resolve_device(config.device, dist_ctx)
        torch.manual_seed(seed_int(config.seed, INIT_TAG))
        model = build_model(config.model)
        if config.init:
            model.load_state_dict(init_weights(Path(config.init), config))
        elif config.backbone_init:
            from synthloc.model.efficientnet import load_imagenet_weights

            load_imagenet_weights(model.backbone)  # type: ignore[arg-type]
        model.to(device)
        self.memory_format = (
            torch.channels_last if config.channels_last else torch.contiguous_format
        )
        model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        super().__init__(
            model, run_dir, dist_ctx, device, loop_settings(config), config.optim, config.schedule
        )
        self.loss_fn = FCRNLoss(config.loss)
        self.loss_generator = torch.Generator(device="cpu")
        self.loss_generator.manual_seed(seed_int(config.seed, LOSS_TAG))
        self.synth_val: list[Sample] = []

    def config_dict(self) -> dict[str, Any]:
        return config_to_dict(self.config)

    def extra_state(self) -> dict[str, Any]:
        return {
            "neg_weight": self.loss_fn.neg_weight(self.step),
            "rng": {"torch": torch.get_rng_state(), "loss": self.loss_generator.get_state()},
        }

    def restore_extra(self, checkpoint: dict[str, Any]) -> None:
        self.loss_generator.set_state(checkpoint["rng"]["loss"])

    def progress_postfix(self, averaged: dict[str, float]) -> dict[str, str]:
        shown = {"loss": "total", "pose": "pose", "cpos": "conf_pos", "cneg": "conf_neg"}
        return {key: f"{averaged.get(term, float('nan')):.3f}" for key, term in shown.items()}

    def evaluate(self) -> dict[str, float]:
        return validate(self.eval_model(), self.config, self.device, self.synth_val)

    def save_model_file(self, path: Path, extra: dict[str, Any]) -> None:
        from synthloc.model import save_model
        from synthloc.model.io import TRAINED_BOX_PAD_KEY

        # The box convention the weights learned, for Detector.engine_box_pad.
        extra = {**extra, TRAINED_BOX_PAD_KEY: self.config.data.box_pad}
        save_model(path, self.eval_model(), extra)

    def train_step(self, batches: Any) -> dict[str, float] | None:
        """``accum_steps`` micro-batches, then one update; None when the update was skipped
        because the loss was not finite on some rank (the model is then left unchanged)."""
        from synthloc.model import preprocess

        device = self.device
        self.optimizer.zero_grad(set_to_none=True)
        # A non-finite forward also corrupts BatchNorm running statistics; keep a copy
        # (a few KB) so a skipped step leaves the model exactly as it was.
        buffers = [b.detach().clone() for b in self.model.buffers()]
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
        return self.apply_update(finite, terms_sum, buffers)

    def run(self, final: int, progress: bool, stream: InfiniteSource) -> TrainResult:
        """Train from ``self.step`` to ``final`` on ``stream`` (:func:`build_stream`)."""
        loader = build_loader(
            self.config,
            stream,
            self.dist,
            start_batch=self.step * self.accum,
            pin=self.device.type == "cuda",
            num_batches=max(0, final - self.step) * self.accum,
        )
        self.synth_val = validation_synth_set(self.config) if self.dist.is_main else []
        return self.loop_over(final, progress, LoaderBatches(loader))


def check_inputs(config: TrainConfig) -> InfiniteSource:
    """Open every input a run will read, so a bad one fails before the run folder is made or
    any step is trained: the training sources (returned as the stream), the synthesis corpus,
    the validation folders and backgrounds, and the init model file. Raises
    FileNotFoundError or ValueError naming the path."""
    if config.steps < 1:
        raise ValueError(f"steps must be at least 1 (got {config.steps}): nothing to train")
    corpus = config.data.synth.corpus
    if corpus and not Path(corpus).exists():
        raise FileNotFoundError(f"{corpus}: text corpus (data.synth.corpus) not found")
    stream = build_stream(config)
    for folder in config.val.icdar:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: validation folder (--val-icdar) not found")
        IcdarFolderDataset(folder)
    if config.val.synth_count > 0 and config.val.synth_backgrounds:
        OnTheFlySynthesis(config.val.synth_backgrounds, config.data.synth, config.val.synth_seed)
    if config.init:
        init_weights(Path(config.init), config)
    elif config.backbone_init:
        from synthloc.model.efficientnet import imagenet_weights_path

        if config.backbone_init != "imagenet" or config.model.arch != "fcrn-dense":
            raise ValueError(
                f"backbone_init {config.backbone_init!r}: only 'imagenet' for an fcrn-dense "
                f"model is supported (model.arch is {config.model.arch!r})"
            )
        imagenet_weights_path()  # the optional package is installed
    return stream


def fit(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train ``config.steps`` optimiser steps, writing the run to ``out_dir``.

    resume: continue from ``out_dir/last.pt``; ``config`` must match the saved run in model,
    seed, batch size, accumulation and data (steps, schedule, validation may change).
    Without it, a folder that already holds a run is refused (RunExistsError) unless
    ``overwrite`` is set, which deletes the old run's files once every input has been checked.
    stop_at_step: end early at that step after writing a checkpoint (as if the run were
    killed after that checkpoint). Under torchrun the process group is joined here (gloo on
    CPU, nccl on GPU) and only rank 0 writes files. Raises NonFiniteLossError
    after ``max_nonfinite`` consecutive non-finite losses, CheckpointWriteError when a
    checkpoint cannot be written (the previous one is left intact).
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    run_dir = Path(out_dir)
    dist_ctx = init_distributed(config.device)
    try:
        with torch.random.fork_rng(devices=[]):
            return _fit(config, run_dir, resume, stop_at_step, progress, overwrite, dist_ctx)
    finally:
        if dist_ctx.initialised_here:
            dist.destroy_process_group()


def _fit(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    stop_at_step: int | None,
    progress: bool,
    overwrite: bool,
    dist_ctx: DistContext,
) -> TrainResult:
    folder = RunFolder(run_dir)
    checkpoint: dict[str, Any] | None = None
    if resume:
        checkpoint = load_checkpoint(folder.last)
        check_resumable(config, checkpoint, folder.last)
    else:
        folder.check_new_run(overwrite)
    # Every input is opened first: a bad path fails here, before any run folder is made.
    stream = check_inputs(config)
    if dist_ctx.is_main:
        if overwrite:
            folder.clear()
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, folder.config)
    trainer = Trainer(config, run_dir, dist_ctx)
    if checkpoint is not None:
        trainer.restore(checkpoint)
    else:
        # Each rank's dropout stream differs; the rank offset keeps them apart but reproducible.
        torch.manual_seed(seed_int(config.seed, INIT_TAG, 1 + dist_ctx.rank))
    final = min(config.steps, stop_at_step if stop_at_step is not None else config.steps)
    return trainer.run(final, progress, stream)
