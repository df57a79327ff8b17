"""Render a synthetic dataset: parallel, reproducible, resumable.

:func:`synthesize` renders samples ``0 .. count-1`` of a seed and writes them in one of three
formats:

* ``shards`` (default): ``shard-NNNNNN.tar`` files + ``manifest.json`` (see
  :mod:`synthloc.data.shards`).
* ``icdar``: ``images/<name>.jpg`` and ``gt/gt_<name>.txt`` (ICDAR 2015 word quads; character
  boxes are not representable there) + ``manifest.json``.
* ``synthtext-h5``: ``SynthText.h5`` in the original engine's results layout
  (:mod:`synthloc.data.synthtext_h5`) + ``manifest.json``.

Backgrounds (:class:`BackgroundSource`, built by :func:`background_source`):

* a folder of photos, searched recursively. Optional ``depth`` / ``seg`` folders pair a map with
  each photo by its path relative to the folder without extension: ``photos/a/b.jpg`` gets
  ``depth/a/b.npy`` (or ``.png``, ``.tif``, ``.tiff``, ``.h5``, ``.hdf5``) and ``seg/a/b.png``
  (or ``.npy``, ``.tif``, ``.tiff``; integer labels, 0 = no region). A photo without a map file
  has no map. Map folders inside the photo folder are not taken as photos. An unreadable map is
  counted and named (``failed_maps``, ``bad_maps``) and its photo is used without it.
* a SynthText ``dset.h5`` file (groups ``image/``, ``depth/``, ``seg/`` keyed by image name).
  The parent only lists the keys; every process opens the file itself.
* nothing: the procedural default.

Reproducibility: sample ``i`` of seed ``s`` uses only
``rng = np.random.default_rng(np.random.SeedSequence([s, i]))``: the background is drawn from
the sorted background list (photo paths or dset image names) with it (or the procedural
default is generated from it), then the scene is rendered with it. So a sample is
byte-identical whatever the worker count or order. Each sample's JSON records its background,
``has_depth`` and ``has_seg``.

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
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from synthloc import __version__
from synthloc.atomic import write_bytes_atomic
from synthloc.data.preview import encode_preview
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
    DEPTH_SUFFIXES,
    SEG_SUFFIXES,
    Background,
    BackgroundError,
    DsetReader,
    index_maps,
    list_backgrounds,
    load_background,
    map_key,
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


# --------------------------------------------------------------------------- backgrounds


@dataclass(frozen=True)
class BackgroundSource:
    """The backgrounds of a run. Picklable: paths and names only; workers open files themselves.

    kind: ``"folder"`` (photos, each optionally paired with depth / seg files) or ``"dset"``
    (a SynthText ``dset.h5``). path: the resolved folder or file (None for a bare file list).
    names: sorted; sample i draws ``names[rng.integers(len(names))]``. Photo paths relative to
    ``path`` (posix; absolute paths when ``path`` is None) or dset image names; also the label
    recorded with each sample. depth, seg: the paired map file of each name or None (folder
    only; empty tuples when no map folder was given). depth_dir, seg_dir: the map folders given.
    """

    kind: str
    path: Path | None
    names: tuple[str, ...]
    depth: tuple[Path | None, ...] = ()
    seg: tuple[Path | None, ...] = ()
    depth_dir: Path | None = None
    seg_dir: Path | None = None

    @classmethod
    def from_files(cls, files: Sequence[Path], root: Path | None = None) -> BackgroundSource:
        """Photos without maps, labelled by their path relative to ``root`` (or as given)."""
        names = tuple(p.relative_to(root).as_posix() if root is not None else str(p) for p in files)
        return cls(kind="folder", path=root, names=names)

    def photo(self, position: int) -> Path:
        """The photo file of ``names[position]`` (folder sources)."""
        name = self.names[position]
        return self.path / name if self.path is not None else Path(name)

    def open(self, cache_size: int = 0) -> BackgroundLoader:
        """A loader for this process (close it, or use it in a ``with`` block)."""
        return BackgroundLoader(self, cache_size)


class BackgroundLoader:
    """Loads the backgrounds of a :class:`BackgroundSource` in the current process.

    For a dset.h5 it holds this process's file handle (opened on first use) until
    :meth:`close`. With ``cache_size`` > 0 it keeps that many decoded backgrounds (least
    recently used dropped first; keyed by position and size), for long-lived processes such
    as training data workers that draw the same photos again and again.
    """

    def __init__(self, source: BackgroundSource, cache_size: int = 0) -> None:
        self.source = source
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[int, int], Background] = OrderedDict()
        self._dset = (
            DsetReader(source.path) if source.kind == "dset" and source.path is not None else None
        )

    def __enter__(self) -> BackgroundLoader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._dset is not None:
            self._dset.close()

    def load(self, position: int, size: int) -> tuple[Background, dict[str, str]]:
        """Background ``names[position]`` resized to long side ``size``, and its map errors.

        Returns ``(background, {"depth" | "seg": message})``: a map that cannot be used is left
        out and reported (on the first load only; a cached background comes back with no
        errors). Raises :class:`BackgroundError` when the image itself is unusable.
        """
        key = (int(position), int(size))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], {}
        source = self.source
        map_errors: dict[str, str] = {}
        if self._dset is not None:
            background = self._dset.load(source.names[position], size, map_errors)
        else:
            depth = source.depth[position] if source.depth else None
            seg = source.seg[position] if source.seg else None
            background = load_background(source.photo(position), size, depth, seg, map_errors)
        if self.cache_size > 0:
            self._cache[key] = background
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return background, map_errors


def _loader(source: BackgroundSource | None) -> AbstractContextManager[BackgroundLoader | None]:
    return nullcontext(None) if source is None else source.open()


def background_source(
    backgrounds: Path | None, depth: Path | None = None, seg: Path | None = None
) -> BackgroundSource | None:
    """Resolve ``--backgrounds`` (folder or dset.h5) and pair ``--depth`` / ``--seg`` maps.

    None for the procedural default. Raises :class:`SynthError` for a missing or empty folder,
    an unreadable dset.h5, a map folder that is missing or contains the photo folder, or map
    folders given without a photo folder.
    """
    if backgrounds is None:
        if depth is not None or seg is not None:
            raise SynthError(
                "depth and seg folders pair maps with photos: give a backgrounds folder"
            )
        return None
    path = Path(backgrounds).resolve()
    if path.is_file():
        if depth is not None or seg is not None:
            raise SynthError(
                f"{path}: a dset.h5 carries its own depth and seg groups; depth and seg "
                "folders apply to a folder of photos"
            )
        try:
            with DsetReader(path) as reader:
                keys = reader.keys()
        except BackgroundError as exc:
            raise SynthError(
                f"backgrounds: {exc} (expected a folder of photos or a SynthText dset.h5)"
            ) from exc
        if not keys:
            raise SynthError(f"{path}: no images in the dset.h5 'image' group")
        return BackgroundSource(kind="dset", path=path, names=tuple(keys))
    map_dirs: dict[str, Path] = {}
    for kind, folder in (("depth", depth), ("seg", seg)):
        if folder is None:
            continue
        resolved = Path(folder).resolve()
        if not resolved.is_dir():
            raise SynthError(f"{kind}: {resolved}: not a folder")
        if path.is_relative_to(resolved):
            raise SynthError(
                f"{kind}: {resolved} contains the backgrounds folder {path}; keep maps in a "
                "folder of their own (a subfolder of the backgrounds folder is fine)"
            )
        map_dirs[kind] = resolved
    try:
        files = list_backgrounds(path, exclude=map_dirs.values())
    except BackgroundError as exc:
        raise SynthError(f"backgrounds: {exc}") from exc
    if not files:
        raise SynthError(f"{path}: no background images (jpg, png, webp, bmp) in this folder")
    paired: dict[str, tuple[Path | None, ...]] = {}
    for kind, folder in map_dirs.items():
        found = index_maps(folder, DEPTH_SUFFIXES if kind == "depth" else SEG_SUFFIXES)
        paired[kind] = tuple(found.get(map_key(p, path)) for p in files)
        if not any(paired[kind]):
            logger.warning(
                "%s: no %s map matches any background (expected %s/<photo path without "
                "extension>%s)",
                folder,
                kind,
                folder,
                "|".join(DEPTH_SUFFIXES if kind == "depth" else SEG_SUFFIXES),
            )
    return BackgroundSource(
        kind="folder",
        path=path,
        names=tuple(p.relative_to(path).as_posix() for p in files),
        depth=paired.get("depth", ()),
        seg=paired.get("seg", ()),
        depth_dir=map_dirs.get("depth"),
        seg_dir=map_dirs.get("seg"),
    )


# --------------------------------------------------------------------------- rendering


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


def pick_background(
    rng: np.random.Generator,
    source: BackgroundSource | None,
    loader: BackgroundLoader | None,
    size: int,
) -> tuple[Background, str, list[tuple[str, str]], list[tuple[str, str]]]:
    """Draw a background for one sample: ``(background, label, failed backgrounds, failed maps)``.

    Up to ``MAX_BACKGROUND_TRIES`` draws from ``source`` (an unloadable photo is recorded and
    another drawn), then the procedural default; see the module docstring. The draws depend
    on ``rng`` alone, so every caller picks the same background for the same generator state.
    """
    from synthloc.synth import default_background

    failures: list[tuple[str, str]] = []
    if source is not None and loader is not None and source.names:
        for _ in range(MAX_BACKGROUND_TRIES):
            position = int(rng.integers(len(source.names)))
            label = source.names[position]
            try:
                background, map_errors = loader.load(position, size)
            except BackgroundError as exc:
                failures.append((label, str(exc)))
                continue
            failed_maps = [(f"{kind}:{label}", msg) for kind, msg in sorted(map_errors.items())]
            return background, label, failures, failed_maps
    return default_background(rng, size), DEFAULT_BACKGROUND, failures, []


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
    context = nullcontext(loader) if loader is not None else _loader(source)
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
class _Job:
    """Everything a worker needs for one run (picklable; sent with every task)."""

    seed: int
    config: SynthConfig
    backgrounds: BackgroundSource | None
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
    has_depth: bool = False
    has_seg: bool = False
    failed_maps: list[tuple[str, str]] = field(default_factory=list)


def _render_one(
    job: _Job, index: int, renderer: SceneRenderer, loader: BackgroundLoader | None
) -> _Result:
    rendered = render_sample(
        job.seed, index, job.config, job.backgrounds, renderer=renderer, loader=loader
    )
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
            has_depth=rendered.has_depth,
            has_seg=rendered.has_seg,
            failed_maps=[label for label, _ in rendered.failed_maps],
        )
    preview = encode_preview(sample) if index < job.preview else None
    return _Result(
        index=index,
        encoded=encoded,
        sample=sample if job.fmt == "synthtext-h5" else None,
        words=len(sample.words),
        failed_backgrounds=rendered.failed_backgrounds,
        fallback=job.backgrounds is not None and rendered.background == DEFAULT_BACKGROUND,
        error=rendered.error,
        preview_png=preview,
        has_depth=rendered.has_depth,
        has_seg=rendered.has_seg,
        failed_maps=rendered.failed_maps,
    )


def _render_batch(job: _Job, indices: list[int]) -> list[_Result]:
    """A worker task: consecutive samples sharing one renderer (fonts, corpus, caches) and one
    background loader (this process opens a dset.h5 itself)."""
    from synthloc.synth import SceneRenderer

    renderer = SceneRenderer(job.config)
    with _loader(job.backgrounds) as loader:
        return [_render_one(job, i, renderer, loader) for i in indices]


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
    with_depth: int = 0
    with_seg: int = 0
    failed_maps: int = 0
    bad_maps: dict[str, str] = field(default_factory=dict)

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
    with_depth: int = 0  # samples whose background had a depth map
    with_seg: int = 0  # ... a segmentation map
    failed_maps: int = 0  # depth/seg maps that could not be read (photo used without them)
    bad_maps: dict[str, str] = field(default_factory=dict)  # "depth:<background>" -> error

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
        if self.with_depth or self.with_seg:
            text += f", with depth {self.with_depth}, with seg {self.with_seg}"
        if self.failed_maps:
            text += f", failed maps {self.failed_maps} ({len(self.bad_maps)} files)"
        if self.render_errors:
            text += f", render errors {self.render_errors}"
        return text


def _shard_layout(count: int, shard_size: int) -> list[tuple[int, int]]:
    """(first sample, number of samples) of every shard."""
    return [(first, min(shard_size, count - first)) for first in range(0, count, shard_size)]


def _list_sha256(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _background_identity(source: BackgroundSource | None) -> dict[str, Any]:
    """What the manifest records of the backgrounds (a plain folder keeps the pre-maps form)."""
    if source is None:
        return {"folder": None, "files": 0, "list_sha256": None}
    where = "folder" if source.kind == "folder" else "dset_h5"
    identity: dict[str, Any] = {
        where: str(source.path),
        "files": len(source.names),
        "list_sha256": _list_sha256(source.names),
    }
    for kind, folder, maps in (
        ("depth", source.depth_dir, source.depth),
        ("seg", source.seg_dir, source.seg),
    ):
        if folder is not None:
            pairs = [
                f"{name}\t{m.relative_to(folder).as_posix()}"
                for name, m in zip(source.names, maps)
                if m is not None
            ]
            identity[kind] = {
                "folder": str(folder),
                "files": len(pairs),
                "list_sha256": _list_sha256(pairs),
            }
    return identity


def _background_signature(identity: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of a background identity that decide the output (not where folders are)."""
    maps = [identity.get(kind) or {} for kind in ("depth", "seg")]
    return (
        "dset_h5" in identity,
        identity.get("files"),
        identity.get("list_sha256"),
        *((m.get("files"), m.get("list_sha256")) for m in maps),
    )


