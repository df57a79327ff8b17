"""Training data sources that yield :class:`synthloc.data.sample.Sample`, and their mixing.

Every source is random access by an integer index and deterministic: the same index gives the
same sample in any process, worker or order.  Two kinds exist:

* finite sources (``len(source)`` items): SynthText release folders (``gt.mat``), SynthText
  h5 files, ICDAR 2013/2015 folders, shards written by ``synthloc synth``;
* the infinite on-the-fly synthesis source: sample ``i`` of seed ``s`` is
  ``render_scene(background chosen by rng, config, rng)`` with
  ``rng = default_rng(SeedSequence([s, i]))``.

:class:`EpochShuffle` turns a finite source into an infinite stream (a fresh seeded permutation
per epoch) and :class:`Mixture` draws from several infinite streams with fixed weights, so the
training loader only ever asks "give me stream element ``g``" — which is what makes resuming and
splitting across ranks and workers exact.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from synthloc.data.sample import Sample

__all__ = [
    "EpochShuffle",
    "IcdarFolderDataset",
    "InfiniteSource",
    "Mixture",
    "OnTheFlySynthesis",
    "SampleSource",
    "ShardSource",
    "SynthTextH5Dataset",
    "SynthTextMatDataset",
    "read_rgb",
    "split_synthtext_words",
]

_log = logging.getLogger(__name__)
# Stream tags keep the seed sequences of the different random decisions apart.
_MIXTURE_TAG = 0x4D49
_SHUFFLE_TAG = 0x5348


class SampleSource(Protocol):
    """A finite, random-access collection of samples."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class InfiniteSource(Protocol):
    """A stream of samples addressed by any index ``>= 0``."""

    def __getitem__(self, index: int) -> Sample: ...


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 [H, W, 3] RGB; raise ValueError naming the file if unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path}: cannot decode image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------- finite sources


def split_synthtext_words(txt: Sequence[str]) -> list[str]:
    """SynthText's ``txt`` entries are text instances (words, lines, paragraphs); split to words."""
    return [word for instance in txt for word in str(instance).split()]


