"""Reusable convolution blocks: conv-norm-act, depthwise-separable conv, frozen BatchNorm.

Architectures (``fcrn.py``) are assembled from these; ``fold_batchnorm`` in ``fcrn.py`` relies on
every normalisation layer living inside a :class:`ConvNormAct` right after its convolution.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

NORMS = ("batch", "group", "frozen_batch")


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm that always normalises with its stored statistics, in train and eval mode.

    The affine ``weight`` and ``bias`` stay trainable; ``running_mean``/``running_var`` are
    buffers that are never updated.  This makes batch size 1 safe (no batch statistics) and
    lets a model fine-tune from a checkpoint trained with ordinary BatchNorm: the state-dict
    keys are the same (``num_batches_tracked`` is accepted and dropped).
    """

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Checkpoints from nn.BatchNorm2d carry a step counter this layer has no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def scale_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(scale, shift)`` with ``y = x * scale + shift``."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_and_shift()
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def make_norm(norm: str, channels: int, eps: float = 1e-5) -> nn.Module:
    """The normalisation layer named by ``norm`` ("batch" | "group" | "frozen_batch").

    GroupNorm uses up to 32 groups of at least 4 channels each, whichever divides ``channels``.
    ``eps`` is the variance epsilon (1e-5 is PyTorch's; TensorFlow-trained weights use 1e-3).
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels, eps=eps)
    if norm == "frozen_batch":
        return FrozenBatchNorm2d(channels, eps=eps)
    if norm == "group":
        groups = min(32, max(1, channels // 4))
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels, eps=eps)
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


ACTIVATIONS = ("relu", "relu6")


class ConvNormAct(nn.Sequential):
    """``Conv2d -> norm -> ReLU`` with "same" padding (``dilation * (kernel - 1) / 2``).

    The convolution has no bias because the normalisation that follows supplies one;
    ``fold_batchnorm`` replaces ``conv`` by a biased conv and ``norm`` by ``nn.Identity``.

    ``act``: True or "relu" (ReLU), "relu6" (ReLU6, as in MobileNet/EfficientNet-Lite), False
    (none).  ``tf_same``: pad a strided convolution the way TensorFlow's "SAME" does for inputs
    whose size is a multiple of the stride (``k - s`` pixels in all, the extra one at the
    right/bottom) with a ``ZeroPad2d`` before an unpadded conv, so that weights trained in
    TensorFlow see the pixels they were trained on.  ``eps``: the norm's variance epsilon.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        norm: str,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: bool | str = True,
        eps: float = 1e-5,
        tf_same: bool = False,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__()
        if tf_same and stride > 1:
            total = dilation * (kernel_size - 1) + 1 - stride
            before = max(0, total) // 2
            self.pad = nn.ZeroPad2d((before, total - before, before, total - before))
            padding = 0
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.norm = make_norm(norm, out_channels, eps)
        if act is True or act == "relu":
            self.act: nn.Module = nn.ReLU(inplace=True)
        elif act == "relu6":
            self.act = nn.ReLU6(inplace=True)
        elif act is False:
            self.act = nn.Identity()
        else:
            raise ValueError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")
        # oneDNN's channels-last kernels for strongly dilated depthwise convolutions are
        # several times slower than its NCHW ones on CPU (measured: 5x5, dilation 4, 320
        # channels at 12x12, forward + backward 94 ms vs 56 ms per batch of 16).
        self.conv_in_nchw_on_cpu = groups == in_channels and groups > 1 and dilation >= 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.conv_in_nchw_on_cpu
            and x.device.type == "cpu"
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
        ):
            out = self.conv(x.contiguous()).contiguous(memory_format=torch.channels_last)
            return self.act(self.norm(out))
        return super().forward(x)


class SeparableConv(nn.Module):
    """Depthwise ``k x k`` conv-norm-act then pointwise ``1 x 1`` conv-norm-act.

    Costs about ``k*k*C_in + C_in*C_out`` multiply-adds per output pixel instead of
    ``k*k*C_in*C_out``.  When the block keeps shape (stride 1, ``C_in == C_out``) its input is
    added to its output, so deep stacks of these train as easily as shallow ones.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        norm: str,
        stride: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(
            in_channels,
            in_channels,
            kernel_size,
            norm,
            stride=stride,
            dilation=dilation,
            groups=in_channels,
        )
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, norm)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return x + out if self.residual else out
