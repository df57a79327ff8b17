"""The second stage: rectification, the verifier network, its training data, its training run,
its ONNX export and the two-stage detector."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from synthloc.detect import Detector, VerifierStage
from synthloc.export import OnnxParityError, check_verifier_parity, export_verifier_onnx
from synthloc.geometry import iou_matrix, rbox_to_quad
from synthloc.model import FCRNLite, ModelConfig, build_model, encode_targets, save_model
from synthloc.train_config import OptimConfig, ScheduleConfig
from synthloc.verify import (
    CROP_HEIGHT,
    CROP_WIDTH,
    Verifier,
    VerifierConfig,
    apply_offsets,
    crop_offsets,
    load_verifier_with_extra,
    rectify,
    save_verifier,
)
from synthloc.verify.crops import rectification
from synthloc.verify.data import (
    KIND_CODES,
    DataFolderError,
    JitterConfig,
    ShardBuilder,
    VerifierData,
    VerifierDataConfig,
    _split_detections,
    generate,
    jittered_positives,
    random_quads,
)
from synthloc.verify.train import (
    VerifierTrainConfig,
    VerifierTrainer,
    load_dataclass_config,
    predict,
)

STRIDE = 32
CONTEXT = 0.25
JITTER = VerifierDataConfig(jitter=JitterConfig(shift=0.25, scale=0.2, angle=0.0), pos_iou=0.5)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _boxes() -> np.ndarray:
    return rbox_to_quad(
        np.array([[100.0, 80.0, 120.0, 30.0, 0.3], [60.0, 150.0, 40.0, 40.0, -0.2]])
    ).reshape(-1, 4, 2)


# -- rectification ----------------------------------------------------------------------------


def test_offsets_round_trip_through_the_crop_homography() -> None:
    quads = _boxes()
    # A perspective quad too: the mapping must stay exact for it.
    quads = np.concatenate([quads, [[[20.0, 20.0], [90.0, 30.0], [85.0, 60.0], [25.0, 50.0]]]])
    geometry = rectification(quads, CONTEXT)
    assert geometry.valid.all()
    targets = quads + np.array([3.0, -2.0])
    offsets = crop_offsets(geometry, targets)
    assert np.abs(apply_offsets(geometry, offsets) - targets).max() < 1e-3
    assert np.abs(apply_offsets(geometry, np.zeros((3, 8))) - quads).max() < 1e-3


def test_crop_geometry_keeps_the_aspect_and_adds_context() -> None:
    # 120 x 30 word, context 0.25: expanded 135 x 45 (aspect 3) fills the crop's height.
    quad = rbox_to_quad(np.array([[200.0, 100.0, 120.0, 30.0, 0.0]])).reshape(1, 4, 2)
    geometry = rectification(quad, CONTEXT)
    x0, y0, x1, y1 = geometry.content[0]
    assert (y0, y1) == pytest.approx((0.0, 32.0))
    assert (x1 - x0) == pytest.approx(96.0)  # 32 * 3, centred
    assert x0 == pytest.approx(16.0)
    # Quad corners sit one context margin (0.25 * 30 px -> 32/45 * 7.5 px) inside.
    inner = geometry.quads_in_crop[0]
    assert inner[0] == pytest.approx([16.0 + 7.5 * 32 / 45, 7.5 * 32 / 45])
    assert inner[2] == pytest.approx([112.0 - 7.5 * 32 / 45, 32.0 - 7.5 * 32 / 45])
    # A very long word fills the width instead and is padded above and below.
    long = rbox_to_quad(np.array([[300.0, 100.0, 500.0, 20.0, 0.0]])).reshape(1, 4, 2)
    x0, y0, x1, y1 = rectification(long, CONTEXT).content[0]
    assert (x0, x1) == pytest.approx((0.0, 128.0))
    assert y0 > 5 and 32 - y1 == pytest.approx(y0)


def test_rectify_samples_the_quad_and_pads_with_black() -> None:
    image = np.full((200, 300, 3), 60, np.uint8)
    quad = rbox_to_quad(np.array([[150.0, 100.0, 120.0, 30.0, 0.4]])).reshape(1, 4, 2)
    cv2.fillConvexPoly(image, np.round(quad[0] * 16).astype(np.int32), (255, 255, 255), 8, 4)
    crops, geometry = rectify(image, quad, CONTEXT)
    assert crops.shape == (1, CROP_HEIGHT, CROP_WIDTH, 3)
    crop = crops[0, :, :, 0].astype(float)
    inner = geometry.quads_in_crop[0]
    (qx0, qy0), (qx1, qy1) = inner[0] + 2, inner[2] - 2
    assert crop[int(qy0) : int(qy1), int(qx0) : int(qx1)].min() > 240  # the word
    x0, _, x1, _ = geometry.content[0]
    assert crop[1, int(x0) + 2 : int(x1) - 2].max() < 70  # the context ring: background
    assert crop[:, : int(x0) - 1].max() == 0 and crop[:, int(x1) + 1 :].max() == 0  # padding


def test_degenerate_quads_are_marked_and_never_pass_the_verifier() -> None:
    quads = np.array([[[5.0, 5.0], [5.2, 5.0], [5.2, 5.1], [5.0, 5.1]]])
    geometry = rectification(quads, CONTEXT)
    assert not geometry.valid[0]
    stage = VerifierStage.from_model(Verifier(), threshold=0.0)
    kept, _ = stage(np.zeros((20, 20, 3), np.uint8), quads, np.ones(1))
    assert len(kept) == 0


# -- the network ------------------------------------------------------------------------------


def test_verifier_contract_and_size() -> None:
    model = Verifier().eval()
    parameters = sum(p.numel() for p in model.parameters())
    assert 300_000 <= parameters <= 1_000_000
    out = model(torch.rand(5, 3, CROP_HEIGHT, CROP_WIDTH))
    assert out.shape == (5, 9)
    # A new verifier refines nothing: its offset outputs start at zero.
    assert torch.all(out[:, 1:] == 0)


def test_verifier_file_round_trip_and_foreign_files(tmp_path: Path) -> None:
    model = Verifier(VerifierConfig(width=0.5, hidden=32, context=0.3)).eval()
    save_verifier(tmp_path / "v.pt", model, {"verify": {"threshold": 0.7}})
    loaded, extra = load_verifier_with_extra(tmp_path / "v.pt")
    assert loaded.config == model.config and extra["verify"]["threshold"] == 0.7
    x = torch.rand(2, 3, CROP_HEIGHT, CROP_WIDTH)
    assert torch.allclose(loaded(x), model(x))
    save_model(tmp_path / "detector.pt", build_model(ModelConfig(arch="fcrn-lite", width=0.25)))
    with pytest.raises(ValueError, match=r"detector\.pt: not a synthloc verifier file"):
        load_verifier_with_extra(tmp_path / "detector.pt")


# -- training data ----------------------------------------------------------------------------


def test_jittered_positives_stay_above_the_iou_threshold() -> None:
    rng = np.random.default_rng(0)
    words = _boxes()
    found, targets, ious = jittered_positives(words, 5, JITTER, rng)
    assert len(found) >= 6
    assert np.all(ious >= JITTER.pos_iou) and np.all(ious < 1.0)
    again = np.diag(iou_matrix(found, targets))
    assert again == pytest.approx(ious)


def test_detections_split_into_positives_negatives_and_left_out() -> None:
    words = rbox_to_quad(
        np.array([[100.0, 100.0, 80.0, 20.0, 0.0], [200.0, 100.0, 80.0, 20.0, 0.0]])
    ).reshape(-1, 4, 2)
    detected = rbox_to_quad(
        np.array(
            [
                [102.0, 101.0, 80.0, 20.0, 0.0],  # on word 0: positive
                [150.0, 300.0, 60.0, 20.0, 0.0],  # far from text: negative
                [150.0, 100.0, 190.0, 22.0, 0.0],  # over both words: left out
                [100.0, 100.0, 30.0, 20.0, 0.0],  # IoU 0.375 with word 0: neither
            ]
        )
    ).reshape(-1, 4, 2)
    positives, their_words, ious, negatives = _split_detections(detected, words, JITTER)
    assert len(positives) == 1 and np.allclose(their_words[0], words[0])
    assert ious[0] == pytest.approx(78 * 19 / (2 * 80 * 20 - 78 * 19))
    assert len(negatives) == 1 and np.allclose(negatives[0], detected[1])


def _small_data_config(**changes: object) -> VerifierDataConfig:
    values: dict[str, object] = {
        "seed": 3,
        "synth_images": 3,
        "synth_size": 160,
        "background_images": 3,
        "random_negatives_per_image": 3,
        "images_per_shard": 2,
    }
    values.update(changes)
    return VerifierDataConfig(**values)  # type: ignore[arg-type]


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "shards").glob("*.npz"))}


def test_data_generation_is_deterministic_and_resumes(tmp_path: Path) -> None:
    config = _small_data_config()
    counts = generate(config, tmp_path / "a")
    assert counts["jitter"] > 0 and counts["background"] == 9
    generate(config, tmp_path / "b")
    first = _shard_bytes(tmp_path / "a")
    assert len(first) == 4 and first == _shard_bytes(tmp_path / "b")
    # An interrupted run: a shard is missing; the rerun makes exactly it again.
    (tmp_path / "b" / "shards" / "synth_00001.npz").unlink()
    generate(config, tmp_path / "b")
    assert _shard_bytes(tmp_path / "b") == first
    generate(_small_data_config(seed=4), tmp_path / "c")
    assert _shard_bytes(tmp_path / "c") != first
    with pytest.raises(DataFolderError, match="another config"):
        generate(_small_data_config(seed=4), tmp_path / "a")


def test_hard_negatives_come_from_the_first_stage(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = build_model(ModelConfig(arch="fcrn-lite", width=0.25))
    assert isinstance(detector, FCRNLite)
    with torch.no_grad():
        detector.head.weight.normal_(0.0, 0.3)  # a random model with varied boxes
    save_model(tmp_path / "first.pt", detector.eval())
    config = _small_data_config(
        detector=str(tmp_path / "first.pt"), detector_threshold=0.0, detector_scales=[160.0]
    )
    counts = generate(config, tmp_path / "data")
    assert counts["hard"] > 0 and counts["background_hard"] > 0
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["hard"] == counts["hard"]
    for path in (tmp_path / "data" / "shards").glob("*.npz"):
        with np.load(path) as shard:
            hard = np.isin(shard["kind"], [KIND_CODES["hard"], KIND_CODES["background_hard"]])
            assert np.all(shard["label"][hard] == 0)
            assert np.all(shard["offsets"][shard["label"] == 0] == 0)


def test_real_word_crops_add_positives_and_bad_files_are_counted(tmp_path: Path) -> None:
    words = tmp_path / "words"
    words.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(words / "word_1.png"), rng.integers(0, 255, (20, 60, 3), dtype=np.uint8))
    (words / "word_2.png").write_bytes(b"not a png")
    (words / "coords.txt").write_text(
        "\ufeffword_1.png,0,0,60,0,60,20,0,20\nword_2.png,0,0,10,0,10,5,0,5\n", encoding="utf-8"
    )
    config = _small_data_config(
        synth_images=0, background_images=0, real_words=str(words), real_per_word=3
    )
    counts = generate(config, tmp_path / "data")
    assert counts["real"] == 3 and counts["skipped"] == 1


def test_verifier_data_cli_names_a_missing_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthloc.cli import main

    out = tmp_path / "data"
    args = ["verifier-data", "--out", str(out), "--no-progress"]
    assert main([*args, "--detector", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt" in err[0] and "Traceback" not in err[0]
    assert main([*args, "--real-words", str(tmp_path / "nowords")]) == 1
    assert "nowords/coords.txt: word-crop coordinates not found" in capsys.readouterr().err
    assert not out.exists()  # nothing is written before every input opened


# -- a verifier trained for a few seconds -------------------------------------------------------


def _toy_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A grey noisy image with three dark-on-white words; their quads [3, 4, 2]."""
    image = rng.integers(90, 140, (160, 240, 3)).astype(np.uint8)
    quads = []
    for row in range(3):
        height, width = rng.uniform(16, 24), rng.uniform(60, 110)
        cx = rng.uniform(width / 2 + 5, 235 - width / 2)
        cy = 30 + 50 * row + rng.uniform(-5, 5)
        quad = rbox_to_quad(np.array([[cx, cy, width, height, 0.0]])).reshape(4, 2)
        cv2.fillConvexPoly(image, np.round(quad).astype(np.int32), (250, 250, 250))
        cv2.putText(
            image,
            "text"[: 2 + row],
            (int(quad[0, 0]) + 3, int(quad[3, 1]) - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            height / 40,
            (20, 20, 20),
            2,
        )
        quads.append(quad)
    return image, np.array(quads)


def _non_text(rng: np.random.Generator) -> np.ndarray:
    """A flat colour or a noise image (obvious non-text)."""
    if rng.random() < 0.5:
        return np.full((160, 240, 3), rng.integers(0, 256, 3), np.uint8)
    return rng.integers(0, 256, (160, 240, 3)).astype(np.uint8)


def _toy_data(seed: int, scenes: int) -> VerifierData:
    rng = np.random.default_rng(seed)
    builder = ShardBuilder()
    for _ in range(scenes):
        image, quads = _toy_scene(rng)
        found, targets, ious = jittered_positives(quads, 3, JITTER, rng)
        builder.add(image, found, "jitter", CONTEXT, targets, ious)
        blank = _non_text(rng)
        builder.add(blank, random_quads(blank.shape[:2], 3, rng), "background", CONTEXT)
    return VerifierData(**builder.arrays())


@pytest.fixture(scope="module")
def trained_verifier(tmp_path_factory: pytest.TempPathFactory) -> nn.Module:
    """A small verifier trained for 250 steps (seconds) on toy words and non-text."""
    data = _toy_data(seed=0, scenes=60)
    config = VerifierTrainConfig(
        data=["in-memory"],
        model=VerifierConfig(width=0.25, hidden=32, context=CONTEXT),
        steps=250,
        batch_size=32,
        val_fraction=0.0,
        augment=False,
        ema_decay=0.0,
        log_every=125,
        val_every=0,
        checkpoint_every=1000,
        optim=OptimConfig(name="adamw", lr=3e-3, weight_decay=0.0),
        schedule=ScheduleConfig(warmup_steps=20),
    )
    run_dir = tmp_path_factory.mktemp("toy_run")
    with torch.random.fork_rng(devices=[]):
        trainer = VerifierTrainer(config, run_dir, data, data.subset(np.arange(0)))
        result = trainer.run(config.steps, progress=False)
    assert result.model is not None
    return result.model.eval()


def test_trained_verifier_moves_jittered_quads_closer(trained_verifier: nn.Module) -> None:
    rng = np.random.default_rng(123)  # scenes never seen in training
    before: list[float] = []
    after: list[float] = []
    for _ in range(10):
        image, quads = _toy_scene(rng)
        found, targets, ious = jittered_positives(quads, 3, JITTER, rng)
        crops, geometry = rectify(image, found, CONTEXT)
        refined = apply_offsets(geometry, predict(trained_verifier, crops)[:, 1:])
        before += list(ious)
        after += list(np.diag(iou_matrix(refined, targets)))
    gains = np.array(after) - np.array(before)
    assert np.mean(after) > np.mean(before) + 0.1, (np.mean(before), np.mean(after))
    assert np.mean(gains > 0) > 0.8


def test_trained_verifier_rejects_obvious_non_text(trained_verifier: nn.Module) -> None:
    rng = np.random.default_rng(456)
    text_probability: list[float] = []
    blank_probability: list[float] = []
    for _ in range(10):
        image, quads = _toy_scene(rng)
        crops, _ = rectify(image, quads, CONTEXT)
        text_probability += list(
            torch.sigmoid(torch.from_numpy(predict(trained_verifier, crops)[:, 0]))
        )
        blank = _non_text(rng)
        crops, _ = rectify(blank, random_quads(blank.shape[:2], 3, rng), CONTEXT)
        blank_probability += list(
            torch.sigmoid(torch.from_numpy(predict(trained_verifier, crops)[:, 0]))
        )
    assert np.mean(np.array(text_probability) > 0.5) >= 0.9
    assert np.mean(np.array(blank_probability) < 0.5) >= 0.95


# -- ONNX -------------------------------------------------------------------------------------


def test_verifier_onnx_parity_and_metadata(trained_verifier: nn.Module, tmp_path: Path) -> None:
    import onnxruntime as ort

    path = export_verifier_onnx(
        trained_verifier, tmp_path / "v.onnx", verify_defaults={"threshold": 0.6}
    )
    assert check_verifier_parity(trained_verifier, path) <= 1e-4
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    assert meta["synthloc.kind"] == "verifier"
    assert json.loads(meta["synthloc.verify"]) == {"threshold": 0.6}
    # A graph that no longer matches the model fails the check.
    changed = Verifier(trained_verifier.config).eval()  # type: ignore[arg-type]
    with pytest.raises(OnnxParityError, match="differs from PyTorch"):
        check_verifier_parity(changed, path)


# -- the two-stage detector ---------------------------------------------------------------------


class FixedCandidates(nn.Module):
    """A first stage that proposes the same quads (image pixels, scale 1.0) on any input."""

    def __init__(self, quads: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.stride = STRIDE
        self.config = SimpleNamespace(confidence="linear")
        grid = encode_targets(quads, np.zeros(len(quads), bool), image_hw, STRIDE, min_size=0)
        target = grid.target.copy()
        centres = quads.mean(axis=1)
        for (cx, cy), score in zip(centres, scores):
            target[6, int(cy // STRIDE), int(cx // STRIDE)] = score
        self.register_buffer("map", torch.from_numpy(target)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.map.expand(x.shape[0], -1, -1, -1)  # type: ignore[operator]


def _two_stage_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The toy scene with a noise block on its right; true words, candidates, their scores."""
    rng = np.random.default_rng(789)
    scene, words = _toy_scene(rng)
    image = np.zeros((160, 480, 3), np.uint8)
    image[:, :240] = scene
    image[:, 240:] = rng.integers(0, 256, (160, 240, 3))
    jittered = np.array([jittered_positives(word[None], 1, JITTER, rng)[0][0] for word in words])
    false = rbox_to_quad(
        np.array([[330.0, 40.0, 90.0, 20.0, 0.0], [400.0, 120.0, 70.0, 24.0, 0.0]])
    ).reshape(-1, 4, 2)
    candidates = np.concatenate([jittered, false])
    return image, words, candidates, np.array([0.9, 0.8, 0.85, 0.7, 0.75])


def test_detector_with_and_without_the_verifier(trained_verifier: nn.Module) -> None:
    image, words, candidates, scores = _two_stage_scene()
    first = FixedCandidates(candidates, scores, image.shape[:2])
    alone = Detector.from_model(first, scales=(1.0,), threshold=0.5, fold_bn=False)(image)
    assert len(alone) == 5
    stage = VerifierStage.from_model(trained_verifier, threshold=0.5)
    both = Detector.from_model(first, scales=(1.0,), threshold=0.5, fold_bn=False, verifier=stage)(
        image
    )
    # The two candidates on noise are rejected; the three words remain, closer to the truth.
    assert len(both) == 3
    refined = np.array([d.quad for d in both])
    first_iou = iou_matrix(np.array([d.quad for d in alone]), words).max(axis=0)
    two_stage_iou = iou_matrix(refined, words).max(axis=0)
    assert two_stage_iou.mean() > first_iou.mean()
    # Scores are the geometric mean of the stages' scores.
    probability, _ = stage.predict(image, np.array([d.quad for d in alone]))
    expected = sorted(np.sqrt(np.array([d.score for d in alone]) * probability)[probability >= 0.5])
    assert sorted(d.score for d in both) == pytest.approx(expected, abs=1e-5)


def _tiny_first_stage() -> nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="fcrn-lite", width=0.25))
    assert isinstance(model, FCRNLite)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.3)
    return model.eval()


def test_load_runs_both_stages_with_torch_and_onnxruntime(
    trained_verifier: nn.Module, tmp_path: Path
) -> None:
    save_model(tmp_path / "m.pt", _tiny_first_stage())
    save_verifier(tmp_path / "v.pt", trained_verifier, {"verify": {"threshold": 0.3}})
    export_verifier_onnx(trained_verifier, tmp_path / "v.onnx")
    image, _, _, _ = _two_stage_scene()
    settings: dict[str, Any] = {"scales": [1.0], "threshold": 0.0}
    plain = Detector.load(tmp_path / "m.pt", **settings)
    assert plain.verifier is None
    torch_two = Detector.load(tmp_path / "m.pt", verifier=tmp_path / "v.pt", **settings)
    assert torch_two.verifier is not None and torch_two.verifier.threshold == 0.3
    onnx_two = Detector.load(
        tmp_path / "m.pt",
        verifier=tmp_path / "v.pt",
        backend="onnxruntime",
        **settings,
    )
    onnx_file = Detector.load(
        tmp_path / "m.pt",
        verifier=tmp_path / "v.onnx",
        backend="onnxruntime",
        verify_threshold=0.3,
        **settings,
    )
    skipped = Detector.load(tmp_path / "m.pt", verifier=tmp_path / "v.pt", verify=False, **settings)
    assert skipped.verifier is None
    reference = torch_two(image)
    assert 0 < len(reference) < len(plain(image))
    for other in (onnx_two(image), onnx_file(image)):
        assert len(other) == len(reference)
        for a, b in zip(reference, other):
            assert np.abs(a.quad - b.quad).max() < 1e-2 and a.score == pytest.approx(
                b.score, abs=1e-4
            )
    with pytest.raises(ValueError, match=r"m\.pt: not a synthloc verifier file"):
        Detector.load(tmp_path / "m.pt", verifier=tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        Detector.load(tmp_path / "m.pt", verifier=tmp_path / "missing.pt")


def test_verifier_file_can_lower_the_first_stage_threshold(tmp_path: Path) -> None:
    save_model(tmp_path / "m.pt", _tiny_first_stage())
    save_verifier(tmp_path / "v.pt", Verifier(), {"verify": {"first_stage_threshold": 0.2}})
    assert Detector.load(tmp_path / "m.pt", verifier=tmp_path / "v.pt").threshold == 0.2
    assert (
        Detector.load(tmp_path / "m.pt", verifier=tmp_path / "v.pt", threshold=0.6).threshold == 0.6
    )
    assert (
        Detector.load(tmp_path / "m.pt", verifier=tmp_path / "v.pt", verify=False).threshold == 0.5
    )


def test_detect_cli_records_the_verifier_and_no_verify(
    trained_verifier: nn.Module, tmp_path: Path
) -> None:
    from synthloc.cli import main

    save_model(tmp_path / "m.pt", _tiny_first_stage())
    save_verifier(tmp_path / "v.pt", trained_verifier)
    image, _, _, _ = _two_stage_scene()
    cv2.imwrite(str(tmp_path / "scene.png"), image[..., ::-1])
    common = ["detect", str(tmp_path / "scene.png"), "--model", str(tmp_path / "m.pt"), "--no-vis"]
    common += ["--threshold", "0", "--scales", "1.0", "--quiet"]
    assert (
        main([*common, "--out", str(tmp_path / "two"), "--verifier", str(tmp_path / "v.pt")]) == 0
    )
    assert (
        main(
            [
                *common,
                "--out",
                str(tmp_path / "one"),
                "--verifier",
                str(tmp_path / "v.pt"),
                "--no-verify",
            ]
        )
        == 0
    )
    two = json.loads((tmp_path / "two" / "scene.json").read_text())
    one = json.loads((tmp_path / "one" / "scene.json").read_text())
    assert two["verifier"] == "v.pt" and two["verify_threshold"] == 0.5
    assert one["verifier"] is None
    assert len(two["detections"]) < len(one["detections"])


# -- the training run -------------------------------------------------------------------------


def test_train_verifier_run_folder_resume_and_model_file(tmp_path: Path) -> None:
    from synthloc.cli import main

    generate(_small_data_config(), tmp_path / "data")
    common = ["--data", str(tmp_path / "data"), "--steps", "6", "--batch-size", "8"]
    common += ["--set", "model.width=0.25", "--set", "model.hidden=16", "--no-progress"]
    common += ["--set", "val_every=3", "--set", "checkpoint_every=2", "--set", "val_fraction=0.5"]
    assert main(["train-verifier", *common, "--out", str(tmp_path / "full")]) == 0
    stopped = ["train-verifier", *common, "--out", str(tmp_path / "split")]
    assert main([*stopped, "--stop-at-step", "3"]) == 0
    assert not (tmp_path / "split" / "model.pt").exists()
    assert main([*stopped, "--resume"]) == 0
    for name in ("config.yaml", "last.pt", "best.pt", "best_model.pt", "model.pt", "metrics.jsonl"):
        assert (tmp_path / "full" / name).is_file(), name
    full, _ = load_verifier_with_extra(tmp_path / "full" / "model.pt")
    resumed, extra = load_verifier_with_extra(tmp_path / "split" / "model.pt")
    assert extra["step"] == 6 and "hmean" in extra
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    rows = [
        json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    ]
    validations = [row for row in rows if row["kind"] == "val"]
    assert [row["step"] for row in validations] == [3, 6]
    assert all("corner_px_after" in row and "hmean" in row for row in validations)
    # A second run into the same folder is refused with one line naming it.
    assert main(["train-verifier", *common, "--out", str(tmp_path / "full")]) == 1


def test_train_verifier_config_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthloc.cli import main

    with pytest.raises(ValueError, match="steps must be at least 1"):
        load_dataclass_config(VerifierTrainConfig, None, ["steps=0"])
    assert (
        main(["train-verifier", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nothing")])
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing: no verifier data here" in err[0]
    assert not (tmp_path / "r").exists()
    generate(_small_data_config(synth_images=0, context=0.4), tmp_path / "wide")
    assert (
        main(["train-verifier", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "wide")])
        == 1
    )
    wide_err = capsys.readouterr().err
    assert "wide: crops cut with context 0.4, but model.context is 0.25" in wide_err
