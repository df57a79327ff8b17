"""Rectification: word candidates (quads in image pixels) -> fixed-size crops, and back.

Each candidate quad (``[4, 2]``, clockwise from top-left, pixel corners at integers as in
:mod:`synthloc.geometry`) is expanded by a context margin of ``context`` times its height on
every side, then warped by a perspective transform onto a ``32 x 128`` crop so that its aspect
ratio is kept: the expanded region fills the crop's height (or its width, when it is wider than
4:1) and is centred; the rest of the crop is zero padding (black).

The mapping is built on the unit square: ``G`` takes ``(0,0), (1,0), (1,1), (0,1)`` to the
quad's corners and ``A`` takes the expanded unit square ``[-mx, 1+mx] x [-my, 1+my]`` to the
crop's content rectangle, so crop pixels map to image pixels by ``G @ inv(A)``. The verifier
predicts the refined quad's corners *in crop coordinates*, as offsets from the candidate's
corners there (divided by the crop width for x, its height for y); :func:`apply_offsets` maps
them back through the same homography, which stays exact for perspective-distorted quads.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synthloc.verify.model import CROP_HEIGHT, CROP_WIDTH

UNIT_SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
CROP_SIZE = np.array([CROP_WIDTH, CROP_HEIGHT], dtype=np.float64)
# Quads with a side shorter than this (pixels) cannot be rectified meaningfully.
MIN_SIDE = 1.0


@dataclass
class Rectification:
    """How ``K`` candidates map to their crops.

    crop_to_image: float64 ``[K, 3, 3]``, homographies from crop pixels to image pixels.
    quads_in_crop: float64 ``[K, 4, 2]``, each candidate's corners in its crop.
    content: float64 ``[K, 4]``, the crop's content rectangle ``x0, y0, x1, y1`` (the image of
        the expanded quad; outside it the crop is padding).
    valid: bool ``[K]``; False for degenerate quads (a side under ``MIN_SIDE`` pixels or a
        non-invertible mapping), whose crops are black and whose mapping is the identity.
    """

    crop_to_image: np.ndarray
    quads_in_crop: np.ndarray
    content: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.valid)


def _apply(homographies: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[K, 3, 3]`` homographies applied to ``[K, P, 2]`` points (one set per homography)."""
    ones = np.ones(points.shape[:-1] + (1,))
    mapped = np.einsum("kij,kpj->kpi", homographies, np.concatenate([points, ones], axis=-1))
    w = mapped[..., 2:3]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return mapped[..., :2] / w


def rectification(quads: np.ndarray, context: float) -> Rectification:
    """The crop geometry of candidate ``quads`` ``[K, 4, 2]`` (image pixels)."""
    q = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    k = len(q)
    widths = 0.5 * (
        np.linalg.norm(q[:, 1] - q[:, 0], axis=1) + np.linalg.norm(q[:, 2] - q[:, 3], axis=1)
    )
    heights = 0.5 * (
        np.linalg.norm(q[:, 3] - q[:, 0], axis=1) + np.linalg.norm(q[:, 2] - q[:, 1], axis=1)
    )
    valid = (widths >= MIN_SIDE) & (heights >= MIN_SIDE) & np.isfinite(q).all(axis=(1, 2))
    safe_w = np.where(valid, widths, 1.0)
    safe_h = np.where(valid, heights, 1.0)
    margin_y = np.full(k, float(context))
    margin_x = context * safe_h / safe_w
    expanded_w = safe_w + 2.0 * context * safe_h  # pixels of the expanded region
    expanded_h = safe_h * (1.0 + 2.0 * context)
    fit = np.minimum(CROP_WIDTH / expanded_w, CROP_HEIGHT / expanded_h)
    content_w, content_h = expanded_w * fit, expanded_h * fit
    left, top = (CROP_WIDTH - content_w) / 2.0, (CROP_HEIGHT - content_h) / 2.0
    # A: unit-square coordinates -> crop pixels (an axis-aligned scale and shift).
    unit_to_crop = np.zeros((k, 3, 3))
    unit_to_crop[:, 0, 0] = content_w / (1.0 + 2.0 * margin_x)
    unit_to_crop[:, 0, 2] = left + margin_x * unit_to_crop[:, 0, 0]
    unit_to_crop[:, 1, 1] = content_h / (1.0 + 2.0 * margin_y)
    unit_to_crop[:, 1, 2] = top + margin_y * unit_to_crop[:, 1, 1]
    unit_to_crop[:, 2, 2] = 1.0
    crop_to_image = np.tile(np.eye(3), (k, 1, 1))
    for i in np.flatnonzero(valid):
        unit_to_image = cv2.getPerspectiveTransform(
            UNIT_SQUARE.astype(np.float32), q[i].astype(np.float32)
        ).astype(np.float64)
        mapping = unit_to_image @ np.linalg.inv(unit_to_crop[i])
        if np.isfinite(mapping).all() and abs(np.linalg.det(mapping)) > 1e-12:
            crop_to_image[i] = mapping
        else:
            valid[i] = False
    quads_in_crop = _apply(unit_to_crop, np.broadcast_to(UNIT_SQUARE, (k, 4, 2)))
    content = np.stack([left, top, left + content_w, top + content_h], axis=1)
    return Rectification(crop_to_image, quads_in_crop, content, valid)


