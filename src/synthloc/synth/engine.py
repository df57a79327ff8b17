"""The scene renderer: text placed on surfaces of a background, with exact ground truth.

Per text instance (a word, a line or a short paragraph): pick a region, build the homography
from a fronto-parallel text plane to the image (depth plane or random rotation + perspective),
rectify the region's free area into that plane, choose a font and a size that fits, typeset,
find a position where the ink lies entirely on free region pixels, warp the glyph mask and its
boxes with the same homography, colour it against the surface, add optional effects, blend.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import cv2
import numpy as np

from synthloc.data.sample import Sample
from synthloc.geometry import apply_homography
from synthloc.synth.backgrounds import Background
from synthloc.synth.blend import (
    POISSON_MARGIN,
    add_border,
    alpha_composite,
    clone_warped,
    paste_warped,
    poisson_blend,
    shade_like_surface,
    shadow_coverage,
)
from synthloc.synth.camera import degrade
from synthloc.synth.colour import ColourPairs, effect_colour, lab_to_rgb, pick_text_colour
from synthloc.synth.config import SynthConfig
from synthloc.synth.fonts import FontLibrary
from synthloc.synth.lexicon import sample_block as sample_lexicon_block
from synthloc.synth.regions import Region, SceneAnalysis, analyse_background
from synthloc.synth.signs import SignPanel, paint_panel, panel_padding, panel_quads
from synthloc.synth.sprites import SpriteBank
from synthloc.synth.text_source import TextBlock, TextSource
from synthloc.synth.typeset import Layout, TypesetText, typeset
from synthloc.synth.warp import random_homography, to_cv_pixels, translation

# Text keeps this far from the image border (Poisson needs room around the glyphs).
_IMAGE_BORDER = POISSON_MARGIN + 3
# A rectified canvas larger than this many image areas means a degenerate, grazing view.
_MAX_CANVAS_AREA_RATIO = 4.0
_SIZE_RETRIES = 3
# Lines and paragraphs shrink their font (up to this many 15% steps) to fit this many chars.
_LINE_SHRINK_STEPS = 4
_LINE_MIN_CHARS = 10
# Illegible (don't-care) text: em size range in pixels at the default 512-px image size.
_ILLEGIBLE_EM = (5.0, 11.0)
# Sign panels take text colours from learned pairs with at least this Lab contrast.
_SIGN_MIN_CONTRAST = 25.0
DONT_CARE = "###"


class AnalysisCache:
    """A small LRU of :class:`SceneAnalysis` keyed by the background's pixels (and maps)."""

    def __init__(self, capacity: int = 16):
        self.capacity = capacity
        self._items: OrderedDict[bytes, SceneAnalysis] = OrderedDict()

    @staticmethod
    def key(background: Background, config: SynthConfig) -> bytes:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr(background.image.shape).encode())
        digest.update(np.ascontiguousarray(background.image).data)
        for extra in (background.depth, background.seg):
            digest.update(b"-" if extra is None else np.ascontiguousarray(extra).data)
        # Only region-analysis settings change the analysis.
        digest.update(
            repr(
                (
                    config.segmentation_side,
                    tuple(config.segmentation_scales),
                    config.edge_gradient,
                    config.min_region_side,
                    config.min_region_aspect,
                    config.max_region_aspect,
                    config.min_region_area,
                    config.min_rect_fill,
                    config.max_region_gradient,
                    config.sky_filter,
                )
            ).encode()
        )
        return digest.digest()

    def get(self, key: bytes) -> SceneAnalysis | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: bytes, analysis: SceneAnalysis) -> None:
        self._items[key] = analysis
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class SceneRenderer:
    """Holds what is expensive to rebuild (fonts, corpus, per-background analysis).

    Build one per process (or DataLoader worker) and call :meth:`render` many times; output
    depends only on the background, the config and the generator, never on what the caches
    hold.
    """

    def __init__(self, config: SynthConfig, cache_size: int = 16):
        self.config = config
        self.fonts = FontLibrary(config.font_dirs, config.use_system_fonts)
        self.cache = AnalysisCache(cache_size)
        self._text: TextSource | None = None
        self._colours: ColourPairs | None = None
        self._sprites: SpriteBank | None = None
        # When a list, every text instance's coverage is appended as (x0, y0, float32 [h, w])
        # in image pixels, before camera degradations (benchmarks/gt_tightness.py).
        self.ink_log: list[tuple[int, int, np.ndarray]] | None = None

    @property
    def text(self) -> TextSource:
        if self._text is None:
            self._text = TextSource(self.config.corpus)
        return self._text

    @property
    def colours(self) -> ColourPairs:
        if self._colours is None:
            self._colours = ColourPairs()
        return self._colours

    @property
    def sprites(self) -> SpriteBank:
        if self._sprites is None:
            if not self.config.sprite_dir:
                raise ValueError("real word sprites need SynthConfig.sprite_dir")
            self._sprites = SpriteBank(self.config.sprite_dir)
        return self._sprites

    def analyse(self, background: Background) -> SceneAnalysis:
        key = AnalysisCache.key(background, self.config)
        analysis = self.cache.get(key)
        if analysis is None:
            analysis = analyse_background(background, self.config)
            self.cache.put(key, analysis)
        return analysis

    def render(self, background: Background, rng: np.random.Generator) -> Sample:
        """Render text into ``background``; see :func:`render_scene`."""
        cfg = self.config
        if background.image.dtype != np.uint8 or background.image.ndim != 3:
            raise ValueError(
                f"background {background.name!r}: expected uint8 [H, W, 3] RGB, got "
                f"{background.image.dtype} {background.image.shape}"
            )
        if background.image.shape[2] != 3:
            raise ValueError(f"background {background.name!r}: expected 3 channels (RGB)")
        image = background.image.astype(np.float32)
        h, w = image.shape[:2]
        analysis = self.analyse(background)
        occupied = np.zeros((h, w), bool)
        # Nothing within _IMAGE_BORDER of the image edge.
        occupied[:_IMAGE_BORDER] = occupied[-_IMAGE_BORDER:] = True
        occupied[:, :_IMAGE_BORDER] = occupied[:, -_IMAGE_BORDER:] = True
        words: list[str] = []
        word_quads: list[np.ndarray] = []
        char_quads: list[np.ndarray] = []
        n_instances = int(rng.integers(cfg.min_instances, cfg.max_instances + 1))
        if cfg.p_no_text > 0 and rng.random() < cfg.p_no_text:
            n_instances = 0  # a negative: the photo without text
        n_illegible = int(rng.integers(0, cfg.max_illegible + 1)) if n_instances else 0
        placed = 0
        regions = analysis.regions
        if not regions and n_instances and cfg.fallback_signs:
            regions = _made_up_surfaces(h, w, rng)
        # Larger surfaces carry more text: pick regions with probability ~ sqrt(area).
        weights = np.sqrt([r.size[0] * r.size[1] for r in regions]) if regions else None
        probs = weights / weights.sum() if weights is not None else None
        for _ in range(cfg.max_attempts if regions and n_instances else 0):
            if placed >= n_instances or len(words) >= cfg.max_words:
                break
            region = regions[int(rng.choice(len(regions), p=probs))]
            if cfg.p_sprite > 0 and rng.random() < cfg.p_sprite:
                result = self._place_sprite(image, background.image, region, occupied, rng)
            else:
                result = self._place_instance(
                    image, region, occupied, rng, cfg.max_words - len(words)
                )
            if result is None:
                continue
            inst_words, inst_word_quads, inst_char_quads = result
            words += inst_words
            word_quads.append(inst_word_quads)
            char_quads.append(inst_char_quads)
            placed += 1
        # Illegible text (labelled "###"), two placement attempts per instance.
        for _ in range(2 * n_illegible if regions else 0):
            if n_illegible <= 0 or len(words) >= cfg.max_words:
                break
            region = regions[int(rng.choice(len(regions), p=probs))]
            result = self._place_instance(
                image, region, occupied, rng, cfg.max_words - len(words), illegible=True
            )
            if result is None:
                continue
            inst_words, inst_word_quads, inst_char_quads = result
            words += inst_words
            word_quads.append(inst_word_quads)
            char_quads.append(inst_char_quads)
            n_illegible -= 1
        out = np.clip(image + 0.5, 0, 255).astype(np.uint8)
        if cfg.camera:
            out = degrade(out, rng)
        return Sample(
            image=out,
            word_quads=(np.concatenate(word_quads) if word_quads else np.zeros((0, 4, 2))),
            words=words,
            char_quads=(np.concatenate(char_quads) if char_quads else np.zeros((0, 4, 2))),
            name="",
        )

    def _free_canvas(
        self, image: np.ndarray, region: Region, occupied: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The free part of ``region`` rectified by a random homography of the region: the
        canvas mask (uint8) and the canvas-to-image homography; None if too small."""
        h, w = image.shape[:2]
        available = region.mask & ~occupied
        rows = np.flatnonzero(available.any(axis=1))
        if len(rows) < self.config.min_font_px:
            return None
        cols = np.flatnonzero(available.any(axis=0))
        homography = self._homography(region, rng)
        bounds = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        return _rectify(available, bounds, homography, h * w)

    def _homography(self, region: Region, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        if region.plane is not None:
            # A little in-plane rotation so text is not always level with the plane's x axis.
            theta = math.radians(float(rng.uniform(-0.3, 0.3) * cfg.max_rotation_deg))
            c, s = math.cos(theta), math.sin(theta)
            homography = region.plane @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        else:
            homography = random_homography(
                rng,
                region.centre,
                0.5 * max(region.size),
                region.angle,
                cfg.max_rotation_deg,
                cfg.max_perspective,
                cfg.rotation_jitter_deg,
            )
        if cfg.p_vertical > 0 and rng.random() < cfg.p_vertical:
            # A quarter turn about the text plane's origin (the region's centre): the text's
            # x axis points up (reading bottom to top) or down.
            up = 1.0 if rng.random() < 0.7 else -1.0
            turn = np.array([[0.0, up, 0.0], [-up, 0.0, 0.0], [0.0, 0.0, 1.0]])
            homography = homography @ turn
        return homography

    def _sample_text(
        self,
        rng: np.random.Generator,
        coverage: frozenset[str],
        n_lines: int,
        max_line_chars: int,
        single_word: bool,
    ) -> TextBlock:
        cfg = self.config
        if cfg.p_lexicon > 0 and rng.random() < cfg.p_lexicon:
            return sample_lexicon_block(
                rng,
                n_lines,
                max_line_chars,
                coverage,
                max_line_words=cfg.max_line_words,
                max_word_chars=cfg.max_word_chars,
                single_word=single_word,
            )
        block = self.text.sample(
            rng,
            n_lines,
            max_line_chars,
            coverage,
            max_line_words=cfg.max_line_words,
            max_word_chars=cfg.max_word_chars,
            single_word=single_word,
        )
        case = rng.random()
        if case < cfg.p_upper:
            block = TextBlock([[wd.upper() for wd in line] for line in block.lines])
        elif case < cfg.p_upper + cfg.p_title:
            block = TextBlock([[wd[:1].upper() + wd[1:] for wd in line] for line in block.lines])
        # Case changes stay within ASCII, but keep the coverage guarantee explicit.
        lines = [[wd for wd in line if set(wd) <= coverage] for line in block.lines]
        return TextBlock([line for line in lines if line])

    def _place_instance(
        self,
        image: np.ndarray,
        region: Region,
        occupied: np.ndarray,
        rng: np.random.Generator,
        word_budget: int,
        illegible: bool = False,
    ) -> tuple[list[str], np.ndarray, np.ndarray] | None:
        """Render one text instance into ``image`` (in place); None if it did not fit.

        illegible: tiny, faint text whose words are labelled "###" (don't care).
        """
        cfg = self.config
        canvas = self._free_canvas(image, region, occupied, rng)
        if canvas is None:
            return None
        canvas_mask, to_image = canvas
        integral = cv2.integral(canvas_mask)

        # Font size: random up to what the largest inscribed disc allows (ink ~1.2 em high).
        radius = float(cv2.distanceTransform(canvas_mask, cv2.DIST_L2, 3).max())
        # Illegible text is tiny at any image size (scaled from the 512-px calibration).
        min_em = _ILLEGIBLE_EM[0] * cfg.size / 512 if illegible else float(cfg.min_font_px)
        top_em = _ILLEGIBLE_EM[1] * cfg.size / 512 if illegible else float(cfg.max_font_px)
        max_em = min(top_em, 2.0 * radius / 1.2)
        if max_em < min_em:
            return None
        # Log-uniform for skew 1; below 1 larger sizes are favoured (legible text only). Skew 1
        # keeps numpy's own expression so that the paper preset renders the same bytes.
        skew = 1.0 if illegible else cfg.font_size_skew
        if skew == 1.0:
            em = math.exp(rng.uniform(math.log(min_em), math.log(max_em)))
        else:
            u = float(rng.uniform()) ** skew
            em = math.exp(math.log(min_em) + u * (math.log(max_em) - math.log(min_em)))
        spacing = float(rng.uniform(1.0, 1.3))
        font_path, coverage = self.fonts.pick(rng, signage=cfg.signage_fonts)
        char_w = self.fonts.line_width(font_path, "etaoin shrdlu", em) / 13.0

        def block_height(n: int) -> int:
            return math.ceil(em * 1.2 * (spacing * (n - 1) + 1))

        # Text kind, then as many lines and characters per line as the region allows.
        probs = np.array([cfg.p_word, cfg.p_line, cfg.p_paragraph], np.float64)
        probs = probs / probs.sum() if probs.sum() > 0 else np.array([1.0, 0.0, 0.0])
        kind = 1 if illegible else int(rng.choice(3, p=probs))
        n_lines = 1
        if kind == 2:
            max_lines = 1
            while max_lines < cfg.max_paragraph_lines and _fits_anywhere(
                integral, math.ceil(3 * char_w), block_height(max_lines + 1)
            ):
                max_lines += 1
            n_lines = int(rng.integers(1, max_lines + 1)) if max_lines > 1 else 1
            kind = 2 if n_lines > 1 else 1
        max_w = _max_width(integral, block_height(n_lines))
        max_line_chars = int(max_w / max(char_w, 1e-3))
        # A line or paragraph needs room for a few words: a smaller font rather than a
        # "line" of one word.
        for _ in range(_LINE_SHRINK_STEPS if kind != 0 and cfg.line_shrink else 0):
            if max_line_chars >= _LINE_MIN_CHARS or em * 0.85 < min_em:
                break
            em *= 0.85
            char_w *= 0.85
            max_w = _max_width(integral, block_height(n_lines))
            max_line_chars = int(max_w / max(char_w, 1e-3))
        if max_line_chars < 1:
            return None
        block = self._sample_text(rng, coverage, n_lines, max_line_chars, kind == 0)
        block = _limit_words(block, word_budget)
        if not block.lines:
            return None
        n_lines = len(block.lines)
        curved = (
            n_lines == 1
            and len(block.lines[0]) == 1
            and len(block.lines[0][0]) <= 10
            and rng.random() < cfg.p_curved
        )
        layout = Layout(
            spacing=spacing,
            align=int(rng.integers(3)),
            curvature=(
                float(rng.uniform(0.06, 0.2)) * float(rng.choice([-1.0, 1.0])) if curved else 0.0
            ),
        )
        lines = [" ".join(line) for line in block.lines]
        while True:
            est_w = max(self.fonts.line_width(font_path, s, em) for s in lines)
            est_h = block_height(n_lines) + (abs(layout.curvature) * est_w if curved else 0.0)
            if _fits_anywhere(integral, math.ceil(est_w), math.ceil(est_h)):
                break
            em *= 0.85
            if em < min_em:
                return None
        on_sign = not illegible and (
            region.sign_only or (cfg.p_sign > 0 and rng.random() < cfg.p_sign)
        )
        pad_x, pad_y, border = panel_padding(rng, em) if on_sign else (0, 0, 0.0)
        placed: tuple[TypesetText, int, int] | None = None
        for _ in range(_SIZE_RETRIES):
            text = typeset(block, self.fonts.sized(font_path, round(em)), layout)
            if text is None:
                return None
            x0, y0, x1, y1 = text.ink_box
            box_w, box_h = math.ceil(x1 - x0) + 2, math.ceil(y1 - y0) + 2
            if on_sign:
                pos = _find_position(integral, box_w + 2 * pad_x, box_h + 2 * pad_y, rng)
                if pos is not None:
                    placed = (text, pos[0] + pad_x, pos[1] + pad_y)
                    break
                # No room for a panel: plain text on the surface instead, or a smaller font
                # where the surface only takes signs.
                on_sign = region.sign_only
            if not on_sign:
                pos = _find_position(integral, box_w, box_h, rng)
                if pos is not None:
                    placed = (text, pos[0], pos[1])
                    break
            em *= 0.85
            if em < min_em:
                return None
        if placed is None:
            return None
        text, px, py = placed
        panel = None
        if on_sign:
            panel = SignPanel(
                rect=(px - pad_x, py - pad_y, px + box_w + pad_x, py + box_h + pad_y),
                border=border,
            )
        # Text-mask coordinates -> canvas -> image.
        mask_to_image = to_image @ translation(px + 1 - text.ink_box[0], py + 1 - text.ink_box[1])
        word_quads = apply_homography(mask_to_image, text.word_quads)
        char_quads = apply_homography(mask_to_image, text.char_quads)
        line_px = max(1.0, (text.ink_box[3] - text.ink_box[1]) / max(n_lines, 1))
        panel_quad = None
        if panel is not None:
            panel_quad = panel_quads(panel, to_image)
        self._draw(image, text, mask_to_image, word_quads, line_px, rng, panel_quad, illegible)
        margin = max(3, round(0.25 * min(line_px, 40)))
        _mark_occupied(occupied, word_quads if panel_quad is None else panel_quad[0][None], margin)
        if illegible:
            chars = _nominal_char_quads(word_quads, len(DONT_CARE))
            return [DONT_CARE] * len(text.words), word_quads, chars
        return text.words, word_quads, char_quads

    def _draw(
        self,
        image: np.ndarray,
        text: TypesetText,
        mask_to_image: np.ndarray,
        word_quads: np.ndarray,
        line_px: float,
        rng: np.random.Generator,
        panel: tuple[np.ndarray, np.ndarray | None] | None = None,
        illegible: bool = False,
    ) -> None:
        """Colour, effects and blending of one text instance, on a patch of ``image``.

        panel: (outer, inner or None) quads in image pixels of a sign panel painted first.
        """
        cfg = self.config
        h, w = image.shape[:2]
        use_border = rng.random() < cfg.p_border and not illegible
        use_shadow = rng.random() < cfg.p_shadow and not illegible
        use_poisson = rng.random() < cfg.p_poisson
        border_px = max(1, round(line_px * float(rng.uniform(0.04, 0.1))))
        shadow_dx, shadow_dy = (
            max(1, round(line_px * float(rng.uniform(0.03, 0.1)))) * int(rng.choice([-1, 1])),
            max(1, round(line_px * float(rng.uniform(0.03, 0.1)))),
        )
        effect_pad = max(border_px, abs(shadow_dx), shadow_dy) + 3
        pad = POISSON_MARGIN + 2 + effect_pad
        extent = word_quads.reshape(-1, 2) if panel is None else panel[0]
        lo = np.floor(extent.min(axis=0)).astype(int) - pad
        hi = np.ceil(extent.max(axis=0)).astype(int) + pad
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        to_patch = to_cv_pixels(translation(-x0, -y0) @ mask_to_image)
        coverage = (
            cv2.warpPerspective(
                text.mask, to_patch, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR
            ).astype(np.float32)
            / 255.0
        )
        if rng.random() < 0.3 or illegible:
            # Slight defocus so small text matches the photo's sharpness.
            sigma = float(rng.uniform(0.3, 0.6)) + (
                float(rng.uniform(0.2, 0.6)) if illegible else 0.0
            )
            coverage = np.asarray(cv2.GaussianBlur(coverage, (0, 0), sigma), np.float32)
        if self.ink_log is not None:
            self.ink_log.append((x0, y0, coverage.copy()))
        patch = image[y0:y1, x0:x1]
        sign_colour = None
        if panel is not None:
            offset = np.array([x0, y0], np.float64)
            panel_rgb, sign_colour = self._sign_colours(rng)
            border_rgb = effect_colour(rng, sign_colour, panel_rgb)
            inner = None if panel[1] is None else panel[1] - offset
            patch = paint_panel(patch, panel[0] - offset, inner, panel_rgb, border_rgb, rng)
            image[y0:y1, x0:x1] = patch
        under = cv2.dilate((coverage > 0.1).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        surface = np.median(patch[under], axis=0) if under.any() else patch.reshape(-1, 3).mean(0)
        if sign_colour is not None:
            colour = sign_colour
        elif cfg.learned_colours:
            contrast = 0.6 * cfg.min_learned_contrast if illegible else cfg.min_learned_contrast
            colour = self.colours.pick(rng, surface, contrast)
        else:
            palette = image[rng.integers(h, size=32), rng.integers(w, size=32)]
            colour = pick_text_colour(rng, surface, cfg.min_colour_distance, palette)
        text_rgb = shade_like_surface(patch, coverage, colour, float(rng.uniform(0.2, 0.8)))
        composite = patch.copy()
        blend_mask = coverage
        if use_shadow:
            shadow = shadow_coverage(coverage, (shadow_dx, shadow_dy), float(rng.uniform(0.5, 2.0)))
            shadow *= float(rng.uniform(0.4, 0.8))
            composite = alpha_composite(composite, patch * 0.3, shadow)
            blend_mask = np.maximum(blend_mask, shadow)
        if use_border:
            border = add_border(coverage, border_px)
            composite = alpha_composite(composite, effect_colour(rng, colour, surface), border)
            blend_mask = np.maximum(blend_mask, border)
        opacity = float(rng.uniform(0.85, 1.0)) * (
            float(rng.uniform(0.5, 0.9)) if illegible else 1.0
        )
        composite = alpha_composite(composite, text_rgb, coverage * opacity)
        if use_poisson:
            blended = poisson_blend(patch, composite, blend_mask)
            # Mixed gradients can wash text out on busy surfaces; a word that is labelled
            # must stay legible, so keep alpha blending when Poisson loses most contrast.
            ink = coverage > 0.5
            if ink.any():
                kept = float(np.abs(blended[ink] - patch[ink]).mean())
                intended = float(np.abs(composite[ink] - patch[ink]).mean())
                if kept >= 0.5 * intended:
                    composite = blended
        image[y0:y1, x0:x1] = composite

    def _place_sprite(
        self,
        image: np.ndarray,
        source: np.ndarray,
        region: Region,
        occupied: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[list[str], np.ndarray, np.ndarray] | None:
        """Paste one real word crop into ``region`` in perspective, and beside it a crop of the
        same size from the background itself (``source``, uint8 [H, W, 3], text-free) pasted
        the same way: the paste's seams then say nothing about text. None if nothing fits."""
        cfg = self.config
        h, w = image.shape[:2]
        canvas = self._free_canvas(image, region, occupied, rng)
        if canvas is None:
            return None
        canvas_mask, to_image = canvas
        index = int(rng.integers(len(self.sprites)))
        word = self.sprites.words[index]
        sprite = self.sprites.sprite(index)
        if sprite is None:
            return None
        sprite_h, sprite_w = sprite.shape[:2]
        radius = float(cv2.distanceTransform(canvas_mask, cv2.DIST_L2, 3).max())
        # Word height from the font-size range (a word's ink is about 0.75 em tall), but never
        # enlarged past sprite_max_scale times the crop's own height.
        min_h = 0.75 * cfg.min_font_px
        room = min(0.75 * cfg.max_font_px, 2.0 * radius / 1.2)
        if room < min_h:
            return None
        max_h = min(room, cfg.sprite_max_scale * sprite_h)
        min_h = min(min_h, max_h)
        height = math.exp(rng.uniform(math.log(min_h), math.log(max_h)))
        integral = cv2.integral(canvas_mask)
        for _ in range(_SIZE_RETRIES):
            scale = height / sprite_h
            # Seamless pasting grows the crop by a margin of its own border pixels (sprite
            # pixels; at least 5 image pixels, more than seamlessClone's inner erosion).
            pad = round(0.3 * sprite_h) + math.ceil(5 / scale) if cfg.sprite_seamless else 0
            box_w = math.ceil((sprite_w + 2 * pad) * scale) + 2
            box_h = math.ceil((sprite_h + 2 * pad) * scale) + 2
            pos = _find_position(integral, box_w, box_h, rng)
            if pos is not None:
                break
            height *= 0.85
            if height < min_h:
                return None
        else:
            return None
        scaling = np.diag([scale, scale, 1.0])
        sprite_to_image = to_image @ translation(pos[0] + 1, pos[1] + 1) @ scaling
        sprite_to_image = sprite_to_image @ translation(pad, pad)
        rect = np.array([[0, 0], [sprite_w, 0], [sprite_w, sprite_h], [0, sprite_h]], np.float64)
        quad = apply_homography(sprite_to_image, rect)
        feather = float(rng.uniform(0.5, 1.0))
        if cfg.sprite_seamless:
            grown = cv2.copyMakeBorder(sprite, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            clone_warped(image, grown, sprite_to_image @ translation(-pad, -pad))
        else:
            paste_warped(image, sprite, sprite_to_image, feather)
        margin = max(3, round(0.25 * min(height, 40)))
        _mark_occupied(occupied, quad[None], margin)
        # The distractor: elsewhere on the free canvas, same size, background pixels.
        top, left = max(pos[1] - margin, 0), max(pos[0] - margin, 0)
        canvas_mask[top : pos[1] + box_h + margin, left : pos[0] + box_w + margin] = 0
        spot = _find_position(cv2.integral(canvas_mask), box_w, box_h, rng)
        dw, dh = round(sprite_w * scale), round(sprite_h * scale)
        if spot is not None and 0 < dw < w and 0 < dh < h:
            sx, sy = int(rng.integers(w - dw + 1)), int(rng.integers(h - dh + 1))
            patch = source[sy : sy + dh, sx : sx + dw].astype(np.float32)
            patch_to_image = to_image @ translation(spot[0] + 1, spot[1] + 1)
            if cfg.sprite_seamless:
                clone_warped(image, patch, patch_to_image)
            else:
                paste_warped(image, patch, patch_to_image, feather)
            patch_quad = apply_homography(
                patch_to_image, np.array([[0, 0], [dw, 0], [dw, dh], [0, dh]], np.float64)
            )
            _mark_occupied(occupied, patch_quad[None], margin)
        return [word], quad[None], _nominal_char_quads(quad[None], len(word))

    def _sign_colours(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(panel, text) colours, float32 [3] RGB: a real (background, text) pair, either way
        round, or black/white on a random paint colour without the learned table."""
        if self.config.learned_colours:
            pairs = self.colours
            contrast = np.linalg.norm(pairs.text_lab - pairs.background_lab, axis=1)
            ok = np.flatnonzero(contrast >= _SIGN_MIN_CONTRAST)
            i = int(rng.choice(ok)) if len(ok) else int(np.argmax(contrast))
            panel, text = lab_to_rgb(pairs.background_lab[i]), lab_to_rgb(pairs.text_lab[i])
            return (panel, text) if rng.random() < 0.75 else (text, panel)
        panel = rng.uniform(0, 255, 3).astype(np.float32)
        return panel, pick_text_colour(rng, panel, self.config.min_colour_distance)


def _made_up_surfaces(h: int, w: int, rng: np.random.Generator) -> list[Region]:
    """One or two rectangles at random places of an ``h`` x ``w`` image that carry text only on
    sign panels: the fallback for a background where no surface was found."""
    surfaces = []
    for _ in range(int(rng.integers(1, 3))):
        box_w = max(8, round(w * float(rng.uniform(0.3, 0.8))))
        box_h = max(8, round(h * float(rng.uniform(0.15, 0.45))))
        x0 = int(rng.integers(0, max(1, w - box_w + 1)))
        y0 = int(rng.integers(0, max(1, h - box_h + 1)))
        mask = np.zeros((h, w), bool)
        mask[y0 : y0 + box_h, x0 : x0 + box_w] = True
        centre = (x0 + 0.5 * box_w, y0 + 0.5 * box_h)
        surfaces.append(Region(mask, centre, (float(box_w), float(box_h)), 0.0, sign_only=True))
    return surfaces


def _nominal_char_quads(word_quads: np.ndarray, n_chars: int) -> np.ndarray:
    """``n_chars`` equal slices along each quad: one box per character where the true
    character boxes are unknown (don't-care words, real word sprites), so that samples keep
    SynthText's one-char-box-per-character count. The boxes are nominal."""
    ts = np.linspace(0.0, 1.0, n_chars + 1)
    slices = []
    for quad in word_quads:
        top = [quad[0] + (quad[1] - quad[0]) * t for t in ts]
        bottom = [quad[3] + (quad[2] - quad[3]) * t for t in ts]
        slices += [np.stack([top[i], top[i + 1], bottom[i + 1], bottom[i]]) for i in range(n_chars)]
    return np.array(slices, np.float64).reshape(-1, 4, 2)


def _limit_words(block: TextBlock, budget: int) -> TextBlock:
    """The first ``budget`` words of ``block`` (whole lines kept while they fit)."""
    lines: list[list[str]] = []
    for line in block.lines:
        if budget <= 0:
            break
        lines.append(line[:budget])
        budget -= len(lines[-1])
    return TextBlock(lines)


def _rectify(
    available: np.ndarray,
    bounds: tuple[int, int, int, int],
    homography: np.ndarray,
    image_area: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Free region pixels seen in the text plane.

    ``bounds`` (x0, y0, x1, y1) enclose the free pixels. Returns (uint8 [ch, cw] mask of free
    pixels, 3x3 map canvas -> image), or None when the view is degenerate (points behind the
    plane, or an enormous canvas).
    """
    bx0, by0, bx1, by1 = bounds
    corners = np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], np.float64)
    inverse = np.linalg.inv(homography)
    homog = np.concatenate([corners, np.ones((4, 1))], axis=1) @ inverse.T
    if not np.all(homog[:, 2] > 1e-9):
        return None  # part of the region maps behind the text plane's horizon
    plane = homog[:, :2] / homog[:, 2:3]
    a0, b0 = np.floor(plane.min(axis=0))
    a1, b1 = np.ceil(plane.max(axis=0))
    cw, ch = int(a1 - a0), int(b1 - b0)
    if cw < 2 or ch < 2 or cw * ch > _MAX_CANVAS_AREA_RATIO * image_area:
        return None
    to_image = homography @ translation(a0, b0)
    canvas = cv2.warpPerspective(
        available.astype(np.uint8),
        to_cv_pixels(to_image),
        (cw, ch),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderValue=0,
    )
    return canvas, to_image


def _box_sums(integral: np.ndarray, box_w: int, box_h: int) -> np.ndarray | None:
    """Sum of the canvas over every box_w x box_h window, indexed by its top-left (y, x)."""
    ch, cw = integral.shape[0] - 1, integral.shape[1] - 1
    if box_w > cw or box_h > ch or box_w < 1 or box_h < 1:
        return None
    return (
        integral[box_h:, box_w:]
        - integral[:-box_h, box_w:]
        - integral[box_h:, :-box_w]
        + integral[:-box_h, :-box_w]
    )


def _fits_anywhere(integral: np.ndarray, box_w: int, box_h: int) -> bool:
    sums = _box_sums(integral, box_w, box_h)
    return sums is not None and bool((sums == box_w * box_h).any())


def _max_width(integral: np.ndarray, box_h: int) -> int:
    """Widest box of height ``box_h`` that fits on free pixels (0 if none); binary search."""
    lo, hi = 0, integral.shape[1] - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits_anywhere(integral, mid, box_h):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _find_position(
    integral: np.ndarray, box_w: int, box_h: int, rng: np.random.Generator
) -> tuple[int, int] | None:
    """Random top-left (x, y) where a box_w x box_h box lies entirely on free canvas pixels.

    ``integral`` is ``cv2.integral`` of the 0/1 canvas: int32 [ch + 1, cw + 1].
    """
    sums = _box_sums(integral, box_w, box_h)
    if sums is None:
        return None
    valid = np.flatnonzero(sums == box_w * box_h)
    if len(valid) == 0:
        return None
    y, x = divmod(int(valid[int(rng.integers(len(valid)))]), sums.shape[1])
    return x, y


def _mark_occupied(occupied: np.ndarray, word_quads: np.ndarray, margin: int) -> None:
    """Block the area of placed words (plus a margin) for later instances."""
    layer = np.zeros(occupied.shape, np.uint8)
    for quad in word_quads:
        cv2.fillConvexPoly(layer, np.round(quad - 0.5).astype(np.int32), 1)
    k = 2 * margin + 1
    grown = cv2.dilate(layer, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    occupied |= grown > 0


def render_scene(
    background: Background,
    config: SynthConfig,
    rng: np.random.Generator,
    renderer: SceneRenderer | None = None,
) -> Sample:
    """Render text into a background and return the image with its ground truth.

    Returns a :class:`~synthloc.data.sample.Sample`: image uint8 [H, W, 3] (same size as
    ``background.image``), word quads float32 [N, 4, 2] clockwise from the text's top-left in
    image pixels, one char quad per non-space character, transcripts, ``name`` empty.
    Deterministic: same background, config and generator state give identical bytes. Bounded
    work: if nothing fits the image comes back with 0 words. Pass a :class:`SceneRenderer`
    built once per process to reuse fonts, corpus and cached region analysis (much faster).
    """
    if renderer is None:
        renderer = SceneRenderer(config)
    elif renderer.config != config:
        raise ValueError("renderer was built for a different SynthConfig")
    return renderer.render(background, rng)
