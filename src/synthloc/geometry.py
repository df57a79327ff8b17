"""Quadrilaterals, rotated boxes, homographies and polygon overlap (numpy only).

Conventions used everywhere in synthloc:

* Image coordinates: x to the right, y **down**, in pixels; a pixel's centre is at
  integer + 0.5 when rasterising, but geometry itself is continuous.
* A quad is ``float [4, 2]`` (or ``[N, 4, 2]`` for a batch), ordered **clockwise on screen
  starting at the top-left** corner: TL, TR, BR, BL.
* A rotated box is ``(cx, cy, w, h, theta)``: centre, width along the reading direction,
  height across it, and ``theta`` the angle of the reading direction in radians measured
  from the +x axis towards +y (clockwise on screen).  Canonical form: ``w >= h`` and
  ``theta`` in ``[-pi/2, pi/2)``.  The corners are
  ``TL = c - w/2 d - h/2 n``, ``TR = c + w/2 d - h/2 n``, ``BR = c + w/2 d + h/2 n``,
  ``BL = c - w/2 d + h/2 n`` with ``d = (cos theta, sin theta)`` and
  ``n = (-sin theta, cos theta)``.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Polygon

_TIE_TOLERANCE = 1e-9


def _as_quads(quads: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``float64 [N, 4, 2]`` and whether the input was a single quad."""
    arr = np.asarray(quads, dtype=np.float64)
    if arr.shape == (4, 2):
        return arr[None], True
    if arr.ndim == 3 and arr.shape[1:] == (4, 2):
        return arr, False
    if arr.ndim == 2 and arr.shape[1] == 8:
        return arr.reshape(-1, 4, 2), False
    raise ValueError(f"expected quads of shape [4, 2], [N, 4, 2] or [N, 8], got {arr.shape}")


def as_quad_array(quads: np.ndarray, what: str = "quads") -> np.ndarray:
    """``float64 [N, 4, 2]`` from quads ``[N, 4, 2]`` or ``[N, 8]`` (empty input -> ``[0, 4, 2]``).

    ``what`` names the input in the error raised for any other shape.
    """
    arr = np.asarray(quads, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4, 2))
    if arr.ndim == 2 and arr.shape[1] == 8:
        arr = arr.reshape(-1, 4, 2)
    if arr.ndim != 3 or arr.shape[1:] != (4, 2):
        raise ValueError(f"{what}: expected quads of shape [N, 4, 2] or [N, 8], got {arr.shape}")
    return arr


def _wrap_half_pi(theta: np.ndarray) -> np.ndarray:
    """Wrap angles of an undirected line into ``[-pi/2, pi/2)``."""
    return (theta + np.pi / 2) % np.pi - np.pi / 2


def polygon_area(quads: np.ndarray, signed: bool = False) -> np.ndarray | float:
    """Shoelace area of quads ``[4, 2]`` or ``[N, 4, 2]``.

    The signed area is positive for clockwise-on-screen order (y down).
    """
    q, single = _as_quads(quads)
    x, y = q[..., 0], q[..., 1]
    x_next, y_next = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    area = 0.5 * np.sum(x * y_next - x_next * y, axis=1)
    if not signed:
        area = np.abs(area)
    return float(area[0]) if single else area


def quad_to_rbox(quads: np.ndarray) -> np.ndarray:
    """Rotated boxes ``[N, 5]`` (or ``[5]``) enclosing quads, independent of point order.

    The reading direction is that of the longer pair of opposite edges (their mean
    direction); ``w`` and ``h`` are the quad's extents along and across it, and the centre
    is the middle of those extents, so a rectangle maps to itself exactly.  For a square
    the direction closer to horizontal wins, so any cyclic shift or reversal of the points
    gives the same box.  Degenerate (zero-length) quads give ``theta = 0`` and zero sizes.
    """
    q, single = _as_quads(quads)
    edges = np.roll(q, -1, axis=1) - q  # [N, 4, 2]: p0->p1, p1->p2, p2->p3, p3->p0
    lengths = np.linalg.norm(edges, axis=2)  # [N, 4]
    pair_a = 0.5 * (lengths[:, 0] + lengths[:, 2])
    pair_b = 0.5 * (lengths[:, 1] + lengths[:, 3])
    # Mean direction of each opposite-edge pair; the second edge of a pair runs backwards.
    dir_a = edges[:, 0] - edges[:, 2]
    dir_b = edges[:, 1] - edges[:, 3]
    theta_a = _wrap_half_pi(np.arctan2(dir_a[:, 1], dir_a[:, 0]))
    theta_b = _wrap_half_pi(np.arctan2(dir_b[:, 1], dir_b[:, 0]))
    scale = np.maximum(np.maximum(pair_a, pair_b), 1.0)
    tie = np.abs(pair_a - pair_b) <= _TIE_TOLERANCE * scale
    use_a = np.where(tie, np.abs(theta_a) <= np.abs(theta_b), pair_a > pair_b)
    theta = np.where(use_a, theta_a, theta_b)
    # A theta of exactly +pi/2 (vertical) is wrapped to -pi/2 above; keep it canonical.
    theta = np.where(np.isfinite(theta), theta, 0.0)

    d = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # [N, 2]
    n = np.stack([-np.sin(theta), np.cos(theta)], axis=1)
    along = np.einsum("nkc,nc->nk", q, d)  # [N, 4]
    across = np.einsum("nkc,nc->nk", q, n)
    a_min, a_max = along.min(axis=1), along.max(axis=1)
    c_min, c_max = across.min(axis=1), across.max(axis=1)
    w = a_max - a_min
    h = c_max - c_min
    mid_along = 0.5 * (a_min + a_max)
    mid_across = 0.5 * (c_min + c_max)
    centre = d * mid_along[:, None] + n * mid_across[:, None]
    boxes = np.stack([centre[:, 0], centre[:, 1], w, h, theta], axis=1)
    return boxes[0] if single else boxes


