"""The :class:`Detector`: resize per scale -> network -> decode -> map back -> rotated NMS,
then, when a verifier is present, the second stage (:mod:`synthloc.detect.verifier`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthloc.detect.backends import _Backend, _OnnxBackend, _pick_device, _TorchBackend
from synthloc.detect.images import (
    ImageInput,
    ImageReadError,
    _as_image,
    _resize,
    list_images,
    load_image,
    network_input,
    resized_size,
    validate_scales,
)
from synthloc.detect.onnx_cache import onnx_copy
from synthloc.detect.shipped import resolve_model
from synthloc.detect.verifier import VerifierStage, load_verifier_stage
from synthloc.geometry import pad_quads, quad_to_rbox, unpad_fraction
from synthloc.model import (
    decode_dense_predictions,
    decode_predictions,
    fold_batchnorm,
    load_model_with_extra,
)
from synthloc.model.io import TRAINED_BOX_PAD_KEY
from synthloc.nms import rotated_nms

DEFAULT_SCALES: tuple[float, ...] = (1024.0,)
DEFAULT_THRESHOLD = 0.5
DEFAULT_NMS_IOU = 0.3
DEFAULT_MIN_SIZE = 0.0
DEFAULT_BOX_PAD = 0.0
DEFAULT_BATCH_SIZE = 4
# Detection settings a model file can recommend: preset name -> its key in the model file's
# ``extra`` (and, prefixed with ``synthloc.``, in ONNX metadata).
PRESETS = {"default": "detect", "multiscale": "detect_multiscale"}
BACKENDS = ("auto", "torch", "onnxruntime")


@dataclass
class Detection:
    """One detected word.

    quad: float32 ``[4, 2]``, original-image pixel coordinates, clockwise from top-left.
    score: the model's confidence for the word, in ``[0, 1]``: the predicted confidence of
        the grid cell holding the word's centre (a sigmoid for logit models; for linear
        models, trained to regress 1 in such cells and 0 elsewhere, the raw value clipped
        to ``[0, 1]``, since a regression can overshoot slightly, e.g. 1.004).  With a
        verifier: ``sqrt(first-stage score * text probability)`` (see
        :mod:`synthloc.detect.verifier`).  Higher means surer; it is a ranking score, not a
        calibrated probability.
    """

    quad: np.ndarray
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: ``{"quad": [[x, y] * 4], "score": s}``."""
        return {
            "quad": [[round(float(x), 2), round(float(y), 2)] for x, y in self.quad],
            "score": round(float(self.score), 6),
        }


