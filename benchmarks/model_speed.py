"""Size, cost and CPU forward speed of the FCRN detectors (fcrn, fcrn-lite, fcrn-dense).

Prints, per network and input size: parameters, GFLOPs of one forward pass (torch's
FlopCounterMode: a multiply-add counts as 2 FLOPs) and the median forward time over
``--repeats`` runs as ms and images/s, in the inference configuration of the torch detection
backend: eval mode with BatchNorm folded, channels-last on CPU, ``inference_mode``, batch 1.

Default sizes are a 1280x720 photo at full size and at the default detection scale (long side
1024, so 1024x576).  Every network pads its input inside ``forward`` (fcrn-dense to a multiple
of 32, the others to their stride), so 720 rows cost as 736.

    .venv/bin/python benchmarks/model_speed.py               # 1280x720 and 1024x576, 2 threads
    .venv/bin/python benchmarks/model_speed.py --archs fcrn-lite fcrn-dense/4 fcrn-dense/8
    .venv/bin/python benchmarks/model_speed.py --sizes 512 --repeats 20 --json speed.json

Latency on a shared machine depends on the load: check ``uptime`` and compare runs taken
under the same conditions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from synthloc.model import ModelConfig, build_model, fold_batchnorm

VARIANTS = {
    "fcrn": ModelConfig(arch="fcrn"),
    "fcrn/16": ModelConfig(arch="fcrn", stride=16),
    "fcrn-lite": ModelConfig(arch="fcrn-lite"),
    "fcrn-lite/16": ModelConfig(arch="fcrn-lite", stride=16),
    "fcrn-dense/4": ModelConfig(arch="fcrn-dense", stride=4, confidence="logit"),
    "fcrn-dense/8": ModelConfig(arch="fcrn-dense", stride=8, confidence="logit"),
}
DEFAULT_SIZES = ["1280x720", "1024x576"]


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` or ``"N"`` (square) -> ``(width, height)`` in pixels."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH or N, e.g. 1280x720")
    return values[0], values[1]


def measure(
    config: ModelConfig, width: int, height: int, repeats: int, channels_last: bool
) -> dict[str, float]:
    """Params (millions), GFLOPs, median/min forward time (ms) and images/s of one image."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = fold_batchnorm(build_model(config))
    model = model.to(memory_format=memory_format)  # type: ignore[call-overload]  # not in stubs
    params = sum(p.numel() for p in model.parameters())
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=memory_format)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(x)
        model(x)  # warm-up: allocator and kernel selection
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "params_m": params / 1e6,
        "gflops": counter.get_total_flops() / 1e9,
        "median_ms": 1000 * median,
        "min_ms": 1000 * min(times),
        "images_per_s": 1 / median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=parse_size, nargs="+", default=[parse_size(s) for s in DEFAULT_SIZES],
        help="input sizes, WxH or N for NxN (default: 1280x720 1024x576)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (median reported)")
    parser.add_argument("--archs", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-channels-last", action="store_true", help="NCHW model and input")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    channels_last = not args.no_channels_last
    torch.set_num_threads(args.threads)
    layout = "channels-last" if channels_last else "NCHW"
    print(
        f"batch 1, {args.threads} threads, {layout}, BatchNorm folded, "
        f"median of {args.repeats} repeats; torch {torch.__version__}"
    )
    print(
        f"{'variant':<14}{'input':>10}{'params(M)':>10}{'GFLOPs':>9}"
        f"{'median ms':>11}{'images/s':>10}{'min ms':>9}"
    )
    rows = []
    for width, height in args.sizes:
        for name in args.archs:
            r = measure(VARIANTS[name], width, height, args.repeats, channels_last)
            rows.append({"variant": name, "width": width, "height": height, **r})
            print(
                f"{name:<14}{f'{width}x{height}':>10}{r['params_m']:>10.2f}{r['gflops']:>9.2f}"
                f"{r['median_ms']:>11.1f}{r['images_per_s']:>10.2f}{r['min_ms']:>9.1f}"
            )
    if args.json is not None:
        record = {
            "threads": args.threads,
            "repeats": args.repeats,
            "channels_last": channels_last,
            "torch": torch.__version__,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
