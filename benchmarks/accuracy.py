"""Detection accuracy (ICDAR 2015 protocol) on a held-out synthetic set and on real photos.

Usage: python benchmarks/accuracy.py [--model M] [--json results.json]

* synthetic: ``--synthetic-count`` images rendered by the engine with ``--synthetic-seed``
  (a seed never used for training) on ../shared/data/backgrounds and ../shared/data/text when
  present, else on the procedural default;
* real: an ICDAR-format folder (default ../shared/data/real/icdar2015_dev when present).

Each set is scored single scale (``--single``; default: the model's own recommended scales
and threshold, which benchmarks/tune_detect.py chose on synthetic validation data) and
multi-scale (``--multi``; default: the multi-scale setting stored in the model file by
``tune_detect.py --key detect_multiscale``, i.e. ``Detector.load(preset="multiscale")``, also
chosen on synthetic validation data, else
``MULTI_SCALE`` with the model's threshold and min_size). Prints one line
per (set, scales) with precision, recall, F and images/s, and writes them as JSON on request.

Boxes: the real set is scored with the model file's ``box_pad`` (``--box-pad`` overrides it),
which grows the boxes to ICDAR 2015's looser convention (benchmarks/box_convention.py); the
synthetic set in the engine's own convention, whose ground truth hugs the glyphs
(``Detector.engine_box_pad``: 0 for a model trained on the engine's boxes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from synthloc.data.icdar import IcdarGT, list_icdar_folder, read_icdar_gt, write_icdar_gt
from synthloc.detect import Detector
from synthloc.evaluate import EvalResult, evaluate_ic15
from synthloc.geometry import quad_to_rbox
from synthloc.synth import SynthConfig
from synthloc.synth.runner import synthesize

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SYNTHETIC_TEST_SEED = 20161123  # never used for training data
MULTI_SCALE = (640.0, 1280.0, 1920.0)
ENGINES = ("paper", "current", "photo", "sprites")
# The engine's word heights at 512 px match ICDAR 2015 training photos resized to a long side of
# 768 (docs/engine.md, benchmarks/data_stats.py); the photos themselves are 1280 px wide.
PHOTO_UPSCALE = 1280 / 768
# Real word crops of ICDAR 2015's training split (fair to validate on), for the sprites set.
SPRITE_DIR = SHARED / "real" / "icdar2015_train_words"
# Word-height bins (pixels of the photo itself) for recall by size.
HEIGHT_BINS = {"lt16": (0.0, 16.0), "16to32": (16.0, 32.0), "gt32": (32.0, float("inf"))}


def make_synthetic_set(
    out: Path, count: int, seed: int, size: int = 512, engine: str = "paper"
) -> Path:
    """Render the held-out synthetic set in ICDAR layout (resumes if already there).

    ``engine``: "paper" (the engine's paper configuration, ``SynthConfig(paper=True)``: the
    set every figure in the README and model card was measured on), "current" (the engine's
    defaults, with the parts added for real photos) or "photo" (the current engine's images,
    camera degradations on, and quads enlarged by :data:`PHOTO_UPSCALE`, so that words have
    the pixel heights they have in ICDAR 2015 photos at their own resolution: a scale factor
    chosen on this set carries over to such photos, which one chosen on the 512 px sets does
    not) or "sprites" (every legible word a real ICDAR 2015 training word crop,
    :data:`SPRITE_DIR`, pasted seamlessly and never enlarged past its own pixels, rendered
    directly at the photo set's size, with the engine's pixel sizes scaled to match: real
    lettering, and ground truth in the annotators' box convention rather than the engine's).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    backgrounds = SHARED / "backgrounds"
    corpus = SHARED / "text"
    sprites: dict[str, Any] = {}
    if engine == "sprites":
        if not SPRITE_DIR.is_dir():
            raise SystemExit(f"{SPRITE_DIR}: not found (the sprites set needs the word crops)")
        # Rendered at the photo set's final size rather than enlarged afterwards, which would
        # blur the crops (it made the shipped model's boxes 1.06x the annotators' height
        # against 0.99x this way).
        sprites = {
            "size": round(size * PHOTO_UPSCALE),
            "min_font_px": round(SynthConfig.min_font_px * PHOTO_UPSCALE),
            "max_font_px": round(SynthConfig.max_font_px * PHOTO_UPSCALE),
            "min_region_side": round(SynthConfig.min_region_side * PHOTO_UPSCALE),
            "p_sprite": 1.0,
            "sprite_dir": str(SPRITE_DIR),
            "sprite_max_scale": 1.0,
            "sprite_seamless": True,
        }
    config = SynthConfig(
        **{"size": size, **sprites},
        corpus=str(corpus) if corpus.is_dir() else None,
        paper=engine == "paper",
        # The photo sets keep the camera degradations (blur, noise, JPEG), off by default for
        # training since the engine ablation: validation images look more like photos with them.
        camera=engine in ("photo", "sprites"),
    )
    rendered = out / "rendered" if engine == "photo" else out
    synthesize(
        rendered,
        count=count,
        seed=seed,
        backgrounds=backgrounds if backgrounds.is_dir() else None,
        workers=1,
        fmt="icdar",
        config=config,
        progress=False,
    )
    if engine == "photo":
        _enlarge_icdar_folder(rendered, out, PHOTO_UPSCALE)
    return out


