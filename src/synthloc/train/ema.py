"""Averages of a model's weights over a run: the exponential moving average (evaluated and
exported instead of the raw weights when a run sets ``ema_decay``) and the uniform average of
snapshots that stochastic weight averaging takes (``swa_start``)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEMA:
    """Exponential moving average of a model's floating-point weights and buffers (BatchNorm
    statistics included); integer buffers are copied.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    average forgets the random initial weights within the first few hundred steps instead of
    keeping ``decay ** n`` of them (with 0.999 that is still 22% after 1,500 steps).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = source[name].detach()
            if value.dtype.is_floating_point:
                value.lerp_(new.to(value.dtype), 1.0 - decay)
            else:
                value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "module" in state and "updates" in state:
            self.module.load_state_dict(state["module"])
            self.updates = int(state["updates"])
        else:  # checkpoints written before the warmup existed hold the weights only
            self.module.load_state_dict(state)
            self.updates = 10**9


class WeightAverage:
    """Uniform mean of snapshots of a model's floating-point weights and buffers (BatchNorm
    statistics included; integer buffers are the last snapshot's): stochastic weight
    averaging (Izmailov et al., 2018) over the points a run hands to :meth:`add`.

    The mean is kept as a running mean, so it needs one copy of the model whatever the number
    of snapshots; ``count`` is how many it holds (0: the module is a copy of the model it was
    built from, not an average).
    """

    def __init__(self, model: nn.Module) -> None:
        self.count = 0
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def add(self, model: nn.Module) -> None:
        self.count += 1
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = source[name].detach()
            if value.dtype.is_floating_point:
                value.add_(new.to(value.dtype) - value, alpha=1.0 / self.count)
            else:
                value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.count = int(state["count"])
