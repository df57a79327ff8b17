"""Where text can go: smooth, compact regions found from the photo itself.

The photo is over-segmented on a downscaled copy (Felzenszwalb's graph-based method, or the
given label map), and segments are filtered like the paper: min-area-rectangle sides above a
minimum, aspect within a range, an area threshold, rectangle fill above a threshold. A
texture test (mean gradient magnitude inside the segment) keeps text on smooth surfaces, and
strong-edge pixels are removed from every region so text never straddles an edge. Segments
from several Felzenszwalb scales are pooled (the paper pools several thresholds of one
hierarchy). A large smooth segment that fails only the fill test (sky above a ragged tree
line) contributes its compact band of well-covered rows if that band passes every test.
With a depth map, each region also gets a plane (see :mod:`synthloc.synth.warp`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.segmentation import felzenszwalb

from synthloc.synth.backgrounds import Background
from synthloc.synth.config import SynthConfig
from synthloc.synth.warp import fit_plane_homography

# Pixels trimmed from region borders (final-image pixels) so text keeps off region edges.
_EDGE_MARGIN = 3


@dataclass
class Region:
    """A surface that can hold text.

    mask: bool [H, W] in final-image pixels (already shrunk away from the region's edges).
    centre: (x, y) of the region's min-area rectangle, final-image pixels.
    size: (w, h) of that rectangle; angle: its cv2 angle in degrees.
    plane: 3x3 homography from a fronto-parallel text plane (origin at ``centre``, units of
        about one image pixel there) to the image, from the depth map; None without depth.
    sign_only: text placed here goes on a painted sign panel (a surface made up where the
        photo has none, see ``SynthConfig.fallback_signs``).
    """

    mask: np.ndarray
    centre: tuple[float, float]
    size: tuple[float, float]
    angle: float
    plane: np.ndarray | None = None
    sign_only: bool = False


@dataclass
class SceneAnalysis:
    """Per-background analysis, cached by the renderer (does not depend on any rng)."""

    regions: list[Region]


def _gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    # Sobel 3x3 weights sum to 4 per side; normalise so a unit step gives about 1.
    return np.sqrt(gx * gx + gy * gy) / 4.0


def segment(image_small: np.ndarray, scale: float, min_region_area: float) -> np.ndarray:
    """Over-segmentation labels int32 [h, w] of a small uint8 RGB image."""
    area = image_small.shape[0] * image_small.shape[1]
    min_size = max(int(0.5 * min_region_area * area), 8)
    labels = felzenszwalb(image_small, scale=scale, sigma=0.8, min_size=min_size)
    return labels.astype(np.int32)


def analyse_background(background: Background, config: SynthConfig) -> SceneAnalysis:
    """Find text regions in a background (deterministic; ~10 ms per scale at 512 px)."""
    image = background.image
    h, w = image.shape[:2]
    scale = min(1.0, config.segmentation_side / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    if background.seg is not None:
        label_maps = [
            cv2.resize(
                background.seg.astype(np.float32), (sw, sh), interpolation=cv2.INTER_NEAREST
            ).astype(np.int32)
        ]
    else:
        label_maps = [segment(small, s, config.min_region_area) for s in config.segmentation_scales]
    # Texture is measured at full resolution (downscaling would average fine texture such as
    # grass or gravel away), then pooled to the segmentation grid as a mean per cell.
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    grad_full = _gradient_magnitude(gray)
    grad = cv2.resize(grad_full, (sw, sh), interpolation=cv2.INTER_AREA)
    # Strong edges (and a pixel around them) are never covered by text.
    edges = cv2.dilate(
        (grad_full > config.edge_gradient).astype(np.uint8), np.ones((3, 3), np.uint8)
    )
    regions: list[Region] = []
    accepted: list[np.ndarray] = []
    for labels in label_maps:
        flat = labels.ravel()
        offset = int(flat.min())
        counts = np.bincount(flat - offset)
        for region, mask_small in _filter_regions(
            labels, grad, edges, counts, offset, background, config, 1.0 / scale, small
        ):
            # Pooled scales often find the same segment twice; keep one copy.
            if any(_iou(mask_small, other) > 0.8 for other in accepted):
                continue
            accepted.append(mask_small)
            regions.append(region)
    return SceneAnalysis(regions=regions)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = int(np.count_nonzero(a & b))
    union = int(np.count_nonzero(a | b))
    return inter / union if union else 0.0


def _filter_regions(
    labels: np.ndarray,
    grad: np.ndarray,
    edges: np.ndarray,
    counts: np.ndarray,
    offset: int,
    background: Background,
    config: SynthConfig,
    inv: float,
    small: np.ndarray,
) -> list[tuple[Region, np.ndarray]]:
    """Apply the paper's region tests; ``inv`` is final pixels per small-image pixel.

    ``small`` is the uint8 RGB image at the segmentation scale (for the sky test).

    Returns each accepted region with its bool mask at the segmentation scale.
    """
    sh, sw = labels.shape
    min_area_small = config.min_region_area * sh * sw
    kernel = np.ones((3, 3), np.uint8)
    regions: list[tuple[Region, np.ndarray]] = []
    for idx in np.flatnonzero(counts >= min_area_small):
        label = int(idx) + offset
        if background.seg is not None and label == 0:
            continue  # label 0 conventionally means "no region" in label maps
        # Erode by one small pixel: segment borders are where the edges are.
        mask_small = cv2.erode((labels == label).astype(np.uint8), kernel, borderValue=0)
        verdict = _test_region(mask_small, grad, edges, background, config, inv)
        if (
            config.sky_filter
            and isinstance(verdict, Region)
            and looks_like_sky(small, mask_small, grad)
        ):
            verdict = "sky"
        if verdict == "fill" and mask_small.sum() >= 4 * min_area_small:
            # A large smooth segment with a ragged edge (sky over trees, a wall behind
            # objects) fails the fill test as a whole; its compact band of full rows is
            # itself a valid region by the same tests.
            band = _compact_band(mask_small)
            if band is not None:
                mask_small = band
                verdict = _test_region(mask_small, grad, edges, background, config, inv)
                if (
                    config.sky_filter
                    and isinstance(verdict, Region)
                    and looks_like_sky(small, band, grad)
                ):
                    verdict = "sky"
        if isinstance(verdict, Region):
            regions.append((verdict, mask_small > 0))
    return regions


def looks_like_sky(small: np.ndarray, mask_small: np.ndarray, grad: np.ndarray) -> bool:
    """True for a smooth region that looks like sky, where text would float.

    Blue (clear sky, also between clouds): starting in the top 40% of the photo. Bright and
    colourless (overcast sky, haze): reaching the top edge across at least 30% of the width.
    Either way not reaching the bottom fifth (that is a wall or a backdrop).
    small: uint8 RGB [h, w]; mask_small: 0/1 [h, w]; grad: mean gradient per small pixel.
    """
    inside = mask_small > 0
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    sh, sw = mask_small.shape
    if len(rows) == 0 or rows[-1] > 0.8 * sh or float(grad[inside].mean()) > 0.03:
        return False
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[inside]
    lightness, a, b = (float(v) for v in np.median(lab, axis=0))
    if lightness > 30 and b < -6 and b < -abs(a):
        return bool(rows[0] < 0.4 * sh)
    if lightness > 70 and float(np.hypot(a, b)) < 12:
        return bool(rows[0] <= 0.05 * sh and cols[-1] - cols[0] + 1 >= 0.3 * sw)
    return False


def _compact_band(mask_small: np.ndarray) -> np.ndarray | None:
    """The longest run of rows that are mostly covered across the segment's extent."""
    cols = np.flatnonzero(mask_small.any(axis=0))
    span = cols[-1] - cols[0] + 1
    full = mask_small.sum(axis=1) >= 0.7 * span
    best_len, best_start, run = 0, 0, 0
    for row, ok in enumerate(full):
        run = run + 1 if ok else 0
        if run > best_len:
            best_len, best_start = run, row - run + 1
    if best_len < 3:
        return None
    band = np.zeros_like(mask_small)
    band[best_start : best_start + best_len] = mask_small[best_start : best_start + best_len]
    return band


def _test_region(
    mask_small: np.ndarray,
    grad: np.ndarray,
    edges: np.ndarray,
    background: Background,
    config: SynthConfig,
    inv: float,
) -> Region | str:
    """A :class:`Region` if ``mask_small`` passes every test, else the failed test's name."""
    h, w = background.image.shape[:2]
    sh, sw = mask_small.shape
    area_small = int(mask_small.sum())
    if area_small < config.min_region_area * sh * sw:
        return "area"
    inside = mask_small > 0
    if float(grad[inside].mean()) > config.max_region_gradient:
        return "gradient"
    points = cv2.findNonZero(mask_small)
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(points)
    rw, rh = (rw + 1) * inv, (rh + 1) * inv
    if min(rw, rh) < config.min_region_side:
        return "side"
    # Aspect = width / height of the rectangle, taking as "width" the side closer to
    # horizontal (cv2 gives the angle of the side of length rw): text reads across it.
    folded = angle % 180.0
    horizontal_rw = folded <= 45.0 or folded >= 135.0
    aspect = (rw / rh) if horizontal_rw else (rh / rw)
    if not config.min_region_aspect <= aspect <= config.max_region_aspect:
        return "aspect"
    fill = area_small * inv * inv / max(rw * rh, 1e-6)
    if fill < config.min_rect_fill:
        return "fill"
    # Shape tests use the segment; text placement also avoids its internal edges.
    mask = cv2.resize(mask_small, (w, h), interpolation=cv2.INTER_NEAREST) & (1 - edges)
    mask = cv2.erode(mask, np.ones((2 * _EDGE_MARGIN + 1,) * 2, np.uint8), borderValue=0)
    if not mask.any():
        return "empty"
    centre = ((cx + 0.5) * inv, (cy + 0.5) * inv)
    plane = None
    if background.depth is not None:
        plane = fit_plane_homography(background.depth, mask > 0, centre)
        if plane is None:
            return "planarity"  # not planar: text would not look printed on it
    return Region(mask=mask > 0, centre=centre, size=(rw, rh), angle=float(angle), plane=plane)
