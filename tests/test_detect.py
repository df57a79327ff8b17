"""Detection: scales, exact quads through the real decode path, multi-scale merge, backends, CLI."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from synthloc import detect as detect_module
from synthloc.cli import main
from synthloc.data.icdar import read_icdar_results
from synthloc.detect import (
    DEFAULT_MODEL,
    SHIPPED_MODELS,
    Detection,
    Detector,
    ImageReadError,
    NoDefaultModelError,
    ShippedModel,
    list_images,
    load_image,
    resized_size,
    resolve_model,
    shipped,
    shipped_files,
    submission_quads,
    validate_scales,
    write_outputs,
)
from synthloc.detect.images import network_input
from synthloc.geometry import polygon_iou, quad_to_rbox, rbox_to_quad
from synthloc.model import (
    FCRNLite,
    ModelConfig,
    build_model,
    encode_targets,
    preprocess,
    save_model,
)
from synthloc.verify import load_verifier_with_extra

STRIDE = 32


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


class OracleModel(nn.Module):
    """A stand-in network that emits the encoded ground truth of one image at any scale.

    It finds the resized image inside the zero-padded input (test images have no black pixels),
    scales the original-image quads to it and encodes them with ``encode_targets``; the
    detector then decodes that map with the real ``decode_predictions``.  Word ``i`` gets
    confidence ``scores[i]``.  Only words whose height at the fed scale lies in
    ``[min_height, max_height]`` are emitted, like a network that only sees some text sizes.
    """

    def __init__(
        self,
        quads: np.ndarray,
        image_hw: tuple[int, int],
        scores: np.ndarray | None = None,
        min_height: float = 0.0,
        max_height: float = float("inf"),
    ) -> None:
        super().__init__()
        self.stride = STRIDE
        self.config = SimpleNamespace(confidence="linear")
        self.quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
        self.image_hw = image_hw
        self.scores = np.linspace(0.95, 0.6, len(self.quads)) if scores is None else scores
        self.min_height = min_height
        self.max_height = max_height

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = []
        for image in x:  # [3, Hp, Wp]
            content = image.abs().sum(0) > 0
            rows = int(content.any(1).nonzero().max()) + 1
            cols = int(content.any(0).nonzero().max()) + 1
            factor = np.array([cols / self.image_hw[1], rows / self.image_hw[0]])
            quads = self.quads * factor
            heights = quad_to_rbox(quads).reshape(-1, 5)[:, 3]
            keep = (heights >= self.min_height) & (heights <= self.max_height)
            grid = encode_targets(
                quads[keep],
                np.zeros(int(keep.sum()), bool),
                tuple(image.shape[1:]),
                STRIDE,
                min_size=0,
            )
            target = grid.target.copy()
            centres = quad_to_rbox(quads[keep]).reshape(-1, 5)[:, :2]
            for (cx, cy), score in zip(centres, self.scores[keep]):
                target[6, int(cy // STRIDE), int(cx // STRIDE)] = score
            maps.append(torch.from_numpy(target))
        return torch.stack(maps)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random RGB image with no black pixel (the oracle finds the padding by its zeros)."""
    return np.random.default_rng(seed).integers(20, 256, size=(h, w, 3), dtype=np.uint8)


def _words() -> np.ndarray:
    """Four words far apart (distinct cells at every tested scale), rotated and straight."""
    boxes = np.array(
        [
            [70.0, 60.0, 90.0, 24.0, 0.0],
            [300.0, 70.0, 120.0, 30.0, 0.3],
            [110.0, 230.0, 60.0, 16.0, -0.5],
            [320.0, 240.0, 160.0, 48.0, 0.1],
        ]
    )
    return rbox_to_quad(boxes)


def _match_error(found: list[Detection], expected: np.ndarray) -> float:
    """Largest corner distance between each expected quad and its nearest detection."""
    quads = np.array([d.quad for d in found])
    worst = 0.0
    for quad in expected:
        dist = np.abs(quads - quad[None]).max(axis=(1, 2))
        worst = max(worst, float(dist.min()))
    return worst


def _tiny_model(width: float = 0.25) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="fcrn-lite", width=width))
    assert isinstance(model, FCRNLite)
    with torch.no_grad():
        # Spread the head so a random model gives boxes of varied size and a usable score map.
        model.head.weight.normal_(0.0, 0.3)
    return model.eval()


# -- scales -------------------------------------------------------------------------------------


def test_resized_size_golden_values() -> None:
    assert resized_size(720, 1280, 1024) == (576, 1024)  # long side in pixels
    assert resized_size(720, 1280, 0.5) == (360, 640)  # factor
    assert resized_size(720, 1280, 1.0) == (720, 1280)
    assert resized_size(200, 300, 512) == (341, 512)  # 200 * 512 / 300 = 341.33
    assert resized_size(1000, 10, 64) == (64, 1)  # never below one pixel
    assert resized_size(300, 200, 8.0) == (2400, 1600)  # 8 is still a factor
    assert resized_size(300, 200, 8.5) == (8, 6)  # above 8: a long side


