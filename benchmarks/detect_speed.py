"""End-to-end detection throughput on 1280x720 photos, PyTorch vs onnxruntime vs RapidOCR.

"End to end" is image file -> word quads: JPEG decoding, resizing, the network, decoding (the
grid decoder of fcrn/fcrn-lite or the dense decoder of fcrn-dense, as the model file says)
and rotated NMS (``Detector.detect_paths``).  The model runs at its stored detection setting
(``--preset``: the scales, threshold and minimum size that ``tune_detect.py`` wrote into the
model file, else the library defaults); ``--scales`` overrides the scales.

Both of our backends run at ``--threads`` threads (torch intra-op threads; onnxruntime
``intra_op_num_threads``). When ``rapidocr_onnxruntime`` is importable (the optional ``bench``
extra), its text detector alone (PP-OCR DBNet, its default settings: shortest side 736) runs
on the same files with the same thread count, file decoding included, and the ratio ours /
theirs is printed. Runs are interleaved across
engines so that load from other processes hits them alike; figures are medians of
``--repeats`` passes over all images (the best pass is shown too: on a shared machine it is
the least disturbed one; check the printed load average).

    .venv/bin/python benchmarks/detect_speed.py                  # ../shared icdar2015_dev
    .venv/bin/python benchmarks/detect_speed.py --images DIR --count 50 --repeats 5
    .venv/bin/python benchmarks/detect_speed.py --model runs/exp/best.pt --json speed.json
    .venv/bin/python benchmarks/detect_speed.py --model data/runs/ab_dense/dense-imagenet/model.pt

On a machine shared with other busy processes, PyTorch's OpenMP threads spin-wait and its
figures swing by up to 10x between passes; ``OMP_WAIT_POLICY=PASSIVE`` (set in the
environment before starting) makes them steadier at a small cost on an idle machine.

Without a model (``--model``, or the one shipped in the package) a randomly initialised
fcrn-lite is timed, and the output says so: its cost equals a trained one's, except that the
number of candidate boxes reaching NMS depends on the weights. Without ``--images`` and
without ../shared/data/real/icdar2015_dev, synthetic 1280x720 JPEGs are generated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from synthloc.detect import (
    PRESETS,
    Detector,
    NoDefaultModelError,
    list_images,
    resized_size,
    resolve_model,
)
from synthloc.model import ModelConfig, build_model, save_model

ROOT = Path(__file__).resolve().parents[1]
SHARED_DEV = ROOT.parent / "shared" / "data" / "real" / "icdar2015_dev"


def synthetic_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` 1280x720 JPEGs of smooth colour fields with a few dark and light bars."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        small = rng.integers(0, 256, size=(9, 16, 3), dtype=np.uint8)
        image = cv2.resize(small, (1280, 720), interpolation=cv2.INTER_CUBIC)
        for _ in range(12):
            x, y = int(rng.integers(0, 1100)), int(rng.integers(0, 680))
            w, h = int(rng.integers(40, 180)), int(rng.integers(12, 40))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.rectangle(image, (x, y), (x + w, y + h), colour, -1)
        path = folder / f"synthetic_{k:03d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


def rapidocr_text_detector(threads: int) -> tuple[Any, dict[str, Any]] | None:
    """RapidOCR's text detector (PP-OCR DBNet) at its package's default settings, with
    ``threads`` intra-op threads, and those settings; None if it is not installed."""
    try:
        import rapidocr_onnxruntime
        import yaml
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
    except ImportError:
        return None
    package = Path(rapidocr_onnxruntime.__file__).parent
    config = yaml.safe_load((package / "config.yaml").read_text())["Det"]
    config["model_path"] = str(package / config["model_path"])
    config["intra_op_num_threads"] = threads
    config["inter_op_num_threads"] = 1
    return TextDetector(config), config


def rapidocr_detector(threads: int) -> Callable[[Path], int] | None:
    """RapidOCR's text detector as ``file -> number of boxes``, or None if not installed."""
    found = rapidocr_text_detector(threads)
    if found is None:
        return None
    detector = found[0]

    def run(path: Path) -> int:
        boxes, _ = detector(cv2.imread(str(path)))
        return 0 if boxes is None else len(boxes)

    return run


