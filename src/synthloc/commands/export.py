"""Export a trained detector to ONNX and check it against PyTorch.

The graph takes float32 [N, 3, H, W] RGB in [0, 1] (synthloc.model.preprocess) with dynamic
batch, height and width (any size: it pads to the stride itself) and returns the raw
prediction map [N, 7, ceil(H/32), ceil(W/32)]; BatchNorm is folded. After writing, the
exported graph is run with onnxruntime on random images at several sizes (one not a
multiple of 32; see --parity-sizes) and compared with PyTorch; the file is only put in
place when the largest difference is within the tolerance.
`synthloc detect --model model.onnx` then runs it.

examples:
  synthloc export --format onnx --out model.onnx --model runs/exp/best_model.pt
  synthloc export --format onnx --out model.onnx           # the shipped default model
  synthloc export --out verifier.onnx --verifier runs/verifier/best_model.pt

With --verifier the second-stage verifier is exported instead: crops [N, 3, 32, 128] ->
[N, 9], checked against PyTorch at batch sizes 1, 7 and 64. `synthloc detect --model
model.onnx --verifier verifier.onnx` then runs both stages with onnxruntime.

(`synthloc train --out runs/exp` writes the model files best_model.pt and model.pt; best.pt
and last.pt there are training checkpoints for --resume, not model files.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PARITY_SIZES = ((512, 512), (384, 640), (736, 1280), (500, 700))


def _size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> ``(H, W)`` for --parity-sizes."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 384x640, got {text!r}")
    return int(parts[0]), int(parts[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format")
    parser.add_argument("--out", required=True, type=Path, help="output file, e.g. model.onnx")
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="model file from `synthloc train`, e.g. runs/exp/best_model.pt, or a shipped "
        "model's name, e.g. fcrn-lite-paper (default: the default shipped model)",
    )
    parser.add_argument(
        "--verifier",
        type=Path,
        default=None,
        metavar="PATH",
        help="export this verifier file (from `synthloc train-verifier`) instead of a detector",
    )
    parser.add_argument(
        "--opset", type=int, default=17, help="ONNX opset version, 11 to 20 (default 17)"
    )
    parser.add_argument(
        "--parity-sizes",
        type=_size,
        nargs="+",
        default=list(PARITY_SIZES),
        metavar="HxW",
        help="input sizes of the parity check (default: 512x512 384x640 736x1280 500x700)",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="largest allowed absolute difference from PyTorch (default 1e-4)",
    )


def run(args: argparse.Namespace) -> int:
    from synthloc.atomic import atomic_path
    from synthloc.commands.checks import out_file_problem
    from synthloc.detect import resolve_model
    from synthloc.detect.detector import stored_trained_box_pad
    from synthloc.export import (
        MAX_OPSET,
        MIN_OPSET,
        OnnxParityError,
        check_onnx_parity,
        export_onnx,
    )
    from synthloc.model import load_model_with_extra
    from synthloc.model.io import TRAINED_BOX_PAD_KEY

    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        print(
            f"error: --opset {args.opset} is not supported; use {MIN_OPSET} to {MAX_OPSET}",
            file=sys.stderr,
        )
        return 2
    problem = out_file_problem(args.out)
    if problem is not None:
        print(f"error: --out {problem}", file=sys.stderr)
        return 2
    if args.verifier is not None:
        return _export_verifier(args)
    try:
        model_path = resolve_model(args.model)[0]
        model, extra = load_model_with_extra(model_path)
        trained_box_pad = stored_trained_box_pad(extra.get(TRAINED_BOX_PAD_KEY), model_path)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    detect_defaults = extra.get("detect") if isinstance(extra.get("detect"), dict) else None
    multiscale = extra.get("detect_multiscale")
    multiscale = multiscale if isinstance(multiscale, dict) else None
    out: Path = args.out
    # Export and check a temporary file; only a checked graph replaces --out.
    try:
        with atomic_path(out, suffix=".onnx") as tmp:
            export_onnx(
                model,
                tmp,
                opset=args.opset,
                detect_defaults=detect_defaults,
                detect_multiscale=multiscale,
                trained_box_pad=trained_box_pad,
            )
            worst = check_onnx_parity(model, tmp, sizes=args.parity_sizes, atol=args.atol)
    except OnnxParityError as exc:
        print(f"error: parity check failed, {out} not written: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {out}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{h}x{w}" for h, w in args.parity_sizes)
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out} ({size_mb:.2f} MB, opset {args.opset}) from {model_path}")
    print(f"parity vs PyTorch: max abs diff {worst:.3g} at {sizes} (tolerance {args.atol:g})")
    return 0


def _export_verifier(args: argparse.Namespace) -> int:
    from synthloc.atomic import atomic_path
    from synthloc.export import OnnxParityError, check_verifier_parity, export_verifier_onnx
    from synthloc.verify.io import load_verifier_with_extra

    try:
        model, extra = load_verifier_with_extra(args.verifier)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hints = extra.get("verify") if isinstance(extra.get("verify"), dict) else None
    out: Path = args.out
    try:
        with atomic_path(out, suffix=".onnx") as tmp:
            export_verifier_onnx(model, tmp, opset=args.opset, verify_defaults=hints)
            worst = check_verifier_parity(model, tmp, atol=args.atol)
    except OnnxParityError as exc:
        print(f"error: parity check failed, {out} not written: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {out}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return 1
    print(f"wrote {out} (verifier, opset {args.opset}) from {args.verifier}")
    print(f"parity vs PyTorch: max abs diff {worst:.3g} (tolerance {args.atol:g})")
    return 0
