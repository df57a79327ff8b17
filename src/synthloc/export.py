"""Export a detector to ONNX and check the exported graph against PyTorch.

The exported graph:

* input ``image``: float32 ``[N, C, H, W]``, already preprocessed, i.e. the output of
  ``synthloc.model.preprocess`` (RGB scaled to ``[0, 1]``; ``C`` = 3, or 1 for a grayscale
  model fed luma). Batch, height and width are dynamic; any height and width work: the graph
  zero-pads the right and bottom to a multiple of the stride itself (the same padding the
  PyTorch model applies), so non-multiples give the PyTorch result.
* output ``pred``: float32 ``[N, 7, ceil(H / stride), ceil(W / stride)]``, the raw prediction
  map (channels x, y, w, h, cos, sin, c; ``c`` is a logit for ``confidence="logit"`` models).
  Decoding, thresholds and NMS stay in Python (``synthloc.detect``).
* BatchNorm folded into the convolutions; the model's config, stride and confidence mode are
  stored as metadata (``synthloc.*`` keys) so ``Detector.load("model.onnx")`` needs nothing else.

The legacy TorchScript-based exporter is used (``dynamo=False``): it needs no extra packages
and traces the padding arithmetic on the input shape, which keeps height and width dynamic.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthloc import __version__
from synthloc.atomic import atomic_path
from synthloc.model import fold_batchnorm, preprocess
from synthloc.model.io import TRAINED_BOX_PAD_KEY

DEFAULT_OPSET = 17
# Opsets the export supports: the zero padding to a stride multiple has input-dependent
# sizes, which ONNX Pad takes as an input only from opset 11; the legacy (TorchScript)
# exporter stops at 20.
MIN_OPSET = 11
MAX_OPSET = 20
DEFAULT_PARITY_SIZES: tuple[tuple[int, int], ...] = ((512, 512), (384, 640), (736, 1280))
INPUT_NAME = "image"
OUTPUT_NAME = "pred"


class OnnxParityError(AssertionError):
    """The ONNX graph's output differs from PyTorch's by more than the tolerance."""


class _PadToStride(nn.Module):
    """Zero-pads ``[N, C, H, W]`` right/bottom to a multiple of ``stride``, then runs ``model``.

    The pad amounts are computed from the traced input shape, so they stay dynamic in the
    exported graph whatever the model does internally (its own padding then pads by zero).
    """

    def __init__(self, model: nn.Module, stride: int) -> None:
        super().__init__()
        self.model = model
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = (-x.shape[2]) % self.stride
        pad_w = (-x.shape[3]) % self.stride
        return self.model(F.pad(x, (0, pad_w, 0, pad_h)))


def _metadata(
    model: nn.Module,
    detect_defaults: dict[str, Any] | None,
    detect_multiscale: dict[str, Any] | None,
) -> dict[str, str]:
    config = getattr(model, "config", None)
    is_instance = dataclasses.is_dataclass(config) and not isinstance(config, type)
    config_dict = dataclasses.asdict(config) if is_instance else {}  # type: ignore[arg-type]
    meta = {
        "synthloc.version": __version__,
        "synthloc.stride": str(int(model.stride)),  # type: ignore[arg-type]
        "synthloc.confidence": str(getattr(config, "confidence", "linear")),
        "synthloc.arch": str(getattr(config, "arch", "")),
        "synthloc.config": json.dumps(config_dict, sort_keys=True),
        "synthloc.input": "float32 [N, C, H, W], RGB in [0, 1] (synthloc.model.preprocess)",
        "synthloc.output": (
            "float32 [N, 7, ceil(H/32)*32/stride, ceil(W/32)*32/stride]: "
            "left top right bottom cos sin c (log side distances, dense_targets.py)"
            if getattr(config, "arch", "") == "fcrn-dense"
            else "float32 [N, 7, ceil(H/stride), ceil(W/stride)]: x y w h cos sin c"
        ),
        "synthloc.detect": json.dumps(detect_defaults or {}, sort_keys=True),
    }
    if detect_multiscale is not None:
        meta["synthloc.detect_multiscale"] = json.dumps(detect_multiscale, sort_keys=True)
    return meta


def _finish(path: Path, meta: dict[str, str]) -> None:
    """Add synthloc's metadata and producer to the ONNX file at ``path``, check it, save it."""
    import onnx

    proto = onnx.load(path)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "synthloc"
    proto.producer_version = __version__
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    *,
    trace_size: tuple[int, int] = (320, 352),
    detect_defaults: dict[str, Any] | None = None,
    detect_multiscale: dict[str, Any] | None = None,
    trained_box_pad: float = 0.0,
) -> Path:
    """Write ``model`` (``.stride``/``.config`` attributes) as ONNX to ``path``; returns it.

    BatchNorm is folded into a copy (the model itself is untouched); the file is written
    atomically. See the module docstring for the graph's input and output contract.
    ``trace_size`` is the example input used for tracing; its value does not matter because
    every size is dynamic (a non-multiple of 32 by default, to exercise the padding).
    ``detect_defaults`` (``scales``, ``threshold``, ``nms_iou``, ``min_size``; JSON values) are
    stored as the ``synthloc.detect`` metadata that ``Detector.load`` uses when not told
    otherwise; ``detect_multiscale`` (same keys) as ``synthloc.detect_multiscale``, the
    ``preset="multiscale"`` setting. ``trained_box_pad`` (the padding of the model's training
    boxes, ``extra["target_box_pad"]`` of its file) is stored as ``synthloc.target_box_pad``.
    """

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"ONNX opset {opset} is not supported; use {MIN_OPSET} to {MAX_OPSET}")
    out = Path(path)
    stride = int(model.stride)  # type: ignore[arg-type]
    net = _PadToStride(fold_batchnorm(model).cpu().float().eval(), stride).eval()
    example = torch.rand(1, 3, *trace_size, generator=torch.Generator().manual_seed(0))
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():
            # The legacy exporter announces its deprecation and warns about shape arithmetic
            # it does trace correctly; the parity check is what guards the result.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (example,),
                tmp,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                    OUTPUT_NAME: {0: "batch", 2: "cells_y", 3: "cells_x"},
                },
                opset_version=opset,
                do_constant_folding=True,
            )
        meta = _metadata(model, detect_defaults, detect_multiscale)
        meta[f"synthloc.{TRAINED_BOX_PAD_KEY}"] = json.dumps(float(trained_box_pad))
        _finish(tmp, meta)
    return out


