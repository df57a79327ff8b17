"""Text colours chosen for contrast with the surface (CIE Lab distance), plus effect colours."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """float RGB 0..255 [..., 3] -> CIE Lab (L 0..100, a/b about -128..127) [..., 3]."""
    arr = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
    lab = cv2.cvtColor(arr, cv2.COLOR_RGB2LAB)
    return lab.reshape(np.shape(rgb))


def _candidate_colours(rng: np.random.Generator, n: int, palette: np.ndarray | None) -> np.ndarray:
    """Plausible ink/paint colours, float32 [n, 3] RGB 0..255.

    About half are neutral (black, white, greys: most real text); a quarter come from the
    photo's own colours (``palette``: float [K, 3] RGB, e.g. sampled pixels), so text matches
    the scene's palette; the rest are hues of moderate saturation (signs, paint).
    """
    kind = rng.choice(3, size=n, p=[0.5, 0.25, 0.25])
    hue = rng.uniform(0, 180, n)
    neutral = kind == 0
    sat = np.where(neutral, rng.uniform(0, 0.06, n), rng.uniform(0.3, 0.85, n)) * 255
    val = np.where(
        neutral,
        rng.choice([0.06, 0.15, 0.3, 0.6, 0.85, 0.96], n) + rng.uniform(-0.04, 0.04, n),
        rng.uniform(0.25, 0.95, n),
    )
    hsv = np.stack([hue, sat, np.clip(val, 0, 1) * 255], axis=1).astype(np.uint8)
    colours = cv2.cvtColor(hsv[:, None, :], cv2.COLOR_HSV2RGB)[:, 0, :].astype(np.float32)
    if palette is not None and len(palette):
        from_photo = np.flatnonzero(kind == 1)
        picks = rng.integers(len(palette), size=len(from_photo))
        colours[from_photo] = np.asarray(palette, np.float32)[picks]
    return colours


def pick_text_colour(
    rng: np.random.Generator,
    surface_rgb: np.ndarray,
    min_distance: float,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """A colour (float32 [3] RGB 0..255) at Lab distance >= ``min_distance`` from the surface.

    Falls back to the farthest candidate (black or white are always offered) if none qualifies.
    """
    candidates = np.concatenate(
        [
            _candidate_colours(rng, 24, palette),
            np.array([[15, 15, 15], [245, 245, 245]], np.float32),
        ]
    )
    surface_lab = rgb_to_lab(np.asarray(surface_rgb, np.float32)[None])[0]
    dist = np.linalg.norm(rgb_to_lab(candidates) - surface_lab[None], axis=1)
    ok = np.flatnonzero(dist[:-2] >= min_distance)
    if len(ok):
        return candidates[int(rng.choice(ok))]
    return candidates[int(np.argmax(dist))]


def effect_colour(
    rng: np.random.Generator, text_rgb: np.ndarray, surface_rgb: np.ndarray
) -> np.ndarray:
    """A border colour: contrasting with the text, usually a dark or light neutral."""
    text_l = float(rgb_to_lab(np.asarray(text_rgb, np.float32)[None])[0, 0])
    if rng.random() < 0.7:
        level = 20.0 if text_l > 50 else 235.0
        return np.full(3, level, np.float32) + rng.uniform(-10, 10, 3).astype(np.float32)
    # Otherwise a tint of the surface pushed away from the text's lightness.
    factor = 0.35 if text_l > 50 else 1.8
    return np.clip(np.asarray(surface_rgb, np.float32) * factor, 0, 255)


COLOUR_TABLE = Path(__file__).resolve().parent.parent / "assets" / "colour_pairs.npz"


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab [..., 3] -> float RGB 0..255 [..., 3] (out-of-gamut values clipped)."""
    arr = np.asarray(lab, np.float32).reshape(-1, 1, 3)
    rgb = cv2.cvtColor(arr, cv2.COLOR_LAB2RGB).reshape(np.shape(lab))
    return np.clip(rgb * 255.0, 0, 255).astype(np.float32)


class ColourPairs:
    """(text, background) colour pairs learned from real word crops, in CIE Lab.

    The table (``lab_pairs``: float [N, 2, 3], text then background) is built by
    ``benchmarks/build_colour_table.py`` from the ICDAR 2015 training word crops and shipped
    in the package.
    """

    def __init__(self, path: str | Path = COLOUR_TABLE):
        try:
            with np.load(path) as data:
                pairs = np.asarray(data["lab_pairs"], np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the colour table ({exc})") from exc
        if pairs.ndim != 3 or pairs.shape[1:] != (2, 3) or len(pairs) == 0:
            raise ValueError(f"{path}: expected lab_pairs [N, 2, 3], got {pairs.shape}")
        self.text_lab = pairs[:, 0]
        self.background_lab = pairs[:, 1]

    def pick(
        self,
        rng: np.random.Generator,
        surface_rgb: np.ndarray,
        min_distance: float,
        nearest: int = 24,
    ) -> np.ndarray:
        """A text colour (float32 [3] RGB 0..255) for text on ``surface_rgb``.

        The pairs whose background is nearest the surface in Lab are candidates; one is drawn
        with ``rng`` and its text colour moved by the surface's offset from that background,
        so the real pair's contrast is kept. Pairs giving less than ``min_distance`` from the
        surface are skipped (the highest-contrast candidate is the fallback).
        """
        surface = rgb_to_lab(np.asarray(surface_rgb, np.float32)[None])[0]
        dist = np.linalg.norm(self.background_lab - surface[None], axis=1)
        order = np.argsort(dist, kind="stable")[: 4 * nearest]
        text = self.text_lab[order] + (surface[None] - self.background_lab[order])
        text[:, 0] = np.clip(text[:, 0], 0.0, 100.0)
        contrast = np.linalg.norm(text - surface[None], axis=1)
        ok = np.flatnonzero(contrast >= min_distance)[:nearest]
        choice = int(rng.choice(ok)) if len(ok) else int(np.argmax(contrast))
        return lab_to_rgb(text[choice])