@pytest.mark.parametrize("bad", [[], [0], [-1.0], [float("nan")], [512, float("inf")]])
def test_invalid_scales_are_rejected(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        validate_scales(bad)


# -- exact quads through the real decode path ---------------------------------------------------


@pytest.mark.parametrize("scales", [(1.0,), (0.5,), (512.0,), (1.7,), (300.0,)])
def test_oracle_quads_come_back_in_original_pixels(scales: tuple[float, ...]) -> None:
    image = _image(300, 420)  # neither side a multiple of 32
    words = _words()
    oracle = OracleModel(words, image.shape[:2])
    detector = Detector.from_model(oracle, scales=scales, threshold=0.5, fold_bn=False)
    found = detector(image)
    assert len(found) == len(words)
    # Rounding the resized size scales x and y by factors differing by up to ~0.2%, which
    # turns a rotated rectangle into a slight parallelogram: a few hundredths of a pixel.
    assert _match_error(found, words) < 0.05
    # Sorted by score; each word keeps its own confidence.
    assert [round(d.score, 4) for d in found] == [round(s, 4) for s in oracle.scores]
    for det in found:
        assert det.quad.dtype == np.float32 and det.quad.shape == (4, 2)


def test_threshold_drops_low_confidence_words() -> None:
    image = _image(300, 420)
    words = _words()
    oracle = OracleModel(words, image.shape[:2], scores=np.array([0.9, 0.3, 0.8, 0.45]))
    found = Detector.from_model(oracle, scales=(1.0,), threshold=0.5, fold_bn=False)(image)
    assert sorted(round(d.score, 4) for d in found) == [0.8, 0.9]
    assert _match_error(found, words[[0, 2]]) < 0.01


def test_multi_scale_merge_removes_duplicates() -> None:
    image = _image(300, 420)
    words = _words()
    oracle = OracleModel(words, image.shape[:2])
    scales = (0.75, 1.0, 600.0, 1.5)
    single = [
        Detector.from_model(oracle, scales=(s,), threshold=0.5, fold_bn=False)(image)
        for s in scales
    ]
    assert sum(len(f) for f in single) == len(scales) * len(words)  # every scale sees all
    merged = Detector.from_model(oracle, scales=scales, threshold=0.5, fold_bn=False)(image)
    assert len(merged) == len(words)
    assert _match_error(merged, words) < 0.05
    for i, a in enumerate(merged):
        for b in merged[i + 1 :]:
            assert polygon_iou(a.quad, b.quad) <= detect_module.DEFAULT_NMS_IOU


def test_multi_scale_finds_small_and_large_words() -> None:
    """A network that only sees words 12-40 px tall needs both scales to find all four."""
    image = _image(300, 420)
    words = _words()  # heights 24, 30, 16, 48 px
    oracle = OracleModel(words, image.shape[:2], min_height=12.0, max_height=40.0)

    def run(scales: tuple[float, ...]) -> list[Detection]:
        return Detector.from_model(oracle, scales=scales, threshold=0.5, fold_bn=False)(image)

    assert len(run((1.0,))) == 3  # the 48 px word is too tall
    assert len(run((0.5,))) == 3  # at half size the 16 px word is too small (8 px)
    both = run((0.5, 1.0))
    assert len(both) == 4
    assert _match_error(both, words) < 0.05


def test_min_size_is_measured_in_pixels_of_the_resized_image() -> None:
    image = _image(300, 420)
    words = _words()  # heights 24, 30, 16, 48 px; every width is larger than its height
    oracle = OracleModel(words, image.shape[:2])

    def heights(scales: tuple[float, ...], min_size: float) -> list[float]:
        found = Detector.from_model(
            oracle, scales=scales, threshold=0.5, min_size=min_size, fold_bn=False
        )(image)
        return sorted(round(float(quad_to_rbox(d.quad)[3])) for d in found)

    assert heights((1.0,), 0.0) == [16, 24, 30, 48]
    assert heights((1.0,), 20.0) == [24, 30, 48]  # 16 px < 20
    assert heights((2.0,), 20.0) == [16, 24, 30, 48]  # 32 px at twice the size
    assert heights((0.5,), 20.0) == [48]  # 12, 15, 8 and 24 px at half size
    assert heights((0.5, 2.0), 20.0) == [16, 24, 30, 48]  # the large scale keeps the small


def test_detect_batch_equals_one_call_per_image() -> None:
    model = _tiny_model()
    detector = Detector.from_model(model, scales=(200.0, 1.0), threshold=0.0, batch_size=2)
    images = [_image(120, 160, 1), _image(120, 160, 2), _image(100, 190, 3), _image(120, 160, 4)]
    batched = detector.detect_batch(images)
    assert len(batched) == len(images)
    assert any(len(found) for found in batched)
    for image, found in zip(images, batched):
        alone = detector(image)
        assert len(alone) == len(found)
        np.testing.assert_allclose(
            np.array([d.quad for d in alone]), np.array([d.quad for d in found]), atol=1e-3
        )
        np.testing.assert_allclose([d.score for d in alone], [d.score for d in found], atol=1e-5)


def test_torch_and_onnxruntime_backends_agree(tmp_path: Path) -> None:
    from synthloc.export import export_onnx

    model = _tiny_model()
    save_model(tmp_path / "m.pt", model)
    export_onnx(model, tmp_path / "m.onnx")
    image = _image(230, 310, 5)
    settings = {"scales": (1.0, 200.0), "threshold": 0.0, "num_threads": 2}
    runs = [
        Detector.load(tmp_path / "m.pt", backend="torch", **settings)(image),  # type: ignore[arg-type]
        Detector.load(tmp_path / "m.pt", backend="onnxruntime", **settings)(image),  # type: ignore[arg-type]
        Detector.load(tmp_path / "m.onnx", **settings)(image),  # type: ignore[arg-type]
    ]
    assert len(runs[0]) > 0
    for other in runs[1:]:
        assert len(other) == len(runs[0])
        np.testing.assert_allclose(
            np.array([d.quad for d in other]), np.array([d.quad for d in runs[0]]), atol=1e-2
        )
        np.testing.assert_allclose([d.score for d in other], [d.score for d in runs[0]], atol=1e-4)


def test_load_uses_recommendations_stored_in_the_model_file(tmp_path: Path) -> None:
    model = _tiny_model()
    save_model(
        tmp_path / "m.pt", model, extra={"detect": {"scales": [512, 1024], "threshold": 0.7}}
    )
    detector = Detector.load(tmp_path / "m.pt")
    assert detector.scales == (512.0, 1024.0)
    assert detector.threshold == pytest.approx(0.7)
    assert detector.nms_iou == pytest.approx(detect_module.DEFAULT_NMS_IOU)
    assert detector.min_size == 0.0  # files without it keep every size
    explicit = Detector.load(tmp_path / "m.pt", scales=[1.0], threshold=0.2, min_size=3)
    assert explicit.scales == (1.0,) and explicit.threshold == pytest.approx(0.2)
    assert explicit.min_size == 3.0
    save_model(tmp_path / "s.pt", model, extra={"detect": {"threshold": 0.7, "min_size": 12}})
    assert Detector.load(tmp_path / "s.pt").min_size == 12.0


def test_box_pad_grows_the_final_boxes_and_comes_from_the_model_file(tmp_path: Path) -> None:
    from synthloc.export import export_onnx
    from synthloc.geometry import pad_quads

    image = _image(300, 420)
    words = _words()
    oracle = OracleModel(words, image.shape[:2])
    plain = Detector.from_model(oracle, scales=(1.0,), threshold=0.5, fold_bn=False)(image)
    padded = Detector.from_model(oracle, scales=(1.0,), threshold=0.5, fold_bn=False, box_pad=0.1)(
        image
    )
    assert [d.score for d in padded] == [d.score for d in plain]
    expected = pad_quads(np.array([d.quad for d in plain]), 0.1)
    np.testing.assert_allclose(np.array([d.quad for d in padded]), expected, atol=1e-3)
    # 0.1 of the height on each side: a 90 x 24 word becomes 94.8 x 28.8.
    sides = quad_to_rbox(np.array([d.quad for d in padded], np.float64))[:, 2:4]
    original = quad_to_rbox(words)[:, 2:4]
    order = np.argsort(-oracle.scores)
    np.testing.assert_allclose(sides, original[order] + 0.2 * original[order, 1:2], atol=0.05)

    # Stored in a preset (box_convention.py --write), used by .pt and ONNX alike; explicit wins.
    model = _tiny_model()
    extra: dict[str, dict[str, Any]] = {
        "detect": {"threshold": 0.0, "box_pad": 0.25},
        "detect_multiscale": {"scales": [1.0]},
    }
    save_model(tmp_path / "m.pt", model, extra=extra)
    export_onnx(model, tmp_path / "m.onnx", detect_defaults=extra["detect"])
    assert Detector.load(tmp_path / "m.pt").box_pad == 0.25
    assert Detector.load(tmp_path / "m.onnx").box_pad == 0.25
    assert Detector.load(tmp_path / "m.pt", box_pad=0.0).box_pad == 0.0
    assert Detector.load(tmp_path / "m.pt", preset="multiscale").box_pad == 0.0
    save_model(tmp_path / "old.pt", model, extra={"detect": {"threshold": 0.5}})
    assert Detector.load(tmp_path / "old.pt").box_pad == 0.0  # files without it: as trained
    assert Detector.load(tmp_path / "m.pt", box_pad=-0.07).box_pad == -0.07  # shrinks
    with pytest.raises(ValueError, match="box_pad"):
        Detector.load(tmp_path / "m.pt", box_pad=-0.3)


def test_trained_box_pad_gives_the_engine_box_convention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthloc.export import export_onnx
    from synthloc.geometry import pad_quads
    from synthloc.verify import Verifier, save_verifier

    # A model trained on boxes grown by 0.11 (data.box_pad) is scored on the engine's tight
    # ground truth with its boxes shrunk back: engine_box_pad undoes the padding exactly.
    model = _tiny_model()
    save_model(tmp_path / "pad.pt", model, extra={"target_box_pad": 0.11})
    export_onnx(model, tmp_path / "pad.onnx", trained_box_pad=0.11)
    for detector in (
        Detector.load(tmp_path / "pad.pt", backend="torch"),
        Detector.load(tmp_path / "pad.pt", backend="onnxruntime"),
        Detector.load(tmp_path / "pad.onnx"),
    ):
        assert detector.trained_box_pad == pytest.approx(0.11)
        assert detector.engine_box_pad == pytest.approx(-0.11 / 1.22)
        assert detector.box_pad == 0.0  # the boxes as predicted unless a preset says otherwise
    words = _words()
    back = pad_quads(pad_quads(words, 0.11), Detector.load(tmp_path / "pad.pt").engine_box_pad)
    np.testing.assert_allclose(back, words, atol=1e-9)
    # The verifier refines in the engine's convention; its quads are grown to the first
    # stage's, so one engine_box_pad holds with and without it.
    save_verifier(tmp_path / "v.pt", Verifier())
    pair = Detector.load(tmp_path / "pad.pt", verifier=tmp_path / "v.pt", backend="torch")
    assert pair.engine_box_pad == pytest.approx(-0.11 / 1.22)
    image = _image(300, 420)
    oracle = OracleModel(words, image.shape[:2])
    stage = pair.verifier
    assert stage is not None
    stage.threshold = 0.0  # keep every candidate of the untrained verifier
    plain = Detector.from_model(oracle, scales=(1.0,), threshold=0.5, fold_bn=False, verifier=stage)
    grown = Detector.from_model(
        oracle, scales=(1.0,), threshold=0.5, fold_bn=False, verifier=stage, trained_box_pad=0.11
    )
    found, padded = plain(image), grown(image)
    assert len(found) == len(padded) > 0
    np.testing.assert_allclose(
        np.array([d.quad for d in padded]),
        pad_quads(np.array([d.quad for d in found]), 0.11),
        atol=1e-3,
    )
    # Files from before the option trained on the engine's boxes.
    save_model(tmp_path / "old.pt", model)
    assert Detector.load(tmp_path / "old.pt").engine_box_pad == 0.0
    save_model(tmp_path / "bad.pt", model, extra={"target_box_pad": "wide"})
    with pytest.raises(ValueError, match=r"bad\.pt: target_box_pad must be a number"):
        Detector.load(tmp_path / "bad.pt")
    # The CLI says so in one line, for detection and for export alike.
    cv2.imwrite(str(tmp_path / "in.png"), _image(64, 96))
    bad = str(tmp_path / "bad.pt")
    capsys.readouterr()
    for args in (
        ["detect", str(tmp_path / "in.png"), "--model", bad, "--out", str(tmp_path / "out")],
        ["export", "--model", bad, "--out", str(tmp_path / "bad.onnx")],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "bad.pt: target_box_pad must be a number" in err, err
    assert not (tmp_path / "bad.onnx").exists()


def test_load_with_the_multiscale_preset(tmp_path: Path) -> None:
    model = _tiny_model()
    multi = {"scales": [512, 768, 1024], "threshold": 0.95, "min_size": 16}
    extra = {"detect": {"scales": [768], "threshold": 0.9}, "detect_multiscale": multi}
    save_model(tmp_path / "m.pt", model, extra=extra)
    detector = Detector.load(tmp_path / "m.pt", preset="multiscale")
    assert detector.scales == (512.0, 768.0, 1024.0)
    assert detector.threshold == pytest.approx(0.95) and detector.min_size == 16.0
    # Explicit options still win over the preset; the default preset is the single scale.
    assert Detector.load(tmp_path / "m.pt", preset="multiscale", threshold=0.5).threshold == 0.5
    assert Detector.load(tmp_path / "m.pt").scales == (768.0,)
    save_model(tmp_path / "plain.pt", model, extra={"detect": {"scales": [768]}})
    with pytest.raises(ValueError, match=r"plain\.pt: no stored 'multiscale'"):
        Detector.load(tmp_path / "plain.pt", preset="multiscale")
    with pytest.raises(ValueError, match="unknown preset"):
        Detector.load(tmp_path / "m.pt", preset="fast")


def test_bad_detector_options_are_rejected(tmp_path: Path) -> None:
    save_model(tmp_path / "m.pt", _tiny_model())
    with pytest.raises(ValueError, match="backend"):
        Detector.load(tmp_path / "m.pt", backend="tensorrt")
    with pytest.raises(ValueError, match="nms_iou"):
        Detector.load(tmp_path / "m.pt", nms_iou=0.0)
    with pytest.raises(ValueError, match="scale"):
        Detector.load(tmp_path / "m.pt", scales=[-512])
    with pytest.raises(ValueError, match="min_size"):
        Detector.load(tmp_path / "m.pt", min_size=-1.0)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        Detector.load(tmp_path / "missing.pt")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.onnx"):
        Detector.load(tmp_path / "junk.onnx")


# -- inputs and errors --------------------------------------------------------------------------


def test_images_from_paths_and_odd_formats(tmp_path: Path) -> None:
    image = _image(40, 50)
    assert cv2.imwrite(str(tmp_path / "rgb.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png"), image)
    gray = image[:, :, 0]
    assert cv2.imwrite(str(tmp_path / "gray.png"), gray)
    assert load_image(tmp_path / "gray.png").shape == (40, 50, 3)
    rgba = np.dstack([image, np.full((40, 50), 128, np.uint8)])
    assert cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert load_image(tmp_path / "rgba.png").shape == (40, 50, 3)
    deep = (image.astype(np.uint16) * 257)[:, :, ::-1]
    assert cv2.imwrite(str(tmp_path / "deep.png"), deep)
    np.testing.assert_array_equal(load_image(tmp_path / "deep.png"), image)

    oracle = OracleModel(np.zeros((0, 4, 2)), (40, 50))
    detector = Detector.from_model(oracle, scales=(1.0,), fold_bn=False)
    assert detector(tmp_path / "rgb.png") == []
    assert detector(gray) == []  # a 2-D array is taken as grayscale


def test_unreadable_images_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("broken.jpg", "empty.png", "missing.jpg"):
        with pytest.raises(ImageReadError, match=name):
            load_image(tmp_path / name)
    with pytest.raises(ValueError, match="uint8"):
        detect_module._as_image(np.zeros((4, 4, 3), np.float32))


def test_detect_paths_reports_bad_files_and_keeps_going(tmp_path: Path) -> None:
    image = _image(64, 96)
    for name in ("a.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), image)
    (tmp_path / "b.png").write_bytes(b"garbage")
    oracle = OracleModel(np.zeros((0, 4, 2)), (64, 96))
    detector = Detector.from_model(oracle, scales=(1.0,), fold_bn=False, batch_size=2)
    results = list(detector.detect_paths(list_images(tmp_path)))
    assert [r.path.name for r in results] == ["a.png", "b.png", "c.png"]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error is not None and "b.png" in results[1].error


class _FailsOnWideInputs(OracleModel):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 200:
            raise RuntimeError("simulated out of memory")
        return super().forward(x)


def test_an_inference_failure_is_reported_against_its_image(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _image(64, 96))
    cv2.imwrite(str(tmp_path / "b.png"), _image(64, 300))
    cv2.imwrite(str(tmp_path / "c.png"), _image(64, 96))
    model = _FailsOnWideInputs(np.zeros((0, 4, 2)), (64, 96))
    detector = Detector.from_model(model, scales=(1.0,), fold_bn=False, batch_size=4)
    results = list(detector.detect_paths(list_images(tmp_path)))
    assert [r.ok for r in results] == [True, False, True]
    assert "b.png" in str(results[1].error) and "simulated" in str(results[1].error)


def test_no_default_model_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = ShippedModel(DEFAULT_MODEL, "no-such-model.pt", None, "absent from this build")
    monkeypatch.setitem(shipped.SHIPPED_MODELS, DEFAULT_MODEL, missing)
    with pytest.raises(NoDefaultModelError, match=f"no '{DEFAULT_MODEL}' model is shipped"):
        Detector.load()
    assert main(["detect", "x.jpg", "--out", "unused"]) == 2


def test_shipped_models_load_by_name_and_are_listed_in_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert set(SHIPPED_MODELS) >= {"fcrn-dense", "fcrn-lite-paper"}
    for name in SHIPPED_MODELS:
        path, _ = shipped_files(name)
        assert path.is_file() and path.stat().st_size > 1_000_000
    paper = Detector.load("fcrn-lite-paper", backend="torch")
    default = Detector.load(backend="torch")
    assert paper.stride == 32 and default.stride == 4
    # The default runs both stages, its first stage at the threshold tuned with the verifier.
    assert paper.verifier is None and default.verifier is not None
    _, verifier_file = shipped_files(DEFAULT_MODEL)
    assert verifier_file is not None
    # Each records the file it came from (what `synthloc detect` hashes into its results).
    assert paper.source == shipped_files("fcrn-lite-paper")[0]
    assert default.source == shipped_files(DEFAULT_MODEL)[0]
    assert default.verifier.source == verifier_file
    hints = load_verifier_with_extra(verifier_file)[1]["verify"]
    assert default.threshold == pytest.approx(hints["first_stage_threshold"])
    assert default.verifier.threshold == pytest.approx(hints["threshold"])
    assert Detector.load(backend="torch", verify=False).verifier is None
    assert resolve_model(None)[0] == shipped_files(DEFAULT_MODEL)[0]
    with pytest.raises(FileNotFoundError, match="fcrn-lite-paper"):
        Detector.load("no-such-name")
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in SHIPPED_MODELS)
    assert f"{DEFAULT_MODEL} (default)" in help_text


def test_list_images_natural_order_and_icdar_root(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    (root / "images").mkdir(parents=True)
    (root / "gt").mkdir()
    for name in ("img_10.jpg", "img_2.jpg", "img_1.JPG", "notes.txt"):
        (root / "images" / name).write_bytes(b"x")
    assert [p.name for p in list_images(root)] == ["img_1.JPG", "img_2.jpg", "img_10.jpg"]


def test_write_outputs_round_trip(tmp_path: Path) -> None:
    quad = rbox_to_quad(np.array([50.0, 40.0, 60.0, 20.0, 0.2])).astype(np.float32)
    dets = [Detection(quad, 0.875), Detection(quad + 100, 0.5)]
    paths = write_outputs(tmp_path, "img_7", dets, image=_image(200, 240), source="img_7.jpg")
    assert set(paths) == {"txt", "json", "vis"}
    quads, scores = read_icdar_results(paths["txt"])
    np.testing.assert_array_equal(quads, np.rint(np.array([quad, quad + 100])))
    assert scores is None  # the submission format: eight values, no score
    write_outputs(
        tmp_path, "img_7", dets, image=_image(200, 240), source="img_7.jpg", res_scores=True
    )
    _, scores = read_icdar_results(paths["txt"])
    assert scores is not None
    np.testing.assert_allclose(scores, [0.875, 0.5])
    record = json.loads(paths["json"].read_text())
    np.testing.assert_allclose([d["score"] for d in record["detections"]], [0.875, 0.5])
    assert record["width"] == 240 and record["height"] == 200 and record["image"] == "img_7.jpg"
    np.testing.assert_allclose(record["detections"][0]["quad"], quad, atol=0.01)
    vis = cv2.imread(str(paths["vis"]))
    assert vis is not None and vis.shape == (200, 240, 3)


# -- the command line ---------------------------------------------------------------------------


def _cli_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    model_path = tmp_path / "model.pt"
    save_model(model_path, _tiny_model())
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in (1, 2):
        cv2.imwrite(str(folder / f"img_{k}.jpg"), _image(120 + 20 * k, 180, k))
    (folder / "readme.txt").write_text("not an image")
    single = tmp_path / "single.png"
    cv2.imwrite(str(single), _image(100, 140, 9))
    return model_path, folder, single


def test_cli_writes_three_outputs_per_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, folder, single = _cli_inputs(tmp_path)
    out = tmp_path / "out"
    args = [str(folder), str(single), "--out", str(out), "--model", str(model_path)]
    code = main(["detect", *args, "--threshold", "0.0", "--scales", "256", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "0 of 3 failed" in captured.out
    for stem in ("img_1", "img_2", "single"):
        quads, _ = read_icdar_results(out / f"res_{stem}.txt")
        record = json.loads((out / f"{stem}.json").read_text())
        assert len(record["detections"]) == len(quads)
        assert record["scales"] == [256.0]
        assert (out / f"{stem}_vis.jpg").is_file()
    assert not (out / "res_readme.txt").exists()

    # Resuming skips finished images; --no-vis writes no pictures.
    out2 = tmp_path / "out2"
    again = ["detect", str(folder), "--out", str(out2), "--model", str(model_path), "--no-vis"]
    assert main(again) == 0
    assert not list(out2.glob("*_vis.jpg")) and len(list(out2.glob("res_*.txt"))) == 2
    assert main([*again, "--skip-existing"]) == 0
    assert "2 skipped" in capsys.readouterr().out


def test_cli_names_corrupt_files_and_counts_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, folder, single = _cli_inputs(tmp_path)
    (folder / "img_3.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    missing = tmp_path / "nowhere.jpg"
    out = tmp_path / "out"
    inputs = [str(folder), str(single), str(missing)]
    code = main(["detect", *inputs, "--out", str(out), "--model", str(model_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert "img_3.jpg" in captured.err and "nowhere.jpg" in captured.err
    assert "2 of 5 failed" in captured.out
    for stem in ("img_1", "img_2", "single"):  # the good images still ran
        assert (out / f"res_{stem}.txt").is_file()
    assert not (out / "res_img_3.txt").exists()


# -- end to end: synthesize -> detect -> evaluate ------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_icdar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few images rendered by the engine with their ICDAR 2015 ground truth."""
    from synthloc.synth import SynthConfig
    from synthloc.synth.runner import synthesize

    root = tmp_path_factory.mktemp("synthetic") / "icdar"
    report = synthesize(root, 4, seed=11, fmt="icdar", config=SynthConfig(size=384), progress=False)
    assert report.rendered == 4 and report.words > 0
    return root


def test_end_to_end_oracle_detection_scores_at_least_0_9(
    synthetic_icdar: Path, tmp_path: Path
) -> None:
    """The encoded GT map, run through the whole detection path, must score F >= 0.9.

    Only cell collisions (two word centres in one cell: the smaller word is not encoded) and
    the rectangle fit of perspective quads keep it from 1.0; a wrong mapping to original pixels,
    scale handling or NMS would drop it far below.
    """
    from synthloc.data.icdar import list_icdar_folder, read_icdar_gt
    from synthloc.evaluate import evaluate_folders

    pred = tmp_path / "pred"
    pairs = list_icdar_folder(synthetic_icdar)
    assert len(pairs) == 4
    for image_path, gt_path in pairs:
        image = load_image(image_path)
        gt = read_icdar_gt(gt_path)
        oracle = OracleModel(gt.quads, image.shape[:2], scores=np.full(len(gt.quads), 0.9))
        # Scale 2 (a 768 px long side) puts word centres 16 original pixels apart per cell.
        detector = Detector.from_model(oracle, scales=(2.0,), fold_bn=False)
        write_outputs(pred, image_path.stem, detector(image), image=image, visualise=False)
    result = evaluate_folders(synthetic_icdar / "gt", pred, "ic15")
    assert result.num_gt_care > 0
    assert result.hmean >= 0.9, result.summary()


def test_end_to_end_cli_detect_then_eval(
    synthetic_icdar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthloc.data.icdar import read_icdar_gt
    from synthloc.evaluate import evaluate_folders

    model_path = tmp_path / "model.pt"
    save_model(model_path, _tiny_model())
    pred = tmp_path / "pred"
    settings = ["--model", str(model_path), "--scales", "1.0", "--threshold", "0.0", "--quiet"]
    code = main(["detect", str(synthetic_icdar), "--out", str(pred), *settings])
    assert code == 0, capsys.readouterr().err
    assert "0 of 4 failed" in capsys.readouterr().out
    assert any(p.stat().st_size for p in pred.glob("res_*.txt"))  # some detections to score
    # The engine also renders illegible text labelled "###" (don't care).
    gt_words = sum(
        sum(w != "###" for w in read_icdar_gt(p).words)
        for p in (synthetic_icdar / "gt").glob("gt_*.txt")
    )
    for protocol in ("ic15", "ic13"):
        result = evaluate_folders(synthetic_icdar / "gt", pred, protocol)
        assert result.num_gt_care == gt_words
        for value in (result.precision, result.recall, result.hmean):
            assert 0.0 <= value <= 1.0
    code = main(["eval", "--gt", str(synthetic_icdar / "gt"), "--pred", str(pred)])
    assert code == 0
    assert "precision" in capsys.readouterr().out


# -- issue 16: package layout, submission format, reliability -----------------------------------


def test_detector_lives_in_a_package_and_decodes_in_one_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synthloc.detect import backends, detector, images, outputs

    assert detect_module.Detector is detector.Detector
    assert detect_module.load_image is images.load_image
    assert detect_module.write_outputs is outputs.write_outputs
    assert callable(backends._pick_device)
    calls: list[tuple[tuple[int, ...], tuple[float, float]]] = []
    original = detector.Detector._decode

    def spy(self: Detector, pred: np.ndarray, scale_xy: tuple[float, float]) -> object:
        calls.append((pred.shape, scale_xy))
        return original(self, pred, scale_xy)

    monkeypatch.setattr(detector.Detector, "_decode", spy)
    image = _image(300, 400)
    found = Detector.from_model(OracleModel(_words(), (300, 400)), scales=(2.0,), fold_bn=False)(
        image
    )
    assert len(found) == 4
    assert calls == [((7, 19, 25), (0.5, 0.5))]  # one map of 600x800 padded to 608x800


_IC15_LINE = re.compile(r"^\s*" + r"\s*,\s*".join([r"(-?[0-9]+)"] * 8) + r"\s*$")


def _official_ic15_problems(path: Path) -> list[str]:
    """The official RRC ic15 script's check of one result file with its default parameters
    (LTRB False, CRLF False, CONFIDENCES False), re-implemented from its public text:
    lines split on LF with CR removed, blank lines skipped, each line exactly eight
    integers, and the corners clockwise: sum of (x2 - x1) * (y2 + y1) over edges <= 0."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return [f"{path.name}: not UTF-8"]
    problems = []
    for line in text.split("\n"):
        line = line.replace("\r", "")
        if not line:
            continue
        match = _IC15_LINE.match(line)
        if match is None:
            problems.append(f"{path.name}: {line!r} is not x1,y1,x2,y2,x3,y3,x4,y4")
            continue
        pts = [int(v) for v in match.groups()]
        edges = sum(
            (pts[(2 * i + 2) % 8] - pts[2 * i]) * (pts[(2 * i + 3) % 8] + pts[2 * i + 1])
            for i in range(4)
        )
        if edges > 0:
            problems.append(f"{path.name}: {line!r} is not clockwise")
    return problems


def test_official_ic15_rule_reimplementation_golden_lines(tmp_path: Path) -> None:
    good = tmp_path / "res_img_1.txt"
    good.write_bytes(b"10,10,50,10,50,30,10,30\r\n\r\n-2,5,8,5,8,9,-2,9\n")
    assert _official_ic15_problems(good) == []
    for bad_line in (
        b"10,10,50,10,50,30,10,30,0.9",  # a ninth value
        b"10,10,50,10,50,30,10,30.5",  # not an integer
        b"10,10,10,30,50,30,50,10",  # counter-clockwise on screen
    ):
        (tmp_path / "bad.txt").write_bytes(bad_line + b"\r\n")
        assert len(_official_ic15_problems(tmp_path / "bad.txt")) == 1, bad_line


def test_res_files_pass_the_official_ic15_format_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, folder, _ = _cli_inputs(tmp_path)
    out = tmp_path / "out"
    base = ["detect", str(folder), "--model", str(model_path), "--threshold", "0.0", "--quiet"]
    assert main([*base, "--out", str(out)]) == 0, capsys.readouterr().err
    lines = 0
    for res in sorted(out.glob("res_*.txt")):
        assert _official_ic15_problems(res) == []
        lines += len([x for x in res.read_text().splitlines() if x])
    assert lines > 10  # a random model at threshold 0 finds plenty of quads to check
    # Scores stay in the JSON, in [0, 1], and behind --res-scores in the text files.
    record = json.loads((out / "img_1.json").read_text())
    assert all(0.0 <= d["score"] <= 1.0 for d in record["detections"])
    scored = tmp_path / "scored"
    assert main([*base, "--out", str(scored), "--res-scores"]) == 0
    _, scores = read_icdar_results(scored / "res_img_1.txt")
    assert scores is not None and np.all((scores >= 0.0) & (scores <= 1.0))


def test_scores_above_one_are_reported_as_one() -> None:
    oracle = OracleModel(_words(), (300, 400), scores=np.array([1.004, 0.9, 0.8, 1.2]))
    found = Detector.from_model(oracle, scales=(2.0,), fold_bn=False)(_image(300, 400))
    assert sorted(d.score for d in found) == pytest.approx([0.8, 0.9, 1.0, 1.0])


def test_submission_quads_flags_quads_that_round_to_anticlockwise() -> None:
    quads = np.array(
        [
            [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]],  # clockwise on screen
            [[0.0, 0.0], [0.0, 5.0], [10.0, 5.0], [10.0, 0.0]],  # anticlockwise
            # A sliver, clockwise in floats, whose rounded corners go the other way.
            [[2.6, 2.5], [1.2, 1.4], [2.5, 2.0], [2.5, 2.3]],
        ]
    )
    rounded, accepted = submission_quads(quads)
    assert rounded.dtype == np.int64 and rounded.shape == (3, 4, 2)
    assert accepted.tolist() == [True, False, False]


def _huge_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width x height`` (no pixel data: a decoder must refuse
    it by its size before allocating)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_an_image_over_2_30_pixels_is_named_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, folder, _ = _cli_inputs(tmp_path)
    _huge_png(folder / "img_15.png", 40_000, 30_000)  # 1.2e9 pixels > 2^30
    with pytest.raises(ImageReadError, match=r"img_15\.png"):
        load_image(folder / "img_15.png")
    out = tmp_path / "out"
    code = main(["detect", str(folder), "--out", str(out), "--model", str(model_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert "img_15.png" in captured.err and "Traceback" not in captured.err
    assert "1 of 3 failed" in captured.out
    assert (out / "res_img_1.txt").is_file() and (out / "res_img_2.txt").is_file()


def test_folder_listing_says_what_it_skipped_and_recursive_walks_subfolders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, folder, _ = _cli_inputs(tmp_path)
    cv2.imwrite(str(folder / "photo.jpg"), _image(90, 120, 5))
    (folder / "photo.jpg").rename(folder / "phone.jfif")  # a JPEG by another name
    (folder / "README").write_text("no extension")
    (folder / "sub").mkdir()
    cv2.imwrite(str(folder / "sub" / "deep.png"), _image(80, 100, 6))
    out = tmp_path / "out"
    args = ["detect", str(folder), "--out", str(out), "--model", str(model_path), "--quiet"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "0 of 3 failed" in captured.out  # img_1, img_2, phone.jfif
    assert (out / "res_phone.txt").is_file()
    for name in ("readme.txt", "README", "sub/"):
        assert name in captured.err
    assert "--recursive" in captured.err
    assert main([*args, "--recursive"]) == 0
    assert "0 of 4 failed" in capsys.readouterr().out
    assert (out / "sub" / "res_deep.txt").is_file()


def test_help_examples_name_model_files_that_detect_and_export_accept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for verb in ("detect", "export"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        examples = re.findall(r"--model (\S+\.pt)", capsys.readouterr().out)
        assert examples, verb
        for example in examples:
            # `synthloc train --out runs/exp` writes best_model.pt and model.pt as model files;
            # best.pt and last.pt are training checkpoints that both commands refuse.
            assert Path(example).name in ("best_model.pt", "model.pt"), example
    monkeypatch.chdir(tmp_path)
    Path("runs/exp").mkdir(parents=True)
    save_model(Path("runs/exp/best_model.pt"), _tiny_model())
    cv2.imwrite("photo.jpg", _image(64, 96))
    assert (
        main(["detect", "photo.jpg", "--out", "results/", "--model", "runs/exp/best_model.pt"]) == 0
    )


def _assert_one_line_cli_error(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``synthloc detect ... FLAG VALUE`` exits 2 with a message naming FLAG, no traceback."""
    with pytest.raises(SystemExit) as exc:
        main(["detect", "x.jpg", "--out", "unused", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "2", "-1", "abc"])
def test_threshold_outside_0_1_is_a_one_line_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _assert_one_line_cli_error("--threshold", value, capsys)
    with pytest.raises(ValueError, match="threshold"):
        Detector.from_model(_tiny_model(), threshold=float(value) if value != "abc" else 2.0)


@pytest.mark.parametrize("value", ["-0.3", "1.5", "nan", "wide"])
def test_box_pad_outside_its_range_is_a_one_line_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _assert_one_line_cli_error("--box-pad", value, capsys)


def test_bad_devices_and_out_paths_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model_path, folder, _ = _cli_inputs(tmp_path)
    base = ["detect", str(folder), "--model", str(model_path), "--quiet"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU build, everywhere
    for device, message in (("cuda", "not available"), ("bogus", "unknown device")):
        assert main([*base, "--out", str(tmp_path / "o"), "--device", device]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file, a_file / "below"):
        assert main([*base, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert str(a_file) in err and len(err.strip().splitlines()) == 1, err


def test_skip_existing_redoes_images_made_with_other_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, folder, _ = _cli_inputs(tmp_path)
    out = tmp_path / "out"
    base = ["detect", str(folder), "--out", str(out), "--model", str(model_path), "--no-vis"]
    assert main([*base, "--threshold", "0.0", "--quiet"]) == 0
    capsys.readouterr()
    assert main([*base, "--threshold", "0.5", "--quiet", "--skip-existing"]) == 0
    assert "outputs exist" not in capsys.readouterr().out  # other threshold: both redone
    assert json.loads((out / "img_1.json").read_text())["threshold"] == 0.5
    assert main([*base, "--threshold", "0.5", "--quiet", "--skip-existing"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    other = tmp_path / "other.pt"
    save_model(other, _tiny_model(width=0.5))
    again = ["detect", str(folder), "--out", str(out), "--model", str(other), "--no-vis"]
    assert main([*again, "--threshold", "0.5", "--quiet", "--skip-existing"]) == 0
    assert "outputs exist" not in capsys.readouterr().out  # other weights: redone


def test_detect_into_its_own_input_folder_does_not_read_its_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, folder, _ = _cli_inputs(tmp_path)
    args = ["detect", str(folder), "--out", str(folder), "--model", str(model_path), "--quiet"]
    for _ in range(2):
        assert main(args) == 0
        assert "0 of 2 failed" in capsys.readouterr().out
    assert not list(folder.glob("*_vis_vis.jpg")) and not (folder / "res_img_1_vis.txt").exists()


def test_network_input_equals_preprocess_and_zero_padding_to_the_stride() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(3)]
    batch = network_input(images, 4)
    expected = torch.nn.functional.pad(preprocess(np.stack(images)), (0, 3, 0, 3)).numpy()
    assert batch.dtype == np.float32 and batch.shape == (3, 3, 40, 56)
    assert np.array_equal(batch, expected)  # bit for bit: the same float32 division
    assert np.array_equal(network_input(np.stack(images)), preprocess(np.stack(images)).numpy())


def test_network_input_refuses_mixed_sizes_and_other_types() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"of one size \(8x8\), got uint8 \(8, 9, 3\)"):
        network_input([image, np.zeros((8, 9, 3), np.uint8)])
    with pytest.raises(ValueError, match="got float32"):
        network_input([image.astype(np.float32)])
    with pytest.raises(ValueError, match="at least one image"):
        network_input([])
