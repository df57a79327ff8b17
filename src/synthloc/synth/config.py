"""Every knob of the synthetic engine in one JSON-serialisable dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SynthConfig:
    """Configuration of :func:`synthloc.synth.render_scene`.

    All fields are plain ``int``/``float``/``bool``/``str``/``list[str]`` so that
    ``json.dumps(dataclasses.asdict(config))`` works and a manifest can record it.
    Sizes are in pixels of the final image (whose long side is ``size``).
    """

    # Backgrounds are resized so that their long side is ``size``.
    size: int = 512

    # How much text per image: text instances (a word, a line or a short paragraph placed in
    # one region) and a cap on the total number of words.
    min_instances: int = 3
    max_instances: int = 8
    max_words: int = 30
    # Bounded work per image: placement attempts across all instances (never hangs).
    max_attempts: int = 24

    # Font em size range in pixels (sampled log-uniformly, then shrunk to fit the region).
    min_font_px: int = 16
    max_font_px: int = 120

    # Kind of text per instance (normalised): single word, one line, a short paragraph.
    p_word: float = 0.3
    p_line: float = 0.4
    p_paragraph: float = 0.3
    max_line_words: int = 5
    max_paragraph_lines: int = 4
    max_word_chars: int = 16

    # Effects, each decided per text instance.
    p_curved: float = 0.15  # curved baseline, only for single short words
    p_border: float = 0.1
    p_shadow: float = 0.1
    p_poisson: float = 0.6  # Poisson (gradient-domain) blending, else alpha blending
    p_upper: float = 0.15  # all capitals
    p_title: float = 0.15  # capitalised words

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
    max_rotation_deg: float = 12.0
    max_perspective: float = 0.25  # strength of the random out-of-plane tilt

    # Colour: minimum CIE Lab distance between text and the surface under it.
    min_colour_distance: float = 35.0

    def __post_init__(self) -> None:
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
        for name in ("p_curved", "p_border", "p_shadow", "p_poisson", "p_upper", "p_title"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.p_word, self.p_line, self.p_paragraph) < 0:
            problems.append("text kind probabilities must be >= 0")
        if self.min_font_px < 1 or self.max_attempts < 0 or not self.segmentation_scales:
            problems.append("min_font_px >= 1, max_attempts >= 0 and a segmentation scale needed")
        if problems:
            raise ValueError("invalid SynthConfig: " + "; ".join(problems))
