"""Score detections against ICDAR ground truth and print precision, recall and F (hmean).

Pairs gt_<name>.txt in --gt with res_<name>.txt in --pred (a missing result file means no
detections; a --pred folder without any res_*.txt is an error unless --allow-empty).
Protocols, both equal to the Robust Reading Competition scripts with default parameters:
  ic15  ICDAR 2015: one-to-one matching at IoU > 0.5 on quads, "###" words are don't care
  ic13  ICDAR 2013 DetEval: axis-aligned boxes, area recall 0.8 / precision 0.4, one-to-one,
        then splits (one GT over several detections, scored 0.8) and merges (several GT in one
        detection, scored 1), each stage using only GT and detections not matched before

Lines with a quad that is not a simple polygon are scored after repair, with a warning naming
file:line. The scores are printed before --per-image / --json are written, so a report that
cannot be written (exit 1) does not lose them.

Example:
  synthloc eval --gt data/icdar2015/gt --pred runs/detect --protocol ic15 --per-image per_image.csv
"""

from __future__ import annotations

import argparse
import sys

from synthloc.atomic import write_text_atomic

# Warnings printed one per line; the rest are counted, so a broken file cannot flood the terminal.
MAX_WARNINGS_SHOWN = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="folder with gt_<name>.txt files")
    parser.add_argument("--pred", required=True, help="folder with res_<name>.txt files")
    parser.add_argument(
        "--protocol", choices=("ic15", "ic13"), default="ic15", help="evaluation protocol"
    )
    parser.add_argument("--per-image", metavar="CSV", help="write per-image figures to this CSV")
    parser.add_argument("--json", metavar="FILE", help="write the summary and per-image figures")
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="score a --pred folder without any res_*.txt as no detections (default: error)",
    )


def _write_report(path: str, text: str) -> bool:
    """Write one report file; on failure print a one-line error and return False."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"synthloc eval: {path}: cannot write ({reason})", file=sys.stderr)
        return False
    return True


def run(args: argparse.Namespace) -> int:
    import csv
    import io
    import json
    import warnings

    from synthloc.data.icdar import IcdarFormatError, IcdarWarning
    from synthloc.evaluate import evaluate_folders, per_image_rows

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IcdarWarning)
        try:
            result = evaluate_folders(args.gt, args.pred, args.protocol, args.allow_empty)
        except (FileNotFoundError, IcdarFormatError, ValueError, OSError) as exc:
            print(f"synthloc eval: {exc}", file=sys.stderr)
            return 2
    icdar_warnings = [w for w in caught if issubclass(w.category, IcdarWarning)]
    for w in caught:
        if not issubclass(w.category, IcdarWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for w in icdar_warnings[:MAX_WARNINGS_SHOWN]:
        print(f"synthloc eval: warning: {w.message}", file=sys.stderr)
    if len(icdar_warnings) > MAX_WARNINGS_SHOWN:
        hidden = len(icdar_warnings) - MAX_WARNINGS_SHOWN
        print(f"synthloc eval: warning: ... and {hidden} more", file=sys.stderr)

    print(
        f"{result.protocol}: precision {result.precision:.4f}  recall {result.recall:.4f}  "
        f"F {result.hmean:.4f}  ({len(result.per_image)} images, {result.num_gt_care} GT, "
        f"{result.num_det_care} detections counted)",
        flush=True,
    )

    written = True
    if args.per_image:
        rows = per_image_rows(result)
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written &= _write_report(args.per_image, buffer.getvalue())
    if args.json:
        payload = {**result.summary(), "per_image": result.per_image}
        written &= _write_report(args.json, json.dumps(payload, indent=1) + "\n")
    return 0 if written else 1
