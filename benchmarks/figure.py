"""The README picture: synthloc's default model and RapidOCR's detector on the same photos.

Usage::

    .venv/bin/python benchmarks/figure.py                       # docs/detections_vs_rapidocr.jpg
    .venv/bin/python benchmarks/figure.py --detections runs/compare   # compare.py's saved boxes
    .venv/bin/python benchmarks/figure.py --stems img_1 img_120 --out data/figure.jpg

One row per photo: on the left the default synthloc model's detections
(``Detector.load()`` at its stored setting), on the right RapidOCR's text detector (PP-OCR
DBNet, its default settings). Ground truth is drawn thinly (green: care words, grey: don't
care), detections in red; each tile is labelled with the detector, the photo and its counts
(boxes, and care words found under the ICDAR 2015 protocol).

Which photos: ``--stems`` if given; otherwise ``--count`` (default 4) photos evenly spaced, in
natural name order, over the photos of the ICDAR folder with at least ``--min-words`` (default
3) care words in their ground truth: of those ``total`` photos, the k-th shown is number
``floor(k * total / count)``. The rule reads only the ground truth, never a detector's output,
so the photos are not picked to flatter either side.

Boxes come from ``--detections DIR`` (benchmarks/compare.py ``--save-detections DIR``; every
chosen photo must be in it) or, without it, from running both detectors on the chosen photos
with ``--threads`` threads. The figure is ``--width`` px wide (default 1400) and written as a
JPEG with OpenCV at ``--quality`` (default 85), lowered in steps of 5 (not below 70) while the
file exceeds ``--max-kb`` (default 400, a size a README can carry).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from compare import (
    DEV,
    RAPIDOCR,
    Boxes,
    Photo,
    load_detections,
    load_photos,
    rapidocr_method,
    slug,
    synthloc_method,
)

from synthloc.atomic import write_bytes_atomic
from synthloc.data.icdar import list_icdar_folder, natural_key, read_icdar_gt
from synthloc.evaluate import evaluate_ic15

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "detections_vs_rapidocr.jpg"
SYNTHLOC = "synthloc default"
# BGR colours
CARE_GT = (80, 220, 80)
DONT_CARE_GT = (170, 170, 170)
DETECTION = (40, 40, 235)
BACKGROUND = (255, 255, 255)
LABEL_HEIGHT = 26
MIN_QUALITY = 70  # below this, JPEG blurs the thin GT lines
GAP = 6


def care_word_count(gt_path: Path) -> int:
    """Number of care (not ``###``) words in an ICDAR ground-truth file."""
    return int(np.count_nonzero(~np.asarray(read_icdar_gt(gt_path).ignore, bool)))


def evenly_spaced(stems: Sequence[str], count: int) -> list[str]:
    """``count`` stems spread over ``stems`` (natural order): indices ``k * len // count``."""
    ordered = sorted(stems, key=natural_key)
    count = min(count, len(ordered))
    if count < 1:
        return []
    return [ordered[k * len(ordered) // count] for k in range(count)]


def draw_tile(photo: Photo, boxes: Boxes, label: str, width: int) -> np.ndarray:
    """BGR tile ``width`` px wide: the photo scaled down, its GT and ``boxes`` drawn at the
    tile's scale (so line widths are figure pixels), and a label bar above it."""
    h, w = photo.rgb.shape[:2]
    factor = width / w
    size = (width, round(h * factor))
    image = cv2.resize(photo.bgr, size, interpolation=cv2.INTER_AREA)
    quads, _ = boxes

    def polylines(points: np.ndarray, colour: tuple[int, int, int], thickness: int) -> None:
        if len(points):
            pts = np.rint(points.reshape(-1, 4, 2) * factor).astype(np.int32)
            cv2.polylines(image, list(pts), True, colour, thickness, cv2.LINE_AA)

    ignore = np.asarray(photo.gt.ignore, bool)
    polylines(photo.gt.quads[ignore], DONT_CARE_GT, 1)
    polylines(photo.gt.quads[~ignore], CARE_GT, 1)
    polylines(quads, DETECTION, 2)

    found = evaluate_ic15({photo.stem: photo.gt}, {photo.stem: boxes}).per_image[0]
    text = (
        f"{label}, {photo.stem}: {len(quads)} boxes, "
        f"{found['matched']} of {found['num_gt_care']} GT words found"
    )
    bar = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, np.uint8)
    _put_text(bar, text, 4)
    return np.vstack([bar, image])


def _put_text(bar: np.ndarray, text: str, x: int) -> int:
    """Black text on a label bar from ``x``; returns the x just past its end."""
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    cv2.putText(bar, text, (x, LABEL_HEIGHT - 8), font, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return x + cv2.getTextSize(text, font, font_scale, 1)[0][0]


def legend(width: int) -> np.ndarray:
    """A strip naming the colours."""
    strip = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, np.uint8)
    x = 4
    for colour, text in (
        (CARE_GT, "ground truth"),
        (DONT_CARE_GT, "ground truth, don't care"),
        (DETECTION, "detections"),
    ):
        cv2.line(strip, (x, LABEL_HEIGHT // 2), (x + 24, LABEL_HEIGHT // 2), colour, 3)
        x = _put_text(strip, text, x + 30) + 24
    return strip


def figure(
    photos: Sequence[Photo], columns: Mapping[str, Sequence[Boxes]], width: int
) -> np.ndarray:
    """BGR grid ``width`` px wide: one row per photo, one column per entry of ``columns``
    (label -> boxes per photo), under a legend."""
    tile_width = (width - GAP * (len(columns) - 1)) // len(columns)
    rows = []
    for k, photo in enumerate(photos):
        tiles = [draw_tile(photo, boxes[k], label, tile_width) for label, boxes in columns.items()]
        gap = np.full((tiles[0].shape[0], GAP, 3), BACKGROUND, np.uint8)
        row = tiles[0]
        for tile in tiles[1:]:
            row = np.hstack([row, gap, tile])
        rows.append(row)
    grid_width = rows[0].shape[1]
    parts = [legend(grid_width)]
    for row in rows:
        parts.append(row)
        parts.append(np.full((GAP, grid_width, 3), BACKGROUND, np.uint8))
    return np.vstack(parts[:-1])


def encode_jpeg(image: np.ndarray, quality: int, max_kb: float) -> tuple[bytes, int]:
    """JPEG bytes of BGR ``image`` and the quality used: ``quality``, lowered in steps of 5
    (down to :data:`MIN_QUALITY`) while the file is larger than ``max_kb`` KB."""
    while True:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        if len(buffer) <= max_kb * 1024 or quality - 5 < MIN_QUALITY:
            return buffer.tobytes(), quality
        quality -= 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEV, help="ICDAR folder (photos + gt)")
    parser.add_argument("--stems", nargs="+", default=None, help="photos to show, e.g. img_1")
    parser.add_argument("--count", type=int, default=4, help="photos, evenly spaced")
    parser.add_argument(
        "--min-words", type=int, default=3, help="care words a photo needs to be eligible"
    )
    parser.add_argument("--detections", type=Path, default=None, metavar="DIR")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=1400, help="figure width in pixels")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (at most)")
    parser.add_argument("--max-kb", type=float, default=400.0, help="JPEG size to stay under")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    pairs = list_icdar_folder(args.images)
    available = [image.stem for image, _ in pairs]
    if args.stems is None:
        care_words = {image.stem: care_word_count(gt) for image, gt in pairs}
        eligible = [stem for stem in available if care_words[stem] >= args.min_words]
        stems = evenly_spaced(eligible, args.count)
        if not stems:
            parser.error(f"no photo in {args.images} has {args.min_words} care words")
    else:
        stems = args.stems
    missing = sorted(set(stems) - set(available))
    if missing:
        parser.error(f"no photo with ground truth in {args.images}: {', '.join(missing)}")
    photos = load_photos(args.images, stems=stems)

    columns: dict[str, list[Boxes]] = {}
    if args.detections is not None:
        for label in (SYNTHLOC, RAPIDOCR):
            path = args.detections / f"{slug(label)}.json"
            if not path.is_file():
                parser.error(f"{path}: not found (run compare.py --save-detections first)")
            saved = load_detections(path)
            absent = [stem for stem in stems if stem not in saved]
            if absent:
                parser.error(f"{path}: no detections for {', '.join(absent)}")
            columns[label] = [saved[stem] for stem in stems]
    else:
        rapid = rapidocr_method(args.threads)
        if rapid is None:
            print("error: rapidocr_onnxruntime is not installed (`make bench`)", file=sys.stderr)
            return 1
        ours = synthloc_method(SYNTHLOC, None, args.threads)
        columns[SYNTHLOC] = [ours.detect(photo.rgb) for photo in photos]
        columns[RAPIDOCR] = [rapid.detect(photo.bgr) for photo in photos]

    grid = figure(photos, columns, args.width)
    jpeg, quality = encode_jpeg(grid, args.quality, args.max_kb)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out, jpeg)
    h, w = grid.shape[:2]
    size = len(jpeg) / 1024
    print(f"{', '.join(stems)} -> {args.out} ({w}x{h}, quality {quality}, {size:.0f} KB)")
    if size > args.max_kb:
        print(f"warning: over {args.max_kb:g} KB even at quality {quality}; try a smaller --width")
    return 0


if __name__ == "__main__":
    sys.exit(main())
