"""Train the second-stage verifier on data made by `synthloc verifier-data`.

The run folder has the detector's habits: config.yaml, last.pt (checkpoint; --resume), best.pt
and best_model.pt (best validation F of text/non-text on the held-out samples), model.pt
(final EMA weights), metrics.jsonl / metrics.csv (also the corner error before and after
refinement). A folder holding a run is refused without --resume or --overwrite. SIGTERM or
Ctrl-C ends the run after a checkpoint (exit 143 / 130). Settings come from the defaults,
then --config FILE.yaml (e.g. configs/verifier.yaml), then the flags, then --set.

examples:
  synthloc train-verifier --config configs/verifier.yaml --data data/verifier --out runs/verifier
  synthloc train-verifier --out runs/verifier --resume --steps 40000
  synthloc train-verifier --data data/verifier --data data/verifier_real --out runs/verifier_real
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from synthloc.commands import add_set_option

_SIGNAL_EXIT = {name: 128 + int(getattr(signal, name)) for name in ("SIGTERM", "SIGINT")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with (part of) the verifier training config")
    parser.add_argument("--out", required=True, help="run directory (created if missing)")
    parser.add_argument(
        "--data", action="append", metavar="DIR", help="verifier data folder (repeatable)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace the run held in --out")
    parser.add_argument("--steps", type=int, help="total optimiser steps")
    parser.add_argument("--stop-at-step", type=int, metavar="N", help="end at step N (resumable)")
    parser.add_argument("--batch-size", type=int, help="crops per step")
    parser.add_argument("--lr", type=float, help="base learning rate")
    parser.add_argument("--seed", type=int, help="run seed")
    parser.add_argument("--device", help="auto (default), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, help="torch CPU threads for this process")
    add_set_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from synthloc.train import NonFiniteLossError
    from synthloc.verify.train import VerifierTrainConfig, fit_verifier, load_dataclass_config

    if args.resume and args.overwrite:
        print(
            "synthloc train-verifier: --resume and --overwrite exclude each other", file=sys.stderr
        )
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    flags = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "optim.lr": args.lr,
        "seed": args.seed,
        "device": args.device,
    }
    sets = [f"{key}={value}" for key, value in flags.items() if value is not None]
    if args.data:
        sets.append("data=[" + ", ".join(_quote(path) for path in args.data) + "]")
    base = args.config
    saved = Path(args.out) / "config.yaml"
    if args.resume and base is None and saved.is_file():
        base = str(saved)
    try:
        config = load_dataclass_config(VerifierTrainConfig, base, sets + list(args.overrides))
    except ValueError as error:
        print(f"synthloc train-verifier: bad configuration: {error}", file=sys.stderr)
        return 2
    try:
        result = fit_verifier(
            config,
            args.out,
            resume=args.resume,
            stop_at_step=args.stop_at_step,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except (NonFiniteLossError, OSError, ValueError) as error:
        print(f"synthloc train-verifier: {error}", file=sys.stderr)
        return 1
    best = f", best validation F {result.best_hmean:.4f}" if result.best_hmean is not None else ""
    print(f"synthloc train-verifier: step {result.step}{best}; run in {result.out_dir}")
    if result.stopped_by in _SIGNAL_EXIT:
        return _SIGNAL_EXIT[result.stopped_by]
    if result.model_path is not None:
        print(f"synthloc train-verifier: final model {result.model_path}")
    return 0


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
