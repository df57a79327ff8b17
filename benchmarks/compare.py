"""synthloc's shipped models and RapidOCR's text detector on the same ICDAR 2015 dev photos.

Usage::

    .venv/bin/python benchmarks/compare.py                      # ../shared icdar2015_dev, 2 threads
    .venv/bin/python benchmarks/compare.py --count 10 --repeats 1 --threads 1   # smoke run
    .venv/bin/python benchmarks/compare.py --json compare.json --save-detections runs/compare
    .venv/bin/python benchmarks/compare.py --models "synthloc default=" "mine=runs/exp/model.pt"

Runs, in one process and on the same decoded photos:

* ``synthloc default``: ``Detector.load()``, the default shipped model at the detection setting
  stored in its file (scales, threshold, min size, box pad; its verifier when it ships one);
* ``synthloc paper``: ``Detector.load("fcrn-lite-paper")``, the paper's configuration;
* ``RapidOCR det``: RapidOCR's text detector (PP-OCR DBNet, its own default settings) when
  ``rapidocr_onnxruntime`` is importable (the ``bench`` extra; ``make bench``), else the row is
  skipped and the output says so.

``--models label=NAME_OR_PATH ...`` replaces the two synthloc entries (an empty NAME_OR_PATH is
the default shipped model). Every detector runs with ``--threads`` intra-op threads (synthloc:
onnxruntime on the CPU, ``Detector.load``'s "auto" backend; RapidOCR: its onnxruntime session).

Accuracy: precision, recall and F of the ICDAR 2015 protocol (``evaluate_ic15``) and recall of
care words split by height (benchmarks/accuracy.py's bins). RapidOCR's boxes get score 1.0: its
``TextDetector`` does not return its box scores, and the protocol does not use scores. Note that
PP-OCR is trained to find text *lines*, while ICDAR 2015 counts *words*: a line box over several
words matches none of them, which lowers its P and R on this protocol (its speed is unaffected).

Speed: images/s of one pass over the photos already decoded in memory (file decoding is left
out for every detector alike; RapidOCR gets the BGR copy it expects, made beforehand), one call
per image, after one warm-up image; the median of ``--repeats`` passes, interleaved across
detectors so that load from other processes hits them alike. ``x RapidOCR`` is images/s divided
by RapidOCR's. Detections come from the last pass (every pass finds the same boxes).

``--save-detections DIR`` writes ``DIR/<label slug>.json`` per detector (``{"label", "setting",
"detections": {stem: {"quads": [[[x, y] * 4] ...], "scores": [...]}}}``), which
benchmarks/figure.py can draw without running the detectors again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from accuracy import HEIGHT_BINS, SHARED, recall_by_height
from detect_speed import load_average, rapidocr_text_detector

from synthloc.data.icdar import IcdarGT, list_icdar_folder, read_icdar_gt
from synthloc.detect import MAX_SCALE_FACTOR, Detector, load_image
from synthloc.evaluate import evaluate_ic15

ROOT = Path(__file__).resolve().parents[1]
DEV = SHARED / "real" / "icdar2015_dev"
# label -> model name or path for Detector.load (None: the default shipped model).
DEFAULT_MODELS: dict[str, str | None] = {
    "synthloc default": None,
    "synthloc paper": "fcrn-lite-paper",
}
RAPIDOCR = "RapidOCR det"
BACKEND_NAMES = {"_OnnxBackend": "onnxruntime", "_TorchBackend": "torch"}

# quads float32 [N, 4, 2] in image pixels, scores float32 [N]
Boxes = tuple[np.ndarray, np.ndarray]


@dataclass
class Photo:
    """One ICDAR photo, decoded once: ``rgb`` uint8 [H, W, 3] and its ground truth."""

    stem: str
    rgb: np.ndarray
    gt: IcdarGT
    _bgr: np.ndarray | None = field(default=None, repr=False)

    @property
    def bgr(self) -> np.ndarray:
        """A contiguous BGR copy (made on first use, then kept)."""
        if self._bgr is None:
            self._bgr = np.ascontiguousarray(cv2.cvtColor(self.rgb, cv2.COLOR_RGB2BGR))
        return self._bgr


@dataclass
class Method:
    """One detector under comparison.

    detect: uint8 [H, W, 3] image in ``channels`` order -> :data:`Boxes`.
    setting: what it ran with, recorded in the JSON and shown in the table.
    """

    label: str
    detect: Callable[[np.ndarray], Boxes]
    channels: str  # "RGB" or "BGR"
    setting: dict[str, Any]


def load_photos(
    folder: Path, count: int | None = None, stems: Sequence[str] | None = None
) -> list[Photo]:
    """The first ``count`` (all if None) photos of an ICDAR folder in natural order, decoded;
    with ``stems``, those photos (named by image stem) in that order."""
    pairs = list_icdar_folder(folder)
    if stems is not None:
        by_stem = {image.stem: (image, gt) for image, gt in pairs}
        pairs = [by_stem[stem] for stem in stems if stem in by_stem]
    pairs = pairs[:count]
    if not pairs:
        raise SystemExit(f"{folder}: no images with ground truth")
    return [
        Photo(image_path.stem, load_image(image_path), read_icdar_gt(gt_path))
        for image_path, gt_path in pairs
    ]


def parse_models(pairs: Sequence[str]) -> dict[str, str | None]:
    """``["label=NAME_OR_PATH", ...]`` -> ``{label: name or path}``; an empty value is None
    (the default shipped model)."""
    models: dict[str, str | None] = {}
    for pair in pairs:
        label, sep, model = pair.partition("=")
        label = label.strip()
        if not sep or not label:
            raise ValueError(f"expected label=NAME_OR_PATH, got {pair!r}")
        if label in models or label == RAPIDOCR:
            raise ValueError(f"label {label!r} used twice")
        models[label] = model.strip() or None
    return models


def describe_scales(scales: Sequence[float]) -> str:
    """``(1.5,)`` -> ``"scale 1.5x"``, ``(512, 768)`` -> ``"long side 512, 768"``."""
    factors = [s for s in scales if s <= MAX_SCALE_FACTOR]
    sides = [s for s in scales if s > MAX_SCALE_FACTOR]
    parts = []
    if factors:
        parts.append("scale " + ", ".join(f"{s:g}x" for s in factors))
    if sides:
        parts.append("long side " + ", ".join(f"{s:g}" for s in sides))
    return " + ".join(parts)


def synthloc_method(label: str, model: str | None, threads: int) -> Method:
    """A synthloc detector at its model file's stored default setting."""
    detector = Detector.load(model, num_threads=threads)
    verifier = detector.verifier

    def detect(rgb: np.ndarray) -> Boxes:
        detections = detector(rgb)
        quads = np.array([d.quad for d in detections], np.float32).reshape(-1, 4, 2)
        return quads, np.array([d.score for d in detections], np.float32)

    setting = {
        "model": model if model is not None else f"default ({detector.name})",
        "file": detector.name,
        "decoder": "dense" if detector.dense else "grid",
        "stride": detector.stride,
        "scales": list(detector.scales),
        "threshold": detector.threshold,
        "min_size": detector.min_size,
        "box_pad": detector.box_pad,
        "nms_iou": detector.nms_iou,
        "verifier": None if verifier is None else verifier.name,
        "verify_threshold": None if verifier is None else verifier.threshold,
        "backend": BACKEND_NAMES.get(type(detector.backend).__name__, "other"),
    }
    return Method(label, detect, "RGB", setting)


