"""The FCRN detector: networks, target encoding/decoding, the curriculum loss, model files.

Typical use::

    model = build_model(ModelConfig(arch="fcrn-lite"))
    grid = encode_targets(sample.word_quads, sample.ignore, image_hw, model.stride)  # workers
    pred = model(preprocess(images))                      # [N, 7, Hc, Wc]
    terms = FCRNLoss(LossConfig())(pred, target, positive, ignore, step)
    quads, scores = decode_predictions(pred[0], model.stride, 0.5, model.config.confidence)
"""

from synthloc.model.dense import FCRNDense
from synthloc.model.dense_targets import decode_dense_predictions, encode_dense_targets
from synthloc.model.fcrn import (
    FCRN,
    FCRNLite,
    ModelConfig,
    build_model,
    fold_batchnorm,
    preprocess,
)
from synthloc.model.io import load_model, load_model_with_extra, save_model
from synthloc.model.layers import ConvNormAct, FrozenBatchNorm2d, SeparableConv
from synthloc.model.loss import FCRNLoss, LossConfig, negative_weight
from synthloc.model.targets import GridTargets, decode_predictions, encode_targets

__all__ = [
    "FCRN",
    "ConvNormAct",
    "FCRNDense",
    "FCRNLite",
    "FCRNLoss",
    "FrozenBatchNorm2d",
    "GridTargets",
    "LossConfig",
    "ModelConfig",
    "SeparableConv",
    "build_model",
    "decode_dense_predictions",
    "decode_predictions",
    "encode_dense_targets",
    "encode_targets",
    "fold_batchnorm",
    "load_model",
    "load_model_with_extra",
    "negative_weight",
    "preprocess",
    "save_model",
]
