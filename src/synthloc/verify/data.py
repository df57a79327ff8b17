"""Verifier training data: rectified candidate crops with labels and corner-offset targets.

Made by :func:`generate`, into an output folder::

    data_config.json        the VerifierDataConfig that made it (a rerun must match it)
    shards/<part>_<i>.npz   one shard per group of source images (``part`` is synth, bg or
                            real); each holds crops uint8 [N, 32, 128, 3], label uint8 [N]
                            (1 text, 0 not), offsets float32 [N, 8] (targets; zero for
                            negatives), kind uint8 [N] (see KINDS), iou float32 [N] (candidate
                            vs its word; 0 for negatives)
    manifest.json           counts per kind, written when every shard is done

Where the samples come from (the paper's "multi-filt" stage, made from our own data):

* ``jitter`` positives: each synthetic word quad moved, scaled and rotated at random, kept
  when its IoU with the word is at least ``pos_iou``; the target takes it back to the word.
* ``detector`` positives / ``hard`` negatives: a first-stage detector run with a low threshold
  on the synthetic images; candidates with IoU >= ``pos_iou`` to a word are positives
  (target = that word), those with IoU < ``neg_iou`` to every word are negatives (unless
  they hold most of a word: a box over two words is left out).
* ``background`` negatives: random word-shaped quads on text-free backgrounds, and
  ``background_hard`` negatives: every first-stage detection on them.
* ``real`` positives (optional): jittered quads of the ICDAR 2015 training word crops
  (outside the crop, its border is replicated: no black frame that marks real words).

Determinism: shard ``i`` of a part draws from ``default_rng(SeedSequence([seed, part, i]))``
and synthetic image ``j`` is ``OnTheFlySynthesis(..., seed)[j]``, so the same config gives the
same bytes, and an interrupted run resumes by skipping the shards already written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthloc.atomic import atomic_path, write_text_atomic
from synthloc.geometry import iou_matrix, polygon_area
from synthloc.verify.crops import CROP_SIZE, crop_offsets, rectify
from synthloc.verify.model import CROP_HEIGHT, CROP_WIDTH

_log = logging.getLogger("synthloc.verify")

KINDS = ("jitter", "detector", "hard", "background", "background_hard", "real")
KIND_CODES = {name: code for code, name in enumerate(KINDS)}
PART_TAGS = {"synth": 11, "bg": 12, "real": 13}
DATA_CONFIG = "data_config.json"
MANIFEST = "manifest.json"


class DataFolderError(ValueError):
    """The output folder holds data made with another config (or is unusable)."""


@dataclass(frozen=True)
class JitterConfig:
    """How far positives stray from their word: shift (fraction of the word's height, normal
    std), log-scale of width and height (normal std), rotation (radians, normal std)."""

    shift: float = 0.2
    scale: float = 0.15
    angle: float = 0.08


@dataclass(frozen=True)
class VerifierDataConfig:
    """What :func:`generate` makes (see the module docstring).

    synth_images: synthetic scenes rendered (``synth_backgrounds`` "" = procedural default;
        ``synth_corpus`` "" = the engine's embedded text), long side ``synth_size``.
    background_images: text-free images for negatives, drawn in order from
        ``negative_backgrounds`` ("" = the engine's procedural backgrounds).
    detector: first-stage model file for detector positives and hard negatives ("" = none),
        run at ``detector_scales`` with ``detector_threshold`` (low: the candidates the
        two-stage detector will see); at most ``max_detections`` per image, best first.
    real_words: an ICDAR word-crop folder (``coords.txt``) for real positives ("" = none);
        the context the tight crops lack is filled by replicating their border.
    pos_iou / neg_iou: candidates at or above ``pos_iou`` with a word are positives, those
        below ``neg_iou`` with every word negatives, unless they hold ``neg_cover`` or more of
        some word's area (a box over two words: left out, not a negative).
    """

    seed: int = 0
    context: float = 0.25
    synth_images: int = 400
    synth_backgrounds: str = ""
    synth_corpus: str = ""
    synth_size: int = 512
    positives_per_word: int = 2
    background_images: int = 400
    negative_backgrounds: str = ""
    random_negatives_per_image: int = 8
    detector: str = ""
    detector_threshold: float = 0.2
    detector_scales: list[float] = field(default_factory=lambda: [512.0])
    max_detections: int = 32
    real_words: str = ""
    real_per_word: int = 1
    pos_iou: float = 0.6
    neg_iou: float = 0.3
    neg_cover: float = 0.5
    jitter: JitterConfig = field(default_factory=JitterConfig)
    images_per_shard: int = 32

    def __post_init__(self) -> None:
        for name in ("synth_images", "background_images", "random_negatives_per_image"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.images_per_shard < 1:
            raise ValueError(f"images_per_shard must be >= 1, got {self.images_per_shard}")
        if not 0.0 < self.neg_iou <= self.pos_iou <= 1.0:
            raise ValueError(
                f"need 0 < neg_iou <= pos_iou <= 1, got {self.neg_iou} and {self.pos_iou}"
            )
        if self.synth_size < 64:
            raise ValueError(f"synth_size must be >= 64, got {self.synth_size}")


def config_to_json(config: VerifierDataConfig) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True, indent=1)


def config_from_json(text: str) -> VerifierDataConfig:
    values = json.loads(text)
    values["jitter"] = JitterConfig(**values.get("jitter", {}))
    return VerifierDataConfig(**values)


# -- samples of one shard ---------------------------------------------------------------------


@dataclass
class ShardBuilder:
    """Accumulates one shard's samples."""

    crops: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    offsets: list[np.ndarray] = field(default_factory=list)
    kinds: list[np.ndarray] = field(default_factory=list)
    ious: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        image: np.ndarray,
        candidates: np.ndarray,
        kind: str,
        context: float,
        targets: np.ndarray | None = None,
        ious: np.ndarray | None = None,
        replicate_border: bool = False,
    ) -> None:
        """Rectify ``candidates`` [K, 4, 2] from ``image``; positives when ``targets`` (their
        words, [K, 4, 2]) are given, negatives otherwise. Degenerate candidates are dropped."""
        if len(candidates) == 0:
            return
        crops, geometry = rectify(image, candidates, context, replicate_border=replicate_border)
        keep = geometry.valid
        if targets is not None:
            offsets = crop_offsets(geometry, targets)
            # A target far outside its crop is a broken pairing, not a lesson.
            keep = keep & (np.abs(offsets) < 1.0).all(axis=1)
            label = 1
        else:
            offsets = np.zeros((len(candidates), 8), np.float32)
            label = 0
        n = int(keep.sum())
        self.crops.append(crops[keep])
        self.labels.append(np.full(n, label, np.uint8))
        self.offsets.append(offsets[keep])
        self.kinds.append(np.full(n, KIND_CODES[kind], np.uint8))
        iou = np.zeros(len(candidates), np.float32) if ious is None else ious
        self.ious.append(np.asarray(iou, np.float32)[keep])

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.crops:
            return empty_arrays()
        return {
            "crops": np.concatenate(self.crops),
            "label": np.concatenate(self.labels),
            "offsets": np.concatenate(self.offsets),
            "kind": np.concatenate(self.kinds),
            "iou": np.concatenate(self.ious),
        }


def empty_arrays() -> dict[str, np.ndarray]:
    return {
        "crops": np.zeros((0, CROP_HEIGHT, CROP_WIDTH, 3), np.uint8),
        "label": np.zeros(0, np.uint8),
        "offsets": np.zeros((0, 8), np.float32),
        "kind": np.zeros(0, np.uint8),
        "iou": np.zeros(0, np.float32),
    }


# -- candidate quads --------------------------------------------------------------------------


def _frames(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre [K, 2], unit reading direction [K, 2], its normal [K, 2] and height [K]."""
    centre = quads.mean(axis=1)
    along = (quads[:, 1] - quads[:, 0]) + (quads[:, 2] - quads[:, 3])
    along = along / np.maximum(np.linalg.norm(along, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-along[:, 1], along[:, 0]], axis=1)
    height = 0.5 * (
        np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
        + np.linalg.norm(quads[:, 2] - quads[:, 1], axis=1)
    )
    return centre, along, normal, height


def jitter_quads(
    word: np.ndarray, count: int, jitter: JitterConfig, rng: np.random.Generator
) -> np.ndarray:
    """``count`` copies ``[count, 4, 2]`` of the quad ``word`` shifted (in its own frame, by
    fractions of its height), scaled in width and height, and rotated about its centre."""
    centre, along, normal, height = _frames(word[None].astype(np.float64))
    local = np.stack(
        [(word - centre) @ along[0], (word - centre) @ normal[0]], axis=-1
    )  # [4, 2]: corners in the word's frame
    scale = np.exp(rng.normal(0.0, jitter.scale, size=(count, 1, 2)))
    angle = rng.normal(0.0, jitter.angle, size=count)
    shift = rng.normal(0.0, jitter.shift, size=(count, 1, 2)) * height[0]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    moved = local[None] * scale
    rotated = (
        np.stack(
            [cos * moved[..., 0] - sin * moved[..., 1], sin * moved[..., 0] + cos * moved[..., 1]],
            axis=-1,
        )
        + shift
    )
    return centre[0] + rotated[..., :1] * along[0] + rotated[..., 1:] * normal[0]


def jittered_positives(
    words: np.ndarray,
    per_word: int,
    config: VerifierDataConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``per_word`` jittered candidates per word with IoU >= ``pos_iou``: candidates
    [M, 4, 2], their words [M, 4, 2], their IoUs [M]."""
    found: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    ious: list[np.ndarray] = []
    for word in words.astype(np.float64):
        tries = jitter_quads(word, 4 * per_word, config.jitter, rng)
        iou = iou_matrix(tries, word[None])[:, 0]
        good = np.flatnonzero(iou >= config.pos_iou)[:per_word]
        found.append(tries[good])
        targets.append(np.repeat(word[None], len(good), axis=0))
        ious.append(iou[good])
    if not found:
        return np.zeros((0, 4, 2)), np.zeros((0, 4, 2)), np.zeros(0)
    return np.concatenate(found), np.concatenate(targets), np.concatenate(ious)


def random_quads(image_hw: tuple[int, int], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` word-shaped quads [count, 4, 2] inside an image: height log-uniform from 8 px
    to a quarter of the short side, aspect 1..10, slight rotation."""
    from synthloc.geometry import rbox_to_quad

    h, w = image_hw
    low, high = np.log(8.0), np.log(max(9.0, min(h, w) / 4.0))
    heights = np.exp(rng.uniform(low, high, count))
    widths = heights * np.exp(rng.uniform(0.0, np.log(10.0), count))
    widths = np.minimum(widths, 0.9 * w)
    cx = rng.uniform(widths / 2, np.maximum(widths / 2 + 1, w - widths / 2))
    cy = rng.uniform(heights / 2, np.maximum(heights / 2 + 1, h - heights / 2))
    angle = rng.normal(0.0, 0.15, count)
    return rbox_to_quad(np.stack([cx, cy, widths, heights, angle], axis=1)).reshape(-1, 4, 2)


# -- the parts --------------------------------------------------------------------------------

Detect = Callable[[np.ndarray], np.ndarray]


def _split_detections(
    detected: np.ndarray, words: np.ndarray, config: VerifierDataConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First-stage candidates -> (positives, their words, their IoUs, negatives)."""
    if len(detected) == 0:
        empty = np.zeros((0, 4, 2))
        return empty, empty, np.zeros(0), empty
    if len(words) == 0:
        return np.zeros((0, 4, 2)), np.zeros((0, 4, 2)), np.zeros(0), detected
    iou = iou_matrix(detected, words)
    best = iou.argmax(axis=1)
    best_iou = iou.max(axis=1)
    positive = best_iou >= config.pos_iou
    # A candidate that holds most of a word (e.g. one box over two words) is not a clean
    # negative: it is text the verifier should not learn to reject. Left out.
    area_d = np.abs(polygon_area(detected))[:, None]
    area_w = np.abs(polygon_area(words))[None, :]
    intersection = iou * (area_d + area_w) / (1.0 + iou)
    covers_word = (intersection >= config.neg_cover * np.maximum(area_w, 1e-9)).any(axis=1)
    negative = (best_iou < config.neg_iou) & ~covers_word
    return detected[positive], words[best[positive]], best_iou[positive], detected[negative]


def synth_shard(
    index: int, config: VerifierDataConfig, detect: Detect | None, source: Any
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Shard ``index`` of the synthetic part: jittered and detector positives, hard negatives.
    Returns the arrays and the scenes the engine failed to render (skipped)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, PART_TAGS["synth"], index]))
    builder = ShardBuilder()
    skipped: list[str] = []
    start = index * config.images_per_shard
    for j in range(start, min(config.synth_images, start + config.images_per_shard)):
        try:
            sample = source[j]
        except ValueError as error:  # an engine failure, named by OnTheFlySynthesis
            skipped.append(str(error))
            continue
        words = sample.word_quads.astype(np.float64)
        cared = words[~sample.ignore]
        found, targets, ious = jittered_positives(cared, config.positives_per_word, config, rng)
        builder.add(sample.image, found, "jitter", config.context, targets, ious)
        if detect is not None:
            detected = detect(sample.image)
            pos, pos_words, pos_iou, neg = _split_detections(detected, words, config)
            # Detector hits on don't-care words are neither lesson.
            if len(pos):
                cared_hit = ~sample.ignore[iou_matrix(pos, words).argmax(axis=1)]
                pos, pos_words, pos_iou = pos[cared_hit], pos_words[cared_hit], pos_iou[cared_hit]
            builder.add(sample.image, pos, "detector", config.context, pos_words, pos_iou)
            builder.add(sample.image, neg, "hard", config.context)
    return builder.arrays(), skipped


def _background_images(config: VerifierDataConfig) -> tuple[Any, Any]:
    """The text-free background source and loader (None, None = procedural)."""
    if not config.negative_backgrounds:
        return None, None
    from synthloc.synth.runner import SynthError, background_source

    folder = Path(config.negative_backgrounds)
    try:
        source = background_source(folder)
    except SynthError as error:
        raise ValueError(str(error)) from error
    if source is None or not source.names:
        raise ValueError(f"{folder}: no background images found")
    return source, source.open(cache_size=4)


def background_shard(
    index: int, config: VerifierDataConfig, detect: Detect | None, backgrounds: tuple[Any, Any]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Shard ``index`` of the background part: random and detected negatives. Returns the
    arrays and the names of backgrounds that could not be read (skipped)."""
    from synthloc.synth import default_background
    from synthloc.synth.backgrounds import BackgroundError

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, PART_TAGS["bg"], index]))
    source, loader = backgrounds
    builder = ShardBuilder()
    skipped: list[str] = []
    start = index * config.images_per_shard
    for j in range(start, min(config.background_images, start + config.images_per_shard)):
        if source is None:
            image = default_background(rng, config.synth_size).image
        else:
            position = j % len(source.names)
            try:
                image = loader.load(position, config.synth_size)[0].image
            except BackgroundError as error:
                skipped.append(f"{source.names[position]}: {error}")
                continue
        quads = random_quads(image.shape[:2], config.random_negatives_per_image, rng)
        builder.add(image, quads, "background", config.context)
        if detect is not None:
            builder.add(image, detect(image), "background_hard", config.context)
    return builder.arrays(), skipped


def read_word_crops(folder: Path) -> list[tuple[str, np.ndarray]]:
    """``coords.txt`` of an ICDAR word-crop folder: (file name, quad [4, 2]) per line."""
    listing = folder / "coords.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing}: word-crop coordinates not found")
    entries = []
    for number, line in enumerate(listing.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        try:
            quad = np.array([float(v) for v in parts[1:9]], np.float64).reshape(4, 2)
        except ValueError:
            raise ValueError(f"{listing}:{number}: expected name,x1,y1,...,x4,y4") from None
        entries.append((parts[0], quad))
    return entries


def real_shard(
    index: int, config: VerifierDataConfig, entries: list[tuple[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Shard ``index`` of the real part: jittered quads of real word crops (the crops are tight,
    so the context beyond them is black)."""
    from synthloc.data.datasets import read_rgb

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, PART_TAGS["real"], index]))
    builder = ShardBuilder()
    skipped: list[str] = []
    folder = Path(config.real_words)
    start = index * config.images_per_shard
    for name, quad in entries[start : start + config.images_per_shard]:
        try:
            image = read_rgb(folder / name)
        except (OSError, ValueError) as error:
            skipped.append(f"{folder / name}: {error}")
            continue
        found, targets, ious = jittered_positives(quad[None], config.real_per_word, config, rng)
        builder.add(image, found, "real", config.context, targets, ious, replicate_border=True)
    return builder.arrays(), skipped


# -- the folder -------------------------------------------------------------------------------


def _shard_path(out: Path, part: str, index: int) -> Path:
    return out / "shards" / f"{part}_{index:05d}.npz"


def _write_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            crops=arrays["crops"],
            label=arrays["label"],
            offsets=arrays["offsets"],
            kind=arrays["kind"],
            iou=arrays["iou"],
        )


def first_stage(config: VerifierDataConfig, num_threads: int | None = None) -> Detect | None:
    """The first-stage detector of ``config`` as quads-of-an-image, or None."""
    if not config.detector:
        return None
    from synthloc.detect import Detector

    detector = Detector.load(
        config.detector,
        scales=config.detector_scales,
        threshold=config.detector_threshold,
        num_threads=num_threads,
        verify=False,
    )
    # Candidates in the engine's (tight) box convention, like its words.
    detector.box_pad = detector.engine_box_pad

    def detect(image: np.ndarray) -> np.ndarray:
        found = detector(image)[: config.max_detections]
        return np.array([d.quad for d in found], np.float64).reshape(-1, 4, 2)

    return detect


def generate(
    config: VerifierDataConfig,
    out: str | os.PathLike[str],
    *,
    num_threads: int | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Make (or finish) the dataset of ``config`` in ``out``; returns the counts per kind.

    A folder made with another config is refused (DataFolderError); shards already written
    are kept, so an interrupted run resumes. Unreadable backgrounds or word crops are named in
    the log and skipped (counted as ``skipped`` in the manifest).
    """
    from tqdm import tqdm

    from synthloc.data.datasets import OnTheFlySynthesis
    from synthloc.synth.config import SynthConfig

    folder = Path(out)
    saved = folder / DATA_CONFIG
    text = config_to_json(config)
    if saved.is_file():
        if saved.read_text(encoding="utf-8") != text:
            raise DataFolderError(
                f"{folder}: holds verifier data made with another config ({saved}); "
                "choose a new folder or delete it"
            )
    elif folder.exists() and not folder.is_dir():
        raise DataFolderError(f"{folder}: not a folder")
    # Every input is opened before anything is written.
    detect = first_stage(config, num_threads)
    backgrounds = _background_images(config) if config.background_images else (None, None)
    entries = read_word_crops(Path(config.real_words)) if config.real_words else []
    if config.synth_corpus and not Path(config.synth_corpus).exists():
        raise FileNotFoundError(f"{config.synth_corpus}: text corpus (synth_corpus) not found")
    synth_config = SynthConfig(size=config.synth_size, corpus=config.synth_corpus or None)
    source = OnTheFlySynthesis(config.synth_backgrounds or None, synth_config, config.seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, text)

    per_shard = config.images_per_shard
    jobs: list[tuple[str, int]] = [
        *(("synth", i) for i in range(-(-config.synth_images // per_shard))),
        *(("bg", i) for i in range(-(-config.background_images // per_shard))),
        *(("real", i) for i in range(-(-len(entries) // per_shard))),
    ]
    skipped: list[str] = []
    for part, index in tqdm(jobs, disable=not progress, unit="shard"):
        path = _shard_path(folder, part, index)
        if path.is_file():
            continue
        if part == "synth":
            arrays, bad = synth_shard(index, config, detect, source)
        elif part == "bg":
            arrays, bad = background_shard(index, config, detect, backgrounds)
        else:
            arrays, bad = real_shard(index, config, entries)
        for message in bad:
            _log.warning("skipping %s", message)
        skipped += bad
        _write_shard(path, arrays)
    counts = summarise(folder)
    # Counted in this session (a resumed run does not recount finished shards).
    counts["skipped"] = len(skipped)
    write_text_atomic(folder / MANIFEST, json.dumps(counts, indent=1, sort_keys=True))
    return counts


def shard_files(folder: Path) -> list[Path]:
    return sorted((folder / "shards").glob("*.npz"))


def iter_shards(folder: Path) -> Iterator[tuple[Path, dict[str, np.ndarray]]]:
    for path in shard_files(folder):
        try:
            with np.load(path) as data:
                yield path, {key: data[key] for key in data.files}
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{path}: not a readable verifier data shard ({error})") from error


def summarise(folder: Path) -> dict[str, int]:
    """Sample counts per kind (and ``positives``, ``negatives``) over a folder's shards."""
    counts = {name: 0 for name in KINDS}
    for _, arrays in iter_shards(folder):
        codes, numbers = np.unique(arrays["kind"], return_counts=True)
        for code, number in zip(codes, numbers):
            counts[KINDS[int(code)]] += int(number)
    counts["positives"] = counts["jitter"] + counts["detector"] + counts["real"]
    counts["negatives"] = counts["hard"] + counts["background"] + counts["background_hard"]
    return counts


@dataclass
class VerifierData:
    """A dataset loaded into memory: the arrays of :class:`ShardBuilder`, concatenated."""

    crops: np.ndarray
    label: np.ndarray
    offsets: np.ndarray
    kind: np.ndarray
    iou: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index: np.ndarray) -> VerifierData:
        return VerifierData(
            self.crops[index],
            self.label[index],
            self.offsets[index],
            self.kind[index],
            self.iou[index],
        )


def load_data(folders: list[str], kinds: list[str] | None = None) -> VerifierData:
    """Every shard of ``folders`` (optionally only samples of ``kinds``), in a fixed order.

    ValueError naming the folder when it holds no verifier data or a shard is unreadable.
    """
    parts = []
    wanted = None if not kinds else {KIND_CODES[k] for k in kinds}
    for name in folders:
        folder = Path(name)
        if not (folder / DATA_CONFIG).is_file():
            raise FileNotFoundError(
                f"{folder}: no verifier data here (make it with `synthloc verifier-data`)"
            )
        for _, arrays in iter_shards(folder):
            if wanted is not None:
                keep = np.isin(arrays["kind"], list(wanted))
                arrays = {key: value[keep] for key, value in arrays.items()}
            parts.append(arrays)
    merged = (
        empty_arrays()
        if not parts
        else {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    )
    if len(merged["label"]) == 0:
        raise ValueError(f"{', '.join(folders)}: the verifier data holds no samples")
    return VerifierData(**merged)


def offset_scale() -> np.ndarray:
    """Crop size per offset coordinate (x by width, y by height), for pixel errors."""
    return np.tile(CROP_SIZE, 4)


__all__ = [
    "KINDS",
    "DataFolderError",
    "JitterConfig",
    "VerifierData",
    "VerifierDataConfig",
    "generate",
    "jitter_quads",
    "load_data",
    "random_quads",
    "read_word_crops",
    "summarise",
]
