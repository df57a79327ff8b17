"""How much larger a benchmark's word boxes are than a detector's: the ``box_pad`` setting.

The engine's ground truth hugs the rendered glyphs (docs/engine.md, GT tightness), so a model
trained on it draws tight boxes. ICDAR 2015's annotators drew looser ones. Under the ICDAR 2015
protocol (IoU > 0.5) a correct but tight box can miss, so ``Detector(box_pad=f)`` grows every
final box by ``f`` times its height on each side. This script measures ``f`` on real words of
the *training* split, never on the dev or test photos:

    python benchmarks/box_convention.py --model src/synthloc/assets/models/fcrn-dense.pt \\
        --verifier src/synthloc/assets/models/fcrn-dense-verifier.pt --count 2000 \\
        --write src/synthloc/assets/models/fcrn-dense.pt

Each of ``--count`` crops of ``../shared/data/real/icdar2015_train_words`` (a seeded sample;
each crop is the axis-aligned box of one annotated word) is placed in the middle of a flat
canvas of its border's median colour, with a margin of twice its height, and run through the
detector at its stored setting with ``box_pad`` 0 (a scale given as a long side in pixels
becomes the factor it means on the crops' own 1280 x 720 photos, ``--photo-side``). For the
detection that overlaps the annotated quad most (IoU >= 0.3, words at least 8 px tall) the
script records the pad that would make the detection as tall and as wide as the annotation,
in units of the detection's height: ``(H_gt - H_det) / (2 H_det)`` and
``(W_gt - W_det) / (2 H_det)``. The median of both lists together, rounded to 0.01, is the
convention gap; ``--write`` stores it as ``box_pad`` in every detection preset of the model
file (``extra["detect"]``, ``extra["detect_multiscale"]``), which ``Detector.load`` and
``synthloc detect`` then apply. ``--json`` keeps the figures.

The crops are isolated words on flat canvases, not scenes, so the script then checks the
value on the 10 ICDAR 2015 *training* photos with ground truth (``--check``, default
``../shared/data/real/icdar2015_train10``): ICDAR 2015 F with ``box_pad`` 0 and with the
measured value. Write only a value that does not lower it. (fcrn-dense: 0.11, F 0.537 -> 0.634;
fcrn-lite-paper: -0.07, F 0.455 -> 0.409, so it keeps 0.) The figures also give the share of
words found (IoU >= 0.3) by word height and for words taller than wide.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from synthloc.data.datasets import read_rgb
from synthloc.detect import Detector
from synthloc.detect.detector import PRESETS
from synthloc.detect.images import MAX_SCALE_FACTOR
from synthloc.detect.shipped import resolve_model
from synthloc.geometry import iou_matrix
from synthloc.model import load_model_with_extra, save_model
from synthloc.verify.data import read_word_crops

ROOT = Path(__file__).resolve().parents[1]
WORDS = ROOT.parent / "shared" / "data" / "real" / "icdar2015_train_words"
CHECK = ROOT.parent / "shared" / "data" / "real" / "icdar2015_train10"
MIN_IOU = 0.3
MIN_HEIGHT = 8.0
# Word heights (pixels of the crops' photos) for the share of words found, by size.
FOUND_BINS = ((8.0, 16.0), (16.0, 24.0), (24.0, 32.0), (32.0, 48.0), (48.0, float("inf")))


def _mean_sides(quad: np.ndarray) -> tuple[float, float]:
    """(width, height): mean lengths of the p0->p1 / p3->p2 and p0->p3 / p1->p2 edges."""
    width = 0.5 * (np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3]))
    height = 0.5 * (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1]))
    return float(width), float(height)


def on_canvas(crop: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crop in the middle of a flat canvas (its border's median colour, a margin of twice
    its height, at least 24 px) and the quad moved with it."""
    h, w = crop.shape[:2]
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    margin = max(2 * h, 24)
    canvas = np.empty((h + 2 * margin, w + 2 * margin, 3), np.uint8)
    canvas[:] = np.median(border, axis=0).astype(np.uint8)
    canvas[margin : margin + h, margin : margin + w] = crop
    return canvas, quad + margin


