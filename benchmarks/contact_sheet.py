"""Tile preview images (e.g. ``synthloc synth ... --preview 16`` output) into one JPEG.

Usage: python benchmarks/contact_sheet.py OUT/preview docs/engine_previews.jpg [--columns 4]
           [--tile 384] [--quality 80]

Each image is scaled to fit a ``--tile`` px square cell (aspect kept, grey padding), in file
name order. The JPEG is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from synthloc.atomic import write_bytes_atomic


def contact_sheet(images: list[np.ndarray], columns: int, tile: int) -> np.ndarray:
    """BGR uint8 sheet of ``images`` (BGR uint8), ``columns`` per row, ``tile`` px cells."""
    rows = (len(images) + columns - 1) // columns
    gap = 4
    sheet = np.full((rows * (tile + gap) + gap, columns * (tile + gap) + gap, 3), 128, np.uint8)
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        scale = tile / max(h, w)
        small = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, columns)
        y = gap + r * (tile + gap) + (tile - small.shape[0]) // 2
        x = gap + c * (tile + gap) + (tile - small.shape[1]) // 2
        sheet[y : y + small.shape[0], x : x + small.shape[1]] = small
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--tile", type=int, default=384)
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args()
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    if not files:
        raise SystemExit(f"{args.folder}: no .png or .jpg images")
    images = []
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            print(f"{path}: unreadable, skipped")
            continue
        images.append(img)
    sheet = contact_sheet(images, args.columns, args.tile)
    ok, buf = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
    if not ok:
        raise SystemExit(f"{args.out}: JPEG encoding failed")
    write_bytes_atomic(args.out, buf.tobytes())
    print(f"{len(images)} images -> {args.out} ({len(buf) / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