def rbox_to_quad(boxes: np.ndarray) -> np.ndarray:
    """Corners ``[N, 4, 2]`` (or ``[4, 2]``) of rotated boxes ``[N, 5]`` (or ``[5]``).

    Corners are TL, TR, BR, BL as defined in the module docstring.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    single = arr.ndim == 1
    b = arr[None] if single else arr
    if b.ndim != 2 or b.shape[1] != 5:
        raise ValueError(f"expected rotated boxes of shape [5] or [N, 5], got {arr.shape}")
    cx, cy, w, h, theta = (b[:, i] for i in range(5))
    d = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    n = np.stack([-np.sin(theta), np.cos(theta)], axis=1)
    c = np.stack([cx, cy], axis=1)
    hw, hh = (w / 2)[:, None], (h / 2)[:, None]
    quads = np.stack(
        [c - hw * d - hh * n, c + hw * d - hh * n, c + hw * d + hh * n, c - hw * d + hh * n],
        axis=1,
    )
    return quads[0] if single else quads


def order_quad(quads: np.ndarray) -> np.ndarray:
    """Reorder quad corners clockwise on screen starting from the top-left.

    Points are sorted by angle around their centroid (clockwise with y down), then rotated so
    the first point is the one nearest the rotated box's TL corner (the corner at
    ``-w/2`` along and ``-h/2`` across the reading direction).  The result depends only on
    the set of points, not on their input order.
    """
    q, single = _as_quads(quads)
    centroid = q.mean(axis=1, keepdims=True)
    rel = q - centroid
    angles = np.arctan2(rel[..., 1], rel[..., 0])  # ascending = clockwise on screen
    order = np.argsort(angles, axis=1, kind="stable")
    sorted_q = np.take_along_axis(q, order[..., None], axis=1)
    boxes = quad_to_rbox(sorted_q)
    if boxes.ndim == 1:
        boxes = boxes[None]
    theta = boxes[:, 4]
    d = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    n = np.stack([-np.sin(theta), np.cos(theta)], axis=1)
    score = np.einsum("nkc,nc->nk", sorted_q - centroid, d + n)
    start = np.argmin(score, axis=1)
    idx = (start[:, None] + np.arange(4)[None]) % 4
    out = np.take_along_axis(sorted_q, idx[..., None], axis=1)
    return out[0] if single else out


def apply_homography(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points ``[..., 2]`` through a 3x3 homography; returns the same shape."""
    H = np.asarray(homography, dtype=np.float64)
    if H.shape != (3, 3):
        raise ValueError(f"homography must be 3x3, got {H.shape}")
    pts = np.asarray(points, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    homog = np.concatenate([flat, np.ones((flat.shape[0], 1))], axis=1) @ H.T
    w = homog[:, 2:3]
    w = np.where(np.abs(w) < 1e-12, np.copysign(1e-12, w), w)
    return (homog[:, :2] / w).reshape(pts.shape)


def to_polygon(quad: np.ndarray) -> Polygon:
    """A valid shapely polygon for a quad; self-intersecting quads are repaired."""
    poly = Polygon(np.asarray(quad, dtype=np.float64).reshape(-1, 2))
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
        if not isinstance(poly, Polygon):
            # make_valid may return a collection (e.g. a bow-tie); keep its polygonal area.
            poly = shapely.unary_union([g for g in getattr(poly, "geoms", []) if g.area > 0])
    return poly  # type: ignore[return-value]


def intersection_area(quad_a: np.ndarray, quad_b: np.ndarray) -> float:
    """Area of the intersection of two quads (0 for degenerate ones)."""
    pa, pb = to_polygon(quad_a), to_polygon(quad_b)
    if pa.is_empty or pb.is_empty or pa.area <= 0 or pb.area <= 0:
        return 0.0
    return float(pa.intersection(pb).area)


def polygon_iou(quad_a: np.ndarray, quad_b: np.ndarray) -> float:
    """Intersection over union of two quads; 0 when the union has no area (never NaN)."""
    pa, pb = to_polygon(quad_a), to_polygon(quad_b)
    area_a, area_b = float(pa.area), float(pb.area)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter = float(pa.intersection(pb).area)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(quads_a: np.ndarray, quads_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``[len(a), len(b)]`` of two sets of quads, using shapely's vectorised ops."""
    qa = np.asarray(quads_a, dtype=np.float64).reshape(-1, 4, 2)
    qb = np.asarray(quads_b, dtype=np.float64).reshape(-1, 4, 2)
    if len(qa) == 0 or len(qb) == 0:
        return np.zeros((len(qa), len(qb)))
    pa = np.array([to_polygon(q) for q in qa], dtype=object)
    pb = np.array([to_polygon(q) for q in qb], dtype=object)
    inter = shapely.area(shapely.intersection(pa[:, None], pb[None, :]))
    area_a = shapely.area(pa)[:, None]
    area_b = shapely.area(pb)[None, :]
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where((union > 0) & (area_a > 0) & (area_b > 0), inter / union, 0.0)
    return iou


def quad_bounds(quads: np.ndarray) -> np.ndarray:
    """Axis-aligned bounds ``[N, 4]`` (x_min, y_min, x_max, y_max) of quads ``[N, 4, 2]``."""
    q, single = _as_quads(quads)
    out = np.concatenate([q.min(axis=1), q.max(axis=1)], axis=1)
    return out[0] if single else out


def rotation_matrix(theta: float) -> np.ndarray:
    """2x2 rotation by ``theta`` radians (clockwise on screen, y down)."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def unpad_fraction(fraction: float) -> float:
    """The ``pad_quads`` fraction that undoes padding by ``fraction``: ``pad_quads(pad_quads(q,
    f), unpad_fraction(f))`` is ``q`` again (the padded height is ``1 + 2f`` times the
    original, and both axes moved by ``f`` times the original height)."""
    if not fraction > -0.5:  # also refuses NaN
        raise ValueError(f"pad fraction must be above -0.5, got {fraction}")
    return -fraction / (1.0 + 2.0 * fraction)


def pad_quads(quads: np.ndarray, fraction: float) -> np.ndarray:
    """Quads grown outwards by ``fraction`` of their height on every side (shrunk inwards
    when it is negative).

    The height is the shorter of the quad's two mean opposite-edge lengths (across the
    reading direction for a word); each corner moves by ``fraction * height`` along both of
    the quad's own mean edge directions, so a rectangle stays a rectangle, a sheared or
    perspective quad keeps its shape, and the amount does not depend on point order.
    ``fraction`` must be above -0.5 (at -0.5 the height would vanish); 0 returns a float64
    copy. Returns float64 ``[N, 4, 2]`` (or ``[4, 2]``).
    """
    if not fraction > -0.5:  # also refuses NaN
        raise ValueError(f"pad fraction must be above -0.5, got {fraction}")
    q, single = _as_quads(quads)
    out = q.copy()
    if fraction != 0.0 and len(q):
        along = (q[:, 1] - q[:, 0]) + (q[:, 2] - q[:, 3])  # twice the mean p0->p1 edge
        across = (q[:, 3] - q[:, 0]) + (q[:, 2] - q[:, 1])  # twice the mean p0->p3 edge
        len_along = np.linalg.norm(along, axis=1, keepdims=True)
        len_across = np.linalg.norm(across, axis=1, keepdims=True)
        unit_along = along / np.maximum(len_along, 1e-12)
        unit_across = across / np.maximum(len_across, 1e-12)
        step = fraction * 0.5 * np.minimum(len_along, len_across)  # fraction * height
        # Corner signs along each axis for TL, TR, BR, BL.
        sign_along = np.array([-1.0, 1.0, 1.0, -1.0])[None, :, None]
        sign_across = np.array([-1.0, -1.0, 1.0, 1.0])[None, :, None]
        out += step[:, None] * (
            sign_along * unit_along[:, None, :] + sign_across * unit_across[:, None, :]
        )
    return out[0] if single else out
