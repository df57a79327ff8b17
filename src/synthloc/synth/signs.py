"""Sign-like surfaces: a painted panel, plate, label or poster behind a text instance.

Much real incidental text sits on signs, not on bare walls: a flat panel of one colour,
often with a frame, seen in perspective. The panel is a rectangle around the text in the
text plane, warped into the image by the text's own homography, so it shares the text's
perspective. It is painted over the photo with a little of the surface's fine texture and a
gentle lighting gradient, so it reads as a physical object rather than a sticker.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synthloc.geometry import apply_homography


@dataclass
class SignPanel:
    """A panel around text, in rectified-canvas coordinates (the text plane).

    rect: (x0, y0, x1, y1) of the panel; border: frame width in the same units (0 = none).
    """

    rect: tuple[float, float, float, float]
    border: float


def panel_padding(rng: np.random.Generator, em: float) -> tuple[int, int, float]:
    """Margins (x, y) around the text and a frame width (0 for none), for an ``em``-px font."""
    pad_x = max(2, round(em * float(rng.uniform(0.25, 0.9))))
    pad_y = max(2, round(em * float(rng.uniform(0.15, 0.5))))
    border = float(max(1.0, em * float(rng.uniform(0.06, 0.15)))) if rng.random() < 0.4 else 0.0
    return pad_x, pad_y, min(border, 0.5 * min(pad_x, pad_y))


def _rect_quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def panel_quads(panel: SignPanel, to_image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Outer quad and (with a frame) inner quad of the panel in image pixels, float [4, 2]."""
    x0, y0, x1, y1 = panel.rect
    outer = apply_homography(to_image, _rect_quad(x0, y0, x1, y1))
    if panel.border <= 0:
        return outer, None
    b = panel.border
    return outer, apply_homography(to_image, _rect_quad(x0 + b, y0 + b, x1 - b, y1 - b))


def quad_coverage(quad: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Coverage float32 [h, w] 0..1 of a convex quad in continuous pixels (4x4 supersampled)."""
    h, w = shape
    layer = np.zeros((4 * h, 4 * w), np.uint8)
    # Sub-pixel centres of the 4x grid sit at (i + 0.5) / 4 in continuous coordinates.
    points = np.round((np.asarray(quad, np.float64) * 4 - 0.5) * 16).astype(np.int32)
    cv2.fillConvexPoly(layer, points, 255, lineType=cv2.LINE_8, shift=4)
    small = cv2.resize(layer, (w, h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def paint_panel(
    patch: np.ndarray,
    outer: np.ndarray,
    inner: np.ndarray | None,
    panel_rgb: np.ndarray,
    border_rgb: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``patch`` (float32 [h, w, 3]) with the panel painted on; quads in patch pixels."""
    h, w = patch.shape[:2]
    gradient_dir = rng.normal(size=2)
    gradient_dir /= max(float(np.linalg.norm(gradient_dir)), 1e-6)
    strength = float(rng.uniform(0.0, 0.2))
    texture_keep = float(rng.uniform(0.2, 0.6))
    opacity = float(rng.uniform(0.92, 1.0))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (xs * gradient_dir[0] + ys * gradient_dir[1]) / max(h, w, 1)
    ramp -= float(ramp.mean())
    shade = (1.0 + strength * ramp)[:, :, None]
    detail = patch - cv2.GaussianBlur(patch, (0, 0), 2.0)
    outer_cov = quad_coverage(outer, (h, w))
    if inner is None:
        layer = np.broadcast_to(panel_rgb, patch.shape) * shade
    else:
        inner_cov = quad_coverage(inner, (h, w))[:, :, None]
        layer = (panel_rgb * inner_cov + border_rgb * (1.0 - inner_cov)) * shade
    layer = np.clip(layer + texture_keep * detail, 0, 255)
    a = (outer_cov * opacity)[:, :, None]
    return np.asarray(patch * (1.0 - a) + layer * a, np.float32)
