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
    """Time ``synthesize`` with local workers and with Dask (alternating, ``--runs`` rounds).

    Per run: creating the executor (a Dask cluster starts its workers there; local processes
    start lazily, inside the rendering time) and the run are timed apart; images/s is over
    both (end to end, the fair figure) and over the run alone. The overhead compares medians.
    """
    import hashlib
    import tempfile

    from synthloc.synth.runner import make_executor, synthesize

    config = SynthConfig(size=args.size, paper=args.paper)
    backgrounds = args.backgrounds if args.backgrounds.is_dir() else None
    arms = []
    if args.workers:
        arms.append((f"--workers {args.workers}", args.workers, None))
    if args.dask:
        arms.append((f"--dask {args.dask}", 1, args.dask))
    rates: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in arms}
    digests = set()
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for label, workers, dask in arms:
                out = Path(tmp) / f"{run}_{label.replace(' ', '_').replace(':', '_')}"
                start = time.perf_counter()
                executor = make_executor(workers, dask)
                started = time.perf_counter()
                report = synthesize(
                    out,
                    count=args.count,
                    seed=0,
                    backgrounds=backgrounds,
                    config=config,
                    shard_size=args.shard_size,
                    progress=False,
                    executor=executor,
                )
                end = time.perf_counter()
                digests.add(
                    hashlib.sha256(
                        b"".join(p.read_bytes() for p in sorted(out.glob("shard-*.tar")))
                    ).hexdigest()
                )
                rates[label].append((args.count / (end - start), args.count / (end - started)))
                print(
                    f"run {run} {label}: start-up {started - start:.1f} s, {args.count} images "
                    f"in {end - started:.1f} s; {args.count / (end - start):.2f} images/s end "
                    f"to end, {args.count / (end - started):.2f} rendering "
                    f"(failures {len(report.failures)})"
                )
    medians = {
        k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
        for k, v in rates.items()
    }
    for label, (whole, rendering) in medians.items():
        print(f"{label}: median {whole:.2f} images/s end to end, {rendering:.2f} rendering")
    if len(medians) == 2:
        (local, (lw, lr)), (dask, (dw, dr)) = medians.items()
        print(
            f"{dask} overhead vs {local}: {(lw / dw - 1) * 100:+.1f}% end to end, "
            f"{(lr / dr - 1) * 100:+.1f}% rendering"
        )
    print(f"same shard bytes in every run: {len(digests) == 1}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--backgrounds", type=Path, default=SHARED)
    parser.add_argument("--paper", action="store_true", help="the engine's paper configuration")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--workers", type=int, default=0, help="time synthesize with N processes")
    parser.add_argument("--dask", default=None, help="time synthesize on this Dask cluster")
    parser.add_argument("--shard-size", type=int, default=4, help="shard size of those runs")
    args = parser.parse_args()
    if args.workers or args.dask:
        compare_executors(args)
        return
    cv2.setNumThreads(1)  # one core: the figure is per core
    config = SynthConfig(size=args.size, paper=args.paper)
    bgs = _backgrounds(args.backgrounds, args.count, args.size)
    source = "shared backgrounds" if args.backgrounds.is_dir() else "procedural defaults"
    engine = "paper configuration" if args.paper else "default configuration"
    print(f"{len(bgs)} backgrounds ({source}), size {args.size}, {args.runs} runs, {engine}")

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
            "paper": args.paper,
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
