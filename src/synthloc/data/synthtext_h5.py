"""The original SynthText engine's results file (``SynthText.h5``): reading and writing.

Layout (checked against the engine's own ``SynthText_results_sample.h5``)::

    data/<name>            uint8 dataset [H, W, 3], RGB
        attrs["wordBB"]    float32 [2, 4, N]: (x|y, corner, word), corners clockwise from the
                           top-left on screen (TL, TR, BR, BL), pixel coordinates
        attrs["charBB"]    float64 [2, 4, M]: the same for every non-whitespace character
        attrs["txt"]       fixed-length bytes [T]: one string per *text instance*; an instance
                           may hold several words separated by spaces and newlines

The words are the whitespace-split instances, in order, and ``wordBB`` has one box per word.
Some SynthText tools squeeze a single box to ``[2, 4]``; the reader accepts that too.

The writer stores one word per ``txt`` entry (UTF-8 bytes), so every reader that splits
``txt`` on whitespace recovers exactly our words.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from synthloc.atomic import atomic_path
from synthloc.data.sample import Sample


class SynthTextFormatError(ValueError):
    """A SynthText results file cannot be read; the message names the file and the item."""


def _boxes_to_quads(boxes: np.ndarray, where: str) -> np.ndarray:
    """``[2, 4, N]`` (or squeezed ``[2, 4]``) -> float32 ``[N, 4, 2]``."""
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[:2] != (2, 4):
        raise SynthTextFormatError(f"{where}: expected boxes of shape [2, 4, N], got {arr.shape}")
    return np.ascontiguousarray(arr.transpose(2, 1, 0))


def _quads_to_boxes(quads: np.ndarray, dtype: type) -> np.ndarray:
    """float ``[N, 4, 2]`` -> ``[2, 4, N]``."""
    return np.ascontiguousarray(np.asarray(quads).reshape(-1, 4, 2).transpose(2, 1, 0), dtype=dtype)


def _decode_text(value: object) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def split_instances(txt: Iterable[object]) -> list[str]:
    """Words of SynthText ``txt`` instances: each instance split on any whitespace."""
    return [word for instance in txt for word in _decode_text(instance).split()]


def read_synthtext_h5(path: str | os.PathLike[str]) -> Iterator[Sample]:
    """Samples of a SynthText results file, in the file's (sorted key) order.

    Sample.name is the key under ``data/`` (e.g. ``"hiking_125.jpg_0"``); ``ignore`` is all
    False. Raises :class:`SynthTextFormatError` naming the file and key when the word count of
    ``txt`` does not match ``wordBB`` or a box array has the wrong shape.
    """
    import h5py

    p = Path(path)
    try:
        handle = h5py.File(p, "r")
    except OSError as exc:
        raise SynthTextFormatError(f"{p}: cannot open as HDF5 ({exc})") from exc
    with handle:
        if "data" not in handle:
            raise SynthTextFormatError(f"{p}: no 'data' group (not a SynthText results file)")
        group = handle["data"]
        for key in sorted(group.keys()):
            yield _read_item(group[key], f"{p}:data/{key}", key)


def _read_item(dataset: object, where: str, key: str) -> Sample:
    image = np.asarray(dataset[()])  # type: ignore[index]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SynthTextFormatError(
            f"{where}: expected uint8 [H, W, 3], got {image.dtype} {image.shape}"
        )
    attrs = dataset.attrs  # type: ignore[attr-defined]
    for name in ("wordBB", "charBB", "txt"):
        if name not in attrs:
            raise SynthTextFormatError(f"{where}: missing attribute {name!r}")
    word_quads = _boxes_to_quads(attrs["wordBB"], f"{where} wordBB")
    char_quads = _boxes_to_quads(attrs["charBB"], f"{where} charBB")
    words = split_instances(np.atleast_1d(attrs["txt"]))
    if len(words) != len(word_quads):
        raise SynthTextFormatError(
            f"{where}: txt has {len(words)} words but wordBB has {len(word_quads)} boxes"
        )
    n_chars = sum(len(w) for w in words)
    if n_chars != len(char_quads):
        raise SynthTextFormatError(
            f"{where}: txt has {n_chars} characters but charBB has {len(char_quads)} boxes"
        )
    return Sample(
        image=np.ascontiguousarray(image),
        word_quads=word_quads,
        words=words,
        char_quads=char_quads,
        ignore=np.zeros(len(words), dtype=bool),
        name=key,
    )


def _check_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"sample name {name!r} cannot be an HDF5 key under data/")
    return name


def add_synthtext_sample(group: object, sample: Sample) -> None:
    """Store one sample as ``<group>/<sample.name>`` with wordBB/charBB/txt attributes."""
    name = _check_name(sample.name)
    for word in sample.words:
        if not word or any(ch.isspace() for ch in word):
            raise ValueError(f"sample {name!r}: word {word!r} is empty or contains whitespace")
    dataset = group.create_dataset(name, data=np.ascontiguousarray(sample.image, dtype=np.uint8))  # type: ignore[attr-defined]
    dataset.attrs["wordBB"] = _quads_to_boxes(sample.word_quads, np.float32)
    dataset.attrs["charBB"] = _quads_to_boxes(sample.char_quads, np.float64)
    encoded = [w.encode("utf-8") for w in sample.words]
    # Fixed-length byte strings, as the original writes them (h5py needs itemsize >= 1).
    width = max([len(e) for e in encoded] + [1])
    dataset.attrs["txt"] = np.array(encoded, dtype=f"S{width}")


def write_synthtext_h5(path: str | os.PathLike[str], samples: Iterable[Sample]) -> int:
    """Write ``samples`` to a new SynthText results file atomically; returns how many.

    Keys are ``sample.name`` (must be unique and contain no ``/``). The file is built under a
    temporary name in the same folder and renamed into place when complete.
    """
    import h5py

    target = Path(path)
    count = 0
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as handle:
        group = handle.create_group("data")
        for sample in samples:
            if sample.name in group:
                raise ValueError(f"{target}: duplicate sample name {sample.name!r}")
            add_synthtext_sample(group, sample)
            count += 1
    return count
