"""Data sources, stream mixing, samplers, collate and the training config."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from synthloc.data.datasets import (
    EpochShuffle,
    IcdarFolderDataset,
    Mixture,
    OnTheFlySynthesis,
    SynthTextH5Dataset,
    SynthTextMatDataset,
    split_synthtext_words,
)
from synthloc.data.loader import (
    EncodedSample,
    StreamBatchSampler,
    TrainingStream,
    collate,
    encode_sample,
)
from synthloc.data.sample import Sample
from synthloc.synth import SynthConfig
from synthloc.train_config import TrainConfig, apply_overrides, config_to_dict, load_config

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _write_synthtext_release(root: Path) -> None:
    """Two images in the release layout: gt.mat cells written by scipy.io.savemat."""
    image_a = np.full((40, 60, 3), (10, 20, 30), np.uint8)
    image_b = np.full((30, 50, 3), (200, 100, 0), np.uint8)
    _write_png(root / "8" / "a_1.png", image_a)
    _write_png(root / "9" / "b_2.png", image_b)
    # a: two words in one line instance + one in another: quads as 2x4xN (x row, y row).
    quads_a = np.array(
        [
            [[1, 1], [10, 1], [10, 5], [1, 5]],
            [[12, 1], [20, 1], [20, 5], [12, 5]],
            [[1, 8], [9, 8], [9, 12], [1, 12]],
        ],
        np.float64,
    )
    word_bb_a = quads_a.transpose(2, 1, 0)  # [N, 4, 2] -> [2, 4, N]
    word_bb_b = np.array([[3, 9, 9, 3], [4, 4, 7, 7]], np.float64)  # one word: 2x4
    char_bb_a = np.zeros((2, 4, 9))
    char_bb_b = np.zeros((2, 4, 2))
    imnames = np.empty((1, 2), dtype=object)
    imnames[0, 0], imnames[0, 1] = "8/a_1.png", "9/b_2.png"
    word_bb = np.empty((1, 2), dtype=object)
    word_bb[0, 0], word_bb[0, 1] = word_bb_a, word_bb_b
    char_bb = np.empty((1, 2), dtype=object)
    char_bb[0, 0], char_bb[0, 1] = char_bb_a, char_bb_b
    txt = np.empty((1, 2), dtype=object)
    txt[0, 0] = np.array(["Hello   ", "big\nworld"], dtype=object)
    txt[0, 1] = np.array(["ok"], dtype=object)
    scipy.io.savemat(
        str(root / "gt.mat"), {"imnames": imnames, "wordBB": word_bb, "charBB": char_bb, "txt": txt}
    )


def test_synthtext_release_reader(tmp_path: Path) -> None:
    _write_synthtext_release(tmp_path)
    data = SynthTextMatDataset(tmp_path)
    assert len(data) == 2
    first, second = data[0], data[1]
    assert first.words == ["Hello", "big", "world"]
    np.testing.assert_allclose(first.word_quads[1], [[12, 1], [20, 1], [20, 5], [12, 5]])
    assert first.char_quads.shape == (9, 4, 2)
    assert first.image.shape == (40, 60, 3) and tuple(first.image[0, 0]) == (10, 20, 30)
    assert second.words == ["ok"]
    np.testing.assert_allclose(second.word_quads, [[[3, 4], [9, 4], [9, 7], [3, 7]]])
    assert split_synthtext_words(["a b\nc", " d "]) == ["a", "b", "c", "d"]


def test_synthtext_release_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"gt\.mat"):
        SynthTextMatDataset(tmp_path)
    _write_synthtext_release(tmp_path)
    (tmp_path / "9" / "b_2.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"b_2\.png"):
        SynthTextMatDataset(tmp_path)[1]


def test_synthtext_h5_reader_on_the_original_sample() -> None:
    path = SHARED / "synthtext_sample" / "SynthText_results_sample.h5"
    if not path.exists():
        pytest.skip("shared data not present")
    data = SynthTextH5Dataset(path)
    assert len(data) > 0
    sample = data[0]
    assert sample.image.ndim == 3 and len(sample.words) == len(sample.word_quads) > 0


def test_icdar_folder_dataset(tmp_path: Path) -> None:
    _write_png(tmp_path / "images" / "img_1.png", np.zeros((20, 30, 3), np.uint8))
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "gt_img_1.txt").write_text(
        "\ufeff1,2,11,2,11,8,1,8,Hi\r\n3,3,9,3,9,9,3,9,###\r\n", encoding="utf-8"
    )
    data = IcdarFolderDataset(tmp_path)
    sample = data[0]
    assert sample.words == ["Hi", "###"] and sample.ignore.tolist() == [False, True]
    np.testing.assert_allclose(sample.word_quads[0], [[1, 2], [11, 2], [11, 8], [1, 8]])


class _Numbered:
    """A finite source whose sample i is recognisable by its name."""

    def __init__(self, n: int, tag: str = "") -> None:
        self.n, self.tag = n, tag

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.n:
            raise IndexError(index)
        image = np.full((8, 8, 3), index, np.uint8)
        return Sample(
            image=image, word_quads=np.zeros((0, 4, 2)), words=[], name=f"{self.tag}{index}"
        )


def test_epoch_shuffle_visits_everything_once_per_epoch() -> None:
    stream = EpochShuffle(_Numbered(7), seed=3)
    epoch0 = [stream[i].name for i in range(7)]
    epoch1 = [stream[i].name for i in range(7, 14)]
    assert sorted(epoch0) == sorted(epoch1) == [str(i) for i in range(7)]
    assert epoch0 != epoch1  # a fresh permutation per epoch
    again = EpochShuffle(_Numbered(7), seed=3)
    assert [again[i].name for i in (13, 0, 8)] == [epoch1[6], epoch0[0], epoch1[1]]


def test_mixture_is_deterministic_and_follows_weights() -> None:
    streams = [EpochShuffle(_Numbered(5, "a"), 1), EpochShuffle(_Numbered(5, "b"), 2)]
    mix = Mixture(streams, [3.0, 1.0], seed=9)
    names = [mix[i].name[0] for i in range(2000)]
    again = Mixture(streams, [3.0, 1.0], seed=9)
    assert [again[i].name[0] for i in range(2000)] == names
    assert [again[i].name[0] for i in reversed(range(2000))] == names[::-1]  # order-free
    share_a = names.count("a") / len(names)
    assert 0.71 < share_a < 0.79
    assert [Mixture(streams, [3.0, 1.0], seed=10)[i].name[0] for i in range(2000)] != names
    with pytest.raises(ValueError):
        Mixture(streams, [1.0, -1.0], seed=0)


def test_stream_sampler_splits_ranks_without_overlap_and_resumes() -> None:
    world, batch = 3, 4
    seen: list[int] = []
    for rank in range(world):
        sampler = StreamBatchSampler(batch, rank, world, start_batch=0, num_batches=5)
        seen += [g for b in sampler for g in b]
    assert sorted(seen) == list(range(world * batch * 5))  # disjoint and complete
    full = list(StreamBatchSampler(batch, 1, world, 0, 5))
    resumed = list(StreamBatchSampler(batch, 1, world, start_batch=2, num_batches=3))
    assert resumed == full[2:]


def test_collate_pads_and_masks() -> None:
    def item(h: int, w: int) -> EncodedSample:
        quad = np.array([[[2, 2], [30, 2], [30, 14], [2, 14]]], np.float32)
        sample = Sample(image=np.full((h, w, 3), 7, np.uint8), word_quads=quad, words=["w"])
        return encode_sample(sample, stride=32, min_size=4)

    a, b = item(40, 70), item(64, 32)
    assert a.image.shape == (64, 96, 3) and a.valid_hw == (40, 70)
    batch = collate([a, b])
    assert tuple(batch.images.shape) == (2, 64, 96, 3)
    assert tuple(batch.target.shape) == (2, 7, 2, 3)
    assert batch.positive[:, 0, 0].tolist() == [True, True]
    assert batch.ignore[1, :, 1:].all()  # b's padding columns
    assert not batch.ignore[1, :, 0].any()
    assert int(batch.images[1, :, 32:].sum()) == 0 and int(batch.images[0, 40:].sum()) == 0


class _Flaky(_Numbered):
    """Items 0, 2, 4 of the first epoch cannot be read."""

    def __getitem__(self, index: int) -> Sample:
        if index < self.n and index % 2 == 0:
            raise ValueError(f"broken item {index}")
        return super().__getitem__(index % self.n)


def test_training_stream_replaces_bad_items_deterministically() -> None:
    stream = TrainingStream(_Flaky(5), None, stride=32, min_size=4, seed=0)
    item = stream[4]
    assert item.failures == 1 and item.name == str((4 + (1 << 40)) % 5)
    assert stream[3].failures == 0


class _OneWord(_Numbered):
    """Sample i: one 80 x 20 word on a 64 x 128 image."""

    def __getitem__(self, index: int) -> Sample:
        quad = np.array([[[20, 20], [100, 20], [100, 40], [20, 40]]], np.float32)
        image = np.full((64, 128, 3), index, np.uint8)
        return Sample(image=image, word_quads=quad, words=["word"], name=str(index))


def test_training_stream_pads_the_boxes_it_learns() -> None:
    from synthloc.geometry import pad_quads, quad_to_rbox

    tight = TrainingStream(_OneWord(3), None, stride=4, min_size=4, seed=0, dense_shrink=0.3)
    padded = TrainingStream(
        _OneWord(3), None, stride=4, min_size=4, seed=0, dense_shrink=0.3, box_pad=0.25
    )
    a, b = tight[1], padded[1]
    np.testing.assert_allclose(b.word_quads, pad_quads(a.word_quads, 0.25), atol=1e-5)
    # 0.25 of the 20 px height on every side: 90 x 30.
    np.testing.assert_allclose(quad_to_rbox(b.word_quads)[0, 2:4], [90.0, 30.0], atol=1e-4)
    # The dense targets follow: a word cell predicts the padded box's sides (log cells).
    for item, (width, height) in ((a, (80.0, 20.0)), (b, (90.0, 30.0))):
        assert item.positive[7, 15]  # the cell centred at (62, 30), inside the word
        left, top, right, bottom = np.exp(item.target[0:4, 7, 15]) * 4
        assert (left + right, top + bottom) == pytest.approx((width, height), abs=1e-3)
    assert b.positive.sum() >= a.positive.sum()


def test_on_the_fly_synthesis_matches_synthloc_synth(tmp_path: Path) -> None:
    from synthloc.synth.backgrounds import list_backgrounds
    from synthloc.synth.runner import render_sample

    rng = np.random.default_rng(0)
    for k in range(3):
        image = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 8)
        _write_png(tmp_path / f"bg{k}.png", image)
    (tmp_path / "bg3.png").write_bytes(b"not a png")  # skipped and redrawn by both
    cfg = SynthConfig(size=160, min_instances=1, max_instances=2)
    source = OnTheFlySynthesis(tmp_path, cfg, seed=11)
    first = source[4]
    again = OnTheFlySynthesis(tmp_path, cfg, seed=11)[4]
    reference = render_sample(11, 4, cfg, list_backgrounds(tmp_path), tmp_path).sample
    assert first.image.tobytes() == again.image.tobytes() == reference.image.tobytes()
    np.testing.assert_array_equal(first.word_quads, reference.word_quads)
    assert first.words == reference.words and first.name == reference.name
    # With warm caches, and across the draws that hit the corrupt file, still sample for sample.
    skipped = 0
    for index in range(8):
        result = render_sample(11, index, cfg, list_backgrounds(tmp_path), tmp_path)
        skipped += len(result.failed_backgrounds)
        assert source[index].image.tobytes() == result.sample.image.tobytes()
    assert skipped > 0  # the corrupt file was drawn at least once


def test_background_loader_cache_keeps_the_most_recent(tmp_path: Path) -> None:
    from synthloc.synth.runner import background_source

    for k in range(3):
        _write_png(tmp_path / f"bg{k}.png", np.full((80, 120, 3), 50 * k + 20, np.uint8))
    source = background_source(tmp_path)
    assert source is not None
    with source.open(cache_size=2) as loader:
        first, _ = loader.load(0, 64)
        assert loader.load(0, 64)[0] is first  # cached
        assert loader.load(0, 32)[0] is not first  # another size is another entry
        loader.load(1, 64)  # now holds (0, 32) and (1, 64): (0, 64) was least recent
        again, _ = loader.load(0, 64)
        assert again is not first and again.image.tobytes() == first.image.tobytes()
    with source.open() as uncached:
        assert uncached.load(2, 64)[0] is not uncached.load(2, 64)[0]


def test_config_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "steps: 50\noptim: {name: adamw, lr: 0.002}\n"
        "data:\n  sources:\n    - {kind: icdar, path: /x, weight: 2}\n    - {kind: synth}\n"
    )
    cfg = load_config(path, ["optim.lr=0.01", "data.sources.1.weight=0.5", "model.width=0.75"])
    assert cfg.steps == 50 and cfg.optim.name == "adamw" and cfg.optim.lr == 0.01
    assert [(s.kind, s.weight) for s in cfg.data.sources] == [("icdar", 2.0), ("synth", 0.5)]
    assert cfg.model.width == 0.75 and cfg.model.arch == "fcrn-lite"
    values = config_to_dict(cfg)
    assert load_config(None, []) == TrainConfig()
    with pytest.raises(ValueError, match="unknown key"):
        apply_overrides(values, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="expected a number"):
        load_config(path, ["optim.lr=fast"])
    with pytest.raises(ValueError, match="needs a path"):
        load_config(None, ["data.sources=[{kind: shards}]"])