def rapidocr_boxes(dt_boxes: np.ndarray | None) -> Boxes:
    """RapidOCR ``TextDetector`` boxes (None, an empty array, or [N, 4, 2] points) -> quads
    float32 [N, 4, 2] and scores 1.0 (it does not return its scores)."""
    if dt_boxes is None or np.size(dt_boxes) == 0:
        return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
    quads = np.asarray(dt_boxes, np.float32).reshape(-1, 4, 2)
    return quads, np.ones(len(quads), np.float32)


def rapidocr_method(threads: int) -> Method | None:
    """RapidOCR's text detector at its default settings, or None if not installed."""
    found = rapidocr_text_detector(threads)
    if found is None:
        return None
    detector, config = found
    import rapidocr_onnxruntime

    def detect(bgr: np.ndarray) -> Boxes:
        dt_boxes, _ = detector(bgr)
        return rapidocr_boxes(dt_boxes)

    version = getattr(rapidocr_onnxruntime, "__version__", None)
    setting = {
        "model": Path(config["model_path"]).name,
        "version": version,
        "limit_side_len": config.get("limit_side_len"),
        "limit_type": config.get("limit_type"),
        "thresh": config.get("thresh"),
        "box_thresh": config.get("box_thresh"),
        "unclip_ratio": config.get("unclip_ratio"),
    }
    return Method(RAPIDOCR, detect, "BGR", setting)


