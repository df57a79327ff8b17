"""Training augmentations that move word quads together with the pixels (numpy + OpenCV).

Every function takes an explicit ``numpy.random.Generator``; the same generator state gives
the same output bytes.  Geometry is expressed as one 2x3 affine matrix (rotation, scale and
crop offset composed) so the image is resampled only once and the quads are moved with exactly
the matrix that moved the pixels.

Words that a crop cuts keep their quad (which may extend past the image border); a word with
less than ``min_inside_fraction`` of its area inside the output, or whose centre falls outside,
becomes ``ignore`` (a don't-care for the loss); a word with nothing inside is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import cv2
import numpy as np
import shapely
from shapely.geometry import box as shapely_box

from synthloc.data.sample import Sample

__all__ = [
    "AugmentConfig",
    "affine_warp_sample",
    "augment",
    "chars_per_word",
    "inside_fractions",
    "photometric_jitter",
    "random_geometry",
    "resize_to_fit",
    "to_grayscale",
]


@dataclass
class AugmentConfig:
    """Augmentation settings.

    size: side of the square training crop in pixels; ``None`` resizes the whole image so
        its long side is ``max_side`` (no crop; batches are then padded to their maximum).
    scale_range: random zoom factor range, multiplied onto the scale that fits the image's
        long side to ``size`` (log-uniform).
    rotate_prob / rotate_max_deg: probability of a rotation and its uniform range (degrees).
    word_crop_prob: probability that the crop is placed so a random non-ignored word's centre
        lies inside it (otherwise uniform over all valid offsets).
    brightness / contrast / saturation: maximum relative jitter (0 disables).
    hue_deg: maximum hue shift in degrees.
    grayscale_prob: probability of converting to gray (kept 3-channel).
    blur_prob / noise_std: probability of a light Gaussian blur; std of additive noise (0-255).
    min_inside_fraction: words with less of their area inside the output become ignore.
    """

    size: int | None = 384
    max_side: int = 512
    scale_range: tuple[float, float] = (0.7, 1.4)
    rotate_prob: float = 0.3
    rotate_max_deg: float = 10.0
    word_crop_prob: float = 0.8
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    hue_deg: float = 6.0
    grayscale_prob: float = 0.1
    blur_prob: float = 0.1
    noise_std: float = 2.0
    min_inside_fraction: float = 0.5


def chars_per_word(words: list[str]) -> np.ndarray:
    """Number of character quads each word owns: its non-whitespace characters (int [N])."""
    return np.array([sum(1 for ch in w if not ch.isspace()) for w in words], dtype=np.int64)


def inside_fractions(word_quads: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Fraction of each quad's area inside the image rectangle ``[0, W] x [0, H]``.

    word_quads: float [N, 4, 2]. Returns float64 [N] in [0, 1]; degenerate quads (zero area)
    count as inside when their centre is inside.
    """
    quads = np.asarray(word_quads, dtype=np.float64).reshape(-1, 4, 2)
    if len(quads) == 0:
        return np.zeros((0,), np.float64)
    height, width = out_hw
    frame = shapely_box(0.0, 0.0, float(width), float(height))
    polygons = shapely.make_valid(shapely.polygons(quads))
    areas = shapely.area(polygons)
    inside = shapely.area(shapely.intersection(polygons, frame))
    centres = quads.mean(axis=1)
    centre_in = (
        (centres[:, 0] >= 0)
        & (centres[:, 0] < width)
        & (centres[:, 1] >= 0)
        & (centres[:, 1] < height)
    )
    safe = np.where(areas > 1e-9, areas, 1.0)
    return np.where(areas > 1e-9, np.clip(inside / safe, 0.0, 1.0), centre_in.astype(np.float64))


