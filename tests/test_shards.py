"""Tar shards: exact round trips, reproducible bytes, random access, atomicity, bad input."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from synthloc.data.sample import Sample
from synthloc.data.shards import (
    SCHEMA_VERSION,
    ShardDataset,
    ShardError,
    ShardWriter,
    encode_image,
    iter_shard,
    read_manifest,
    read_shard_records,
    sample_key,
    shard_name,
    write_manifest,
)


def make_sample(rng: np.random.Generator, name: str, n_words: int = 3) -> Sample:
    h, w = int(rng.integers(40, 80)), int(rng.integers(40, 80))
    words = [
        "".join(rng.choice(list("abcdéfgh"), size=int(rng.integers(1, 6)))) for _ in range(n_words)
    ]
    n_chars = sum(len(word) for word in words)
    return Sample(
        image=rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8),
        # Arbitrary float32 values (not round decimals) to test the shortest-repr encoding.
        word_quads=(rng.random((n_words, 4, 2)) * 100).astype(np.float32),
        words=words,
        char_quads=(rng.random((n_chars, 4, 2)) * 100 - 5).astype(np.float32),
        ignore=np.array([i % 2 == 1 for i in range(n_words)]),
        name=name,
    )


def assert_same(a: Sample, b: Sample, pixels: bool = True) -> None:
    assert a.name == b.name
    assert a.words == b.words
    assert a.word_quads.dtype == b.word_quads.dtype == np.float32
    np.testing.assert_array_equal(a.word_quads, b.word_quads)
    np.testing.assert_array_equal(a.char_quads, b.char_quads)
    np.testing.assert_array_equal(a.ignore, b.ignore)
    assert a.image.shape == b.image.shape
    if pixels:
        np.testing.assert_array_equal(a.image, b.image)


def write_samples(path: Path, samples: list[Sample], image_format: str = "png") -> None:
    with ShardWriter(path) as writer:
        for i, sample in enumerate(samples):
            writer.write(sample, sample_key(i), image_format, index=i)


def test_png_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = [make_sample(rng, f"s{i}", n_words=i) for i in range(4)]  # includes 0 words
    path = tmp_path / shard_name(0)
    write_samples(path, samples)
    back = list(iter_shard(path))
    assert len(back) == len(samples)
    for a, b in zip(samples, back):
        assert_same(a, b)
    records = read_shard_records(path)
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert records[0]["word_quads"] == [] and records[0]["char_quads"] == []


def test_jpeg_keeps_geometry_and_is_close(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    smooth = np.zeros((64, 96, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 96, dtype=np.uint8)[None, :]
    smooth[..., 1] = 120
    sample = make_sample(rng, "jpeg")
    sample.image = smooth
    write_samples(tmp_path / "a.tar", [sample], image_format="jpg")
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["000000000.jpg", "000000000.json"]
    (back,) = iter_shard(tmp_path / "a.tar")
    assert_same(sample, back, pixels=False)
    # Quality 95 without chroma subsampling: a smooth image comes back within a few levels.
    assert np.abs(back.image.astype(int) - smooth.astype(int)).max() <= 6


def test_shard_bytes_are_reproducible(tmp_path: Path) -> None:
    samples = [make_sample(np.random.default_rng(2), "x")]
    write_samples(tmp_path / "a.tar", samples, image_format="jpg")
    write_samples(tmp_path / "b.tar", samples, image_format="jpg")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())


def test_dataset_random_access_matches_streaming(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    samples = [make_sample(rng, f"s{i}") for i in range(7)]
    write_samples(tmp_path / shard_name(0), samples[:4])
    write_samples(tmp_path / shard_name(1), samples[4:])
    shards = [
        {"index": 0, "file": shard_name(0), "first_sample": 0, "samples": 4},
        {"index": 1, "file": shard_name(1), "first_sample": 4, "samples": 3},
    ]
    write_manifest(tmp_path, {"seed": 0, "count": 7, "format": "shards", "shards": shards})
    dataset = ShardDataset(tmp_path)
    assert len(dataset) == 7
    for i in [6, 0, 4, 3, 5]:  # out of order, across the shard boundary
        assert_same(samples[i], dataset[i])
    assert_same(samples[6], dataset[-1])
    assert dataset.record(5)["index"] == 1  # index within the shard written above
    with pytest.raises(IndexError):
        dataset[7]
    # Without a manifest the counts come from the tar headers.
    (tmp_path / "manifest.json").unlink()
    assert len(ShardDataset(tmp_path)) == 7


def test_failed_write_leaves_previous_shard(tmp_path: Path) -> None:
    path = tmp_path / shard_name(0)
    sample = make_sample(np.random.default_rng(4), "ok")
    write_samples(path, [sample])
    before = path.read_bytes()
    with pytest.raises(RuntimeError), ShardWriter(path) as writer:
        writer.write(sample, sample_key(0), "png")
        raise RuntimeError("killed mid-shard")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left


def test_truncated_shard_is_named(tmp_path: Path) -> None:
    path = tmp_path / shard_name(0)
    write_samples(path, [make_sample(np.random.default_rng(5), "t")])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=r"shard-000000\.tar"):
        list(iter_shard(path))


def test_manifest_round_trip_and_errors(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"seed": 3, "count": 0, "shards": []})
    manifest = read_manifest(tmp_path)
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["seed"] == 3
    with pytest.raises(ShardError, match="no manifest"):
        read_manifest(tmp_path / "missing")
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ShardError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}), encoding="utf-8")
    with pytest.raises(ShardError, match="newer"):
        read_manifest(tmp_path)


def test_encode_image_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="format"):
        encode_image(np.zeros((4, 4, 3), np.uint8), "gif")
