"""Geometry: rotated boxes, point order, area, IoU, homographies."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthloc.geometry import (
    apply_homography,
    iou_matrix,
    order_quad,
    pad_quads,
    polygon_area,
    polygon_iou,
    quad_to_rbox,
    rbox_to_quad,
)

SQUARE = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)


def test_rbox_to_quad_golden_axis_aligned() -> None:
    quad = rbox_to_quad(np.array([5.0, 3.0, 4.0, 2.0, 0.0]))
    np.testing.assert_allclose(quad, [[3, 2], [7, 2], [7, 4], [3, 4]])


def test_rbox_to_quad_golden_rotated_90() -> None:
    # theta = -pi/2: reading direction points up the screen.
    quad = rbox_to_quad(np.array([0.0, 0.0, 4.0, 2.0, -math.pi / 2]))
    np.testing.assert_allclose(quad, [[-1, 2], [-1, -2], [1, -2], [1, 2]], atol=1e-12)


@pytest.mark.parametrize("shift", range(4))
@pytest.mark.parametrize("reverse", [False, True])
def test_quad_to_rbox_is_order_invariant(shift: int, reverse: bool) -> None:
    quad = rbox_to_quad(np.array([10.0, 20.0, 30.0, 8.0, 0.4]))
    q = np.roll(quad, shift, axis=0)
    if reverse:
        q = q[::-1]
    np.testing.assert_allclose(quad_to_rbox(q), [10.0, 20.0, 30.0, 8.0, 0.4], atol=1e-9)


def test_square_rbox_is_order_invariant() -> None:
    boxes = [
        quad_to_rbox(np.array(p))
        for p in itertools.permutations(SQUARE)
        if polygon_area(np.array(p)) > 0
    ]
    for box in boxes:
        np.testing.assert_allclose(box, [1, 1, 2, 2, 0], atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    cx=st.floats(-500, 500),
    cy=st.floats(-500, 500),
    w=st.floats(1, 400),
    aspect=st.floats(0.05, 0.99),
    theta=st.floats(-math.pi / 2, math.pi / 2 - 1e-6),
)
def test_rbox_quad_round_trip(cx: float, cy: float, w: float, aspect: float, theta: float) -> None:
    box = np.array([cx, cy, w, w * aspect, theta])
    back = quad_to_rbox(rbox_to_quad(box))
    np.testing.assert_allclose(back, box, atol=1e-6)


def test_order_quad_from_any_permutation() -> None:
    quad = rbox_to_quad(np.array([50.0, 40.0, 60.0, 20.0, 0.3]))
    for perm in itertools.permutations(range(4)):
        np.testing.assert_allclose(order_quad(quad[list(perm)]), quad, atol=1e-9)


def test_order_quad_axis_aligned_starts_top_left() -> None:
    shuffled = np.array([[7, 4], [3, 2], [3, 4], [7, 2]], dtype=float)
    np.testing.assert_allclose(order_quad(shuffled), [[3, 2], [7, 2], [7, 4], [3, 4]])
    assert polygon_area(order_quad(shuffled), signed=True) > 0  # clockwise on screen


def test_area_golden() -> None:
    assert polygon_area(SQUARE) == pytest.approx(4.0)
    tri_like = np.array([[0, 0], [4, 0], [4, 3], [4, 3]], dtype=float)
    assert polygon_area(tri_like) == pytest.approx(6.0)


def test_iou_golden_values() -> None:
    assert polygon_iou(SQUARE, SQUARE) == pytest.approx(1.0)
    assert polygon_iou(SQUARE, SQUARE + 10) == 0.0
    # Two 2x2 squares offset by half a side: intersection 2, union 6 -> 1/3.
    assert polygon_iou(SQUARE, SQUARE + [1, 0]) == pytest.approx(1 / 3)
    m = iou_matrix(np.stack([SQUARE, SQUARE + 10]), np.stack([SQUARE + [1, 0]]))
    np.testing.assert_allclose(m, [[1 / 3], [0.0]])


def test_degenerate_quads_have_no_nan() -> None:
    point = np.zeros((4, 2))
    line = np.array([[0, 0], [5, 0], [5, 0], [0, 0]], dtype=float)
    assert polygon_area(point) == 0.0
    assert polygon_iou(point, point) == 0.0
    assert polygon_iou(line, SQUARE) == 0.0
    box = quad_to_rbox(point)
    assert np.all(np.isfinite(box))
    box_line = quad_to_rbox(line)
    assert np.all(np.isfinite(box_line))
    np.testing.assert_allclose(box_line[2:4], [5.0, 0.0])
    assert np.all(np.isfinite(order_quad(point)))
    assert np.all(iou_matrix(np.stack([point, line]), np.stack([SQUARE])) == 0)


def test_self_intersecting_quad_iou_is_finite() -> None:
    bowtie = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], dtype=float)
    value = polygon_iou(bowtie, SQUARE)
    assert 0.0 <= value <= 1.0


def test_homography_identity_translation_and_inverse() -> None:
    pts = np.array([[1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_allclose(apply_homography(np.eye(3), pts), pts)
    shift = np.array([[1, 0, 5], [0, 1, -2], [0, 0, 1]], dtype=float)
    np.testing.assert_allclose(apply_homography(shift, pts), pts + [5, -2])
    persp = np.array([[1.1, 0.2, 3], [0.1, 0.9, -1], [1e-3, 2e-3, 1]])
    there = apply_homography(persp, pts)
    np.testing.assert_allclose(apply_homography(np.linalg.inv(persp), there), pts, atol=1e-9)
    assert apply_homography(persp, np.zeros((2, 4, 2))).shape == (2, 4, 2)


def test_as_quad_array_shapes() -> None:
    from synthloc.geometry import as_quad_array

    assert as_quad_array(np.zeros((0,))).shape == (0, 4, 2)
    flat = np.arange(16, dtype=float).reshape(2, 8)
    np.testing.assert_array_equal(as_quad_array(flat), flat.reshape(2, 4, 2))
    with pytest.raises(ValueError, match=r"boxes: expected quads .* got \(3, 5\)"):
        as_quad_array(np.zeros((3, 5)), "boxes")


@pytest.mark.parametrize("shift", [0, 1, 2, 3])
@pytest.mark.parametrize("reverse", [False, True])
def test_pad_quads_grows_by_a_fraction_of_the_height_on_every_side(
    shift: int, reverse: bool
) -> None:
    box = np.array([200.0, 100.0, 80.0, 20.0, 0.4])
    quad = rbox_to_quad(box)
    ordered = np.roll(quad[::-1] if reverse else quad, shift, axis=0)
    padded = pad_quads(ordered, 0.25)  # 5 px on each side
    np.testing.assert_allclose(quad_to_rbox(padded), [200.0, 100.0, 90.0, 30.0, 0.4], atol=1e-9)
    # Each corner moved outwards, and the point order is kept.
    centre = quad.mean(axis=0)
    assert np.all(
        np.linalg.norm(padded - centre, axis=1) > np.linalg.norm(ordered - centre, axis=1)
    )
    np.testing.assert_allclose(pad_quads(ordered, 0.0), ordered)
    # Negative fractions shrink: 80 x 20 -> 72 x 12 at -0.2.
    np.testing.assert_allclose(
        quad_to_rbox(pad_quads(ordered, -0.2)), [200.0, 100.0, 72.0, 12.0, 0.4], atol=1e-9
    )
    batch = pad_quads(np.stack([quad, quad + 5.0]), 0.25)
    np.testing.assert_allclose(batch[1] - batch[0], 5.0)
    with pytest.raises(ValueError, match="pad fraction"):
        pad_quads(quad, -0.5)
