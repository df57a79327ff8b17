"""Synthesize a few images on the embedded default (no data needed), detect words with the
shipped model, score them against the generated ground truth (ICDAR 2015 protocol) and write a
visual report: an HTML page and a PNG contact sheet (ground truth green, detections red)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="report folder")
    parser.add_argument("--count", type=int, default=8, help="images to synthesize (default 8)")
    parser.add_argument("--seed", type=int, default=2016, help="synthesis seed (default 2016)")
    parser.add_argument("--size", type=int, default=512, help="image long side (default 512)")
    parser.add_argument(
        "--model", type=Path, default=None, help="model file (default: the shipped model)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from synthloc.demo import run_demo

    if args.count < 1:
        print("synthloc demo: --count must be at least 1", file=sys.stderr)
        return 2
    result = run_demo(
        args.out,
        count=args.count,
        seed=args.seed,
        size=args.size,
        model=args.model,
        progress=not args.no_progress,
    )
    print(
        f"demo: {result.images} images, precision {result.precision:.3f}, "
        f"recall {result.recall:.3f}, F {result.hmean:.3f} in {result.seconds:.1f} s"
    )
    print(f"report: {result.report_html.resolve()}")
    print(f"contact sheet: {result.contact_sheet.resolve()}")
    return 0
