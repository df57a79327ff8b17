"""How much one training run's real-photo score moves from checkpoint to checkpoint.

Trains a run in segments (``synthloc train --stop-at-step``, then ``--resume``), keeps the EMA
weights at every ``--every`` steps as ``<out>/step<N>.pt`` and scores each on an ICDAR 2015
folder at one fixed setting (first stage alone), so the spread between neighbouring
checkpoints can be set against the differences an A/B of single checkpoints reports::

    python benchmarks/checkpoint_curve.py --out data/curve \
        --config data/ablate_dense/before-calibration/run/config.yaml \
        --every 50 --box-pad 0.11 --json training/ablate_engine/curve.json

The run's ``init`` (if any) is scored as step 0. ``--average`` also scores the mean of the
kept checkpoints' weights (step 0 left out; BatchNorm statistics averaged too);
``--average-from N`` averages only those from step N on, as stochastic weight averaging does.
A stopped curve resumes: finished segments and scores are kept in ``--out``. The folder scored
here is a measuring set; nothing is chosen on it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def _train(config: Path, out: Path, stop: int, threads: int, log: Path) -> None:
    resume = (out / "last.pt").is_file()
    command = [sys.executable, "-m", "synthloc", "train", "--out", str(out), "--no-progress"]
    command += ["--threads", str(threads), "--stop-at-step", str(stop)]
    command += ["--resume"] if resume else ["--config", str(config), "--overwrite"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    with log.open("a") as handle:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({done.returncode}): see {log}")


def average_weights(paths: list[Path]) -> nn.Module:
    """The mean of the models in ``paths``: every floating-point tensor of their state
    (weights and BatchNorm statistics) averaged, as ``synthloc train``'s ``swa_start`` does
    (:class:`synthloc.train.WeightAverage`); integer buffers are the last model's."""
    from synthloc.model import load_model_with_extra
    from synthloc.train import WeightAverage

    if not paths:
        raise ValueError("no model to average")
    first = load_model_with_extra(paths[0])[0]
    average = WeightAverage(first)
    average.add(first)
    for path in paths[1:]:
        average.add(load_model_with_extra(path)[0])
    return average.module


def averaged(points: list[tuple[int, Path]], start: int) -> list[Path]:
    """The checkpoints a weight average takes: those at step ``start`` or later, never the
    run's ``init`` (step 0)."""
    return [path for step, path in points if step >= max(start, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="training config (YAML)")
    parser.add_argument("--out", type=Path, required=True, help="run folder, checkpoints, scores")
    parser.add_argument("--every", type=int, default=50, help="steps between scored checkpoints")
    dev = ROOT.parent / "shared" / "data" / "real" / "icdar2015_dev"
    parser.add_argument("--icdar", type=Path, default=dev)
    parser.add_argument("--scale", type=float, default=0.75)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--box-pad", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--average", action="store_true", help="also score the weight mean")
    parser.add_argument(
        "--average-from",
        type=int,
        default=1,
        help="average only the checkpoints from this step on (stochastic weight averaging)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.every < 1:
        parser.error("--every must be >= 1")

    from accuracy import score_folder

    from synthloc.detect import Detector
    from synthloc.model import save_model
    from synthloc.train import model_from_checkpoint

    settings = yaml.safe_load(args.config.read_text())
    steps = int(settings["steps"])
    args.out.mkdir(parents=True, exist_ok=True)
    points: list[tuple[int, Path]] = []
    if settings.get("init"):
        points.append((0, ROOT / settings["init"]))
    rows = []
    for stop in [*range(args.every, steps, args.every), steps]:
        model_path = args.out / f"step{stop}.pt"
        if not model_path.is_file():
            _train(args.config, args.out, stop, args.threads, args.out / "train.log")
            save_model(model_path, model_from_checkpoint(args.out / "last.pt", "ema"))
        points.append((stop, model_path))
    labelled: list[tuple[str, Path]] = [(str(step), path) for step, path in points]
    if args.average:
        trained = averaged(points, args.average_from)
        if not trained:
            parser.error(f"no checkpoint at or after step {args.average_from} to average")
        label = "average" if args.average_from <= 1 else f"average{args.average_from}"
        average = args.out / f"{label}.pt"
        save_model(average, average_weights(trained))
        labelled.append((label, average))
    for step, model_path in labelled:
        score_path = args.out / f"score_step{step}.json"
        if not score_path.is_file():
            detector = Detector.load(
                model_path,
                scales=[args.scale],
                threshold=args.threshold,
                box_pad=args.box_pad,
                verify=False,
                num_threads=args.threads,
            )
            figures = {k: round(v, 4) for k, v in score_folder(detector, args.icdar).items()}
            score_path.write_text(json.dumps(figures, indent=1) + "\n")
        figures = json.loads(score_path.read_text())
        rows.append({"step": int(step) if step.isdigit() else step, **figures})
        print(
            f"step {step:>7}: P {figures['precision']:.3f} R {figures['recall']:.3f} "
            f"F {figures['hmean']:.3f}",
            flush=True,
        )
    if args.json is not None:
        setting = {"scale": args.scale, "threshold": args.threshold, "box_pad": args.box_pad}
        record = {"config": str(args.config), "setting": setting, "rows": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
