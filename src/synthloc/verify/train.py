"""Verifier training on the run-folder machinery of :mod:`synthloc.train`.

:class:`VerifierTrainer` supplies the step (text/non-text cross-entropy plus a smooth-L1
corner regression on positives), the validation (held-out samples of the same data) and the
model file; :class:`synthloc.train.base.TrainerBase` does the rest: optimiser, schedule, EMA,
checkpoints (last.pt, best.pt), resume, SIGTERM/SIGINT, metrics.jsonl/csv. The run folder has
the detector's layout (config.yaml, last.pt, best.pt, best_model.pt, model.pt, metrics.*);
the model files are verifier files (:mod:`synthloc.verify.io`).

Batches: step ``k`` draws ``batch_size`` training samples (with replacement) and its
augmentation from ``default_rng(SeedSequence([seed, BATCH_TAG, k]))``, so a resumed run sees
exactly the batches it would have seen. One process only (no torchrun).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from synthloc.atomic import write_text_atomic
from synthloc.model import preprocess
from synthloc.train.base import LoopSettings, TrainerBase, TrainResult
from synthloc.train.checkpoint import load_checkpoint
from synthloc.train.distributed import DistContext, resolve_device
from synthloc.train.run_folder import RunFolder
from synthloc.train.seeds import INIT_TAG, seed_int
from synthloc.train_config import (
    OptimConfig,
    ScheduleConfig,
    _merge,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)
from synthloc.verify.crops import CROP_SIZE
from synthloc.verify.data import KINDS, VerifierData, load_data
from synthloc.verify.model import CROP_HEIGHT, Verifier, VerifierConfig

BATCH_TAG, SPLIT_TAG = 21, 22
T = TypeVar("T")


@dataclass
class VerifierTrainConfig:
    """A verifier training run.

    data: folders made by ``synthloc verifier-data``; kinds: train only on samples of these
    kinds (see :data:`synthloc.verify.data.KINDS`; [] = all), e.g. to leave out ``real``.
    val_fraction: share of the samples held out (a fixed split from ``seed``) for validation,
    which reports text precision/recall/F at probability 0.5 (``hmean`` selects best.pt) and
    the mean corner error in crop pixels before and after refinement.
    box_weight: weight of the corner regression against the classification loss.
    augment: photometric jitter (contrast, brightness, polarity inversion, noise).
    """

    data: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    model: VerifierConfig = field(default_factory=VerifierConfig)
    steps: int = 20_000
    batch_size: int = 128
    seed: int = 0
    val_fraction: float = 0.05
    box_weight: float = 1.0
    augment: bool = True
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4)
    )
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(warmup_steps=200))
    ema_decay: float = 0.999
    log_every: int = 50
    checkpoint_every: int = 1000
    val_every: int = 1000
    max_nonfinite: int = 20
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown sample kinds {unknown}; known: {list(KINDS)}")


def load_dataclass_config(
    cls: type[T], path: str | os.PathLike[str] | None, overrides: list[str] | None = None
) -> T:
    """Defaults of ``cls``, then the YAML file (a partial tree), then ``key.path=value``
    overrides (YAML values); ValueError naming the file or key on a bad value."""
    values = config_to_dict(cls())
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: cannot read config: {error}") from error
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a mapping")
        _merge(values, loaded, str(path))
    apply_overrides(values, list(overrides or []))
    return config_from_dict(cls, values)


# -- data -------------------------------------------------------------------------------------


def split(data: VerifierData, fraction: float, seed: int) -> tuple[VerifierData, VerifierData]:
    """A fixed (seeded) split into training and validation samples."""
    order = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_TAG])).permutation(len(data))
    held = round(fraction * len(data))
    return data.subset(np.sort(order[held:])), data.subset(np.sort(order[:held]))


class ArrayBatches:
    """Batches ``(crops float [B, 3, 32, 128], label [B], offsets [B, 8])`` of in-memory data,
    step ``k`` a function of ``(seed, k)`` only (see the module docstring)."""

    def __init__(self, data: VerifierData, batch_size: int, seed: int, start: int, augment: bool):
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.position = start
        self.augment = augment

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, BATCH_TAG, self.position]))
        self.position += 1
        index = rng.integers(0, len(self.data), self.batch_size)
        crops = preprocess(self.data.crops[index])
        if self.augment:
            crops = photometric_jitter(crops, rng)
        return (
            crops,
            torch.from_numpy(self.data.label[index].astype(np.float32)),
            torch.from_numpy(self.data.offsets[index]),
        )

    def close(self) -> None:
        """Nothing runs in the background."""


def photometric_jitter(crops: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Per-crop contrast and brightness change, polarity inversion (half), Gaussian noise;
    the black padding outside the content stays black."""
    n = crops.shape[0]
    content = (crops.sum(dim=1, keepdim=True) > 0).float()
    contrast = torch.from_numpy(rng.uniform(0.6, 1.4, (n, 1, 1, 1)).astype(np.float32))
    brightness = torch.from_numpy(rng.uniform(-0.15, 0.15, (n, 1, 1, 1)).astype(np.float32))
    invert = torch.from_numpy((rng.random((n, 1, 1, 1)) < 0.5).astype(np.float32))
    noise = torch.from_numpy(rng.normal(0.0, 0.02, crops.shape).astype(np.float32))
    mean = crops.mean(dim=(1, 2, 3), keepdim=True)
    out = (crops - mean) * contrast + mean + brightness
    out = invert * (1.0 - out) + (1.0 - invert) * out
    return ((out + noise).clamp(0.0, 1.0)) * content


