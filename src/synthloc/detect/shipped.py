"""The models shipped inside the package, by name.

``Detector.load()``, ``synthloc detect`` and ``synthloc demo`` without a model use
:data:`DEFAULT_MODEL`; ``Detector.load("fcrn-lite-paper")`` (``--model fcrn-lite-paper``) picks
another one by name. A shipped model is a first-stage file and, optionally, the verifier
trained on its candidates, both under ``synthloc/assets/models``; MODEL_CARD.md has a section
for each. A name that is also an existing file path loads that file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# The folder of the package that holds the shipped weights.
MODELS_RESOURCE = ("assets", "models")


@dataclass(frozen=True)
class ShippedModel:
    """One named model: its first-stage file, its verifier file (or None) and one line on it."""

    name: str
    detector: str
    verifier: str | None
    summary: str


SHIPPED_MODELS: dict[str, ShippedModel] = {
    model.name: model
    for model in (
        ShippedModel(
            "fcrn-dense",
            "fcrn-dense.pt",
            "fcrn-dense-verifier.pt",
            "FCRN with a stride-4 dense head on an ImageNet-initialised EfficientNet-Lite0, "
            "for small incidental text in photos",
        ),
        ShippedModel(
            "fcrn-lite-paper",
            "fcrn-lite-paper.pt",
            None,
            "the paper's configuration: stride-32 FCRN (lite width) trained on the paper's "
            "engine settings",
        ),
    )
}
DEFAULT_MODEL = "fcrn-dense"


class NoDefaultModelError(FileNotFoundError):
    """This build of synthloc does not ship the requested model's weights."""


def _asset(file_name: str) -> Path | None:
    resource = resources.files("synthloc")
    for part in (*MODELS_RESOURCE, file_name):
        resource = resource / part
    return Path(str(resource)) if resource.is_file() else None


def shipped_files(name: str = DEFAULT_MODEL) -> tuple[Path, Path | None]:
    """The first-stage file and the verifier file (None if it has none) of a shipped model.

    Raises ValueError for a name that is not shipped and :class:`NoDefaultModelError` when
    this build lacks the model's weights.
    """
    if name not in SHIPPED_MODELS:
        raise ValueError(
            f"unknown model name {name!r}; shipped models: {', '.join(SHIPPED_MODELS)}"
        )
    model = SHIPPED_MODELS[name]
    detector = _asset(model.detector)
    if detector is None:
        where = "/".join((*MODELS_RESOURCE, model.detector))
        raise NoDefaultModelError(
            f"no {name!r} model is shipped with this build of synthloc (expected "
            f"synthloc/{where}); pass a model path, e.g. "
            "Detector.load('runs/exp/best_model.pt') or `--model runs/exp/best_model.pt`"
        )
    verifier = _asset(model.verifier) if model.verifier is not None else None
    return detector, verifier


def resolve_model(model: str | os.PathLike[str] | None) -> tuple[Path, Path | None]:
    """The first-stage file and the shipped verifier (or None) that ``model`` stands for.

    ``model``: None (the default model), a shipped name (:data:`SHIPPED_MODELS`) or a file
    path; an existing file wins over a name. A path that does not exist is an error that
    names it and lists the shipped models.
    """
    if model is None:
        return shipped_files(DEFAULT_MODEL)
    path = Path(model)
    if path.is_file():
        return path, None
    if isinstance(model, str) and model in SHIPPED_MODELS:
        return shipped_files(model)
    raise FileNotFoundError(
        f"{path}: model file not found (shipped model names: {', '.join(SHIPPED_MODELS)})"
    )


def models_help() -> str:
    """The shipped models, one line each, for command-line help."""
    lines = []
    for name, model in SHIPPED_MODELS.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        stages = "with its verifier" if model.verifier else "first stage only"
        lines.append(f"  {name}{default}: {model.summary}; {stages}")
    return "\n".join(lines)
