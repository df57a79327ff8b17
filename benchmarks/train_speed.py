"""Training throughput of fcrn-lite and fcrn-dense: images/s at 384x384, 2 torch threads.

One row per arm (``--arms``, default all of :data:`ARMS`):

* ``fcrn-lite``: the default training config with ``model.arch=fcrn-lite`` (stride 32, the
  paper's loss, SGD), batch 16: the figure of the README's results table;
* ``fcrn-dense/4``, ``fcrn-dense/8``: the fcrn-dense arm of the issue #14 A/B
  (``ab_dense.DENSE``: logit confidence, BCE + OHEM + IoU + dice loss, AdamW) at output stride
  4 and 8, batch 8 as in ``training/ab_dense/common.yaml``.  Dense targets are encoded in the
  loader workers, as in training.

``--batch-size`` sets one batch size for every arm (e.g. 8 to compare them at the A/B's batch).

Each arm is measured for two data sources, with the same loop as ``synthloc train``
(``Trainer.train_step``; DataLoader workers doing decode/synthesis, augmentation and target
encoding; the optimiser step on the model):

* shards written by ``synthloc synth`` (rendered once here into a temporary folder unless
  --shards is given);
* synthesis on the fly in the workers (--backgrounds, default ../shared/data/backgrounds when
  present, else the engine's procedural backgrounds).

Also printed, to show where the time goes: the model step alone on a fixed batch (compute
bound) and each source's data pipeline alone (data bound).  Medians over timed steps
(and over --repeats fresh runs).

    .venv/bin/python benchmarks/train_speed.py [--steps 20] [--workers 2] [--shards DIR]
    .venv/bin/python benchmarks/train_speed.py --arms fcrn-lite fcrn-dense/4 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ab_dense import DENSE  # benchmarks/ab_dense.py: the A/B's fcrn-dense arm

SHARED_BACKGROUNDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "backgrounds"
SHARED_TEXT = SHARED_BACKGROUNDS.parent / "text"


@dataclass(frozen=True)
class Arm:
    """A training configuration to time: ``--set`` overrides and its usual batch size."""

    overrides: tuple[str, ...]
    batch_size: int


ARMS = {
    "fcrn-lite": Arm(("model.arch=fcrn-lite",), 16),
    "fcrn-dense/4": Arm((*DENSE, "model.stride=4"), 8),
    "fcrn-dense/8": Arm((*DENSE, "model.stride=8"), 8),
}


def _config(arm: Arm, batch_size: int, source: str, path: str, args: argparse.Namespace) -> Any:
    from synthloc.train_config import load_config

    overrides = [
        f"batch_size={batch_size}",
        f"data.workers={args.workers}",
        f"data.augment.size={args.size}",
        f"data.sources=[{{kind: {source}, path: '{path}'}}]",
        *arm.overrides,
        "device=cpu",
        f"channels_last={'false' if args.no_channels_last else 'true'}",
    ]
    if SHARED_TEXT.is_dir():
        overrides.append(f"data.synth.corpus='{SHARED_TEXT}'")
    return load_config(None, overrides)


def _median_rate(times: list[float], batch: int) -> float:
    return batch / statistics.median(times)


def _time_training(config: Any, args: argparse.Namespace) -> tuple[float, float]:
    """(training images/s, data-only images/s), timing ``Trainer.train_step`` of synthloc.train."""
    from synthloc.train import DistContext, Trainer, build_loader, build_stream

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir), DistContext())
        trainer.model.train()
        total = args.warmup + args.steps
        loader = build_loader(
            config, build_stream(config), DistContext(), 0, pin=False, num_batches=total
        )
        batches = iter(loader)
        step_times = []
        for step in range(args.warmup + args.steps):
            start = time.perf_counter()
            trainer.train_step(batches)
            trainer.step += 1
            if step >= args.warmup:
                step_times.append(time.perf_counter() - start)
        for _ in batches:  # read to the end: the workers then shut down cleanly
            pass
    data_loader = build_loader(
        config, build_stream(config), DistContext(), 1000, pin=False, num_batches=args.steps + 1
    )
    data_iter = iter(data_loader)
    next(data_iter)  # worker start-up
    data_times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        next(data_iter)
        data_times.append(time.perf_counter() - start)
    for _ in data_iter:
        pass
    batch = config.batch_size
    return _median_rate(step_times, batch), _median_rate(data_times, batch)


def _repeated(config: Any, args: argparse.Namespace) -> tuple[float, float]:
    """Median over ``--repeats`` fresh runs of ``_time_training`` (each a median over steps)."""
    runs = [_time_training(config, args) for _ in range(args.repeats)]
    if args.repeats > 1:
        listed = ", ".join(f"{train:.1f}" for train, _ in runs)
        print(f"  (training images/s of each run: {listed})")
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _time_compute(config: Any, args: argparse.Namespace) -> float:
    """Model forward + backward + optimiser step on one fixed random batch (images/s)."""
    from synthloc.model import FCRNLoss, build_model
    from synthloc.train import build_optimizer

    torch.manual_seed(0)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = build_model(config.model).train()
    model = model.to(memory_format=memory_format)  # type: ignore[call-overload]  # not in stubs
    optimizer = build_optimizer(model, config.optim)
    loss_fn = FCRNLoss(config.loss)
    batch = config.batch_size
    images = torch.rand(batch, 3, args.size, args.size)
    images = images.contiguous(memory_format=memory_format)
    # The output grid of this input (fcrn-dense pads to a multiple of 32 first).
    with torch.no_grad():
        grid_hw = model(images[:1]).shape[2:]
    target = torch.zeros(batch, 7, *grid_hw)
    positive = torch.zeros(batch, *grid_hw, dtype=torch.bool)
    positive[:, 2, 3] = True
    ignore = torch.zeros_like(positive)
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total = loss_fn(model(images), target, positive, ignore, step)["total"]
        assert isinstance(total, torch.Tensor)
        total.backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return _median_rate(times, batch)


def _make_shards(folder: Path, count: int, backgrounds: Path | None) -> None:
    from synthloc.synth import SynthConfig
    from synthloc.synth.runner import synthesize

    config = SynthConfig(corpus=str(SHARED_TEXT)) if SHARED_TEXT.is_dir() else SynthConfig()
    synthesize(
        folder, count, seed=12345, backgrounds=backgrounds, workers=2, config=config,
        progress=False,
    )  # fmt: skip


def _measure_arm(
    name: str, shards: Path, backgrounds: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    """Model step, shards and on-the-fly figures of one arm (printed as they come)."""
    arm = ARMS[name]
    batch = args.batch_size or arm.batch_size
    print(
        f"{name}, {args.size}x{args.size}, batch {batch}, {args.threads} torch "
        f"threads, {args.workers} loader workers, median of {args.steps} steps"
    )
    figures: dict[str, Any] = {"batch_size": batch}
    base = _config(arm, batch, "synth", str(backgrounds or ""), args)
    compute_rate = _time_compute(base, args)
    figures["model_step"] = {"images_per_s": compute_rate}
    print(f"model step only (fixed batch):  {compute_rate:6.1f} images/s")
    train_rate, data_rate = _repeated(_config(arm, batch, "shards", str(shards), args), args)
    figures["shards"] = {"images_per_s": train_rate, "data_images_per_s": data_rate}
    print(f"from shards:          training {train_rate:6.1f} images/s", end="")
    print(f"   data alone {data_rate:6.1f}")
    if not args.skip_synth:
        train_rate, data_rate = _repeated(base, args)
        figures["synth"] = {"images_per_s": train_rate, "data_images_per_s": data_rate}
        print(f"on-the-fly synthesis: training {train_rate:6.1f} images/s", end="")
        print(f"   data alone {data_rate:6.1f}")
    return figures


def _summary(arms: dict[str, dict[str, Any]]) -> None:
    """One table of every arm's training images/s (data-alone rate in brackets)."""

    def cell(figures: dict[str, Any], source: str) -> str:
        if source not in figures:
            return f"{'-':>20}"
        row = figures[source]
        return f"{row['images_per_s']:>9.1f} ({row['data_images_per_s']:>7.1f})"

    print(f"\n{'arm':<14}{'batch':>6}{'model step':>12}{'shards (data)':>20}{'synth (data)':>20}")
    for name, figures in arms.items():
        print(
            f"{name:<14}{figures['batch_size']:>6}{figures['model_step']['images_per_s']:>12.1f}"
            f"{cell(figures, 'shards')}{cell(figures, 'synth')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="runs per source (median)")
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="one batch size for every arm (default: fcrn-lite 16, fcrn-dense 8)",
    )  # fmt: skip
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--shards", type=Path, help="existing shard folder (else rendered here)")
    parser.add_argument("--shard-count", type=int, default=96)
    parser.add_argument("--backgrounds", type=Path, help="backgrounds for on-the-fly synthesis")
    parser.add_argument("--skip-synth", action="store_true", help="only measure shards")
    parser.add_argument("--no-channels-last", action="store_true", help="NCHW model and batches")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    for option in ("steps", "repeats", "batch_size"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    torch.set_num_threads(args.threads)
    backgrounds = args.backgrounds or (SHARED_BACKGROUNDS if SHARED_BACKGROUNDS.is_dir() else None)

    arms: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards
        if shards is None:
            shards = Path(tmp) / "shards"
            start = time.perf_counter()
            _make_shards(shards, args.shard_count, backgrounds)
            elapsed = time.perf_counter() - start
            print(f"(rendered {args.shard_count} shard samples in {elapsed:.0f} s, 2 processes)")
        for name in args.arms:
            arms[name] = _measure_arm(name, shards, backgrounds, args)
    _summary(arms)
    if args.json is not None:
        record: dict[str, Any] = {
            "size": args.size,
            "threads": args.threads,
            "workers": args.workers,
            "steps": args.steps,
            "repeats": args.repeats,
            "arms": arms,
        }
        # The fcrn-lite figures also at the top level, where report.py and older results read
        # them.
        for key in ("model_step", "shards", "synth"):
            if key in arms.get("fcrn-lite", {}):
                record[key] = arms["fcrn-lite"][key]
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
