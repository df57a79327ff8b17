"""Word quads <-> FCRN grid targets (numpy only: encoding runs in data-loader workers).

Grid: cell ``(row, col)`` covers pixels ``[col*s, (col+1)*s) x [row*s, (row+1)*s)`` for cell
stride ``s``; the grid of an ``H x W`` image is ``ceil(H/s) x ceil(W/s)``, matching the model.

One predictor per cell.  A word (its rotated box from ``geometry.quad_to_rbox``: centre, width
along the reading direction, height across it, angle ``theta``) belongs to the cell holding its
centre, whose seven target channels are

    0 x    = cx / s - col      centre offset inside the cell, in [0, 1)
    1 y    = cy / s - row
    2 w    = log(width / s)    log size in cells: scale-invariant errors, always-positive decode
    3 h    = log(height / s)
    4 cos  = cos(theta)        theta in [-pi/2, pi/2) from the quad's long edge
    5 sin  = sin(theta)
    6 c    = 1                 confidence (0 on negative cells)

Masks:

* ``positive``: the cell holds the centre of a trained word.
* ``ignore`` (excluded from every loss term), from these rules, in this order:
  1. padding: cells entirely outside ``valid_hw`` (the image before batch padding);
  2. don't-care words: words flagged ``ignore`` ("###"), tiny words (height < ``min_size``
     px) and words whose centre falls outside the valid area (cut by a crop) ignore their centre
     cell and every cell their rotated box overlaps (exact test), because a detector firing
     there should not be punished;
  3. optionally (``ignore_covered`` set; off by default, as in the paper) negative cells whose
     area is covered by a trained word's box to at least that fraction (estimated from 4x4
     sample points per cell);
  4. positive cells are never ignored: a trained word's cell wins over rules 2-3.
* Collisions (two trained centres in one cell): the word with the larger box area wins (ties:
  the lower index).  The loser is simply not a target; its cell stays positive for the winner.
  Rule 3 applies to the losers' boxes as well.

Known limitation: ``(cos, sin)`` of an undirected angle jumps from ``(0, -1)`` to ``(0, 1)``
for near-vertical words; decoding is unaffected (both give the same box).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from synthloc.geometry import quad_to_rbox, rbox_to_quad

NUM_CHANNELS = 7
# Sample points per cell side used to measure how much of a cell a word box covers.
_COVERAGE_SAMPLES = 4
# Bounds on decoded log-sizes so an untrained network cannot produce inf/0-sized boxes.
_LOG_SIZE_LIMIT = 20.0


class GridTargets(NamedTuple):
    """Encoded targets for one image.

    target: float32 [7, Hc, Wc] (channels x, y, w, h, cos, sin, c; zero off positive cells).
    positive: bool [Hc, Wc]; cells that hold a trained word's centre.
    ignore: bool [Hc, Wc]; cells excluded from the loss (never positive).
    """

    target: np.ndarray
    positive: np.ndarray
    ignore: np.ndarray


def _cell_range(box: np.ndarray, grid_hw: tuple[int, int], stride: int) -> tuple[slice, slice]:
    """Rows and columns of the grid cells that the bounds of rotated box ``box`` touch."""
    hc, wc = grid_hw
    corners = rbox_to_quad(box)
    x_min, y_min = corners.min(axis=0)
    x_max, y_max = corners.max(axis=0)
    r0 = int(np.clip(math.floor(y_min / stride), 0, hc))
    r1 = int(np.clip(math.floor(y_max / stride) + 1, r0, hc))
    c0 = int(np.clip(math.floor(x_min / stride), 0, wc))
    c1 = int(np.clip(math.floor(x_max / stride) + 1, c0, wc))
    return slice(r0, r1), slice(c0, c1)


def _cells_touched(
    box: np.ndarray, grid_hw: tuple[int, int], stride: int
) -> tuple[slice, slice, np.ndarray]:
    """Cells whose square overlaps rotated box ``(cx, cy, w, h, theta)`` with positive area.

    Exact separating-axis test (the axes of a square cell and of the box).  Returns the row and
    column slices of the box's bounds and a bool mask ``[rows, cols]`` over them.
    """
    rows, cols = _cell_range(box, grid_hw, stride)
    cx, cy, w, h, theta = box
    # Cell centres relative to the box centre: [R, 1] and [1, C].
    dy = (np.arange(rows.start, rows.stop)[:, None] + 0.5) * stride - cy
    dx = (np.arange(cols.start, cols.stop)[None, :] + 0.5) * stride - cx
    half = stride / 2
    cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
    eps = 1e-9 * max(1.0, stride)
    # Cell axes (x, y): box half-extent projected on them.
    sep_x = np.abs(dx) >= half + 0.5 * (w * cos + h * sin) - eps
    sep_y = np.abs(dy) >= half + 0.5 * (w * sin + h * cos) - eps
    # Box axes (d, n): cell half-extent projected on them is half * (|cos| + |sin|).
    along = dx * math.cos(theta) + dy * math.sin(theta)
    across = -dx * math.sin(theta) + dy * math.cos(theta)
    cell_extent = half * (cos + sin)
    sep_d = np.abs(along) >= w / 2 + cell_extent - eps
    sep_n = np.abs(across) >= h / 2 + cell_extent - eps
    return rows, cols, ~(sep_x | sep_y | sep_d | sep_n)


def _cell_coverage(
    box: np.ndarray, grid_hw: tuple[int, int], stride: int
) -> tuple[slice, slice, np.ndarray]:
    """Approximate fraction of each cell inside rotated box ``(cx, cy, w, h, theta)``.

    Returns the row and column slices of the box's bounds and the fraction ``[rows, cols]`` of
    each cell's 4x4 sample points (at sub-cell centres) inside the box.
    """
    rows, cols = _cell_range(box, grid_hw, stride)
    n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
    k = _COVERAGE_SAMPLES
    offsets = (np.arange(k) + 0.5) / k
    ys = ((np.arange(rows.start, rows.stop)[:, None] + offsets[None]) * stride).reshape(-1)
    xs = ((np.arange(cols.start, cols.stop)[:, None] + offsets[None]) * stride).reshape(-1)
    cx, cy, w, h, theta = box
    dx = xs[None, :] - cx  # [1, C*k]
    dy = ys[:, None] - cy  # [R*k, 1]
    along = dx * math.cos(theta) + dy * math.sin(theta)  # [R*k, C*k]
    across = -dx * math.sin(theta) + dy * math.cos(theta)
    inside = (np.abs(along) <= w / 2) & (np.abs(across) <= h / 2)
    # [R*k, C*k] -> [R, k, C, k] -> fraction per cell [R, C]
    fraction = inside.reshape(n_rows, k, n_cols, k).mean(axis=(1, 3))
    return rows, cols, fraction


class _Prepared(NamedTuple):
    quads: np.ndarray
    flags: np.ndarray
    grid: GridTargets
    valid_hw: tuple[int, int]


def prepare_encoding(
    word_quads: np.ndarray,
    ignore: np.ndarray,
    image_hw: tuple[int, int],
    stride: int,
    valid_hw: tuple[int, int] | None,
) -> _Prepared:
    """Checked inputs of an encoder and its empty grid (padding cells already ignored).

    Returns quads float64 ``[N, 4, 2]``, flags bool ``[N]``, empty ``GridTargets`` of
    ``ceil(H / stride) x ceil(W / stride)`` cells and the valid size clipped to the image.
    Raises ``ValueError`` on malformed or non-finite input.
    """
    quads = np.asarray(word_quads, dtype=np.float64)
    if quads.size == 0:
        quads = quads.reshape(0, 4, 2)
    if quads.ndim != 3 or quads.shape[1:] != (4, 2):
        raise ValueError(f"word_quads must be [N, 4, 2], got shape {quads.shape}")
    flags = np.asarray(ignore, dtype=bool).reshape(-1)
    if len(flags) != len(quads):
        raise ValueError(f"{len(flags)} ignore flags for {len(quads)} word quads")
    if not np.all(np.isfinite(quads)):
        raise ValueError("word_quads contain NaN or infinite coordinates")
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    height, width = int(image_hw[0]), int(image_hw[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"image_hw must be positive, got {image_hw}")
    hc, wc = -(-height // stride), -(-width // stride)
    valid_h, valid_w = (height, width) if valid_hw is None else (int(valid_hw[0]), int(valid_hw[1]))
    valid_h, valid_w = min(valid_h, height), min(valid_w, width)
    valid_rows = min(hc, -(-valid_h // stride))
    valid_cols = min(wc, -(-valid_w // stride))
    target = np.zeros((NUM_CHANNELS, hc, wc), dtype=np.float32)
    positive = np.zeros((hc, wc), dtype=bool)
    ignored = np.zeros((hc, wc), dtype=bool)
    ignored[valid_rows:, :] = True
    ignored[:, valid_cols:] = True
    return _Prepared(quads, flags, GridTargets(target, positive, ignored), (valid_h, valid_w))


def encode_targets(
    word_quads: np.ndarray,
    ignore: np.ndarray,
    image_hw: tuple[int, int],
    stride: int,
    valid_hw: tuple[int, int] | None = None,
    min_size: float = 6.0,
    ignore_covered: float | None = None,
) -> GridTargets:
    """Encode word quads ``float [N, 4, 2]`` (pixels) and flags ``bool [N]`` into grid targets.

    ``image_hw`` is the (possibly padded) input size, giving ``Hc = ceil(H / stride)``;
    ``valid_hw`` the real image inside it (top-left aligned), default all of it.
    ``ignore_covered``: if set (e.g. 0.5), negative cells covered by a trained word's box to
    at least that fraction are ignored instead of negative.  See the module docstring for the
    full rules.  Raises ``ValueError`` on malformed or non-finite input.
    """
    quads, flags, grid, valid_hw = prepare_encoding(word_quads, ignore, image_hw, stride, valid_hw)
    target, positive, ignored = grid
    hc, wc = positive.shape
    valid_h, valid_w = valid_hw
    if len(quads) == 0:
        return GridTargets(target, positive, ignored)

    boxes = quad_to_rbox(quads).reshape(-1, 5)  # [N, 5]: cx, cy, w, h, theta
    col = np.floor(boxes[:, 0] / stride).astype(np.int64)
    row = np.floor(boxes[:, 1] / stride).astype(np.int64)
    cx_all, cy_all = boxes[:, 0], boxes[:, 1]
    in_valid = (cx_all >= 0) & (cx_all < valid_w) & (cy_all >= 0) & (cy_all < valid_h)
    trained = ~flags & (boxes[:, 3] >= min_size) & in_valid

    for i in np.flatnonzero(~trained):
        rows, cols, touched = _cells_touched(boxes[i], (hc, wc), stride)
        ignored[rows, cols] |= touched
        if 0 <= row[i] < hc and 0 <= col[i] < wc:
            ignored[row[i], col[i]] = True

    candidates = np.flatnonzero(trained)
    if len(candidates):
        area = boxes[candidates, 2] * boxes[candidates, 3]
        # Larger area first, then lower index; the first word reaching a cell owns it.
        order = candidates[np.lexsort((candidates, -area))]
        cells = row[order] * wc + col[order]
        _, first = np.unique(cells, return_index=True)
        winners = order[first]
        cx, cy, w, h, theta = (boxes[winners, k] for k in range(5))
        r, c = row[winners], col[winners]
        target[0, r, c] = cx / stride - c
        target[1, r, c] = cy / stride - r
        target[2, r, c] = np.log(np.maximum(w, 1e-6) / stride)
        target[3, r, c] = np.log(np.maximum(h, 1e-6) / stride)
        target[4, r, c] = np.cos(theta)
        target[5, r, c] = np.sin(theta)
        target[6, r, c] = 1.0
        positive[r, c] = True
        if ignore_covered is not None:
            for i in candidates:
                rows, cols, fraction = _cell_coverage(boxes[i], (hc, wc), stride)
                ignored[rows, cols] |= fraction >= ignore_covered
    ignored &= ~positive
    return GridTargets(target, positive, ignored)


def _to_numpy(pred: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(pred, torch.Tensor):
        return pred.detach().to("cpu", torch.float32).numpy()
    return np.asarray(pred, dtype=np.float32)


def confidence_map(channel: np.ndarray, confidence: str) -> np.ndarray:
    """The score of every cell from channel 6: as is ("linear") or its sigmoid ("logit")."""
    if confidence == "linear":
        return channel
    if confidence == "logit":
        return 0.5 * (1.0 + np.tanh(0.5 * channel))  # overflow-free sigmoid
    raise ValueError(f"unknown confidence {confidence!r}; expected 'linear' or 'logit'")


def decode_predictions(
    pred: np.ndarray | torch.Tensor,
    stride: int,
    score_threshold: float,
    confidence: str = "linear",
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes from one image's prediction map ``[7, Hc, Wc]`` (the inverse of encoding).

    Every cell whose score exceeds ``score_threshold`` yields one quad.  The score is channel
    6 as is (``confidence="linear"``) or its sigmoid (``"logit"``).  Returns quads float32
    ``[K, 4, 2]`` in pixels, clockwise from the top-left (``geometry.rbox_to_quad`` order), and
    scores float32 ``[K]``, sorted by decreasing score (ties in row-major cell order).
    """
    arr = _to_numpy(pred)
    if arr.ndim != 3 or arr.shape[0] != NUM_CHANNELS:
        raise ValueError(f"pred must be [7, Hc, Wc], got shape {arr.shape}")
    scores_map = confidence_map(arr[6], confidence)
    rows, cols = np.nonzero(scores_map > score_threshold)
    scores = scores_map[rows, cols].astype(np.float32)
    if len(rows) == 0:
        return np.zeros((0, 4, 2), np.float32), scores
    cell = arr[:, rows, cols].astype(np.float64)  # [7, K]
    cx = (cols + cell[0]) * stride
    cy = (rows + cell[1]) * stride
    w = np.exp(np.clip(cell[2], -_LOG_SIZE_LIMIT, _LOG_SIZE_LIMIT)) * stride
    h = np.exp(np.clip(cell[3], -_LOG_SIZE_LIMIT, _LOG_SIZE_LIMIT)) * stride
    theta = np.arctan2(cell[5], cell[4])
    # theta and theta + pi are the same box; wrapping keeps encode's corner order.
    theta = (theta + np.pi / 2) % np.pi - np.pi / 2
    quads = rbox_to_quad(np.stack([cx, cy, w, h, theta], axis=1)).reshape(-1, 4, 2)
    order = np.argsort(-scores, kind="stable")
    return quads[order].astype(np.float32), scores[order]
