"""Typesetting: a block of words -> a glyph coverage mask with exact word and char boxes.

Each character's cached, ink-trimmed bitmap is placed at its pen position, so a character's
box is exactly the bounds of the ink drawn for it; a word's box is the union of its
characters' boxes. A curved baseline bends single short words along an arc.
All coordinates are continuous pixels of the mask (pixel i covers [i, i + 1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from synthloc.geometry import order_quad
from synthloc.synth.fonts import SizedFont
from synthloc.synth.text_source import TextBlock


@dataclass
class TypesetText:
    """A typeset text block.

    mask: uint8 [h, w] glyph coverage (255 = ink).
    word_quads: float64 [N, 4, 2]; char_quads: float64 [M, 4, 2], one per non-space char.
    words: N strings. ink_box: (x0, y0, x1, y1) bounds of all ink.
    """

    mask: np.ndarray
    word_quads: np.ndarray
    char_quads: np.ndarray
    words: list[str]
    ink_box: tuple[float, float, float, float]


@dataclass
class Layout:
    """Choices made by the caller: line spacing (in units of ascent + descent), alignment
    (0 left, 1 centre, 2 right) and curvature (arc height / word width; 0 = straight, signed)."""

    spacing: float = 1.15
    align: int = 0
    curvature: float = 0.0


def _box_quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def typeset(
    block: TextBlock, font: SizedFont, layout: Layout, margin: int = 4
) -> TypesetText | None:
    """Lay out ``block`` with ``font``; None if nothing visible would be drawn."""
    if layout.curvature != 0 and len(block.lines) == 1 and len(block.lines[0]) == 1:
        return _typeset_curved(block.lines[0][0], font, layout.curvature, margin)
    return _typeset_straight(block, font, layout, margin)


def _pen_positions(font: SizedFont, text: str) -> list[float]:
    xs, x = [], 0.0
    for ch in text:
        xs.append(x)
        x += font.glyph(ch).advance
    return xs


def _typeset_straight(
    block: TextBlock, font: SizedFont, layout: Layout, margin: int
) -> TypesetText | None:
    line_height = (font.ascent + font.descent) * layout.spacing
    lines = [" ".join(words) for words in block.lines]
    pens = [_pen_positions(font, s) for s in lines]
    widths = [p[-1] + font.glyph(s[-1]).advance if s else 0.0 for s, p in zip(lines, pens)]
    width = max(widths) if widths else 0.0
    height = line_height * (len(lines) - 1) + font.ascent + font.descent
    # Ink may overhang the advance box (italics, swashes): leave room of one em.
    overhang = font.size
    canvas_w = math.ceil(width) + 2 * (margin + overhang)
    canvas_h = math.ceil(height) + 2 * (margin + overhang)
    mask = np.zeros((canvas_h, canvas_w), np.uint8)
    word_quads: list[np.ndarray] = []
    char_quads: list[np.ndarray] = []
    words: list[str] = []
    for li, (line, pen, line_w) in enumerate(zip(lines, pens, widths)):
        x_line = margin + overhang + [0.0, (width - line_w) / 2, width - line_w][layout.align]
        baseline = round(margin + overhang + font.ascent + li * line_height)
        current: list[int] | None = None
        for ch, x in zip(line, pen):
            if ch == " ":
                current = None
                continue
            glyph = font.glyph(ch)
            gx, gy = round(x_line + x) + glyph.left, baseline + glyph.top
            gh, gw = glyph.bitmap.shape
            if gh == 0:
                # No ink (cannot happen for covered characters): a 1-pixel box keeps counts.
                box = [gx, baseline - 1, gx + 1, baseline]
            else:
                region = mask[gy : gy + gh, gx : gx + gw]
                np.maximum(region, glyph.bitmap, out=region)
                box = [gx, gy, gx + gw, gy + gh]
            char_quads.append(_box_quad(*box))
            if current is None:
                current = list(box)
                word_quads.append(np.zeros((4, 2)))
            else:
                current = [
                    min(current[0], box[0]),
                    min(current[1], box[1]),
                    max(current[2], box[2]),
                    max(current[3], box[3]),
                ]
            word_quads[-1] = _box_quad(*current)
        words += line.split()
    if not word_quads:
        return None
    wq = np.stack(word_quads)
    lo, hi = wq.reshape(-1, 2).min(axis=0), wq.reshape(-1, 2).max(axis=0)
    return TypesetText(
        mask=mask,
        word_quads=wq,
        char_quads=np.stack(char_quads),
        words=words,
        ink_box=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
    )


def _typeset_curved(
    word: str, font: SizedFont, curvature: float, margin: int
) -> TypesetText | None:
    """Characters along a circular arc, each glyph rotated to the arc's tangent."""
    pens = _pen_positions(font, word)
    width = pens[-1] + font.glyph(word[-1]).advance
    if width <= 0:
        return None
    sagitta = curvature * width  # arc height; > 0 bends the ends up
    radius = (width * width / 4 + sagitta * sagitta) / (2 * abs(sagitta))
    sign = math.copysign(1.0, sagitta)
    pad = math.ceil(abs(sagitta)) + font.ascent + font.descent + margin
    canvas_w = math.ceil(width) + 2 * pad
    canvas_h = font.ascent + font.descent + 2 * pad
    mask = np.zeros((canvas_h, canvas_w), np.uint8)
    centre_x = pad + width / 2
    base_y = pad + font.ascent
    char_quads: list[np.ndarray] = []
    for ch, x in zip(word, pens):
        glyph = font.glyph(ch)
        gh, gw = glyph.bitmap.shape
        if gh == 0:
            continue
        x0, _, x1, _ = glyph.box
        # Arc coordinate of the glyph's centre, relative to the middle of the word.
        u = x + (x0 + x1) / 2 - width / 2
        u = max(-radius * 0.95, min(radius * 0.95, u))
        # sign > 0: the ends rise (a smile); the tangent turns anticlockwise on the left.
        angle = -math.asin(u / radius) * sign
        drop = sign * (radius - math.sqrt(radius * radius - u * u))
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s], [s, c]])
        # Bitmap coords -> mask coords: rotate about the glyph's baseline-centre point.
        pivot_bitmap = np.array([(x1 - x0) / 2, -glyph.top])
        pivot_mask = np.array([centre_x + u, base_y - drop])
        shift = pivot_mask - rot @ pivot_bitmap
        # OpenCV samples pixel centres at integers; the continuous map has them at +0.5.
        shift_cv = shift + rot @ np.array([0.5, 0.5]) - 0.5
        warped = cv2.warpAffine(
            glyph.bitmap,
            np.hstack([rot, shift_cv[:, None]]),
            (canvas_w, canvas_h),
            flags=cv2.INTER_LINEAR,
        )
        np.maximum(mask, warped, out=mask)
        char_quads.append(_box_quad(0, 0, gw, gh) @ rot.T + shift)
    if not char_quads:
        return None
    cq = np.stack(char_quads)
    rect = cv2.minAreaRect(cq.reshape(-1, 2).astype(np.float32))
    word_quad = order_quad(cv2.boxPoints(rect).astype(np.float64))
    lo, hi = cq.reshape(-1, 2).min(axis=0), cq.reshape(-1, 2).max(axis=0)
    return TypesetText(
        mask=mask,
        word_quads=word_quad[None],
        char_quads=cq,
        words=[word],
        ink_box=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
    )
