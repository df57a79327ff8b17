"""Render a synthetic dataset: parallel, reproducible, resumable.

:func:`synthesize` renders samples ``0 .. count-1`` of a seed and writes them in one of three
formats:

* ``shards`` (default): ``shard-NNNNNN.tar`` files + ``manifest.json`` (see
  :mod:`synthloc.data.shards`).
* ``icdar``: ``images/<name>.jpg`` and ``gt/gt_<name>.txt`` (ICDAR 2015 word quads; character
  boxes are not representable there) + ``manifest.json``.
* ``synthtext-h5``: ``SynthText.h5`` in the original engine's results layout
  (:mod:`synthloc.data.synthtext_h5`) + ``manifest.json``.

Reproducibility: sample ``i`` of seed ``s`` uses only
``rng = np.random.default_rng(np.random.SeedSequence([s, i]))``: the background is drawn from
the sorted background list with it (or the procedural default is generated from it), then the
scene is rendered with it. So a sample is byte-identical whatever the worker count or order.

Work is grouped into shards of ``shard_size`` consecutive samples, the unit of output and of
resuming. Worker processes render and encode; the parent writes each shard atomically once all
its samples are in, then records it in ``progress/``. Re-running the same command skips
complete shards; a manifest written with other settings (seed, count, config, format,
background list) is refused rather than mixed. When every shard is done the manifest is
marked complete and ``progress/`` is removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import shutil
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from synthloc import __version__
from synthloc.data.preview import encode_preview, write_bytes_atomic
from synthloc.data.sample import Sample
from synthloc.data.shards import (
    IMAGE_FORMATS,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    EncodedSample,
    ShardError,
    encode_sample,
    read_manifest,
    sample_key,
    shard_name,
    write_json_atomic,
    write_manifest,
    write_shard,
)
from synthloc.synth.backgrounds import (
    Background,
    BackgroundError,
    list_backgrounds,
    load_background,
)
from synthloc.synth.config import SynthConfig
from synthloc.synth.engine import SceneRenderer

logger = logging.getLogger(__name__)

FORMATS = ("shards", "icdar", "synthtext-h5")
# Bounded retries when the drawn background cannot be loaded; after that the sample falls back
# to the procedural default so that sample i always exists.
MAX_BACKGROUND_TRIES = 8
DEFAULT_BACKGROUND = "<default>"
PROGRESS_DIR = "progress"
H5_PARTS_DIR = "parts"
H5_NAME = "SynthText.h5"
MAX_RECORDED_ERRORS = 5
TASK_SAMPLES = 8


class SynthError(RuntimeError):
    """The run cannot start or continue (bad arguments, bad folder, manifest mismatch)."""


def sample_name(seed: int, index: int) -> str:
    """Name of sample ``index`` of ``seed``: ``"<seed>_<index, 8 digits>"``."""
    return f"{seed}_{index:08d}"


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The only source of randomness of sample ``index`` of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


# --------------------------------------------------------------------------- rendering


@dataclass
class RenderedSample:
    """One rendered sample plus what happened while making it.

    background: the file used (relative to the backgrounds folder) or ``"<default>"``.
    failed_backgrounds: ``(file, error)`` for every background that could not be loaded.
    error: set when the engine raised; the sample is then the bare background, no words.
    """

    sample: Sample
    background: str
    failed_backgrounds: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


def _pick_background(
    rng: np.random.Generator,
    backgrounds: Sequence[Path] | None,
    root: Path | None,
    size: int,
) -> tuple[Background, str, list[tuple[str, str]]]:
    from synthloc.synth import default_background

    failures: list[tuple[str, str]] = []
    if backgrounds:
        for _ in range(MAX_BACKGROUND_TRIES):
            path = backgrounds[int(rng.integers(len(backgrounds)))]
            label = path.relative_to(root).as_posix() if root is not None else str(path)
            try:
                return load_background(path, size), label, failures
            except BackgroundError as exc:
                failures.append((label, str(exc)))
    return default_background(rng, size), DEFAULT_BACKGROUND, failures


def render_sample(
    seed: int,
    index: int,
    config: SynthConfig,
    backgrounds: Sequence[Path] | None = None,
    root: Path | None = None,
    renderer: SceneRenderer | None = None,
) -> RenderedSample:
    """Render sample ``index`` of ``seed`` (deterministic; see the module docstring).

    backgrounds: sorted background files, or None for the procedural default; ``root`` is the
    folder they are reported relative to. renderer: a :class:`SceneRenderer` for ``config`` to
    reuse (caches only; the output does not depend on it). Unloadable backgrounds are skipped
    (recorded in the result); an engine exception is caught and recorded, and the sample is the
    background alone.
    """
    from synthloc.synth import render_scene

    rng = sample_rng(seed, index)
    background, label, failures = _pick_background(rng, backgrounds, root, config.size)
    name = sample_name(seed, index)
    try:
        sample = render_scene(background, config, rng, renderer)
        error = None
    except Exception as exc:  # counted and reported; one bad scene must not stop a long run
        error = f"sample {name} ({label}): {type(exc).__name__}: {exc}\n" + "".join(
            traceback.format_exception(exc)[-3:]
        )
        sample = Sample(image=background.image, word_quads=np.zeros((0, 4, 2)), words=[])
    sample.name = name
    return RenderedSample(sample, label, failures, error)


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs for one run (picklable; sent with every task)."""

    seed: int
    config: SynthConfig
    backgrounds: tuple[Path, ...] | None
    root: Path | None
    fmt: str
    image_format: str
    preview: int


