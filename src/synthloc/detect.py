"""Word detection with a trained FCRN: multi-scale inference -> decode -> rotated NMS.

The pipeline for one image (as in the paper, which runs the FCRN at several scales and merges):

1. For every scale, resize the image keeping its aspect ratio (``resized_size``) and zero-pad
   the right and bottom to a multiple of the model's stride (the same padding the model applies
   inside ``forward``, done here so images of one size batch together and the ONNX session
   always sees stride multiples).
2. Run the network (PyTorch or onnxruntime) -> prediction map ``[7, Hc, Wc]`` per image.
3. Decode cells whose confidence reaches ``threshold`` into quads
   (``synthloc.model.decode_predictions``), drop those whose short side is under ``min_size``
   pixels of the resized image, and map the rest back to original-image pixels by the exact
   per-axis resize factors.
4. Merge the detections of all scales and suppress duplicates with rotated NMS
   (``synthloc.nms.rotated_nms``).

Scales (``scales=`` everywhere): each value is either a **long side in pixels** (values above
``8``, e.g. ``1024`` resizes a 1280x720 photo to 1024x576) or a **factor** of the original size
(values up to ``8``, e.g. ``1.0`` keeps the size, ``0.5`` halves it).  The default is one scale,
long side 1024; a multi-scale setting such as ``(512, 1024, 1536)`` finds both small and large
words at about three times the cost.

Coordinates follow ``synthloc.geometry``: pixels of the original image, x right, y down, pixel
corners at integers, quads clockwise from the top-left.  Images are RGB ``uint8 [H, W, 3]``;
files are decoded with OpenCV, which applies the EXIF orientation (what image viewers show).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthloc.atomic import write_bytes_atomic
from synthloc.data.icdar import natural_key, write_icdar_results
from synthloc.geometry import quad_to_rbox
from synthloc.model import (
    decode_dense_predictions,
    decode_predictions,
    fold_batchnorm,
    load_model_with_extra,
    preprocess,
)
from synthloc.nms import rotated_nms

DEFAULT_SCALES: tuple[float, ...] = (1024.0,)
DEFAULT_THRESHOLD = 0.5
DEFAULT_NMS_IOU = 0.3
DEFAULT_MIN_SIZE = 0.0
DEFAULT_BATCH_SIZE = 4
# Scale values up to this are factors of the original size, larger ones long sides in pixels.
MAX_SCALE_FACTOR = 8.0
# Detection settings a model file can recommend: preset name -> its key in the model file's
# ``extra`` (and, prefixed with ``synthloc.``, in ONNX metadata).
PRESETS = {"default": "detect", "multiscale": "detect_multiscale"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# Where a package build ships its default weights (``Detector.load(None)``).
DEFAULT_MODEL_RESOURCE = ("assets", "models", "default.pt")

ImageInput = np.ndarray | str | os.PathLike[str]


class ImageReadError(ValueError):
    """An image file that is missing, unreadable or not a decodable image."""


class NoDefaultModelError(FileNotFoundError):
    """This build of synthloc ships no default model weights."""


@dataclass
class Detection:
    """One detected word.

    quad: float32 ``[4, 2]``, original-image pixel coordinates, clockwise from top-left.
    score: the model's confidence for the word (after a sigmoid for logit models).
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


# ----------------------------------------------------------------------------------------------
# Images and scales


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to RGB ``uint8 [H, W, 3]``.

    Grayscale, palette, 16-bit and alpha images are converted (alpha dropped, 16-bit scaled to
    8-bit); the EXIF orientation is applied.  Raises :class:`ImageReadError` naming the file.
    """
    file = Path(path)
    try:
        data = np.fromfile(file, dtype=np.uint8)  # np.fromfile: non-ASCII paths work
    except OSError as exc:
        raise ImageReadError(f"{file}: cannot read file ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise ImageReadError(f"{file}: empty file")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0 or bgr.shape[1] == 0:
        raise ImageReadError(f"{file}: not a decodable image (corrupt or unsupported format)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _as_image(image: ImageInput) -> np.ndarray:
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB uint8 image [H, W, 3], got {arr.dtype} {tuple(arr.shape)}"
            )
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"empty image of shape {tuple(arr.shape)}")
        return arr
    return load_image(image)


def validate_scales(scales: Iterable[float]) -> tuple[float, ...]:
    """Check a scale specification (see the module docstring) and return it as a tuple."""
    values = tuple(float(s) for s in scales)
    if not values:
        raise ValueError("at least one scale is needed")
    for s in values:
        if not math.isfinite(s) or s <= 0:
            raise ValueError(f"scale {s} must be a positive number")
    return values


def resized_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(h, w)`` of an image of ``height x width`` at one scale, aspect ratio kept.

    ``scale`` above ``MAX_SCALE_FACTOR`` is the target long side in pixels, otherwise a factor.
    Each side is rounded to the nearest pixel and is at least 1.
    """
    factor = scale / max(height, width) if scale > MAX_SCALE_FACTOR else scale
    return max(1, round(height * factor)), max(1, round(width * factor))


