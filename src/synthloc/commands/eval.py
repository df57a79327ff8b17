"""Score detections against ICDAR ground truth and print precision, recall and F (hmean).

Pairs gt_<name>.txt in --gt with res_<name>.txt in --pred (a missing result file means no
detections). Protocols, both equal to the Robust Reading Competition scripts:
  ic15  ICDAR 2015: one-to-one matching at IoU > 0.5 on quads, "###" words are don't care
  ic13  ICDAR 2013 DetEval: axis-aligned boxes, area recall 0.8 / precision 0.4, splits and merges

Example:
  synthloc eval --gt data/icdar2015/gt --pred runs/detect --protocol ic15 --per-image per_image.csv
"""

from __future__ import annotations

import argparse
import sys

from synthloc.atomic import write_text_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="folder with gt_<name>.txt files")
    parser.add_argument("--pred", required=True, help="folder with res_<name>.txt files")
    parser.add_argument(
        "--protocol", choices=("ic15", "ic13"), default="ic15", help="evaluation protocol"
    )
    parser.add_argument("--per-image", metavar="CSV", help="write per-image figures to this CSV")
    parser.add_argument("--json", metavar="FILE", help="write the summary and per-image figures")


def run(args: argparse.Namespace) -> int:
    import csv
    import io
    import json

    from synthloc.data.icdar import IcdarFormatError
    from synthloc.evaluate import evaluate_folders, per_image_rows

    try:
        result = evaluate_folders(args.gt, args.pred, args.protocol)
    except (FileNotFoundError, IcdarFormatError, ValueError, OSError) as exc:
        print(f"synthloc eval: {exc}", file=sys.stderr)
        return 2

    if args.per_image:
        rows = per_image_rows(result)
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        write_text_atomic(args.per_image, buffer.getvalue())
    if args.json:
        payload = {**result.summary(), "per_image": result.per_image}
        write_text_atomic(args.json, json.dumps(payload, indent=1) + "\n")

    print(
        f"{result.protocol}: precision {result.precision:.4f}  recall {result.recall:.4f}  "
        f"F {result.hmean:.4f}  ({len(result.per_image)} images, {result.num_gt_care} GT, "
        f"{result.num_det_care} detections counted)"
    )
    return 0
