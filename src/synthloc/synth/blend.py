"""Putting coloured text into a photo patch: effects, alpha and Poisson blending.

All functions work on small patches (the warped text's bounding box plus a margin), never on
the whole image. Patches are float32 [h, w, 3] RGB 0..255; coverage masks float32 [h, w] 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np

# Text must stay this many pixels inside a patch that is Poisson-blended.
POISSON_MARGIN = 5


def shade_like_surface(
    patch: np.ndarray, coverage: np.ndarray, colour: np.ndarray, strength: float
) -> np.ndarray:
    """Per-pixel text colour [h, w, 3] modulated by the surface's local lightness.

    Ink on a surface is lit like the surface: where the surface is darker than its mean under
    the text, so is the ink. ``strength`` in 0..1 (0 = flat colour).
    """
    lum = patch.mean(axis=2)
    weights = coverage + 1e-3
    mean = float((lum * weights).sum() / weights.sum())
    gain = 1.0 + strength * (lum - mean) / max(mean, 1.0)
    return np.clip(colour[None, None, :] * gain[:, :, None], 0, 255)


def add_border(coverage: np.ndarray, thickness: int) -> np.ndarray:
    """Coverage of an outline ``thickness`` px around the glyphs (excluding the glyphs)."""
    k = 2 * thickness + 1
    grown = cv2.dilate(coverage, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return np.clip(grown - coverage, 0.0, 1.0)


def shadow_coverage(coverage: np.ndarray, offset: tuple[int, int], blur: float) -> np.ndarray:
    """A drop shadow: the coverage shifted by ``offset`` (dx, dy) px and blurred."""
    m = np.array([[1, 0, offset[0]], [0, 1, offset[1]]], np.float32)
    shifted = cv2.warpAffine(coverage, m, (coverage.shape[1], coverage.shape[0]))
    if blur > 0:
        shifted = cv2.GaussianBlur(shifted, (0, 0), blur)
    return shifted


def alpha_composite(patch: np.ndarray, layer_rgb: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``patch`` with ``layer_rgb`` painted over it with per-pixel opacity ``coverage``."""
    a = coverage[:, :, None]
    return patch * (1.0 - a) + layer_rgb * a


def poisson_blend(patch: np.ndarray, composite: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Gradient-domain blend of ``composite`` into ``patch`` where the text is (cv2 MIXED_CLONE).

    The text keeps its edges while the surface's own texture and lighting carry through, as
    in the paper. ``coverage`` should be zero within ``POISSON_MARGIN`` px of the patch
    border; the result equals ``patch`` outside the dilated coverage. Returns float32 [h, w, 3].
    """
    binary = (coverage > 0.02).astype(np.uint8) * 255
    # OpenCV erodes the clone mask by 3 px internally; grow it by more so glyph edges stay in.
    grow = 2 * (POISSON_MARGIN - 1) + 1
    mask: np.ndarray = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_RECT, (grow, grow)))
    mask[:1, :] = 0
    mask[-1:, :] = 0
    mask[:, :1] = 0
    mask[:, -1:] = 0
    if not mask.any():
        return patch
    x, y, w, h = cv2.boundingRect(mask)
    # seamlessClone places the mask's bounding box centred on ``center``; integer halving
    # must give back exactly (x, y) so that the text does not move.
    center = (x + w // 2, y + h // 2)
    dst = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    src = np.clip(composite + 0.5, 0, 255).astype(np.uint8)
    # seamlessClone erodes ``mask`` in place; it is a fresh local array here.
    out = cv2.seamlessClone(src, dst, mask, center, cv2.MIXED_CLONE)
    return out.astype(np.float32)
