"""Synthetic engine throughput: images/s on one core at 512 px with the default config.

Usage: python benchmarks/synth_speed.py [--count 40] [--runs 3] [--backgrounds DIR]
       python benchmarks/synth_speed.py --workers 2 --dask local:2 [--count 48] [--shard-size 4]

With --workers and/or --dask it instead times whole ``synthesize`` runs (same seed and count,
one after the other, each into a fresh folder): local worker processes against a Dask cluster,
images/s over the whole call (process / cluster start-up included) and the Dask overhead
relative to the local run; it also checks that both wrote the same shard bytes.

Uses ../shared/data/backgrounds when present (else procedural defaults). Prints:
* cold: each image on a background not seen before (region analysis included);
* warm: backgrounds already analysed (cached), as in a long run that reuses backgrounds.
Fonts are warmed first (a one-off cost per process, reported separately). All stages,
Poisson blending included. Medians over ``--runs`` runs, both per wall-clock second and per
CPU second of this process (the latter is the per-core figure on a busy shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from synthloc.synth import (
    Background,
    SceneRenderer,
    SynthConfig,
    default_background,
    list_backgrounds,
    load_background,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "backgrounds"


def _backgrounds(folder: Path | None, count: int, size: int) -> list[Background]:
    if folder is not None and folder.is_dir():
        paths = list_backgrounds(folder)
        step = max(1, len(paths) // count)
        return [load_background(p, size) for p in paths[::step][:count]]
    return [default_background(np.random.default_rng(i), size) for i in range(count)]


def compare_executors(args: argparse.Namespace) -> None:
    """Time ``synthesize`` with local workers and with Dask; print one line each + overhead."""
    import hashlib
    import tempfile

    from synthloc.synth.runner import synthesize

    config = SynthConfig(size=args.size)
    backgrounds = args.backgrounds if args.backgrounds.is_dir() else None
    arms = []
    if args.workers:
        arms.append((f"--workers {args.workers}", {"workers": args.workers}))
    if args.dask:
        arms.append((f"--dask {args.dask}", {"dask": args.dask}))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, options in arms:
            out = Path(tmp) / label.replace(" ", "_").replace(":", "_")
            start = time.perf_counter()
            report = synthesize(
                out,
                count=args.count,
                seed=0,
                backgrounds=backgrounds,
                config=config,
                shard_size=args.shard_size,
                progress=False,
                **options,  # type: ignore[arg-type]
            )
            seconds = time.perf_counter() - start
            digest = hashlib.sha256(
                b"".join(p.read_bytes() for p in sorted(out.glob("shard-*.tar")))
            ).hexdigest()
            results[label] = (args.count / seconds, digest)
            print(
                f"{label}: {args.count} images in {seconds:.1f} s = "
                f"{args.count / seconds:.2f} images/s (failures {len(report.failures)})"
            )
    if len(results) == 2:
        (local, (local_rate, a)), (dask, (dask_rate, b)) = results.items()
        print(f"{dask} overhead vs {local}: {(local_rate / dask_rate - 1) * 100:+.1f}%")
        print(f"same shard bytes: {a == b}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--backgrounds", type=Path, default=SHARED)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--workers", type=int, default=0, help="time synthesize with N processes")
    parser.add_argument("--dask", default=None, help="time synthesize on this Dask cluster")
    parser.add_argument("--shard-size", type=int, default=4, help="shard size of those runs")
    args = parser.parse_args()
    if args.workers or args.dask:
        compare_executors(args)
        return
    cv2.setNumThreads(1)  # one core: the figure is per core
    config = SynthConfig(size=args.size)
    bgs = _backgrounds(args.backgrounds, args.count, args.size)
    source = "shared backgrounds" if args.backgrounds.is_dir() else "procedural defaults"
    print(f"{len(bgs)} backgrounds ({source}), size {args.size}, {args.runs} runs")

    t0 = time.perf_counter()
    renderer = SceneRenderer(config, cache_size=len(bgs) + 1)
    for path in renderer.fonts.paths:
        renderer.fonts.coverage(path)
    print(f"font warm-up: {len(renderer.fonts.paths)} fonts in {time.perf_counter() - t0:.2f} s")

    cold, warm, cold_cpu, warm_cpu, words = [], [], [], [], []
    for run in range(args.runs):
        renderer.cache = type(renderer.cache)(len(bgs) + 1)  # forget analyses: cold again
        start, start_cpu = time.perf_counter(), time.process_time()
        for i, bg in enumerate(bgs):
            s = renderer.render(bg, np.random.default_rng([run, i]))
            words.append(len(s.words))
        cold.append(len(bgs) / (time.perf_counter() - start))
        cold_cpu.append(len(bgs) / (time.process_time() - start_cpu))
        start, start_cpu = time.perf_counter(), time.process_time()
        for i, bg in enumerate(bgs):
            renderer.render(bg, np.random.default_rng([run, i, 1]))
        warm.append(len(bgs) / (time.perf_counter() - start))
        warm_cpu.append(len(bgs) / (time.process_time() - start_cpu))
    for label, wall, cpu in (("cold", cold, cold_cpu), ("warm", warm, warm_cpu)):
        print(
            f"{label}: {statistics.median(wall):.1f} images/s wall, "
            f"{statistics.median(cpu):.1f} images per CPU-second  (runs, wall: "
            + ", ".join(f"{v:.1f}" for v in wall)
            + ")"
        )
    print(
        f"words per image: mean {np.mean(words):.1f}, images with 0 words: "
        f"{np.mean(np.array(words) == 0) * 100:.0f}%"
    )
    if args.json is not None:
        figures = {
            "size": args.size,
            "backgrounds": source,
            "cold_images_per_s": statistics.median(cold),
            "warm_images_per_s": statistics.median(warm),
            "cold_images_per_cpu_s": statistics.median(cold_cpu),
            "warm_images_per_cpu_s": statistics.median(warm_cpu),
            "words_per_image": float(np.mean(words)),
            "runs": len(cold),
        }
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