def _resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    if (h, w) == image.shape[:2]:
        return image
    # Area averaging when shrinking avoids aliasing thin strokes; bilinear when enlarging.
    shrinking = h * w < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interpolation)


def default_model_path() -> Path:
    """The default weights shipped inside the package; raises if this build has none."""
    resource = resources.files("synthloc")
    for part in DEFAULT_MODEL_RESOURCE:
        resource = resource / part
    if not resource.is_file():
        raise NoDefaultModelError(
            "no default model is shipped with this build of synthloc yet "
            f"(expected synthloc/{'/'.join(DEFAULT_MODEL_RESOURCE)}); pass a model path, "
            "e.g. Detector.load('runs/exp/best.pt') or `--model runs/exp/best.pt`"
        )
    return Path(str(resource))


# ----------------------------------------------------------------------------------------------
# Inference backends: float [N, C, H, W] (stride multiples, values in [0, 1]) -> [N, 7, Hc, Wc]


class _Backend(Protocol):
    def __call__(self, batch: torch.Tensor) -> np.ndarray: ...


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Use ``num_threads`` intra-op threads for the duration of a call, then restore.

    Only when the caller asked for a thread count: the process-wide setting is put back so
    that a library call leaves no side effect behind.
    """
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _TorchBackend:
    def __init__(self, model: nn.Module, device: torch.device, num_threads: int | None) -> None:
        # On CPU the channels-last layout suits oneDNN's depthwise kernels: fcrn-lite at
        # 1024x576 on 2 threads ran ~1.4x faster; results equal NCHW to float rounding.
        self.memory_format = (
            torch.channels_last if device.type == "cpu" else torch.contiguous_format
        )
        self.model = model.to(device).to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.device = device
        self.num_threads = num_threads

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        x = batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with _torch_threads(self.num_threads), torch.inference_mode():
            pred = self.model(x)
        return pred.float().contiguous().cpu().numpy()


class _OnnxBackend:
    def __init__(self, path: Path, num_threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 0 if num_threads is None else num_threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model ({exc})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        feed = batch.detach().cpu().numpy().astype(np.float32, copy=False)
        return np.asarray(self.session.run(None, {self.input_name: feed})[0])


# ----------------------------------------------------------------------------------------------
# The detector


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
    small word is still found at the scale that enlarges it); batch_size: images per
    forward pass (images of one resized size only).
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
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str = "",
        dense: bool = False,
    ) -> None:
        if stride <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if not min_size >= 0.0:
            raise ValueError(f"min_size must be >= 0, got {min_size}")
        self.backend = backend
        self.stride = int(stride)
        self.confidence = confidence
        self.scales = validate_scales(scales)
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self.min_size = float(min_size)
        self.batch_size = int(batch_size)
        self.name = name
        # fcrn-dense maps: every cell of a word predicts it; merge them (dense_targets.py).
        self.dense = bool(dense)

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
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | torch.device | None = None,
        num_threads: int | None = None,
        fold_bn: bool = True,
        name: str = "",
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
            batch_size=batch_size,
            name=name,
            dense=getattr(config, "arch", "") == "fcrn-dense",
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
        backend: str = "torch",
        device: str | torch.device | None = None,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        preset: str = "default",
    ) -> Detector:
        """Load a detector from a synthloc model file (``.pt``) or an exported ``.onnx`` file.

        path: None means the default model shipped with the package (a clear
            :class:`NoDefaultModelError` if this build has none).
        backend: "torch" or "onnxruntime". A ``.onnx`` path always uses onnxruntime; a ``.pt``
            path with ``backend="onnxruntime"`` is exported to a temporary ONNX file first.
        device: torch backend only; None picks CUDA when available, else CPU.
        num_threads: intra-op threads (torch: set for each call and restored afterwards;
            onnxruntime: the session's ``intra_op_num_threads``). None = library default.
        scales, threshold, nms_iou, min_size: None = the values of the model file's ``preset``
            or else the library defaults.
        preset: which setting stored in the model file fills the options not given: "default"
            (``extra["detect"]``, written by ``benchmarks/tune_detect.py``) or "multiscale"
            (``extra["detect_multiscale"]``; a clear error if the file has none).
        """
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"unknown backend {backend!r}; expected 'torch' or 'onnxruntime'")
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        model_path = default_model_path() if path is None else Path(path)
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path}: model file not found")
        requested = {
            "scales": scales,
            "threshold": threshold,
            "nms_iou": nms_iou,
            "min_size": min_size,
        }
        if model_path.suffix.lower() == ".onnx":
            onnx_backend = _OnnxBackend(model_path, num_threads)
            return cls._from_onnx(onnx_backend, model_path, requested, batch_size, preset)
        model, extra = load_model_with_extra(model_path)
        stored = _preset_hints(extra.get(PRESETS[preset]), model_path, preset)
        options = _resolve_options(requested, stored)
        if backend == "torch":
            return cls.from_model(
                model,
                device=device,
                num_threads=num_threads,
                batch_size=batch_size,
                name=model_path.name,
                **options,
            )
        # onnxruntime on a PyTorch checkpoint: export to a temporary file the session reads.
        from synthloc.export import export_onnx

        with tempfile.TemporaryDirectory(prefix="synthloc-onnx-") as tmp:
            onnx_path = export_onnx(model, Path(tmp) / "model.onnx", detect_defaults=options)
            onnx_backend = _OnnxBackend(onnx_path, num_threads)
        return cls._from_onnx(onnx_backend, model_path, requested, batch_size, "default")

    @classmethod
    def _from_onnx(
        cls,
        backend: _OnnxBackend,
        path: Path,
        requested: dict[str, Any],
        batch_size: int,
        preset: str,
    ) -> Detector:
        meta = backend.metadata
        if "synthloc.stride" not in meta:
            raise ValueError(
                f"{path}: ONNX file lacks synthloc metadata (stride, confidence); "
                "export it with `synthloc export`"
            )
        raw = meta.get(f"synthloc.{PRESETS[preset]}")
        hints = _preset_hints(json.loads(raw) if raw else None, path, preset)
        return cls(
            backend,
            stride=int(meta["synthloc.stride"]),
            confidence=meta.get("synthloc.confidence", "linear"),
            batch_size=batch_size,
            name=path.name,
            dense=meta.get("synthloc.arch", "") == "fcrn-dense",
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
        return [self._merge(found) for found in per_image]

    def _run_scale(
        self, images: list[np.ndarray], size_hw: tuple[int, int]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Quads (original pixels) and scores of same-size images resized to ``size_hw``."""
        h, w = size_hw
        batch = preprocess(np.stack([_resize(im, size_hw) for im in images]))  # [B, 3, h, w]
        # Zero (black) padding to a stride multiple: exactly what the model does in forward.
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        if pad_h or pad_w:
            batch = F.pad(batch, (0, pad_w, 0, pad_h))
        pred = self.backend(batch)  # [B, 7, Hc, Wc]
        out = []
        for im, pred_map in zip(images, pred):
            decode = decode_dense_predictions if self.dense else decode_predictions
            quads, scores = decode(
                pred_map, self.stride, self.threshold, confidence=self.confidence
            )
            quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            if self.min_size > 0.0 and len(quads):
                sides = quad_to_rbox(quads)[:, 2:4]  # w, h in the resized image
                keep = sides.min(axis=1) >= self.min_size
                quads, scores = quads[keep], scores[keep]
            # Exact per-axis factors: rounding the resized size changes the aspect slightly.
            quads[..., 0] *= im.shape[1] / w
            quads[..., 1] *= im.shape[0] / h
            out.append((quads, scores))
        return out

    def _merge(self, found: list[tuple[np.ndarray, np.ndarray]]) -> list[Detection]:
        """All scales' candidates of one image -> NMS survivors, by descending score.

        Quads are not clipped to the image: a word cut by the border keeps its true shape.
        """
        quads = np.concatenate([q for q, _ in found]) if found else np.zeros((0, 4, 2))
        scores = np.concatenate([s for _, s in found]) if found else np.zeros((0,))
        if len(quads) == 0:
            return []
        keep = rotated_nms(quads, scores, self.nms_iou)
        return [Detection(quads[i].astype(np.float32), float(scores[i])) for i in keep]

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
            pending.append((path, image))
            if len(pending) >= self.batch_size:
                yield from flush()
        yield from flush()

    def detect_folder(self, folder: str | os.PathLike[str]) -> list[ImageResult]:
        """Detect every image in ``folder`` (see :func:`list_images`), in natural name order."""
        return list(self.detect_paths(list_images(folder)))


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


def _resolve_options(requested: dict[str, Any], hints: object) -> dict[str, Any]:
    """Explicit arguments, else the model file's recommendations, else library defaults.

    ``hints`` is the model file's ``extra["detect"]`` (or the ONNX ``synthloc.detect``
    metadata): a dict with any of ``scales``, ``threshold``, ``nms_iou``, ``min_size``, written
    by ``benchmarks/tune_detect.py``; files written before ``min_size`` existed get 0.
    """
    defaults = {
        "scales": DEFAULT_SCALES,
        "threshold": DEFAULT_THRESHOLD,
        "nms_iou": DEFAULT_NMS_IOU,
        "min_size": DEFAULT_MIN_SIZE,
    }
    stored = hints if isinstance(hints, dict) else {}
    out: dict[str, Any] = {}
    for key, default in defaults.items():
        value = requested.get(key)
        if value is None:
            value = stored.get(key, default)
        out[key] = tuple(value) if key == "scales" else float(value)
    return out


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ----------------------------------------------------------------------------------------------
# Folders and outputs


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by extension) directly in ``folder``, in natural name order.

    An ICDAR-style dataset root with no images of its own but an ``images/`` (or ``imgs/``)
    subfolder lists that subfolder instead.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")

    def images_in(directory: Path) -> list[Path]:
        files = [
            p
            for p in directory.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        ]
        return sorted(files, key=lambda p: natural_key(p.name))

    found = images_in(root)
    if not found:
        for sub in ("images", "imgs"):
            if (root / sub).is_dir():
                return images_in(root / sub)
    return found


