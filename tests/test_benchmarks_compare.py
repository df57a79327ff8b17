"""benchmarks/compare.py, figure.py and report.py's comparison table, without models or data."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from synthloc.data.icdar import IcdarGT

BenchScript = Callable[[str], ModuleType]
ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def compare(bench_script: BenchScript) -> ModuleType:
    return bench_script("compare")


def test_rapidocr_boxes_become_float_quads_with_unit_scores(compare: ModuleType) -> None:
    for empty in (None, np.array([]), np.zeros((0, 4, 2), np.int32)):
        quads, scores = compare.rapidocr_boxes(empty)
        assert quads.shape == (0, 4, 2) and scores.shape == (0,)
    boxes = np.array([[[1, 2], [30, 2], [30, 12], [1, 12]]] * 3, np.int32)
    quads, scores = compare.rapidocr_boxes(boxes)
    assert quads.dtype == np.float32 and quads.shape == (3, 4, 2)
    assert np.array_equal(quads, boxes.astype(np.float32))
    assert scores.tolist() == [1.0, 1.0, 1.0]


def test_parse_models(compare: ModuleType) -> None:
    assert compare.parse_models(["ours=", "paper = fcrn-lite-paper"]) == {
        "ours": None,
        "paper": "fcrn-lite-paper",
    }
    for bad in (["no-equals"], ["=path.pt"], ["a=x", "a=y"], [f"{compare.RAPIDOCR}=x"]):
        with pytest.raises(ValueError):
            compare.parse_models(bad)


def test_describe_scales_tells_factors_from_long_sides(compare: ModuleType) -> None:
    assert compare.describe_scales([1.5]) == "scale 1.5x"
    assert compare.describe_scales([512.0, 768.0]) == "long side 512, 768"


def test_compare_scores_times_and_ratios(compare: ModuleType) -> None:
    word = np.array([[10, 10], [50, 10], [50, 20], [10, 20]], np.float32)
    photos = [
        compare.Photo(f"img_{k}", np.zeros((40, 60, 3), np.uint8), IcdarGT(word[None], ["A"]))
        for k in (1, 2)
    ]
    calls: list[tuple[str, int]] = []

    def finds_the_word(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(("good", image.shape[0]))
        return word[None].copy(), np.ones(1, np.float32)

    def finds_nothing(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(("none", image.shape[0]))
        return np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32)

    methods = [
        compare.Method("good", finds_the_word, "RGB", {}),
        compare.Method(compare.RAPIDOCR, finds_nothing, "BGR", {}),
    ]
    results, found = compare.compare(methods, photos, repeats=2)
    # One warm-up image each, then two passes over both photos, interleaved.
    assert [name for name, _ in calls] == ["good", "none"] + ["good"] * 2 + ["none"] * 2 + [
        "good"
    ] * 2 + ["none"] * 2
    assert (results["good"]["precision"], results["good"]["recall"]) == (1.0, 1.0)
    assert results[compare.RAPIDOCR]["recall"] == 0.0
    assert results[compare.RAPIDOCR]["ratio_vs_rapidocr"] == 1.0
    good = results["good"]
    assert good["ratio_vs_rapidocr"] == pytest.approx(
        good["images_per_s"] / results[compare.RAPIDOCR]["images_per_s"]
    )
    assert len(good["runs"]) == 2 and len(found["good"]) == 2


def test_saved_detections_round_trip(compare: ModuleType, tmp_path: Path) -> None:
    quads = np.array([[[1.234, 2], [30, 2], [30, 12.5], [1, 12]]], np.float32)
    boxes = [(quads, np.array([0.75], np.float32)), compare.rapidocr_boxes(None)]
    path = compare.save_detections(tmp_path, "RapidOCR det", {}, ["img_1", "img_2"], boxes)
    assert path.name == "rapidocr-det.json"
    loaded = compare.load_detections(path)
    assert np.allclose(loaded["img_1"][0], quads, atol=0.005)
    assert loaded["img_1"][1].tolist() == [0.75]
    assert loaded["img_2"][0].shape == (0, 4, 2)


def test_figure_photo_rule_is_evenly_spaced_in_natural_order(
    bench_script: BenchScript,
) -> None:
    figure = bench_script("figure")
    stems = [f"img_{k}" for k in range(100, 0, -1)]  # reversed: the rule sorts naturally
    assert figure.evenly_spaced(stems, 4) == ["img_1", "img_26", "img_51", "img_76"]
    assert figure.evenly_spaced(stems[:2], 4) == ["img_99", "img_100"]
    assert figure.evenly_spaced([], 4) == []


def test_report_adds_the_comparison_table(bench_script: BenchScript) -> None:
    report = bench_script("report")
    results = json.loads((BENCHMARKS / "results.json").read_text())
    results.pop("compare", None)
    old = report.table(results)  # results.json from before the compare step
    assert "x RapidOCR |" not in old
    setting = {"file": "m.pt", "scales": [1.5], "threshold": 0.9, "min_size": 0.0}
    rapid = {"model": "det.onnx", "limit_type": "min", "limit_side_len": 736}
    rapid |= {"thresh": 0.3, "box_thresh": 0.5}
    results["compare"] = {
        "images": 100,
        "threads": 2,
        "rapidocr": True,
        "results": {
            "synthloc default": {
                **{"precision": 0.5, "recall": 0.25, "hmean": 1 / 3, "images_per_s": 6.0},
                "ratio_vs_rapidocr": 2.0,
                "setting": {**setting, "verifier": None},
            },
            "RapidOCR det": {
                **{"precision": 0.4, "recall": 0.3, "hmean": 0.343, "images_per_s": 3.0},
                "ratio_vs_rapidocr": 1.0,
                "setting": rapid,
            },
        },
    }
    new = report.table(results).splitlines()
    assert new[: len(old.splitlines()) - 1] == old.splitlines()[:-1]
    assert "| detector, ICDAR 2015 dev (100 photos, 2 threads) | setting |" in "\n".join(new)
    assert (
        "| synthloc default | m.pt, scale 1.5x, threshold 0.9, min size 0, no verifier "
        "| 0.500 | 0.250 | 0.333 | 6.00 | 2.00 |"
    ) in new
    assert (
        "| RapidOCR det | det.onnx, shortest side 736, thresh 0.3, box thresh 0.5 "
        "| 0.400 | 0.300 | 0.343 | 3.00 | 1.00 |"
    ) in new


def test_ablate_engine_keeps_scores_of_other_settings_apart(bench_script: BenchScript) -> None:
    ablate = bench_script("ablate_engine")
    plain = argparse.Namespace(
        scale=0.75, threshold=0.9, min_size=0.0, box_pad=None, verifier=None, verify_threshold=0.3
    )
    padded = argparse.Namespace(**{**vars(plain), "box_pad": 0.11})
    verified = argparse.Namespace(**{**vars(padded), "verifier": Path("/x/fcrn-dense-verifier.pt")})
    tags = {ablate._tag(a) for a in (plain, padded, verified)}
    assert len(tags) == 3  # a score file made at one setting is never read for another
    assert ablate._setting(plain) == {"scale": 0.75, "threshold": 0.9, "min_size": 0.0}
    # the record names the verifier, not this machine's path to it
    assert ablate._setting(verified)["verifier"] == "fcrn-dense-verifier.pt"


def test_checkpoint_curve_averages_every_float_tensor(
    bench_script: BenchScript, tmp_path: Path
) -> None:
    import torch

    from synthloc.model import ModelConfig, build_model, load_model_with_extra, save_model

    curve = bench_script("checkpoint_curve")
    paths = []
    for k in range(3):
        torch.manual_seed(k)
        model = build_model(ModelConfig(arch="fcrn-lite", width=0.25))
        for buffer in model.buffers():  # BatchNorm statistics differ between the files too
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
        paths.append(tmp_path / f"m{k}.pt")
        save_model(paths[-1], model)
    states = [load_model_with_extra(p)[0].state_dict() for p in paths]
    mean = curve.average_weights(paths).state_dict()
    assert set(mean) == set(states[0])
    floats = [key for key, value in mean.items() if value.is_floating_point()]
    assert floats
    for key in floats:
        expected = sum(s[key].double() for s in states) / 3
        assert torch.allclose(mean[key].double(), expected, atol=1e-6), key
    assert not all(torch.equal(mean[key], states[0][key]) for key in floats)


def test_checkpoint_curve_averages_from_a_step_and_never_the_init(
    bench_script: BenchScript,
) -> None:
    curve = bench_script("checkpoint_curve")
    points = [(step, Path(f"step{step}.pt")) for step in (0, 100, 200, 300)]
    assert curve.averaged(points, 1) == [Path("step100.pt"), Path("step200.pt"), Path("step300.pt")]
    assert curve.averaged(points, 0) == curve.averaged(points, 1)  # the init stays out
    assert curve.averaged(points, 150) == [Path("step200.pt"), Path("step300.pt")]
    assert curve.averaged(points, 400) == []


def test_dev_bootstrap_pairs_verifiers_by_position(bench_script: BenchScript) -> None:
    boot = bench_script("dev_bootstrap")
    assert boot.paired_verifiers(["a", "b"], None) == [None, None]
    assert boot.paired_verifiers(["a", "b"], ["default", "v.pt"]) == [None, "v.pt"]
    with pytest.raises(ValueError, match="2 models, 1 verifiers"):
        boot.paired_verifiers(["a", "b"], ["v.pt"])


def test_dev_bootstrap_records_the_verifier_that_ran(bench_script: BenchScript) -> None:
    boot = bench_script("dev_bootstrap")
    assert boot.verifier_label("v.pt", "v.pt") == "v.pt"  # the path given
    assert boot.verifier_label(None, "fcrn-dense-verifier.pt") == "fcrn-dense-verifier.pt"
    assert boot.verifier_label(None, None) is None  # "default" with no shipped verifier
    assert boot.verifier_label("v.pt", None) is None  # --no-verify


def test_dev_bootstrap_resamples_photos_not_words(bench_script: BenchScript) -> None:
    boot = bench_script("dev_bootstrap")
    rows = [
        {"matched": 3, "num_gt_care": 4, "num_det_care": 6},
        {"matched": 0, "num_gt_care": 2, "num_det_care": 0},
    ]
    counts = boot.photo_counts(rows)
    assert counts.tolist() == [[3, 4, 6], [0, 2, 0]]
    samples = np.array([[0, 1], [0, 0], [1, 1]])
    f = boot.resampled_hmeans(counts, samples)
    # both photos: P 3/6, R 3/6; the first twice: P 6/12, R 6/8; the second twice: nothing found
    assert np.allclose(f, [0.5, 2 * 0.5 * 0.75 / 1.25, 0.0])
    assert boot.interval(np.arange(101.0)) == (2.5, 97.5)
