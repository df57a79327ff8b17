"""The second stage ("multi-filt" in Gupta et al. 2016, after Jaderberg et al.): a small CNN
that looks at each first-stage candidate, rectified to 32 x 128 with some context, and returns
the probability that it is text and a refinement of its quad.

Modules, one concern each:

    model.py   the network (forward(x [N, 3, 32, 128]) -> [N, 9]) and its config
    crops.py   quads -> rectified crops and back (offsets <-> image-pixel quads)
    data.py    training data made by the project (jittered words, hard negatives), in shards
    train.py   the training run (on synthloc.train's run-folder machinery)
    io.py      verifier model files

Detection composes it in :mod:`synthloc.detect.verifier`.
"""

from synthloc.verify.crops import Rectification, apply_offsets, crop_offsets, rectify
from synthloc.verify.io import load_verifier_with_extra, save_verifier
from synthloc.verify.model import CROP_HEIGHT, CROP_WIDTH, Verifier, VerifierConfig

__all__ = [
    "CROP_HEIGHT",
    "CROP_WIDTH",
    "Rectification",
    "Verifier",
    "VerifierConfig",
    "apply_offsets",
    "crop_offsets",
    "load_verifier_with_extra",
    "rectify",
    "save_verifier",
]
