"""The speed benchmarks' arms and tables (benchmarks/*_speed.py, report.py), at toy sizes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BenchScript = Callable[[str], ModuleType]
ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def test_model_speed_sizes_and_dense_variants(bench_script: BenchScript) -> None:
    model_speed = bench_script("model_speed")
    assert model_speed.parse_size("1280x720") == (1280, 720)
    assert model_speed.parse_size("512") == (512, 512)
    for bad in ("12x", "0x10", "axb"):
        with pytest.raises(argparse.ArgumentTypeError):
            model_speed.parse_size(bad)
    lite = model_speed.measure(model_speed.VARIANTS["fcrn-lite"], 96, 64, 1, True)
    dense4 = model_speed.measure(model_speed.VARIANTS["fcrn-dense/4"], 96, 64, 1, True)
    dense8 = model_speed.measure(model_speed.VARIANTS["fcrn-dense/8"], 96, 64, 1, True)
    assert dense4["params_m"] > lite["params_m"]
    # The stride-4 pyramid has one more merge level than stride 8: more compute.
    assert dense4["gflops"] > dense8["gflops"] > 0
    assert dense4["images_per_s"] == pytest.approx(1000 / dense4["median_ms"])


def test_train_speed_arms_are_valid_training_configs(bench_script: BenchScript) -> None:
    train_speed = bench_script("train_speed")
    args = argparse.Namespace(workers=0, size=128, no_channels_last=False)
    expected = {"fcrn-lite": (32, 16), "fcrn-dense/4": (4, 8), "fcrn-dense/8": (8, 8)}
    assert set(train_speed.ARMS) == set(expected)
    for name, (stride, batch) in expected.items():
        arm = train_speed.ARMS[name]
        assert arm.batch_size == batch
        config = train_speed._config(arm, arm.batch_size, "shards", "/nowhere", args)
        assert config.model.arch == name.split("/")[0]
        assert config.model.stride == stride
        assert config.batch_size == batch
        assert config.data.augment.size == 128
    dense = train_speed._config(train_speed.ARMS["fcrn-dense/4"], 8, "shards", "/x", args)
    # The A/B's dense arm, not the default (paper) loss.
    assert dense.model.confidence == "logit"
    assert dense.loss.conf_loss == "bce"
    assert dense.optim.name == "adamw"


def test_report_table_lists_every_training_arm(bench_script: BenchScript) -> None:
    report = bench_script("report")
    results = json.loads((BENCHMARKS / "results.json").read_text())
    # Results written before the dense arms: fcrn-lite's figures at the top level, batch 16.
    results["train_speed"] = {
        "shards": {"images_per_s": 29.0, "data_images_per_s": 280.0},
        "synth": {"images_per_s": 19.0, "data_images_per_s": 40.0},
    }
    old_rows = [line for line in report.table(results).splitlines() if "| training," in line]
    assert old_rows == [
        "| training, fcrn-lite, 384x384, batch 16, 2 threads, from shards | 29.0 images/s |",
        "| training, fcrn-lite, 384x384, batch 16, 2 threads, from synth | 19.0 images/s |",
    ]
    lite = {"batch_size": 16, "model_step": {"images_per_s": 50.0}}
    lite["shards"] = {"images_per_s": 30.0, "data_images_per_s": 300.0}
    dense = {"batch_size": 8, "model_step": {"images_per_s": 9.0}}
    dense["shards"] = {"images_per_s": 7.5, "data_images_per_s": 200.0}
    results["train_speed"] = {
        "size": 384,
        "threads": 2,
        "arms": {"fcrn-lite": lite, "fcrn-dense/4": dense},
    }
    rows = [line for line in report.table(results).splitlines() if "| training," in line]
    assert rows == [
        "| training, fcrn-lite, 384x384, batch 16, 2 threads, from shards | 30.0 images/s |",
        "| training, fcrn-dense/4, 384x384, batch 8, 2 threads, from shards | 7.5 images/s |",
    ]


def test_photo_scale_validation_set_enlarges_images_and_quads_together(
    tmp_path: Path, bench_script: BenchScript
) -> None:
    import cv2
    import numpy as np

    from synthloc.data.icdar import read_icdar_gt, write_icdar_gt

    accuracy = bench_script("accuracy")
    source = tmp_path / "src"
    (source / "images").mkdir(parents=True)
    (source / "gt").mkdir()
    image = np.zeros((60, 90, 3), np.uint8)
    image[20:30, 10:40] = 255  # a white "word"
    cv2.imwrite(str(source / "images" / "a.png"), image)
    quad = np.array([[[10, 20], [40, 20], [40, 30], [10, 30]]], np.float64)
    write_icdar_gt(source / "gt" / "gt_a.txt", quad, ["WORD"])
    accuracy._enlarge_icdar_folder(source, tmp_path / "out", 2.0)
    big = cv2.imread(str(tmp_path / "out" / "images" / "a.png"))
    assert big is not None and big.shape == (120, 180, 3)
    gt = read_icdar_gt(tmp_path / "out" / "gt" / "gt_a.txt")
    assert gt.words == ["WORD"]
    assert np.array_equal(gt.quads[0], quad[0] * 2)
    ys, xs = np.nonzero(big[..., 0] > 128)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (20, 40, 80, 60)
    assert accuracy.PHOTO_UPSCALE == pytest.approx(1280 / 768)


def test_sprites_validation_set_uses_real_word_crops_in_their_own_convention(
    tmp_path: Path, bench_script: BenchScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every legible word of the sprites set is a word crop (ICDAR 2015's boxes, so it is
    scored with the detector's own box_pad), never enlarged past its own pixels."""
    import cv2
    import numpy as np

    from synthloc.data.icdar import list_icdar_folder, read_icdar_gt

    accuracy = bench_script("accuracy")
    words = tmp_path / "words"
    words.mkdir()
    crop = np.full((30, 90, 3), (40, 40, 40), np.uint8)
    cv2.putText(crop, "EXIT", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    cv2.imwrite(str(words / "word_1.png"), crop)
    (words / "gt.txt").write_text('word_1.png, "EXIT"\r\n', encoding="utf-8")
    (words / "coords.txt").write_text("word_1.png,0,0,90,0,90,30,0,30\r\n", encoding="utf-8")
    monkeypatch.setattr(accuracy, "SPRITE_DIR", words)
    out = accuracy.make_synthetic_set(tmp_path / "set", 3, 5, engine="sprites")
    legible = []
    for _, gt_path in list_icdar_folder(out):
        gt = read_icdar_gt(gt_path)
        legible += [q for q, w, ign in zip(gt.quads, gt.words, gt.ignore) if not ign]
        assert {w for w, ign in zip(gt.words, gt.ignore) if not ign} <= {"EXIT"}
    assert legible, "no sprite was placed"
    for quad in legible:
        q = np.asarray(quad, np.float64).reshape(4, 2)
        side = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
        assert side <= 30 * 1.3  # perspective stretches a side by at most about a quarter

    class _Detector:
        engine_box_pad = -0.05

    assert accuracy.set_box_pad(_Detector(), "sprites") is None
    assert accuracy.set_box_pad(_Detector(), "photo") == -0.05
    with pytest.raises(SystemExit, match="not found"):
        monkeypatch.setattr(accuracy, "SPRITE_DIR", tmp_path / "absent")
        accuracy.make_synthetic_set(tmp_path / "set2", 1, 5, engine="sprites")


def test_val_agreement_counts_pairs_ordered_alike(bench_script: BenchScript) -> None:
    agreement = bench_script("val_agreement").agreement
    rows = [{"val": 0.5, "dev": 0.4}, {"val": 0.6, "dev": 0.3}, {"val": 0.7, "dev": 0.5}]
    # (0,1): val up, dev down; (0,2): both up; (1,2): both up
    assert agreement(rows) == (2, 3)
    # with a fourth row: two more pairs ordered apart, and a val tie skipped
    assert agreement([*rows, {"val": 0.7, "dev": 0.1}]) == (2, 5)
