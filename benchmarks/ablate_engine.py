"""The engine ablation of issue #15: old engine, new engine, and each new part switched off.

Every arm renders its own training images with the same seed (``--images``, one process),
then fine-tunes the same initial detector (``--init``) for the same number of steps with the
same settings (``training/ab_dense/common.yaml`` plus the fcrn-dense options of
benchmarks/ab_dense.py, one torch thread), and scores the EMA weights on icdar2015_dev at one
fixed single-scale setting (``--scale``, ``--threshold``, ``--min-size``: the initial model's
setting, tuned on synthetic validation). Only the data differ between arms; the arm
``new-seed2`` renders the new engine's data with another seed, so its distance to ``new`` shows
the noise of one arm::

    python benchmarks/ablate_engine.py run old new no-camera     # data/ablate/<arm>/
    python benchmarks/ablate_engine.py report --json training/ablate_engine/results.json

``run`` skips arms that already hold a result, so a stopped run resumes arm by arm. ``report``
at another setting (``--scale 0.75 --threshold 0.7``) scores every finished arm at it too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from ab_dense import DENSE  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RUNS = ROOT / "data" / "ablate"
COMMON = ROOT / "training" / "ab_dense" / "common.yaml"
INIT = ROOT / "training" / "ab_dense" / "dense-imagenet" / "model_step1490_tuned.pt"
SPRITES = SHARED / "real" / "icdar2015_train_words"
# Engine flags per arm (``synthloc synth`` options); every arm but "old" starts from the new
# engine's defaults.
ARMS: dict[str, list[str]] = {
    "old": ["--paper"],
    "new": [],
    "new-seed2": [],
    "no-learned-colours": ["--set", "learned_colours=false"],
    "no-signs": ["--set", "p_sign=0"],
    "no-sky-filter": ["--set", "sky_filter=false"],
    "no-lexicon": ["--set", "p_lexicon=0"],
    "no-signage-fonts": ["--set", "signage_fonts=false"],
    "no-camera": ["--set", "camera=false"],
    "no-negatives": ["--set", "p_no_text=0", "--set", "max_illegible=0"],
    "keep-text-backgrounds": ["--set", "skip_text_backgrounds=false"],
    "plus-sprites": ["--set", "p_sprite=0.2", "--set", f"sprite_dir={SPRITES}"],
    # Session 20: real word crops at no more than their own pixels (the session-19 cap, now the
    # default), Poisson-cloned so no plate edge outlines them; then with vertical text too.
    "seamless-sprites": [
        *("--set", "p_sprite=0.2", "--set", f"sprite_dir={SPRITES}"),
        *("--set", "sprite_seamless=true"),
    ],
    "seamless-sprites-vertical": [
        *("--set", "p_sprite=0.2", "--set", f"sprite_dir={SPRITES}"),
        *("--set", "sprite_seamless=true", "--set", "p_vertical=0.05"),
    ],
    # Session 16's calibration (made-up sign panels where a photo has no surface, font sizes
    # skewed towards ICDAR's big words, 30/60/10% word/line/paragraph, fewer number tokens)
    # against the defaults before it, which this flag set restores except the number share.
    "calibrated": [],
    "before-calibration": [
        *("--set", "fallback_signs=false", "--set", "font_size_skew=1"),
        *("--set", "min_font_px=14", "--set", "p_word=0.4", "--set", "p_line=0.5"),
    ],
}
DATA_SEED = {"new-seed2": 3}  # every other arm renders with seed 2


def _run(command: list[str], log: Path, threads: int = 1) -> None:
    print(" ".join(str(c) for c in command), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    with log.open("a") as handle:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): see {log}")


def run_arm(arm: str, args: argparse.Namespace) -> dict[str, object]:
    out = args.runs / arm
    result_path = out / "result.json"
    if result_path.is_file():
        return dict(json.loads(result_path.read_text()))
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    shards = out / "shards"
    synthloc = [sys.executable, "-m", "synthloc"]
    start = time.time()
    _run(
        [
            *synthloc,
            "synth",
            "--backgrounds",
            str(SHARED / "backgrounds"),
            "--corpus",
            str(SHARED / "text"),
            "--count",
            str(args.images),
            "--out",
            str(shards),
            "--seed",
            str(DATA_SEED.get(arm, 2)),
            "--no-progress",
            *ARMS[arm],
        ],
        log,
    )
    synth_s = time.time() - start
    run = out / "run"
    overrides = [
        *DENSE,
        f"init={args.init}",
        f"data.sources.0.path={shards}",
        f"steps={args.steps}",
        f"optim.lr={args.lr}",
        "schedule.warmup_steps=20",
        "checkpoint_every=50",
    ]
    command = [*synthloc, "train", "--config", str(COMMON), "--out", str(run)]
    command += ["--threads", "1", "--no-progress", "--overwrite"]
    for item in overrides:
        command += ["--set", item]
    start = time.time()
    _run(command, log)
    train_s = time.time() - start

    start = time.time()
    figures = score(run / "model.pt", out, args)
    result: dict[str, object] = {
        "arm": arm,
        "engine_flags": [str(f).replace(str(SHARED), "../shared/data") for f in ARMS[arm]],
        "data_seed": DATA_SEED.get(arm, 2),
        "images": args.images,
        "steps": args.steps,
        "lr": args.lr,
        "setting": _setting(args),
        "synth_s": round(synth_s, 1),
        "train_s": round(train_s, 1),
        "score_s": round(time.time() - start, 1),
        "dev": figures,
    }
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)
    return result


def _setting(args: argparse.Namespace) -> dict[str, object]:
    setting: dict[str, object] = {
        "scale": args.scale,
        "threshold": args.threshold,
        "min_size": args.min_size,
    }
    if args.box_pad is not None:
        setting["box_pad"] = args.box_pad
    if args.verifier is not None:  # the repo-relative name, not this machine's path
        setting["verifier"] = args.verifier.name
        setting["verify_threshold"] = args.verify_threshold
    return setting


def _tag(args: argparse.Namespace) -> str:
    tag = f"{args.scale:g}_{args.threshold:g}_{args.min_size:g}"
    if args.box_pad is not None:
        tag += f"_pad{args.box_pad:g}"
    if args.verifier is not None:
        tag += f"_verified{args.verify_threshold:g}"
    return tag


def score(model: Path, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """Dev P/R/F of ``model`` at the setting of ``args`` (kept in ``folder/score_<setting>``)."""
    path = folder / f"score_{_tag(args)}.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    from accuracy import score_folder  # late: the steps of run_arm need no torch here

    from synthloc.detect import Detector

    detector = Detector.load(
        model,
        scales=[args.scale],
        threshold=args.threshold,
        min_size=args.min_size,
        box_pad=args.box_pad,
        backend=args.backend,
        num_threads=args.threads,
        verifier=args.verifier,
        verify=args.verifier is not None,
        verify_threshold=args.verify_threshold,
    )
    figures = {k: round(v, 4) for k, v in score_folder(detector, args.icdar).items()}
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n")
    return figures


def report(args: argparse.Namespace) -> None:
    """One row per finished arm (and the initial model) at the setting of ``args``; arms
    trained with another scoring setting are scored at this one (and kept)."""
    runs = args.runs
    rows: list[dict[str, Any]] = [{"arm": "init", "steps": 0, "dev": score(args.init, runs, args)}]
    for arm in ARMS:
        if (runs / arm / "result.json").is_file():
            row = json.loads((runs / arm / "result.json").read_text())
            setting = _setting(args)
            if row["setting"] != setting:  # scored at another setting when it ran
                row["dev"] = score(runs / arm / "run" / "model.pt", runs / arm, args)
                row["setting"] = setting
            rows.append(row)
    print(f"setting: {_setting(args)}")
    print("| arm | engine flags | steps | dev P | dev R | dev F | R <16 / 16-32 / >32 px |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        dev = row["dev"]
        flags = " ".join(str(f) for f in row.get("engine_flags", [])) or "-"
        print(
            f"| {row['arm']} | `{flags}` | {row['steps']} | {dev['precision']:.3f} | "
            f"{dev['recall']:.3f} | **{dev['hmean']:.3f}** | {dev['recall_lt16']:.3f} / "
            f"{dev['recall_16to32']:.3f} / {dev['recall_gt32']:.3f} |"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("arms", nargs="*", default=[], help=f"arms to run: {', '.join(ARMS)}")
    parser.add_argument("--images", type=int, default=1200, help="training images per arm")
    parser.add_argument("--steps", type=int, default=150, help="fine-tuning steps per arm")
    parser.add_argument("--lr", type=float, default=0.0005)
    parser.add_argument("--init", type=Path, default=INIT)
    parser.add_argument(
        "--runs", type=Path, default=RUNS, help="one folder per arm here (one per --init)"
    )
    parser.add_argument("--icdar", type=Path, default=SHARED / "real" / "icdar2015_dev")
    parser.add_argument("--scale", type=float, default=1.5)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--min-size", type=float, default=0.0)
    parser.add_argument(
        "--box-pad", type=float, default=None, help="None = the model file's (0 for a run's)"
    )
    parser.add_argument(
        "--verifier", type=Path, default=None, help="score both stages with this verifier"
    )
    parser.add_argument("--verify-threshold", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for scoring")
    parser.add_argument(
        "--backend", choices=("torch", "onnxruntime"), default="onnxruntime", help="for scoring"
    )
    parser.add_argument("--json", type=Path, default=None, help="report: also write rows here")
    args = parser.parse_args()
    unknown = [arm for arm in args.arms if arm not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; arms: {', '.join(ARMS)}")
    if args.command == "run":
        for arm in args.arms or list(ARMS):
            run_arm(arm, args)
    else:
        report(args)


if __name__ == "__main__":
    main()