@dataclass
class _Result:
    """What a worker sends back for one sample: encoded output and bookkeeping."""

    index: int
    encoded: EncodedSample | None  # shards and icdar
    sample: Sample | None  # synthtext-h5 (raw pixels)
    words: int
    failed_backgrounds: list[tuple[str, str]]
    fallback: bool
    error: str | None
    preview_png: bytes | None


def _render_one(job: _Job, index: int, renderer: SceneRenderer) -> _Result:
    rendered = render_sample(job.seed, index, job.config, job.backgrounds, job.root, renderer)
    sample = rendered.sample
    encoded = None
    if job.fmt in ("shards", "icdar"):
        encoded = encode_sample(
            sample,
            sample_key(index),
            job.image_format,
            seed=job.seed,
            index=index,
            background=rendered.background,
            failed_backgrounds=[label for label, _ in rendered.failed_backgrounds],
        )
    preview = encode_preview(sample) if index < job.preview else None
    return _Result(
        index=index,
        encoded=encoded,
        sample=sample if job.fmt == "synthtext-h5" else None,
        words=len(sample.words),
        failed_backgrounds=rendered.failed_backgrounds,
        fallback=bool(job.backgrounds) and rendered.background == DEFAULT_BACKGROUND,
        error=rendered.error,
        preview_png=preview,
    )


def _render_batch(job: _Job, indices: list[int]) -> list[_Result]:
    """A worker task: consecutive samples sharing one renderer (fonts, corpus, caches)."""
    from synthloc.synth import SceneRenderer

    renderer = SceneRenderer(job.config)
    return [_render_one(job, i, renderer) for i in indices]


