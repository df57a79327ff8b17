"""Size, cost and CPU latency of the FCRN detectors.

Prints, per network: parameters, GFLOPs of one forward pass (torch's FlopCounterMode: a
multiply-add counts as 2 FLOPs) and median CPU latency over ``--repeats`` runs, eval mode
with BatchNorm folded (the inference configuration), batch 1.

    .venv/bin/python benchmarks/model_speed.py                # 512x512, 2 threads
    .venv/bin/python benchmarks/model_speed.py --size 384 --repeats 20 --archs fcrn-lite

Latency on a shared machine depends on the load: check ``uptime`` and compare runs taken
under the same conditions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from synthloc.model import ModelConfig, build_model, fold_batchnorm

VARIANTS = {
    "fcrn": ModelConfig(arch="fcrn"),
    "fcrn/16": ModelConfig(arch="fcrn", stride=16),
    "fcrn-lite": ModelConfig(arch="fcrn-lite"),
    "fcrn-lite/16": ModelConfig(arch="fcrn-lite", stride=16),
}


def measure(config: ModelConfig, size: int, repeats: int) -> dict[str, float]:
    """Params (millions), GFLOPs and median/min latency (ms) of one 3 x size x size image."""
    model = fold_batchnorm(build_model(config))
    params = sum(p.numel() for p in model.parameters())
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(x)
        model(x)  # warm-up: allocator and kernel selection
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return {
        "params_m": params / 1e6,
        "gflops": counter.get_total_flops() / 1e9,
        "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="input height and width")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--archs", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"input 1x3x{args.size}x{args.size}, {args.threads} threads, {args.repeats} repeats")
    print(f"{'variant':<14}{'params(M)':>10}{'GFLOPs':>9}{'median ms':>11}{'min ms':>9}")
    for name in args.archs:
        r = measure(VARIANTS[name], args.size, args.repeats)
        print(
            f"{name:<14}{r['params_m']:>10.2f}{r['gflops']:>9.2f}"
            f"{r['median_ms']:>11.1f}{r['min_ms']:>9.1f}"
        )


if __name__ == "__main__":
    main()
