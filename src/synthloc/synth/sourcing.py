"""Where the backgrounds of a run come from: a folder of photos, a SynthText dset.h5, or none.

:func:`background_source` resolves ``--backgrounds`` (and ``--depth`` / ``--seg``) into a
picklable :class:`BackgroundSource`: paths and names only, so that every worker process opens
the files itself (:meth:`BackgroundSource.open`). :func:`pick_background` draws the background
of one sample from it; ``synthloc synth`` and training's on-the-fly source both draw through it,
so they see the same background for the same generator state.

* a folder of photos, searched recursively. Optional ``depth`` / ``seg`` folders pair a map with
  each photo by its path relative to the folder without extension: ``photos/a/b.jpg`` gets
  ``depth/a/b.npy`` (or ``.png``, ``.tif``, ``.tiff``, ``.h5``, ``.hdf5``) and ``seg/a/b.png``
  (or ``.npy``, ``.tif``, ``.tiff``; integer labels, 0 = no region). A photo without a map file
  has no map. Map folders inside the photo folder are not taken as photos. An unreadable map is
  counted and named and its photo is used without it.
* a SynthText ``dset.h5`` file (groups ``image/``, ``depth/``, ``seg/`` keyed by image name).
  The parent only lists the keys; every process opens the file itself.
* nothing: the procedural default.

A source in which no background can be read at all is refused up front (otherwise every sample
would silently fall back to the procedural default). File names that are not valid UTF-8 are
used as they are on disk and reported with ``\\xNN`` escapes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

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
from synthloc.synth.errors import SynthError, printable

logger = logging.getLogger(__name__)

# Bounded retries when the drawn background cannot be loaded; after that the sample falls back
# to the procedural default so that sample i always exists.
MAX_BACKGROUND_TRIES = 8
DEFAULT_BACKGROUND = "<default>"
# The up-front check loads backgrounds at this size until one works.
_PROBE_SIZE = 64


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


def open_loader(
    source: BackgroundSource | None,
) -> AbstractContextManager[BackgroundLoader | None]:
    """An open loader of ``source`` for a ``with`` block (None for the procedural default)."""
    return nullcontext(None) if source is None else source.open()


def background_source(
    backgrounds: Path | None,
    depth: Path | None = None,
    seg: Path | None = None,
    skip_text: bool = True,
) -> BackgroundSource | None:
    """Resolve ``--backgrounds`` (folder or dset.h5) and pair ``--depth`` / ``--seg`` maps.

    ``skip_text``: leave out photos that the folder's manifest.tsv flags as carrying text.

    None for the procedural default. Raises :class:`SynthError` for a missing or empty folder,
    an unreadable dset.h5, a source in which no background can be read, a map folder that is
    missing or contains the photo folder, or map folders given without a photo folder.
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
        return _readable(BackgroundSource(kind="dset", path=path, names=tuple(keys)))
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
        files = list_backgrounds(path, exclude=map_dirs.values(), skip_text=skip_text)
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
    return _readable(
        BackgroundSource(
            kind="folder",
            path=path,
            names=tuple(p.relative_to(path).as_posix() for p in files),
            depth=paired.get("depth", ()),
            seg=paired.get("seg", ()),
            depth_dir=map_dirs.get("depth"),
            seg_dir=map_dirs.get("seg"),
        )
    )


def _readable(source: BackgroundSource) -> BackgroundSource:
    """``source`` if at least one of its backgrounds loads, else :class:`SynthError`.

    Backgrounds are tried in list order, so a usable folder costs one small load; only a
    folder of unusable files is read through (to say so, instead of rendering everything on
    the procedural default).
    """
    errors: list[str] = []
    with source.open() as loader:
        for position in range(len(source.names)):
            try:
                loader.load(position, _PROBE_SIZE)
            except BackgroundError as exc:
                errors.append(printable(str(exc)))
                continue
            return source
    where = printable(str(source.path))
    raise SynthError(
        f"{where}: none of the {len(source.names)} backgrounds can be read "
        f"(first: {errors[0] if errors else 'none'})"
    )


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
    Labels and messages are :func:`~synthloc.synth.errors.printable`.
    """
    from synthloc.synth import default_background

    failures: list[tuple[str, str]] = []
    if source is not None and loader is not None and source.names:
        for _ in range(MAX_BACKGROUND_TRIES):
            position = int(rng.integers(len(source.names)))
            label = printable(source.names[position])
            try:
                background, map_errors = loader.load(position, size)
            except BackgroundError as exc:
                failures.append((label, printable(str(exc))))
                continue
            failed_maps = [
                (f"{kind}:{label}", printable(msg)) for kind, msg in sorted(map_errors.items())
            ]
            return background, label, failures, failed_maps
    return default_background(rng, size), DEFAULT_BACKGROUND, failures, []
