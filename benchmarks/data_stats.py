"""How close is the engine's text to real incidental text? Statistics and a distance for each.

Usage: python benchmarks/data_stats.py [--count 200] [--seed 0] [--json out.json]
           [--backgrounds ../shared/data/backgrounds]
           [--real ../shared/data/real/icdar2015_train_gt]
           [--set KEY=VALUE ...]   (SynthConfig overrides, e.g. --set paper=true)

Renders ``--count`` images from the backgrounds with the default SynthConfig (plus ``--set``
overrides) and compares their ground truth with the ICDAR 2015 training GT at the detector's
working scale: real photos (1280x720) are measured at ``--real-side`` (768, the shipped
detector's resize) and synthetic images at the engine's size (512, what training sees).

Statistics (per word unless said): word height (px, log2), aspect ratio (width / height,
log2), angle of the reading direction (|degrees|), boxes per image, legible words per image,
words per line (words grouped into lines by geometry, the same rule for both), and shares of
legible words that are all capitals, hold a digit, and of boxes that are don't-care ("###").
Distances: Wasserstein-1 between the distributions (in the units shown) and, for shares, the
absolute difference. Lower is closer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from scipy.stats import wasserstein_distance

from synthloc.synth import SceneRenderer, SynthConfig, list_backgrounds, load_background

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_SIZE = (1280, 720)


@dataclasses.dataclass
class WordSet:
    """Words of a set of images: quads float [N, 4, 2] at the working scale, texts, image ids."""

    quads: np.ndarray
    texts: list[str]
    image_ids: np.ndarray
    n_images: int


def read_icdar_gt(folder: Path, side: int) -> WordSet:
    """All gt_img_*.txt of ``folder`` scaled so that the 1280-px long side becomes ``side``."""
    scale = side / max(REAL_SIZE)
    quads, texts, ids = [], [], []
    files = sorted(folder.glob("gt_img_*.txt"))
    for i, path in enumerate(files):
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            parts = line.strip().split(",", 8)
            if len(parts) < 9:
                continue
            quads.append(np.array(parts[:8], np.float64).reshape(4, 2) * scale)
            texts.append(parts[8])
            ids.append(i)
    return WordSet(np.array(quads), texts, np.array(ids), len(files))


def render_synthetic(
    config: SynthConfig, backgrounds: Path, count: int, seed: int
) -> tuple[WordSet, float]:
    """Ground truth of ``count`` rendered images (backgrounds drawn with the seed)."""
    paths = list_backgrounds(backgrounds) if backgrounds.is_dir() else []
    renderer = SceneRenderer(config, cache_size=4)
    quads, texts, ids = [], [], []
    start = time.process_time()
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        if paths:
            bg = load_background(paths[int(rng.integers(len(paths)))], config.size)
        else:
            from synthloc.synth import default_background

            bg = default_background(rng, config.size)
        sample = renderer.render(bg, rng)
        quads += list(sample.word_quads.astype(np.float64))
        texts += sample.words
        ids += [i] * len(sample.words)
    seconds = time.process_time() - start
    return WordSet(np.array(quads).reshape(-1, 4, 2), texts, np.array(ids, int), count), seconds


def word_geometry(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Height, width and reading-direction angle (degrees, -90..90) of each quad."""
    top, bottom = quads[:, 1] - quads[:, 0], quads[:, 2] - quads[:, 3]
    left, right = quads[:, 3] - quads[:, 0], quads[:, 2] - quads[:, 1]
    width = 0.5 * (np.linalg.norm(top, axis=1) + np.linalg.norm(bottom, axis=1))
    height = 0.5 * (np.linalg.norm(left, axis=1) + np.linalg.norm(right, axis=1))
    direction = top + bottom
    angle = np.degrees(np.arctan2(direction[:, 1], direction[:, 0]))
    angle = (angle + 90.0) % 180.0 - 90.0
    return height, width, angle