def describe_setting(setting: dict[str, Any]) -> str:
    """One short line for the table's setting column."""
    if "scales" in setting:  # synthloc
        verifier = setting.get("verifier")
        return (
            f"{setting['file']}, {describe_scales(setting['scales'])}, "
            f"threshold {setting['threshold']:g}, min size {setting['min_size']:g}, "
            + (f"box pad {setting['box_pad']:g}, " if setting.get("box_pad") else "")
            + ("no verifier" if verifier is None else f"verifier {verifier}")
        )
    side = "shortest" if setting.get("limit_type") == "min" else "longest"
    return (
        f"{setting['model']}, {side} side {setting['limit_side_len']}, "
        f"thresh {setting['thresh']:g}, box thresh {setting['box_thresh']:g}"
    )


def score(photos: Sequence[Photo], boxes: Sequence[Boxes]) -> dict[str, float]:
    """ICDAR 2015 P/R/F and recall by word height of ``boxes[i]`` on ``photos[i]``."""
    gts = {photo.stem: photo.gt for photo in photos}
    preds = {photo.stem: found for photo, found in zip(photos, boxes)}
    result = evaluate_ic15(gts, preds)
    return {
        "precision": result.precision,
        "recall": result.recall,
        "hmean": result.hmean,
        "detections": float(sum(len(q) for q, _ in boxes)),
        **recall_by_height(gts, result.per_image),
    }


def time_pass(method: Method, images: Sequence[np.ndarray]) -> tuple[float, list[Boxes]]:
    """Images per second of one pass over ``images`` and what was found in each."""
    start = time.perf_counter()
    found = [method.detect(image) for image in images]
    return len(images) / (time.perf_counter() - start), found


def compare(
    methods: Sequence[Method], photos: Sequence[Photo], repeats: int
) -> tuple[dict[str, dict[str, Any]], dict[str, list[Boxes]]]:
    """Time and score every method on ``photos``: one figures dict per label, and the boxes
    each found per photo (of the last pass)."""
    inputs = {m.label: [p.rgb if m.channels == "RGB" else p.bgr for p in photos] for m in methods}
    for method in methods:
        method.detect(inputs[method.label][0])  # warm-up: session init, allocator
    rates: dict[str, list[float]] = {m.label: [] for m in methods}
    found: dict[str, list[Boxes]] = {}
    for _ in range(repeats):
        for method in methods:
            rate, found[method.label] = time_pass(method, inputs[method.label])
            rates[method.label].append(rate)
    results: dict[str, dict[str, Any]] = {}
    for method in methods:
        runs = rates[method.label]
        results[method.label] = {
            **score(photos, found[method.label]),
            "images_per_s": statistics.median(runs),
            "best_images_per_s": max(runs),
            "runs": runs,
            "setting": method.setting,
        }
    if RAPIDOCR in results:
        theirs = results[RAPIDOCR]["images_per_s"]
        for figures in results.values():
            figures["ratio_vs_rapidocr"] = figures["images_per_s"] / theirs
    return results, found