def time_pass(run: Callable[[list[Path]], int], paths: list[Path]) -> tuple[float, int]:
    """Images per second of one pass over ``paths`` and the number of boxes found."""
    start = time.perf_counter()
    boxes = run(paths)
    return len(paths) / (time.perf_counter() - start), boxes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=None, help="folder of photos")
    parser.add_argument("--count", type=int, default=20, help="images per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per engine")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None, help="synthloc model file (.pt)")
    parser.add_argument("--scales", type=float, nargs="+", default=None)
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="default",
        help="which detection setting stored in the model file to run",
    )  # fmt: skip
    parser.add_argument(
        "--verifier",
        type=Path,
        default=None,
        help="second-stage verifier file: time both stages (default: the shipped one with "
        "the shipped model, if any)",
    )
    parser.add_argument("--no-verify", action="store_true", help="time the first stage only")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument("--no-rapidocr", action="store_true", help="skip the RapidOCR baseline")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="synthloc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        folder = args.images if args.images is not None else SHARED_DEV
        if folder.is_dir():
            paths = list_images(folder)[: args.count]
            # Recorded relative to the repository root: results.json names no machine paths.
            source = os.path.relpath(folder.resolve(), ROOT)
        else:
            paths = synthetic_photos(tmp, args.count)
            source = "synthetic 1280x720 JPEGs (no photo folder found)"
        if not paths:
            print(f"error: no images in {folder}", file=sys.stderr)
            return 1

        model_path = args.model
        model_note = str(model_path)
        verifier_path = args.verifier
        if model_path is None:
            try:
                # The shipped default runs with the verifier shipped beside it.
                model_path, shipped_verifier = resolve_model(None)
                verifier_path = verifier_path or shipped_verifier
                model_note = f"shipped default ({model_path.name})"
            except NoDefaultModelError:
                torch.manual_seed(0)
                model_path = tmp / "random_fcrn_lite.pt"
                save_model(model_path, build_model(ModelConfig(arch="fcrn-lite")))
                model_note = "RANDOMLY INITIALISED fcrn-lite (no trained model available)"

        engines: dict[str, Callable[[list[Path]], int]] = {}
        detectors = {}
        for backend in ("torch", "onnxruntime"):
            try:
                detector = Detector.load(
                    model_path,
                    scales=args.scales,
                    preset=args.preset,
                    backend=backend,
                    device="cpu",
                    num_threads=args.threads,
                    batch_size=args.batch_size,
                    verifier=verifier_path,
                    verify=not args.no_verify,
                )
            except (FileNotFoundError, ValueError) as error:  # missing/corrupt file, no preset
                print(f"error: {error}", file=sys.stderr)
                return 1
            detectors[backend] = detector

            def run(batch: list[Path], detector: Detector = detector) -> int:
                return sum(len(r.detections) for r in detector.detect_paths(batch))

            engines[f"synthloc/{backend}"] = run
        rapid = None if args.no_rapidocr else rapidocr_detector(args.threads)
        if rapid is not None:
            engines["rapidocr-det"] = lambda batch: sum(rapid(p) for p in batch)

        first = cv2.imread(str(paths[0]))
        if first is None:
            raise SystemExit(f"{paths[0]}: not a readable image")
        h, w = first.shape[:2]
        setting = detectors["torch"]
        scales = setting.scales
        inputs = ", ".join(f"{b}x{a}" for a, b in (resized_size(h, w, s) for s in scales))
        decoder = "dense (fcrn-dense)" if setting.dense else "grid"
        print(f"images: {len(paths)} from {source} (first is {w}x{h})")
        print(f"model: {model_note}; scales {list(scales)} -> input {inputs}")
        print(
            f"setting ({args.preset} preset): {decoder} decoder, stride {setting.stride}, "
            f"{setting.confidence} confidence, threshold {setting.threshold:g}, "
            f"min size {setting.min_size:g}, NMS IoU {setting.nms_iou:g}"
        )
        verifier = detectors["torch"].verifier
        print(f"verifier: {'none' if verifier is None else verifier.name}")
        print(f"threads: {args.threads}; passes: {args.repeats} (median reported)")
        print(f"torch {torch.__version__}, load average {load_average()}")

        for engine in engines.values():
            engine(paths[:2])  # warm-up: kernel selection, allocator, lazy init
        rates: dict[str, list[float]] = {name: [] for name in engines}
        boxes: dict[str, int] = {}
        for _ in range(args.repeats):
            for name, engine in engines.items():
                rate, found = time_pass(engine, paths)
                rates[name].append(rate)
                boxes[name] = found

        results: dict[str, dict[str, float]] = {}
        for name, values in rates.items():
            median = statistics.median(values)
            results[name] = {
                "images_per_s": median,
                "ms_per_image": 1000 / median,
                "best_images_per_s": max(values),
            }
            print(
                f"{name:22s} {median:7.2f} images/s  ({1000 / median:6.1f} ms/image; best "
                f"{max(values):.2f} images/s; {boxes[name]} boxes per pass; runs: "
                + ", ".join(f"{v:.2f}" for v in values)
                + ")"
            )
        if "rapidocr-det" in results:
            theirs = results["rapidocr-det"]["images_per_s"]
            for backend in ("torch", "onnxruntime"):
                ratio = results[f"synthloc/{backend}"]["images_per_s"] / theirs
                results[f"synthloc/{backend}"]["ratio_vs_rapidocr"] = ratio
                print(f"ratio synthloc/{backend} / rapidocr-det: {ratio:.2f}x (target >= 2x)")
        elif args.no_rapidocr:
            print("rapidocr-det: skipped (--no-rapidocr)")
        else:
            print("rapidocr-det: not installed (pip install rapidocr-onnxruntime); no ratio")

    if args.json is not None:
        record = {
            "images": len(paths),
            "source": source,
            "model": model_note,
            "scales": list(scales),
            "preset": args.preset,
            "decoder": "dense" if setting.dense else "grid",
            "stride": setting.stride,
            "threshold": setting.threshold,
            "min_size": setting.min_size,
            "nms_iou": setting.nms_iou,
            "threads": args.threads,
            "repeats": args.repeats,
            "results": results,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (Linux), or "unknown"."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
