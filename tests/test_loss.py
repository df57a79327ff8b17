"""FCRN loss: golden values, masking (exact zero gradients), curriculum, sampling, scale."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from synthloc.geometry import rbox_to_quad
from synthloc.model import (
    FCRNLoss,
    LossConfig,
    ModelConfig,
    build_model,
    encode_targets,
    negative_weight,
    preprocess,
)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    # Shared 2-core machine: multi-threaded kernels are ~100x slower when the cores are busy.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_curriculum_golden_values() -> None:
    assert negative_weight(0) == pytest.approx(0.01)
    assert negative_weight(100) == pytest.approx(0.0105)
    assert negative_weight(10000) == 1.0
    assert negative_weight(200, start=0.1, factor=2.0, period=100) == pytest.approx(0.4)
    loss = FCRNLoss(LossConfig(curriculum=False))
    assert loss.neg_weight(0) == 1.0


def _tiny_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # One image, a 1 x 2 grid: cell (0, 0) positive, cell (0, 1) negative.
    target = torch.zeros(1, 7, 1, 2)
    target[0, :, 0, 0] = torch.tensor([0.5, 0.5, 0.0, 0.0, 1.0, 0.0, 1.0])
    pred = torch.zeros(1, 7, 1, 2)
    pred[0, :, 0, 0] = torch.tensor([0.0, 0.5, 1.0, 0.0, 1.0, 0.0, 0.5])
    pred[0, :, 0, 1] = torch.tensor([9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 0.4])
    positive = torch.tensor([[[True, False]]])
    ignore = torch.zeros(1, 1, 2, dtype=torch.bool)
    return pred, target, positive, ignore


def test_golden_value_mse() -> None:
    pred, target, positive, ignore = _tiny_case()
    terms = FCRNLoss()(pred, target, positive, ignore, step=0)
    # pose = 0.5^2 + 1^2 (negative cell's pose ignored), conf_pos = 0.5^2, conf_neg = 0.4^2.
    assert terms["pose"].item() == pytest.approx(1.25)
    assert terms["conf_pos"].item() == pytest.approx(0.25)
    assert terms["conf_neg"].item() == pytest.approx(0.16)
    assert terms["neg_weight"] == pytest.approx(0.01)
    assert terms["total"].item() == pytest.approx(1.25 + 0.25 + 0.01 * 0.16)
    weighted = FCRNLoss(LossConfig(pose_weight=2.0, conf_weight=0.5, curriculum=False))
    total = weighted(pred, target, positive, ignore, step=0)["total"].item()
    assert total == pytest.approx(2 * 1.25 + 0.5 * (0.25 + 0.16))


def test_golden_value_bce_and_focal() -> None:
    pred, target, positive, ignore = _tiny_case()
    pred[0, 6, 0, 0] = 0.0  # p = 0.5 for the positive cell
    pred[0, 6, 0, 1] = math.log(3.0)  # p = 0.75 for the negative cell
    bce = FCRNLoss(LossConfig(conf_loss="bce"))(pred, target, positive, ignore, step=0)
    assert bce["conf_pos"].item() == pytest.approx(math.log(2.0))
    assert bce["conf_neg"].item() == pytest.approx(-math.log(0.25))
    focal = FCRNLoss(LossConfig(conf_loss="focal", focal_gamma=2.0))
    terms = focal(pred, target, positive, ignore, step=0)
    assert terms["conf_pos"].item() == pytest.approx(0.25 * math.log(2.0))
    assert terms["conf_neg"].item() == pytest.approx(0.75**2 * -math.log(0.25))


def test_perfect_prediction_gives_zero_loss() -> None:
    quads = rbox_to_quad(np.array([[40, 40, 60, 16, 0.3], [150, 90, 90, 30, -1.2]]))
    grid = encode_targets(quads, np.zeros(2, bool), (128, 192), 32)
    target = torch.from_numpy(grid.target)[None]
    terms = FCRNLoss(LossConfig(curriculum=False))(
        target.clone(),
        target,
        torch.from_numpy(grid.positive)[None],
        torch.from_numpy(grid.ignore)[None],
        step=0,
    )
    for key in ("total", "pose", "conf_pos", "conf_neg"):
        assert terms[key].item() == 0.0


def _random_case(seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(2, 7, 4, 5, generator=gen)
    target = torch.randn(2, 7, 4, 5, generator=gen)
    cell_kind = torch.randint(0, 4, (2, 4, 5), generator=gen)  # 0 pos, 1 ignore, 2-3 negative
    positive = cell_kind == 0
    ignore = cell_kind == 1
    # A positive cell that is also flagged ignore must be ignored.
    positive[0, 0, 0] = True
    ignore[0, 0, 0] = True
    return pred, target, positive, ignore


@pytest.mark.parametrize("conf_loss", ["mse", "bce", "focal"])
def test_masked_cells_get_exactly_zero_gradient(conf_loss: str) -> None:
    pred, target, positive, ignore = _random_case(0)
    pred.requires_grad_(True)
    terms = FCRNLoss(LossConfig(conf_loss=conf_loss))(pred, target, positive, ignore, step=0)
    terms["total"].backward()
    assert pred.grad is not None
    grad = pred.grad.permute(0, 2, 3, 1)  # [N, Hc, Wc, 7]
    assert torch.all(grad[ignore] == 0)
    negative = ~positive & ~ignore
    assert torch.all(grad[negative][:, :6] == 0)  # pose of negative cells
    assert torch.all(grad[negative][:, 6] != 0)
    trained_positive = positive & ~ignore
    assert torch.all(grad[trained_positive][:, 6] != 0)
    assert torch.all(grad[trained_positive][:, :6] != 0)


def test_loss_scale_does_not_grow_with_batch_or_image_size() -> None:
    pred, target, positive, ignore = _random_case(1)
    loss = FCRNLoss()
    base = loss(pred, target, positive, ignore, step=50)
    batch = loss(
        torch.cat([pred, pred]),
        torch.cat([target, target]),
        torch.cat([positive, positive]),
        torch.cat([ignore, ignore]),
        step=50,
    )
    tiled = loss(
        pred.repeat(1, 1, 3, 2),
        target.repeat(1, 1, 3, 2),
        positive.repeat(1, 3, 2),
        ignore.repeat(1, 3, 2),
        step=50,
    )
    for key in ("total", "pose", "conf_pos", "conf_neg"):
        assert batch[key].item() == pytest.approx(base[key].item(), rel=1e-5)
        assert tiled[key].item() == pytest.approx(base[key].item(), rel=1e-5)


def test_loss_at_initialisation_is_order_one() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch="fcrn-lite"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(1, 256, 256, 3), dtype=np.uint8)
    boxes = np.array([[60, 50, 120, 30, 0.1], [180, 200, 90, 24, -0.3], [100, 150, 40, 12, 0.0]])
    grid = encode_targets(rbox_to_quad(boxes), np.zeros(3, bool), (256, 256), 32)
    pred = model(preprocess(image))
    terms = FCRNLoss()(
        pred,
        torch.from_numpy(grid.target)[None],
        torch.from_numpy(grid.positive)[None],
        torch.from_numpy(grid.ignore)[None],
        step=0,
    )
    assert 0.1 < terms["total"].item() < 10.0


def test_negative_sampling_is_deterministic_and_counts() -> None:
    pred, target, positive, ignore = _random_case(2)
    pred.requires_grad_(True)
    loss = FCRNLoss(LossConfig(neg_sample_fraction=0.3))
    with pytest.raises(ValueError, match="Generator"):
        loss(pred, target, positive, ignore, step=0)
    first = loss(pred, target, positive, ignore, 0, torch.Generator().manual_seed(7))
    again = loss(pred, target, positive, ignore, 0, torch.Generator().manual_seed(7))
    other = loss(pred, target, positive, ignore, 0, torch.Generator().manual_seed(8))
    assert first["conf_neg"].item() == again["conf_neg"].item()
    assert first["conf_neg"].item() != other["conf_neg"].item()
    first["total"].backward()
    assert pred.grad is not None
    negative = ~positive & ~ignore
    for i in range(2):
        neg_grad = pred.grad[i, 6][negative[i]]
        expected = math.ceil(0.3 * int(negative[i].sum()))
        assert int((neg_grad != 0).sum()) == expected
    # Full sampling equals no sampling.
    full = FCRNLoss(LossConfig(neg_sample_fraction=1.0))(
        pred, target, positive, ignore, 0, torch.Generator().manual_seed(0)
    )
    plain = FCRNLoss()(pred, target, positive, ignore, 0)
    assert full["total"].item() == pytest.approx(plain["total"].item())


def test_no_positive_cells_is_finite_and_shape_errors() -> None:
    pred, target, _, ignore = _random_case(3)
    none = torch.zeros_like(ignore)
    terms = FCRNLoss()(pred, target, none, ignore, step=0)
    assert terms["pose"].item() == 0.0 and torch.isfinite(terms["total"])
    with pytest.raises(ValueError, match="N, 7, Hc, Wc"):
        FCRNLoss()(pred[:, :6], target[:, :6], none, ignore, step=0)
    with pytest.raises(ValueError, match="positive and ignore"):
        FCRNLoss()(pred, target, none[:, :2], ignore, step=0)
    with pytest.raises(ValueError, match="conf_loss"):
        LossConfig(conf_loss="hinge")
