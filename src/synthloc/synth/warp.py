"""Geometry of text on a surface: homographies from a fronto-parallel text plane to the image.

Every homography here maps text-plane coordinates (origin at a region's centre, about one
image pixel per unit there) to final-image pixel coordinates (continuous, pixel i covers
[i, i + 1)). With a depth map the plane comes from a RANSAC fit; without one, from a moderate
random rotation and perspective.
"""

from __future__ import annotations

import math

import numpy as np

# RANSAC: hypotheses evaluated at once, points used, and the acceptance thresholds.
_RANSAC_HYPOTHESES = 64
_RANSAC_POINTS = 400
_MIN_INLIER_FRACTION = 0.6
_MAX_TILT_DEG = 70.0
_PLANE_SEED = 0x5EED  # RANSAC is part of the (cached, rng-free) analysis, so it seeds itself


def translation(dx: float, dy: float) -> np.ndarray:
    """3x3 homography translating by (dx, dy)."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def to_cv_pixels(homography: np.ndarray) -> np.ndarray:
    """Convert a continuous-coordinate homography to OpenCV's pixel-centre-at-integer indices."""
    return translation(-0.5, -0.5) @ homography @ translation(0.5, 0.5)


def random_homography(
    rng: np.random.Generator,
    centre: tuple[float, float],
    extent: float,
    region_angle_deg: float | None,
    max_rotation_deg: float,
    max_perspective: float,
    jitter_deg: float = 1.0,
) -> np.ndarray:
    """Rotation + mild perspective about ``centre``; text plane origin maps to ``centre``.

    If the region's min-area rectangle is nearly axis-aligned up to ``max_rotation_deg``, its
    angle is used (text follows the surface's edges, give or take a normal ``jitter_deg``);
    otherwise a random angle is drawn.
    ``extent`` (pixels) is the region's half size; the perspective changes the local scale by
    at most ``max_perspective`` (relative) at that distance from the centre.
    """
    theta = math.radians(float(rng.uniform(-max_rotation_deg, max_rotation_deg)))
    if region_angle_deg is not None:
        # cv2 angles are in (0, 90]; the rectangle's side closest to horizontal.
        a = ((region_angle_deg + 45.0) % 90.0) - 45.0
        if abs(a) <= max_rotation_deg and rng.random() < 0.7:
            theta = math.radians(a) + math.radians(float(rng.normal(0.0, jitter_deg)))
    c, s = math.cos(theta), math.sin(theta)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    g = rng.uniform(-max_perspective, max_perspective, size=2) / max(extent, 1.0)
    perspective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [g[0], g[1], 1.0]])
    # A slight anisotropic squeeze: a surface seen obliquely looks foreshortened.
    squeeze = np.diag([float(rng.uniform(0.85, 1.15)), 1.0, 1.0])
    return translation(*centre) @ perspective @ rotation @ squeeze


def fit_plane_homography(
    depth: np.ndarray, mask: np.ndarray, centre: tuple[float, float]
) -> np.ndarray | None:
    """Fit a plane to the depth inside ``mask`` (vectorised RANSAC) and return its homography.

    depth: float32 [H, W] (any positive units, larger = farther); mask: bool [H, W].
    Returns the 3x3 map from a fronto-parallel text plane (origin at ``centre``, text x axis
    as close to image x as the plane allows) to image pixels, or None when the region is not
    planar enough or is seen too obliquely.
    """
    h, w = depth.shape
    ys, xs = np.nonzero(mask)
    if len(xs) < 16:
        return None
    gen = np.random.default_rng(_PLANE_SEED)
    take = gen.choice(len(xs), size=min(_RANSAC_POINTS, len(xs)), replace=False)
    z = depth[ys[take], xs[take]].astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    if ok.sum() < 16:
        return None
    # Pixel centres, in continuous image coordinates.
    px, py, z = xs[take][ok] + 0.5, ys[take][ok] + 0.5, z[ok]
    focal = float(max(h, w))  # about a 53-degree field of view: typical for photos
    cx, cy = w / 2.0, h / 2.0
    points = np.stack([(px - cx) * z / focal, (py - cy) * z / focal, z], axis=1)  # [P, 3]

    triplets = gen.integers(0, len(points), size=(_RANSAC_HYPOTHESES, 3))
    p0, p1, p2 = (points[triplets[:, k]] for k in range(3))
    normals = np.cross(p1 - p0, p2 - p0)  # [T, 3]
    norms = np.linalg.norm(normals, axis=1)
    valid = norms > 1e-12
    if not valid.any():
        return None
    normals = normals[valid] / norms[valid, None]
    offsets = -np.einsum("tc,tc->t", normals, p0[valid])
    residuals = np.abs(points @ normals.T + offsets[None, :])  # [P, T]
    tolerance = 0.02 * float(np.median(z))
    inliers = residuals < tolerance
    best = int(np.argmax(inliers.sum(axis=0)))
    keep = inliers[:, best]
    if keep.mean() < _MIN_INLIER_FRACTION:
        return None
    # Least-squares refit on the inliers (smallest singular vector of centred points).
    pts = points[keep]
    mean = pts.mean(axis=0)
    normal = np.linalg.svd(pts - mean, full_matrices=False)[2][-1]
    if normal[2] > 0:
        normal = -normal  # face the camera
    ray = mean / np.linalg.norm(mean)
    if abs(float(normal @ ray)) < math.cos(math.radians(_MAX_TILT_DEG)):
        return None

    # 3-D point at the region centre: intersect its viewing ray with the plane.
    ray_c = np.array([(centre[0] - cx) / focal, (centre[1] - cy) / focal, 1.0])
    denom = float(normal @ ray_c)
    if abs(denom) < 1e-9:
        return None
    origin = ray_c * float(normal @ mean) / denom
    if origin[2] <= 0:
        return None
    # In-plane axes: u as close to image x as possible, v completing a y-down frame.
    ex = np.array([1.0, 0.0, 0.0])
    u = ex - (ex @ normal) * normal
    if np.linalg.norm(u) < 1e-6:
        return None
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    if v[1] < 0:
        v = -v
    unit = origin[2] / focal  # one text-plane unit ~ one image pixel at the centre
    camera = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    homography = camera @ np.stack([u * unit, v * unit, origin], axis=1)
    return homography / homography[2, 2]
