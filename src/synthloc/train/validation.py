"""Validation: detect on a fixed synthetic set and on ICDAR folders, score with the ic15
protocol (optionally at several thresholds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthloc.data.datasets import IcdarFolderDataset, OnTheFlySynthesis
from synthloc.data.sample import Sample
from synthloc.data.transforms import resize_to_fit
from synthloc.geometry import unpad_fraction
from synthloc.train.distributed import unwrap
from synthloc.train_config import TrainConfig, ValConfig


def validation_synth_set(config: TrainConfig) -> list[Sample]:
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
    box_pad: float = 0.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Single-scale detection for validation, with :class:`synthloc.detect.Detector` (on a
    BatchNorm-folded copy, so ``model`` itself is left as it is): long side ``max_side``,
    decode, the ``min_size`` filter, rotated NMS, quads mapped back, grown by ``box_pad``.
    images: uint8 [H, W, 3] RGB each. Returns per image quads float32 [K, 4, 2] in the
    image's own pixels and scores float32 [K]."""
    from synthloc.detect import Detector

    detector = Detector.from_model(
        unwrap(model),
        scales=[float(max_side)],
        threshold=score_threshold,
        nms_iou=nms_iou,
        min_size=min_size,
        box_pad=box_pad,
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
    box_pad: float = 0.0,
) -> dict[str, float]:
    """ic15 scores of ``model`` on ``samples`` at ``val``'s settings, its boxes grown by
    ``box_pad``. With
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
        box_pad,
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
    ``"hmean"``: the synthetic F when that set exists, else the first folder's F. A model
    trained on padded boxes (``data.box_pad``) is scored on the synthetic set with its boxes
    shrunk back to the engine's convention, and on ICDAR folders as it predicts them.
    """
    val = config.val
    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    try:
        samples = synth_set if synth_set is not None else validation_synth_set(config)
        if samples:
            unpad = unpad_fraction(config.data.box_pad)
            for key, value in _score(model, samples, val.max_side, val, device, unpad).items():
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
