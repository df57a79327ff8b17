"""Detect words in images with a trained FCRN (multi-scale, rotated NMS).

PATH is an image file or a folder of images (an ICDAR-style root with an images/ subfolder
works too; --recursive walks every subfolder and mirrors it in the output). Every image gets:

  res_<stem>.txt   ICDAR 2015 submission format, x1,y1,x2,y2,x3,y3,x4,y4 (integers, clockwise),
                   as the official Robust Reading script expects; --res-scores appends the
                   score as a ninth value (the script's CONFIDENCES mode)
  <stem>.json      the quads (clockwise from top-left, original pixels), their scores and the
                   settings that made them
  <stem>_vis.jpg   the image with the detections drawn (unless --no-vis)

Scores are in [0, 1]: the model's confidence that a word is centred in the grid cell that
predicted it (a ranking score, not a calibrated probability).
Second stage: with --verifier (or, for the shipped model, the verifier shipped beside it) each
candidate is checked by the verifier: those it finds unlikely to be text (probability below
--verify-threshold) are dropped, its refined quad replaces the first stage's, and the score
becomes sqrt(first-stage score * text probability). --no-verify runs the first stage alone.
With --backend onnxruntime (or .onnx files) both stages run in onnxruntime.
Scales: each value is a long side in pixels (e.g. 1024) or, up to 8, a factor of the image
size (e.g. 1.0); several values run every scale and merge the results with rotated NMS.
Files in a folder that are not images (other or no extension, subfolders without
--recursive) are listed as skipped; our own outputs in it are ignored. A file that cannot be
read or detected is reported by name and the others still run; the exit code is 1 when any
file failed, and a final summary says how many.

examples:
  synthloc detect photo.jpg --out results/
  synthloc detect data/icdar2015_dev --out preds/ --model runs/exp/best_model.pt --scales 512 1024
  synthloc detect images/ --out preds/ --model model.onnx --threads 2 --no-vis
  synthloc detect photos/ --out preds/ --preset multiscale --recursive
  synthloc detect photos/ --out preds/ --model runs/exp/best_model.pt \\
      --verifier runs/verifier/best_model.pt

(`synthloc train --out runs/exp` writes the model files best_model.pt and model.pt; best.pt
and last.pt there are training checkpoints for --resume, not model files.)
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Names listed per reason in the summary of skipped folder entries.
MAX_NAMES_SHOWN = 5


def _float_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a float in [low, high] (NaN and out-of-range values are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number in [{low:g}, {high:g}], got {text!r}"
            ) from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {text}")
        return value

    return parse


_unit_float = _float_in(0.0, 1.0)  # --threshold, --verify-threshold
_box_pad = _float_in(-0.25, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthloc.detect.shipped import models_help

    parser.epilog = f"shipped models (--model NAME):\n{models_help()}"
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="a shipped model's name (listed below) or a model file (.pt from `synthloc "
        "train`, e.g. runs/exp/best_model.pt, or .onnx from `synthloc export`); default: "
        "the default shipped model",
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
        type=_unit_float,
        default=None,
        help="minimum word confidence, in [0, 1] (default: the model's recommendation, else 0.5)",
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
        "--box-pad",
        type=_box_pad,
        default=None,
        metavar="FRACTION",
        help="grow each box by FRACTION of its height on every side (negative: shrink), to "
        "match a benchmark's box convention (default: the model's recommendation, else 0; the "
        "shipped models store what benchmarks/box_convention.py measured on ICDAR 2015 "
        "training words)",
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
        choices=("auto", "torch", "onnxruntime"),
        default="auto",
        help="inference engine: auto (default) = onnxruntime on a CPU (the faster there; a .pt "
        "model is exported once and cached, see $SYNTHLOC_CACHE), torch on a GPU; a .onnx "
        "model always uses onnxruntime",
    )
    parser.add_argument(
        "--verifier",
        type=Path,
        default=None,
        metavar="PATH",
        help="second-stage verifier file (.pt from `synthloc train-verifier` or .onnx from "
        "`synthloc export --verifier`); default: the one shipped with the default model, if any",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the second stage (first stage only)"
    )
    parser.add_argument(
        "--verify-threshold",
        type=_unit_float,
        default=None,
        help="minimum text probability of the verifier, in [0, 1] (default: the verifier "
        "file's recommendation, else 0.5)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: auto)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    parser.add_argument("--no-vis", action="store_true", help="do not write <stem>_vis.jpg")
    parser.add_argument(
        "--res-scores",
        action="store_true",
        help="append each word's score to res_<stem>.txt as a ninth value (for evaluation "
        "scripts run with confidences; the default 8 values are the submission format)",
    )
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="also detect images in subfolders; outputs mirror the subfolders under --out",
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip images whose outputs exist and were made with the same model and "
        "settings (resume an interrupted run); others are redone",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@dataclass
class _Job:
    """One image and the folder its outputs go to."""

    path: Path
    out_dir: Path


def _gather(
    paths: list[str], out: Path, recursive: bool
) -> tuple[list[_Job], list[str], list[str], bool]:
    """Jobs, errors (missing paths), notes on skipped folder entries, whether a folder was
    given."""
    from synthloc.detect import scan_images

    jobs: list[_Job] = []
    errors: list[str] = []
    notes: list[str] = []
    any_folder = False
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            any_folder = True
            listing = scan_images(path, recursive=recursive)
            if not listing.images:
                print(f"warning: {path}: no image files in this folder", file=sys.stderr)
            for image in listing.images:
                sub = image.parent.relative_to(path) if recursive else Path()
                jobs.append(_Job(image, out / sub))
            notes.extend(_skip_notes(path, listing.skipped, recursive))
            if listing.own_outputs:
                notes.append(
                    f"{path}: {listing.own_outputs} files written by synthloc detect ignored"
                )
        elif path.exists():
            jobs.append(_Job(path, out))
        else:
            errors.append(f"{path}: no such file or directory")
    return jobs, errors, notes, any_folder


def _skip_notes(folder: Path, skipped: list[tuple[Path, str]], recursive: bool) -> list[str]:
    """One line per reason: how many entries were skipped and the first few names."""
    by_reason: dict[str, list[str]] = {}
    for path, reason in skipped:
        name = str(path.relative_to(folder)) + ("/" if reason == "subfolder" else "")
        by_reason.setdefault(reason, []).append(name)
    lines = []
    for reason, names in by_reason.items():
        shown = ", ".join(names[:MAX_NAMES_SHOWN])
        hidden = len(names) - MAX_NAMES_SHOWN
        more = f", ... ({hidden} more)" if hidden > 0 else ""
        hint = " (use --recursive to include them)" if reason == "subfolder" else ""
        lines.append(f"{folder}: skipped {len(names)} ({reason}){hint}: {shown}{more}")
    return lines


def _file_digest(path: Path) -> str:
    """SHA-256 of the model file (prefix), so results record which weights made them."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from synthloc.commands.checks import out_folder_problem
    from synthloc.detect import (
        Detector,
        output_paths,
        settings_match,
        write_outputs,
    )

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
            box_pad=args.box_pad,
            backend=args.backend,
            device=args.device,
            num_threads=args.threads,
            batch_size=args.batch_size,
            preset=args.preset,
            verifier=args.verifier,
            verify=not args.no_verify,
            verify_threshold=args.verify_threshold,
        )
        assert detector.source is not None  # Detector.load records its file
        model_digest = _file_digest(detector.source)
        verifier = detector.verifier
        verifier_digest = (
            _file_digest(verifier.source)
            if verifier is not None and verifier.source is not None
            else None
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    problem = out_folder_problem(args.out)
    if problem is not None:
        print(f"error: --out {problem}", file=sys.stderr)
        return 2
    jobs, errors, notes, any_folder = _gather(args.paths, args.out, args.recursive)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    # Two inputs with one output name would overwrite each other's results: the later fail.
    owner: dict[tuple[Path, str], Path] = {}
    todo: list[_Job] = []
    for job in jobs:
        key = (job.out_dir, job.path.stem)
        if key in owner:
            errors.append(f"{job.path}: same output name as {owner[key]}; skipped")
            print(f"error: {errors[-1]}", file=sys.stderr)
            continue
        owner[key] = job.path
        todo.append(job)
    # What the outputs depend on; recorded in every JSON so --skip-existing redoes images
    # whose results were made otherwise.
    settings = {
        "model": detector.name,
        "model_sha256": model_digest,
        "scales": list(detector.scales),
        "threshold": detector.threshold,
        "nms_iou": detector.nms_iou,
        "min_size": detector.min_size,
        "box_pad": detector.box_pad,
        "res_scores": bool(args.res_scores),
        "verifier": None if verifier is None else verifier.name,
        "verifier_sha256": verifier_digest,
        "verify_threshold": None if verifier is None else verifier.threshold,
    }
    skipped = 0
    if args.skip_existing:
        wanted = ("txt", "json") if args.no_vis else ("txt", "json", "vis")

        def finished(job: _Job) -> bool:
            paths = output_paths(job.out_dir, job.path.stem)
            return all(paths[k].is_file() for k in wanted) and settings_match(
                paths["json"], settings
            )

        remaining = [job for job in todo if not finished(job)]
        skipped, todo = len(todo) - len(remaining), remaining
    total = len(todo) + len(errors) + skipped
    if total == 0:
        print("error: no images to process", file=sys.stderr)
        return 1
    failed = len(errors)
    words = 0
    start = time.perf_counter()
    out_dirs = {job.path: job.out_dir for job in todo}
    bar = tqdm(total=len(todo), unit="img", disable=args.quiet or not any_folder)
    try:
        for result in detector.detect_paths([job.path for job in todo], keep_images=True):
            bar.update(1)
            if result.error is not None:
                failed += 1
                bar.write(f"error: {result.error}", file=sys.stderr)
                continue
            try:
                out_dir = out_dirs[result.path]
                out_dir.mkdir(parents=True, exist_ok=True)
                write_outputs(
                    out_dir,
                    result.path.stem,
                    result.detections,
                    image=result.image,
                    visualise=not args.no_vis,
                    source=str(result.path),
                    extra=settings,
                    res_scores=args.res_scores,
                )
            # Whatever goes wrong writing one image's results (disk, encoder) is reported
            # against that image; the job goes on.
            except Exception as exc:
                failed += 1
                bar.write(f"error: {result.path}: cannot write results ({exc})", file=sys.stderr)
                continue
            words += len(result.detections)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    done = len(todo) - (failed - len(errors))
    rate = f", {done / elapsed:.2f} images/s" if done and elapsed > 0 else ""
    skip_note = f", {skipped} skipped (outputs exist, same settings)" if skipped else ""
    not_images = sum(1 for note in notes if ": skipped " in note)
    folder_note = "; other folder entries skipped (see notes above)" if not_images else ""
    print(
        f"{done} images, {words} words detected{rate}{skip_note}; "
        f"{failed} of {total} failed; results in {args.out}{folder_note}"
    )
    return 1 if failed else 0
