"""The FCRN text detector (the paper's layout) and FCRN-lite (a CPU-sized variant).

Contract shared by both networks (see :func:`build_model`):

* input ``x``: float ``[N, C, H, W]``, RGB in ``[0, 1]`` as produced by :func:`preprocess`
  (``C == 3``; a grayscale model, ``in_channels == 1``, also accepts ``C == 1``).  Inside
  ``forward`` the model converts RGB to luma if it is a grayscale model, zero-pads the right and
  bottom up to a multiple of ``stride``, then normalises with the fixed mean 0.5 and std 0.25
  (no learned or data-dependent input statistics, so detection and export need no side file).
* output: float ``[N, 7, ceil(H / stride), ceil(W / stride)]``, one predictor per cell with
  channels ``0 x, 1 y, 2 w, 3 h, 4 cos, 5 sin, 6 c`` (meaning defined in ``targets.py``).
  ``c`` is a raw score (``confidence="linear"``) or a logit (``confidence="logit"``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthloc.model.layers import NORMS, ConvNormAct, FrozenBatchNorm2d, SeparableConv

ARCHS = ("fcrn", "fcrn-lite", "fcrn-dense")
# Output strides each architecture supports.
STRIDES = {"fcrn": (16, 32), "fcrn-lite": (16, 32), "fcrn-dense": (4, 8)}
CONFIDENCES = ("linear", "logit")
NUM_OUTPUTS = 7
INPUT_MEAN = 0.5
INPUT_STD = 0.25
# Luma weights (ITU-R BT.601) for grayscale models fed RGB.
_LUMA = (0.299, 0.587, 0.114)
# Prior probability of text in a cell used to initialise the logit head (RetinaNet's trick):
# a logit head starting at 0 would predict 0.5 everywhere and drown in negatives.
_TEXT_PRIOR = 0.01


@dataclass
class ModelConfig:
    """Everything needed to rebuild a detector; saved with its weights.

    arch: "fcrn" (the paper), "fcrn-lite" (depthwise-separable, CPU-sized; both one predictor
        per word at its centre cell, ``targets.py``) or "fcrn-dense" (EfficientNet-Lite0 with a
        feature pyramid; every cell inside a word's core predicts it, ``dense_targets.py``).
    in_channels: 3 (RGB) or 1 (grayscale; RGB input is converted inside ``forward``).
    width: channel multiplier applied to every layer (rounded to multiples of 8).
    stride: output cell size in pixels: 32 (the paper) or 16 for fcrn/fcrn-lite, 4 or 8 for
        fcrn-dense.
    norm: "batch", "group" (GroupNorm, batch-size independent) or "frozen_batch"
        (BatchNorm with fixed statistics and trainable affine: meant for fine-tuning a
        BatchNorm-trained model at batch size 1; from scratch it is a plain per-channel affine).
    dropout: probability of ``Dropout2d`` (whole channels) before the prediction head.  Like all
        ``nn.Dropout`` layers it draws from torch's default generator: the training loop must
        seed it (``torch.manual_seed``) for reproducible runs.
    confidence: "linear" (``c`` regressed with squared error, as in the paper) or "logit"
        (``c`` is a logit for BCE/focal losses; decoding applies a sigmoid).
    """

    arch: str = "fcrn-lite"
    in_channels: int = 3
    width: float = 1.0
    stride: int = 32
    norm: str = "batch"
    dropout: float = 0.0
    confidence: str = "linear"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; expected one of {ARCHS}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.stride not in STRIDES[self.arch]:
            raise ValueError(
                f"stride of {self.arch} must be one of {STRIDES[self.arch]}, got {self.stride}"
            )
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; expected one of {NORMS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(
                f"unknown confidence {self.confidence!r}; expected one of {CONFIDENCES}"
            )


def _channels(base: int, width: float) -> int:
    """``base * width`` rounded to a multiple of 8 (at least 8)."""
    return max(8, round(base * width / 8) * 8)


def preprocess(
    images: np.ndarray | torch.Tensor,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """uint8 RGB images ``[N, H, W, 3]`` (or one ``[H, W, 3]``) -> float32 ``[N, 3, H, W]``.

    Values are divided by 255 to lie in ``[0, 1]``; this is the input every model expects, for
    training and detection alike.  Grayscale images ``[N, H, W]`` / ``[N, H, W, 1]`` are
    repeated to three channels (grayscale *models* convert RGB to luma themselves).
    ``memory_format=torch.channels_last`` returns the NHWC-strided layout directly (one copy
    instead of two for a channels-last model).
    """
    tensor = (
        torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    )
    if tensor.dtype != torch.uint8:
        raise ValueError(f"preprocess expects uint8 images, got dtype {tensor.dtype}")
    if tensor.ndim == 3 and tensor.shape[-1] == 3:
        tensor = tensor.unsqueeze(0)
    elif tensor.ndim == 3:
        tensor = tensor.unsqueeze(-1)
    if tensor.ndim != 4 or tensor.shape[-1] not in (1, 3):
        raise ValueError(
            f"preprocess expects images [N, H, W, 3] (or [H, W, 3], [N, H, W, 1]), "
            f"got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[-1] == 1:
        tensor = tensor.expand(-1, -1, -1, 3)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=memory_format)


class _Detector(nn.Module):
    """Shared input handling and prediction head; subclasses build ``self.features``."""

    features: nn.Module

    def __init__(self, config: ModelConfig, feature_channels: int) -> None:
        super().__init__()
        self.config = config
        self.stride = config.stride
        self.batchnorm_folded = False
        self.dropout = nn.Dropout2d(config.dropout) if config.dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(feature_channels, NUM_OUTPUTS, 1)
        # A near-zero head makes the initial loss O(1): offsets 0, sizes = one cell, c = prior.
        nn.init.normal_(self.head.weight, std=0.01)
        with torch.no_grad():
            bias = torch.zeros(NUM_OUTPUTS)
            if config.confidence == "logit":
                bias[6] = -math.log((1 - _TEXT_PRIOR) / _TEXT_PRIOR)
            self.head.bias = nn.Parameter(bias)

    def _init_convs(self) -> None:
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Luma for grayscale models, zero padding to a multiple of stride, normalisation."""
        if x.ndim != 4:
            raise ValueError(f"expected input [N, C, H, W], got shape {tuple(x.shape)}")
        channels = x.shape[1]
        if self.config.in_channels == 1 and channels == 3:
            r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
            x = _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
        elif channels != self.config.in_channels:
            raise ValueError(
                f"model expects {self.config.in_channels} input channels, got {channels}"
            )
        # Always pad (possibly by 0): a traced/exported graph then handles every input size.
        pad_h = (-x.shape[2]) % self.stride
        pad_w = (-x.shape[3]) % self.stride
        x = F.pad(x, (0, pad_w, 0, pad_h))
        return (x - INPUT_MEAN) / INPUT_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` float ``[N, C, H, W]`` in ``[0, 1]`` -> ``[N, 7, ceil(H/s), ceil(W/s)]``."""
        return self.head(self.dropout(self.features(self.prepare_input(x))))


class FCRN(_Detector):
    """The paper's fully-convolutional regression network.

    conv64 5x5, pool; conv128 5x5, pool; conv128 3x3, conv128 3x3, pool; conv256 3x3,
    conv256 3x3, pool; conv512 3x3, conv512 3x3, conv512 5x5, pool; 1x1 head to 7 channels.
    Every conv is followed by normalisation and ReLU; pools are 2x2 max pools.  512x512 gives
    16x16x7.  The stride-16 variant drops the last pool.
    """

    def __init__(self, config: ModelConfig) -> None:
        def c(base: int) -> int:
            return _channels(base, config.width)

        super().__init__(config, c(512))
        n = config.norm
        layers: list[nn.Module] = [
            ConvNormAct(config.in_channels, c(64), 5, n),
            nn.MaxPool2d(2),
            ConvNormAct(c(64), c(128), 5, n),
            nn.MaxPool2d(2),
            ConvNormAct(c(128), c(128), 3, n),
            ConvNormAct(c(128), c(128), 3, n),
            nn.MaxPool2d(2),
            ConvNormAct(c(128), c(256), 3, n),
            ConvNormAct(c(256), c(256), 3, n),
            nn.MaxPool2d(2),
            ConvNormAct(c(256), c(512), 3, n),
            ConvNormAct(c(512), c(512), 3, n),
            ConvNormAct(c(512), c(512), 5, n),
        ]
        if config.stride == 32:
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self._init_convs()


class FCRNLite(_Detector):
    """FCRN's output contract at a fraction of the cost (0.58 GFLOPs at 512x512, stride 32).

    A 3x3 stem at stride 2, then depthwise-separable blocks (``SeparableConv``: depthwise kxk
    + pointwise 1x1, residual when shape is kept) down to stride 32; the last stage uses 5x5
    depthwise kernels dilated 1, 2, 4 so the receptive field (over 1000 px nominally) covers
    words of several hundred pixels; a 1x1 reduction precedes the head.  The stride-16 variant
    keeps the last stage at stride 16 and doubles its dilations to keep the receptive field.
    """

    def __init__(self, config: ModelConfig) -> None:
        def c(base: int) -> int:
            return _channels(base, config.width)

        super().__init__(config, c(160))
        n = config.norm
        last_stride = 2 if config.stride == 32 else 1
        dil = 1 if config.stride == 32 else 2
        self.features = nn.Sequential(
            ConvNormAct(config.in_channels, c(24), 3, n, stride=2),  # /2
            SeparableConv(c(24), c(32), 3, n, stride=2),  # /4
            SeparableConv(c(32), c(32), 3, n),
            SeparableConv(c(32), c(64), 3, n, stride=2),  # /8
            SeparableConv(c(64), c(64), 3, n),
            SeparableConv(c(64), c(160), 3, n, stride=2),  # /16
            SeparableConv(c(160), c(160), 3, n),
            SeparableConv(c(160), c(160), 5, n),
            SeparableConv(c(160), c(320), 3, n, stride=last_stride),  # /32 (or /16)
            SeparableConv(c(320), c(320), 5, n, dilation=dil),
            SeparableConv(c(320), c(320), 5, n, dilation=2 * dil),
            SeparableConv(c(320), c(320), 5, n, dilation=4 * dil),
            ConvNormAct(c(320), c(160), 1, n),  # 1x1 reduction before the head
        )
        self._init_convs()


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised detector for ``config`` (train mode)."""
    if config.arch == "fcrn":
        return FCRN(config)
    if config.arch == "fcrn-lite":
        return FCRNLite(config)
    if config.arch == "fcrn-dense":
        from synthloc.model.dense import FCRNDense

        return FCRNDense(config)
    raise ValueError(f"unknown arch {config.arch!r}; expected one of {ARCHS}")


def _fold_conv_norm(block: ConvNormAct) -> None:
    norm = block.norm
    if isinstance(norm, nn.BatchNorm2d):
        if norm.running_mean is None or norm.running_var is None:
            raise ValueError("cannot fold a BatchNorm2d without running statistics")
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
    elif isinstance(norm, FrozenBatchNorm2d):
        scale, shift = norm.scale_and_shift()
    else:
        return  # GroupNorm depends on the input: nothing to fold.
    conv = block.conv
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=True,
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = shift if conv.bias is None else conv.bias * scale + shift
        assert fused.bias is not None
        fused.bias.copy_(bias)
    block.conv = fused
    block.norm = nn.Identity()


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm folded into the conv before it.

    Matches ``model.eval()`` to float rounding (about 1e-6).  ``FrozenBatchNorm2d`` is folded
    too; GroupNorm layers are left in place (they normalise with input statistics).  The
    original model is not modified.  The copy has ``batchnorm_folded = True`` so ``save_model``
    records that it must be folded again when loaded.
    """
    folded = copy.deepcopy(model).eval()
    with torch.no_grad():
        for module in folded.modules():
            if isinstance(module, ConvNormAct):
                _fold_conv_norm(module)
    if hasattr(folded, "batchnorm_folded"):
        setattr(folded, "batchnorm_folded", True)  # noqa: B010 (any detector class)
    return folded
