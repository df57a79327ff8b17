"""ONNX export: parity with PyTorch at several sizes (a mismatch fails), metadata, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from synthloc.cli import main
from synthloc.detect import Detector
from synthloc.export import OnnxParityError, check_onnx_parity, export_onnx
from synthloc.model import FCRN, FCRNLite, ModelConfig, build_model, save_model

# One size is not a multiple of 32 (nor of 16): the graph must pad dynamically.
SIZES = ((128, 128), (96, 160), (90, 150))


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


def _trained_looking(config: ModelConfig, seed: int = 0) -> FCRN | FCRNLite:
    """A model with random weights *and* random normalisation statistics, in eval mode.

    Fresh BatchNorm layers (mean 0, var 1, weight 1, bias 0) would make folding trivially
    exact; randomising them makes the parity check test the folding too.
    """
    torch.manual_seed(seed)
    model = build_model(config)
    assert isinstance(model, (FCRN, FCRNLite))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name in ("running_mean", "running_var", "weight", "bias"):
                tensor = getattr(module, name, None)
                if not isinstance(tensor, torch.Tensor) or module is model.head:
                    continue
                if isinstance(module, nn.Conv2d):
                    continue
                noise = torch.rand(tensor.shape, generator=generator)
                if name == "running_var":
                    tensor.copy_(0.5 + noise)
                elif name == "weight":
                    tensor.copy_(0.5 + noise)
                else:
                    tensor.copy_(0.2 * (noise - 0.5))
        model.head.weight.normal_(0.0, 0.1, generator=generator)
    return model.eval()


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(arch="fcrn-lite"),
        ModelConfig(arch="fcrn-lite", stride=16, norm="group", width=0.5),
        ModelConfig(arch="fcrn", width=0.25, norm="frozen_batch", confidence="logit"),
        ModelConfig(arch="fcrn-lite", in_channels=1, width=0.5),
    ],
    ids=["lite", "lite-s16-group", "fcrn-frozen-logit", "lite-gray"],
)
def test_onnx_matches_pytorch_at_three_sizes(config: ModelConfig, tmp_path: Path) -> None:
    model = _trained_looking(config)
    path = export_onnx(model, tmp_path / "model.onnx")
    worst = check_onnx_parity(
        model, path, sizes=SIZES, atol=1e-4, batch=2 if config.width == 1 else 1
    )
    assert 0.0 <= worst <= 1e-4


def test_graph_is_dynamic_and_carries_metadata(tmp_path: Path) -> None:
    model = _trained_looking(ModelConfig(arch="fcrn-lite", width=0.5))
    defaults = {"scales": [768], "min_size": 9}
    path = export_onnx(model, tmp_path / "m.onnx", opset=17, detect_defaults=defaults)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    assert dims[1].dim_value == 3
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["synthloc.stride"] == "32"
    assert meta["synthloc.confidence"] == "linear"
    assert json.loads(meta["synthloc.config"])["width"] == 0.5
    assert json.loads(meta["synthloc.detect"]) == defaults
    assert "synthloc.detect_multiscale" not in meta
    detector = Detector.load(path)
    assert detector.scales == (768.0,) and detector.min_size == 9.0
    with pytest.raises(ValueError, match=r"m\.onnx: no stored 'multiscale'"):
        Detector.load(path, preset="multiscale")
    # No BatchNorm left in the graph: it was folded into the convolutions.
    assert "BatchNormalization" not in {node.op_type for node in proto.graph.node}
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_export_leaves_the_model_untouched(tmp_path: Path) -> None:
    model = _trained_looking(ModelConfig(arch="fcrn-lite", width=0.5)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


def test_a_mismatching_graph_fails_the_check(tmp_path: Path) -> None:
    model = _trained_looking(ModelConfig(arch="fcrn-lite", width=0.5))
    path = export_onnx(model, tmp_path / "m.onnx")
    with torch.no_grad():
        assert model.head.bias is not None
        model.head.bias[2] += 1e-3  # a change far below what a detection would show
    with pytest.raises(OnnxParityError, match="differs from PyTorch"):
        check_onnx_parity(model, path, sizes=((96, 128),))
    other = _trained_looking(ModelConfig(arch="fcrn-lite", width=0.5, stride=16))
    with pytest.raises(OnnxParityError, match="shape"):
        check_onnx_parity(other, path, sizes=((96, 128),))


def test_cli_export_then_detect_with_onnxruntime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _trained_looking(ModelConfig(arch="fcrn-lite", width=0.5))
    multi = {"scales": [320, 640], "threshold": 0.4, "min_size": 4}
    extra = {"detect": {"scales": [640], "threshold": 0.3}, "detect_multiscale": multi}
    save_model(tmp_path / "m.pt", model, extra=extra)
    out = tmp_path / "exported" / "m.onnx"
    sizes = ["160x160", "96x200", "100x150"]
    model_arg = str(tmp_path / "m.pt")
    code = main(["export", "--out", str(out), "--model", model_arg, "--parity-sizes", *sizes])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "max abs diff" in captured.out
    for size in sizes:
        assert size in captured.out
    detector = Detector.load(out)
    assert detector.scales == (640.0,) and detector.threshold == pytest.approx(0.3)
    # The multi-scale preset travels in the ONNX metadata too.
    multi_detector = Detector.load(out, preset="multiscale")
    assert multi_detector.scales == (320.0, 640.0) and multi_detector.min_size == 4.0
    assert multi_detector.threshold == pytest.approx(0.4)
    image = np.random.default_rng(0).integers(0, 256, (120, 150, 3), dtype=np.uint8)
    assert isinstance(detector(image), list)


def test_cli_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    out = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--out", str(out), "--model", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["export", "--out", str(out), "--model", str(bad), "--parity-sizes", "12by5"])


def test_cli_default_parity_sizes_cover_photos_and_a_non_multiple() -> None:
    from synthloc.commands.export import PARITY_SIZES

    assert {(512, 512), (384, 640), (736, 1280)} <= set(PARITY_SIZES)
    assert any(h % 32 or w % 32 for h, w in PARITY_SIZES)


def test_cli_export_refuses_bad_opsets_and_out_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for opset in ("5", "10", "21"):
        assert main(["export", "--out", str(tmp_path / "m.onnx"), "--opset", opset]) == 2
        err = capsys.readouterr().err
        assert "11 to 20" in err and len(err.strip().splitlines()) == 1, err
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file / "m.onnx", tmp_path):
        assert main(["export", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert a_file.read_text() == "x"
