"""Whole-image degradations after blending: what a phone camera does to incidental text.

Sampled per image with the caller's generator: motion blur (random direction and length),
defocus blur, sensor noise, gamma / contrast / brightness, a colour cast, down- then
up-scaling, and JPEG compression at quality 40-95. Geometry never changes (every step keeps
the image size and pixel positions), so the word quads stay exact.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Probability of each degradation per image.
P_MOTION = 0.3
P_DEFOCUS = 0.25
P_NOISE = 0.5
P_TONE = 0.7
P_CAST = 0.4
P_RESCALE = 0.3
P_JPEG = 0.8


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel float32 [k, k] of ``length`` px at ``angle_deg``."""
    k = max(3, math.ceil(length) | 1)
    kernel = np.zeros((k, k), np.float32)
    c = (k - 1) / 2.0
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    half = (length - 1) / 2.0
    p0 = (round(c - dx * half), round(c - dy * half))
    p1 = (round(c + dx * half), round(c + dy * half))
    cv2.line(kernel, p0, p1, 1.0, 1, lineType=cv2.LINE_AA)
    return kernel / max(float(kernel.sum()), 1e-6)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A degraded copy of ``image`` (uint8 [H, W, 3] RGB), same shape; deterministic in ``rng``."""
    # Draw every decision first, so the sequence of draws never depends on pixel values.
    motion = rng.random() < P_MOTION
    motion_len = float(rng.uniform(2.0, 7.0))
    motion_angle = float(rng.uniform(0, 180))
    defocus = rng.random() < P_DEFOCUS
    defocus_sigma = float(rng.uniform(0.4, 1.3))
    noise = rng.random() < P_NOISE
    noise_sigma = float(rng.uniform(1.0, 6.0))
    tone = rng.random() < P_TONE
    gamma = float(np.exp(rng.uniform(-0.35, 0.35)))
    contrast = float(rng.uniform(0.7, 1.15))
    brightness = float(rng.uniform(-25, 25))
    cast = rng.random() < P_CAST
    cast_gain = rng.uniform(0.88, 1.12, 3).astype(np.float32)
    rescale = rng.random() < P_RESCALE
    factor = float(rng.uniform(0.45, 0.85))
    jpeg = rng.random() < P_JPEG
    quality = int(rng.integers(40, 96))
    noise_seed = int(rng.integers(2**32))

    out = image.astype(np.float32)
    h, w = out.shape[:2]
    if motion:
        kernel = motion_kernel(motion_len, motion_angle)
        out = np.asarray(cv2.filter2D(out, -1, kernel, borderType=cv2.BORDER_REFLECT), np.float32)
    if defocus:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), defocus_sigma), np.float32)
    if rescale:
        small = (max(1, round(w * factor)), max(1, round(h * factor)))
        reduced = cv2.resize(out, small, interpolation=cv2.INTER_AREA)
        out = np.asarray(cv2.resize(reduced, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    if tone:
        mean = float(out.mean())
        out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
        out = (out - mean) * contrast + mean + brightness
    if cast:
        out = out * cast_gain[None, None, :]
    if noise:
        gen = np.random.default_rng(noise_seed)
        out = out + noise_sigma * gen.standard_normal(out.shape, dtype=np.float32)
    result = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(result, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            result = np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), np.uint8)
    return result
