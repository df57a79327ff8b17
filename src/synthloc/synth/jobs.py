"""Rendering jobs: sample ``i`` of a seed, and a whole shard as one task for an executor.

Reproducibility: sample ``i`` of seed ``s`` uses only
``rng = np.random.default_rng(np.random.SeedSequence([s, i]))``: the background is drawn from
the sorted background list with it (:func:`~synthloc.synth.sourcing.pick_background`, or the
procedural default is generated from it), then the scene is rendered with it. So a sample is
byte-identical whatever process renders it, in whatever order.

:func:`make_shard` is what an executor runs: it renders the samples of one shard, writes the
shard through the output sink (so workers on other machines write straight to the shared
output) and returns the shard's :class:`~synthloc.synth.manifest.ShardStats`. Everything it
needs travels in a picklable :class:`ShardJob` and :class:`ShardTask`.
"""

from __future__ import annotations

import errno
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthloc.data.preview import encode_preview
from synthloc.data.sample import Sample
from synthloc.data.shards import encode_sample, sample_key
from synthloc.data.store import Store
from synthloc.synth.config import SynthConfig
from synthloc.synth.engine import SceneRenderer
from synthloc.synth.errors import OutputError
from synthloc.synth.manifest import MAX_RECORDED_ERRORS, ShardStats, sample_name
from synthloc.synth.sinks import ShardContent, make_sink
from synthloc.synth.sourcing import (
    DEFAULT_BACKGROUND,
    BackgroundLoader,
    BackgroundSource,
    open_loader,
    pick_background,
)


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The only source of randomness of sample ``index`` of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


@dataclass
class RenderedSample:
    """One rendered sample plus what happened while making it.

    background: the photo used (relative to the backgrounds folder), the dset image name, or
    ``"<default>"``. failed_backgrounds: ``(label, error)`` for every background that could not
    be loaded. error: set when the engine raised; the sample is then the bare background, no
    words. has_depth, has_seg: whether the background came with a depth / seg map.
    failed_maps: ``("depth:<background>" | "seg:<background>", error)`` for maps left out.
    """

    sample: Sample
    background: str
    failed_backgrounds: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    has_depth: bool = False
    has_seg: bool = False
    failed_maps: list[tuple[str, str]] = field(default_factory=list)


def render_sample(
    seed: int,
    index: int,
    config: SynthConfig,
    backgrounds: BackgroundSource | Sequence[Path] | None = None,
    root: Path | None = None,
    renderer: SceneRenderer | None = None,
    loader: BackgroundLoader | None = None,
) -> RenderedSample:
    """Render sample ``index`` of ``seed`` (deterministic; see the module docstring).

    backgrounds: a :class:`BackgroundSource`, sorted background files (reported relative to
    ``root``), or None for the procedural default. renderer: a :class:`SceneRenderer` for
    ``config`` to reuse, loader: an open loader of ``backgrounds`` to reuse (both only save
    work; the output does not depend on them). Unloadable backgrounds are skipped and
    unusable maps left out (both recorded in the result); an engine exception is caught and
    recorded, and the sample is the background alone.
    """
    from synthloc.synth import render_scene

    source = (
        backgrounds
        if backgrounds is None or isinstance(backgrounds, BackgroundSource)
        else BackgroundSource.from_files(backgrounds, root)
    )
    rng = sample_rng(seed, index)
    # A loader given by the caller stays open for its next samples; otherwise one is opened
    # just for this sample.
    context = nullcontext(loader) if loader is not None else open_loader(source)
    with context as active:
        background, label, failures, failed_maps = pick_background(rng, source, active, config.size)
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
    return RenderedSample(
        sample,
        label,
        failures,
        error,
        has_depth=background.depth is not None,
        has_seg=background.seg is not None,
        failed_maps=failed_maps,
    )


@dataclass(frozen=True)
class ShardJob:
    """Everything a task needs besides its shard (picklable; sent with every task).

    out: the output folder as a path or fsspec URL (each process opens it itself).
    preview: samples with an index below this also get ``preview/<name>.png``.
    """

    seed: int
    config: SynthConfig
    backgrounds: BackgroundSource | None
    fmt: str
    image_format: str
    preview: int
    out: str


@dataclass(frozen=True)
class ShardTask:
    """Shard ``index``: samples ``first .. first + samples - 1``."""

    index: int
    first: int
    samples: int


def make_shard(job: ShardJob, task: ShardTask) -> ShardStats:
    """Render, encode and write one shard; returns its counts (run by an executor).

    One renderer (fonts, corpus, caches) and one background loader serve the whole shard. The
    shard is written atomically (see :mod:`synthloc.data.store`); an exception leaves no
    partial output, and the executor may run the task again.
    """
    store = Store(job.out)
    sink = make_sink(store, job.fmt, job.image_format, job.seed)
    renderer = SceneRenderer(job.config)
    stats = ShardStats(
        index=task.index,
        first_sample=task.first,
        samples=task.samples,
        file=sink.shard_file(task.index),
    )
    content = ShardContent()
    with open_loader(job.backgrounds) as loader:
        for index in range(task.first, task.first + task.samples):
            rendered = render_sample(
                job.seed, index, job.config, job.backgrounds, renderer=renderer, loader=loader
            )
            _count(stats, rendered, job.backgrounds is not None)
            sample = rendered.sample
            content.indices.append(index)
            if job.fmt == "synthtext-h5":
                content.samples.append(sample)
            else:
                content.encoded.append(
                    encode_sample(
                        sample,
                        sample_key(index),
                        job.image_format,
                        seed=job.seed,
                        index=index,
                        background=rendered.background,
                        failed_backgrounds=[label for label, _ in rendered.failed_backgrounds],
                        has_depth=rendered.has_depth,
                        has_seg=rendered.has_seg,
                        failed_maps=[label for label, _ in rendered.failed_maps],
                    )
                )
            if index < job.preview:
                name = f"preview/{sample_name(job.seed, index)}.png"
                with unwritable_output(store, name):
                    store.write_bytes(name, encode_preview(sample))
    with unwritable_output(store, stats.file or f"shard {task.index}"):
        stats.bytes, stats.sha256 = sink.write(task.index, content)
    return stats


# A full or read-only output fails every shard alike: stop the run rather than retry.
_OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@contextmanager
def unwritable_output(store: Store, name: str) -> Iterator[None]:
    """Turn an OSError that no retry can fix into :class:`OutputError` naming ``name``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        raise OutputError(f"{store.path(name)}: {exc.strerror or exc}") from exc


def _count(stats: ShardStats, rendered: RenderedSample, has_source: bool) -> None:
    stats.words += len(rendered.sample.words)
    stats.empty_images += int(len(rendered.sample.words) == 0)
    stats.failed_backgrounds += len(rendered.failed_backgrounds)
    stats.fallback_backgrounds += int(has_source and rendered.background == DEFAULT_BACKGROUND)
    for label, message in rendered.failed_backgrounds:
        stats.bad_backgrounds.setdefault(label, message)
    stats.with_depth += int(rendered.has_depth)
    stats.with_seg += int(rendered.has_seg)
    stats.failed_maps += len(rendered.failed_maps)
    for label, message in rendered.failed_maps:
        stats.bad_maps.setdefault(label, message)
    if rendered.error is not None:
        stats.render_errors += 1
        if len(stats.errors) < MAX_RECORDED_ERRORS:
            stats.errors.append(rendered.error)
