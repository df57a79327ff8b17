"""Every knob of the synthetic engine in one JSON-serialisable dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# The original engine (the paper's configuration, before issue 15): ``SynthConfig(paper=True)``
# sets these fields to these values, turning every scene-text part off and restoring the
# original sizes, counts and text mix.
PAPER_SETTINGS: dict[str, Any] = {
    "min_instances": 3,
    "max_instances": 8,
    "min_font_px": 16,
    "max_font_px": 120,
    "p_word": 0.3,
    "p_line": 0.4,
    "p_paragraph": 0.3,
    "max_line_words": 5,
    "p_upper": 0.15,
    "p_title": 0.15,
    "max_rotation_deg": 12.0,
    "rotation_jitter_deg": 1.0,
    "learned_colours": False,
    "p_sign": 0.0,
    "sky_filter": False,
    "p_lexicon": 0.0,
    "signage_fonts": False,
    "camera": False,
    "p_no_text": 0.0,
    "max_illegible": 0,
    "p_sprite": 0.0,
    "skip_text_backgrounds": False,
    "line_shrink": False,
    "fallback_signs": False,
    "font_size_skew": 1.0,
    "p_vertical": 0.0,
}


# Fields added to SynthConfig whose default is not what the engine did before they existed,
# each with the switch that makes it matter: a folder written before the field, with that
# switch on, rendered otherwise and cannot be resumed with the field at its default
# (synthloc.synth.manifest). Before sprite_max_scale, sprites were enlarged without a cap.
CHANGED_BY_NEW_DEFAULT: dict[str, str] = {"sprite_max_scale": "p_sprite"}


@dataclass
class SynthConfig:
    """Configuration of :func:`synthloc.synth.render_scene`.

    All fields are plain ``int``/``float``/``bool``/``str``/``list[str]`` so that
    ``json.dumps(dataclasses.asdict(config))`` works and a manifest can record it.
    Sizes are in pixels of the final image (whose long side is ``size``).
    """

    # Backgrounds are resized so that their long side is ``size``.
    size: int = 512

    # True: the paper's engine (see PAPER_SETTINGS), every part added for real photos off.
    paper: bool = False

    # How much text per image: text instances (a word, a line or a short paragraph placed in
    # one region) and a cap on the total number of words. Defaults calibrated to ICDAR 2015
    # training GT (benchmarks/data_stats.py): about 4.5 legible words per photo.
    min_instances: int = 1
    max_instances: int = 6
    max_words: int = 30
    # Bounded work per image: placement attempts across all instances (never hangs).
    max_attempts: int = 24

    # Font em size range in pixels, then shrunk to fit the region. The size is drawn as
    # exp(log min + u ** font_size_skew * log(max / min)), u uniform in [0, 1): 1 is
    # log-uniform (the paper's engine); below 1 larger sizes are favoured, which gives the
    # heavier tail of big words that ICDAR 2015 has (benchmarks/data_stats.py).
    min_font_px: int = 12
    max_font_px: int = 90
    font_size_skew: float = 0.5

    # Kind of text per instance (normalised): single word, one line, a short paragraph.
    p_word: float = 0.3
    p_line: float = 0.6
    p_paragraph: float = 0.1
    max_line_words: int = 4
    max_paragraph_lines: int = 4
    max_word_chars: int = 16

    # Effects, each decided per text instance.
    p_curved: float = 0.15  # curved baseline, only for single short words
    p_border: float = 0.1
    p_shadow: float = 0.1
    p_poisson: float = 0.6  # Poisson (gradient-domain) blending, else alpha blending
    p_upper: float = 0.3  # all capitals (corpus text; lexicon text has its own case)
    p_title: float = 0.3  # capitalised words

    # Text source: a UTF-8 text file or a folder of *.txt files (Project Gutenberg headers and
    # footers stripped), or None for the default (system word list if present, else the text
    # shipped in synthloc/assets).
    corpus: str | None = None
    # Extra font folders searched (recursively) in addition to the system font folders.
    font_dirs: list[str] = field(default_factory=list)
    # False: ignore system fonts (only ``font_dirs``, then Pillow's embedded font).
    use_system_fonts: bool = True

    # Region analysis (see synthloc.synth.regions).
    segmentation_side: int = 128  # long side of the copy that is over-segmented
    # Felzenszwalb scales (larger gives larger segments); regions from all are pooled, like
    # the paper's several thresholds of one hierarchical segmentation.
    segmentation_scales: list[float] = field(default_factory=lambda: [70.0, 300.0])
    min_region_side: int = 30  # min-area-rectangle width and height, final pixels
    min_region_aspect: float = 0.3
    max_region_aspect: float = 7.0
    min_region_area: float = 0.004  # fraction of the image area
    min_rect_fill: float = 0.6  # region area / its min-area rectangle area
    max_region_gradient: float = 0.08  # mean Sobel magnitude (0..1 intensity) inside a region
    # Pixels with a gradient above this (0..1 intensity) are edges; text never covers them.
    edge_gradient: float = 0.25

    # Geometry without depth: a moderate random rotation and perspective per region.
    max_rotation_deg: float = 20.0
    # Text following a region's edge turns from it by a normal angle of this spread (degrees);
    # real incidental text is seldom level (ICDAR 2015: median 5.8 degrees, 32% > 10).
    rotation_jitter_deg: float = 6.0
    max_perspective: float = 0.25  # strength of the random out-of-plane tilt
    # Share of text instances turned a quarter turn, reading bottom to top (7 in 10) or top
    # to bottom: names on pillars and vertical signs. Off by default (no A/B yet); ICDAR 2015
    # has about 4% of its legible words taller than wide (docs/box_convention.md).
    p_vertical: float = 0.0

    # Colour: minimum CIE Lab distance between text and the surface under it.
    min_colour_distance: float = 35.0
    # Text colour from (text, background) pairs learned from real word crops
    # (synthloc/assets/colour_pairs.npz, benchmarks/build_colour_table.py), matched to the
    # surface; real text is often low-contrast, so the minimum distance is lower then.
    learned_colours: bool = True
    min_learned_contrast: float = 18.0

    # Sign-like surfaces: share of text instances placed on a painted panel, plate or label
    # (plain or coloured, optional border) drawn in perspective inside a region.
    p_sign: float = 0.35
    # A background with no usable surface (busy texture everywhere: snakes, quilts, foliage)
    # gets its text on sign panels at random places instead of coming out without text.
    fallback_signs: bool = True
    # Reject smooth, bright, low-saturation regions in the top part of the photo (sky).
    sky_filter: bool = True

    # Text content: share of instances from the scene-text lexicon (shop and brand-like
    # words, prices, numbers, phone numbers, short phrases); the rest from the corpus.
    p_lexicon: float = 0.7
    # Weight fonts towards signage faces (bold, condensed, sans) among those installed.
    signage_fonts: bool = True

    # Camera: per-image degradations after blending (blur, noise, JPEG, tone, colour cast,
    # down-up scaling), see synthloc.synth.camera. Off by default: in the engine ablation
    # (docs/engine.md) training on images with it lowered icdar2015_dev F by 0.04 (precision
    # 0.44 -> 0.37) against the same engine without it.
    camera: bool = False

    # Negatives: share of images left without text; up to this many instances of tiny,
    # illegible text per image, labelled don't-care ("###").
    p_no_text: float = 0.03
    max_illegible: int = 8

    # Real word sprites (ICDAR 2015 training word crops) pasted as text, with same-sized
    # non-text crops as distractors; folder of word_N.png + coords.txt + gt.txt. Off by default.
    p_sprite: float = 0.0
    sprite_dir: str | None = None
    # The most a word crop is enlarged (1: never past its own pixels, which would blur it
    # into a soft rectangle); its height is otherwise drawn from the font-size range.
    sprite_max_scale: float = 1.0
    # True: paste a crop grown by a margin of its own border pixels with Poisson cloning, so
    # that no seam outlines the word's box; False: alpha paste with a 0.5-1 px feather.
    sprite_seamless: bool = False
    # Leave out background photos that a folder's manifest.tsv flags as carrying real text
    # (its OCR column): their unannotated words would be negatives. Off in the paper's config,
    # whose background list is every photo of the folder.
    skip_text_backgrounds: bool = True
    # A line or paragraph whose region holds too few characters is set in a smaller font
    # rather than as a "line" of one word (the paper's engine did not).
    line_shrink: bool = True

    def __post_init__(self) -> None:
        if self.paper:
            for name, value in PAPER_SETTINGS.items():
                setattr(self, name, value)
        problems = []
        if self.size < 64:
            problems.append(f"size must be >= 64, got {self.size}")
        for low, high in (
            ("min_instances", "max_instances"),
            ("min_font_px", "max_font_px"),
            ("min_region_aspect", "max_region_aspect"),
        ):
            if getattr(self, low) > getattr(self, high):
                problems.append(f"{low} ({getattr(self, low)}) > {high} ({getattr(self, high)})")
        for name in (
            "p_curved",
            "p_border",
            "p_shadow",
            "p_poisson",
            "p_upper",
            "p_title",
            "p_sign",
            "p_lexicon",
            "p_no_text",
            "p_sprite",
            "p_vertical",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.p_word, self.p_line, self.p_paragraph) < 0:
            problems.append("text kind probabilities must be >= 0")
        if self.min_font_px < 1 or self.max_attempts < 0 or not self.segmentation_scales:
            problems.append("min_font_px >= 1, max_attempts >= 0 and a segmentation scale needed")
        if not 0.0 < self.font_size_skew <= 1.0:
            problems.append(f"font_size_skew must be in (0, 1], got {self.font_size_skew}")
        if self.max_illegible < 0:
            problems.append(f"max_illegible must be >= 0, got {self.max_illegible}")
        if not self.sprite_max_scale > 0:  # also refuses NaN
            problems.append(f"sprite_max_scale must be > 0, got {self.sprite_max_scale}")
        if self.p_sprite > 0 and not self.sprite_dir:
            problems.append("p_sprite > 0 needs sprite_dir (a folder of real word crops)")
        names = {f.name for f in fields(self)}
        problems += [
            f"PAPER_SETTINGS names no field {n!r}" for n in PAPER_SETTINGS if n not in names
        ]
        if problems:
            raise ValueError("invalid SynthConfig: " + "; ".join(problems))
