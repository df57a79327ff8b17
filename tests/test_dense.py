"""fcrn-dense: EfficientNet-Lite0 backbone and its ImageNet key map, dense targets and their
decoder, the dense loss terms, detection and ONNX export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from synthloc.data.icdar import IcdarGT
from synthloc.detect import Detector
from synthloc.evaluate import evaluate_ic15
from synthloc.geometry import quad_to_rbox, rbox_to_quad
from synthloc.model import (
    FCRNLoss,
    LossConfig,
    ModelConfig,
    build_model,
    decode_dense_predictions,
    encode_dense_targets,
    fold_batchnorm,
)
from synthloc.model.dense_targets import merge_cell_boxes
from synthloc.model.efficientnet import (
    CLASSIFIER_KEYS,
    EfficientNetLite0,
    load_imagenet_weights,
    map_imagenet_keys,
)

SHARED_IMAGENET = Path(__file__).resolve().parents[2] / "shared/data/backgrounds/imagenet_samples"


def dense_config(**overrides: object) -> ModelConfig:
    values: dict[str, object] = {"arch": "fcrn-dense", "stride": 4, "confidence": "logit"}
    values.update(overrides)
    return ModelConfig(**values)  # type: ignore[arg-type]


def words(*rboxes: tuple[float, float, float, float, float]) -> np.ndarray:
    return rbox_to_quad(np.asarray(rboxes, dtype=np.float64)).reshape(-1, 4, 2)


def perfect_map(targets: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """A prediction map equal to the targets, scoring positives high and the rest low."""
    pred = targets.copy()
    pred[6] = np.where(positive, 8.0, -8.0)
    return pred


# -- backbone ------------------------------------------------------------------------------


def imagenet_state() -> dict[str, torch.Tensor]:
    from synthloc.model.efficientnet import imagenet_weights_path

    return torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)


def test_imagenet_key_map_uses_every_backbone_tensor_with_matching_shapes() -> None:
    state = imagenet_state()
    mapped = map_imagenet_keys(state)
    ours = EfficientNetLite0().state_dict()
    # Every tensor outside the classifier is used, once, and fills one of ours.
    not_classifier = [k for k in state if not k.startswith(CLASSIFIER_KEYS)]
    assert len(mapped) == len(not_classifier) == len(ours)
    assert set(mapped) == set(ours)
    for key, value in mapped.items():
        assert tuple(value.shape) == tuple(ours[key].shape), key
    # The classifier is exactly what is left: the 1x1 head conv, its norm, the fc layer.
    left = sorted(k for k in state if k.startswith(CLASSIFIER_KEYS))
    assert {k.split(".")[0] for k in left} == {"_conv_head", "_bn1", "_fc"}
    assert sum(v.numel() for k, v in mapped.items() if "num_batches" not in k) > 2_900_000


def test_imagenet_weights_classify_sample_photos() -> None:
    """With the published classifier on top, our backbone names ImageNet photos correctly."""
    if not SHARED_IMAGENET.is_dir():
        pytest.skip("shared ImageNet samples not present")
    import cv2

    state = imagenet_state()
    backbone = EfficientNetLite0().eval()
    load_imagenet_weights(backbone)
    # ImageNet class indices follow the sorted WordNet ids: tench 0, goldfish 1, ...
    expected = {"n01440764": 0, "n01443537": 1, "n01484850": 2, "n01491361": 3}
    for wnid, index in expected.items():
        path = next(SHARED_IMAGENET.glob(f"{wnid}_*.jpg"))
        bgr = cv2.imread(str(path))
        assert bgr is not None
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            f32 = backbone((x - 0.5) / 0.5)[-1]
            head = torch.nn.functional.conv2d(f32, state["_conv_head.weight"])
            head = torch.nn.functional.batch_norm(
                head,
                state["_bn1.running_mean"],
                state["_bn1.running_var"],
                state["_bn1.weight"],
                state["_bn1.bias"],
                eps=1e-3,
            ).clamp(0, 6)
            logits = torch.nn.functional.linear(
                head.mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"]
            )
        top5 = logits[0].topk(5).indices.tolist()
        assert index in top5, (path.name, top5)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(KeyError, match="unexpected"):
        map_imagenet_keys({"_blocks.0._expand_conv.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="unexpected"):
        map_imagenet_keys({"features.0.weight": torch.zeros(1)})


def test_model_shapes_and_stride_validation() -> None:
    for stride in (4, 8):
        model = build_model(dense_config(stride=stride)).eval()
        with torch.no_grad():
            out = model(torch.rand(2, 3, 100, 130))
        # Padded to 128 x 160 inside the model.
        assert out.shape == (2, 7, 128 // stride, 160 // stride)
    params = sum(p.numel() for p in build_model(dense_config()).parameters())
    assert 1_000_000 < params < 5_000_000
    with pytest.raises(ValueError, match="stride"):
        ModelConfig(arch="fcrn-dense", stride=32)
    with pytest.raises(ValueError, match="stride"):
        ModelConfig(arch="fcrn-lite", stride=4)


def test_folded_model_matches_eval_model() -> None:
    torch.manual_seed(0)
    model = build_model(dense_config(stride=8))
    # Non-trivial BatchNorm statistics.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(2, 3, 64, 64))
    model.eval()
    x = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(model)(x), model(x), atol=1e-4)


# -- targets and decoding -----------------------------------------------------------------


def test_encode_decode_round_trip_of_rotated_words() -> None:
    rng = np.random.default_rng(3)
    for trial in range(5):
        boxes = []
        for k in range(4):  # one word per horizontal band, so cores never meet
            h = float(rng.uniform(10, 40))
            w = float(rng.uniform(1.5, 6)) * h
            theta = float(rng.uniform(-0.5, 0.5))
            boxes.append((float(rng.uniform(150, 350)), 60.0 + 120 * k, w, h, theta))
        quads = words(*boxes)
        stride = 4 if trial % 2 else 8
        grid = encode_dense_targets(quads, np.zeros(len(quads), bool), (512, 512), stride)
        decoded, scores = decode_dense_predictions(perfect_map(*grid[:2]), stride, 0.5)
        assert len(decoded) == len(quads)
        found = quad_to_rbox(decoded.astype(np.float64))
        for box in quad_to_rbox(quads):
            nearest = found[np.argmin(np.hypot(*(found[:, :2] - box[:2]).T))]
            assert np.allclose(nearest[:4], box[:4], atol=1e-3)
            assert math.isclose(math.cos(2 * (nearest[4] - box[4])), 1.0, abs_tol=1e-6)
        assert np.all((scores > 0.99) & (scores <= 1.0))


def test_core_band_and_dont_care_masks() -> None:
    quads = words((100, 50, 120, 40, 0.0), (100, 150, 80, 30, 0.0))
    grid = encode_dense_targets(quads, np.array([False, True]), (256, 256), 4, shrink=0.25)
    rows, cols = np.nonzero(grid.positive)
    centres_x, centres_y = (cols + 0.5) * 4, (rows + 0.5) * 4
    # Core: 120 x 40 shrunk by 10 px on every side.
    assert centres_x.min() >= 50 and centres_x.max() <= 150
    assert centres_y.min() >= 40 and centres_y.max() <= 60
    assert grid.positive.sum() == 26 * 5  # centres 50, 54, ..., 150 by 42, 46, ..., 58
    # The band between core and outline is ignored; outside the box is negative.
    assert grid.ignore[34 // 4, 100 // 4] and grid.ignore[50 // 4, 44 // 4]
    assert not grid.ignore[24 // 4, 100 // 4] and not grid.positive[24 // 4, 100 // 4]
    # The don't-care word: no positive cell, every overlapped cell ignored.
    assert not grid.positive[135 // 4 : 165 // 4, 60 // 4 : 140 // 4].any()
    assert grid.ignore[136 // 4 : 164 // 4, 61 // 4 : 139 // 4].all()
    assert not (grid.positive & grid.ignore).any()


def test_a_tiny_word_still_gets_its_centre_cell() -> None:
    quads = words((50.0, 50.0, 14.0, 7.0, 0.0))
    grid = encode_dense_targets(quads, np.zeros(1, bool), (128, 128), 8, min_size=6)
    assert grid.positive.sum() == 1 and grid.positive[50 // 8, 50 // 8]
    assert np.all(np.isfinite(grid.target))
    decoded, _ = decode_dense_predictions(perfect_map(*grid[:2]), 8, 0.5)
    box = quad_to_rbox(decoded.astype(np.float64))[0]
    assert abs(box[0] - 50) <= 4 and abs(box[1] - 50) <= 4


def test_adjacent_words_decode_to_two_boxes_and_a_long_word_to_one() -> None:
    # Two words on one line, 8 px apart (a narrow word space at height 24).
    quads = words((100, 60, 120, 24, 0.0), (194, 60, 52, 24, 0.0))
    grid = encode_dense_targets(quads, np.zeros(2, bool), (128, 256), 4)
    decoded, _ = decode_dense_predictions(perfect_map(*grid[:2]), 4, 0.5)
    assert len(decoded) == 2
    long_word = words((256, 64, 480, 30, 0.05))
    grid = encode_dense_targets(long_word, np.zeros(1, bool), (128, 512), 4)
    assert grid.positive.sum() > 100
    decoded, _ = decode_dense_predictions(perfect_map(*grid[:2]), 4, 0.5)
    assert len(decoded) == 1


def test_merge_averages_a_words_noisy_predictions() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([100.0, 50.0, 90.0, 20.0, 0.1])
    noisy = truth + rng.normal(0, [1.0, 1.0, 2.0, 1.0, 0.01], size=(200, 5))
    merged, scores, support = merge_cell_boxes(noisy, rng.uniform(0.6, 1.0, 200))
    assert len(merged) == 1 and support[0] == 200
    assert np.allclose(merged[0, :4], truth[:4], atol=0.5)
    assert 0.6 < scores[0] < 1.0
    # Angles near +-90 degrees average to a vertical box, not a horizontal one.
    vertical = np.array([[0.0, 0.0, 50.0, 10.0, math.pi / 2 - 0.01]] * 3)
    vertical[1, 4] = -math.pi / 2 + 0.01
    merged, _, _ = merge_cell_boxes(vertical, np.ones(3))
    assert abs(math.cos(merged[0, 4])) < 0.05


# -- loss ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        LossConfig(conf_loss="bce", pose_loss="iou", ohem_ratio=3.0, dice_weight=1.0),
        LossConfig(conf_loss="mse", pose_loss="mse"),  # the paper's loss with its curriculum
        LossConfig(conf_loss="focal", pose_loss="smooth_l1", curriculum=False),
    ],
)
def test_ignored_cells_get_exactly_zero_gradient(config: LossConfig) -> None:
    quads = words((40, 30, 50, 16, 0.0), (80, 80, 40, 14, 0.2))
    grid = encode_dense_targets(quads, np.array([False, True]), (128, 128), 4)
    target = torch.from_numpy(grid.target)[None]
    positive = torch.from_numpy(grid.positive)[None]
    ignore = torch.from_numpy(grid.ignore)[None]
    assert ignore.sum() > 0 and positive.sum() > 0
    pred = torch.randn(1, 7, 32, 32, requires_grad=True)
    terms = FCRNLoss(config)(pred, target, positive, ignore, step=50)
    total = terms["total"]
    assert isinstance(total, torch.Tensor) and torch.isfinite(total)
    total.backward()
    assert pred.grad is not None
    assert torch.all(pred.grad[0][:, ignore[0]] == 0)
    # Pose channels of negative cells never get gradient either.
    negative = ~positive[0] & ~ignore[0]
    assert torch.all(pred.grad[0][:6][:, negative] == 0)
    assert pred.grad[0][:, positive[0]].abs().sum() > 0


def test_ohem_keeps_the_hardest_negatives() -> None:
    target = torch.zeros(1, 7, 8, 8)
    positive = torch.zeros(1, 8, 8, dtype=torch.bool)
    positive[0, 0, 0] = True
    target[0, 6, 0, 0] = 1
    ignore = torch.zeros(1, 8, 8, dtype=torch.bool)
    pred = torch.full((1, 7, 8, 8), -6.0)
    pred[0, 6, 5, 5] = 4.0  # one confident false positive among easy negatives
    config = LossConfig(conf_loss="bce", ohem_ratio=1.0, ohem_min=1, curriculum=False)
    terms = FCRNLoss(config)(pred, target, positive, ignore, step=0)
    # Only the hardest negative (BCE of logit 4 against 0) is averaged.
    expected = torch.nn.functional.softplus(torch.tensor(4.0))
    assert torch.isclose(torch.as_tensor(terms["conf_neg"]), expected, atol=1e-5)


def test_iou_pose_loss_is_zero_for_a_perfect_box_and_grows_with_error() -> None:
    quads = words((60, 40, 80, 20, 0.0))
    grid = encode_dense_targets(quads, np.zeros(1, bool), (96, 128), 4)
    target = torch.from_numpy(grid.target)[None]
    positive = torch.from_numpy(grid.positive)[None]
    ignore = torch.from_numpy(grid.ignore)[None]
    loss = FCRNLoss(LossConfig(conf_loss="bce", pose_loss="iou"))
    exact = loss(target.clone(), target, positive, ignore, 0)["pose"]
    off = target.clone()
    off[:, 0:4] += 0.2
    worse = loss(off, target, positive, ignore, 0)["pose"]
    assert float(exact) < 1e-4 < float(worse)


def test_loss_config_validation() -> None:
    with pytest.raises(ValueError, match="pose_loss"):
        LossConfig(pose_loss="giou")
    with pytest.raises(ValueError, match="ohem_ratio"):
        LossConfig(ohem_ratio=0)
    with pytest.raises(ValueError, match="dice_weight"):
        LossConfig(conf_loss="mse", dice_weight=1.0)


# -- detection and export ------------------------------------------------------------------


def test_detector_decodes_a_dense_model_and_onnx_matches(tmp_path: Path) -> None:
    from synthloc.export import check_onnx_parity, export_onnx

    torch.manual_seed(1)
    model = build_model(dense_config(stride=8)).eval()
    path = export_onnx(model, tmp_path / "dense.onnx")
    worst = check_onnx_parity(model, path, sizes=[(96, 160), (130, 70)])
    assert worst <= 1e-4
    torch_detector = Detector.from_model(model, scales=[1.0], threshold=0.001)
    onnx_detector = Detector.load(path, scales=[1.0], threshold=0.001)
    assert torch_detector.dense and onnx_detector.dense
    image = np.random.default_rng(0).integers(0, 255, (96, 160, 3), dtype=np.uint8)
    a, b = torch_detector(image), onnx_detector(image)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.allclose(x.quad, y.quad, atol=1e-2)


def test_detector_finds_words_encoded_as_a_perfect_map() -> None:
    """The detector's dense path (decode, size filter, NMS) returns the encoded words."""
    quads = words((80, 40, 100, 24, 0.0), (200, 100, 60, 20, 0.3))
    grid = encode_dense_targets(quads, np.zeros(2, bool), (128, 256), 4)
    pred = torch.from_numpy(perfect_map(*grid[:2]))[None]

    class Replay:
        def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
            return pred.numpy()

    detector = Detector(Replay(), stride=4, confidence="logit", scales=[1.0], dense=True)
    found = detector(np.zeros((128, 256, 3), np.uint8))
    gt = {"img": IcdarGT(quads.astype(np.float32), ["a", "b"], np.zeros(2, bool))}
    result = evaluate_ic15(gt, {"img": np.stack([d.quad for d in found])})
    assert result.hmean == 1.0


