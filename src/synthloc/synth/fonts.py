"""Font discovery and loading (Pillow FreeType), with glyph coverage checks.

Fonts come from the system font folders, user folders from the config, and, when none can be
used, Pillow's embedded scalable font (``ImageFont.load_default(size=...)``, Pillow >= 10.1), so
the engine works on a machine without any installed font.
"""

from __future__ import annotations

import functools
import os
import string
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont

FONT_SUFFIXES = (".ttf", ".otf")
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
)
# Fonts whose letters are not Latin letters (symbols, dingbats, maths, emoji).
_EXCLUDED_NAME_PARTS = ("symbol", "dingbat", "d050000l", "math", "emoji", "cursor", "icons")
# Characters the engine may draw; everything else is dropped from the text before rendering.
RENDERABLE = string.ascii_letters + string.digits + string.punctuation + " "
# Every usable font must have all of these.
_REQUIRED = string.ascii_letters + string.digits
EMBEDDED_FONT = "<pillow-embedded>"

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont
# Em size at which per-font metrics are measured for size estimates (they scale linearly).
REFERENCE_SIZE = 32


@dataclass(frozen=True)
class Glyph:
    """One rendered character.

    bitmap: uint8 [h, w] coverage, trimmed to the ink (empty [0, 0] for blank glyphs).
    left, top: the bitmap's top-left relative to the pen position on the baseline (y down).
    advance: horizontal pen advance in pixels.
    """

    bitmap: np.ndarray
    left: int
    top: int
    advance: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Ink bounds (x0, y0, x1, y1) relative to the pen position on the baseline."""
        h, w = self.bitmap.shape
        return self.left, self.top, self.left + w, self.top + h


def render_glyph(font: FontType, ch: str) -> Glyph:
    """Rasterise ``ch`` and trim the bitmap to its ink."""
    core, offset = font.getmask2(ch, mode="L", anchor="ls")  # type: ignore[union-attr,call-arg]
    bitmap = np.asarray(Image.Image()._new(core), dtype=np.uint8)
    advance = float(font.getlength(ch))
    if bitmap.size == 0 or not bitmap.any():
        return Glyph(np.zeros((0, 0), np.uint8), 0, 0, advance)
    rows = np.flatnonzero(bitmap.any(axis=1))
    cols = np.flatnonzero(bitmap.any(axis=0))
    trimmed = np.ascontiguousarray(bitmap[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    return Glyph(trimmed, int(offset[0]) + int(cols[0]), int(offset[1]) + int(rows[0]), advance)


class SizedFont:
    """A font at one pixel size, with its glyphs cached by the library."""

    def __init__(self, library: FontLibrary, path: str, size: int):
        self.library = library
        self.path = path
        self.size = size
        self.font = library.load(path, size)
        ascent, descent = self.font.getmetrics()  # type: ignore[union-attr]
        self.ascent, self.descent = int(ascent), int(descent)

    def glyph(self, ch: str) -> Glyph:
        return self.library.glyph(self.path, self.size, ch)


def discover_fonts(font_dirs: list[str], use_system_fonts: bool = True) -> list[str]:
    """Sorted font file paths from ``font_dirs`` (and system folders), symbol fonts excluded."""
    roots = list(font_dirs)
    if use_system_fonts:
        roots += list(SYSTEM_FONT_DIRS)
    found: set[str] = set()
    for root in roots:
        base = Path(os.path.expanduser(root))
        if not base.is_dir():
            continue
        for p in base.rglob("*"):
            name = p.name.lower()
            if p.suffix.lower() in FONT_SUFFIXES and not any(
                part in name for part in _EXCLUDED_NAME_PARTS
            ):
                found.add(str(p))
    return sorted(found)


class FontLibrary:
    """Fonts available to the engine, with a small cache of loaded (font, size) objects.

    Coverage is checked lazily the first time a font is picked; fonts missing basic Latin
    letters or digits are never picked again. All choices use the caller's generator.
    """

    def __init__(self, font_dirs: list[str], use_system_fonts: bool = True, cache_size: int = 256):
        self.paths = discover_fonts(font_dirs, use_system_fonts)
        self._coverage: dict[str, frozenset[str] | None] = {}
        self._loaded: OrderedDict[tuple[str, int], FontType] = OrderedDict()
        self._cache_size = cache_size
        self._glyphs: OrderedDict[tuple[str, int, str], Glyph] = OrderedDict()
        self._glyph_cache_size = 64 * cache_size

    def load(self, path: str, size: int) -> FontType:
        """The font at ``path`` (or :data:`EMBEDDED_FONT`) with em size ``size`` pixels."""
        key = (path, int(size))
        font = self._loaded.get(key)
        if font is not None:
            self._loaded.move_to_end(key)
            return font
        if path == EMBEDDED_FONT:
            font = ImageFont.load_default(size=int(size))
        else:
            # Basic layout: identical on machines with and without libraqm.
            font = ImageFont.truetype(path, int(size), layout_engine=ImageFont.Layout.BASIC)
        self._loaded[key] = font
        if len(self._loaded) > self._cache_size:
            self._loaded.popitem(last=False)
        return font

    def glyph(self, path: str, size: int, ch: str) -> Glyph:
        """The cached glyph of ``ch`` in font ``path`` at ``size`` px."""
        key = (path, int(size), ch)
        glyph = self._glyphs.get(key)
        if glyph is None:
            glyph = render_glyph(self.load(path, size), ch)
            self._glyphs[key] = glyph
            if len(self._glyphs) > self._glyph_cache_size:
                self._glyphs.popitem(last=False)
        return glyph

    def sized(self, path: str, size: int) -> SizedFont:
        return SizedFont(self, path, max(1, int(size)))

    def coverage(self, path: str) -> frozenset[str] | None:
        """Renderable characters the font has, or None if it is unusable."""
        if path in self._coverage:
            return self._coverage[path]
        result: frozenset[str] | None
        try:
            missing = _signature(self.glyph(path, REFERENCE_SIZE, "\U0010fffd"))
            have = {" "}
            for ch in RENDERABLE:
                sig = _signature(self.glyph(path, REFERENCE_SIZE, ch))
                if ch != " " and sig is not None and sig != missing:
                    have.add(ch)
            result = frozenset(have)
        except OSError:
            result = None
        if result is not None and not set(_REQUIRED) <= result:
            result = None
        self._coverage[path] = result
        return result

    def line_width(self, path: str, text: str, size: float) -> float:
        """Estimated advance width of ``text`` at ``size`` px (from reference-size metrics)."""
        total = sum(self.glyph(path, REFERENCE_SIZE, ch).advance for ch in text)
        return total * size / REFERENCE_SIZE

    def pick(self, rng: np.random.Generator, signage: bool = False) -> tuple[str, frozenset[str]]:
        """A random usable font path and its character coverage (embedded font if none).

        signage: draw fonts with :func:`signage_weight` (bold, condensed, sans favoured)
        instead of uniformly.
        """
        candidates = list(self.paths)
        weights = [signage_weight(p) for p in candidates]
        # Bounded: each failed font is removed; the embedded font is the last resort.
        while candidates:
            if signage:
                w = np.asarray(weights, np.float64)
                i = int(rng.choice(len(candidates), p=w / w.sum()))
            else:
                i = int(rng.integers(len(candidates)))
            cov = self.coverage(candidates[i])
            if cov is not None:
                return candidates[i], cov
            candidates.pop(i)
            weights.pop(i)
        cov = self.coverage(EMBEDDED_FONT)
        return EMBEDDED_FONT, cov if cov is not None else frozenset(RENDERABLE)


_SERIF_PARTS = ("serif", "roman", "tinos", "caladea", "c059", "p052", "bookman", "z003", "times")
_MONO_PARTS = ("mono", "cousine", "courier")
_BOLD_PARTS = ("bold", "black", "heavy", "demi", "semibold", "medium", "extrabold")
_CONDENSED_PARTS = ("cond", "narrow")
_THIN_PARTS = ("thin", "hairline", "light", "extralight")
_SLANTED_PARTS = ("italic", "oblique", "ita")


@functools.lru_cache(maxsize=4096)
def signage_weight(path: str) -> float:
    """Relative chance of a font on signs, from its file name: bold and condensed sans faces
    (shop fronts, street signs, labels) are favoured; thin, slanted, serif and mono rarer."""
    name = Path(path).stem.lower().replace("sans", "_s_")
    weight = 1.0
    if any(p in name for p in _SERIF_PARTS) and "_s_" not in name:
        weight *= 0.35
    elif any(p in name for p in _MONO_PARTS):
        weight *= 0.3
    if any(p in name for p in _BOLD_PARTS):
        weight *= 3.0
    if any(p in name for p in _CONDENSED_PARTS):
        weight *= 2.0
    if any(p in name for p in _THIN_PARTS):
        weight *= 0.3
    if any(p in name for p in _SLANTED_PARTS):
        weight *= 0.4
    return weight


def _signature(glyph: Glyph) -> bytes | None:
    """Identity of a glyph's raster (None if it draws nothing)."""
    if glyph.bitmap.size == 0:
        return None
    return repr((glyph.bitmap.shape, glyph.left, glyph.top)).encode() + glyph.bitmap.tobytes()
