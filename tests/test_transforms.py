"""Augmentations move quads with pixels; cut words become ignore; same seed, same bytes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from synthloc.data.sample import Sample
from synthloc.data.transforms import (
    AugmentConfig,
    affine_warp_sample,
    augment,
    chars_per_word,
    inside_fractions,
    photometric_jitter,
    resize_to_fit,
    to_grayscale,
)
from synthloc.geometry import rbox_to_quad

GEOMETRY_ONLY = AugmentConfig(
    size=160,
    scale_range=(0.6, 1.6),
    rotate_prob=1.0,
    rotate_max_deg=30.0,
    word_crop_prob=1.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    hue_deg=0.0,
    grayscale_prob=0.0,
    blur_prob=0.0,
    noise_std=0.0,
)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _filled_quad_sample(rng: np.random.Generator) -> Sample:
    """A black image with one white filled rotated rectangle and its quad as the only word."""
    height, width = int(rng.integers(180, 320)), int(rng.integers(180, 320))
    box = np.array(
        [
            rng.uniform(0.35, 0.65) * width,
            rng.uniform(0.35, 0.65) * height,
            rng.uniform(60, 110),
            rng.uniform(25, 45),
            rng.uniform(-0.6, 0.6),
        ]
    )
    quad = rbox_to_quad(box).astype(np.float32)
    image = np.zeros((height, width, 3), np.uint8)
    cv2.fillPoly(image, [np.round(quad * 16).astype(np.int32)], (255, 255, 255), cv2.LINE_8, 4)
    return Sample(image=image, word_quads=quad[None], words=["box"])


@pytest.mark.parametrize("seed", range(6))
def test_quad_moves_with_pixels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sample = _filled_quad_sample(rng)
    out = augment(sample, GEOMETRY_ONLY, np.random.default_rng(100 + seed))
    assert out.image.shape == (160, 160, 3)
    assert len(out.word_quads) == 1  # the crop is biased to contain the word's centre
    pixels = out.image[..., 0] > 127
    drawn = np.zeros((160, 160), np.uint8)
    cv2.fillPoly(drawn, [np.round(out.word_quads[0] * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    assert _mask_iou(pixels, drawn.astype(bool)) > 0.9


def test_cut_words_become_ignore_or_vanish() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    quads = np.array(
        [
            [[10, 10], [50, 10], [50, 30], [10, 30]],  # fully inside the crop
            [[90, 40], [130, 40], [130, 60], [90, 60]],  # 25% inside (x 90..100 of 90..130)
            [[70, 70], [110, 70], [110, 90], [70, 90]],  # 75% inside (x 70..100)
            [[150, 10], [190, 10], [190, 30], [150, 30]],  # outside: dropped
        ],
        np.float32,
    )
    words = ["ab", "c d", "ef", "ghi"]
    chars = np.arange(9 * 4 * 2, dtype=np.float32).reshape(9, 4, 2)
    sample = Sample(image=image, word_quads=quads, words=words, char_quads=chars)
    assert chars_per_word(words).tolist() == [2, 2, 2, 3]
    # Crop the left 100 x 100 pixels (identity matrix, smaller output).
    out = affine_warp_sample(sample, np.array([[1, 0, 0], [0, 1, 0]], float), (100, 100), 0.5)
    assert out.words == ["ab", "c d", "ef"]
    assert out.ignore.tolist() == [False, True, False]
    np.testing.assert_allclose(out.word_quads, quads[:3])
    np.testing.assert_allclose(out.char_quads, chars[:6])  # "ghi"'s three boxes left with it
    np.testing.assert_allclose(inside_fractions(quads, (100, 100)), [1.0, 0.25, 0.75, 0.0])


def test_inside_fraction_golden_and_degenerate() -> None:
    square = np.array([[[-5, 0], [5, 0], [5, 10], [-5, 10]]], np.float32)
    np.testing.assert_allclose(inside_fractions(square, (20, 20)), [0.5])
    flat = np.array([[[2, 2], [8, 2], [8, 2], [2, 2]]], np.float32)  # zero area, centre inside
    np.testing.assert_allclose(inside_fractions(flat, (20, 20)), [1.0])


def test_translation_and_scale_move_quads_exactly() -> None:
    quad = np.array([[[10, 20], [40, 20], [40, 30], [10, 30]]], np.float32)
    sample = Sample(image=np.zeros((64, 64, 3), np.uint8), word_quads=quad, words=["x"])
    matrix = np.array([[2.0, 0, -5], [0, 2.0, 3]])
    out = affine_warp_sample(sample, matrix, (128, 128))
    np.testing.assert_allclose(out.word_quads[0], quad[0] * 2 + [-5, 3])


def test_augment_is_deterministic_and_changes_with_seed() -> None:
    sample = _filled_quad_sample(np.random.default_rng(0))
    cfg = AugmentConfig(size=128, grayscale_prob=0.5, blur_prob=0.5)
    a = augment(sample, cfg, np.random.default_rng(7))
    b = augment(sample, cfg, np.random.default_rng(7))
    c = augment(sample, cfg, np.random.default_rng(8))
    assert a.image.tobytes() == b.image.tobytes()
    np.testing.assert_array_equal(a.word_quads, b.word_quads)
    assert a.image.tobytes() != c.image.tobytes()


def test_photometric_jitter_keeps_geometry_and_grayscale_is_gray() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = photometric_jitter(image, AugmentConfig(grayscale_prob=1.0), np.random.default_rng(2))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    gray = to_grayscale(np.full((2, 2, 3), (255, 0, 0), np.uint8))
    assert int(gray[0, 0, 0]) == 76  # BT.601 luma of pure red: round(0.299 * 255)


def test_photometric_noise_has_the_configured_spread() -> None:
    flat = np.full((200, 200, 3), 128, np.uint8)
    quiet = AugmentConfig(
        brightness=0, contrast=0, saturation=0, hue_deg=0, blur_prob=0, grayscale_prob=0
    )
    for std in (0.0, 2.0, 8.0):
        cfg = AugmentConfig(**{**quiet.__dict__, "noise_std": std})
        out = photometric_jitter(flat, cfg, np.random.default_rng(5)).astype(np.float64)
        assert abs(out.mean() - 128) < 0.1
        # Rounding to integers adds 1/12 to the variance; 256-level quantiles lose a little.
        assert np.sqrt(max(out.var() - 1 / 12, 0)) == pytest.approx(std, rel=0.05, abs=0.05)
    same = photometric_jitter(flat, AugmentConfig(), np.random.default_rng(9))
    assert (
        same.tobytes()
        == photometric_jitter(flat, AugmentConfig(), np.random.default_rng(9)).tobytes()
    )


def test_contrast_and_brightness_are_one_affine_map() -> None:
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    cfg = AugmentConfig(saturation=0, hue_deg=0, blur_prob=0, noise_std=0, grayscale_prob=0)
    rng = np.random.default_rng(11)
    contrast = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    brightness = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    expected = (image.astype(np.float64) - 127.5) * contrast + 127.5
    expected = np.clip(np.rint(expected * brightness), 0, 255)
    out = photometric_jitter(image, cfg, np.random.default_rng(11))
    assert np.abs(out.astype(np.float64) - expected).max() <= 1


def test_resize_to_fit_scales_quads() -> None:
    quad = np.array([[[10, 10], [30, 10], [30, 20], [10, 20]]], np.float32)
    sample = Sample(image=np.zeros((100, 200, 3), np.uint8), word_quads=quad, words=["w"])
    out = resize_to_fit(sample, 100)
    assert out.image.shape == (50, 100, 3)
    np.testing.assert_allclose(out.word_quads, quad * 0.5)
    cfg = AugmentConfig(size=None, max_side=100, noise_std=0.0)
    assert augment(sample, cfg, np.random.default_rng(0)).image.shape == (50, 100, 3)