# -- training ------------------------------------------------------------------------------


def test_tiny_overfit_run_reaches_f90(tmp_path: Path) -> None:
    """fcrn-dense (stride 8, narrow neck) memorises 16 images of printed words: ic15 F >= 0.9."""
    from test_train import NO_PHOTOMETRIC, set_test_threads, write_text_folder

    from synthloc.train import fit
    from synthloc.train_config import load_config

    set_test_threads()
    folder = write_text_folder(tmp_path / "data", count=16, seed=0, size=192)
    config = load_config(
        None,
        [
            "steps=100",
            "batch_size=8",
            "data.workers=0",
            f"data.sources=[{{kind: icdar, path: '{folder}'}}]",
            "data.augment.size=null",
            "data.augment.max_side=192",
            *NO_PHOTOMETRIC,
            "model.arch=fcrn-dense",
            "model.stride=8",
            "model.width=0.5",
            "model.confidence=logit",
            "loss.curriculum=false",
            "loss.conf_loss=bce",
            "loss.pose_loss=iou",
            "loss.ohem_ratio=3",
            "loss.dice_weight=1",
            "optim.name=adamw",
            "optim.lr=0.003",
            "optim.weight_decay=0",
            "schedule.warmup_steps=15",
            "val.synth_count=0",
            f"val.icdar=['{folder}']",
            "val.icdar_max_side=192",
            "val.every=0",
            "checkpoint_every=1000",
        ],
    )
    result = fit(config, tmp_path / "run", progress=False)
    assert result.step == 100
    assert result.last_validation["data/hmean"] >= 0.9, result.last_validation


def test_backbone_learning_rate_multiplier_moves_only_the_backbone_less() -> None:
    from synthloc.train.schedule import build_optimizer
    from synthloc.train_config import OptimConfig

    torch.manual_seed(0)
    model = build_model(dense_config())
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer(
        model, OptimConfig(name="adamw", lr=1e-2, weight_decay=0.0, backbone_lr_mult=0.0)
    )
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(before)
    model.train()
    model(torch.rand(2, 3, 64, 64)).square().mean().backward()
    optimizer.step()
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved, "the head and neck must train"
    assert not any(name.startswith("backbone.") for name in moved)
    assert any(name.startswith("neck.") for name in moved)

    lite = build_model(ModelConfig(arch="fcrn-lite", stride=32))
    with pytest.raises(ValueError, match="backbone_lr_mult"):
        build_optimizer(lite, OptimConfig(backbone_lr_mult=0.1))
    build_optimizer(lite, OptimConfig())  # the default needs no backbone