def affine_warp_sample(
    sample: Sample,
    matrix: np.ndarray,
    out_hw: tuple[int, int],
    min_inside_fraction: float = 0.5,
) -> Sample:
    """Warp image and quads with one affine map; mark cut words ignore, drop vanished ones.

    matrix: float [2, 3] mapping source pixel coordinates to output coordinates (continuous
    coordinates: pixel (i, j) covers [j, j+1] x [i, i+1]). out_hw: (height, width).
    """
    height, width = out_hw
    m = np.asarray(matrix, dtype=np.float64)
    # cv2 samples at integer pixel positions; shifting by half a pixel on both sides makes
    # the continuous-coordinate map exact (pixel centres at +0.5).
    shift_in = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
    shift_out = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], np.float64)
    m3 = shift_out @ np.vstack([m, [0, 0, 1]]) @ shift_in
    image = cv2.warpAffine(
        sample.image,
        m3[:2],
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )

    def move(quads: np.ndarray) -> np.ndarray:
        pts = quads.reshape(-1, 2).astype(np.float64)
        moved = pts @ m[:, :2].T + m[:, 2]
        return moved.reshape(-1, 4, 2).astype(np.float32)

    word_quads = move(sample.word_quads)
    char_quads = move(sample.char_quads)
    fractions = inside_fractions(word_quads, out_hw)
    keep = fractions > 0.0
    ignore = sample.ignore | (fractions < min_inside_fraction)
    counts = chars_per_word(sample.words)
    if int(counts.sum()) == len(char_quads):
        char_keep = np.repeat(keep, counts)
        char_quads = char_quads[char_keep]
    else:
        # Character quads that do not line up with the words cannot be filtered per word.
        char_quads = np.zeros((0, 4, 2), np.float32)
    return Sample(
        image=image,
        word_quads=word_quads[keep],
        words=[w for w, k in zip(sample.words, keep) if k],
        char_quads=char_quads,
        ignore=ignore[keep],
        name=sample.name,
    )


def _crop_offset(
    lo: float, hi: float, crop: int, target: float | None, rng: np.random.Generator
) -> float:
    """Pick the crop start along one axis for content spanning [lo, hi].

    If the content is wider than the crop, the start is drawn in [lo, hi - crop] (restricted
    so ``target`` lies inside the crop when given); otherwise the content is placed at a random
    position inside the crop.
    """
    if hi - lo <= crop:
        return float(rng.uniform(hi - crop, lo))
    start_min, start_max = lo, hi - crop
    if target is not None:
        margin = min(crop * 0.15, crop / 2)
        start_min = max(start_min, target - crop + margin)
        start_max = min(start_max, target - margin)
        if start_min > start_max:
            start_min = start_max = float(np.clip(target - crop / 2, lo, hi - crop))
    return float(rng.uniform(start_min, start_max))


def random_geometry(
    sample: Sample, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int]]:
    """Draw rotation, scale and crop; return the 2x3 source->output matrix and output (h, w)."""
    height, width = sample.image.shape[:2]
    if cfg.size is None:
        scale = cfg.max_side / max(height, width)
        out_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
        return np.array([[scale, 0, 0], [0, scale, 0]], np.float64), out_hw

    crop = int(cfg.size)
    lo_s, hi_s = cfg.scale_range
    scale = crop / max(height, width) * math.exp(rng.uniform(math.log(lo_s), math.log(hi_s)))
    angle = 0.0
    if cfg.rotate_max_deg > 0 and rng.random() < cfg.rotate_prob:
        angle = math.radians(rng.uniform(-cfg.rotate_max_deg, cfg.rotate_max_deg))
    cos_a, sin_a = math.cos(angle) * scale, math.sin(angle) * scale
    cx, cy = width / 2.0, height / 2.0
    # Rotate + scale about the image centre: p' = A (p - c).
    lin = np.array([[cos_a, -sin_a], [sin_a, cos_a]], np.float64)
    offset = -lin @ np.array([cx, cy])
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    moved = corners @ lin.T + offset
    x_lo, y_lo = moved.min(axis=0)
    x_hi, y_hi = moved.max(axis=0)

    target: np.ndarray | None = None
    candidates = np.flatnonzero(~sample.ignore)
    if len(candidates) and rng.random() < cfg.word_crop_prob:
        chosen = int(candidates[rng.integers(len(candidates))])
        target = sample.word_quads[chosen].astype(np.float64).mean(axis=0) @ lin.T + offset
    x0 = _crop_offset(x_lo, x_hi, crop, None if target is None else float(target[0]), rng)
    y0 = _crop_offset(y_lo, y_hi, crop, None if target is None else float(target[1]), rng)
    matrix = np.hstack([lin, (offset - np.array([x0, y0]))[:, None]])
    return matrix, (crop, crop)


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> uint8 [H, W, 3] with equal channels (luma)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _gaussian_quantiles(levels: int = 256) -> np.ndarray:
    """float32 [levels]: standard normal quantiles at the centres of ``levels`` equal bins."""
    normal = NormalDist()
    return np.array([normal.inv_cdf((k + 0.5) / levels) for k in range(levels)], np.float32)