# cv2 puts pixel centres at integers; synthloc at half-integers (corners at integers).
_TO_CORNER = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
_TO_CENTRE = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


def rectify(
    image: np.ndarray, quads: np.ndarray, context: float, *, replicate_border: bool = False
) -> tuple[np.ndarray, Rectification]:
    """Crops uint8 ``[K, 32, 128, 3]`` of ``quads`` ``[K, 4, 2]`` in ``image`` (uint8
    ``[H, W, 3]``), with their :class:`Rectification`. The padding that keeps the aspect
    ratio is black; so are pixels outside the image, unless ``replicate_border`` (for tight
    word crops, whose missing context would otherwise be a black frame that no detection in a
    photo has)."""
    geometry = rectification(quads, context)
    k = len(geometry)
    crops = np.zeros((k, CROP_HEIGHT, CROP_WIDTH, 3), dtype=np.uint8)
    xs = np.arange(CROP_WIDTH) + 0.5  # crop pixel centres
    ys = np.arange(CROP_HEIGHT) + 0.5
    for i in np.flatnonzero(geometry.valid):
        matrix = _TO_CENTRE @ geometry.crop_to_image[i] @ _TO_CORNER
        warped = cv2.warpPerspective(
            image,
            matrix,
            (CROP_WIDTH, CROP_HEIGHT),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE if replicate_border else cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        x0, y0, x1, y1 = geometry.content[i]
        inside = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
        crops[i] = np.where(inside[..., None], warped, 0)
    return crops, geometry


def crop_offsets(geometry: Rectification, target_quads: np.ndarray) -> np.ndarray:
    """Training targets: float32 ``[K, 8]`` offsets that take each candidate to its
    ``target_quads[k]`` (image pixels), in crop coordinates over the crop size."""
    targets = np.asarray(target_quads, dtype=np.float64).reshape(-1, 4, 2)
    image_to_crop = np.linalg.inv(geometry.crop_to_image)
    in_crop = _apply(image_to_crop, targets)
    offsets = (in_crop - geometry.quads_in_crop) / CROP_SIZE
    return offsets.reshape(-1, 8).astype(np.float32)


def apply_offsets(geometry: Rectification, offsets: np.ndarray) -> np.ndarray:
    """Refined quads float64 ``[K, 4, 2]`` in image pixels from predicted ``offsets``
    ``[K, 8]`` (the inverse of :func:`crop_offsets`)."""
    moved = (
        geometry.quads_in_crop + np.asarray(offsets, dtype=np.float64).reshape(-1, 4, 2) * CROP_SIZE
    )
    return _apply(geometry.crop_to_image, moved)
