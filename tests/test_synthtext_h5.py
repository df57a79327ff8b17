"""SynthText results files: layout written like the original, exact round trips, bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from synthloc.data.sample import Sample
from synthloc.data.synthtext_h5 import (
    SynthTextFormatError,
    read_synthtext_h5,
    split_instances,
    write_synthtext_h5,
)

SAMPLE_H5 = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "synthtext_sample"
    / "SynthText_results_sample.h5"
)


def make_samples() -> list[Sample]:
    rng = np.random.default_rng(0)
    words = ["Hello", "wörld", "42"]
    n_chars = sum(len(w) for w in words)
    with_text = Sample(
        image=rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
        word_quads=(rng.random((3, 4, 2)) * 40).astype(np.float32),
        words=words,
        char_quads=(rng.random((n_chars, 4, 2)) * 40).astype(np.float32),
        name="7_00000000",
    )
    one_word = Sample(
        image=rng.integers(0, 256, (20, 20, 3), dtype=np.uint8),
        word_quads=np.array([[[1, 2], [9, 2], [9, 6], [1, 6]]], np.float32),
        words=["ab"],
        char_quads=np.array([[[1, 2], [5, 2], [5, 6], [1, 6]], [[5, 2], [9, 2], [9, 6], [5, 6]]]),
        name="7_00000001",
    )
    empty = Sample(
        image=np.zeros((16, 24, 3), np.uint8), word_quads=np.zeros((0, 4, 2)), words=[], name="7_2"
    )
    return [with_text, one_word, empty]


def assert_same(a: Sample, b: Sample) -> None:
    assert a.name == b.name and a.words == b.words
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.word_quads, b.word_quads)
    np.testing.assert_array_equal(a.char_quads, b.char_quads)
    np.testing.assert_array_equal(a.ignore, b.ignore)


def test_generated_round_trip_and_layout(tmp_path: Path) -> None:
    samples = make_samples()
    path = tmp_path / "SynthText.h5"
    assert write_synthtext_h5(path, samples) == 3
    back = {s.name: s for s in read_synthtext_h5(path)}
    for sample in samples:
        assert_same(sample, back[sample.name])
    with h5py.File(path, "r") as f:
        item = f["data/7_00000000"]
        assert item.dtype == np.uint8 and item.shape == (30, 40, 3)
        assert item.attrs["wordBB"].shape == (2, 4, 3) and item.attrs["wordBB"].dtype == np.float32
        assert item.attrs["charBB"].shape == (2, 4, 12) and item.attrs["charBB"].dtype == np.float64
        # wordBB[:, k, i] is corner k (x, y) of word i.
        np.testing.assert_array_equal(item.attrs["wordBB"][:, 2, 1], samples[0].word_quads[1, 2])
        assert item.attrs["txt"].dtype.kind == "S"
        assert [t.decode() for t in item.attrs["txt"]] == ["Hello", "wörld", "42"]
        assert f["data/7_2"].attrs["wordBB"].shape == (2, 4, 0)


def test_reader_handles_instances_and_squeezed_boxes(tmp_path: Path) -> None:
    path = tmp_path / "multi.h5"
    quads = np.arange(3 * 8, dtype=np.float32).reshape(3, 4, 2)
    with h5py.File(path, "w") as f:
        item = f.create_dataset("data/a", data=np.zeros((8, 8, 3), np.uint8))
        item.attrs["wordBB"] = quads.transpose(2, 1, 0)
        item.attrs["charBB"] = np.zeros((2, 4, 6))
        # One instance holds two words on two lines, padded with spaces like the original's.
        item.attrs["txt"] = np.array([b" ab  \ncd", b"ef"], dtype="S9")
        single = f.create_dataset("data/b", data=np.zeros((8, 8, 3), np.uint8))
        single.attrs["wordBB"] = quads[0].T  # squeezed [2, 4]
        single.attrs["charBB"] = np.zeros((2, 4, 1))
        single.attrs["txt"] = np.array([b"x"])
    a, b = read_synthtext_h5(path)
    assert a.words == ["ab", "cd", "ef"]
    np.testing.assert_array_equal(a.word_quads, quads)
    assert b.words == ["x"] and b.word_quads.shape == (1, 4, 2)
    assert split_instances([b"I'm afraid", "Saad Mufti\nLibrary"]) == [
        "I'm",
        "afraid",
        "Saad",
        "Mufti",
        "Library",
    ]


def test_mismatched_counts_name_the_item(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        item = f.create_dataset("data/img_3", data=np.zeros((8, 8, 3), np.uint8))
        item.attrs["wordBB"] = np.zeros((2, 4, 2), np.float32)
        item.attrs["charBB"] = np.zeros((2, 4, 1))
        item.attrs["txt"] = np.array([b"a"])
    with pytest.raises(SynthTextFormatError, match=r"bad\.h5:data/img_3: txt has 1 words"):
        list(read_synthtext_h5(path))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(SynthTextFormatError, match=r"junk\.h5"):
        list(read_synthtext_h5(tmp_path / "junk.h5"))


def test_writer_is_atomic_and_rejects_bad_names(tmp_path: Path) -> None:
    path = tmp_path / "out.h5"
    samples = make_samples()
    samples[1].name = "bad/name"
    with pytest.raises(ValueError, match="bad/name"):
        write_synthtext_h5(path, samples)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    samples[1].name = samples[0].name
    with pytest.raises(ValueError, match="duplicate"):
        write_synthtext_h5(path, samples)


def test_original_sample_reads_and_round_trips(tmp_path: Path) -> None:
    if not SAMPLE_H5.exists():
        pytest.skip("shared data not present")
    original = list(read_synthtext_h5(SAMPLE_H5))
    assert [s.name for s in original] == [
        "hiking_125.jpg_0",
        "indian+musicians_116.jpg_0",
        "sandwich_96.jpg_0",
        "sea_15.jpg_0",
        "village_43.jpg_0",
    ]
    assert [len(s.words) for s in original] == [8, 22, 13, 15, 12]
    assert [len(s.char_quads) for s in original] == [35, 92, 58, 99, 44]
    sea = original[3]
    assert sea.image.shape == (375, 600, 3)
    assert sea.words[:4] == ["From:", "It's", "a", "I"]
    # The engine's point order is ours: clockwise on screen from the top-left, so the shoelace
    # area with y down is positive for every word and character.
    for s in original:
        for quads in (s.word_quads, s.char_quads):
            x, y = quads[..., 0].astype(np.float64), quads[..., 1].astype(np.float64)
            signed = 0.5 * np.sum(x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y, axis=1)
            assert np.all(signed > 0)
    # Each character box lies inside its word box (up to rounding): the same per-word order.
    first_word, first_chars = sea.word_quads[0], sea.char_quads[: len(sea.words[0])]
    lo, hi = first_word.min(0) - 1, first_word.max(0) + 1
    assert np.all((first_chars >= lo) & (first_chars <= hi))

    path = tmp_path / "copy.h5"
    write_synthtext_h5(path, original)
    for a, b in zip(original, read_synthtext_h5(path), strict=True):
        assert_same(a, b)