def _enlarge_icdar_folder(source: Path, out: Path, factor: float) -> None:
    """Copy an ICDAR folder to ``out/images`` + ``out/gt``, images and quads scaled by
    ``factor`` (bilinear); pairs already there are kept."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    for image_path, gt_path in list_icdar_folder(source):
        image_out, gt_out = out / "images" / image_path.name, out / "gt" / gt_path.name
        if image_out.is_file() and gt_out.is_file():
            continue
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{image_path}: unreadable image")
        h, w = image.shape[:2]
        size = (round(w * factor), round(h * factor))
        big = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        gt = read_icdar_gt(gt_path)
        quads = np.asarray(gt.quads, np.float64).reshape(-1, 4, 2)
        quads = quads * np.array([size[0] / w, size[1] / h])
        words = ["###" if ignore else word for word, ignore in zip(gt.words, gt.ignore)]
        cv2.imwrite(str(image_out), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_icdar_gt(gt_out, quads, words)


def multi_scale_detector(
    model: Path | None,
    scales: list[float] | None,
    threshold: float | None,
    threads: int,
    verifier: Path | None = None,
    no_verify: bool = False,
) -> Detector:
    """``scales`` if given; else the model file's tuned multi-scale preset; else
    ``MULTI_SCALE`` with the model's other defaults. An explicit ``threshold`` always wins.
    ``verifier`` / ``no_verify``: the second stage, as ``Detector.load`` takes it."""
    if scales is None:
        try:
            return Detector.load(
                model,
                preset="multiscale",
                threshold=threshold,
                num_threads=threads,
                verifier=verifier,
                verify=not no_verify,
            )
        except ValueError:  # no stored multi-scale setting (any other problem recurs below)
            scales = list(MULTI_SCALE)
    return Detector.load(
        model,
        scales=scales,
        threshold=threshold,
        num_threads=threads,
        verifier=verifier,
        verify=not no_verify,
    )


def set_box_pad(detector: Detector, engine: str) -> float | None:
    """The box padding to score a synthetic set of ``engine`` with (``score_folder``'s
    ``box_pad``): the detector's own for the sprites set, whose words are real crops boxed by
    ICDAR 2015's annotators, and the engine's convention (glyph-tight) for the others."""
    return None if engine == "sprites" else detector.engine_box_pad


def score_folder(
    detector: Detector, folder: Path, box_pad: float | None = None
) -> dict[str, float]:
    """Detect on every image of an ICDAR folder and score it with the ic15 protocol.

    ``box_pad``: the detector's box padding for this folder only (None = its own). The
    engine's sets take ``detector.engine_box_pad``: their ground truth hugs the glyphs, while
    the model file's ``box_pad`` converts to ICDAR 2015's looser boxes
    (benchmarks/box_convention.py).
    """
    gts, result, seconds = evaluate_folder(detector, folder, box_pad)
    return {
        "images": len(gts),
        "precision": result.precision,
        "recall": result.recall,
        "hmean": result.hmean,
        "images_per_s": len(gts) / seconds,
        **recall_by_height(gts, result.per_image),
    }


def evaluate_folder(
    detector: Detector, folder: Path, box_pad: float | None = None
) -> tuple[dict[str, IcdarGT], EvalResult, float]:
    """The ground truth of an ICDAR folder, the ic15 evaluation of ``detector`` on its images
    (with per-image counts) and the seconds detection took; ``box_pad`` as in
    :func:`score_folder`."""
    pairs = list_icdar_folder(folder)
    if not pairs:
        raise SystemExit(f"{folder}: no images with ground truth")
    gts: dict[str, IcdarGT] = {}
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    own_pad = detector.box_pad
    detector.box_pad = own_pad if box_pad is None else box_pad
    start = time.perf_counter()
    try:
        for image_path, gt_path in pairs:
            detections = detector(image_path)
            name = gt_path.stem[len("gt_") :]
            gts[name] = read_icdar_gt(gt_path)
            quads = np.array([d.quad for d in detections], np.float32).reshape(-1, 4, 2)
            preds[name] = (quads, np.array([d.score for d in detections], np.float32))
    finally:
        detector.box_pad = own_pad
    seconds = time.perf_counter() - start
    return gts, evaluate_ic15(gts, preds), seconds


def recall_by_height(
    gts: dict[str, IcdarGT], per_image: list[dict[str, object]]
) -> dict[str, float]:
    """Recall of care words per height bin (``HEIGHT_BINS``; the short side of the GT box)."""
    found = {name: 0 for name in HEIGHT_BINS}
    total = {name: 0 for name in HEIGHT_BINS}
    for row in per_image:
        gt = gts[str(row["name"])]
        if len(gt.quads) == 0:
            continue
        heights = quad_to_rbox(np.asarray(gt.quads, np.float64).reshape(-1, 4, 2))[:, 3]
        matched = {int(g) for g, _ in row["pairs"]}  # type: ignore[attr-defined]
        for k, (height, ignore) in enumerate(zip(heights, gt.ignore)):
            if ignore:
                continue
            for name, (low, high) in HEIGHT_BINS.items():
                if low <= height < high:
                    total[name] += 1
                    found[name] += k in matched
    out: dict[str, float] = {}
    for name in HEIGHT_BINS:
        out[f"recall_{name}"] = found[name] / total[name] if total[name] else float("nan")
        out[f"words_{name}"] = float(total[name])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: shipped)")
    parser.add_argument("--synthetic-count", type=int, default=200)
    parser.add_argument("--synthetic-seed", type=int, default=SYNTHETIC_TEST_SEED)
    parser.add_argument("--synthetic-dir", type=Path, default=None, help="keep the set here")
    parser.add_argument("--engine", choices=ENGINES, default="paper", help="of the synthetic set")
    parser.add_argument("--icdar", type=Path, default=SHARED / "real" / "icdar2015_dev")
    parser.add_argument("--single", type=float, nargs="+", default=None)
    parser.add_argument("--multi", type=float, nargs="+", default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument(
        "--box-pad",
        type=float,
        default=None,
        help="box padding on the real set (default: the model's; the synthetic set always 0)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--verifier", type=Path, default=None, help="second-stage verifier file (both stages)"
    )
    parser.add_argument("--no-verify", action="store_true", help="first stage only")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    results: dict[str, Any] = {"synthetic_engine": args.engine}
    with tempfile.TemporaryDirectory(prefix="synthloc-acc-") as tmp:
        synthetic_dir = args.synthetic_dir or Path(tmp) / "synthetic"
        make_synthetic_set(
            synthetic_dir, args.synthetic_count, args.synthetic_seed, engine=args.engine
        )
        sets = {"synthetic": synthetic_dir}
        if args.icdar is not None and args.icdar.is_dir():
            sets["icdar2015_dev"] = args.icdar
        detectors = {
            "single": Detector.load(
                args.model,
                scales=args.single,
                threshold=args.threshold,
                num_threads=args.threads,
                verifier=args.verifier,
                verify=not args.no_verify,
            ),
            "multi": multi_scale_detector(
                args.model, args.multi, args.threshold, args.threads, args.verifier, args.no_verify
            ),
        }
        for scales_name, detector in detectors.items():
            for set_name, folder in sets.items():
                box_pad = (
                    set_box_pad(detector, args.engine) if set_name == "synthetic" else args.box_pad
                )
                figures = score_folder(detector, folder, box_pad)
                figures["scales"] = list(detector.scales)  # type: ignore[assignment]
                figures["threshold"] = detector.threshold
                figures["min_size"] = detector.min_size
                figures["box_pad"] = detector.box_pad if box_pad is None else box_pad
                verifier = detector.verifier
                figures["verifier"] = None if verifier is None else verifier.name  # type: ignore[assignment]
                figures["verify_threshold"] = (
                    float("nan") if verifier is None else verifier.threshold
                )
                results[f"{set_name}/{scales_name}"] = figures
                print(
                    f"{set_name:14s} {scales_name:6s} scales={detector.scales} "
                    f"threshold={detector.threshold} min_size={detector.min_size} "
                    f"box_pad={figures['box_pad']} images={figures['images']} "
                    f"P={figures['precision']:.3f} R={figures['recall']:.3f} "
                    f"F={figures['hmean']:.3f} ({figures['images_per_s']:.2f} images/s) "
                    f"recall by height <16 {figures['recall_lt16']:.3f} "
                    f"16-32 {figures['recall_16to32']:.3f} >32 {figures['recall_gt32']:.3f}"
                )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
