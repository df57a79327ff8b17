"""Make the verifier's training data: rectified 32 x 128 crops of word candidates with labels
(text / not text) and corner-offset targets, in shards under --out.

Positives: synthetic words (rendered here with the engine) jittered in position, size and
angle, and the first stage's own detections that hit a word; negatives: random word-shaped
regions of text-free backgrounds and, above all, the first stage's false positives on the
synthetic images and on the backgrounds (--detector with a low --detector-threshold).
--real-words adds positives from ICDAR word crops (a folder with coords.txt).
The same settings give the same bytes; an interrupted run resumes (rerun the same command:
finished shards are kept). A background or word crop that cannot be read is named and skipped.
Settings come from the defaults, then --config FILE.yaml, then the flags, then --set.

examples:
  synthloc verifier-data --out data/verifier --config configs/verifier_data.yaml \\
      --detector fcrn-dense \\
      --synth-backgrounds ../shared/data/backgrounds --synth-corpus ../shared/data/text \\
      --negative-backgrounds ../shared/data/backgrounds
  synthloc verifier-data --out data/verifier_real \\
      --real-words ../shared/data/real/icdar2015_train_words \\
      --synth-images 0 --background-images 0
"""

from __future__ import annotations

import argparse
import sys

from synthloc.commands import add_set_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created; resumable)")
    parser.add_argument("--config", help="YAML file with (part of) the data config")
    parser.add_argument("--seed", type=int, help="seed of every random choice")
    parser.add_argument("--synth-images", type=int, help="synthetic scenes to render")
    parser.add_argument("--synth-backgrounds", metavar="DIR", help="photos to render text on")
    parser.add_argument("--synth-corpus", metavar="PATH", help="text corpus file or folder")
    parser.add_argument("--background-images", type=int, help="text-free images for negatives")
    parser.add_argument(
        "--negative-backgrounds", metavar="DIR", help="text-free photos (default: procedural)"
    )
    parser.add_argument(
        "--detector",
        metavar="MODEL",
        help="first-stage model for hard negatives: a file or a shipped name (fcrn-dense)",
    )
    parser.add_argument("--detector-threshold", type=float, help="its (low) threshold")
    parser.add_argument("--real-words", metavar="DIR", help="ICDAR word crops with coords.txt")
    add_set_option(parser)
    parser.add_argument("--threads", type=int, help="torch CPU threads for the first stage")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from synthloc.verify.data import VerifierDataConfig, generate
    from synthloc.verify.train import load_dataclass_config

    flags = {
        "seed": args.seed,
        "synth_images": args.synth_images,
        "synth_backgrounds": args.synth_backgrounds,
        "synth_corpus": args.synth_corpus,
        "background_images": args.background_images,
        "negative_backgrounds": args.negative_backgrounds,
        "detector": args.detector,
        "detector_threshold": args.detector_threshold,
        "real_words": args.real_words,
    }
    sets = [
        f"{key}={_quote(value) if isinstance(value, str) else value}"
        for key, value in flags.items()
        if value is not None
    ]
    try:
        config = load_dataclass_config(VerifierDataConfig, args.config, sets + list(args.overrides))
    except ValueError as error:
        print(f"synthloc verifier-data: bad configuration: {error}", file=sys.stderr)
        return 2
    try:
        counts = generate(config, args.out, num_threads=args.threads, progress=not args.no_progress)
    except (OSError, ValueError) as error:
        print(f"synthloc verifier-data: {error}", file=sys.stderr)
        return 1
    shown = ", ".join(f"{key} {value}" for key, value in counts.items() if value)
    print(f"synthloc verifier-data: {shown or 'no samples'}; data in {args.out}")
    return 0


def _quote(text: str) -> str:
    """A YAML double-quoted scalar (paths may hold ':' or '#')."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
