"""Detect words in images with a trained FCRN (multi-scale, rotated NMS).

PATH is an image file or a folder of images (an ICDAR-style root with an images/ subfolder
works too). For every image the output folder receives:

  res_<stem>.txt   ICDAR 2015 submission format (x1,y1,...,x4,y4,score), for `synthloc eval`
  <stem>.json      the quads (clockwise from top-left, original pixels) and their scores
  <stem>_vis.jpg   the image with the detections drawn (unless --no-vis)

Scales: each value is a long side in pixels (e.g. 1024) or, up to 8, a factor of the image
size (e.g. 1.0); several values run every scale and merge the results with rotated NMS.
A file that cannot be read is reported by name and the others still run; the exit code is 1
when any file failed, and a final summary says how many.

examples:
  synthloc detect photo.jpg --out results/
  synthloc detect data/icdar2015_dev --out preds/ --model runs/exp/best.pt --scales 512 1024 1536
  synthloc detect images/ --out preds/ --model model.onnx --threads 2 --no-vis
  synthloc detect photos/ --out preds/ --preset multiscale
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model file (.pt from `synthloc train`, or .onnx from `synthloc export`); "
        "default: the model shipped with the package",
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=None,
        metavar="S",
        help="long sides in pixels (>8) or size factors (<=8); default: the model's "
        "recommendation, else 1024",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="minimum word confidence (default: the model's recommendation, else 0.5)",
    )
    parser.add_argument(
        "--nms-iou",
        type=float,
        default=None,
        help="IoU above which the weaker of two overlapping detections is dropped "
        "(default: the model's recommendation, else 0.3)",
    )
    parser.add_argument(
        "--min-size",
        type=float,
        default=None,
        metavar="PX",
        help="drop detections whose short side is under PX pixels of the resized image "
        "(default: the model's recommendation, else 0)",
    )
    parser.add_argument(
        "--preset",
        choices=("default", "multiscale"),
        default="default",
        help="which detection setting stored in the model file fills the options above that "
        "are not given: its single-scale default or its tuned multi-scale setting",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="inference engine (a .onnx model always uses onnxruntime)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: auto)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    parser.add_argument("--no-vis", action="store_true", help="do not write <stem>_vis.jpg")
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip images whose outputs already exist (resume an interrupted run)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _gather(paths: list[str]) -> tuple[list[Path], list[str], bool]:
    """Image files to process, errors for paths that do not exist, whether a folder was given."""
    from synthloc.detect import list_images

    images: list[Path] = []
    errors: list[str] = []
    any_folder = False
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            any_folder = True
            found = list_images(path)
            if not found:
                print(f"warning: {path}: no image files in this folder", file=sys.stderr)
            images.extend(found)
        elif path.exists():
            images.append(path)
        else:
            errors.append(f"{path}: no such file or directory")
    return images, errors, any_folder


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from synthloc.detect import Detector, output_paths, write_outputs

    if args.threads is not None:
        if args.threads < 1:
            print("error: --threads must be at least 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)  # a command owns its process
    try:
        detector = Detector.load(
            args.model,
            scales=args.scales,
            threshold=args.threshold,
            nms_iou=args.nms_iou,
            min_size=args.min_size,
            backend=args.backend,
            device=args.device,
            num_threads=args.threads,
            batch_size=args.batch_size,
            preset=args.preset,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    images, errors, any_folder = _gather(args.paths)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    # Two inputs with one stem would overwrite each other's results: the later ones fail.
    owner: dict[str, Path] = {}
    todo: list[Path] = []
    for path in images:
        if path.stem in owner:
            errors.append(f"{path}: same output name as {owner[path.stem]}; skipped")
            print(f"error: {errors[-1]}", file=sys.stderr)
            continue
        owner[path.stem] = path
        todo.append(path)
    skipped = 0
    if args.skip_existing:
        wanted = ("txt", "json") if args.no_vis else ("txt", "json", "vis")
        remaining = [
            p for p in todo if not all(output_paths(args.out, p.stem)[k].is_file() for k in wanted)
        ]
        skipped, todo = len(todo) - len(remaining), remaining
    total = len(todo) + len(errors) + skipped
    if total == 0:
        print("error: no images to process", file=sys.stderr)
        return 1

    args.out.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": detector.name,
        "scales": list(detector.scales),
        "threshold": detector.threshold,
        "nms_iou": detector.nms_iou,
        "min_size": detector.min_size,
    }
    failed = len(errors)
    words = 0
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", disable=args.quiet or not any_folder)
    try:
        for result in detector.detect_paths(todo, keep_images=True):
            bar.update(1)
            if result.error is not None:
                failed += 1
                bar.write(f"error: {result.error}", file=sys.stderr)
                continue
            try:
                write_outputs(
                    args.out,
                    result.path.stem,
                    result.detections,
                    image=result.image,
                    visualise=not args.no_vis,
                    source=str(result.path),
                    extra=settings,
                )
            except (OSError, ValueError) as exc:
                failed += 1
                bar.write(f"error: {result.path}: cannot write results ({exc})", file=sys.stderr)
                continue
            words += len(result.detections)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    done = len(todo) - (failed - len(errors))
    rate = f", {done / elapsed:.2f} images/s" if done and elapsed > 0 else ""
    skip_note = f", {skipped} skipped (outputs exist)" if skipped else ""
    print(
        f"{done} images, {words} words detected{rate}{skip_note}; "
        f"{failed} of {total} failed; results in {args.out}"
    )
    return 1 if failed else 0
