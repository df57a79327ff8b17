"""Grid target encoding and decoding: golden cells, masks, collisions, round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthloc.geometry import rbox_to_quad
from synthloc.model import GridTargets, decode_predictions, encode_targets


def _quad(cx: float, cy: float, w: float, h: float, theta: float = 0.0) -> np.ndarray:
    return rbox_to_quad(np.array([cx, cy, w, h, theta])).astype(np.float32)


def _encode(quads: list[np.ndarray], flags: list[bool] | None = None, **kw) -> GridTargets:
    arr = np.stack(quads) if quads else np.zeros((0, 4, 2), np.float32)
    ignore = np.array(flags if flags is not None else [False] * len(quads), dtype=bool)
    kw.setdefault("image_hw", (128, 128))
    kw.setdefault("stride", 32)
    return encode_targets(arr, ignore, **kw)


def test_golden_axis_aligned_word() -> None:
    # Centre (80, 40) -> cell (row 1, col 2), offsets (80/32 - 2, 40/32 - 1) = (0.5, 0.25).
    grid = _encode([_quad(80, 40, 64, 16)])
    assert grid.target.shape == (7, 4, 4) and grid.target.dtype == np.float32
    assert grid.positive.sum() == 1 and grid.positive[1, 2]
    np.testing.assert_allclose(
        grid.target[:, 1, 2], [0.5, 0.25, math.log(2.0), math.log(0.5), 1.0, 0.0, 1.0], atol=1e-6
    )
    # Every other cell is an all-zero negative and nothing is ignored.
    other = grid.target.copy()
    other[:, 1, 2] = 0
    assert not other.any()
    assert not grid.ignore.any()


def test_grid_size_is_ceil_and_padding_is_ignored() -> None:
    grid = _encode([], image_hw=(100, 65), stride=32, valid_hw=(70, 33))
    assert grid.target.shape == (7, 4, 3)
    # Valid area 70 x 33 px touches rows 0..2 (ceil(70/32) = 3) and columns 0..1.
    expected = np.zeros((4, 3), bool)
    expected[3:, :] = True
    expected[:, 2:] = True
    np.testing.assert_array_equal(grid.ignore, expected)
    assert not grid.positive.any()


def test_dont_care_and_tiny_words_are_ignored_not_negative() -> None:
    dont_care = _quad(80, 40, 90, 20)
    tiny = _quad(16, 112, 20, 5)  # 5 px tall < min_size 6
    grid = _encode([dont_care, tiny], flags=[True, False])
    assert not grid.positive.any()
    assert not grid.target.any()
    # The "###" box spans x 35..125, y 30..50: rows 0..1, columns 1..3.
    assert grid.ignore[0:2, 1:4].all()
    assert grid.ignore[3, 0]  # the tiny word's centre cell
    assert grid.ignore.sum() == 7


def test_min_size_threshold_is_respected() -> None:
    assert _encode([_quad(16, 16, 20, 5)], min_size=4.0).positive[0, 0]
    assert not _encode([_quad(16, 16, 20, 5)], min_size=6.0).positive.any()


def test_word_centred_outside_valid_area_is_dont_care() -> None:
    # Cropped word: centre at x = 140 beyond the 128 px image, part of it visible.
    grid = _encode([_quad(140, 40, 60, 20)])
    assert not grid.positive.any()
    assert grid.ignore[1, 3]


def test_word_centred_in_padding_part_of_a_valid_cell_is_dont_care() -> None:
    # Valid width 40 px: cell column 1 (32..64) is partly valid, but a centre at x = 50 is not.
    grid = _encode([_quad(50, 16, 20, 10), _quad(36, 48, 20, 10)], valid_hw=(128, 40))
    assert grid.ignore[0, 1] and not grid.positive[0, 1]
    assert grid.positive[1, 1] and not grid.ignore[1, 1]


def test_collision_larger_word_wins_and_loser_cell_stays_positive() -> None:
    small = _quad(40, 40, 20, 10)
    large = _quad(50, 50, 40, 12)  # same cell (1, 1), larger area
    grid = _encode([small, large])
    assert grid.positive.sum() == 1 and grid.positive[1, 1]
    assert not grid.ignore[1, 1]
    np.testing.assert_allclose(grid.target[:2, 1, 1], [50 / 32 - 1, 50 / 32 - 1], atol=1e-6)
    np.testing.assert_allclose(grid.target[2, 1, 1], math.log(40 / 32), atol=1e-6)


def test_collision_tie_goes_to_lower_index() -> None:
    first = _quad(36, 36, 30, 10)
    second = _quad(60, 60, 30, 10)
    grid = _encode([first, second])
    np.testing.assert_allclose(grid.target[0, 1, 1], 36 / 32 - 1, atol=1e-6)
    grid = _encode([second, first])
    np.testing.assert_allclose(grid.target[0, 1, 1], 60 / 32 - 1, atol=1e-6)


def test_positive_cell_wins_over_dont_care_overlap() -> None:
    grid = _encode([_quad(48, 48, 100, 60), _quad(48, 48, 40, 12)], flags=[True, False])
    assert grid.positive[1, 1] and not grid.ignore[1, 1]
    assert grid.ignore[0, 0]


def test_ignore_covered_option() -> None:
    long_word = _quad(64, 48, 128, 40)  # covers row 1 fully in x, rows 0..2 partly
    default = _encode([long_word])
    assert not default.ignore.any()
    grid = _encode([long_word], ignore_covered=0.5)
    assert grid.positive[1, 2]
    # Row 1 cells are covered for y in 32..64 (rows 28..68 inside): fully covered.
    assert grid.ignore[1, [0, 1, 3]].all()
    # Rows 0 and 2 are covered only 4/32 of their height (< 0.5): still negative.
    assert not grid.ignore[[0, 2, 3]].any()


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="NaN"):
        _encode([np.full((4, 2), np.nan, np.float32)])
    with pytest.raises(ValueError, match=r"\[N, 4, 2\]"):
        encode_targets(np.zeros((2, 3, 2)), np.zeros(2, bool), (64, 64), 32)
    with pytest.raises(ValueError, match="flags"):
        encode_targets(np.zeros((2, 4, 2)), np.zeros(3, bool), (64, 64), 32)


def _corner_error(decoded: np.ndarray, expected: np.ndarray) -> float:
    """Largest corner distance, up to the start corner (a square has no long edge to say which
    corner is TL); the order must still be clockwise."""
    return min(
        float(np.abs(np.roll(decoded, shift, axis=0) - expected).max()) for shift in range(4)
    )


def _decode_target(grid: GridTargets, stride: int) -> tuple[np.ndarray, np.ndarray]:
    return decode_predictions(grid.target, stride, score_threshold=0.5)


@settings(max_examples=150, deadline=None)
@given(
    cx=st.floats(0.5, 511.5),
    cy=st.floats(0.5, 383.5),
    height=st.floats(8, 80),
    aspect=st.floats(1, 8),
    theta=st.floats(-math.pi / 2, math.pi / 2, exclude_max=True),
    stride=st.sampled_from([16, 32]),
)
def test_encode_decode_round_trip_single_word(
    cx: float, cy: float, height: float, aspect: float, theta: float, stride: int
) -> None:
    quad = _quad(cx, cy, height * aspect, height, theta)
    grid = _encode([quad], image_hw=(384, 512), stride=stride)
    quads, scores = _decode_target(grid, stride)
    assert quads.shape == (1, 4, 2) and scores.tolist() == [1.0]
    # Same rectangle within 0.5 px (float32 storage).
    assert _corner_error(quads[0], quad) < 0.5


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_encode_decode_round_trip_one_word_per_cell(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stride = 32
    cells = rng.choice(12 * 16, size=int(rng.integers(1, 20)), replace=False)
    boxes = []
    for cell in cells:
        row, col = divmod(int(cell), 16)
        h = rng.uniform(8, 60)
        boxes.append(
            [
                (col + rng.uniform(0, 1)) * stride,
                (row + rng.uniform(0, 1)) * stride,
                h * rng.uniform(1, 6),
                h,
                rng.uniform(-math.pi / 2, math.pi / 2),
            ]
        )
    quads_in = rbox_to_quad(np.array(boxes)).astype(np.float32)
    grid = encode_targets(quads_in, np.zeros(len(boxes), bool), (384, 512), stride)
    assert grid.positive.sum() == len(boxes)
    quads_out, _ = _decode_target(grid, stride)
    # Match each input word to the decoded word whose centre lies in the same cell.
    centres_out = quads_out.mean(axis=1)
    for quad in quads_in:
        k = np.argmin(np.linalg.norm(centres_out - quad.mean(axis=0), axis=1))
        assert _corner_error(quads_out[k], quad) < 0.5


def test_decode_threshold_order_and_logit() -> None:
    pred = np.zeros((7, 2, 3), np.float32)
    pred[6] = [[0.2, 0.9, 0.6], [0.95, 0.1, 0.6]]
    quads, scores = decode_predictions(pred, 32, 0.5)
    np.testing.assert_allclose(scores, [0.95, 0.9, 0.6, 0.6])
    # Zero pose -> a 32x32 box whose TL corner is the cell's (col, row) corner.
    np.testing.assert_allclose(quads[0], [[-16, 16], [16, 16], [16, 48], [-16, 48]])
    np.testing.assert_allclose(quads[2, 0], [64 - 16, -16])  # tie: row-major order
    pred_logit = torch.from_numpy(pred).clone()
    pred_logit[6] = torch.logit(pred_logit[6])
    quads_l, scores_l = decode_predictions(pred_logit, 32, 0.5, confidence="logit")
    np.testing.assert_allclose(scores_l, scores, rtol=1e-5)
    np.testing.assert_allclose(quads_l, quads)


def test_decode_nothing_above_threshold_and_bad_shape() -> None:
    quads, scores = decode_predictions(np.zeros((7, 4, 4)), 32, 0.5)
    assert quads.shape == (0, 4, 2) and scores.shape == (0,)
    with pytest.raises(ValueError, match=r"\[7, Hc, Wc\]"):
        decode_predictions(np.zeros((6, 4, 4)), 32, 0.5)
