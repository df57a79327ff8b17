"""Non-maximum suppression for rotated quadrilaterals (numpy + shapely, no torchvision).

``rotated_nms`` is greedy NMS with exact polygon IoU. It computes intersections only for pairs
whose axis-aligned bounds overlap, all at once (a vectorised numpy convex clipper; shapely for
the rare non-convex quad), then runs the greedy pass over the sparse graph of pairs above the
threshold.
``locality_aware_merge`` is the EAST-style pre-pass that averages runs of neighbouring,
overlapping candidates (in the order given, e.g. raster order of a score map) before NMS.
"""

from __future__ import annotations

import numpy as np
import shapely

from synthloc.geometry import as_quad_array


def _as_quads(quads: np.ndarray) -> np.ndarray:
    arr = as_quad_array(quads)
    if not np.all(np.isfinite(arr)):
        raise ValueError("quads contain non-finite coordinates")
    return arr


def _valid_polygons(quads: np.ndarray) -> np.ndarray:
    """Shapely polygons for quads [N, 4, 2]; self-intersecting ones repaired (area kept)."""
    polys = shapely.polygons(quads)
    invalid = ~shapely.is_valid(polys)
    if invalid.any():
        polys[invalid] = shapely.make_valid(polys[invalid])
    return polys


def _check_scores(scores: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{len(arr)} scores for {n} quads")
    if np.isnan(arr).any():
        raise ValueError("scores contain NaN")
    return arr


def _overlapping_pairs(
    quads: np.ndarray, max_block: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) whose axis-aligned bounds touch or overlap, int64 [P] each."""
    n = len(quads)
    bounds = np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)  # [N, 4]
    rows = max(1, max_block // max(n, 1))
    firsts, seconds = [], []
    for start in range(0, n, rows):
        block = bounds[start : start + rows]  # [B, 4] against all [N, 4]
        near = (
            (block[:, None, 0] <= bounds[None, :, 2])
            & (block[:, None, 2] >= bounds[None, :, 0])
            & (block[:, None, 1] <= bounds[None, :, 3])
            & (block[:, None, 3] >= bounds[None, :, 1])
        )
        i, j = np.nonzero(near)
        i = i + start
        upper = j > i
        firsts.append(i[upper])
        seconds.append(j[upper])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)


def _signed_areas(quads: np.ndarray) -> np.ndarray:
    """Shoelace signed area [N] of quads [N, 4, 2] (positive for x-to-y turning order)."""
    x, y = quads[..., 0], quads[..., 1]
    return 0.5 * np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)


def _is_convex(quads: np.ndarray) -> np.ndarray:
    """bool [N]: the quad is a convex polygon with non-zero area (any winding)."""
    edges = np.roll(quads, -1, axis=1) - quads  # [N, 4, 2]
    nxt = np.roll(edges, -1, axis=1)
    turns = edges[..., 0] * nxt[..., 1] - edges[..., 1] * nxt[..., 0]  # [N, 4]
    same_sign = np.all(turns >= 0, axis=1) | np.all(turns <= 0, axis=1)
    return same_sign & (np.abs(_signed_areas(quads)) > 0)


def _convex_intersection_areas(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Areas [M] of the intersections of convex quads ``subject[m]`` and ``clip[m]`` [M, 4, 2].

    Sutherland-Hodgman clipping vectorised over pairs: the subject polygon (at most 8
    vertices, since each of the 4 half-planes adds at most one) is clipped by each edge of
    the clip quad in turn.
    """
    m = len(subject)
    # Same winding for every clip quad, so "inside" is always the left of its edges.
    clip = np.where((_signed_areas(clip) < 0)[:, None, None], clip[:, ::-1], clip)
    max_vertices = 8
    poly = np.zeros((m, max_vertices, 2))
    poly[:, :4] = subject
    count = np.full(m, 4)
    slot = np.arange(max_vertices)[None, :]  # [1, 8]
    for e in range(4):
        start, edge = clip[:, e], clip[:, (e + 1) % 4] - clip[:, e]  # [M, 2]
        prev_idx = np.where(slot == 0, count[:, None] - 1, slot - 1).clip(min=0)  # [M, 8]
        prev = np.take_along_axis(poly, prev_idx[..., None], axis=1)
        rel_cur, rel_prev = poly - start[:, None], prev - start[:, None]
        side_cur = edge[:, None, 0] * rel_cur[..., 1] - edge[:, None, 1] * rel_cur[..., 0]
        side_prev = edge[:, None, 0] * rel_prev[..., 1] - edge[:, None, 1] * rel_prev[..., 0]
        valid = slot < count[:, None]
        inside_cur, inside_prev = side_cur >= 0, side_prev >= 0
        denom = side_prev - side_cur
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(denom != 0, side_prev / denom, 0.0)
        crossing = prev + t[..., None] * (poly - prev)
        # Each input vertex emits [crossing point?, itself?]: interleave, then compact.
        out = np.empty((m, 2 * max_vertices, 2))
        out[:, 0::2], out[:, 1::2] = crossing, poly
        keep = np.empty((m, 2 * max_vertices), dtype=bool)
        keep[:, 0::2] = valid & (inside_cur != inside_prev)
        keep[:, 1::2] = valid & inside_cur
        rows, cols = np.nonzero(keep)
        dest = (np.cumsum(keep, axis=1) - 1)[rows, cols]
        fits = dest < max_vertices  # always true for convex input; guards the buffer
        poly = np.zeros((m, max_vertices, 2))
        poly[rows[fits], dest[fits]] = out[rows[fits], cols[fits]]
        count = np.minimum(keep.sum(axis=1), max_vertices)
    nxt_idx = np.where(slot + 1 < count[:, None], slot + 1, 0)
    nxt = np.take_along_axis(poly, nxt_idx[..., None], axis=1)
    cross = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
    area = 0.5 * np.abs(np.sum(np.where(slot < count[:, None], cross, 0.0), axis=1))
    return np.where(count >= 3, area, 0.0)


def _pair_intersections(
    quads: np.ndarray, first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Intersection areas [P] of pairs (first[p], second[p]) and the areas [N] of all quads.

    Convex quads (every rotated box) use the numpy clipper; pairs involving a concave or
    self-intersecting quad fall back to shapely (with the polygon repaired).
    """
    convex = _is_convex(quads)
    areas = np.abs(_signed_areas(quads))
    inter = np.zeros(len(first))
    fast = convex[first] & convex[second]
    if fast.any():
        inter[fast] = _convex_intersection_areas(quads[first[fast]], quads[second[fast]])
    if not fast.all():
        odd = np.flatnonzero(~convex)
        polys = np.empty(len(quads), dtype=object)
        polys[odd] = _valid_polygons(quads[odd])
        slow = ~fast
        need = np.unique(np.concatenate([first[slow], second[slow]]))
        need = need[convex[need]]
        if len(need):
            polys[need] = shapely.polygons(quads[need])
        areas[odd] = shapely.area(polys[odd])
        inter[slow] = shapely.area(shapely.intersection(polys[first[slow]], polys[second[slow]]))
    return inter, areas


def rotated_nms(quads: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on quads.

    quads: float [N, 4, 2] (any vertex order that forms a simple polygon); scores: [N].
    A box is suppressed when its IoU with a higher-scoring kept box is > ``iou_threshold``.
    Ties in score keep the lower index first.
    Returns the kept indices, int64 [K], sorted by descending score.
    """
    q = _as_quads(quads)
    s = _check_scores(scores, len(q))
    if len(q) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    first, second = _overlapping_pairs(q)
    if len(first):
        inter, areas = _pair_intersections(q, first, second)
        union = areas[first] + areas[second] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        conflict = iou > iou_threshold
        first, second = first[conflict], second[conflict]
    # Conflict graph in CSR form: neighbours of box i are dst[indptr[i]:indptr[i + 1]].
    src = np.concatenate([first, second])
    dst = np.concatenate([second, first])
    by_src = np.argsort(src, kind="stable")
    dst = dst[by_src]
    indptr = np.zeros(len(q) + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=len(q)), out=indptr[1:])
    suppressed = np.zeros(len(q), dtype=bool)
    keep: list[int] = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        # Higher-scoring neighbours were already visited, and none was kept (else i would be
        # suppressed), so marking every neighbour only affects lower-scoring boxes.
        suppressed[dst[indptr[i] : indptr[i + 1]]] = True
    return np.asarray(keep, dtype=np.int64)


def locality_aware_merge(
    quads: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """EAST's locality-aware merge: one pass over candidates in the given order.

    Each candidate is merged into the running group when its IoU with the group's current
    quad is > ``iou_threshold``: the group's corners become the score-weighted mean of the two
    and the scores add up. Otherwise the group is emitted and a new one starts. Run
    ``rotated_nms`` on the result. Corners must be in the same order (e.g. clockwise from
    top-left) for the averaging to make sense.

    quads: float [N, 4, 2]; scores: [N] (non-negative).
    Returns merged quads float64 [M, 4, 2] and summed scores float64 [M], M <= N.
    """
    q = _as_quads(quads)
    s = _check_scores(scores, len(q))
    if len(q) == 0:
        return np.zeros((0, 4, 2)), np.zeros(0)
    polys = _valid_polygons(q)
    out_quads: list[np.ndarray] = []
    out_scores: list[float] = []
    cur_quad, cur_score = q[0].copy(), float(s[0])
    cur_poly = polys[0]
    for k in range(1, len(q)):
        poly = polys[k]
        inter = float(shapely.area(shapely.intersection(cur_poly, poly)))
        union = float(shapely.area(cur_poly)) + float(shapely.area(poly)) - inter
        if union > 0 and inter / union > iou_threshold:
            total = cur_score + float(s[k])
            if total > 0:
                cur_quad = (cur_quad * cur_score + q[k] * float(s[k])) / total
            cur_score = total
            cur_poly = _valid_polygons(cur_quad[None])[0]
        else:
            out_quads.append(cur_quad)
            out_scores.append(cur_score)
            cur_quad, cur_score, cur_poly = q[k].copy(), float(s[k]), poly
    out_quads.append(cur_quad)
    out_scores.append(cur_score)
    return np.stack(out_quads), np.asarray(out_scores, dtype=np.float64)
