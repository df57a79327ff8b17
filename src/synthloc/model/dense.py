"""FCRN-dense: the FCRN's per-cell box regression made dense, for small incidental text.

``head(neck(backbone(x)))``:

* backbone: EfficientNet-Lite0 (``efficientnet.py``), features at strides 4, 8, 16, 32;
  it can start from ImageNet weights (``load_imagenet_weights``), for training only;
* neck: a light top-down feature pyramid: 1x1 lateral convs to ``C`` channels, then from
  stride 32 down to the output stride, ``upsample x2 + lateral`` followed by a depthwise-separable
  3x3 (``SeparableConv``) at every level;
* head: one more separable 3x3 and a 1x1 conv to the 7 output channels.

Contract (the same shape as ``fcrn.py``'s, other channel meanings; see ``dense_targets.py``):

* input ``x``: float ``[N, 3, H, W]``, RGB in ``[0, 1]`` (``preprocess``); zero-padded
  right/bottom to a multiple of 32 inside ``forward`` and normalised as the backbone expects;
* output: float ``[N, 7, ceil(H / 32) * 32 / s, ceil(W / 32) * 32 / s]`` for output stride
  ``s`` (4 or 8), channels ``0 left, 1 top, 2 right, 3 bottom`` (log distances from the cell
  centre to the word box's sides, in cells), ``4 cos, 5 sin`` (the word's angle) and
  ``6 c`` (a logit: dense maps are trained with BCE, so ``confidence="logit"``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthloc.model.efficientnet import INPUT_MEAN, INPUT_STD, EfficientNetLite0
from synthloc.model.layers import ConvNormAct, SeparableConv

NUM_OUTPUTS = 7
# Every level of the backbone is a power-of-two subsampling up to 32.
PAD_MULTIPLE = 32
_TEXT_PRIOR = 0.01


class FeaturePyramid(nn.Module):
    """Top-down merge of ``[f4, f8, f16, f32]`` into one map at ``out_stride`` (4 or 8)."""

    def __init__(
        self,
        in_channels: tuple[int, ...],
        strides: tuple[int, ...],
        channels: int,
        out_stride: int,
        norm: str,
    ) -> None:
        super().__init__()
        if out_stride not in strides:
            raise ValueError(f"output stride {out_stride} is not one of the features' {strides}")
        self.first = strides.index(out_stride)
        used = range(self.first, len(strides))
        self.lateral = nn.ModuleList(ConvNormAct(in_channels[i], channels, 1, norm) for i in used)
        # One smoothing conv per merge (every level below the top).
        self.smooth = nn.ModuleList(
            SeparableConv(channels, channels, 3, norm) for _ in range(len(used) - 1)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        levels = features[self.first :]
        top = self.lateral[-1](levels[-1])
        # From the coarsest level down: upsample, add the lateral, smooth.
        for k in range(len(levels) - 2, -1, -1):
            top = F.interpolate(top, scale_factor=2.0, mode="nearest")
            top = self.smooth[k](self.lateral[k](levels[k]) + top)
        return top


class FCRNDense(nn.Module):
    """EfficientNet-Lite0 + feature pyramid + dense 7-channel head (see the module docstring)."""

    def __init__(self, config: object) -> None:
        from synthloc.model.fcrn import ModelConfig, _channels

        super().__init__()
        assert isinstance(config, ModelConfig)
        if config.in_channels != 3:
            raise ValueError("fcrn-dense takes RGB input (in_channels 3)")
        self.config = config
        self.stride = config.stride
        self.batchnorm_folded = False
        channels = _channels(64, config.width)
        self.backbone = EfficientNetLite0(config.norm)
        self.neck = FeaturePyramid(
            self.backbone.channels, self.backbone.strides, channels, config.stride, config.norm
        )
        self.head_conv = SeparableConv(channels, channels, 3, config.norm)
        self.dropout = nn.Dropout2d(config.dropout) if config.dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(channels, NUM_OUTPUTS, 1)
        for module in [*self.backbone.modules(), *self.neck.modules(), *self.head_conv.modules()]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.head.weight, std=0.01)
        with torch.no_grad():
            bias = torch.zeros(NUM_OUTPUTS)
            # Sides start at exp(1) cells; confidence at the text prior (logit) or 0 (linear).
            bias[0:4] = 1.0
            bias[4] = 1.0  # cos: horizontal text
            if config.confidence == "logit":
                bias[6] = -math.log((1 - _TEXT_PRIOR) / _TEXT_PRIOR)
            self.head.bias = nn.Parameter(bias)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Zero padding to a multiple of 32 and the backbone's normalisation."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input [N, 3, H, W], got shape {tuple(x.shape)}")
        pad_h = (-x.shape[2]) % PAD_MULTIPLE
        pad_w = (-x.shape[3]) % PAD_MULTIPLE
        x = F.pad(x, (0, pad_w, 0, pad_h))
        return (x - INPUT_MEAN) / INPUT_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` float ``[N, 3, H, W]`` in ``[0, 1]`` -> ``[N, 7, H'/s, W'/s]`` (H', W' padded)."""
        features = self.backbone(self.prepare_input(x))
        return self.head(self.dropout(self.head_conv(self.neck(features))))