def verifier_loss(
    pred: torch.Tensor, label: torch.Tensor, offsets: torch.Tensor, box_weight: float
) -> dict[str, torch.Tensor]:
    """Named loss terms: ``cls`` (binary cross-entropy of the text logit), ``box`` (smooth L1
    of the corner offsets of positives, in units of the crop height; beta = 1 crop pixel) and
    ``total``."""
    cls = F.binary_cross_entropy_with_logits(pred[:, 0], label)
    positive = label > 0.5
    if bool(positive.any()):
        to_height = torch.from_numpy(np.tile(CROP_SIZE / CROP_HEIGHT, 4).astype(np.float32))
        error = (pred[positive, 1:] - offsets[positive]) * to_height.to(pred.device)
        box = F.smooth_l1_loss(error, torch.zeros_like(error), beta=1.0 / CROP_HEIGHT)
    else:
        box = pred.sum() * 0.0
    return {"total": cls + box_weight * box, "cls": cls, "box": box}


# -- the trainer ------------------------------------------------------------------------------


class VerifierTrainer(TrainerBase):
    """A verifier run: its step, validation and model file on :class:`TrainerBase`."""

    def __init__(
        self, config: VerifierTrainConfig, run_dir: Path, train: VerifierData, val: VerifierData
    ) -> None:
        self.config = config
        self.train_data = train
        self.val_data = val
        dist_ctx = DistContext()
        device = resolve_device(config.device, dist_ctx)
        torch.manual_seed(seed_int(config.seed, INIT_TAG))
        model = Verifier(config.model).to(device)
        loop = LoopSettings(
            steps=config.steps,
            accum_steps=1,
            images_per_update=config.batch_size,
            log_every=config.log_every,
            checkpoint_every=config.checkpoint_every,
            val_every=config.val_every,
            max_nonfinite=config.max_nonfinite,
            grad_clip=config.optim.grad_clip,
            ema_decay=config.ema_decay,
            amp=False,
        )
        super().__init__(model, run_dir, dist_ctx, device, loop, config.optim, config.schedule)

    def config_dict(self) -> dict[str, Any]:
        return config_to_dict(self.config)

    def progress_postfix(self, averaged: dict[str, float]) -> dict[str, str]:
        return {k: f"{averaged.get(k, float('nan')):.3f}" for k in ("total", "cls", "box")}

    def train_step(self, batches: Any) -> dict[str, float] | None:
        crops, label, offsets = next(batches)
        self.optimizer.zero_grad(set_to_none=True)
        buffers = [b.detach().clone() for b in self.model.buffers()]
        pred = self.model(crops.to(self.device))
        terms = verifier_loss(
            pred, label.to(self.device), offsets.to(self.device), self.config.box_weight
        )
        total = terms["total"]
        finite = bool(torch.isfinite(total.detach()))
        total.backward()
        return self.apply_update(finite, {k: float(v.detach()) for k, v in terms.items()}, buffers)

    def evaluate(self) -> dict[str, float]:
        return evaluate(self.eval_model(), self.val_data, self.device)

    def save_model_file(self, path: Path, extra: dict[str, Any]) -> None:
        from synthloc.verify.io import save_verifier

        save_verifier(path, self.eval_model(), {**extra, "kinds": list(self.config.kinds)})

    def run(self, final: int, progress: bool) -> TrainResult:
        batches = ArrayBatches(
            self.train_data,
            self.config.batch_size,
            self.config.seed,
            self.step,
            self.config.augment,
        )
        return self.loop_over(final, progress, batches)