def _cell(value: float | None, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(results: dict[str, dict[str, Any]], first_column: str = "detector") -> str:
    """| detector | setting | P | R | F | images/s | x RapidOCR | for :func:`compare`'s results
    (as stored in JSON)."""
    lines = [
        f"| {first_column} | setting | P | R | F | images/s | x RapidOCR |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in results.items():
        lines.append(
            f"| {label} | {describe_setting(row['setting'])} | {_cell(row['precision'], 3)} | "
            f"{_cell(row['recall'], 3)} | {_cell(row['hmean'], 3)} | "
            f"{_cell(row['images_per_s'], 2)} | {_cell(row.get('ratio_vs_rapidocr'), 2)} |"
        )
    return "\n".join(lines)


def height_table(results: dict[str, dict[str, Any]]) -> str:
    """Recall of care words by height (pixels of the photo), one row per detector."""
    names = {"lt16": "< 16 px", "16to32": "16-32 px", "gt32": ">= 32 px"}
    words = next(iter(results.values()))
    header = " | ".join(f"R {names[b]} ({words[f'words_{b}']:.0f} words)" for b in HEIGHT_BINS)
    lines = [f"| detector | {header} |", "|---|" + "---|" * len(HEIGHT_BINS)]
    for label, row in results.items():
        cells = " | ".join(_cell(row[f"recall_{b}"], 3) for b in HEIGHT_BINS)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def slug(label: str) -> str:
    """A file-name-safe form of a label: ``"RapidOCR det"`` -> ``"rapidocr-det"``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "detector"


def save_detections(
    folder: Path, label: str, setting: dict[str, Any], stems: Sequence[str], boxes: Sequence[Boxes]
) -> Path:
    """Write one detector's boxes per image to ``folder/<slug(label)>.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "label": label,
        "setting": setting,
        "detections": {
            stem: {
                "quads": np.round(quads.astype(np.float64), 2).tolist(),
                "scores": np.round(scores.astype(np.float64), 6).tolist(),
            }
            for stem, (quads, scores) in zip(stems, boxes)
        },
    }
    path = folder / f"{slug(label)}.json"
    path.write_text(json.dumps(record) + "\n")
    return path


def load_detections(path: Path) -> dict[str, Boxes]:
    """What :func:`save_detections` wrote: ``{stem: (quads [N, 4, 2], scores [N])}``."""
    record = json.loads(path.read_text())
    return {
        stem: (
            np.asarray(item["quads"], np.float32).reshape(-1, 4, 2),
            np.asarray(item["scores"], np.float32).reshape(-1),
        )
        for stem, item in record["detections"].items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEV, help="ICDAR folder (photos + gt)")
    parser.add_argument("--count", type=int, default=None, help="use the first N photos")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per detector")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="LABEL=NAME_OR_PATH",
        help="the synthloc entries (default: 'synthloc default=' 'synthloc paper=fcrn-lite-paper')",
    )
    parser.add_argument("--no-rapidocr", action="store_true", help="skip the RapidOCR row")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--save-detections", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1 or (args.count is not None and args.count < 1):
        parser.error("--repeats, --threads and --count must be at least 1")
    try:
        models = DEFAULT_MODELS if args.models is None else parse_models(args.models)
    except ValueError as error:
        parser.error(str(error))
    # The detectors' pre- and post-processing run torch ops on the CPU too.
    torch.set_num_threads(args.threads)

    photos = load_photos(args.images, args.count)
    methods = [synthloc_method(label, model, args.threads) for label, model in models.items()]
    rapid = None if args.no_rapidocr else rapidocr_method(args.threads)
    if rapid is not None:
        methods.append(rapid)
    source = os.path.relpath(args.images.resolve(), ROOT)
    h, w = photos[0].rgb.shape[:2]
    print(f"photos: {len(photos)} from {source} (first is {w}x{h}); threads: {args.threads}")
    print(f"passes: {args.repeats} (median reported); load average {load_average()}")
    results, found = compare(methods, photos, args.repeats)
    print()
    print(markdown_table(results))
    print()
    print(height_table(results))
    if rapid is None:
        reason = "--no-rapidocr" if args.no_rapidocr else "rapidocr_onnxruntime not installed"
        print(f"\n{RAPIDOCR}: skipped ({reason}; `make bench` installs it); no ratio")

    if args.save_detections is not None:
        stems = [photo.stem for photo in photos]
        for method in methods:
            path = save_detections(
                args.save_detections, method.label, method.setting, stems, found[method.label]
            )
            print(f"detections of {method.label} -> {path}")
    if args.json is not None:
        record = {
            "images": len(photos),
            "source": source,
            "threads": args.threads,
            "repeats": args.repeats,
            "rapidocr": rapid is not None,
            "results": results,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