def _describe_backgrounds(identity: dict[str, Any]) -> str:
    text = f"{identity.get('files')} files from {identity.get('folder', identity.get('dset_h5'))}"
    for kind in ("depth", "seg"):
        maps = identity.get(kind)
        if maps:
            text += f" with {maps.get('files')} {kind} maps from {maps.get('folder')}"
    return text


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
    if _background_signature(old_bg) != _background_signature(new_bg):
        problems.append(
            f"backgrounds: existing {_describe_backgrounds(old_bg)}, "
            f"requested {_describe_backgrounds(new_bg)}"
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
    bad_maps: dict[str, str] = {}
    for s in shards:
        bad.update(s.bad_backgrounds)
        bad_maps.update(s.bad_maps)
    return {
        "written": sum(s.samples for s in shards),
        "failed_backgrounds": sum(s.failed_backgrounds for s in shards),
        "fallback_backgrounds": sum(s.fallback_backgrounds for s in shards),
        "empty_images": sum(s.empty_images for s in shards),
        "words": sum(s.words for s in shards),
        "render_errors": sum(s.render_errors for s in shards),
        "bad_backgrounds": dict(sorted(bad.items())),
        "with_depth": sum(s.with_depth for s in shards),
        "with_seg": sum(s.with_seg for s in shards),
        "failed_maps": sum(s.failed_maps for s in shards),
        "bad_maps": dict(sorted(bad_maps.items())),
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
        stats.with_depth += int(r.has_depth)
        stats.with_seg += int(r.has_seg)
        stats.failed_maps += len(r.failed_maps)
        for label, message in r.failed_maps:
            stats.bad_maps.setdefault(label, message)
        if r.error is not None:
            stats.render_errors += 1
            if len(stats.errors) < MAX_RECORDED_ERRORS:
                stats.errors.append(r.error)
    return stats


def _report_problems(result: _Result, warned: set[str]) -> None:
    """Log each unusable background or map once per run, and every engine error."""
    for label, message in result.failed_backgrounds:
        if label not in warned:
            warned.add(label)
            logger.warning("skipped background: %s", message)
    for label, message in result.failed_maps:
        if label not in warned:
            warned.add(label)
            logger.warning("background used without its map: %s", message)
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
        with _loader(job.backgrounds) as loader:
            for batch in batches:
                yield [_render_one(job, i, renderer, loader) for i in batch]
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
    depth: Path | None = None,
    seg: Path | None = None,
) -> SynthReport:
    """Render samples ``0 .. count-1`` of ``seed`` into ``out`` (resumable; see module doc).

    backgrounds: a folder of photos (searched recursively), a SynthText ``dset.h5`` file, or
    None for the procedural default. depth, seg: folders of maps paired with the photos by
    relative path without extension (see the module docstring); folder backgrounds only.
    workers: processes (1 renders in this process). fmt: ``shards``, ``icdar`` or
    ``synthtext-h5``. preview: how many of the first samples also get ``preview/<name>.png``
    with word (green) and character (red) quads drawn. image_format: ``jpg`` (quality 95) or
    ``png`` for shards and icdar images. Raises :class:`SynthError` for bad arguments, an empty
    or missing backgrounds folder or dset.h5, a bad map folder, or an ``out`` folder holding a
    different run.

    With ``workers > 1`` the pool uses the ``spawn`` start method, so a script calling this
    must guard its entry point with ``if __name__ == "__main__":``.
    """
    config = config if config is not None else SynthConfig()
    out = Path(out)
    _check_arguments(count, seed, workers, fmt, preview, shard_size, image_format)
    source = background_source(backgrounds, depth, seg)
    identity: dict[str, Any] = {
        "seed": seed,
        "count": count,
        "format": fmt,
        "image_format": image_format,
        "shard_size": shard_size,
        "config": json.loads(json.dumps(dataclasses.asdict(config))),
        "backgrounds": _background_identity(source),
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
        backgrounds=source,
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
        with_depth=totals["with_depth"],
        with_seg=totals["with_seg"],
        failed_maps=totals["failed_maps"],
        bad_maps=totals["bad_maps"],
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
            rendered = render_sample(job.seed, index, job.config, job.backgrounds)
            write_bytes_atomic(path, encode_preview(rendered.sample))


__all__ = [
    "FORMATS",
    "BackgroundLoader",
    "BackgroundSource",
    "RenderedSample",
    "ShardStats",
    "SynthError",
    "SynthReport",
    "background_source",
    "render_sample",
    "sample_name",
    "sample_rng",
    "synthesize",
]
