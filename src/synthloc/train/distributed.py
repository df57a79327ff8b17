"""Where a process sits in a (possibly single-process) torchrun job, and the few collective
operations the training loop needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Where this process sits in a (possibly single-process) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, dist_ctx: DistContext) -> torch.device:
    """ "auto" -> CUDA (this rank's local GPU) when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dist_ctx.local_rank % max(1, torch.cuda.device_count()))
    return device


def init_distributed(device_name: str) -> DistContext:
    """Join the process group when run by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return DistContext(rank, world, local_rank, False)
    use_cuda = device_name.startswith("cuda") or (
        device_name == "auto" and torch.cuda.is_available()
    )
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world, local_rank, True)


def all_finite(value: torch.Tensor, dist_ctx: DistContext) -> bool:
    """True when the loss is finite on every rank (all ranks then skip or step together)."""
    flag = torch.tensor([1.0 if bool(torch.isfinite(value).all()) else 0.0])
    if dist_ctx.enabled:
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0.5)


def any_rank(flag: bool, dist_ctx: DistContext, device: torch.device) -> bool:
    """True when ``flag`` is set on some rank (one tiny all-reduce under torchrun)."""
    if not dist_ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_buffers(modules: list[nn.Module], dist_ctx: DistContext) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics).

    DDP broadcasts them before each forward, but the last forward leaves each rank with its
    own running statistics; syncing before saving or evaluating makes all ranks identical.
    """
    if not dist_ctx.enabled:
        return
    for module in modules:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(model, nn.parallel.DistributedDataParallel) and inner else model
