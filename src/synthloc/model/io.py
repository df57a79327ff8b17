"""Model files: config + weights (+ caller metadata) in one ``torch.save`` archive.

Layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "synthloc-model", "version": 1, "config": asdict(ModelConfig),
     "batchnorm_folded": bool, "state_dict": ..., "extra": dict}

``extra`` holds caller metadata (training step, metrics...); it is stored as plain Python
values and tensors so the file loads without unpickling arbitrary objects.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthloc.atomic import atomic_path
from synthloc.model.fcrn import ModelConfig, build_model, fold_batchnorm

FILE_FORMAT = "synthloc-model"
FILE_VERSION = 1
# ``extra`` key: the padding of the model's training boxes (its run's ``data.box_pad``; absent
# = 0, the engine's tight boxes). ONNX files carry it as ``synthloc.<key>`` metadata.
TRAINED_BOX_PAD_KEY = "target_box_pad"


_PLAIN_SCALARS = (type(None), bool, int, float, str)


def _plain(value: Any, where: str) -> Any:
    """``value`` as something ``torch.load(weights_only=True)`` accepts, else ``TypeError``.

    numpy scalars become Python scalars and numpy arrays become tensors, since metrics computed
    with numpy are the usual content of ``extra``.
    """
    # First: np.float64 subclasses float but pickles as a numpy object.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (*_PLAIN_SCALARS, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, (list, tuple)):
        items = [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: dict keys must be str or int, got {type(key).__name__}")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    raise TypeError(
        f"{where}: {type(value).__name__} is not storable in a model file "
        "(use plain Python values, numpy values or tensors)"
    )


def save_model(path: str | os.PathLike[str], model: nn.Module, extra: dict | None = None) -> None:
    """Write ``model`` (built by ``build_model``, possibly BN-folded) to ``path`` atomically.

    The file is written to a temporary name in the same folder, then renamed over ``path``.
    ``extra`` may hold plain Python values (None, bool, int, float, str, lists, tuples, dicts),
    tensors and numpy values (stored as Python scalars / tensors); anything else raises
    ``TypeError`` before writing.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise TypeError("save_model needs a model built by synthloc.model.build_model")
    payload = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "config": dataclasses.asdict(config),
        "batchnorm_folded": bool(getattr(model, "batchnorm_folded", False)),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": _plain(dict(extra or {}), "extra"),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())


def load_model_with_extra(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved model (eval mode) and return it with the file's ``extra`` dict.

    Raises ``FileNotFoundError`` if ``path`` is missing and ``ValueError`` naming the file if
    it is corrupt, not a synthloc model, or its weights do not fit its config.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"model file not found: {source}")
    try:
        payload = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise ValueError(f"{source}: not a readable model file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ValueError(f"{source}: not a synthloc model file (missing format marker)")
    if payload.get("version") != FILE_VERSION:
        raise ValueError(
            f"{source}: unsupported synthloc model file version {payload.get('version')!r}"
        )
    try:
        config = ModelConfig(**payload["config"])
        model = build_model(config)
        if payload.get("batchnorm_folded", False):
            model = fold_batchnorm(model)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: invalid synthloc model file ({exc})") from exc
    model.to(map_location)
    model.eval()
    extra = payload.get("extra") or {}
    return model, dict(extra)


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by :func:`save_model`, in eval mode (see ``load_model_with_extra``)."""
    return load_model_with_extra(path, map_location)[0]
