"""Procedural default backgrounds: textured planes in perspective, from a seeded generator.

Used when no photos are given (a fresh machine), so nothing needs downloading. A scene is a
back wall (plaster, brick, wood or stone texture) with one to three boards/panels on it, each
a textured plane seen in perspective, with soft lighting gradients and sensor noise.
"""

from __future__ import annotations

import cv2
import numpy as np

from synthloc.synth.backgrounds import Background


def _value_noise(rng: np.random.Generator, hw: tuple[int, int], octaves: int = 4) -> np.ndarray:
    """Smooth fractal noise in [0, 1], float32 [H, W]."""
    h, w = hw
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cells = int(rng.integers(2, 5))
    for _ in range(octaves):
        grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cells *= 2
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _palette(rng: np.random.Generator) -> np.ndarray:
    """A plausible surface colour (RGB float 0..255): mostly muted, sometimes saturated."""
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(0.05, 0.7) * 255, rng.uniform(0.25, 0.95) * 255]]],
        np.float32,
    )
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _texture(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A flat texture, float32 [H, W, 3] in 0..255."""
    h, w = hw
    base = _palette(rng)
    kind = int(rng.integers(0, 5))
    noise = _value_noise(rng, hw)
    if kind == 0:  # plaster / paint: low-contrast mottling
        shade = 0.9 + 0.2 * noise
    elif kind == 1:  # wood: grain lines along x, wobbling with noise stretched along x
        wobble = _value_noise(rng, (h, max(w // 16, 2)))
        wobble = cv2.resize(wobble, (w, h), interpolation=cv2.INTER_LINEAR)
        rows = np.arange(h, dtype=np.float32)[:, None] / h
        grain = np.sin(2 * np.pi * (rows * rng.uniform(8, 25) + 1.5 * wobble))
        shade = 0.82 + 0.1 * grain + 0.08 * noise
    elif kind == 2:  # brick / tiles: mortar grid
        bh = int(rng.integers(max(h // 14, 6), max(h // 6, 8)))
        bw = bh * int(rng.integers(2, 4))
        yy, xx = np.mgrid[0:h, 0:w]
        row = yy // bh
        xs = (xx + (row % 2) * (bw // 2)) % bw
        mortar = (yy % bh < 2) | (xs < 2)
        shade = 0.85 + 0.25 * noise
        shade = np.where(mortar, 0.55, shade)
    elif kind == 3:  # stone / concrete: speckle
        speck = rng.random(hw, dtype=np.float32)
        shade = 0.8 + 0.25 * noise + 0.12 * (speck - 0.5)
    else:  # painted metal / board: very smooth
        shade = 0.95 + 0.08 * noise
    rgb = base[None, None, :] * shade[:, :, None].astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.float32)


def _random_quad(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A convex quad (TL, TR, BR, BL) for a board seen in mild perspective."""
    bw = rng.uniform(0.3, 0.75) * w
    bh = rng.uniform(0.2, 0.5) * h
    x0 = rng.uniform(0.02 * w, w - bw - 0.02 * w)
    y0 = rng.uniform(0.02 * h, h - bh - 0.02 * h)
    quad = np.array([[x0, y0], [x0 + bw, y0], [x0 + bw, y0 + bh], [x0, y0 + bh]], np.float32)
    jitter = rng.uniform(-0.08, 0.08, size=(4, 2)).astype(np.float32) * np.array(
        [bw, bh], np.float32
    )
    return quad + jitter


def default_background(rng: np.random.Generator, size: int = 512) -> Background:
    """A procedural scene (walls and boards in perspective); same rng state -> same image.

    Returns a :class:`Background` whose image is uint8 [H, W, 3] RGB with long side ``size``.
    """
    aspect = float(rng.choice([1.0, 4 / 3, 3 / 2]))
    if rng.random() < 0.5:
        h, w = round(size / aspect), size
    else:
        h, w = size, round(size / aspect)
    canvas = _texture(rng, (h, w))
    # A second wall meeting the first at a vertical corner, for depth-like structure.
    if rng.random() < 0.5:
        split = int(rng.uniform(0.3, 0.7) * w)
        other = _texture(rng, (h, w))
        canvas[:, split:] = other[:, split:] * rng.uniform(0.6, 0.9)
    for _ in range(int(rng.integers(1, 4))):
        quad = _random_quad(rng, h, w)
        th, tw = 128, 256
        tex = _texture(rng, (th, tw))
        src = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
        homography = cv2.getPerspectiveTransform(src, quad)
        warped = cv2.warpPerspective(tex, homography, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(
            np.ones((th, tw), np.float32), homography, (w, h), flags=cv2.INTER_LINEAR
        )
        # A thin dark frame makes the board edge read as a physical edge.
        frame = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - mask
        canvas = canvas * (1 - mask[:, :, None]) + warped * mask[:, :, None]
        canvas *= (1 - 0.5 * np.clip(frame, 0, 1))[:, :, None]
    # Lighting: a broad gradient plus a soft vignette.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h).astype(np.float32)
    light = 0.85 + 0.3 * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2).astype(np.float32)
    light *= 1.0 - 0.35 * r2
    canvas *= light[:, :, None]
    canvas += rng.normal(0, 2.0, size=canvas.shape).astype(np.float32)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return Background(image=image, depth=None, seg=None, name="default")
