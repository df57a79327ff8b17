"""Output sinks: where a rendered shard goes, per output format, and how to check it later.

* :class:`TarShards` (``shards``): ``shard-NNNNNN.tar`` on a local folder or any fsspec URL.
* :class:`IcdarFolder` (``icdar``): ``images/<name>.<ext>`` and ``gt/gt_<name>.txt``; local.
* :class:`H5Parts` (``synthtext-h5``): ``parts/part-NNNNNN.h5`` per shard, merged into
  ``SynthText.h5`` by :meth:`H5Parts.finish`; local.

Every sink writes each file atomically and returns the size and SHA-256 of the shard's file
(None for the icdar folder, whose shard is many files); :meth:`verify` checks a shard recorded
as done before a rerun skips it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from synthloc.data.sample import Sample
from synthloc.data.shards import EncodedSample, ShardError, index_shard, shard_bytes, shard_name
from synthloc.data.store import Store
from synthloc.synth.errors import SynthError
from synthloc.synth.manifest import ShardStats, sample_name

H5_PARTS_DIR = "parts"
H5_NAME = "SynthText.h5"
FORMATS = ("shards", "icdar", "synthtext-h5")


@dataclass
class ShardContent:
    """The samples of one shard, in index order: encoded (shards, icdar) or raw (h5)."""

    indices: list[int] = field(default_factory=list)
    encoded: list[EncodedSample] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


class Sink(Protocol):
    """One output format. ``write`` runs in worker processes; the rest in the parent."""

    store: Store

    def shard_file(self, shard: int) -> str | None:
        """The shard's file relative to the output folder (None: not one file)."""
        ...

    def write(self, shard: int, content: ShardContent) -> tuple[int | None, str | None]:
        """Write a shard; returns (size in bytes, SHA-256) of its file, or (None, None)."""
        ...

    def verify(self, stats: ShardStats) -> str | None:
        """None if the shard recorded by ``stats`` is intact, else what is wrong with it."""
        ...

    def finish(self, shards: Sequence[ShardStats]) -> None:
        """The format's last step once every shard is written."""
        ...


def make_sink(store: Store, fmt: str, image_format: str, seed: int) -> Sink:
    """The sink of ``fmt``; :class:`SynthError` if the format needs a local folder."""
    if fmt == "shards":
        return TarShards(store)
    if store.local is None:
        raise SynthError(f"{store.path()}: --format {fmt} needs a local output folder")
    if fmt == "icdar":
        return IcdarFolder(store, image_format, seed)
    if fmt == "synthtext-h5":
        return H5Parts(store)
    raise SynthError(f"format must be one of {FORMATS}, got {fmt!r}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify_file(store: Store, name: str, stats: ShardStats) -> str | None:
    size = store.size(name)
    if size is None:
        return "missing"
    if stats.bytes is None or stats.sha256 is None:
        return None if size > 0 else "empty"
    if size != stats.bytes:
        return f"{size} bytes, {stats.bytes} recorded"
    try:
        digest = _sha256(store.read_bytes(name))
    except OSError as exc:
        return f"unreadable ({exc})"
    return None if digest == stats.sha256 else "checksum differs from the recorded one"


class TarShards:
    def __init__(self, store: Store) -> None:
        self.store = store

    def shard_file(self, shard: int) -> str:
        return shard_name(shard)

    def write(self, shard: int, content: ShardContent) -> tuple[int | None, str | None]:
        data = shard_bytes(content.encoded)
        self.store.write_bytes(self.shard_file(shard), data)
        return len(data), _sha256(data)

    def verify(self, stats: ShardStats) -> str | None:
        name = self.shard_file(stats.index)
        problem = _verify_file(self.store, name, stats)
        if problem is None and stats.sha256 is None:
            # A record from before checksums: the tar headers must hold every sample.
            try:
                found = len(index_shard(name, self.store))
            except ShardError as exc:
                return str(exc)
            if found != stats.samples:
                return f"{found} samples, {stats.samples} recorded"
        return problem

    def finish(self, shards: Sequence[ShardStats]) -> None:
        return None


class IcdarFolder:
    def __init__(self, store: Store, image_format: str, seed: int) -> None:
        self.store = store
        self.image_format = image_format
        self.seed = seed

    def shard_file(self, shard: int) -> None:
        return None

    def _names(self, index: int) -> tuple[str, str]:
        name = sample_name(self.seed, index)
        return f"images/{name}.{self.image_format}", f"gt/gt_{name}.txt"

    def write(self, shard: int, content: ShardContent) -> tuple[int | None, str | None]:
        from synthloc.data.icdar import write_icdar_gt

        assert self.store.local is not None
        for index, encoded in zip(content.indices, content.encoded):
            record = json.loads(encoded.json_bytes.decode("utf-8"))
            image_name, gt_name = self._names(index)
            self.store.write_bytes(image_name, encoded.image_bytes)
            quads = np.asarray(record["word_quads"], np.float32).reshape(-1, 4, 2)
            write_icdar_gt(self.store.local / gt_name, quads, record["words"])
        return None, None

    def verify(self, stats: ShardStats) -> str | None:
        for index in range(stats.first_sample, stats.first_sample + stats.samples):
            image_name, gt_name = self._names(index)
            if not self.store.size(image_name):
                return f"{self.store.path(image_name)} missing or empty"
            # An image without words has an empty GT file (written atomically, so an empty
            # file is a complete one).
            if self.store.size(gt_name) is None:
                return f"{self.store.path(gt_name)} missing"
        return None

    def finish(self, shards: Sequence[ShardStats]) -> None:
        return None


class H5Parts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def shard_file(self, shard: int) -> str:
        return f"{H5_PARTS_DIR}/part-{shard:06d}.h5"

    def write(self, shard: int, content: ShardContent) -> tuple[int | None, str | None]:
        from synthloc.data.synthtext_h5 import write_synthtext_h5

        assert self.store.local is not None
        name = self.shard_file(shard)
        write_synthtext_h5(self.store.local / name, content.samples)
        data = self.store.read_bytes(name)
        return len(data), _sha256(data)

    def verify(self, stats: ShardStats) -> str | None:
        name = self.shard_file(stats.index)
        if not self.store.exists(name) and self.store.exists(H5_NAME):
            return None  # already merged by an earlier run
        return _verify_file(self.store, name, stats)

    def finish(self, shards: Sequence[ShardStats]) -> None:
        from synthloc.data.synthtext_h5 import read_synthtext_h5, write_synthtext_h5

        assert self.store.local is not None
        parts = [self.store.local / self.shard_file(s.index) for s in shards]
        if parts and not all(p.exists() for p in parts):
            return  # already merged by an earlier run
        samples: Iterator[Sample] = (s for p in parts for s in read_synthtext_h5(p))
        write_synthtext_h5(self.store.local / H5_NAME, samples)
        self.store.remove_tree(H5_PARTS_DIR)
