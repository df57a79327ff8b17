"""FCRN networks: output contract, input handling, norm/dropout options, BN folding, files."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from synthloc.model import (
    FCRN,
    FCRNLite,
    FrozenBatchNorm2d,
    ModelConfig,
    build_model,
    fold_batchnorm,
    load_model,
    load_model_with_extra,
    preprocess,
    save_model,
)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    # Shared 2-core machine: multi-threaded kernels are ~100x slower when the cores are busy.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _model(seed: int = 0, **kw) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(ModelConfig(**kw))


def _randomise_norm_stats(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                n = m.num_features
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.2)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)


@pytest.mark.parametrize("arch", ["fcrn-lite", "fcrn"])
@pytest.mark.parametrize("stride", [32, 16])
def test_output_shapes(arch: str, stride: int) -> None:
    model = _model(arch=arch, stride=stride, width=0.25 if arch == "fcrn" else 1.0).eval()
    assert isinstance(model, (FCRN, FCRNLite))
    assert model.stride == stride and model.config.arch == arch
    sizes = [(64, 64), (33, 65), (100, 37), (1, 1)]
    if arch == "fcrn-lite":
        sizes.append((512, 512))
    with torch.no_grad():
        for h, w in sizes:
            out = model(torch.rand(2, 3, h, w))
            assert out.shape == (2, 7, math.ceil(h / stride), math.ceil(w / stride))


def test_paper_fcrn_layout_512_gives_16x16x7() -> None:
    model = _model(arch="fcrn")
    assert isinstance(model, FCRN)
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [
        (64, 5), (128, 5), (128, 3), (128, 3), (256, 3), (256, 3), (512, 3), (512, 3), (512, 5)
    ]  # fmt: skip
    pools = [m for m in model.features.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5
    assert (
        len([m for m in _model(arch="fcrn", stride=16).modules() if isinstance(m, nn.MaxPool2d)])
        == 4
    )
    assert model.head.out_channels == 7
    # Shape only, via the meta device: a real 512x512 pass of the paper network is slow on CPU.
    with torch.device("meta"):
        meta_model = FCRN(ModelConfig(arch="fcrn"))
        assert meta_model(torch.empty(1, 3, 512, 512)).shape == (1, 7, 16, 16)


def test_padding_matches_explicit_zero_padding() -> None:
    model = _model(seed=1).eval()
    x = torch.rand(1, 3, 50, 70)
    padded = torch.zeros(1, 3, 64, 96)
    padded[:, :, :50, :70] = x
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded), rtol=0, atol=1e-6)


def test_preprocess_contract() -> None:
    images = np.zeros((2, 4, 5, 3), np.uint8)
    images[1, 2, 3] = [255, 51, 0]
    x = preprocess(images)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    torch.testing.assert_close(x[1, :, 2, 3], torch.tensor([1.0, 0.2, 0.0]))
    assert x.sum().item() == pytest.approx(1.2)
    torch.testing.assert_close(preprocess(torch.from_numpy(images)), x)
    assert preprocess(images[0]).shape == (1, 3, 4, 5)
    gray = preprocess(np.full((1, 4, 5, 1), 255, np.uint8))
    assert gray.shape == (1, 3, 4, 5) and torch.all(gray == 1)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(images.astype(np.float32))
    last = preprocess(images, torch.channels_last)
    assert last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(last, x)


def test_dilated_depthwise_conv_runs_nchw_inside_a_channels_last_model() -> None:
    torch.manual_seed(3)
    model = build_model(ModelConfig(arch="fcrn-lite")).eval()
    flagged = [m for m in model.modules() if getattr(m, "conv_in_nchw_on_cpu", False)]
    assert len(flagged) == 1  # the dilation-4 depthwise conv of the last stage
    x = torch.rand(1, 3, 96, 128)
    reference = model(x)
    fast = model.to(memory_format=torch.channels_last)(  # type: ignore[call-overload]  # not in stubs
        x.contiguous(memory_format=torch.channels_last)
    )
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)


def test_grayscale_model_converts_rgb_to_luma() -> None:
    model = _model(in_channels=1).eval()
    rgb = torch.rand(1, 3, 40, 40)
    luma = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:]
    with torch.no_grad():
        torch.testing.assert_close(model(rgb), model(luma))
    with pytest.raises(ValueError, match="input channels"):
        _model()(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("arch", ["fcrn-lite", "fcrn"])
@pytest.mark.parametrize("norm", ["batch", "frozen_batch"])
def test_fold_batchnorm_parity(arch: str, norm: str) -> None:
    model = _model(arch=arch, norm=norm, width=0.25 if arch == "fcrn" else 1.0)
    _randomise_norm_stats(model, seed=3)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in folded.modules())
    assert any(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in model.modules())
    assert not folded.training and folded.batchnorm_folded and not model.batchnorm_folded
    x = torch.rand(2, 3, 96, 80)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert (ref - out).abs().max().item() <= 1e-5


def test_group_norm_is_batch_independent_and_survives_folding() -> None:
    model = _model(norm="group").train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        alone = model(x[:1])
        together = model(x)
    torch.testing.assert_close(alone, together[:1], rtol=1e-4, atol=1e-5)
    folded = fold_batchnorm(model)
    assert sum(isinstance(m, nn.GroupNorm) for m in folded.modules()) > 0
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x), rtol=0, atol=1e-5)


def test_frozen_batchnorm_keeps_statistics_and_trains_affine() -> None:
    model = _model(norm="frozen_batch").train()
    _randomise_norm_stats(model, seed=4)
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    before = [m.running_mean.clone() for m in frozen]
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    out.square().mean().backward()
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, frozen))
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in frozen)
    # Train mode behaves like eval mode (no batch statistics): batch size 1 is safe.
    with torch.no_grad():
        torch.testing.assert_close(model(x[:1]), model.eval()(x)[:1], rtol=1e-4, atol=1e-5)


def test_frozen_batchnorm_loads_batchnorm_weights() -> None:
    trained = _model(seed=5, norm="batch")
    _randomise_norm_stats(trained, seed=6)
    frozen = _model(seed=7, norm="frozen_batch")
    frozen.load_state_dict(trained.state_dict())  # num_batches_tracked is dropped
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(frozen.train()(x), trained.eval()(x), rtol=1e-4, atol=1e-5)


def test_dropout_option() -> None:
    plain = _model(seed=8)
    dropped = _model(seed=8, dropout=0.5)
    assert isinstance(dropped.dropout, nn.Dropout2d) and dropped.dropout.p == 0.5
    assert not any(isinstance(m, nn.Dropout2d) for m in plain.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        # Eval mode: dropout is the identity, weights are the same as without it.
        torch.testing.assert_close(dropped.eval()(x), plain.eval()(x))
        dropped.train()
        plain.train()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            a = dropped(x)
            torch.manual_seed(0)
            b = dropped(x)
            c = dropped(x)
    torch.testing.assert_close(a, b)  # same torch seed -> same channels dropped
    assert not torch.equal(a, c)


def test_logit_confidence_head_starts_at_text_prior() -> None:
    model = _model(confidence="logit").eval()
    with torch.no_grad():
        c = model(torch.rand(1, 3, 64, 64))[:, 6]
    assert torch.sigmoid(c).mean().item() == pytest.approx(0.01, abs=0.005)


def test_config_validation() -> None:
    for bad in (
        {"arch": "resnet"},
        {"stride": 8},
        {"norm": "layer"},
        {"in_channels": 2},
        {"dropout": 1.0},
        {"confidence": "softmax"},
        {"width": 0},
    ):
        with pytest.raises(ValueError):
            ModelConfig(**bad)


def test_lite_is_cheaper_and_width_multiplier_scales() -> None:
    def params(model: nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    lite = _model(arch="fcrn-lite")
    assert isinstance(lite, FCRNLite)
    assert params(lite) < params(_model(arch="fcrn")) / 10
    assert params(_model(arch="fcrn-lite", width=2.0)) > 2.5 * params(lite)


@pytest.mark.parametrize("folded", [False, True])
def test_save_load_round_trip(tmp_path: Path, folded: bool) -> None:
    model = _model(seed=9, norm="batch", stride=16, in_channels=1, confidence="logit")
    _randomise_norm_stats(model, seed=10)
    model.eval()
    if folded:
        model = fold_batchnorm(model)
    path = tmp_path / "sub" / "model.pt"
    save_model(path, model, extra={"step": 1200, "data": "synth-v1", "hmean": np.float64(0.5)})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left
    loaded, extra = load_model_with_extra(path)
    assert extra == {"step": 1200, "data": "synth-v1", "hmean": 0.5}
    assert type(extra["hmean"]) is float
    assert not loaded.training and loaded.config == model.config
    assert loaded.batchnorm_folded == folded
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert isinstance(load_model(path), FCRNLite)


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_model(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        load_model(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match=r"foreign\.pt.*not a synthloc model"):
        load_model(foreign)
    good = tmp_path / "good.pt"
    save_model(good, _model())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"truncated\.pt"):
        load_model(truncated)
    payload = torch.load(good, weights_only=True)
    payload["config"]["arch"] = "fcrn"  # weights no longer fit the config
    mismatched = tmp_path / "mismatched.pt"
    torch.save(payload, mismatched)
    with pytest.raises(ValueError, match=r"mismatched\.pt.*invalid"):
        load_model(mismatched)
    with pytest.raises(TypeError):
        save_model(tmp_path / "x.pt", nn.Conv2d(3, 7, 1))
    with pytest.raises(TypeError, match=r"extra\['stats'\]\['when'\]"):
        save_model(tmp_path / "x.pt", _model(), extra={"stats": {"when": object()}})
    assert not (tmp_path / "x.pt").exists()