def _bb_to_quads(bb: np.ndarray, where: str) -> np.ndarray:
    """SynthText ``wordBB``/``charBB`` (2x4xN, or 2x4 for one box) -> float32 [N, 4, 2]."""
    arr = np.asarray(bb, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 4, 2), np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[:2] != (2, 4):
        raise ValueError(f"{where}: expected a 2x4xN box array, got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(2, 1, 0))


def _mat_strings(cell: Any) -> list[str]:
    """A MATLAB cell/char array as loaded by scipy.io.loadmat -> list of Python strings."""
    arr = np.asarray(cell, dtype=object).reshape(-1)
    out: list[str] = []
    for item in arr:
        if isinstance(item, np.ndarray):
            out.extend(
                _mat_strings(item) if item.dtype == object else [str(s) for s in item.reshape(-1)]
            )
        else:
            out.append(str(item))
    return out


class SynthTextMatDataset:
    """The public SynthText release: ``<root>/gt.mat`` and the image folders it names.

    ``gt.mat`` holds 1xN cells ``imnames``, ``wordBB`` (2x4xN_i, or 2x4 for one word),
    ``charBB`` (2x4xM_i) and ``txt`` (text instances; split on whitespace into words).
    """

    def __init__(self, root: str | os.PathLike[str], gt_name: str = "gt.mat") -> None:
        import scipy.io

        self.root = Path(root)
        gt_path = self.root / gt_name
        if not gt_path.is_file():
            raise FileNotFoundError(f"{gt_path}: SynthText ground truth not found")
        try:
            mat = scipy.io.loadmat(str(gt_path))
        except Exception as error:  # scipy raises several unrelated types for bad files
            raise ValueError(f"{gt_path}: cannot read MATLAB file: {error}") from error
        missing = [key for key in ("imnames", "wordBB", "txt") if key not in mat]
        if missing:
            raise ValueError(f"{gt_path}: missing fields {missing}")
        self.gt_path = gt_path
        self.imnames = [_mat_strings(n)[0] for n in np.asarray(mat["imnames"]).reshape(-1)]
        self._word_bb = np.asarray(mat["wordBB"], dtype=object).reshape(-1)
        self._char_bb = (
            np.asarray(mat["charBB"], dtype=object).reshape(-1) if "charBB" in mat else None
        )
        self._txt = np.asarray(mat["txt"], dtype=object).reshape(-1)
        if not (len(self.imnames) == len(self._word_bb) == len(self._txt)):
            raise ValueError(f"{gt_path}: imnames, wordBB and txt have different lengths")

    def __len__(self) -> int:
        return len(self.imnames)

    def __getitem__(self, index: int) -> Sample:
        name = self.imnames[index]
        where = f"{self.gt_path}[{index}] ({name})"
        quads = _bb_to_quads(self._word_bb[index], where)
        words = split_synthtext_words(_mat_strings(self._txt[index]))
        if len(words) != len(quads):
            raise ValueError(f"{where}: {len(words)} words in txt but {len(quads)} word boxes")
        chars = (
            _bb_to_quads(self._char_bb[index], where)
            if self._char_bb is not None
            else np.zeros((0, 4, 2), np.float32)
        )
        return Sample(
            image=read_rgb(self.root / name),
            word_quads=quads,
            words=words,
            char_quads=chars,
            name=Path(name).stem,
        )


class SynthTextH5Dataset:
    """SynthText's result h5 layout (``data/<name>`` with wordBB/charBB/txt), random access.

    Reading is delegated to :func:`synthloc.data.synthtext_h5.read_synthtext_h5`; the file is
    read once (these files hold at most a few thousand images at 512 px).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from synthloc.data.synthtext_h5 import read_synthtext_h5

        self.path = Path(path)
        self._samples = list(read_synthtext_h5(self.path))

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> Sample:
        return self._samples[index]


class IcdarFolderDataset:
    """An ICDAR 2013/2015 folder (images + ``gt_<stem>.txt``); "###" words become ignore."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        from synthloc.data.icdar import list_icdar_folder

        self.folder = Path(folder)
        self.pairs = list_icdar_folder(self.folder)
        if not self.pairs:
            raise ValueError(f"{self.folder}: no images with ground truth found")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        from synthloc.data.icdar import read_icdar_gt

        image_path, gt_path = self.pairs[index]
        gt = read_icdar_gt(gt_path)
        return Sample(
            image=read_rgb(image_path),
            word_quads=gt.quads,
            words=gt.words,
            ignore=gt.ignore,
            name=image_path.stem,
        )


class ShardSource:
    """Shards written by ``synthloc synth`` (see :mod:`synthloc.data.shards`).

    folder: a path or an fsspec URL (``s3://bucket/synth``; needs ``synthloc[cluster]``).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        from synthloc.data.shards import ShardDataset

        self._shards = ShardDataset(folder)
        self.folder = self._shards.folder
        if len(self._shards) == 0:
            raise ValueError(f"{self.folder}: no samples in shards")

    def __len__(self) -> int:
        return len(self._shards)

    def __getitem__(self, index: int) -> Sample:
        sample: Sample = self._shards[index]
        return sample


# --------------------------------------------------------------------------- infinite streams


class OnTheFlySynthesis:
    """Synthesis in the data workers: stream element ``i`` = a freshly rendered scene.

    backgrounds: a folder of photos, a SynthText ``dset.h5`` (images with their depth and
    segmentation), or None for the engine's embedded default backgrounds. depth, seg: folders
    of maps paired with the photos by stem (as ``synthloc synth --depth/--seg``).
    config: a :class:`synthloc.synth.SynthConfig`. Sample ``i`` uses
    ``default_rng(SeedSequence([seed, i]))`` both to choose the background and to render, so it
    is the same bytes whatever process renders it. Decoded backgrounds and the engine's
    renderer (fonts, corpus, region analyses) are cached per worker process (LRUs of
    ``cache_size`` entries; caches live on the instance, and each DataLoader worker holds its
    own copy of the instance). Raises ValueError for a missing or empty backgrounds folder,
    an unreadable dset.h5 or an unusable map folder.
    """

    def __init__(
        self,
        backgrounds: str | os.PathLike[str] | None,
        config: Any,
        seed: int,
        cache_size: int = 256,
        depth: str | os.PathLike[str] | None = None,
        seg: str | os.PathLike[str] | None = None,
    ) -> None:
        from synthloc.synth.runner import SynthError, background_source

        self.config = config
        self.seed = int(seed)
        self.cache_size = int(cache_size)
        try:
            self.source = background_source(
                None if backgrounds is None else Path(backgrounds),
                None if depth is None else Path(depth),
                None if seg is None else Path(seg),
                skip_text=config.skip_text_backgrounds,
            )
        except SynthError as error:
            raise ValueError(str(error)) from error
        if self.source is not None and not self.source.names:
            raise ValueError(f"{backgrounds}: no background images found")
        self._renderer: Any = None
        self._loader: Any = None
        # Unloadable background -> times it was drawn and skipped (warned about once).
        self.skipped_backgrounds: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Workers start with empty caches and open their own renderer and files.
        state["_renderer"] = None
        state["_loader"] = None
        return state

    def _get_renderer(self) -> Any:
        from synthloc.synth.engine import SceneRenderer

        if self._renderer is None:
            self._renderer = SceneRenderer(self.config, cache_size=self.cache_size)
        return self._renderer

    def _get_loader(self) -> Any:
        if self._loader is None and self.source is not None:
            self._loader = self.source.open(cache_size=self.cache_size)
        return self._loader

    def __getitem__(self, index: int) -> Sample:
        """Render element ``index``; draws exactly like ``synthloc synth`` sample ``index``.

        Backgrounds are drawn by :func:`synthloc.synth.runner.pick_background` (an unloadable
        one is logged and replaced by another draw, then by the procedural default); an engine
        failure is re-raised as ValueError naming the sample, so the training stream counts
        it and substitutes another element.
        """
        from synthloc.synth import render_scene
        from synthloc.synth.runner import pick_background

        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(index)]))
        background, _, failures, failed_maps = pick_background(
            rng, self.source, self._get_loader(), self.config.size
        )
        for label, message in failures:  # each file named once per process, then counted
            self.skipped_backgrounds[label] = self.skipped_backgrounds.get(label, 0) + 1
            if self.skipped_backgrounds[label] == 1:
                _log.warning("skipping background %s: %s (not repeated)", label, message)
        for label, message in failed_maps:  # "depth:<name>": reported on its first load only
            _log.warning("%s map left out: %s", label, message)
        try:
            sample: Sample = render_scene(background, self.config, rng, self._get_renderer())
        except Exception as error:  # any engine bug: reported, counted and replaced upstream
            raise ValueError(
                f"synthesis of sample {self.seed}_{index} failed: {type(error).__name__}: {error}"
            ) from error
        sample.name = f"{self.seed}_{int(index):08d}"
        return sample


class EpochShuffle:
    """A finite source as an infinite stream: epoch ``e`` visits a seeded permutation."""

    def __init__(self, source: SampleSource, seed: int) -> None:
        if len(source) == 0:
            raise ValueError("cannot stream an empty source")
        self.source = source
        self.seed = int(seed)
        self._perm_epoch = -1
        self._perm = np.zeros((0,), np.int64)

    def index_of(self, index: int) -> int:
        """The source item that stream element ``index`` shows."""
        n = len(self.source)
        epoch, offset = divmod(int(index), n)
        if epoch != self._perm_epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SHUFFLE_TAG, epoch]))
            self._perm = rng.permutation(n)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def __getitem__(self, index: int) -> Sample:
        return self.source[self.index_of(index)]


class Mixture:
    """Draw stream element ``g`` from one of several streams with fixed weights.

    The choice for ``g`` comes from ``default_rng(SeedSequence([seed, tag, g]))``, so it is
    deterministic per element; the chosen stream is then asked for its element ``g``.
    """

    def __init__(
        self, streams: Sequence[InfiniteSource], weights: Sequence[float], seed: int
    ) -> None:
        if len(streams) == 0 or len(streams) != len(weights):
            raise ValueError("Mixture needs one weight per stream and at least one stream")
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"mixture weights must be non-negative and not all zero: {weights}")
        self.streams = list(streams)
        self.cumulative = np.cumsum(w / w.sum())
        self.seed = int(seed)

    def choose(self, index: int) -> int:
        """Which stream element ``index`` comes from."""
        if len(self.streams) == 1:
            return 0
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _MIXTURE_TAG, int(index)]))
        pick = int(np.searchsorted(self.cumulative, rng.random(), side="right"))
        return min(pick, len(self.streams) - 1)

    def __getitem__(self, index: int) -> Sample:
        return self.streams[self.choose(index)][index]