@dataclass
class ImageResult:
    """The outcome of detecting one image file of a batch job.

    ``error`` is None on success; otherwise it names the file and the problem, and ``image``
    is None.  ``image`` is the decoded RGB image (kept for drawing), ``[H, W, 3]`` uint8.
    """

    path: Path
    detections: list[Detection] = field(default_factory=list)
    image: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Detector:
    """A trained FCRN ready to find words in images.

    Build it with :meth:`Detector.load` (a model file, ONNX file or the shipped default) or
    :meth:`Detector.from_model` (an in-memory ``nn.Module``).  Calling it on an RGB ``uint8
    [H, W, 3]`` array or an image path returns ``list[Detection]`` sorted by descending score.

    scales: see the module docstring; threshold: minimum confidence of a cell (after a sigmoid
    for logit models); nms_iou: detections overlapping a better one by more than this IoU
    are dropped; min_size: detections whose short side is below this many pixels *of the
    resized image the network saw* are dropped before NMS (the network cannot resolve words
    that small, so they are mostly texture; measured per scale, so with several scales a
    small word is still found at the scale that enlarges it); box_pad: every final quad
    grows by this fraction of its height on each side (:func:`synthloc.geometry.pad_quads`;
    negative values, down to -0.25, shrink it) to match a benchmark's box convention: the
    engine's ground truth hugs the glyphs, while ICDAR 2015's annotators drew boxes about 1.2
    times as tall as fcrn-dense's (``benchmarks/box_convention.py`` measures a model's gap; 0 =
    the boxes as trained); batch_size: images per forward pass (images of
    one resized size only); verifier: the second stage, run on each image's candidates after
    NMS (None = first stage only); trained_box_pad: the padding of the first stage's training
    boxes (``data.box_pad`` of its run, stored in its model file; 0 = the engine's tight
    boxes). The verifier learned the engine's boxes, so its refined quads grow by it too: both
    stages then give boxes in the first stage's convention, and :attr:`engine_box_pad` undoes
    it to score against the engine's own ground truth.
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        stride: int,
        confidence: str = "linear",
        scales: Sequence[float] = DEFAULT_SCALES,
        threshold: float = DEFAULT_THRESHOLD,
        nms_iou: float = DEFAULT_NMS_IOU,
        min_size: float = DEFAULT_MIN_SIZE,
        box_pad: float = DEFAULT_BOX_PAD,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str = "",
        dense: bool = False,
        verifier: VerifierStage | None = None,
        trained_box_pad: float = 0.0,
    ) -> None:
        if stride <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if not min_size >= 0.0:
            raise ValueError(f"min_size must be >= 0, got {min_size}")
        if not -0.25 <= box_pad <= 1.0:  # also refuses NaN
            raise ValueError(f"box_pad must be in [-0.25, 1], got {box_pad}")
        if not 0.0 <= threshold <= 1.0:  # also refuses NaN
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if not 0.0 <= trained_box_pad <= 1.0:  # also refuses NaN
            raise ValueError(f"trained_box_pad must be in [0, 1], got {trained_box_pad}")
        self.backend = backend
        self.stride = int(stride)
        self.confidence = confidence
        self.scales = validate_scales(scales)
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self.min_size = float(min_size)
        self.box_pad = float(box_pad)
        self.batch_size = int(batch_size)
        self.name = name
        self.dense = bool(dense)
        self.verifier = verifier
        self.trained_box_pad = float(trained_box_pad)
        # The model file the detector was loaded from (set by load); None when built from a
        # model in memory.
        self.source: Path | None = None

    @property
    def engine_box_pad(self) -> float:
        """The ``box_pad`` that gives boxes in the engine's convention (its ground truth hugs
        the glyphs), for scoring on the engine's images: the padding that undoes
        ``trained_box_pad`` (0 for a model trained on the engine's boxes)."""
        return unpad_fraction(self.trained_box_pad)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        scales: Sequence[float] | None = None,
        threshold: float | None = None,
        nms_iou: float | None = None,
        min_size: float | None = None,
        box_pad: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | torch.device | None = None,
        num_threads: int | None = None,
        fold_bn: bool = True,
        name: str = "",
        verifier: VerifierStage | None = None,
        trained_box_pad: float = 0.0,
    ) -> Detector:
        """A detector around an in-memory model (``.stride`` and ``.config`` attributes).

        With ``fold_bn`` the model is not modified: BatchNorm is folded into a copy, which is
        put in eval mode on ``device`` (default: CUDA when available, else CPU); without it
        the model itself is used (and moved, and put in eval mode).
        """
        torch_device = _pick_device(device)
        net = fold_batchnorm(model) if fold_bn else model
        net = net.eval()
        config = getattr(model, "config", None)
        return cls(
            _TorchBackend(net, torch_device, num_threads),
            stride=int(model.stride),  # type: ignore[arg-type]
            confidence=str(getattr(config, "confidence", "linear")),
            scales=DEFAULT_SCALES if scales is None else scales,
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
            nms_iou=DEFAULT_NMS_IOU if nms_iou is None else nms_iou,
            min_size=DEFAULT_MIN_SIZE if min_size is None else min_size,
            box_pad=DEFAULT_BOX_PAD if box_pad is None else box_pad,
            batch_size=batch_size,
            name=name,
            dense=getattr(config, "arch", "") == "fcrn-dense",
            verifier=verifier,
            trained_box_pad=trained_box_pad,
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        scales: Sequence[float] | None = None,
        threshold: float | None = None,
        nms_iou: float | None = None,
        min_size: float | None = None,
        box_pad: float | None = None,
        backend: str = "auto",
        device: str | torch.device | None = None,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        preset: str = "default",
        verifier: str | os.PathLike[str] | None = None,
        verify: bool = True,
        verify_threshold: float | None = None,
    ) -> Detector:
        """Load a detector from a synthloc model file (``.pt``) or an exported ``.onnx`` file.

        path: a model file, the name of a model shipped with the package
            (:data:`synthloc.detect.shipped.SHIPPED_MODELS`, e.g. "fcrn-lite-paper"), or None
            for the default shipped model (a clear :class:`NoDefaultModelError` if this build
            lacks it). An existing file wins over a name.
        backend: "auto" (default: onnxruntime on a CPU, where it is the faster engine, and
            PyTorch on CUDA), "torch" or "onnxruntime". A ``.onnx`` path always uses
            onnxruntime; a ``.pt`` path run with onnxruntime is exported to ONNX once and the
            copy kept in a cache folder (:mod:`synthloc.detect.onnx_cache`).
        device: torch backend only; None picks CUDA when available, else CPU.
        num_threads: intra-op threads (torch: set for each call and restored afterwards;
            onnxruntime: the session's ``intra_op_num_threads``). None = library default.
        scales, threshold, nms_iou, min_size, box_pad: None = the values of the model file's
            ``preset`` or else the library defaults.
        preset: which setting stored in the model file fills the options not given: "default"
            (``extra["detect"]``, written by ``benchmarks/tune_detect.py``) or "multiscale"
            (``extra["detect_multiscale"]``; a clear error if the file has none).
        verifier: a verifier file (``.pt`` or ``.onnx``) run on the candidates; None = the
            verifier shipped beside a shipped model (when it has one), else none.
            verify: False skips the second stage altogether.
        verify_threshold: minimum text probability; None = the verifier file's
            recommendation, else 0.5. With a verifier, a ``threshold`` not given comes from
            the verifier file's ``first_stage_threshold`` when it has one (the first stage
            then runs lower, for recall, and the verifier restores precision).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        if backend == "auto":
            backend = "torch" if _pick_device(device).type != "cpu" else "onnxruntime"
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        model_path, shipped_verifier = resolve_model(path)
        requested = {
            "scales": scales,
            "threshold": threshold,
            "nms_iou": nms_iou,
            "min_size": min_size,
            "box_pad": box_pad,
        }
        stage: VerifierStage | None = None
        if verify:
            verifier_path = shipped_verifier if verifier is None else Path(verifier)
            if verifier_path is not None:
                onnx = backend == "onnxruntime" or model_path.suffix.lower() == ".onnx"
                stage, hints = load_verifier_stage(
                    verifier_path,
                    backend="onnxruntime" if onnx else "torch",
                    threshold=verify_threshold,
                    device=device,
                    num_threads=num_threads,
                )
                if threshold is None and "first_stage_threshold" in hints:
                    requested["threshold"] = float(hints["first_stage_threshold"])
        detector = cls._build(
            model_path, requested, stage, backend, device, num_threads, batch_size, preset
        )
        detector.source = model_path
        return detector

    @classmethod
    def _build(
        cls,
        model_path: Path,
        requested: dict[str, Any],
        stage: VerifierStage | None,
        backend: str,
        device: str | torch.device | None,
        num_threads: int | None,
        batch_size: int,
        preset: str,
    ) -> Detector:
        """The detector of a resolved model file on ``backend`` ("torch" or "onnxruntime")."""
        if model_path.suffix.lower() == ".onnx":
            onnx_backend = _OnnxBackend(model_path, num_threads)
            return cls._from_onnx(onnx_backend, model_path, requested, batch_size, preset, stage)
        model, extra = load_model_with_extra(model_path)
        stored = _preset_hints(extra.get(PRESETS[preset]), model_path, preset)
        options = _resolve_options(requested, stored)
        trained_pad = stored_trained_box_pad(extra.get(TRAINED_BOX_PAD_KEY), model_path)
        if backend == "torch":
            return cls.from_model(
                model,
                device=device,
                num_threads=num_threads,
                batch_size=batch_size,
                name=model_path.name,
                verifier=stage,
                trained_box_pad=trained_pad,
                **options,
            )
        # onnxruntime on a PyTorch checkpoint: its ONNX copy (exported once, then cached; see
        # onnx_cache). The settings are already resolved from the .pt file's presets.
        from synthloc.export import DEFAULT_OPSET, export_onnx

        def export(target: Path) -> Path:
            return export_onnx(model, target, trained_box_pad=trained_pad)

        with onnx_copy(model_path, "detector", DEFAULT_OPSET, export) as onnx_path:
            onnx_backend = _OnnxBackend(onnx_path, num_threads)
        return cls._from_onnx(
            onnx_backend, model_path, options, batch_size, "default", stage, trained_pad
        )

    @classmethod
    def _from_onnx(
        cls,
        backend: _OnnxBackend,
        path: Path,
        requested: dict[str, Any],
        batch_size: int,
        preset: str,
        verifier: VerifierStage | None,
        trained_box_pad: float | None = None,
    ) -> Detector:
        """``trained_box_pad`` None: the file's ``synthloc.target_box_pad`` metadata (0 if it
        has none); a .pt file's cached ONNX copy passes the .pt file's value."""
        meta = backend.metadata
        if "synthloc.stride" not in meta:
            raise ValueError(
                f"{path}: ONNX file lacks synthloc metadata (stride, confidence); "
                "export it with `synthloc export`"
            )
        raw = meta.get(f"synthloc.{PRESETS[preset]}")
        hints = _preset_hints(json.loads(raw) if raw else None, path, preset)
        if trained_box_pad is None:
            raw_pad = meta.get(f"synthloc.{TRAINED_BOX_PAD_KEY}")
            trained_box_pad = stored_trained_box_pad(json.loads(raw_pad) if raw_pad else None, path)
        return cls(
            backend,
            stride=int(meta["synthloc.stride"]),
            confidence=meta.get("synthloc.confidence", "linear"),
            batch_size=batch_size,
            name=path.name,
            dense=meta.get("synthloc.arch", "") == "fcrn-dense",
            verifier=verifier,
            trained_box_pad=trained_box_pad,
            **_resolve_options(requested, hints),
        )

    # -- inference ------------------------------------------------------------------------

    def __call__(self, image: ImageInput) -> list[Detection]:
        """Detect words in one image (RGB uint8 ``[H, W, 3]`` array or a file path)."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageInput]) -> list[list[Detection]]:
        """Detect words in several images; one list of detections per image, in order.

        Images that share a resized size at a scale go through the network together, up to
        ``batch_size`` at a time; results equal those of one call per image.
        """
        arrays = [_as_image(im) for im in images]
        per_image: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in arrays]
        for scale in self.scales:
            groups: dict[tuple[int, int], list[int]] = {}
            for k, arr in enumerate(arrays):
                groups.setdefault(resized_size(arr.shape[0], arr.shape[1], scale), []).append(k)
            for size_hw, members in groups.items():
                for start in range(0, len(members), self.batch_size):
                    chunk = members[start : start + self.batch_size]
                    for k, found in zip(
                        chunk, self._run_scale([arrays[k] for k in chunk], size_hw)
                    ):
                        per_image[k].append(found)
        return [self._merge(found, image) for found, image in zip(per_image, arrays)]

    def _run_scale(
        self, images: list[np.ndarray], size_hw: tuple[int, int]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Quads (original pixels) and scores of same-size images resized to ``size_hw``."""
        h, w = size_hw
        # [B, 3, h', w']: zero (black) padding to a stride multiple, as the model does itself.
        batch = network_input([_resize(im, size_hw) for im in images], self.stride)
        pred = self.backend(batch)  # [B, 7, Hc, Wc]
        # Exact per-axis factors: rounding the resized size changes the aspect slightly.
        return [
            self._decode(pred_map, (im.shape[1] / w, im.shape[0] / h))
            for im, pred_map in zip(images, pred)
        ]

    def _decode(
        self, pred: np.ndarray, scale_xy: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """One raw map ``[7, Hc, Wc]`` -> quads ``[K, 4, 2]`` (float64, original pixels) and
        scores ``[K]``.

        Cells at or above ``threshold`` are decoded in pixels of the resized image, those with
        a short side under ``min_size`` dropped, and the rest scaled by ``scale_xy`` (original
        over resized size, per axis) into original-image pixels.
        """
        # fcrn-dense maps: every cell of a word predicts it; merge them (dense_targets.py).
        decode = decode_dense_predictions if self.dense else decode_predictions
        quads, scores = decode(pred, self.stride, self.threshold, confidence=self.confidence)
        quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if self.min_size > 0.0 and len(quads):
            sides = quad_to_rbox(quads)[:, 2:4]  # w, h in the resized image
            keep = sides.min(axis=1) >= self.min_size
            quads, scores = quads[keep], scores[keep]
        quads[..., 0] *= scale_xy[0]
        quads[..., 1] *= scale_xy[1]
        return quads, scores

    def _merge(
        self, found: list[tuple[np.ndarray, np.ndarray]], image: np.ndarray
    ) -> list[Detection]:
        """All scales' candidates of one image -> NMS survivors, by descending score; with a
        verifier, the survivors go through it and a second NMS merges candidates that its
        refinement made overlap.

        The survivors then grow by ``box_pad`` (after both NMS passes and the verifier, which
        work on the boxes as trained). Quads are not clipped to the image: a word cut by the
        border keeps its true shape.
        """
        quads = np.concatenate([q for q, _ in found]) if found else np.zeros((0, 4, 2))
        scores = np.concatenate([s for _, s in found]) if found else np.zeros((0,))
        if len(quads) == 0:
            return []
        keep = rotated_nms(quads, scores, self.nms_iou)
        if self.verifier is not None:
            first = np.clip(scores[keep], 0.0, 1.0)
            quads, scores = self.verifier(image, quads[keep], first)
            if len(quads) == 0:
                return []
            if self.trained_box_pad != 0.0:  # refined in the engine's convention: convert
                quads = pad_quads(quads, self.trained_box_pad)
            keep = rotated_nms(quads, scores, self.nms_iou)
        if self.box_pad != 0.0:
            quads = pad_quads(quads, self.box_pad)
        # Scores are reported in [0, 1] (see Detection); NMS ranked them unclipped.
        return [
            Detection(quads[i].astype(np.float32), min(max(float(scores[i]), 0.0), 1.0))
            for i in keep
        ]

    def detect_paths(
        self, paths: Iterable[str | os.PathLike[str]], *, keep_images: bool = False
    ) -> Iterator[ImageResult]:
        """Detect every image file in ``paths``, yielding one :class:`ImageResult` each, in order.

        A missing, unreadable or undecodable file gives a result with ``error`` set (naming the
        file) and the others still run. ``keep_images`` keeps the decoded image in the result.
        """
        pending: list[tuple[Path, np.ndarray]] = []

        def run(batch: list[tuple[Path, np.ndarray]]) -> Iterator[ImageResult]:
            try:
                found = self.detect_batch([im for _, im in batch])
            # Any inference failure (onnxruntime raises its own types, torch RuntimeError,
            # huge images MemoryError) is reported against the image; the job goes on.
            except Exception as exc:
                if len(batch) > 1:  # find which image failed; the others still get results
                    for item in batch:
                        yield from run([item])
                    return
                yield ImageResult(batch[0][0], error=f"{batch[0][0]}: detection failed ({exc})")
                return
            for (p, im), dets in zip(batch, found):
                yield ImageResult(p, dets, im if keep_images else None)

        def flush() -> Iterator[ImageResult]:
            batch = list(pending)
            pending.clear()
            yield from run(batch)

        for raw in paths:
            path = Path(raw)
            try:
                image = load_image(path)
            except ImageReadError as exc:
                yield from flush()
                yield ImageResult(path, error=str(exc))
                continue
            # Anything else while decoding (an OpenCV or memory error on a huge or odd file)
            # is reported against the file too; the job goes on.
            except Exception as exc:
                yield from flush()
                yield ImageResult(path, error=f"{path}: cannot read image ({exc})")
                continue
            pending.append((path, image))
            if len(pending) >= self.batch_size:
                yield from flush()
        yield from flush()

    def detect_folder(
        self, folder: str | os.PathLike[str], *, recursive: bool = False
    ) -> list[ImageResult]:
        """Detect every image in ``folder`` (see :func:`list_images`), in natural name order."""
        return list(self.detect_paths(list_images(folder, recursive=recursive)))


def _preset_hints(stored: object, path: Path, preset: str) -> object:
    """The stored setting for ``preset``; a named preset the file lacks is an error (the
    default preset falls back to the library defaults)."""
    if preset != "default" and not isinstance(stored, dict):
        raise ValueError(
            f"{path}: no stored {preset!r} detection setting ({PRESETS[preset]!r}, written by "
            f"benchmarks/tune_detect.py --key {PRESETS[preset]}); give scales, threshold "
            "and min_size explicitly instead"
        )
    return stored


def stored_trained_box_pad(stored: object, path: Path) -> float:
    """A model file's ``target_box_pad`` (0 when it has none: files from before the option,
    whose runs trained on the engine's own boxes); a value that is not a number in [0, 1] is
    an error naming the file."""
    if stored is None:
        return 0.0
    if isinstance(stored, bool) or not isinstance(stored, (int, float)) or not 0 <= stored <= 1:
        raise ValueError(
            f"{path}: {TRAINED_BOX_PAD_KEY} must be a number in [0, 1], got {stored!r}"
        )
    return float(stored)


def _resolve_options(requested: dict[str, Any], hints: object) -> dict[str, Any]:
    """Explicit arguments, else the model file's recommendations, else library defaults.

    ``hints`` is the model file's ``extra["detect"]`` (or the ONNX ``synthloc.detect``
    metadata): a dict with any of ``scales``, ``threshold``, ``nms_iou``, ``min_size`` (written
    by ``benchmarks/tune_detect.py``) and ``box_pad`` (``benchmarks/box_convention.py``);
    keys a file lacks get the library defaults (0 for both of the last two).
    """
    defaults = {
        "scales": DEFAULT_SCALES,
        "threshold": DEFAULT_THRESHOLD,
        "nms_iou": DEFAULT_NMS_IOU,
        "min_size": DEFAULT_MIN_SIZE,
        "box_pad": DEFAULT_BOX_PAD,
    }
    stored = hints if isinstance(hints, dict) else {}
    out: dict[str, Any] = {}
    for key, default in defaults.items():
        value = requested.get(key)
        if value is None:
            value = stored.get(key, default)
        out[key] = tuple(value) if key == "scales" else float(value)
    return out
