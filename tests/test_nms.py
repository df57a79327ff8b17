"""Rotated NMS and locality-aware merge: hand-worked golden cases and a naive cross-check."""

from __future__ import annotations

import numpy as np
import pytest

from synthloc.geometry import iou_matrix, rbox_to_quad
from synthloc.nms import locality_aware_merge, rotated_nms


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def test_duplicate_is_suppressed_and_result_is_int64_by_score() -> None:
    q = np.stack([box(0, 0, 10, 10), box(50, 0, 60, 10), box(0, 0, 10, 10)])
    keep = rotated_nms(q, np.array([0.5, 0.7, 0.9]), 0.5)
    assert keep.dtype == np.int64
    assert keep.tolist() == [2, 1]  # descending score; box 0 duplicates box 2


def test_threshold_is_strict() -> None:
    q = np.stack([box(0, 0, 10, 10), box(5, 0, 15, 10)])  # IoU 50 / 150 = 1/3
    s = np.array([0.9, 0.8])
    assert rotated_nms(q, s, 0.3).tolist() == [0]
    assert rotated_nms(q, s, 0.4).tolist() == [0, 1]
    half = np.stack([box(0, 0, 10, 10), box(0, 0, 10, 5)])  # IoU exactly 0.5
    assert rotated_nms(half, s, 0.5).tolist() == [0, 1]
    assert rotated_nms(half, s, 0.49).tolist() == [0]


def test_greedy_chain_keeps_the_far_end() -> None:
    # A-B and B-C overlap (IoU 60/140), A-C barely (20/180): B goes, so C survives.
    q = np.stack([box(8, 0, 18, 10), box(0, 0, 10, 10), box(4, 0, 14, 10)])
    keep = rotated_nms(q, np.array([0.7, 0.9, 0.8]), 0.3)
    assert keep.tolist() == [1, 0]


def test_rotated_overlap_uses_exact_polygons() -> None:
    diamond = np.array([[10, 0], [20, 10], [10, 20], [0, 10]], dtype=np.float64)
    inscribed = box(5, 5, 15, 15)  # IoU exactly 0.5, though its bounds lie inside the diamond's
    q = np.stack([diamond, inscribed])
    s = np.array([0.6, 0.9])
    assert rotated_nms(q, s, 0.5).tolist() == [1, 0]
    assert rotated_nms(q, s, 0.45).tolist() == [1]


def test_touching_boxes_and_ties() -> None:
    q = np.stack([box(0, 0, 10, 10), box(10, 0, 20, 10), box(0, 0, 10, 10)])
    keep = rotated_nms(q, np.array([0.5, 0.5, 0.5]), 0.1)
    assert keep.tolist() == [0, 1]  # ties: lower index first; shared edge has IoU 0


def test_empty_and_bad_input() -> None:
    keep = rotated_nms(np.zeros((0, 4, 2)), np.zeros(0), 0.5)
    assert keep.dtype == np.int64 and keep.shape == (0,)
    with pytest.raises(ValueError, match="scores"):
        rotated_nms(np.zeros((2, 4, 2)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="shape"):
        rotated_nms(np.zeros((2, 3, 2)), np.zeros(2), 0.5)


def test_self_intersecting_quad_does_not_crash() -> None:
    bow_tie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float64)
    keep = rotated_nms(np.stack([bow_tie, box(0, 0, 10, 10)]), np.array([0.9, 0.8]), 0.9)
    assert keep.tolist() == [0, 1]


def test_matches_dense_greedy_on_random_rotated_boxes() -> None:
    rng = np.random.default_rng(3)
    n = 200
    rboxes = np.stack(
        [
            rng.uniform(0, 200, n),
            rng.uniform(0, 200, n),
            rng.uniform(10, 60, n),
            rng.uniform(5, 20, n),
            rng.uniform(-1.0, 1.0, n),
        ],
        axis=1,
    )
    q = rbox_to_quad(rboxes)
    s = rng.uniform(size=n)
    iou = iou_matrix(q, q)
    for threshold in (0.1, 0.3, 0.6):
        suppressed = np.zeros(n, dtype=bool)
        expected = []
        for i in np.argsort(-s, kind="stable"):
            if not suppressed[i]:
                expected.append(int(i))
                suppressed |= iou[i] > threshold
        assert rotated_nms(q, s, threshold).tolist() == expected


def test_locality_aware_merge_weights_by_score() -> None:
    q = np.stack([box(0, 0, 10, 10), box(2, 0, 12, 10), box(50, 0, 60, 10), box(0, 0, 10, 10)])
    s = np.array([1.0, 3.0, 2.0, 1.0])
    merged, scores = locality_aware_merge(q, s, 0.5)
    # 0 and 1 overlap (IoU 80/120): corners (1 * q0 + 3 * q1) / 4, score 4. Box 2 is far and
    # box 3 only follows box 2 in the sequence, so it is not merged back into the first group.
    assert scores.tolist() == [4.0, 2.0, 1.0]
    np.testing.assert_allclose(merged[0], box(1.5, 0, 11.5, 10))
    np.testing.assert_allclose(merged[1:], q[2:])
    empty_q, empty_s = locality_aware_merge(np.zeros((0, 4, 2)), np.zeros(0), 0.5)
    assert empty_q.shape == (0, 4, 2) and empty_s.shape == (0,)


def test_convex_clipper_equals_shapely() -> None:
    import shapely

    from synthloc.nms import _convex_intersection_areas

    rng = np.random.default_rng(11)
    n = 500

    def random_quads() -> np.ndarray:
        return rbox_to_quad(
            np.stack(
                [
                    rng.uniform(0, 40, n),
                    rng.uniform(0, 40, n),
                    rng.uniform(1, 40, n),
                    rng.uniform(1, 20, n),
                    rng.uniform(-3, 3, n),
                ],
                axis=1,
            )
        )

    a, b = random_quads(), random_quads()
    b[::2] = b[::2, ::-1]  # half of them wound the other way
    a[:10] = b[:10]  # identical pairs
    expected = shapely.area(shapely.intersection(shapely.polygons(a), shapely.polygons(b)))
    np.testing.assert_allclose(_convex_intersection_areas(a, b), expected, atol=1e-7)
    square = box(0, 0, 10, 10)[None]
    assert _convex_intersection_areas(square, square + [5, 5]).tolist() == [25.0]
    assert _convex_intersection_areas(square, square + [10, 0]).tolist() == [0.0]  # touching
    assert _convex_intersection_areas(square, box(2, 2, 4, 4)[None]).tolist() == [4.0]


def test_concave_quads_fall_back_to_exact_polygons() -> None:
    dart = np.array([[0, 0], [10, 5], [0, 10], [3, 5]], dtype=np.float64)  # concave at (3, 5)
    q = np.stack([dart, box(0, 0, 10, 10), dart + [1, 0], box(0, 2, 10, 8)])
    s = np.array([0.9, 0.8, 0.7, 0.6])
    iou = iou_matrix(q, q)
    for threshold in (0.2, 0.5, 0.8):
        suppressed = np.zeros(len(q), dtype=bool)
        expected = []
        for i in np.argsort(-s, kind="stable"):
            if not suppressed[i]:
                expected.append(int(i))
                suppressed |= iou[i] > threshold
        assert rotated_nms(q, s, threshold).tolist() == expected