def predict(
    model: torch.nn.Module, crops: np.ndarray, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Raw verifier outputs ``[N, 9]`` of uint8 crops ``[N, 32, 128, 3]`` (eval mode)."""
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.inference_mode():
            for start in range(0, len(crops), 256):
                x = preprocess(crops[start : start + 256]).to(device)
                outputs.append(model(x).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0, 9), np.float32)


def evaluate(
    model: torch.nn.Module, data: VerifierData, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Text precision, recall and F (``hmean``) at probability 0.5, and the mean corner error
    of positives in crop pixels before (``corner_px_before``) and after refinement."""
    if len(data) == 0:
        return {}
    pred = predict(model, data.crops, device)
    is_text = pred[:, 0] > 0.0
    truth = data.label == 1
    hits = float(np.sum(is_text & truth))
    precision = hits / max(1.0, float(is_text.sum()))
    recall = hits / max(1.0, float(truth.sum()))
    hmean = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    metrics = {"precision": precision, "recall": recall, "hmean": hmean}
    if truth.any():
        scale = np.tile(CROP_SIZE, 4)
        before = np.abs(data.offsets[truth]) * scale
        after = np.abs(data.offsets[truth] - pred[truth, 1:]) * scale
        metrics["corner_px_before"] = float(before.mean())
        metrics["corner_px_after"] = float(after.mean())
    return metrics


# -- the entry point --------------------------------------------------------------------------

_RESUME_PARTS = ("data", "kinds", "model", "seed", "batch_size", "val_fraction", "augment")


def check_context(config: VerifierTrainConfig) -> None:
    """ValueError naming the folder when its crops were cut with another context margin than
    the model's (the detector cuts them with the model's)."""
    from synthloc.verify.data import DATA_CONFIG, config_from_json

    for name in config.data:
        saved = Path(name) / DATA_CONFIG
        if not saved.is_file():
            continue  # load_data names the folder
        context = config_from_json(saved.read_text(encoding="utf-8")).context
        if context != config.model.context:
            raise ValueError(
                f"{name}: crops cut with context {context}, but model.context is "
                f"{config.model.context}; set model.context={context} or remake the data"
            )


def fit_verifier(
    config: VerifierTrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train a verifier into ``out_dir`` (same habits as :func:`synthloc.train.fit`: a folder
    holding a run is refused unless ``resume`` or ``overwrite``; resume needs the same data,
    model, seed and batch size; ``stop_at_step`` ends after a checkpoint at that step)."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    if not config.data:
        raise ValueError("no verifier data folders given (data: [...] or --data)")
    run_dir = Path(out_dir)
    folder = RunFolder(run_dir)
    checkpoint: dict[str, Any] | None = None
    if resume:
        checkpoint = load_checkpoint(folder.last)
        saved = config_from_dict(VerifierTrainConfig, checkpoint["config"])
        for part in _RESUME_PARTS:
            if getattr(saved, part) != getattr(config, part):
                raise ValueError(
                    f"{folder.last}: cannot resume with a different {part!r} "
                    f"(saved: {getattr(saved, part)!r})"
                )
    else:
        folder.check_new_run(overwrite)
    check_context(config)
    data = load_data(config.data, config.kinds or None)  # fails before the folder is made
    train, val = split(data, config.val_fraction, config.seed)
    if len(train) == 0:
        raise ValueError(f"{', '.join(config.data)}: no training samples left after the split")
    if overwrite:
        folder.clear()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder.config, yaml.safe_dump(config_to_dict(config), sort_keys=False))
    with torch.random.fork_rng(devices=[]):
        trainer = VerifierTrainer(config, run_dir, train, val)
        if checkpoint is not None:
            trainer.restore(checkpoint)
        final = min(config.steps, stop_at_step if stop_at_step is not None else config.steps)
        return trainer.run(final, progress)