def _init_worker() -> None:
    # Each worker is one process on one core: OpenCV's own thread pool would oversubscribe the
    # machine. This runs only inside the pool's worker processes, never in the caller.
    import cv2

    cv2.setNumThreads(1)


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class ShardStats:
    """Counts for one shard (stored in ``progress/`` and in the manifest)."""

    index: int
    first_sample: int
    samples: int
    file: str | None = None
    words: int = 0
    empty_images: int = 0
    failed_backgrounds: int = 0
    fallback_backgrounds: int = 0
    render_errors: int = 0
    bad_backgrounds: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardStats:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SynthReport:
    """Outcome of :func:`synthesize`. Counts cover the whole dataset (this run + resumed)."""

    out: Path
    format: str
    count: int
    rendered: int  # samples rendered by this call
    resumed: int  # samples found complete from an earlier run
    failed_backgrounds: int  # background loads that failed (each skipped with a warning)
    bad_backgrounds: dict[str, str]  # distinct unusable background files -> error
    fallback_backgrounds: int  # samples that fell back to the default after repeated failures
    empty_images: int  # samples where no text fitted
    words: int
    render_errors: int
    seconds: float

    @property
    def written(self) -> int:
        return self.rendered + self.resumed

    @property
    def images_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: written, failed backgrounds, empty images, words, images/s."""
        text = (
            f"written {self.written} ({self.rendered} rendered, {self.resumed} resumed), "
            f"failed backgrounds {self.failed_backgrounds} "
            f"({len(self.bad_backgrounds)} files), empty images {self.empty_images}, "
            f"words {self.words}, {self.images_per_second:.2f} images/s"
        )
        if self.render_errors:
            text += f", render errors {self.render_errors}"
        return text


def _shard_layout(count: int, shard_size: int) -> list[tuple[int, int]]:
    """(first sample, number of samples) of every shard."""
    return [(first, min(shard_size, count - first)) for first in range(0, count, shard_size)]


def _background_identity(root: Path | None, files: Sequence[Path]) -> dict[str, Any]:
    if root is None:
        return {"folder": None, "files": 0, "list_sha256": None}
    listing = "\n".join(p.relative_to(root).as_posix() for p in files)
    return {
        "folder": str(root),
        "files": len(files),
        "list_sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(),
    }


# Settings that decide the bytes of the output; a resumed run must match all of them.
_IDENTITY_KEYS = ("seed", "count", "format", "image_format", "shard_size", "config")


def _check_identity(manifest_path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    problems = [
        f"{key}: existing {old.get(key)!r}, requested {new[key]!r}"
        for key in _IDENTITY_KEYS
        if old.get(key) != new[key]
    ]
    if old.get("config") != new["config"] and isinstance(old.get("config"), dict):
        diff = sorted(
            k
            for k in set(old["config"]) | set(new["config"])
            if old["config"].get(k) != new["config"].get(k)
        )
        problems = [p for p in problems if not p.startswith("config:")]
        problems.append(f"config fields differ: {', '.join(diff)}")
    old_bg, new_bg = old.get("backgrounds") or {}, new["backgrounds"]
    if (old_bg.get("files"), old_bg.get("list_sha256")) != (
        new_bg["files"],
        new_bg["list_sha256"],
    ):
        problems.append(
            f"backgrounds: existing {old_bg.get('files')} files from {old_bg.get('folder')}, "
            f"requested {new_bg['files']} files from {new_bg['folder']}"
        )
    if problems:
        raise SynthError(
            f"{manifest_path}: this folder holds a different run ({'; '.join(problems)}); "
            "re-run with the same settings to resume, or choose another --out"
        )


class _Sink:
    """Where shards go, per output format."""

    def __init__(self, out: Path, fmt: str, image_format: str) -> None:
        self.out = out
        self.fmt = fmt
        self.image_format = image_format

    def shard_file(self, shard: int) -> str | None:
        if self.fmt == "shards":
            return shard_name(shard)
        if self.fmt == "synthtext-h5":
            return f"{H5_PARTS_DIR}/part-{shard:06d}.h5"
        return None

    def _icdar_paths(self, seed: int, index: int) -> tuple[Path, Path]:
        name = sample_name(seed, index)
        return (
            self.out / "images" / f"{name}.{self.image_format}",
            self.out / "gt" / f"gt_{name}.txt",
        )

    def has_output(self, stats: ShardStats, seed: int, final_h5_done: bool) -> bool:
        """Whether the files of a shard recorded as done are still on disk."""
        if self.fmt == "icdar":
            return all(
                p.exists()
                for i in range(stats.first_sample, stats.first_sample + stats.samples)
                for p in self._icdar_paths(seed, i)
            )
        if self.fmt == "synthtext-h5" and final_h5_done:
            return True
        name = self.shard_file(stats.index)
        return name is not None and (self.out / name).exists()

    def write(self, shard: int, seed: int, results: list[_Result]) -> None:
        if self.fmt == "shards":
            write_shard(self.out / shard_name(shard), [r.encoded for r in results if r.encoded])
        elif self.fmt == "icdar":
            from synthloc.data.icdar import write_icdar_gt

            for r in results:
                assert r.encoded is not None
                record = json.loads(r.encoded.json_bytes.decode("utf-8"))
                image_path, gt_path = self._icdar_paths(seed, r.index)
                write_bytes_atomic(image_path, r.encoded.image_bytes)
                quads = np.asarray(record["word_quads"], np.float32).reshape(-1, 4, 2)
                write_icdar_gt(gt_path, quads, record["words"])
        else:
            from synthloc.data.synthtext_h5 import write_synthtext_h5

            name = self.shard_file(shard)
            assert name is not None
            write_synthtext_h5(self.out / name, [r.sample for r in results if r.sample])

    def finish(self, shards: list[ShardStats]) -> None:
        """Format-specific last step once every shard is written."""
        if self.fmt != "synthtext-h5":
            return
        from synthloc.data.synthtext_h5 import read_synthtext_h5, write_synthtext_h5

        parts = [self.out / str(self.shard_file(s.index)) for s in shards]
        if parts and not all(p.exists() for p in parts):
            return  # already merged by an earlier run
        samples: Iterator[Sample] = (s for p in parts for s in read_synthtext_h5(p))
        write_synthtext_h5(self.out / H5_NAME, samples)
        shutil.rmtree(self.out / H5_PARTS_DIR, ignore_errors=True)


# --------------------------------------------------------------------------- the run


def _load_completed(
    out: Path,
    manifest: dict[str, Any] | None,
    layout: list[tuple[int, int]],
    sink: _Sink,
    seed: int,
) -> dict[int, ShardStats]:
    """Shards already done: in the old manifest or in ``progress/``, and still on disk."""
    final_h5_done = bool(manifest and manifest.get("complete")) and (out / H5_NAME).exists()
    recorded: dict[int, ShardStats] = {}
    for entry in (manifest or {}).get("shards", []):
        stats = ShardStats.from_dict(entry)
        recorded[stats.index] = stats
    progress = out / PROGRESS_DIR
    if progress.is_dir():
        for path in sorted(progress.glob("shard-*.json")):
            try:
                stats = ShardStats.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                logger.warning(
                    "%s: unreadable progress record, shard will be redone (%s)", path, exc
                )
                continue
            recorded[stats.index] = stats
    done = {}
    for index, stats in recorded.items():
        if index >= len(layout) or (stats.first_sample, stats.samples) != layout[index]:
            continue
        if sink.has_output(stats, seed, final_h5_done):
            done[index] = stats
    return done


def _totals(shards: list[ShardStats]) -> dict[str, Any]:
    bad: dict[str, str] = {}
    for s in shards:
        bad.update(s.bad_backgrounds)
    return {
        "written": sum(s.samples for s in shards),
        "failed_backgrounds": sum(s.failed_backgrounds for s in shards),
        "fallback_backgrounds": sum(s.fallback_backgrounds for s in shards),
        "empty_images": sum(s.empty_images for s in shards),
        "words": sum(s.words for s in shards),
        "render_errors": sum(s.render_errors for s in shards),
        "bad_backgrounds": dict(sorted(bad.items())),
    }


def _shard_stats(index: int, first: int, results: list[_Result], file: str | None) -> ShardStats:
    stats = ShardStats(index=index, first_sample=first, samples=len(results), file=file)
    for r in results:
        stats.words += r.words
        stats.empty_images += int(r.words == 0)
        stats.failed_backgrounds += len(r.failed_backgrounds)
        stats.fallback_backgrounds += int(r.fallback)
        for label, message in r.failed_backgrounds:
            stats.bad_backgrounds.setdefault(label, message)
        if r.error is not None:
            stats.render_errors += 1
            if len(stats.errors) < MAX_RECORDED_ERRORS:
                stats.errors.append(r.error)
    return stats


def _report_problems(result: _Result, warned: set[str]) -> None:
    """Log each unusable background once per run, and every engine error."""
    for label, message in result.failed_backgrounds:
        if label not in warned:
            warned.add(label)
            logger.warning("skipped background: %s", message)
    if result.error is not None:
        logger.warning("render error, image kept without text: %s", result.error)


def _finish_shard(
    out: Path, sink: _Sink, seed: int, shard: int, first: int, ordered: list[_Result]
) -> ShardStats:
    """Write a shard's output, then its progress record (the proof that it is complete)."""
    sink.write(shard, seed, ordered)
    stats = _shard_stats(shard, first, ordered, sink.shard_file(shard))
    write_json_atomic(out / PROGRESS_DIR / f"shard-{shard:06d}.json", dataclasses.asdict(stats))
    return stats


