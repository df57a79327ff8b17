"""Train an FCRN text detector (resumable; runs under torchrun for several processes).

Data comes from any mix of: synthesis on the fly (--synth-backgrounds, or the procedural
default), shards written by `synthloc synth` (--shards), the SynthText release (gt.mat folder)
or results h5, and ICDAR 2013/2015 folders (--icdar). Settings come from the defaults, then
--config FILE.yaml, then the flags below, then --set key.path=value overrides (YAML values,
e.g. --set optim.lr=0.01 --set data.augment.size=512 --set model.width=0.75).

The run directory receives config.yaml (resolved), last.pt (latest checkpoint), best.pt and
best_model.pt (best validation F), model.pt (final weights), metrics.jsonl and metrics.csv.
A new run refuses an --out folder that already holds one: continue it with --resume, choose
another folder, or replace it with --overwrite. Every input (data sources, --val-icdar
folders, the init model file) is checked before the run folder is made. If a checkpoint
cannot be written (disk full, no permission) the run stops with exit status 1 and the
previous checkpoint intact. SIGTERM or Ctrl-C ends a run after the current step and a
checkpoint (exit status 143 or 130; a second signal acts at once); continue it with --resume.

examples:
  synthloc train --config configs/fcrn_lite_synth.yaml --out runs/lite
  synthloc train --out runs/lite --resume --steps 200000
  synthloc train --shards data/shards --icdar data/ic15_train --out runs/mix --set optim.name=adamw
  torchrun --nproc_per_node 2 -m synthloc train --config configs/fcrn_lite_synth.yaml --out runs/ddp
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from synthloc.commands import add_set_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with (part of) the training config")
    parser.add_argument("--out", required=True, help="run directory (created if missing)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last.pt"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an --out folder that holds one, deleting its checkpoints, "
        "model files, config and metrics (without it such a folder is refused)",
    )
    add_set_option(parser)
    parser.add_argument("--steps", type=int, help="total optimiser steps")
    parser.add_argument(
        "--stop-at-step",
        type=int,
        metavar="N",
        help="end this session at step N after a checkpoint (continue later with --resume); "
        "the schedule still runs to --steps",
    )
    parser.add_argument("--batch-size", type=int, help="images per step and process")
    parser.add_argument("--lr", type=float, help="base learning rate")
    parser.add_argument("--seed", type=int, help="run seed (data stream, init, augmentation)")
    parser.add_argument("--workers", type=int, help="data-loader worker processes")
    parser.add_argument(
        "--synth-backgrounds",
        metavar="DIR",
        help="train on images synthesised on the fly from these backgrounds "
        "(a photo folder or a SynthText dset.h5)",
    )
    parser.add_argument(
        "--synth-depth", metavar="DIR", help="depth maps paired with --synth-backgrounds photos"
    )
    parser.add_argument(
        "--synth-seg", metavar="DIR", help="label maps paired with --synth-backgrounds photos"
    )
    parser.add_argument("--shards", action="append", metavar="DIR", help="shard folder")
    parser.add_argument("--synthtext", action="append", metavar="DIR", help="SynthText release")
    parser.add_argument("--icdar", action="append", metavar="DIR", help="ICDAR training folder")
    parser.add_argument(
        "--val-icdar", action="append", metavar="DIR", help="ICDAR folder scored at validation"
    )
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads for this process (default: torch's)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """Turn the convenience flags into --set overrides (applied before explicit --set)."""
    sets: list[str] = []
    simple = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "optim.lr": args.lr,
        "seed": args.seed,
        "data.workers": args.workers,
        "device": args.device,
    }
    sets += [f"{key}={value}" for key, value in simple.items() if value is not None]
    sources: list[str] = []
    if args.synth_backgrounds:
        maps = "".join(
            f", {kind}: {_quote(folder)}"
            for kind, folder in (("depth", args.synth_depth), ("seg", args.synth_seg))
            if folder
        )
        sources.append(f"{{kind: synth, path: {_quote(args.synth_backgrounds)}{maps}}}")
    elif args.synth_depth or args.synth_seg:
        raise ValueError("--synth-depth and --synth-seg pair maps with --synth-backgrounds photos")
    for kind, paths in (
        ("shards", args.shards),
        ("synthtext", args.synthtext),
        ("icdar", args.icdar),
    ):
        for path in paths or []:
            if kind == "synthtext" and path.lower().endswith((".h5", ".hdf5")):
                kind = "synthtext-h5"
            sources.append(f"{{kind: {kind}, path: {_quote(path)}}}")
    if sources:
        sets.append(f"data.sources=[{', '.join(sources)}]")
    if args.val_icdar:
        sets.append(f"val.icdar=[{', '.join(_quote(p) for p in args.val_icdar)}]")
    return sets


def _quote(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# A run stopped by a signal (after its checkpoint) exits as a killed process would.
_SIGNAL_EXIT = {name: 128 + int(getattr(signal, name)) for name in ("SIGTERM", "SIGINT")}


def run(args: argparse.Namespace) -> int:
    import torch

    from synthloc.train import NonFiniteLossError, fit
    from synthloc.train_config import load_config

    if args.resume and args.overwrite:
        print("synthloc train: --resume and --overwrite exclude each other", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    base = args.config
    saved = Path(args.out) / "config.yaml"
    if args.resume and base is None and saved.is_file():
        base = str(saved)  # resume the run as it was configured, plus any new overrides
    try:
        config = load_config(base, _flag_overrides(args) + list(args.overrides))
        if config.steps < 1:
            raise ValueError(f"steps must be at least 1, got {config.steps}")
    except ValueError as error:
        print(f"synthloc train: bad configuration: {error}", file=sys.stderr)
        return 2
    try:
        result = fit(
            config,
            args.out,
            resume=args.resume,
            stop_at_step=args.stop_at_step,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except (NonFiniteLossError, OSError, ValueError) as error:
        # OSError: a missing input, a folder holding a run, a checkpoint that cannot be written.
        print(f"synthloc train: {error}", file=sys.stderr)
        return 1
    summary = f"step {result.step}"
    if result.best_hmean is not None:
        summary += f", best validation F {result.best_hmean:.4f}"
    if result.nonfinite_steps:
        summary += f", {result.nonfinite_steps} non-finite steps skipped"
    if result.data_failures:
        summary += f", {result.data_failures} unreadable samples replaced"
    print(f"synthloc train: {summary}; run in {result.out_dir}")
    if result.step < config.steps:
        reason = f" by {result.stopped_by}" if result.stopped_by else ""
        print(
            f"synthloc train: stopped{reason} before step {config.steps}, after a checkpoint; "
            "continue with --resume"
        )
    if result.stopped_by in _SIGNAL_EXIT:
        return _SIGNAL_EXIT[result.stopped_by]
    if result.model_path is not None:
        print(f"synthloc train: final model {result.model_path}")
    return 0
