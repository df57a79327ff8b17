"""The second stage of detection: the verifier, run on the first stage's candidates.

:class:`VerifierStage` takes one image and its candidates (after the first stage's decode and
NMS), rectifies every candidate to a 32 x 128 crop (:mod:`synthloc.verify.crops`), runs the
verifier on them in batches and returns the survivors:

* a candidate whose text probability ``p`` is below ``threshold`` is dropped;
* its quad is replaced by the verifier's refined quad;
* its score becomes ``sqrt(s * p)``, the geometric mean of the first stage's score ``s`` and
  ``p`` (both in ``[0, 1]``): a word needs both stages' support to rank high, and neither
  stage's scale dominates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthloc.detect.backends import _Backend, _OnnxBackend, _pick_device, _TorchBackend
from synthloc.detect.images import network_input
from synthloc.detect.shipped import DEFAULT_MODEL, NoDefaultModelError, shipped_files
from synthloc.model import fold_batchnorm
from synthloc.verify.crops import apply_offsets, rectify

DEFAULT_VERIFY_THRESHOLD = 0.5
DEFAULT_VERIFY_BATCH = 64


def default_verifier_path() -> Path | None:
    """The default model's verifier shipped inside the package, or None when it has none."""
    try:
        return shipped_files(DEFAULT_MODEL)[1]
    except NoDefaultModelError:
        return None


class VerifierStage:
    """Filters and refines one image's candidates; see the module docstring.

    backend: runs float ``[N, 3, 32, 128]`` crops (``network_input``) -> ``[N, 9]``.
    context: the verifier's context margin (its ``VerifierConfig.context``).
    threshold: minimum text probability, in ``[0, 1]``. batch_size: crops per forward pass.
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        context: float,
        threshold: float = DEFAULT_VERIFY_THRESHOLD,
        batch_size: int = DEFAULT_VERIFY_BATCH,
        name: str = "",
    ) -> None:
        if not 0.0 <= threshold <= 1.0:  # also refuses NaN
            raise ValueError(f"verifier threshold must be in [0, 1], got {threshold}")
        if batch_size < 1:
            raise ValueError(f"verifier batch_size must be at least 1, got {batch_size}")
        self.backend = backend
        self.context = float(context)
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.name = name
        # The file the stage was loaded from (set by load_verifier_stage); None when built
        # from a model in memory.
        self.source: Path | None = None

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        threshold: float = DEFAULT_VERIFY_THRESHOLD,
        device: str | torch.device | None = None,
        num_threads: int | None = None,
        name: str = "",
    ) -> VerifierStage:
        """A stage around an in-memory :class:`synthloc.verify.Verifier` (BatchNorm folded
        into a copy; the model itself is not modified)."""
        config = getattr(model, "config", None)
        context = float(getattr(config, "context", 0.25))
        backend = _TorchBackend(fold_batchnorm(model).eval(), _pick_device(device), num_threads)
        return cls(backend, context=context, threshold=threshold, name=name)

    def predict(self, image: np.ndarray, quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Text probabilities ``[K]`` and refined quads ``[K, 4, 2]`` (image pixels) of
        ``quads`` ``[K, 4, 2]``; degenerate quads get probability 0 and stay as they were."""
        quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
        if len(quads) == 0:
            return np.zeros(0), quads
        crops, geometry = rectify(image, quads, self.context)
        preds = [
            np.asarray(self.backend(network_input(crops[start : start + self.batch_size])))
            for start in range(0, len(crops), self.batch_size)
        ]
        pred = np.concatenate(preds).astype(np.float64)  # [K, 9]
        probability = 1.0 / (1.0 + np.exp(-np.clip(pred[:, 0], -50.0, 50.0)))
        refined = apply_offsets(geometry, pred[:, 1:])
        usable = geometry.valid & np.isfinite(refined).all(axis=(1, 2))
        probability = np.where(usable, probability, 0.0)
        refined = np.where(usable[:, None, None], refined, quads)
        return probability, refined

    def __call__(
        self, image: np.ndarray, quads: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One image (RGB uint8 ``[H, W, 3]``) and its candidates (quads ``[K, 4, 2]`` in its
        pixels, first-stage scores ``[K]`` in ``[0, 1]``) -> the kept candidates' refined
        quads ``[M, 4, 2]`` and combined scores ``[M]`` (``sqrt(score * p)``), in input order."""
        probability, refined = self.predict(image, quads)
        first = np.clip(np.asarray(scores, dtype=np.float64).reshape(-1), 0.0, 1.0)
        keep = probability >= self.threshold
        if self.threshold == 0.0:
            keep &= probability > 0.0  # degenerate candidates never pass
        return refined[keep], np.sqrt(first[keep] * probability[keep])


def load_verifier_stage(
    path: str | os.PathLike[str],
    *,
    backend: str = "torch",
    threshold: float | None = None,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
) -> tuple[VerifierStage, dict[str, Any]]:
    """A stage from a verifier file (``.pt`` from ``synthloc train-verifier`` or ``.onnx``
    from ``synthloc export --verifier``) and the file's recommended settings (its
    ``extra["verify"]``: ``threshold``, ``first_stage_threshold``).

    threshold: None = the file's recommendation, else 0.5. ``backend="onnxruntime"`` with a
    ``.pt`` file runs its ONNX copy (exported once, then cached: ``onnx_cache``).
    """
    from synthloc.verify.io import load_verifier_with_extra

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: verifier file not found")
    if source.suffix.lower() == ".onnx":
        session = _OnnxBackend(source, num_threads)
        meta = session.metadata
        if meta.get("synthloc.kind") != "verifier":
            raise ValueError(
                f"{source}: not a verifier ONNX file; export it with `synthloc export --verifier`"
            )
        hints = json.loads(meta.get("synthloc.verify", "{}") or "{}")
        context = float(json.loads(meta["synthloc.config"]).get("context", 0.25))
        stage = VerifierStage(
            session,
            context=context,
            threshold=_threshold(threshold, hints),
            name=source.name,
        )
        stage.source = source
        return stage, hints
    model, extra = load_verifier_with_extra(source)
    hints = extra.get("verify") if isinstance(extra.get("verify"), dict) else {}
    assert isinstance(hints, dict)
    if backend == "torch":
        stage = VerifierStage.from_model(
            model,
            threshold=_threshold(threshold, hints),
            device=device,
            num_threads=num_threads,
            name=source.name,
        )
        stage.source = source
        return stage, hints
    from synthloc.detect.onnx_cache import onnx_copy
    from synthloc.export import DEFAULT_OPSET, export_verifier_onnx

    def export(target: Path) -> Path:
        return export_verifier_onnx(model, target)

    with onnx_copy(source, "verifier", DEFAULT_OPSET, export) as onnx_path:
        session = _OnnxBackend(onnx_path, num_threads)
    stage = VerifierStage(
        session,
        context=model.config.context,
        threshold=_threshold(threshold, hints),
        name=source.name,
    )
    stage.source = source
    return stage, hints


def _threshold(requested: float | None, hints: dict[str, Any]) -> float:
    if requested is not None:
        return float(requested)
    return float(hints.get("threshold", DEFAULT_VERIFY_THRESHOLD))
