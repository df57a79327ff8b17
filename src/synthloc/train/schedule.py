"""Optimiser (parameter groups with and without weight decay) and the learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from synthloc.train_config import OptimConfig, ScheduleConfig

BACKBONE_PREFIX = "backbone."


def _param_groups(model: nn.Module, config: OptimConfig) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation parameters (1-D tensors); the backbone's
    parameters at ``lr * backbone_lr_mult`` (their own groups only when the multiplier is not 1,
    so optimiser states of earlier runs keep their layout)."""
    split = config.backbone_lr_mult != 1.0
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_backbone = split and name.startswith(BACKBONE_PREFIX)
            groups.setdefault((in_backbone, param.ndim > 1), []).append(param)
    if split and not any(in_backbone for in_backbone, _ in groups):
        raise ValueError(
            f"optim.backbone_lr_mult={config.backbone_lr_mult} needs a model with a pretrained "
            f"backbone (fcrn-dense); {type(model).__name__} has no '{BACKBONE_PREFIX}*' parameters"
        )
    result = []
    for in_backbone in (False, True):
        for has_decay in (True, False):
            params = groups.get((in_backbone, has_decay), [])
            if not params and in_backbone:
                continue
            group: dict[str, Any] = {
                "params": params,
                "weight_decay": config.weight_decay if has_decay else 0.0,
            }
            if in_backbone:
                group["lr"] = config.lr * config.backbone_lr_mult
            result.append(group)
    return result


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or AdamW, with decay only on weight matrices/kernels and
    the backbone at its own learning rate (``backbone_lr_mult``)."""
    groups = _param_groups(model, config)
    if config.name == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
        )
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def lr_factor(step: int, schedule: ScheduleConfig, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (linear warmup, then the schedule)."""
    if schedule.warmup_steps > 0 and step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    if schedule.kind == "constant":
        return 1.0
    if schedule.kind == "step":
        return float(schedule.gamma ** sum(1 for m in schedule.milestones if step >= m))
    span = max(1, total_steps - schedule.warmup_steps)
    progress = min(1.0, (step - schedule.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return schedule.min_lr_ratio + (1.0 - schedule.min_lr_ratio) * cosine
