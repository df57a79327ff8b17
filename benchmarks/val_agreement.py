"""Does a validation set rank detectors as icdar2015_dev does?

Scores each ``--entry`` (a model, its verifier or none, and a box padding) on a synthetic
validation set (accuracy.py's sets: ``--engine sprites`` by default, rendered with the
validation seed) and on icdar2015_dev, prints both, and counts the pairs of entries that
the two sets order the same way. Dev is only read here, to judge the validation set; no
setting is chosen from it::

    python benchmarks/val_agreement.py --set-dir data/runs/ab_dense/val_sprites_v3 \\
        --entry shipped-pair fcrn-dense default 0.11 \\
        --entry shipped-first fcrn-dense none 0.11 --json data/agreement.json

An entry's verifier is a file, ``default`` (the one shipped beside a shipped model) or
``none`` (first stage alone); its box padding is a number or ``file`` (the model file's).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from accuracy import ENGINES, SHARED, make_synthetic_set, score_folder
from tune_detect import VALIDATION_SEED

from synthloc.detect import Detector


def load_entry(model: str, verifier: str, box_pad: str, threads: int) -> Detector:
    """The detector an ``--entry`` names (see the module docstring)."""
    return Detector.load(
        model,
        verifier=None if verifier in ("default", "none") else verifier,
        verify=verifier != "none",
        box_pad=None if box_pad == "file" else float(box_pad),
        num_threads=threads,
    )


def agreement(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(pairs ordered alike by both sets, pairs compared); ties on either set are skipped."""
    same = total = 0
    for a, b in itertools.combinations(rows, 2):
        d_val, d_dev = a["val"] - b["val"], a["dev"] - b["dev"]
        if d_val == 0 or d_dev == 0:
            continue
        total += 1
        same += (d_val > 0) == (d_dev > 0)
    return same, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--entry",
        nargs=4,
        action="append",
        required=True,
        metavar=("NAME", "MODEL", "VERIFIER", "BOX_PAD"),
    )
    parser.add_argument("--engine", choices=ENGINES, default="sprites")
    parser.add_argument("--set-dir", type=Path, required=True, help="kept (reused) here")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED)
    parser.add_argument("--icdar", type=Path, default=SHARED / "real" / "icdar2015_dev")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.icdar.is_dir():
        raise SystemExit(f"{args.icdar}: not found (the ICDAR 2015 dev photos)")
    folder = make_synthetic_set(args.set_dir, args.count, args.seed, engine=args.engine)
    rows: list[dict[str, Any]] = []
    for name, model, verifier, box_pad in args.entry:
        detector = load_entry(model, verifier, box_pad, args.threads)
        # The photo set's ground truth hugs the glyphs; the sprites set and dev are boxed by
        # ICDAR 2015's annotators, so both take the entry's own padding.
        own = None if args.engine == "sprites" else detector.engine_box_pad
        val = score_folder(detector, folder, box_pad=own)
        dev = score_folder(detector, args.icdar)
        row = {
            "name": name,
            "model": model,
            "verifier": verifier,
            "box_pad": detector.box_pad,
            "threshold": detector.threshold,
            "val": round(val["hmean"], 3),
            "val_pr": [round(val["precision"], 3), round(val["recall"], 3)],
            "dev": round(dev["hmean"], 3),
            "dev_pr": [round(dev["precision"], 3), round(dev["recall"], 3)],
        }
        rows.append(row)
        print(
            f"{name:24s} box_pad {detector.box_pad:+.2f} threshold {detector.threshold:.2f}: "
            f"{args.engine} F {row['val']:.3f} (P {row['val_pr'][0]:.3f} R {row['val_pr'][1]:.3f})"
            f"  dev F {row['dev']:.3f} (P {row['dev_pr'][0]:.3f} R {row['dev_pr'][1]:.3f})",
            flush=True,
        )
    same, total = agreement(rows)
    print(f"pairs ordered alike: {same} of {total}")
    if args.json is not None:
        record = {"engine": args.engine, "rows": rows, "agree": same, "pairs": total}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
