"""Training throughput of fcrn-lite: images/s at 384x384, batch 16, 2 torch threads.

Measured for two data sources, each with the same loop as ``synthloc train`` (DataLoader
workers doing decode/synthesis, augmentation and target encoding; SGD step on the model):

* shards written by ``synthloc synth`` (rendered once here into a temporary folder unless
  --shards is given);
* synthesis on the fly in the workers (--backgrounds, default ../shared/data/backgrounds when
  present, else the engine's procedural backgrounds).

Also printed, to show where the time goes: the model step alone on a fixed batch (compute
bound) and each source's data pipeline alone (data bound).  Medians over timed steps
(and over --repeats fresh runs).

    .venv/bin/python benchmarks/train_speed.py [--steps 20] [--workers 2] [--shards DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

SHARED_BACKGROUNDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "backgrounds"
SHARED_TEXT = SHARED_BACKGROUNDS.parent / "text"


def _config(source: str, path: str, args: argparse.Namespace) -> Any:
    from synthloc.train_config import load_config

    overrides = [
        f"batch_size={args.batch_size}",
        f"data.workers={args.workers}",
        f"data.augment.size={args.size}",
        f"data.sources=[{{kind: {source}, path: '{path}'}}]",
        "model.arch=fcrn-lite",
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
    return _median_rate(step_times, args.batch_size), _median_rate(data_times, args.batch_size)


def _repeated(config: Any, args: argparse.Namespace) -> tuple[float, float]:
    """Median over ``--repeats`` fresh runs of ``_time_training`` (each a median over steps)."""
    runs = [_time_training(config, args) for _ in range(args.repeats)]
    if args.repeats > 1:
        listed = ", ".join(f"{train:.1f}" for train, _ in runs)
        print(f"  (training images/s of each run: {listed})")
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _time_compute(config: Any, args: argparse.Namespace) -> float:
    """Model forward + backward + SGD step on one fixed random batch (images/s)."""
    from synthloc.model import FCRNLoss, build_model
    from synthloc.train import build_optimizer

    torch.manual_seed(0)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = build_model(config.model).train().to(memory_format=memory_format)
    optimizer = build_optimizer(model, config.optim)
    loss_fn = FCRNLoss(config.loss)
    images = torch.rand(args.batch_size, 3, args.size, args.size)
    images = images.contiguous(memory_format=memory_format)
    cells = args.size // config.model.stride
    target = torch.zeros(args.batch_size, 7, cells, cells)
    positive = torch.zeros(args.batch_size, cells, cells, dtype=torch.bool)
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
    return _median_rate(times, args.batch_size)


def _make_shards(folder: Path, count: int, backgrounds: Path | None) -> None:
    from synthloc.synth import SynthConfig
    from synthloc.synth.runner import synthesize

    config = SynthConfig(corpus=str(SHARED_TEXT)) if SHARED_TEXT.is_dir() else SynthConfig()
    synthesize(
        folder, count, seed=12345, backgrounds=backgrounds, workers=2, config=config,
        progress=False,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="runs per source (median)")
    parser.add_argument("--batch-size", type=int, default=16)
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
    figures: dict[str, dict[str, float]] = {}
    torch.set_num_threads(args.threads)
    backgrounds = args.backgrounds or (SHARED_BACKGROUNDS if SHARED_BACKGROUNDS.is_dir() else None)

    print(
        f"fcrn-lite, {args.size}x{args.size}, batch {args.batch_size}, {args.threads} torch "
        f"threads, {args.workers} loader workers, median of {args.steps} steps"
    )
    base = _config("synth", str(backgrounds or ""), args)
    compute_rate = _time_compute(base, args)
    figures["model_step"] = {"images_per_s": compute_rate}
    print(f"model step only (fixed batch):  {compute_rate:6.1f} images/s")
    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards
        if shards is None:
            shards = Path(tmp) / "shards"
            start = time.perf_counter()
            _make_shards(shards, args.shard_count, backgrounds)
            elapsed = time.perf_counter() - start
            print(f"(rendered {args.shard_count} shard samples in {elapsed:.0f} s, 2 processes)")
        train_rate, data_rate = _repeated(_config("shards", str(shards), args), args)
        figures["shards"] = {"images_per_s": train_rate, "data_images_per_s": data_rate}
        print(f"from shards:          training {train_rate:6.1f} images/s", end="")
        print(f"   data alone {data_rate:6.1f}")
    if not args.skip_synth:
        train_rate, data_rate = _repeated(base, args)
        figures["synth"] = {"images_per_s": train_rate, "data_images_per_s": data_rate}
        print(f"on-the-fly synthesis: training {train_rate:6.1f} images/s", end="")
        print(f"   data alone {data_rate:6.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