def _output_difference(
    session: Any, input_name: str, reference: nn.Module, images: np.ndarray, where: str, atol: float
) -> float:
    """Max absolute difference of the ONNX session's and ``reference``'s outputs on uint8
    ``images`` [N, H, W, 3]; :class:`OnnxParityError` (prefixed ``where``) on a shape mismatch
    or a difference above ``atol`` (NaN included)."""
    x = preprocess(images)
    with torch.inference_mode():
        expected = reference(x).numpy()
    got = np.asarray(session.run(None, {input_name: x.numpy()})[0])
    if got.shape != expected.shape:
        raise OnnxParityError(f"{where} ONNX output shape {got.shape} != PyTorch {expected.shape}")
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if not diff <= atol:  # also catches NaN
        raise OnnxParityError(
            f"{where} ONNX differs from PyTorch by {diff:.3g} (tolerance {atol:g})"
        )
    return diff


def check_onnx_parity(
    model: nn.Module,
    path: str | os.PathLike[str],
    sizes: Sequence[tuple[int, int]] = DEFAULT_PARITY_SIZES,
    atol: float = 1e-4,
    *,
    batch: int = 1,
    seed: int = 0,
    num_threads: int | None = None,
) -> float:
    """Max absolute difference between ONNX (onnxruntime, CPU) and PyTorch outputs.

    For each ``(height, width)`` in ``sizes``, random RGB uint8 images (``seed``) go through
    ``preprocess`` and then through both the eval-mode PyTorch ``model`` (not folded: the check
    covers folding too) and the ONNX file. Raises :class:`OnnxParityError` naming the size
    when shapes differ or the difference exceeds ``atol``; returns the largest difference.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    reference = model.cpu().float()
    was_training = reference.training
    reference.eval()
    rng = np.random.default_rng(seed)
    worst = 0.0
    try:
        for height, width in sizes:
            images = rng.integers(0, 256, size=(batch, height, width, 3), dtype=np.uint8)
            where = f"{path}: at input {height}x{width}"
            diff = _output_difference(session, INPUT_NAME, reference, images, where, atol)
            worst = max(worst, diff)
    finally:
        reference.train(was_training)
    return worst


# -- the verifier (second stage) ---------------------------------------------------------------

VERIFIER_INPUT_NAME = "crops"
VERIFIER_PARITY_BATCHES: tuple[int, ...] = (1, 7, 64)


def export_verifier_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    *,
    verify_defaults: dict[str, Any] | None = None,
) -> Path:
    """Write a :class:`synthloc.verify.Verifier` as ONNX to ``path`` (atomically); returns it.

    Input ``crops``: float32 ``[N, 3, 32, 128]`` (``preprocess`` of rectified crops), batch
    dynamic; output ``pred``: float32 ``[N, 9]`` (text logit, 8 corner offsets). BatchNorm is
    folded into a copy. Metadata: ``synthloc.kind = "verifier"``, its config (with the context
    margin the crops need) and ``verify_defaults`` (``threshold``, ``first_stage_threshold``)
    as ``synthloc.verify``.
    """

    from synthloc.verify.model import CROP_HEIGHT, CROP_WIDTH

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"ONNX opset {opset} is not supported; use {MIN_OPSET} to {MAX_OPSET}")
    out = Path(path)
    config = getattr(model, "config", None)
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError("export_verifier_onnx needs a synthloc.verify.Verifier")
    net = fold_batchnorm(model).cpu().float().eval()
    example = torch.rand(2, 3, CROP_HEIGHT, CROP_WIDTH, generator=torch.Generator().manual_seed(0))
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (example,),
                tmp,
                dynamo=False,
                input_names=[VERIFIER_INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={VERIFIER_INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
            )
        meta = {
            "synthloc.version": __version__,
            "synthloc.kind": "verifier",
            "synthloc.config": json.dumps(dataclasses.asdict(config), sort_keys=True),
            "synthloc.input": f"float32 [N, 3, {CROP_HEIGHT}, {CROP_WIDTH}], RGB in [0, 1]",
            "synthloc.output": "float32 [N, 9]: text logit, corner offsets / crop size",
            "synthloc.verify": json.dumps(verify_defaults or {}, sort_keys=True),
        }
        _finish(tmp, meta)
    return out


def check_verifier_parity(
    model: nn.Module,
    path: str | os.PathLike[str],
    batches: Sequence[int] = VERIFIER_PARITY_BATCHES,
    atol: float = 1e-4,
    *,
    seed: int = 0,
) -> float:
    """Max absolute difference between the ONNX verifier (onnxruntime, CPU) and the eval-mode
    PyTorch ``model`` on random crops, for each batch size in ``batches``. Raises
    :class:`OnnxParityError` naming the batch size on a shape mismatch or a difference above
    ``atol``; returns the largest difference."""
    import onnxruntime as ort

    from synthloc.verify.model import CROP_HEIGHT, CROP_WIDTH

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = model.cpu().float()
    was_training = reference.training
    reference.eval()
    rng = np.random.default_rng(seed)
    worst = 0.0
    try:
        for batch in batches:
            crops = rng.integers(0, 256, size=(batch, CROP_HEIGHT, CROP_WIDTH, 3), dtype=np.uint8)
            where = f"{path}: at batch {batch}"
            diff = _output_difference(session, VERIFIER_INPUT_NAME, reference, crops, where, atol)
            worst = max(worst, diff)
    finally:
        reference.train(was_training)
    return worst
