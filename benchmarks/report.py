"""Run the benchmarks and write the README's results table from what they measured.

Usage: python benchmarks/report.py [--model M] [--readme [--no-baseline]] [--quick]

Runs, each in its own process (so thread settings and caches do not leak between them):
  accuracy.py      ic15 P/R/F on a held-out synthetic set and on ICDAR 2015 dev (single + multi)
  detect_speed.py  end-to-end images/s on 1280x720 photos, torch and onnxruntime, 2 threads, and
                   the ratio against RapidOCR's text detector when rapidocr_onnxruntime is installed
  synth_speed.py   engine images/s per core at 512 px, default config
  train_speed.py   training images/s at 384x384, 2 threads: fcrn-lite (batch 16) and
                   fcrn-dense at stride 4 and 8 (batch 8)
  compare.py       the default shipped model, the paper's configuration and RapidOCR's text
                   detector on the same ICDAR 2015 dev photos, 2 threads: P/R/F, images/s and
                   the ratio vs RapidOCR (a second table; results.json files from before this
                   step have no "compare" key and give the first table alone)

Writes benchmarks/results.json and benchmarks/results.md; with --readme, also replaces the part
of README.md between the results markers. No figure in the table is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from compare import describe_scales
from compare import markdown_table as compare_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
START, END = "<!-- results:start -->", "<!-- results:end -->"


def run_json(script: str, args: list[str]) -> dict[str, Any]:
    """Run ``benchmarks/<script> ... --json FILE`` and return what it wrote."""
    with tempfile.TemporaryDirectory(prefix="synthloc-report-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, str(HERE / script), *args, "--json", str(out)]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
        return dict(json.loads(out.read_text()))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(results: dict[str, Any]) -> str:
    """The markdown results table (plus the conditions it was measured under)."""
    acc = results["accuracy"]
    # Results from before accuracy.py recorded its synthetic engine say nothing about it.
    engine = {"photo": " (current engine at photo scale)", "paper": " (paper engine)"}.get(
        acc.get("synthetic_engine", ""), ""
    )
    lines = [
        "| measure | value |",
        "|---|---|",
    ]
    for key, label in (
        ("synthetic/single", f"F, synthetic test set{engine}, single scale"),
        ("synthetic/multi", f"F, synthetic test set{engine}, multi-scale"),
        ("icdar2015_dev/single", "F, ICDAR 2015 dev (100 photos), single scale"),
        ("icdar2015_dev/multi", "F, ICDAR 2015 dev (100 photos), multi-scale"),
    ):
        if key in acc:
            row = acc[key]
            setting = f"{describe_scales(row['scales'])}, threshold {row['threshold']:g}"
            if "min_size" in row:
                setting += f", min size {row['min_size']:g}"
            if row.get("box_pad"):
                setting += f", box pad {row['box_pad']:g}"
            if row.get("verifier"):
                setting += f", verifier p >= {row['verify_threshold']:g}"
            lines.append(
                f"| {label} ({setting}) | F {_fmt(row['hmean'])} "
                f"(P {_fmt(row['precision'])}, R {_fmt(row['recall'])}) |"
            )
    det = results["detect_speed"]
    found = det["results"]
    for backend in ("torch", "onnxruntime"):
        row = found.get(f"synthloc/{backend}")
        if row is not None:
            ratio = row.get("ratio_vs_rapidocr")
            vs = "" if ratio is None else f" ({ratio:.1f}x RapidOCR)"
            scales = describe_scales(det["scales"])
            lines.append(
                f"| detect, {det['images']} 1280x720 photos, {scales}, {backend}, "
                f"{det['threads']} threads | {_fmt(row['images_per_s'], 2)} images/s{vs} |"
            )
    if "rapidocr-det" in found:
        lines.append(
            f"| RapidOCR text detector (PP-OCR DBNet), same images and threads | "
            f"{_fmt(found['rapidocr-det']['images_per_s'], 2)} images/s |"
        )
    syn = results["synth_speed"]
    lines.append(
        f"| synthesis, {syn['size']} px, default config, per core | "
        f"{_fmt(syn['cold_images_per_cpu_s'], 1)} images/s (backgrounds cached: "
        f"{_fmt(syn['warm_images_per_cpu_s'], 1)}) |"
    )
    tr = results["train_speed"]
    # Older results hold only fcrn-lite's figures (batch 16), at the top level.
    arms = tr.get("arms", {"fcrn-lite": {"batch_size": 16, **tr}})
    size, threads = tr.get("size", 384), tr.get("threads", 2)
    for arm, figures in arms.items():
        for source in ("shards", "synth"):
            if source in figures:
                lines.append(
                    f"| training, {arm}, {size}x{size}, batch {figures['batch_size']}, "
                    f"{threads} threads, from {source} | "
                    f"{_fmt(figures[source]['images_per_s'], 1)} images/s |"
                )
    meta = results["meta"]
    comparison = results.get("compare")
    if comparison is not None:
        lines.append("")
        lines.append(
            compare_table(
                comparison["results"],
                f"detector, ICDAR 2015 dev ({comparison['images']} photos, "
                f"{comparison['threads']} threads)",
            )
        )
        if not comparison.get("rapidocr", True):
            lines.append("")
            lines.append("RapidOCR was not installed for this run: no RapidOCR row or ratio.")
    lines.append("")
    lines.append(
        f"Measured by `python benchmarks/report.py` on {meta['date']} ({meta['machine']}, "
        f"{meta['cpus']} CPUs); model: {meta['model']}. Speeds are medians of repeated runs."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: shipped)")
    parser.add_argument("--readme", action="store_true", help="update README.md's table")
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="allow --readme without RapidOCR installed (the table then has no speed ratio)",
    )
    args = parser.parse_args()
    if args.readme and not args.no_baseline and find_spec("rapidocr_onnxruntime") is None:
        parser.error(
            "--readme: rapidocr_onnxruntime is not installed, so the README table would lack "
            "the speed ratio; run `make bench` (installs it), or pass --no-baseline"
        )

    model_args = [] if args.model is None else ["--model", str(args.model)]
    # compare.py's first synthloc row is the model under report; the second the paper's.
    compare_models = (
        []
        if args.model is None
        else [
            "--models",
            f"synthloc {args.model.name}={args.model}",
            "synthloc paper=fcrn-lite-paper",
        ]
    )
    quick = args.quick
    results: dict[str, Any] = {
        "accuracy": run_json(
            "accuracy.py",
            [*model_args, "--engine", "photo", "--synthetic-count", "40" if quick else "200"],
        ),
        "detect_speed": run_json(
            "detect_speed.py", [*model_args, "--count", "10" if quick else "20"]
        ),
        "synth_speed": run_json("synth_speed.py", ["--count", "20" if quick else "40"]),
        "train_speed": run_json(
            "train_speed.py", ["--steps", "3", "--repeats", "1"] if quick else ["--repeats", "3"]
        ),
        "compare": run_json(
            "compare.py",
            [*compare_models, *(["--count", "20", "--repeats", "1"] if quick else [])],
        ),
    }
    results["meta"] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "cpus": os.cpu_count(),
        "model": str(args.model) if args.model else "the shipped default model",
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    markdown = table(results)
    (HERE / "results.md").write_text(markdown + "\n")
    print(markdown)
    if args.readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        readme.write_text(f"{head}{START}\n{markdown}\n{END}{tail}")
        print(f"updated {readme}")


if __name__ == "__main__":
    main()
