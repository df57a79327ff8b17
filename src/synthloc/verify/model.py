"""The verifier network: one rectified word candidate -> text logit + corner refinement.

Contract: ``forward(x) -> pred``.

* ``x``: float32 ``[N, 3, 32, 128]``, RGB in ``[0, 1]`` (``synthloc.model.preprocess`` of
  the crops made by :func:`synthloc.verify.crops.rectify`).
* ``pred``: float32 ``[N, 9]``: column 0 is the text/non-text logit (sigmoid = probability of
  text); columns 1..8 are the corner offsets ``dx1, dy1, ..., dx4, dy4`` of the refined quad
  from the candidate quad, in crop coordinates divided by the crop size (x by its width, y by
  its height); :func:`synthloc.verify.crops.apply_offsets` maps them back to image pixels.

A small VGG-like stack (four conv-BN-ReLU layers, 32x128 -> 2x8; 16, 32, 64, 128 channels at
``width=1``) and a two-layer head: about 0.36 M parameters and 11 M multiply-adds per crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from synthloc.model.layers import ConvNormAct

CROP_HEIGHT = 32
CROP_WIDTH = 128
OUTPUT_CHANNELS = 9  # logit + 8 corner offsets


@dataclass(frozen=True)
class VerifierConfig:
    """Architecture of a verifier.

    width: channel multiplier of the conv layers (1.0 = 16, 32, 64, 128 channels).
    hidden: units of the fully connected layer before the output.
    context: margin added around the candidate quad before rectification, as a fraction of
        the quad's height on every side (the crop sees a little of what surrounds the word).
    """

    width: float = 1.0
    hidden: int = 128
    context: float = 0.25

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"verifier width must be positive, got {self.width}")
        if self.hidden < 1:
            raise ValueError(f"verifier hidden must be at least 1, got {self.hidden}")
        if not 0.0 <= self.context <= 2.0:
            raise ValueError(f"verifier context must be in [0, 2], got {self.context}")


class Verifier(nn.Module):
    """See the module docstring for the input and output contract."""

    def __init__(self, config: VerifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or VerifierConfig()
        c1, c2, c3, c4 = (max(8, round(c * self.config.width)) for c in (16, 32, 64, 128))
        # Early strides keep the cost per crop near 11 M multiply-adds at width 1: a detector
        # sends tens of candidates per image through this network.
        self.features = nn.Sequential(
            ConvNormAct(3, c1, 3, "batch", stride=2),  # 16 x 64
            ConvNormAct(c1, c2, 3, "batch", stride=2),  # 8 x 32
            ConvNormAct(c2, c3, 3, "batch"),
            nn.MaxPool2d(2),  # 4 x 16
            ConvNormAct(c3, c4, 3, "batch"),
            nn.MaxPool2d(2),  # 2 x 8
        )
        cells = (CROP_HEIGHT // 16) * (CROP_WIDTH // 16)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c4 * cells, self.config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.config.hidden, OUTPUT_CHANNELS),
        )
        # Start from "no refinement": the offset outputs begin at zero.
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight[1:].zero_()
            last.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 32, 128]`` -> ``[N, 9]`` (logit, 8 normalised corner offsets)."""
        return self.head(self.features(x))
