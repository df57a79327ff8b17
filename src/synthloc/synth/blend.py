"""Putting coloured text into a photo patch: effects, alpha and Poisson blending; pasting a
whole picture (a word crop) through a homography.

All functions work on small patches (the warped text's bounding box plus a margin), never on
the whole image. Patches are float32 [h, w, 3] RGB 0..255; coverage masks float32 [h, w] 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np

from synthloc.geometry import apply_homography
from synthloc.synth.warp import to_cv_pixels, translation

# Text must stay this many pixels inside a patch that is Poisson-blended.
POISSON_MARGIN = 5
# Smallest mask (pixels across) clone_warped clones; smaller pictures are alpha-pasted.
_MIN_CLONE = 8


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


def _warp_to_patch(
    image: np.ndarray, sprite: np.ndarray, to_image: np.ndarray
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
    """``sprite`` warped by ``to_image`` onto the image patch it covers (plus 2 px): the patch
    bounds (x0, y0, x1, y1), the warped picture and its coverage; None if under 2 px."""
    h, w = image.shape[:2]
    sh, sw = sprite.shape[:2]
    corners = apply_homography(to_image, np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], float))
    x0, y0 = (max(int(v) - 2, 0) for v in np.floor(corners.min(axis=0)))
    x1, y1 = int(np.ceil(corners[:, 0].max())) + 2, int(np.ceil(corners[:, 1].max())) + 2
    x1, y1 = min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    to_patch = to_cv_pixels(translation(-x0, -y0) @ to_image)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpPerspective(sprite, to_patch, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(
        np.ones((sh, sw), np.float32), to_patch, size, flags=cv2.INTER_LINEAR
    )
    return (x0, y0, x1, y1), warped, alpha


def _alpha_paste(
    image: np.ndarray,
    bounds: tuple[int, int, int, int],
    warped: np.ndarray,
    alpha: np.ndarray,
    feather: float,
) -> None:
    x0, y0, x1, y1 = bounds
    if feather > 0:
        # Soften inwards only, so nothing spills outside the quad.
        alpha = np.minimum(alpha, cv2.GaussianBlur(alpha, (0, 0), feather))
    a = alpha[:, :, None]
    patch = image[y0:y1, x0:x1]
    image[y0:y1, x0:x1] = patch * (1.0 - a) + warped * a


def paste_warped(
    image: np.ndarray, sprite: np.ndarray, to_image: np.ndarray, feather: float
) -> None:
    """Alpha-paste ``sprite`` (float32 [h, w, 3]) into ``image`` through the homography
    ``to_image`` (sprite pixels -> image pixels), edges softened by ``feather`` px."""
    warp = _warp_to_patch(image, sprite, to_image)
    if warp is not None:
        _alpha_paste(image, *warp, feather)


def clone_warped(image: np.ndarray, sprite: np.ndarray, to_image: np.ndarray) -> None:
    """Paste ``sprite`` (float32 [h, w, 3]) into ``image`` through ``to_image`` by Poisson
    cloning (cv2 NORMAL_CLONE): its gradients are kept and its edge takes the image's values,
    so no seam outlines it. Pictures too small to clone (under ``_MIN_CLONE`` px across once
    warped; OpenCV fails on them) are alpha-pasted instead."""
    warp = _warp_to_patch(image, sprite, to_image)
    if warp is None:
        return
    (x0, y0, x1, y1), warped, alpha = warp
    mask = (alpha > 0.99).astype(np.uint8) * 255
    mask[:1, :] = 0
    mask[-1:, :] = 0
    mask[:, :1] = 0
    mask[:, -1:] = 0
    x, y, bw, bh = cv2.boundingRect(mask)
    if not mask.any() or min(bw, bh) < _MIN_CLONE:
        _alpha_paste(image, *warp, 0.75)
        return
    # The mask's bounding box, centred on ``center`` by integer halving, stays where it is.
    center = (x + bw // 2, y + bh // 2)
    dst = np.clip(image[y0:y1, x0:x1] + 0.5, 0, 255).astype(np.uint8)
    src = np.clip(warped + 0.5, 0, 255).astype(np.uint8)
    image[y0:y1, x0:x1] = cv2.seamlessClone(src, dst, mask, center, cv2.NORMAL_CLONE)
