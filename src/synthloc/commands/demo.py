"""Synthesize a few images on the embedded default (no data needed), detect words with the
shipped model, score them against the generated ground truth (ICDAR 2015 protocol) and write a
visual report: an HTML page and a PNG contact sheet (ground truth green, detections red)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The engine needs room for a word (64, as `synthloc synth`); a demo image larger than 2048
# only makes the report slow.
MIN_SIZE = 64
MAX_SIZE = 2048


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="report folder")
    parser.add_argument("--count", type=int, default=8, help="images to synthesize (default 8)")
    parser.add_argument("--seed", type=int, default=2016, help="synthesis seed (default 2016)")
    parser.add_argument(
        "--size",
        type=int,
        default=512,
        help=f"image long side, {MIN_SIZE} to {MAX_SIZE} (default 512)",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="model file or shipped model name, e.g. fcrn-lite-paper (default: the default "
        "shipped model)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from synthloc.commands.checks import out_folder_problem
    from synthloc.demo import run_demo
    from synthloc.detect import Detector

    if args.count < 1:
        print("synthloc demo: --count must be at least 1", file=sys.stderr)
        return 2
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        print(
            f"synthloc demo: error: --size {args.size} is out of range ({MIN_SIZE} to {MAX_SIZE})",
            file=sys.stderr,
        )
        return 2
    try:  # before synthesizing anything: a bad model is one line, not a traceback later
        detector = Detector.load(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"synthloc demo: error: {exc}", file=sys.stderr)
        return 2
    problem = out_folder_problem(args.out)
    if problem is not None:
        print(f"synthloc demo: error: --out {problem}", file=sys.stderr)
        return 2
    try:
        result = run_demo(
            args.out,
            count=args.count,
            seed=args.seed,
            size=args.size,
            model=args.model,
            progress=not args.no_progress,
            detector=detector,
        )
    except OSError as exc:
        print(f"synthloc demo: error: cannot write the report ({exc})", file=sys.stderr)
        return 1
    print(
        f"demo: {result.images} images, precision {result.precision:.3f}, "
        f"recall {result.recall:.3f}, F {result.hmean:.3f} in {result.seconds:.1f} s"
    )
    print(f"report: {result.report_html.resolve()}")
    print(f"contact sheet: {result.contact_sheet.resolve()}")
    return 0
