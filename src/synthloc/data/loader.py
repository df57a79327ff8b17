"""From a sample stream to padded training batches: augmentation and target encoding in the
workers, stream samplers split across ranks, and a collate that masks padding out of the loss.

The training data is one infinite stream addressed by a global index ``g``.  With ``world``
ranks and per-rank batch size ``b``, local batch ``k`` of rank ``r`` holds the elements
``g = (k * b + j) * world + r`` for ``j < b``: ranks never overlap, DataLoader workers receive
whole batches from the sampler (so they never overlap either), and the stream position after
``k`` batches is known without any state, which makes resuming exact.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from synthloc.data.datasets import InfiniteSource
from synthloc.data.sample import Sample
from synthloc.data.transforms import AugmentConfig, augment
from synthloc.geometry import pad_quads

__all__ = [
    "Batch",
    "EncodedSample",
    "StreamBatchSampler",
    "TrainingStream",
    "collate",
    "encode_sample",
    "pad_to_stride",
]

_log = logging.getLogger(__name__)
_AUGMENT_TAG = 0x4147
# Index offset for deterministic replacement draws when a source item cannot be read.
_RETRY_OFFSET = 1 << 40


@dataclass
class EncodedSample:
    """One training example ready for batching.

    image: uint8 [H, W, 3], H and W multiples of ``stride`` (zero padded right/bottom).
    target: float32 [7, H/stride, W/stride]; positive, ignore: bool [H/stride, W/stride]
        (padding cells are ignore).
    valid_hw: the unpadded image size. word_quads / word_ignore: the augmented ground truth
        (float32 [N, 4, 2], bool [N]) for validation. failures: unreadable items skipped.
    """

    image: np.ndarray
    target: np.ndarray
    positive: np.ndarray
    ignore: np.ndarray
    valid_hw: tuple[int, int]
    word_quads: np.ndarray
    word_ignore: np.ndarray
    name: str = ""
    failures: int = 0


@dataclass
class Batch:
    """A padded batch.

    images: uint8 [N, H, W, 3] (pass through ``synthloc.model.preprocess``).
    target: float32 [N, 7, Hc, Wc]; positive, ignore: bool [N, Hc, Wc]; cells outside an
        image's valid area are ignore. valid_hw: per-image unpadded sizes.
    """

    images: torch.Tensor
    target: torch.Tensor
    positive: torch.Tensor
    ignore: torch.Tensor
    valid_hw: list[tuple[int, int]]
    word_quads: list[np.ndarray] = field(default_factory=list)
    word_ignore: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    failures: int = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def pin_memory(self) -> Batch:
        self.images = self.images.pin_memory()
        self.target = self.target.pin_memory()
        self.positive = self.positive.pin_memory()
        self.ignore = self.ignore.pin_memory()
        return self


def pad_to_stride(image: np.ndarray, stride: int) -> np.ndarray:
    """Zero-pad uint8 [H, W, 3] right/bottom to multiples of ``stride``."""
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if pad_h == 0 and pad_w == 0:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))


def encode_sample(
    sample: Sample, stride: int, min_size: float, dense_shrink: float | None = None
) -> EncodedSample:
    """Pad the image and encode its words into grid targets.

    ``dense_shrink`` None: the paper's one-cell-per-word targets (``model/targets.py``), the
    image padded to a multiple of ``stride``.  A number: dense targets (``dense_targets.py``)
    with that core shrink, the image padded to a multiple of 32 as fcrn-dense pads its input.
    """
    from synthloc.model.dense import PAD_MULTIPLE
    from synthloc.model.dense_targets import encode_dense_targets
    from synthloc.model.targets import encode_targets

    valid_hw = (int(sample.image.shape[0]), int(sample.image.shape[1]))
    image = pad_to_stride(sample.image, stride if dense_shrink is None else PAD_MULTIPLE)
    image_hw = (int(image.shape[0]), int(image.shape[1]))
    words = (sample.word_quads, sample.ignore, image_hw, stride, valid_hw, min_size)
    if dense_shrink is None:
        grid = encode_targets(*words)
    else:
        grid = encode_dense_targets(*words, shrink=dense_shrink)
    return EncodedSample(
        image=image,
        target=np.asarray(grid.target, np.float32),
        positive=np.asarray(grid.positive, bool),
        ignore=np.asarray(grid.ignore, bool),
        valid_hw=valid_hw,
        word_quads=sample.word_quads,
        word_ignore=sample.ignore,
        name=sample.name,
    )


class TrainingStream(torch.utils.data.Dataset[EncodedSample]):
    """Map-style view of the infinite stream: element ``g`` -> augmented, encoded sample.

    Augmentation draws from ``default_rng(SeedSequence([seed, tag, g]))``; then every word box
    grows by ``box_pad`` of its height on every side (the box convention the model learns).
    An item the source cannot produce (corrupt file, engine failure: OSError/ValueError) is
    replaced by the element ``g + k * 2**40`` (k = 1, 2, ...), a deterministic choice, and
    counted in ``failures``; after ``max_retries`` failures in a row the last error is raised.
    """

    def __init__(
        self,
        source: InfiniteSource,
        augment_config: AugmentConfig | None,
        stride: int,
        min_size: float,
        seed: int,
        max_retries: int = 8,
        dense_shrink: float | None = None,
        box_pad: float = 0.0,
    ) -> None:
        self.source = source
        self.dense_shrink = dense_shrink
        self.box_pad = float(box_pad)
        self.augment_config = augment_config
        self.stride = int(stride)
        self.min_size = float(min_size)
        self.seed = int(seed)
        self.max_retries = int(max_retries)

    def __len__(self) -> int:
        # Infinite stream; the batch sampler decides which elements are read.
        return 1 << 62

    def __getitem__(self, index: int) -> EncodedSample:
        failures = 0
        while True:
            element = int(index) + failures * _RETRY_OFFSET
            try:
                sample = self.source[element]
                break
            except (OSError, ValueError) as error:
                failures += 1
                _log.warning("skipping stream element %d: %s", element, error)
                if failures > self.max_retries:
                    raise
        if self.augment_config is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, _AUGMENT_TAG, element]))
            sample = augment(sample, self.augment_config, rng)
        if self.box_pad:
            quads = pad_quads(sample.word_quads, self.box_pad).astype(np.float32)
            sample = dataclasses.replace(sample, word_quads=quads)
        encoded = encode_sample(sample, self.stride, self.min_size, self.dense_shrink)
        encoded.failures = failures
        return encoded


class StreamBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of global stream indices for one rank, starting at local batch ``start_batch``.

    Yields ``num_batches`` batches (forever when None). See the module docstring for the
    index layout.
    """

    def __init__(
        self,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        num_batches: int | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start_batch = int(start_batch)
        self.num_batches = num_batches

    def batch_indices(self, batch: int) -> list[int]:
        """Global stream indices of local batch number ``batch``."""
        first = batch * self.batch_size
        return [(first + j) * self.world_size + self.rank for j in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start_batch
        while self.num_batches is None or batch < self.start_batch + self.num_batches:
            yield self.batch_indices(batch)
            batch += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("an endless stream sampler has no length")
        return self.num_batches


def collate(items: Sequence[EncodedSample]) -> Batch:
    """Pad images (zeros) and targets to the batch maximum; padded cells become ignore."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    max_h = max(item.image.shape[0] for item in items)
    max_w = max(item.image.shape[1] for item in items)
    max_gh = max(item.target.shape[1] for item in items)
    max_gw = max(item.target.shape[2] for item in items)
    n = len(items)
    images = np.zeros((n, max_h, max_w, 3), np.uint8)
    target = np.zeros((n, items[0].target.shape[0], max_gh, max_gw), np.float32)
    positive = np.zeros((n, max_gh, max_gw), bool)
    ignore = np.ones((n, max_gh, max_gw), bool)
    for i, item in enumerate(items):
        h, w = item.image.shape[:2]
        gh, gw = item.target.shape[1:]
        images[i, :h, :w] = item.image
        target[i, :, :gh, :gw] = item.target
        positive[i, :gh, :gw] = item.positive
        ignore[i, :gh, :gw] = item.ignore
    return Batch(
        images=torch.from_numpy(images),
        target=torch.from_numpy(target),
        positive=torch.from_numpy(positive),
        ignore=torch.from_numpy(ignore),
        valid_hw=[item.valid_hw for item in items],
        word_quads=[item.word_quads for item in items],
        word_ignore=[item.word_ignore for item in items],
        names=[item.name for item in items],
        failures=sum(item.failures for item in items),
    )
