"""Render a synthetic dataset: parallel, reproducible, resumable.

:func:`synthesize` renders samples ``0 .. count-1`` of a seed and writes them in one of three
formats:

* ``shards`` (default): ``shard-NNNNNN.tar`` files + ``manifest.json`` (see
  :mod:`synthloc.data.shards`). The output folder may be an fsspec URL (``s3://...``).
* ``icdar``: ``images/<name>.jpg`` and ``gt/gt_<name>.txt`` (ICDAR 2015 word quads; character
  boxes are not representable there) + ``manifest.json``.
* ``synthtext-h5``: ``SynthText.h5`` in the original engine's results layout
  (:mod:`synthloc.data.synthtext_h5`) + ``manifest.json``.

The stages live in modules of their own: backgrounds in :mod:`~synthloc.synth.sourcing`,
rendering a sample or a shard in :mod:`~synthloc.synth.jobs`, where shards go in
:mod:`~synthloc.synth.sinks`, the manifest and resume log in :mod:`~synthloc.synth.manifest`,
and scheduling behind one seam in :mod:`~synthloc.synth.executors` (local processes) and
:mod:`~synthloc.synth.dask_executor` (a Dask cluster). This module only wires them.

Work is grouped into shards of ``shard_size`` consecutive samples: the unit of scheduling, of
output and of resuming. Every sample depends on (seed, index) alone, so the output is
byte-identical whatever executor, worker count or order. A task renders and writes its shard;
the parent records it in ``progress/``. Re-running the same command skips shards whose file
still matches its recorded size and checksum; a folder holding a run with other settings (seed,
count, config, format, background list) is refused rather than mixed. A shard whose task fails
(an exception, or its worker process dies) is tried up to ``attempts`` times, then reported by
name in the manifest's ``failures``. ``manifest.json`` is written once, atomically, at the end;
``progress/`` is removed when the dataset is complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Generator
from functools import partial
from pathlib import Path
from typing import Any

from synthloc import __version__
from synthloc.data.preview import encode_preview
from synthloc.data.shards import IMAGE_FORMATS, MANIFEST_NAME, SCHEMA_VERSION, ShardError
from synthloc.data.shards import read_manifest as _read_manifest
from synthloc.data.store import Store, StoreError
from synthloc.synth.config import SynthConfig
from synthloc.synth.errors import SynthError, printable
from synthloc.synth.executors import Executor, InProcessExecutor, ProcessExecutor
from synthloc.synth.jobs import (
    RenderedSample,
    ShardJob,
    ShardTask,
    make_shard,
    render_sample,
    sample_rng,
)
from synthloc.synth.manifest import (
    PROGRESS_DIR,
    RUN_RECORD,
    ShardFailure,
    ShardStats,
    SynthReport,
    background_identity,
    build_manifest,
    check_identity,
    progress_name,
    read_progress,
    sample_name,
    shard_layout,
    totals,
    write_json,
)
from synthloc.synth.sinks import FORMATS, H5_PARTS_DIR, Sink, make_sink
from synthloc.synth.sourcing import (
    BackgroundLoader,
    BackgroundSource,
    background_source,
    pick_background,
)

logger = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 3
# Output sizes the engine is meant for; larger images take minutes each and gigabytes.
MAX_SIZE = 4096


def _check_arguments(
    count: int,
    seed: int,
    workers: int,
    fmt: str,
    preview: int,
    shard_size: int,
    image_format: str,
    attempts: int,
) -> None:
    if fmt not in FORMATS:
        raise SynthError(f"format must be one of {FORMATS}, got {fmt!r}")
    if image_format not in IMAGE_FORMATS:
        raise SynthError(f"image format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if count < 0 or seed < 0 or workers < 1 or shard_size < 1 or preview < 0 or attempts < 1:
        raise SynthError(
            "need count >= 0, seed >= 0, workers >= 1, shard_size >= 1, preview >= 0 and "
            f"attempts >= 1 (got count={count}, seed={seed}, workers={workers}, "
            f"shard_size={shard_size}, preview={preview}, attempts={attempts})"
        )


def check_config(config: SynthConfig) -> None:
    """Refuse settings that cannot render before any work starts (:class:`SynthError`).

    The image size must be 64 .. :data:`MAX_SIZE`; the corpus must hold words (an empty
    folder or file, or a binary file, would otherwise give empty images and one error per
    sample).
    """
    from synthloc.synth.text_source import TextSource

    if not 64 <= config.size <= MAX_SIZE:
        raise SynthError(f"size {config.size} is out of range (64 .. {MAX_SIZE} pixels)")
    try:
        TextSource(config.corpus)
    except ValueError as exc:
        raise SynthError(f"corpus: {printable(str(exc))}") from exc


def _open_store(out: str | os.PathLike[str], fmt: str) -> Store:
    try:
        store = Store(out)
    except StoreError as exc:
        raise SynthError(str(exc)) from exc
    if store.local is not None and store.local.exists() and not store.local.is_dir():
        raise SynthError(f"{store.local}: exists and is not a folder; choose another --out")
    if fmt != "shards" and store.local is None:
        raise SynthError(f"{store.path()}: --format {fmt} needs a local output folder")
    return store


def _open_output(
    store: Store, identity: dict[str, Any], sink: Sink, layout: list[tuple[int, int]]
) -> dict[int, ShardStats]:
    """Create the folder or check that it holds the same run; returns the intact shards.

    Shards are taken from the old manifest and from ``progress/``; each must still match its
    record (:meth:`Sink.verify`), else it is rendered again.
    """
    old_manifest: dict[str, Any] | None = None
    recorded: dict[int, ShardStats] = {}
    if store.exists(MANIFEST_NAME):
        try:
            old_manifest = _read_manifest(store)
        except ShardError as exc:
            raise SynthError(str(exc)) from exc
        check_identity(store.path(MANIFEST_NAME), old_manifest, identity)
        for entry in old_manifest.get("shards", []):
            stats = ShardStats.from_dict(entry)
            recorded[stats.index] = stats
    run_record, progress = read_progress(store)
    if run_record is not None:
        check_identity(store.path(RUN_RECORD), run_record, identity)
    elif old_manifest is None and store.is_dir() and _has_entries(store):
        raise SynthError(
            f"{store.path()}: folder is not empty and has no {MANIFEST_NAME}; choose another --out"
        )
    recorded.update(progress)
    store.makedirs()
    _remove_stale_temporaries(store)
    if run_record is None:
        write_json(store, RUN_RECORD, identity)
    done = {}
    for index, stats in recorded.items():
        if index >= len(layout) or (stats.first_sample, stats.samples) != layout[index]:
            continue
        problem = sink.verify(stats)
        if problem is None:
            done[index] = stats
        else:
            name = stats.file or f"shard {index}"
            logger.warning("%s: %s; rendering it again", store.path(name), problem)
    return done


def _has_entries(store: Store) -> bool:
    if store.local is not None:
        return any(store.local.iterdir())
    return bool(store.list()) or bool(store.list(PROGRESS_DIR))


def _remove_stale_temporaries(store: Store) -> None:
    """Temporary files left by a killed run (``.<name>.<random>.tmp``): never complete data."""
    if store.local is None:
        return  # object stores write whole objects: nothing partial is left behind
    out = store.local
    folders = ("", H5_PARTS_DIR, PROGRESS_DIR, "images", "gt", "preview")
    for folder in (out / name for name in folders):
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)


def _report_problems(stats: ShardStats, warned: set[str]) -> None:
    """Log each unusable background or map once per run, and the engine errors."""
    for label, message in stats.bad_backgrounds.items():
        if label not in warned:
            warned.add(label)
            logger.warning("skipped background: %s", message)
    for label, message in stats.bad_maps.items():
        if label not in warned:
            warned.add(label)
            logger.warning("background used without its map: %s", message)
    for error in stats.errors:
        logger.warning("render error, image kept without text: %s", error)


def make_executor(workers: int, dask: str | None, attempts: int = DEFAULT_ATTEMPTS) -> Executor:
    """``--dask ADDRESS|local:N`` if given, else ``workers`` local processes (1: in-process)."""
    if dask is not None:
        from synthloc.synth.dask_executor import DaskExecutor

        return DaskExecutor(dask, attempts)
    return InProcessExecutor() if workers <= 1 else ProcessExecutor(workers)


def synthesize(
    out: str | os.PathLike[str],
    count: int,
    seed: int,
    backgrounds: Path | None = None,
    workers: int = 1,
    fmt: str = "shards",
    preview: int = 0,
    config: SynthConfig | None = None,
    shard_size: int = 100,
    progress: bool = True,
    image_format: str = "jpg",
    depth: Path | None = None,
    seg: Path | None = None,
    dask: str | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    executor: Executor | None = None,
) -> SynthReport:
    """Render samples ``0 .. count-1`` of ``seed`` into ``out`` (resumable; see module doc).

    out: a folder, or an fsspec URL (``shards`` format; needs ``synthloc[cluster]``).
    backgrounds: a folder of photos (searched recursively), a SynthText ``dset.h5`` file, or
    None for the procedural default. depth, seg: folders of maps paired with the photos by
    relative path without extension (see :mod:`synthloc.synth.sourcing`); folder backgrounds
    only. workers: local processes (1 renders in this process). dask: a Dask scheduler address
    or ``local:N`` (a LocalCluster of N processes) instead of local workers. executor: any
    :class:`~synthloc.synth.executors.Executor` instead of both (it is closed at the end).
    attempts: tries per shard before it is reported as failed. fmt: ``shards``, ``icdar`` or
    ``synthtext-h5``. preview: how many of the first samples also get ``preview/<name>.png``
    with word (green) and character (red) quads drawn. image_format: ``jpg`` (quality 95) or
    ``png`` for shards and icdar images.

    Raises :class:`SynthError` for bad arguments, an unusable corpus, an empty, missing or
    unreadable backgrounds folder or dset.h5, a bad map folder, or an ``out`` folder holding a
    different run (or a file). Shards that failed every try are in ``report.failures`` and in
    the manifest; the rest of the dataset is complete.

    With local worker processes the ``spawn`` start method is used, so a script calling this
    must guard its entry point with ``if __name__ == "__main__":``.
    """
    config = config if config is not None else SynthConfig()
    _check_arguments(count, seed, workers, fmt, preview, shard_size, image_format, attempts)
    check_config(config)
    store = _open_store(out, fmt)
    source = background_source(backgrounds, depth, seg, config.skip_text_backgrounds)
    identity: dict[str, Any] = {
        "seed": seed,
        "count": count,
        "format": fmt,
        "image_format": image_format,
        "shard_size": shard_size,
        "config": json.loads(json.dumps(dataclasses.asdict(config))),
        "backgrounds": background_identity(source),
    }
    sink = make_sink(store, fmt, image_format, seed)
    layout = shard_layout(count, shard_size)
    done = _open_output(store, identity, sink, layout)

    job = ShardJob(
        seed=seed,
        config=config,
        backgrounds=source,
        fmt=fmt,
        image_format=image_format,
        preview=preview,
        out=store.location,
    )
    tasks = [ShardTask(k, *layout[k]) for k in range(len(layout)) if k not in done]
    resumed = count - sum(t.samples for t in tasks)
    failures: list[ShardFailure] = []
    warned: set[str] = set()
    render_start = time.perf_counter()

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    active = (
        executor
        if executor is not None
        else make_executor(workers, dask, attempts)
        if tasks
        else None
    )
    with (
        tqdm(total=count, initial=resumed, disable=not progress, unit="img", desc="synth") as bar,
        logging_redirect_tqdm(),
    ):
        outcomes = iter(active.run(partial(make_shard, job), tasks, attempts) if active else [])
        try:
            for outcome in outcomes:
                task = outcome.task
                if outcome.result is not None:
                    stats = outcome.result
                    write_json(store, progress_name(task.index), dataclasses.asdict(stats))
                    done[task.index] = stats
                    _report_problems(stats, warned)
                    bar.update(task.samples)
                    continue
                failure = ShardFailure(
                    index=task.index,
                    file=sink.shard_file(task.index),
                    first_sample=task.first,
                    samples=task.samples,
                    attempts=outcome.attempts,
                    error=str(outcome.error),
                )
                failures.append(failure)
                logger.error(
                    "shard %d (%s) failed after %d attempts: %s",
                    task.index,
                    failure.file or f"samples {task.first}..{task.first + task.samples - 1}",
                    failure.attempts,
                    failure.error,
                )
        finally:
            # Stop the scheduling first (it cancels what is still running), then the executor.
            if isinstance(outcomes, Generator):
                outcomes.close()
            if active is not None:
                active.close()
    render_seconds = time.perf_counter() - render_start

    shards = [done[k] for k in sorted(done)]
    _write_missing_previews(store, job, min(preview, count))
    if not failures:
        sink.finish(shards)
    manifest = build_manifest(
        identity, shards, sorted(failures, key=lambda f: f.index), SCHEMA_VERSION, __version__
    )
    write_json(store, MANIFEST_NAME, manifest)
    if manifest["complete"]:
        store.remove_tree(PROGRESS_DIR)

    counts = totals(shards)
    return SynthReport(
        out=store.path(),
        format=fmt,
        count=count,
        rendered=sum(t.samples for t in tasks) - sum(f.samples for f in failures),
        resumed=resumed,
        failed_backgrounds=counts["failed_backgrounds"],
        bad_backgrounds=counts["bad_backgrounds"],
        fallback_backgrounds=counts["fallback_backgrounds"],
        empty_images=counts["empty_images"],
        words=counts["words"],
        render_errors=counts["render_errors"],
        seconds=render_seconds,
        with_depth=counts["with_depth"],
        with_seg=counts["with_seg"],
        failed_maps=counts["failed_maps"],
        bad_maps=counts["bad_maps"],
        failures=sorted(failures, key=lambda f: f.index),
    )


def _write_missing_previews(store: Store, job: ShardJob, preview: int) -> None:
    """Previews of resumed shards were not produced this run: re-render those few samples."""
    for index in range(preview):
        name = f"preview/{sample_name(job.seed, index)}.png"
        if not store.exists(name):
            rendered = render_sample(job.seed, index, job.config, job.backgrounds)
            store.write_bytes(name, encode_preview(rendered.sample))


__all__ = [
    "FORMATS",
    "BackgroundLoader",
    "BackgroundSource",
    "RenderedSample",
    "ShardFailure",
    "ShardStats",
    "SynthError",
    "SynthReport",
    "background_source",
    "check_config",
    "make_executor",
    "pick_background",
    "render_sample",
    "sample_name",
    "sample_rng",
    "synthesize",
]
