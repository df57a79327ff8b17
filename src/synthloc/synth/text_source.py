"""Text to render: words, lines and short paragraphs sampled from a corpus.

A corpus is a UTF-8 text file; Project Gutenberg headers and footers are stripped. A word
list (one word per line, like ``/usr/share/dict/words``) works too. Sampling picks a random
offset and reads consecutive words from there, so no index is built and loading is cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SYSTEM_WORD_LIST = Path("/usr/share/dict/words")
_ASSET_TEXT = Path(__file__).resolve().parent.parent / "assets" / "text" / "default.txt"
_GUTENBERG_START = re.compile(r"\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG[^\n]*\n", re.I)
_GUTENBERG_END = re.compile(r"\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG", re.I)
_EDGE_JUNK = "\"'`_*()[]{}<>|\\/~^"
# Typographic punctuation -> the ASCII the renderer draws.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
    }
)


def default_corpus_path() -> Path:
    """The system word list if present, else the text shipped with synthloc."""
    return SYSTEM_WORD_LIST if SYSTEM_WORD_LIST.is_file() else _ASSET_TEXT


def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg header and footer (licence text) if present."""
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return text


@dataclass
class TextBlock:
    """Lines of words to typeset; ``lines[i]`` is the list of words on line ``i``."""

    lines: list[list[str]]

    @property
    def words(self) -> list[str]:
        return [w for line in self.lines for w in line]


class TextSource:
    """Samples words from a corpus file with an explicit generator."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_corpus_path()
        # A folder means all its *.txt files (sorted), each stripped on its own.
        files = sorted(self.path.glob("*.txt")) if self.path.is_dir() else [self.path]
        if not files:
            raise ValueError(f"{self.path}: no .txt files in the corpus folder")
        parts = []
        for file in files:
            try:
                raw = file.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise ValueError(f"{file}: cannot read corpus ({exc})") from exc
            # A binary file (an image, an archive) decodes to NULs and replacement characters;
            # a few stray bad bytes in real text are tolerated.
            if "\x00" in raw or raw.count("\ufffd") > max(10, len(raw) // 100):
                raise ValueError(f"{file}: not a UTF-8 text file (binary data?)")
            parts.append(strip_gutenberg(raw))
        self.text = "\n".join(parts)
        if len(self.text.split()) < 1:
            raise ValueError(f"{self.path}: corpus has no words")
        # A word list (one word per line, alphabetical) must not be read consecutively, or
        # lines would be "apple apples applesauce": each word then gets its own offset.
        lines = self.text[:200_000].splitlines()
        single = sum(1 for line in lines if len(line.split()) == 1)
        self.word_list = len(lines) > 20 and single > 0.9 * len(lines)

    def _words_from(
        self, rng: np.random.Generator, count: int, allowed: frozenset[str], max_chars: int
    ) -> list[str]:
        """Up to ``count`` consecutive clean words starting at a random offset (bounded)."""
        words: list[str] = []
        tries = 4 * count if self.word_list else 4  # bounded either way
        for _ in range(tries):
            start = int(rng.integers(len(self.text)))
            chunk = self.text[start : start + 40 * (count + 2)].split()
            if self.word_list:
                chunk = chunk[:2]  # one word per offset
            for token in chunk[1:]:  # the first token may be cut by the offset
                word = token.translate(_TYPOGRAPHY).strip(_EDGE_JUNK)
                # A word with a character the font lacks is skipped, never altered: the
                # transcript must be exactly what is drawn.
                if not word or len(word) > max_chars or not set(word) <= allowed:
                    continue
                if not any(c.isalnum() for c in word):
                    continue
                words.append(word)
                if len(words) == count:
                    return words
        return words

    def sample(
        self,
        rng: np.random.Generator,
        n_lines: int,
        max_line_chars: int,
        allowed: frozenset[str],
        max_line_words: int = 5,
        max_word_chars: int = 16,
        single_word: bool = False,
    ) -> TextBlock:
        """Consecutive corpus words wrapped into at most ``n_lines`` lines.

        Each line holds at most ``max_line_chars`` characters (spaces included) and
        ``max_line_words`` words; only characters in ``allowed`` are kept. ``single_word``
        gives one word. May return an empty block when nothing renderable fits.
        """
        max_chars = min(max_word_chars, max_line_chars)
        if max_chars < 1 or n_lines < 1:
            return TextBlock(lines=[])
        # Lone one- and two-letter words ("a", "of") make poor, tiny samples; prefer longer
        # ones when the corpus offers them.
        prefer_long = rng.random() < 0.85
        if single_word or max_line_chars < 8:
            words = self._words_from(rng, 8, allowed, max_chars)
            longer = [w for w in words if len(w) >= 3]
            if longer and prefer_long:
                words = longer
            return TextBlock(lines=[[words[0]]] if words else [])
        # Consecutive words; each line gets a random target word count, so that lines are
        # not all full. A word longer than a line ends the block (words are never skipped,
        # which would bias the text towards short words).
        per_line = [int(rng.integers(1, max(max_line_words, 1) + 1)) for _ in range(n_lines)]
        words = self._words_from(rng, sum(per_line) + 2, allowed, max_word_chars)
        lines: list[list[str]] = []
        i = 0
        for target in per_line:
            line: list[str] = []
            length = -1
            while i < len(words) and len(line) < target:
                if length + 1 + len(words[i]) > max_line_chars:
                    break
                line.append(words[i])
                length += 1 + len(words[i])
                i += 1
            if not line:
                break
            lines.append(line)
        if prefer_long and sum(len(line) for line in lines) == 1 and len(lines[0][0]) < 3:
            longer = [w for w in words if 3 <= len(w) <= max_chars]
            if longer:
                lines = [[longer[0]]]
        return TextBlock(lines=lines)
