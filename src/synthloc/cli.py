"""The ``synthloc`` command line: one verb per pipeline stage.

This module only dispatches; each verb's arguments and handler live in
``synthloc.commands.<verb>`` as ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from synthloc import __version__

VERBS: dict[str, str] = {
    "synth": "render synthetic scene-text images with exact word and character ground truth",
    "train": "train an FCRN detector on synthetic and/or real data (resumable)",
    "verifier-data": "make the second-stage verifier's training crops (hard negatives included)",
    "train-verifier": "train the second-stage verifier that filters and refines detections",
    "detect": "detect words in images (multi-scale, rotated NMS) and write ICDAR results",
    "eval": "score detections against ground truth (ICDAR 2015 IoU or ICDAR 2013 DetEval)",
    "export": "export a trained detector to ONNX (BatchNorm folded, dynamic size)",
    "demo": "synthesize, detect and evaluate on the embedded default; write a visual report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthloc",
        description="Synthetic data for text localisation (SynthText engine + FCRN detector).",
    )
    parser.add_argument("--version", action="version", version=f"synthloc {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, summary in VERBS.items():
        module = importlib.import_module(f"synthloc.commands.{verb.replace('-', '_')}")
        verb_parser = sub.add_parser(
            verb,
            help=summary,
            description=(module.__doc__ or summary).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
