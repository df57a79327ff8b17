"""Tune the two-stage detector (first-stage threshold x verifier threshold) on synthetic
validation data, and store the choice in the verifier file.

Usage: python benchmarks/tune_verifier.py --verifier runs/verifier/best_model.pt \
           [--model M] [--write verifier_tuned.pt]

Renders ``--count`` images with the validation seed (never a training or test seed; real
photos are never used here), scores the first stage alone at its own tuned setting, then
every combination of ``--first-thresholds`` and ``--verify-thresholds`` with the verifier,
all with the ICDAR 2015 protocol, and prints one line each. ``--write`` saves the verifier
again with the best pair in ``extra["verify"]`` (``threshold``, ``first_stage_threshold``),
which ``Detector.load(..., verifier=...)`` and ``synthloc detect --verifier`` then use.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from accuracy import ENGINES, make_synthetic_set, score_folder, set_box_pad

from synthloc.detect import Detector
from synthloc.verify import load_verifier_with_extra, save_verifier

VALIDATION_SEED = 987_654_321


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifier", type=Path, required=True, help="verifier file (.pt)")
    parser.add_argument("--model", type=Path, default=None, help="first stage (default: shipped)")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED)
    parser.add_argument("--engine", choices=ENGINES, default="paper", help="of the validation set")
    parser.add_argument("--set-dir", type=Path, default=None, help="keep (reuse) the set here")
    parser.add_argument("--scales", type=float, nargs="+", default=None, help="default: model's")
    parser.add_argument(
        "--first-thresholds", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6]
    )
    parser.add_argument(
        "--verify-thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None, help="save the tuned verifier here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="synthloc-tune-") as tmp:
        folder = make_synthetic_set(
            args.set_dir or Path(tmp) / "val", args.count, args.seed, engine=args.engine
        )
        alone = Detector.load(
            args.model, scales=args.scales, num_threads=args.threads, verify=False
        )
        figures = score_folder(alone, folder, box_pad=set_box_pad(alone, args.engine))
        print(
            f"first stage alone: scales={list(alone.scales)} threshold={alone.threshold:.2f}: "
            f"P={figures['precision']:.3f} R={figures['recall']:.3f} F={figures['hmean']:.3f}",
            flush=True,
        )
        best: tuple[float, dict[str, float]] | None = None
        for first in args.first_thresholds:
            for verify in args.verify_thresholds:
                detector = Detector.load(
                    args.model,
                    scales=args.scales,
                    threshold=first,
                    num_threads=args.threads,
                    verifier=args.verifier,
                    verify_threshold=verify,
                )
                figures = score_folder(detector, folder, box_pad=set_box_pad(detector, args.engine))
                print(
                    f"first_threshold={first:.2f} verify_threshold={verify:.2f}: "
                    f"P={figures['precision']:.3f} R={figures['recall']:.3f} "
                    f"F={figures['hmean']:.3f} ({figures['images_per_s']:.2f} images/s)",
                    flush=True,
                )
                choice = {"threshold": verify, "first_stage_threshold": first}
                if best is None or figures["hmean"] > best[0]:
                    best = (figures["hmean"], choice)
        assert best is not None
        print(f"best: F={best[0]:.3f} with {json.dumps(best[1])}")
        if args.write is not None:
            model, extra = load_verifier_with_extra(args.verifier)
            extra = {**extra, "verify": best[1], "verify_tuned_on": f"synthetic seed {args.seed}"}
            save_verifier(args.write, model, extra)
            print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