def line_sizes(quads: np.ndarray, image_ids: np.ndarray) -> list[int]:
    """Number of words in each text line: words joined when they sit side by side.

    Two words share a line when their directions differ by < 15 degrees, heights by < 1.6x,
    the second's centre is within 0.5 mean heights of the first's axis, and the gap between
    them along the axis is < 1.5 mean heights. Connected groups are lines.
    """
    height, width, angle = word_geometry(quads)
    centre = quads.mean(axis=1)
    parent = list(range(len(quads)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for img in np.unique(image_ids):
        idx = np.flatnonzero(image_ids == img)
        for ai, a in enumerate(idx):
            rad = np.radians(angle[a])
            axis = np.array([np.cos(rad), np.sin(rad)])
            normal = np.array([-axis[1], axis[0]])
            for b in idx[ai + 1 :]:
                mean_h = 0.5 * (height[a] + height[b])
                d_angle = abs((angle[a] - angle[b] + 90) % 180 - 90)
                ratio = max(height[a], height[b]) / max(min(height[a], height[b]), 1e-6)
                offset = centre[b] - centre[a]
                across = abs(float(offset @ normal))
                gap = abs(float(offset @ axis)) - 0.5 * (width[a] + width[b])
                if d_angle < 15 and ratio < 1.6 and across < 0.5 * mean_h and gap < 1.5 * mean_h:
                    parent[find(int(b))] = find(int(a))
    roots = [find(i) for i in range(len(quads))]
    return list(np.unique(roots, return_counts=True)[1]) if roots else []


def statistics(words: WordSet) -> dict[str, Any]:
    """Distributions (arrays) and shares of one word set."""
    legible = np.array([t != "###" for t in words.texts], bool)
    height, width, angle = word_geometry(words.quads) if len(words.quads) else (np.zeros(0),) * 3
    texts = [t for t, ok in zip(words.texts, legible) if ok]
    letters = [t for t in texts if any(c.isalpha() for c in t)]
    per_image = np.bincount(words.image_ids, minlength=words.n_images)
    legible_per_image = np.bincount(words.image_ids[legible], minlength=words.n_images)
    return {
        "word height px (log2)": np.log2(np.maximum(height[legible], 1.0)),
        "aspect w/h (log2)": np.log2(
            np.maximum(width[legible], 1.0) / np.maximum(height[legible], 1.0)
        ),
        "|angle| deg": np.abs(angle[legible]),
        "boxes per image": per_image.astype(float),
        "legible words per image": legible_per_image.astype(float),
        "words per line": np.array(
            line_sizes(words.quads[legible], words.image_ids[legible]), float
        ),
        "word length (chars)": np.array([len(t) for t in texts], float),
        "share all capitals": float(np.mean([t.upper() == t for t in letters])) if letters else 0.0,
        "share with digits": float(np.mean([any(c.isdigit() for c in t) for t in texts]))
        if texts
        else 0.0,
        "share don't-care": float(1.0 - legible.mean()) if len(legible) else 0.0,
        "share rotated > 10 deg": float(np.mean(np.abs(angle[legible]) > 10))
        if legible.any()
        else 0.0,
        "share images without text": float(np.mean(per_image == 0)),
    }


def compare(real: dict[str, Any], synth: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, r in real.items():
        s = synth[key]
        if isinstance(r, float):
            rows.append({"statistic": key, "real": r, "synth": s, "distance": abs(r - s)})
            continue
        row: dict[str, Any] = {"statistic": key, "real_median": float(np.median(r))}
        row["synth_median"] = float(np.median(s)) if len(s) else float("nan")
        row["real_p10_p90"] = [float(v) for v in np.percentile(r, [10, 90])]
        row["synth_p10_p90"] = (
            [float(v) for v in np.percentile(s, [10, 90])] if len(s) else [float("nan")] * 2
        )
        row["distance"] = float(wasserstein_distance(r, s)) if len(s) else float("inf")
        rows.append(row)
    return rows


def _value(text: str) -> Any:
    return yaml.safe_load(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backgrounds", type=Path, default=SHARED / "backgrounds")
    parser.add_argument("--real", type=Path, default=SHARED / "real" / "icdar2015_train_gt")
    parser.add_argument("--real-side", type=int, default=768)
    parser.add_argument("--set", action="append", default=[], help="SynthConfig KEY=VALUE")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    if not args.real.is_dir():
        raise SystemExit(f"{args.real}: not a folder (ICDAR 2015 training GT expected)")
    overrides = dict(item.split("=", 1) for item in args.set)
    config = SynthConfig(**{k: _value(v) for k, v in overrides.items()})
    real = statistics(read_icdar_gt(args.real, args.real_side))
    synth_words, seconds = render_synthetic(config, args.backgrounds, args.count, args.seed)
    synth = statistics(synth_words)
    rows = compare(real, synth)
    print(
        f"real: {args.real} at long side {args.real_side}; synthetic: {args.count} images at "
        f"{config.size} ({seconds:.0f} CPU s), overrides {overrides or 'none'}"
    )
    print(f"{'statistic':28s} {'real':>16s} {'synthetic':>16s} {'distance':>9s}")
    for row in rows:
        if "real" in row:
            real_s, synth_s = f"{row['real']:.3f}", f"{row['synth']:.3f}"
        else:
            lo, hi = row["real_p10_p90"]
            real_s = f"{row['real_median']:.2f} [{lo:.1f},{hi:.1f}]"
            synth_s = (
                f"{row['synth_median']:.2f} [{row['synth_p10_p90'][0]:.1f},"
                f"{row['synth_p10_p90'][1]:.1f}]"
            )
        print(f"{row['statistic']:28s} {real_s:>16s} {synth_s:>16s} {row['distance']:9.3f}")
    print(
        "(median [p10, p90] for distributions; distance = Wasserstein-1, or |difference| of shares)"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"overrides": overrides, "count": args.count, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
