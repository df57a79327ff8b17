"""Inference backends: float32 ``[N, C, H, W]`` (a NumPy array or a tensor; stride
multiples, values in ``[0, 1]``) -> the raw prediction map ``[N, 7, Hc, Wc]`` as a NumPy array.

``_TorchBackend`` runs an ``nn.Module``; ``_OnnxBackend`` runs an exported graph with
onnxruntime (its session also carries the file's ``synthloc.*`` metadata).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

Batch = np.ndarray | torch.Tensor


class _Backend(Protocol):
    def __call__(self, batch: Batch) -> np.ndarray: ...


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Use ``num_threads`` intra-op threads for the duration of a call, then restore.

    Only when the caller asked for a thread count: the process-wide setting is put back so
    that a library call leaves no side effect behind.
    """
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _TorchBackend:
    def __init__(self, model: nn.Module, device: torch.device, num_threads: int | None) -> None:
        # On CPU the channels-last layout suits oneDNN's depthwise kernels: fcrn-lite at
        # 1024x576 on 2 threads ran ~1.4x faster; results equal NCHW to float rounding.
        self.memory_format = (
            torch.channels_last if device.type == "cpu" else torch.contiguous_format
        )
        self.model = model.to(device).to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.device = device
        self.num_threads = num_threads

    def __call__(self, batch: Batch) -> np.ndarray:
        tensor = torch.from_numpy(batch) if isinstance(batch, np.ndarray) else batch
        x = tensor.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with _torch_threads(self.num_threads), torch.inference_mode():
            pred = self.model(x)
        return pred.float().contiguous().cpu().numpy()


class _OnnxBackend:
    def __init__(self, path: Path, num_threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 0 if num_threads is None else num_threads
        options.inter_op_num_threads = 1
        # Idle workers sleep instead of spinning. A detection alternates between this
        # session, a second one (the verifier) and Python/OpenCV work on the same cores;
        # spinning workers of one then steal the cores the other needs. On 2 cores the
        # default detector ran at ~146 ms per 1280x720 photo with spinning and ~122 ms
        # without (first stage alone: no slower without).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model ({exc})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, batch: Batch) -> np.ndarray:
        array = batch if isinstance(batch, np.ndarray) else batch.detach().cpu().numpy()
        feed = np.ascontiguousarray(array, dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input_name: feed})[0])


def _pick_device(device: str | torch.device | None) -> torch.device:
    """The torch device to run on: None picks CUDA when available, else CPU.

    A device name torch does not know, or one this machine or torch build cannot use
    (``cuda`` without a GPU or on a CPU-only build), is a ``ValueError`` naming it.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {str(device)!r} (e.g. cpu, cuda, cuda:1)") from exc
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} is not available: this torch build or machine has no "
            "CUDA GPU; use --device cpu"
        )
    try:  # a zero-size allocation proves the device (and its index) usable
        torch.empty(0, device=torch_device)
    except Exception as exc:  # torch raises RuntimeError, AssertionError, ... per backend
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"device {str(device)!r} is not usable ({message})") from exc
    return torch_device