_NOISE_QUANTILES = _gaussian_quantiles()


def photometric_jitter(
    image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """Brightness, contrast, saturation, hue jitter, blur, noise, optional grayscale.

    image: uint8 [H, W, 3] RGB. Returns a new uint8 [H, W, 3]. Geometry is unchanged.
    Hue and saturation act on the uint8 HSV image through lookup tables; contrast and
    brightness are one affine map applied by lookup table.  The noise is Gaussian, drawn by
    inverse-CDF lookup of uniform bytes (256 levels, so its tails stop near 2.9 sigma): a
    fraction of the cost of drawing a float normal per pixel, which matters in a data loader
    that shares two cores with training.
    """
    src = image
    if cfg.saturation > 0 or cfg.hue_deg > 0:
        hue_shift = rng.uniform(-cfg.hue_deg, cfg.hue_deg) * 256.0 / 360.0
        sat_gain = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
        levels = np.arange(256, dtype=np.float64)
        table = np.stack(
            [
                np.mod(levels + hue_shift, 256.0).astype(np.uint8),
                np.clip(levels * sat_gain, 0, 255).astype(np.uint8),
                levels.astype(np.uint8),
            ],
            axis=1,
        )[None]
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)
        src = cv2.cvtColor(cv2.LUT(hsv, table), cv2.COLOR_HSV2RGB_FULL)
    gain, bias = 1.0, 0.0
    if cfg.contrast > 0:
        contrast = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        mean = float(np.mean(cv2.mean(src)[:3]))
        gain, bias = contrast, (1.0 - contrast) * mean
    if cfg.brightness > 0:
        brightness = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
        gain, bias = gain * brightness, bias * brightness
    out = cv2.LUT(src, (np.arange(256, dtype=np.float64) * gain + bias).astype(np.float32))
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        sigma = float(rng.uniform(0.3, 1.2))
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma)
    if cfg.noise_std > 0:
        uniform = np.asarray(rng.integers(0, 256, size=out.shape, dtype=np.uint8))
        out = cv2.add(out, cv2.LUT(uniform, _NOISE_QUANTILES * np.float32(cfg.noise_std)))
    # Clamp below at 0, then round and saturate at 255 on the way back to uint8.
    result = cv2.convertScaleAbs(np.maximum(out, np.float32(0.0)))
    if cfg.grayscale_prob > 0 and rng.random() < cfg.grayscale_prob:
        result = to_grayscale(result)
    return result


def resize_to_fit(sample: Sample, max_side: int, min_inside_fraction: float = 0.5) -> Sample:
    """Scale the whole sample so its long side is ``max_side`` (no crop, no randomness)."""
    height, width = sample.image.shape[:2]
    scale = max_side / max(height, width)
    out_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
    matrix = np.array([[out_hw[1] / width, 0, 0], [0, out_hw[0] / height, 0]], np.float64)
    return affine_warp_sample(sample, matrix, out_hw, min_inside_fraction)


def augment(sample: Sample, cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """Random geometry (scale, rotation, crop) then photometric jitter.

    Returns a new Sample whose image is uint8 [size, size, 3] (or the fitted size when
    ``cfg.size`` is None) and whose quads were moved by the same map as the pixels.
    """
    matrix, out_hw = random_geometry(sample, cfg, rng)
    warped = affine_warp_sample(sample, matrix, out_hw, cfg.min_inside_fraction)
    return replace(warped, image=photometric_jitter(warped.image, cfg, rng))
