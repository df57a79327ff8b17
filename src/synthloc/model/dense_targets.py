"""Word quads <-> dense FCRN targets, and the decoder that merges a word's many predictions.

Grid as in ``targets.py``: cell ``(row, col)`` has its centre at ``((col + 0.5) s, (row + 0.5) s)``
for output stride ``s``.  A word's rotated box (``geometry.quad_to_rbox``: centre, width along
the reading direction, height across it, angle ``theta``) has a *core*: the box shrunk by
``shrink * height`` on every side (EAST's rule, the height being a word's short side), at
least the single cell holding the word's centre.  Every cell whose centre lies in the core
predicts the whole word, with seven channels

    0 left   = log(d_left / s)     distances from the cell centre to the box's four sides,
    1 top    = log(d_top / s)      measured along the word's axes (left/right along the
    2 right  = log(d_right / s)    reading direction), in log cells: scale-invariant, and
    3 bottom = log(d_bottom / s)   always positive once decoded
    4 cos    = cos(theta)          theta in [-pi/2, pi/2), as in targets.py
    5 sin    = sin(theta)
    6 c      = 1                   (0 on negative cells)

Masks (``GridTargets`` of ``targets.py``):

* ``positive``: cells in a trained word's core.  Where cores overlap, the smaller word owns
  the cell (it is the one that would otherwise lose every cell).
* ``ignore``: padding cells; the band between a trained word's core and its outline (a
  cell there sees part of the word, and punishing it either way blurs the core's edge);
  every cell that a don't-care or tiny word (height < ``min_size``) or a word whose centre is
  outside the valid area overlaps; never a positive cell.

The centre cell of a word too small to have a core cell is made positive with its distances
measured from the nearest point of the box (so they stay positive); decoding it is then off by
at most half a cell.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from synthloc.geometry import quad_to_rbox, rbox_to_quad
from synthloc.model.targets import (
    NUM_CHANNELS,
    GridTargets,
    _cell_range,
    _cells_touched,
    _to_numpy,
    confidence_map,
    prepare_encoding,
)

DEFAULT_SHRINK = 0.3
# Smallest side distance encoded (pixels): a cell centre on a side would give log(0).
_MIN_DISTANCE = 0.25
_LOG_SIZE_LIMIT = 20.0


def encode_dense_targets(
    word_quads: np.ndarray,
    ignore: np.ndarray,
    image_hw: tuple[int, int],
    stride: int,
    valid_hw: tuple[int, int] | None = None,
    min_size: float = 6.0,
    shrink: float = DEFAULT_SHRINK,
) -> GridTargets:
    """Encode word quads ``float [N, 4, 2]`` (pixels) and flags ``bool [N]`` into dense targets.

    ``image_hw`` is the (padded) input size: the grid is ``ceil(H / stride) x ceil(W / stride)``;
    ``valid_hw`` the real image inside it (top-left aligned).  See the module docstring.
    """
    if not 0.0 <= shrink < 0.5:
        raise ValueError(f"shrink must be in [0, 0.5), got {shrink}")
    quads, flags, grid, (valid_h, valid_w) = prepare_encoding(
        word_quads, ignore, image_hw, stride, valid_hw
    )
    target, positive, ignored = grid
    hc, wc = positive.shape
    if len(quads) == 0:
        return GridTargets(target, positive, ignored)

    boxes = quad_to_rbox(quads).reshape(-1, 5)  # [N, 5]: cx, cy, w, h, theta
    cx_all, cy_all = boxes[:, 0], boxes[:, 1]
    in_valid = (cx_all >= 0) & (cx_all < valid_w) & (cy_all >= 0) & (cy_all < valid_h)
    trained = ~flags & (boxes[:, 3] >= min_size) & in_valid

    for i in np.flatnonzero(~trained):
        rows, cols, touched = _cells_touched(boxes[i], (hc, wc), stride)
        ignored[rows, cols] |= touched

    # Larger words first, so a smaller word's core overwrites where cores overlap.
    candidates = np.flatnonzero(trained)
    order = candidates[np.argsort(-(boxes[candidates, 2] * boxes[candidates, 3]), kind="stable")]
    for i in order:
        cx, cy, w, h, theta = boxes[i]
        rows, cols = _cell_range(boxes[i], (hc, wc), stride)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        # Cell centres relative to the word centre, in the word's frame: [R, C].
        dy = (np.arange(rows.start, rows.stop)[:, None] + 0.5) * stride - cy
        dx = (np.arange(cols.start, cols.stop)[None, :] + 0.5) * stride - cx
        cos, sin = math.cos(theta), math.sin(theta)
        along = dx * cos + dy * sin
        across = -dx * sin + dy * cos
        margin = shrink * h
        inside = (np.abs(along) <= w / 2) & (np.abs(across) <= h / 2)
        core = (np.abs(along) <= w / 2 - margin) & (np.abs(across) <= h / 2 - margin)
        centre_row, centre_col = int(cy // stride), int(cx // stride)
        if not core.any() and rows.start <= centre_row < rows.stop:
            if cols.start <= centre_col < cols.stop:
                core[centre_row - rows.start, centre_col - cols.start] = True
        # The band is ignored unless another word already owns the cell.
        band = inside & ~core
        ignored[rows, cols] |= band & ~positive[rows, cols]
        # Distances from the (clamped) cell centre to the four sides.
        a = np.clip(along, -w / 2, w / 2)
        c = np.clip(across, -h / 2, h / 2)
        sides = np.stack([w / 2 + a, h / 2 + c, w / 2 - a, h / 2 - c])  # [4, R, C]
        log_sides = np.log(np.maximum(sides, _MIN_DISTANCE) / stride)
        region = target[:, rows, cols]  # view [7, R, C]
        region[0:4][:, core] = log_sides[:, core]
        region[4][core] = cos
        region[5][core] = sin
        region[6][core] = 1.0
        positive[rows, cols] |= core
    ignored &= ~positive
    return GridTargets(target, positive, ignored)


def cell_boxes(pred: np.ndarray, rows: np.ndarray, cols: np.ndarray, stride: int) -> np.ndarray:
    """Rotated boxes ``float64 [K, 5]`` (cx, cy, w, h, theta) predicted by the given cells."""
    cell = pred[:, rows, cols].astype(np.float64)  # [7, K]
    left, top, right, bottom = (
        np.exp(np.clip(cell[0:4], -_LOG_SIZE_LIMIT, _LOG_SIZE_LIMIT)) * stride
    )
    theta = np.arctan2(cell[5], cell[4])
    theta = (theta + np.pi / 2) % np.pi - np.pi / 2
    cos, sin = np.cos(theta), np.sin(theta)
    px = (cols + 0.5) * stride
    py = (rows + 0.5) * stride
    along = (right - left) / 2  # centre offset along the reading direction
    across = (bottom - top) / 2
    cx = px + along * cos - across * sin
    cy = py + along * sin + across * cos
    return np.stack([cx, cy, left + right, top + bottom, theta], axis=1)


def _aabb_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of axis-aligned bounds ``[4]`` (x0, y0, x1, y1) with ``[K, 4]``."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def merge_cell_boxes(
    boxes: np.ndarray, scores: np.ndarray, merge_iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score-weighted merge of the many boxes ``[K, 5]`` that the cells of one word predict.

    Greedy, by descending score: the best remaining box gathers every remaining box whose
    axis-aligned bounds overlap its own with IoU above ``merge_iou``; the group becomes one box,
    the score-weighted mean of its members (the angle averaged as a doubled-angle vector, so
    that -89 and 89 degrees agree), scored with the members' mean score.  Returns the merged
    boxes ``[M, 5]``, their scores ``[M]`` and the number of cells behind each ``[M]``.
    """
    if len(boxes) == 0:
        return np.zeros((0, 5)), np.zeros((0,)), np.zeros((0,), np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    corners = rbox_to_quad(boxes).reshape(-1, 4, 2)
    bounds = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)  # [K, 4]
    alive = np.ones(len(boxes), dtype=bool)
    merged, merged_scores, support = [], [], []
    for best in range(len(boxes)):
        if not alive[best]:
            continue
        candidates = np.flatnonzero(alive)
        members = candidates[_aabb_iou(bounds[best], bounds[candidates]) > merge_iou]
        members = np.union1d(members, [best])
        alive[members] = False
        weight = scores[members] / max(float(scores[members].sum()), 1e-12)
        cx, cy, w, h = (weight[:, None] * boxes[members, :4]).sum(axis=0)
        doubled = (weight * np.exp(2j * boxes[members, 4])).sum()
        theta = float(np.angle(doubled)) / 2 if abs(doubled) > 1e-9 else float(boxes[best, 4])
        merged.append((cx, cy, w, h, theta))
        merged_scores.append(float(scores[members].mean()))
        support.append(len(members))
    return np.asarray(merged), np.asarray(merged_scores), np.asarray(support, np.int64)


