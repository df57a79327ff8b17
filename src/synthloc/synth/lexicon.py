"""Scene-text words: what signs, shop fronts, labels and posters say (a seeded generator).

Real incidental text (ICDAR 2015) is mostly short words on signs: 55% of legible words are all
capitals, median length 5, a few prices, numbers and phone numbers. The lexicon mixes common
signage words, brand-like names built from syllables, prices, numbers, unit and phone numbers,
and short phrases. Every choice takes the caller's generator.
"""

from __future__ import annotations

import numpy as np

from synthloc.synth.text_source import TextBlock

SIGN_WORDS = (
    "open closed sale exit entrance push pull stop bank hotel cafe coffee bar restaurant food "
    "court market mall shop store pharmacy clinic dental medical centre center tower plaza "
    "station bus taxi parking car park lift toilet toilets male female ladies gents welcome "
    "free new hot fresh best price offer discount off only daily today now all day night "
    "fashion beauty salon hair spa nails gold jewellery jewelers watch optical eyewear shoes "
    "bags sports outlet express mart mini super fruit juice tea bakery bread cake noodle rice "
    "chicken seafood kitchen grill pizza burger dessert ice cream milk fish pork beef soup "
    "service counter level floor block unit lobby office room hall gate road street avenue "
    "lane drive way north south east west main city central park garden square bridge river "
    "school college university library museum gallery theatre cinema music books toys games "
    "mobile phone digital electronics camera photo print copy design studio home living "
    "furniture hardware paint lights tools repair wash laundry cleaning travel tours tickets "
    "airport terminal arrival departure information info help police fire emergency caution "
    "danger warning no smoking entry keep left right slow school zone ahead one way men women "
    "kids baby family members only staff private public reserved booking delivery takeaway "
    "order menu special set lunch dinner breakfast buffet asian western thai japanese korean "
    "chinese indian halal vegetarian organic natural health care pet money change atm cash "
    "card visa union bank insurance property estate group holdings limited ltd pte co inc "
    "company international global trading supply services solutions centre mall city hall"
).split()

PHRASES = (
    ("NO", "PARKING"),
    ("NO", "SMOKING"),
    ("OPEN", "DAILY"),
    ("NOW", "OPEN"),
    ("FOR", "SALE"),
    ("TO", "LET"),
    ("KEEP", "CLEAR"),
    ("STAFF", "ONLY"),
    ("THANK", "YOU"),
    ("PUSH", "TO", "OPEN"),
    ("MIND", "THE", "GAP"),
    ("SALE", "UP", "TO"),
    ("BUY", "1", "GET", "1"),
    ("FREE", "WIFI"),
    ("CAR", "PARK"),
    ("FIRE", "EXIT"),
    ("WET", "FLOOR"),
    ("NEW", "ARRIVALS"),
    ("SELF", "SERVICE"),
    ("TAKE", "AWAY"),
)

_ONSETS = (
    "b c d f g h j k l m n p r s t v z br cr dr fr gr kr pr tr st sk sp bl cl fl gl pl".split()
)
_VOWELS = "a e i o u a e o ai ea io ou".split()
_CODAS = ["", "", "", "n", "r", "s", "x", "l", "m", "t", "k", "nd", "ng", "rk", "st"]


def brand_name(rng: np.random.Generator) -> str:
    """A pronounceable coined name of 2-3 syllables (Zentra, Kovix)."""
    n = 2 if rng.random() < 0.7 else 3
    parts = [
        str(rng.choice(_ONSETS))
        + str(rng.choice(_VOWELS))
        + (str(rng.choice(_CODAS)) if i == n - 1 else "")
        for i in range(n)
    ]
    return "".join(parts)


def number_token(rng: np.random.Generator) -> str:
    """A price, count, unit number, phone number, percentage or a code like B2."""
    kind = int(rng.integers(7))
    if kind == 0:
        whole = int(rng.integers(1, 200))
        cents = int(rng.integers(0, 20)) * 5
        return f"${whole}.{cents:02d}" if rng.random() < 0.6 else f"{whole}.{cents:02d}"
    if kind == 1:
        return str(int(rng.integers(1, 10000)))
    if kind == 2:
        return f"#{int(rng.integers(1, 20)):02d}-{int(rng.integers(1, 200)):02d}"
    if kind == 3:
        return f"{int(rng.integers(6000, 10000))}{int(rng.integers(0, 10000)):04d}"
    if kind == 4:
        return f"{int(rng.integers(1, 10)) * 10}%"
    if kind == 5:
        return f"{int(rng.integers(6000, 10000))}-{int(rng.integers(0, 10000)):04d}"
    letter = "ABCDEFGHJKLMNPRSTUVWXYZ"[int(rng.integers(23))]
    return (
        f"{letter}{int(rng.integers(1, 100))}"
        if rng.random() < 0.5
        else f"{int(rng.integers(1, 100))}{letter}"
    )


def _cased(rng: np.random.Generator, word: str) -> str:
    if any(c.isdigit() for c in word):
        return word.upper()
    r = rng.random()
    if r < 0.62:
        return word.upper()
    if r < 0.92:
        return word[:1].upper() + word[1:].lower()
    return word.lower()


def scene_words(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` words as a sign would show them (consecutive when a phrase is drawn)."""
    words: list[str] = []
    while len(words) < count:
        r = rng.random()
        if r < 0.14:
            words += list(PHRASES[int(rng.integers(len(PHRASES)))])
            continue
        if r < 0.58:
            word = SIGN_WORDS[int(rng.integers(len(SIGN_WORDS)))]
        elif r < 0.955:
            word = brand_name(rng)
        else:
            word = number_token(rng)
        words.append(_cased(rng, word))
    return words[:count]


def sample_block(
    rng: np.random.Generator,
    n_lines: int,
    max_line_chars: int,
    allowed: frozenset[str],
    max_line_words: int,
    max_word_chars: int,
    single_word: bool,
) -> TextBlock:
    """Lexicon words wrapped like :meth:`TextSource.sample` (same arguments and contract)."""
    max_chars = min(max_word_chars, max_line_chars)
    if max_chars < 1 or n_lines < 1:
        return TextBlock(lines=[])
    # A line instance holds at least two words (a lone word is the "word" kind).
    per_line = (
        [1]
        if single_word
        else [
            int(rng.integers(min(2, max_line_words), max(max_line_words, 1) + 1))
            for _ in range(n_lines)
        ]
    )
    words = [
        w for w in scene_words(rng, sum(per_line) + 2) if len(w) <= max_chars and set(w) <= allowed
    ]
    lines: list[list[str]] = []
    i = 0
    for target in per_line:
        line: list[str] = []
        length = -1
        while (
            i < len(words) and len(line) < target and length + 1 + len(words[i]) <= max_line_chars
        ):
            line.append(words[i])
            length += 1 + len(words[i])
            i += 1
        if not line:
            break
        lines.append(line)
    return TextBlock(lines=lines)
