"""Drawing ground truth on images, to look at what the engine (or a loader) produced."""

from __future__ import annotations

import os

import numpy as np

from synthloc.atomic import write_bytes_atomic
from synthloc.data.sample import Sample

WORD_COLOUR = (0, 255, 0)  # RGB green
CHAR_COLOUR = (255, 0, 0)  # RGB red
IGNORE_COLOUR = (255, 255, 0)  # RGB yellow: don't-care words


def draw_quads(
    image: np.ndarray,
    word_quads: np.ndarray,
    char_quads: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``image`` with character quads (thin red) and word quads (green) drawn.

    image: uint8 [H, W, 3] RGB. word_quads: float [N, 4, 2]; char_quads: float [M, 4, 2];
    pixel coordinates. Words flagged in ``ignore`` [N] are drawn yellow. A small dot marks each
    word's first (top-left) corner so the point order can be checked by eye.
    """
    import cv2

    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    # Sub-pixel drawing: cv2 takes fixed-point integer coordinates with `shift` fraction bits.
    shift = 4
    scale = float(1 << shift)
    if char_quads is not None and len(char_quads):
        pts = np.rint(np.asarray(char_quads, np.float64).reshape(-1, 4, 2) * scale).astype(np.int32)
        cv2.polylines(canvas, list(pts), True, CHAR_COLOUR, 1, cv2.LINE_AA, shift)
    quads = np.asarray(word_quads, np.float64).reshape(-1, 4, 2)
    flags = np.zeros(len(quads), bool) if ignore is None else np.asarray(ignore, bool)
    for quad, ignored in zip(quads, flags):
        pts = np.rint(quad * scale).astype(np.int32)
        colour = IGNORE_COLOUR if ignored else WORD_COLOUR
        cv2.polylines(canvas, [pts], True, colour, 2, cv2.LINE_AA, shift)
        cv2.circle(
            canvas, tuple(int(v) for v in pts[0]), 3 << shift, colour, -1, cv2.LINE_AA, shift
        )
    return canvas


def draw_sample(sample: Sample) -> np.ndarray:
    """:func:`draw_quads` applied to a :class:`Sample`."""
    return draw_quads(sample.image, sample.word_quads, sample.char_quads, sample.ignore)


def encode_preview(sample: Sample) -> bytes:
    """PNG bytes of :func:`draw_sample`."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(draw_sample(sample)[:, :, ::-1]))
    if not ok:
        raise ValueError(f"could not encode a preview of {sample.name!r}")
    return bytes(buf.tobytes())


def save_preview(path: str | os.PathLike[str], sample: Sample) -> None:
    """Write a PNG of ``sample`` with its quads drawn (atomically)."""
    write_bytes_atomic(path, encode_preview(sample))