def decode_dense_predictions(
    pred: np.ndarray | torch.Tensor,
    stride: int,
    score_threshold: float,
    confidence: str = "logit",
    merge_iou: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Word boxes from one image's dense prediction map ``[7, Hc, Wc]``.

    Cells scoring above ``score_threshold`` each decode one box; :func:`merge_cell_boxes`
    merges those of one word.  Returns quads float32 ``[K, 4, 2]`` (pixels, clockwise from the
    top-left) and scores float32 ``[K]`` in ``[0, 1]`` for logit models, by decreasing score.
    """
    arr = _to_numpy(pred)
    if arr.ndim != 3 or arr.shape[0] != NUM_CHANNELS:
        raise ValueError(f"pred must be [7, Hc, Wc], got shape {arr.shape}")
    scores_map = confidence_map(arr[6], confidence)
    rows, cols = np.nonzero(scores_map > score_threshold)
    if len(rows) == 0:
        return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
    boxes = cell_boxes(arr, rows, cols, stride)
    merged, scores, _ = merge_cell_boxes(
        boxes, scores_map[rows, cols].astype(np.float64), merge_iou
    )
    quads = rbox_to_quad(merged).reshape(-1, 4, 2)
    order = np.argsort(-scores, kind="stable")
    return quads[order].astype(np.float32), scores[order].astype(np.float32)