def _iter_results(job: _Job, batches: list[list[int]], workers: int) -> Iterator[list[_Result]]:
    if workers <= 1 or len(batches) <= 1:
        from synthloc.synth import SceneRenderer

        renderer = SceneRenderer(job.config)
        for batch in batches:
            yield [_render_one(job, i, renderer) for i in batch]
        return
    # spawn: safe with threads already running in the parent (OpenCV, torch) on every platform.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(batches)), initializer=_init_worker) as pool:
        yield from pool.imap_unordered(partial(_render_batch, job), batches, chunksize=1)


def _check_arguments(
    count: int, seed: int, workers: int, fmt: str, preview: int, shard_size: int, image_format: str
) -> None:
    if fmt not in FORMATS:
        raise SynthError(f"format must be one of {FORMATS}, got {fmt!r}")
    if image_format not in IMAGE_FORMATS:
        raise SynthError(f"image format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if count < 0 or seed < 0 or workers < 1 or shard_size < 1 or preview < 0:
        raise SynthError(
            "need count >= 0, seed >= 0, workers >= 1, shard_size >= 1 and preview >= 0 "
            f"(got count={count}, seed={seed}, workers={workers}, shard_size={shard_size}, "
            f"preview={preview})"
        )


def _list_backgrounds(backgrounds: Path | None) -> tuple[Path | None, list[Path]]:
    """(resolved folder, sorted files), or (None, []) for the procedural default."""
    if backgrounds is None:
        return None, []
    root = Path(backgrounds).resolve()
    try:
        files = list_backgrounds(root)
    except BackgroundError as exc:
        raise SynthError(f"backgrounds: {exc}") from exc
    if not files:
        raise SynthError(f"{root}: no background images (jpg, png, webp, bmp) in this folder")
    return root, files


def _open_output(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """Create ``out`` or check that it holds the same run; returns the old manifest if any."""
    manifest_path = out / MANIFEST_NAME
    old_manifest: dict[str, Any] | None = None
    if manifest_path.exists():
        try:
            old_manifest = read_manifest(out)
        except ShardError as exc:
            raise SynthError(str(exc)) from exc
        _check_identity(manifest_path, old_manifest, identity)
    elif out.exists() and any(out.iterdir()):
        raise SynthError(
            f"{out}: folder is not empty and has no {MANIFEST_NAME}; choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    return old_manifest


def synthesize(
    out: Path,
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
) -> SynthReport:
    """Render samples ``0 .. count-1`` of ``seed`` into ``out`` (resumable; see module doc).

    backgrounds: a folder of photos (searched recursively) or None for the procedural default.
    workers: processes (1 renders in this process). fmt: ``shards``, ``icdar`` or
    ``synthtext-h5``. preview: how many of the first samples also get ``preview/<name>.png``
    with word (green) and character (red) quads drawn. image_format: ``jpg`` (quality 95) or
    ``png`` for shards and icdar images. Raises :class:`SynthError` for bad arguments, an empty
    or missing backgrounds folder, or an ``out`` folder holding a different run.

    With ``workers > 1`` the pool uses the ``spawn`` start method, so a script calling this
    must guard its entry point with ``if __name__ == "__main__":``.
    """
    config = config if config is not None else SynthConfig()
    out = Path(out)
    _check_arguments(count, seed, workers, fmt, preview, shard_size, image_format)
    root, files = _list_backgrounds(backgrounds)
    identity: dict[str, Any] = {
        "seed": seed,
        "count": count,
        "format": fmt,
        "image_format": image_format,
        "shard_size": shard_size,
        "config": json.loads(json.dumps(dataclasses.asdict(config))),
        "backgrounds": _background_identity(root, files),
    }
    old_manifest = _open_output(out, identity)

    layout = _shard_layout(count, shard_size)
    sink = _Sink(out, fmt, image_format)
    done = _load_completed(out, old_manifest, layout, sink, seed)

    def manifest(complete: bool) -> dict[str, Any]:
        shards = [done[k] for k in sorted(done)]
        return {
            "schema_version": SCHEMA_VERSION,
            "synthloc_version": __version__,
            **identity,
            "complete": complete,
            "counts": _totals(shards),
            "shards": [dataclasses.asdict(s) for s in shards],
        }

    write_manifest(out, manifest(complete=False))
    job = _Job(
        seed=seed,
        config=config,
        backgrounds=tuple(files) if root is not None else None,
        root=root,
        fmt=fmt,
        image_format=image_format,
        preview=preview,
    )
    todo = [k for k in range(len(layout)) if k not in done]
    indices = [i for k in todo for i in range(layout[k][0], layout[k][0] + layout[k][1])]
    # Tasks of a few samples: enough to amortise a worker's renderer set-up, small enough for
    # a lively progress bar and balanced workers. They never straddle a shard.
    batches = [
        list(range(start, min(start + TASK_SAMPLES, first + n)))
        for k in todo
        for first, n in [layout[k]]
        for start in range(first, first + n, TASK_SAMPLES)
    ]
    resumed = count - len(indices)
    warned: set[str] = set()
    pending: dict[int, dict[int, _Result]] = {}
    render_start = time.perf_counter()

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with (
        tqdm(total=count, initial=resumed, disable=not progress, unit="img", desc="synth") as bar,
        logging_redirect_tqdm(),
    ):
        for batch_results in _iter_results(job, batches, workers):
            bar.update(len(batch_results))
            for result in batch_results:
                _report_problems(result, warned)
                if result.preview_png is not None:
                    path = out / "preview" / f"{sample_name(seed, result.index)}.png"
                    write_bytes_atomic(path, result.preview_png)
                shard = result.index // shard_size
                bucket = pending.setdefault(shard, {})
                bucket[result.index] = result
                if len(bucket) == layout[shard][1]:
                    ordered = [bucket[i] for i in sorted(bucket)]
                    del pending[shard]
                    done[shard] = _finish_shard(out, sink, seed, shard, layout[shard][0], ordered)
    render_seconds = time.perf_counter() - render_start

    _write_missing_previews(out, job, min(preview, count))
    sink.finish([done[k] for k in sorted(done)])
    write_manifest(out, manifest(complete=True))
    shutil.rmtree(out / PROGRESS_DIR, ignore_errors=True)

    totals = _totals([done[k] for k in sorted(done)])
    return SynthReport(
        out=out,
        format=fmt,
        count=count,
        rendered=len(indices),
        resumed=resumed,
        failed_backgrounds=totals["failed_backgrounds"],
        bad_backgrounds=totals["bad_backgrounds"],
        fallback_backgrounds=totals["fallback_backgrounds"],
        empty_images=totals["empty_images"],
        words=totals["words"],
        render_errors=totals["render_errors"],
        seconds=render_seconds,
    )


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files left by a killed run (``.<name>.<random>.tmp``): never complete data."""
    for folder in (
        out,
        out / H5_PARTS_DIR,
        out / PROGRESS_DIR,
        out / "images",
        out / "gt",
        out / "preview",
    ):
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)


def _write_missing_previews(out: Path, job: _Job, preview: int) -> None:
    """Previews of resumed shards were not produced this run: re-render those few samples."""
    for index in range(preview):
        path = out / "preview" / f"{sample_name(job.seed, index)}.png"
        if not path.exists():
            rendered = render_sample(job.seed, index, job.config, job.backgrounds, job.root)
            write_bytes_atomic(path, encode_preview(rendered.sample))


__all__ = [
    "FORMATS",
    "RenderedSample",
    "ShardStats",
    "SynthError",
    "SynthReport",
    "render_sample",
    "sample_name",
    "sample_rng",
    "synthesize",
]
