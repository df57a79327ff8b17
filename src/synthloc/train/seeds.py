"""Seed-sequence tags that separate the random streams derived from a run's seed."""

from __future__ import annotations

import numpy as np

INIT_TAG, LOSS_TAG, SOURCE_TAG, MIX_TAG, AUG_TAG = 1, 2, 3, 4, 5


def seed_int(*parts: int) -> int:
    """One 32-bit seed from a run seed and tags (``SeedSequence`` entropy mixing)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])
