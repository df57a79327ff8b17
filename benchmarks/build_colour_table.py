"""Build the engine's learned colour table from real word crops (ICDAR 2015 training words).

Usage: python benchmarks/build_colour_table.py [--words ../shared/data/real/icdar2015_train_words]
           [--out src/synthloc/assets/colour_pairs.npz] [--k 3]

As the paper did with IIIT5K: each crop's pixels inside its word quad are clustered in CIE Lab
(k-means, k=3: text, background and the anti-aliased mix between them). The background is the
cluster that owns most pixels along the quad's border; the text is the other cluster (of at
least 8% of the pixels) farthest from it in Lab. The table holds one (text, background) Lab pair
per usable crop, float16 [N, 2, 3], in an .npz (about 50 KB). Deterministic: k-means starts
from k-means++ seeds drawn with a fixed generator per crop.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from synthloc.atomic import atomic_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src" / "synthloc" / "assets" / "colour_pairs.npz"
)


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 20) -> np.ndarray:
    """Labels int [P] of a k-means clustering of ``points`` float [P, D] (k-means++ start)."""
    centres = [points[int(rng.integers(len(points)))]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        if d2.sum() <= 0:
            break
        centres.append(points[int(rng.choice(len(points), p=d2 / d2.sum()))])
    c = np.array(centres)
    labels = np.zeros(len(points), int)
    for _ in range(iters):
        labels = np.argmin(((points[:, None] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array(
            [points[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(len(c))]
        )
        if np.allclose(new, c):
            break
        c = new
    return labels


def crop_pair(image_rgb: np.ndarray, quad: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    """(text Lab, background Lab) float [2, 3] of one crop, or None when it has no clear text."""
    h, w = image_rgb.shape[:2]
    if h < 6 or w < 6:
        return None
    inside = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(inside, np.round(quad).astype(np.int32), 1)
    if inside.sum() < 30:
        inside[:] = 1
    ring = inside - cv2.erode(inside, np.ones((3, 3), np.uint8), borderValue=0)
    lab = cv2.cvtColor(image_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    points = lab[inside > 0].astype(np.float64)
    rng = np.random.default_rng(seed)
    if len(points) > 4000:
        points_fit = points[rng.choice(len(points), 4000, replace=False)]
    else:
        points_fit = points
    labels_fit = kmeans(points_fit, k, rng)
    centres = np.array([points_fit[labels_fit == j].mean(0) for j in np.unique(labels_fit)])
    if len(centres) < 2:
        return None
    share = np.bincount(labels_fit, minlength=len(centres)) / len(labels_fit)
    ring_points = lab[ring > 0].astype(np.float64)
    ring_labels = np.argmin(((ring_points[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    background = int(np.bincount(ring_labels, minlength=len(centres)).argmax())
    dist = np.linalg.norm(centres - centres[background], axis=1)
    dist[share < 0.08] = -1.0
    dist[background] = -1.0
    text = int(dist.argmax())
    if dist[text] < 5.0:
        return None
    return np.stack([centres[text], centres[background]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=Path, default=SHARED / "real" / "icdar2015_train_words")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    coords = args.words / "coords.txt"
    if not coords.is_file():
        raise SystemExit(f"{coords}: not found (expected the ICDAR 2015 word crops folder)")
    pairs, skipped = [], 0
    for i, line in enumerate(coords.read_text(encoding="utf-8-sig").splitlines()):
        parts = line.strip().split(",")
        if len(parts) != 9:
            continue
        path = args.words / parts[0]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"{path}: unreadable, skipped")
            skipped += 1
            continue
        quad = np.array(parts[1:], np.float64).reshape(4, 2)
        pair = crop_pair(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), quad, args.k, seed=i)
        if pair is None:
            skipped += 1
            continue
        pairs.append(pair)
    table = np.array(pairs, np.float16)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, lab_pairs=table)
    contrast = np.linalg.norm(table[:, 0].astype(float) - table[:, 1].astype(float), axis=1)
    print(
        f"{len(table)} pairs ({skipped} crops skipped) -> {args.out} "
        f"({args.out.stat().st_size / 1024:.0f} KB); text/background Lab distance median "
        f"{np.median(contrast):.1f}, p10 {np.percentile(contrast, 10):.1f}, "
        f"p90 {np.percentile(contrast, 90):.1f}"
    )


if __name__ == "__main__":
    main()
