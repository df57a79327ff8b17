"""How much of an F difference on an ICDAR 2015 folder is the luck of its photos.

Runs each ``--model`` (a model file or a shipped name, at its stored setting unless overridden)
on the folder, keeps each photo's counts (matched words, care words, care detections) and
resamples the photos with replacement (``--rounds`` times, seeded). It prints each model's F
with a 95% interval and, for every model after the first, the interval of its F minus the
first model's over the same resampled photo sets (a paired bootstrap), with the share of
rounds in which it is ahead::

    python benchmarks/dev_bootstrap.py --model fcrn-dense --json training/dev_bootstrap/x.json
    python benchmarks/dev_bootstrap.py --model fcrn-dense --model data/curve/step150.pt \\
        --no-verify --box-pad 0.11
    python benchmarks/dev_bootstrap.py --model fcrn-dense --model cand.pt \\
        --verifier default --verifier cand_verifier.pt

This measures the photo sampling only: another checkpoint or data seed of the same recipe
varies on top of it (docs/engine.md, checkpoint noise). Nothing is chosen on the folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "real" / "icdar2015_dev"


def photo_counts(per_image: list[dict[str, object]]) -> np.ndarray:
    """``[N, 3]`` int64: matched words, care GT words and care detections of each photo."""
    keys = ("matched", "num_gt_care", "num_det_care")
    return np.array([[row[k] for k in keys] for row in per_image], np.int64)


def resampled_hmeans(counts: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """F of each resampled photo set: ``samples`` ``[rounds, N]`` holds photo indices."""
    totals = counts[samples].sum(axis=1).astype(np.float64)  # [rounds, 3]
    matched, gt_care, det_care = totals[:, 0], totals[:, 1], totals[:, 2]
    recall = np.divide(matched, gt_care, out=np.zeros_like(matched), where=gt_care > 0)
    precision = np.divide(matched, det_care, out=np.zeros_like(matched), where=det_care > 0)
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


def interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def paired_verifiers(models: list[str], verifiers: list[str] | None) -> list[str | None]:
    """The second stage of each model: ``--verifier`` values by position ("default", or none
    given at all, = the verifier shipped beside the model, if any)."""
    if verifiers is None:
        return [None] * len(models)
    if len(verifiers) != len(models):
        raise ValueError(
            f"give one --verifier per --model or none: {len(models)} models, "
            f"{len(verifiers)} verifiers"
        )
    return [None if v == "default" else v for v in verifiers]


def verifier_label(given: str | None, running: str | None) -> str | None:
    """What a row records as its second stage: the ``--verifier`` given, else the file name
    of the verifier the detector runs (the one shipped beside a shipped model), else None
    (first stage alone, e.g. "default" for a model file that has no shipped verifier)."""
    if running is None:
        return None
    return given if given is not None else running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="file or shipped name")
    parser.add_argument("--icdar", type=Path, default=DEV, help="ICDAR folder (images + gt_*)")
    parser.add_argument("--scale", type=float, default=None, help="None = each model's own")
    parser.add_argument("--threshold", type=float, default=None, help="None = each model's own")
    parser.add_argument("--box-pad", type=float, default=None, help="None = each model's own")
    parser.add_argument(
        "--verifier",
        action="append",
        default=None,
        help="second stage of the --model in the same position (default: shipped beside it)",
    )
    parser.add_argument("--no-verify", action="store_true", help="first stage alone")
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    try:
        verifiers = paired_verifiers(args.model, args.verifier)
    except ValueError as error:
        parser.error(str(error))

    from accuracy import evaluate_folder

    from synthloc.detect import Detector

    counts = []
    observed = []
    stages = []
    for model, verifier in zip(args.model, verifiers, strict=True):
        detector = Detector.load(
            model,
            verifier=verifier,
            scales=None if args.scale is None else [args.scale],
            threshold=args.threshold,
            box_pad=args.box_pad,
            verify=not args.no_verify,
            num_threads=args.threads,
        )
        running = None if detector.verifier is None else detector.verifier.name
        stages.append(verifier_label(verifier, running))
        _, result, _ = evaluate_folder(detector, args.icdar)
        counts.append(photo_counts(result.per_image))
        observed.append(round(result.hmean, 4))
    photos = len(counts[0])
    rng = np.random.default_rng(args.seed)
    samples = rng.integers(0, photos, size=(args.rounds, photos))
    hmeans = [resampled_hmeans(c, samples) for c in counts]
    rows = []
    for k, model in enumerate(args.model):
        # The second stage that ran (None: the first stage alone), so that a "default" which
        # found no shipped verifier is visible in the output.
        row: dict[str, object] = {"model": model, "verifier": stages[k], "hmean": observed[k]}
        row["hmean_95"] = interval(hmeans[k])
        if k > 0:
            difference = hmeans[k] - hmeans[0]
            row["minus_first_95"] = interval(difference)
            row["ahead_of_first"] = round(float((difference > 0).mean()), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json is not None:
        record = {
            "folder": args.icdar.name,
            "photos": photos,
            "rounds": args.rounds,
            "seed": args.seed,
            "scale": args.scale,
            "threshold": args.threshold,
            "box_pad": args.box_pad,
            "verify": not args.no_verify,
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
