"""Checkpoints: atomic save, checked load, resume compatibility, and models read back from
checkpoints or model files."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthloc.atomic import atomic_path
from synthloc.train_config import TrainConfig, config_from_dict

CHECKPOINT_VERSION = 1


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission); the file it was to
    replace is left as it was."""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Serialise ``state`` in memory, then write it to a temporary file in the same folder and
    rename it (atomic). CheckpointWriteError naming the file when the write fails."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    target = Path(path)
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(buffer.getbuffer())
    except OSError as error:
        reason = error.strerror or str(error)
        kept = "the previous checkpoint is intact" if target.is_file() else "nothing was written"
        raise CheckpointWriteError(
            f"{target}: cannot write the checkpoint ({reason}); {kept}"
        ) from error


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit`; ValueError naming the file if it is not one."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no checkpoint to resume from")
    try:
        state = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as error:  # torch.load raises many types for corrupt files
        raise ValueError(f"{source}: cannot read checkpoint: {error}") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{source}: not a synthloc training checkpoint (version mismatch)")
    return state


def check_resumable(config: TrainConfig, checkpoint: dict[str, Any], where: Path) -> None:
    """ValueError unless ``config`` continues the run of ``checkpoint`` (same model, seed,
    batch size, accumulation and data; steps, schedule and validation may change)."""
    saved = config_from_dict(TrainConfig, checkpoint["config"])
    # The stream is the same for any number of loader workers, so that may change.
    saved.data = replace(saved.data, workers=config.data.workers)
    for part in ("model", "seed", "batch_size", "accum_steps", "data"):
        if getattr(saved, part) != getattr(config, part):
            raise ValueError(
                f"{where}: cannot resume with a different {part!r} config "
                f"(saved: {getattr(saved, part)!r})"
            )


def init_weights(path: Path, config: TrainConfig) -> dict[str, torch.Tensor]:
    """State dict of the model file ``path``, checked against the run's architecture."""
    from synthloc.model import load_model

    if not path.is_file():
        raise FileNotFoundError(f"{path}: init model file not found")
    source = load_model(path)
    source_config = getattr(source, "config", None)
    if source_config != config.model:
        raise ValueError(
            f"{path}: its model config {source_config} differs from the run's {config.model}"
        )
    return source.state_dict()


def model_from_checkpoint(path: str | os.PathLike[str], weights: str = "ema") -> nn.Module:
    """The model of a training checkpoint in eval mode: its EMA, weight-average or raw weights.

    weights: "ema" (the run's moving average; raises if the run kept none), "swa" (the
    stochastic weight average of a run with ``swa_start``; raises before its first snapshot)
    or "raw" (the optimiser's current weights). Save it with :func:`synthloc.model.save_model`.
    """
    from synthloc.model import build_model

    if weights not in ("ema", "swa", "raw"):
        raise ValueError(f"weights must be 'ema', 'swa' or 'raw', got {weights!r}")
    checkpoint = load_checkpoint(path)
    config = config_from_dict(TrainConfig, checkpoint["config"])
    model = build_model(config.model)
    if weights == "raw":
        state = checkpoint["model"]
    elif weights == "swa":
        swa = checkpoint.get("swa")
        if swa is None or int(swa["count"]) == 0:
            raise ValueError(f"{path}: this run holds no weight average yet (swa_start)")
        state = swa["module"]
    else:
        ema = checkpoint.get("ema")
        if ema is None:
            raise ValueError(f"{path}: this run kept no EMA weights; use weights='raw'")
        state = ema["module"] if "module" in ema and "updates" in ema else ema
    model.load_state_dict(state)
    return model.eval()
