"""Real word sprites: word crops of real photos, cut out by their quad, as a text source.

A folder in the ICDAR 2015 word-recognition layout (``word_N.png``, ``gt.txt`` with
``word_N.png, "transcription"``, ``coords.txt`` with ``word_N.png,x1,y1,...,x4,y4``, UTF-8 with
or without BOM) gives real text appearance: fonts, wear, blur, glare. Each crop's quad is
rectified to an upright rectangle; the engine pastes that rectangle into a region in
perspective, so its word quad is exact (the rectangle's corners).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from synthloc.synth.fonts import RENDERABLE

_GT_LINE = re.compile(r'^\s*([^,]+?)\s*,\s*"(.*)"\s*$')
_MIN_SIDE = 8  # px: smaller rectified crops are unreadable and skipped


class SpriteBank:
    """Word crops available as sprites, loaded lazily (with a small cache).

    Only single words made of characters the engine can label (no spaces, printable ASCII)
    are used. Raises ``ValueError("<file>: <problem>")`` for a missing or malformed index.
    """

    def __init__(self, folder: str | Path, cache_size: int = 256):
        self.folder = Path(folder)
        coords_path, gt_path = self.folder / "coords.txt", self.folder / "gt.txt"
        for path in (coords_path, gt_path):
            if not path.is_file():
                raise ValueError(f"{path}: not found (expected a word-crop folder)")
        texts: dict[str, str] = {}
        for line in gt_path.read_text(encoding="utf-8-sig").splitlines():
            match = _GT_LINE.match(line)
            if match:
                texts[match.group(1)] = match.group(2).replace('\\"', '"')
        self.names: list[str] = []
        self.quads: list[np.ndarray] = []
        self.words: list[str] = []
        for number, line in enumerate(coords_path.read_text(encoding="utf-8-sig").splitlines()):
            parts = [p.strip() for p in line.split(",")]
            if not line.strip():
                continue
            if len(parts) != 9:
                raise ValueError(f"{coords_path}:{number + 1}: expected name and 8 coordinates")
            word = texts.get(parts[0], "")
            if not word or word == "###" or not set(word) <= set(RENDERABLE) or " " in word:
                continue
            try:
                quad = np.array([float(v) for v in parts[1:]], np.float64).reshape(4, 2)
            except ValueError as exc:
                raise ValueError(f"{coords_path}:{number + 1}: bad coordinate ({exc})") from exc
            self.names.append(parts[0])
            self.quads.append(quad)
            self.words.append(word)
        if not self.names:
            raise ValueError(f"{self.folder}: no usable word crops")
        self._cache: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self.names)

    def sprite(self, index: int) -> np.ndarray | None:
        """The rectified word, float32 [h, w, 3] RGB, or None if the crop is unusable."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        bgr = cv2.imread(str(self.folder / self.names[index]), cv2.IMREAD_COLOR)
        result = None
        if bgr is not None:
            result = rectify_quad(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.quads[index])
        self._cache[index] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result


def rectify_quad(image: np.ndarray, quad: np.ndarray) -> np.ndarray | None:
    """The quad's content (continuous pixel coords, clockwise from top-left) as an upright
    rectangle float32 [h, w, 3], sides the quad's mean side lengths; None if too small."""
    width = 0.5 * (np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3]))
    height = 0.5 * (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1]))
    w, h = round(width), round(height)
    if min(w, h) < _MIN_SIDE:
        return None
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    # Continuous coordinates -> OpenCV pixel-centre indices on both sides.
    transform = cv2.getPerspectiveTransform(
        (quad - 0.5).astype(np.float32), (target - 0.5).astype(np.float32)
    )
    out = cv2.warpPerspective(
        image, transform, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out.astype(np.float32)
