"""The one record that flows from the engine through shards and loaders to evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    """An image with word-level (and optionally character-level) ground truth.

    image: uint8 [H, W, 3], RGB.
    word_quads: float32 [N, 4, 2], pixel coordinates of ``image``, clockwise from top-left.
    words: N transcripts (``"###"`` marks a don't-care word in ICDAR data).
    char_quads: float32 [M, 4, 2]; one per non-whitespace character of ``words``, in order
        (SynthText's ``charBB`` convention). May be empty for real data.
    ignore: bool [N]; True for don't-care words (excluded from training and evaluation).
    name: an identifier (file stem or ``"<seed>_<index>"``).
    """

    image: np.ndarray
    word_quads: np.ndarray
    words: list[str]
    char_quads: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 2), np.float32))
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    name: str = ""

    def __post_init__(self) -> None:
        self.word_quads = np.asarray(self.word_quads, dtype=np.float32).reshape(-1, 4, 2)
        self.char_quads = np.asarray(self.char_quads, dtype=np.float32).reshape(-1, 4, 2)
        if len(self.ignore) != len(self.word_quads):
            self.ignore = np.array([w == "###" for w in self.words], dtype=bool)
        self.ignore = np.asarray(self.ignore, dtype=bool)
        if len(self.words) != len(self.word_quads):
            raise ValueError(
                f"sample {self.name!r}: {len(self.words)} transcripts for "
                f"{len(self.word_quads)} word quads"
            )
