"""Detector.load's default backend on a CPU: onnxruntime on an ONNX copy exported once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from synthloc.detect import Detector
from synthloc.detect.backends import _OnnxBackend, _TorchBackend
from synthloc.detect.onnx_cache import CACHE_ENV, cache_dir, onnx_copy
from synthloc.model import ModelConfig, build_model, save_model


def _model_file(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch="fcrn-lite", width=0.25))
    save_model(path, model, extra={"detect": {"scales": [256], "threshold": 0.3}})
    return path


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (200, 300, 3), dtype=np.uint8)


def test_auto_backend_on_cpu_is_onnxruntime_and_matches_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = _model_file(tmp_path / "m.pt")
    auto = Detector.load(path, device="cpu", threshold=0.0)
    torch_det = Detector.load(path, backend="torch", device="cpu", threshold=0.0)
    assert isinstance(auto.backend, _OnnxBackend) and isinstance(torch_det.backend, _TorchBackend)
    # The settings stored in the .pt file carry over to the ONNX copy.
    assert auto.scales == torch_det.scales == (256.0,)
    batch = torch.rand(1, 3, 256, 384, generator=torch.Generator().manual_seed(1))
    assert np.abs(auto.backend(batch) - torch_det.backend(batch)).max() <= 1e-4
    # Both backends take a NumPy batch as well, with the same result.
    assert np.array_equal(auto.backend(batch.numpy()), auto.backend(batch))
    assert np.array_equal(torch_det.backend(batch.numpy()), torch_det.backend(batch))
    # The session's idle workers sleep: spinning ones steal the cores from the verifier's
    # session and the Python work between them.
    options = auto.backend.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert len(list((tmp_path / "cache" / "onnx").glob("detector-*.onnx"))) == 1


def test_the_onnx_copy_is_exported_once_and_keyed_by_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = _model_file(tmp_path / "m.pt")
    exports: list[Path] = []

    def export(target: Path) -> Path:
        exports.append(target)
        target.write_bytes(b"onnx")
        return target

    with onnx_copy(path, "detector", 17, export) as first:
        assert first.read_bytes() == b"onnx"
    with onnx_copy(path, "detector", 17, export) as again:
        assert again == first
    assert len(exports) == 1
    with onnx_copy(path, "detector", 18, export) as other_opset:
        assert other_opset != first
    _model_file(path, seed=1)  # new weights in the same file: a new copy
    with onnx_copy(path, "detector", 17, export) as retrained:
        assert retrained != first
    assert len(exports) == 3


def test_an_unwritable_or_disabled_cache_exports_to_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _model_file(tmp_path / "m.pt")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    seen: list[Path] = []

    def export(target: Path) -> Path:
        target.write_bytes(b"onnx")
        seen.append(target)
        return target

    with onnx_copy(path, "detector", 17, export) as made:
        assert made.read_bytes() == b"onnx" and not made.is_relative_to(blocker)
    assert not made.exists()  # the temporary copy is gone after use
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_dir() is None
    detector = Detector.load(path, device="cpu", threshold=0.0)
    assert isinstance(detector.backend, _OnnxBackend)
    reference = Detector.load(path, backend="torch", device="cpu", threshold=0.0)
    found, expected = detector(_image()), reference(_image())
    assert len(found) == len(expected) > 0


def test_default_cache_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert cache_dir() == Path("/somewhere/cache/synthloc")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "synthloc"


def test_unknown_backend_is_named(tmp_path: Path) -> None:
    path = _model_file(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        Detector.load(path, backend="tensorrt")
