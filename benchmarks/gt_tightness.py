"""Ground-truth tightness: share of rendered text pixels inside the word quads.

Usage: python benchmarks/gt_tightness.py [--count 100] [--seed 0] [--set KEY=VALUE ...]

Renders ``--count`` images from ../shared/data/backgrounds (procedural defaults without it)
with the default SynthConfig and records every text instance's glyph coverage as drawn
(anti-aliasing and the engine's text blur included, before the camera's whole-image
degradations, which move no pixel). A text pixel is one with coverage >= 0.25; it is inside
when it lies in a word quad grown by one pixel (anti-aliasing). Also prints the
coverage-weighted share. Target: >= 97%.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import yaml

from synthloc.synth import (
    SceneRenderer,
    SynthConfig,
    default_background,
    list_backgrounds,
    load_background,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "backgrounds"


def quad_union(quads: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: pixels whose centre lies in any quad, grown by one pixel."""
    mask = np.zeros(hw, np.uint8)
    for q in quads:
        cv2.fillPoly(mask, [np.round((q - 0.5) * 16).astype(np.int32)], 1, shift=4)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0


def ink_map(log: list[tuple[int, int, np.ndarray]], hw: tuple[int, int]) -> np.ndarray:
    """float32 [H, W]: the maximum glyph coverage drawn at each pixel."""
    ink = np.zeros(hw, np.float32)
    for x0, y0, cov in log:
        h, w = cov.shape
        region = ink[y0 : y0 + h, x0 : x0 + w]
        np.maximum(region, cov[: region.shape[0], : region.shape[1]], out=region)
    return ink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backgrounds", type=Path, default=SHARED)
    parser.add_argument("--set", action="append", default=[], help="SynthConfig KEY=VALUE")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = SynthConfig(**overrides)
    paths = list_backgrounds(args.backgrounds) if args.backgrounds.is_dir() else []
    renderer = SceneRenderer(config, cache_size=4)
    inside = total = 0
    weighted_in = weighted_all = 0.0
    words = 0
    for i in range(args.count):
        rng = np.random.default_rng([args.seed, i])
        if paths:
            bg = load_background(paths[int(rng.integers(len(paths)))], config.size)
        else:
            bg = default_background(rng, config.size)
        renderer.ink_log = []
        sample = renderer.render(bg, rng)
        hw = sample.image.shape[:2]
        ink = ink_map(renderer.ink_log, hw)
        union = quad_union(sample.word_quads, hw)
        text = ink >= 0.25
        inside += int((text & union).sum())
        total += int(text.sum())
        weighted_in += float(ink[union].sum())
        weighted_all += float(ink.sum())
        words += len(sample.words)
    print(
        f"{args.count} images, {words} words: {100 * inside / max(total, 1):.2f}% of text "
        f"pixels (coverage >= 0.25) inside the word quads (+1 px); coverage-weighted "
        f"{100 * weighted_in / max(weighted_all, 1e-9):.2f}%"
    )


if __name__ == "__main__":
    main()
