"""Verifier model files: config + weights + metadata, like :mod:`synthloc.model.io`.

Layout (``torch.load(weights_only=True)`` safe)::

    {"format": "synthloc-verifier", "version": 1, "config": asdict(VerifierConfig),
     "batchnorm_folded": bool, "state_dict": ..., "extra": dict}

``extra["verify"]`` may hold the recommended detection setting with this verifier:
``threshold`` (minimum text probability) and ``first_stage_threshold`` (the first stage's
threshold when it runs before this verifier), written by ``benchmarks/tune_verifier.py``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthloc.atomic import atomic_path
from synthloc.model import fold_batchnorm
from synthloc.model.io import _plain
from synthloc.verify.model import Verifier, VerifierConfig

FILE_FORMAT = "synthloc-verifier"
FILE_VERSION = 1


def save_verifier(
    path: str | os.PathLike[str], model: nn.Module, extra: dict[str, Any] | None = None
) -> None:
    """Write a :class:`Verifier` (possibly BN-folded) to ``path`` atomically."""
    config = getattr(model, "config", None)
    if not isinstance(config, VerifierConfig):
        raise TypeError("save_verifier needs a synthloc.verify.Verifier")
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


def load_verifier_with_extra(path: str | os.PathLike[str]) -> tuple[Verifier, dict[str, Any]]:
    """Rebuild a saved verifier (eval mode, CPU) and its ``extra`` dict.

    FileNotFoundError if ``path`` is missing; ValueError naming the file if it is not a
    verifier file (a detector model file included) or its weights do not fit its config.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: verifier file not found")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise ValueError(f"{source}: not a readable verifier file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ValueError(
            f"{source}: not a synthloc verifier file (made by `synthloc train-verifier`)"
        )
    if payload.get("version") != FILE_VERSION:
        raise ValueError(f"{source}: unsupported verifier file version {payload.get('version')!r}")
    try:
        model = Verifier(VerifierConfig(**payload["config"]))
        if payload.get("batchnorm_folded", False):
            model = fold_batchnorm(model)  # type: ignore[assignment]
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: invalid verifier file ({exc})") from exc
    return model.eval(), dict(payload.get("extra") or {})