def measure(detector: Detector, folder: Path, count: int, seed: int) -> dict[str, object]:
    """Per-word pads needed (see the module docstring) over a seeded sample of crops."""
    entries = read_word_crops(folder)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(entries), size=min(count, len(entries)), replace=False)
    pads_y: list[float] = []
    pads_x: list[float] = []
    ratios_h: list[float] = []
    found = 0
    used = 0
    # Per word: (height, taller than wide, found at IoU >= MIN_IOU).
    outcomes: list[tuple[float, bool, bool]] = []
    for index in sorted(chosen.tolist()):
        name, quad = entries[index]
        crop = read_rgb(folder / name)
        width, height = _mean_sides(quad)
        if height < MIN_HEIGHT:
            continue
        used += 1
        canvas, gt = on_canvas(crop, quad)
        detections = detector(canvas)
        quads = np.array([d.quad for d in detections], np.float64).reshape(-1, 4, 2)
        ious = iou_matrix(gt[None], quads)[0] if len(quads) else np.zeros(1)
        best = int(np.argmax(ious))
        outcomes.append((height, height > width, bool(ious[best] >= MIN_IOU)))
        if ious[best] < MIN_IOU:
            continue
        found += 1
        det_w, det_h = _mean_sides(quads[best])
        det_h = max(det_h, 1.0)
        pads_y.append((height - det_h) / (2 * det_h))
        pads_x.append((width - det_w) / (2 * det_h))
        ratios_h.append(det_h / height)
    if not pads_y:
        raise SystemExit("no crop was detected: nothing to measure")
    both = np.array(pads_y + pads_x)
    return {
        "crops": used,
        "detected": found,
        "pad_y_quartiles": np.percentile(pads_y, [25, 50, 75]).round(3).tolist(),
        "pad_x_quartiles": np.percentile(pads_x, [25, 50, 75]).round(3).tolist(),
        "height_ratio_quartiles": np.percentile(ratios_h, [25, 50, 75]).round(3).tolist(),
        "box_pad": round(float(np.median(both)), 2),
        "found_by_height": _found_share(outcomes),
    }


def _found_share(outcomes: list[tuple[float, bool, bool]]) -> dict[str, list[float]]:
    """[words, share found] per height bin of ``FOUND_BINS``, and for words taller than wide
    (vertical or steeply rotated text)."""
    names = [
        f"{low:g}-{high:g}px" if high < float("inf") else f">={low:g}px" for low, high in FOUND_BINS
    ]
    groups: dict[str, list[bool]] = {name: [] for name in names}
    groups["taller_than_wide"] = []
    for height, tall, hit in outcomes:
        for name, (low, high) in zip(names, FOUND_BINS):
            if low <= height < high:
                groups[name].append(hit)
        if tall:
            groups["taller_than_wide"].append(hit)
    return {
        name: [len(hits), round(float(np.mean(hits)), 3)] for name, hits in groups.items() if hits
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model file (or shipped model name)")
    parser.add_argument("--verifier", default=None, help="second stage (default: none)")
    parser.add_argument("--words", type=Path, default=WORDS, help="ICDAR word-crop folder")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--photo-side", type=float, default=1280.0, help="long side of the crops' photos"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check", type=Path, default=CHECK, help="ICDAR folder to check on")
    parser.add_argument("--write", type=Path, default=None, help="save the model with box_pad")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    detector = Detector.load(
        args.model,
        box_pad=0.0,
        num_threads=args.threads,
        verifier=args.verifier,
        verify=args.verifier is not None,
    )
    # The crops sit on small canvases: a long-side scale (e.g. 768 px) would blow them up;
    # use the factor it applies to the photos they were cut from.
    detector.scales = tuple(
        s / args.photo_side if s > MAX_SCALE_FACTOR else s for s in detector.scales
    )
    figures = measure(detector, args.words, args.count, args.seed)
    figures.update(
        {
            "model": str(args.model),
            "verifier": args.verifier,
            "words": args.words.name,
            "count": args.count,
            "seed": args.seed,
            "scales": list(detector.scales),
        }
    )
    if args.check is not None and args.check.is_dir():
        from accuracy import score_folder

        for pad in (0.0, float(figures["box_pad"])):  # type: ignore[arg-type]
            scored = score_folder(detector, args.check, box_pad=pad)
            figures[f"check_box_pad_{pad:g}"] = {
                k: round(scored[k], 4) for k in ("precision", "recall", "hmean")
            }
        figures["check"] = args.check.name
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.write is not None:
        model, extra = load_model_with_extra(resolve_model(args.model)[0])
        for key in PRESETS.values():
            if isinstance(extra.get(key), dict):
                extra[key] = {**extra[key], "box_pad": figures["box_pad"]}
        extra["box_pad_measured_on"] = (
            f"{figures['detected']} of {figures['crops']} {args.words.name} crops "
            f"(seed {args.seed}), benchmarks/box_convention.py"
        )
        save_model(args.write, model, extra)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