def draw_detections(image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of RGB ``image`` with each detection's quad and score drawn."""
    canvas = np.ascontiguousarray(image.copy())
    thickness = max(1, round(max(image.shape[:2]) / 500))
    font_scale = max(0.4, max(image.shape[:2]) / 2000)
    for det in detections:
        pts = np.rint(det.quad).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], True, (0, 255, 0), thickness, cv2.LINE_AA)
        # Mark the first corner (top-left) so the point order is visible.
        cv2.circle(canvas, tuple(int(v) for v in pts[0, 0]), thickness + 1, (255, 0, 0), -1)
        x, y = int(pts[:, 0, 0].min()), int(pts[:, 0, 1].min())
        cv2.putText(
            canvas,
            f"{det.score:.2f}",
            (x, max(y - 3, 10)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 0),
            thickness,
            cv2.LINE_AA,
        )
    return canvas


def output_paths(out_dir: str | os.PathLike[str], stem: str) -> dict[str, Path]:
    """The files ``write_outputs`` produces for an image named ``stem``."""
    out = Path(out_dir)
    return {
        "txt": out / f"res_{stem}.txt",
        "json": out / f"{stem}.json",
        "vis": out / f"{stem}_vis.jpg",
    }


def write_outputs(
    out_dir: str | os.PathLike[str],
    stem: str,
    detections: Sequence[Detection],
    *,
    image: np.ndarray | None = None,
    visualise: bool = True,
    source: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write one image's results (each file atomically) and return their paths.

    ``res_<stem>.txt``: ICDAR 2015 submission format with the score as a ninth value;
    ``<stem>.json``: ``{"image", "width", "height", ..., "detections": [{"quad", "score"}]}``
    (``extra`` entries are added at the top level);
    ``<stem>_vis.jpg``: the annotated image, when ``image`` is given and ``visualise`` is set.
    """
    paths = output_paths(out_dir, stem)
    quads = np.array([d.quad for d in detections], dtype=np.float64).reshape(-1, 4, 2)
    scores = np.array([d.score for d in detections], dtype=np.float64)
    write_icdar_results(paths["txt"], quads, scores)
    record: dict[str, Any] = {"image": source or stem}
    if image is not None:
        record["height"], record["width"] = int(image.shape[0]), int(image.shape[1])
    record.update(extra or {})
    record["detections"] = [d.to_dict() for d in detections]
    write_bytes_atomic(paths["json"], (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    written = {"txt": paths["txt"], "json": paths["json"]}
    if image is not None and visualise:
        vis = cv2.cvtColor(draw_detections(image, detections), cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", vis, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise OSError(f"{paths['vis']}: JPEG encoding failed")
        write_bytes_atomic(paths["vis"], encoded.tobytes())
        written["vis"] = paths["vis"]
    return written
