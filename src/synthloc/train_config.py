"""The training configuration: one dataclass tree, loadable from YAML, overridable from the CLI.

``TrainConfig`` nests the model and loss configs of :mod:`synthloc.model`, the synthesis config
of :mod:`synthloc.synth` and the augmentation config of :mod:`synthloc.data.transforms`, so a
run directory's ``config.yaml`` (the resolved config) rebuilds everything.  Overrides use dotted
paths with YAML-parsed values: ``optim.lr=0.01``, ``data.sources.0.weight=2``,
``schedule.milestones=[1000,2000]``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from synthloc.atomic import write_text_atomic
from synthloc.data.transforms import AugmentConfig
from synthloc.model.fcrn import ModelConfig
from synthloc.model.loss import LossConfig
from synthloc.synth.config import SynthConfig

__all__ = [
    "SOURCE_KINDS",
    "DataConfig",
    "OptimConfig",
    "ScheduleConfig",
    "SourceConfig",
    "TrainConfig",
    "ValConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]

SOURCE_KINDS = ("synth", "shards", "synthtext", "synthtext-h5", "icdar")
T = TypeVar("T")


def _require(valid: bool, name: str, rule: str, value: Any) -> None:
    """ValueError "<name> must be <rule>, got <value>" unless ``valid``."""
    if not valid:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def _at_least(name: str, value: int, low: int) -> None:
    _require(value >= low, name, f"an integer of at least {low}", value)


def _number_in(
    name: str, value: float, low: float, high: float = math.inf, low_open: bool = False
) -> None:
    """A finite number in [low, high] (or (low, high] with ``low_open``)."""
    above = value > low if low_open else value >= low
    ok = math.isfinite(value) and above and value <= high
    bounds = f"{'above' if low_open else 'at least'} {low:g}"
    if high != math.inf:
        bounds += f" and at most {high:g}"
    _require(ok, name, f"a finite number {bounds}", value)


@dataclass
class SourceConfig:
    """One training data source.

    kind: "synth" (on-the-fly rendering; ``path`` = a backgrounds folder or a SynthText
        ``dset.h5``, "" = the engine's procedural default), "shards" (``synthloc synth`` output
        folder), "synthtext" (release folder with gt.mat), "synthtext-h5" (a results h5 file),
        "icdar" (ICDAR folder).
    weight: relative sampling weight in the mixture.
    depth, seg: "synth" from a photo folder only: folders of depth / segmentation maps paired
        with the photos by file stem, as for ``synthloc synth --depth/--seg``.
    """

    kind: str = "synth"
    path: str = ""
    weight: float = 1.0
    depth: str = ""
    seg: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown data source kind {self.kind!r}; expected {SOURCE_KINDS}")
        if self.kind != "synth" and not self.path:
            raise ValueError(f"data source of kind {self.kind!r} needs a path")
        if self.kind != "synth" and (self.depth or self.seg):
            raise ValueError(f"depth and seg maps apply to 'synth' sources, not {self.kind!r}")
        _number_in("weight", self.weight, 0.0, low_open=True)


@dataclass
class DataConfig:
    """Training data: the sources mixed, the engine's config (for "synth" sources),
    augmentation, DataLoader workers, and which words are too small to train on (pixels).

    dense_shrink: for fcrn-dense models, the fraction of a word's height by which its box is
    shrunk on every side to give the core of positive cells (``model/dense_targets.py``).
    box_pad: the box convention the model learns. Every ground-truth box (after augmentation)
    grows by this fraction of its height on every side before targets are encoded
    (``synthloc.geometry.pad_quads``). 0 keeps the engine's boxes, which hug the glyphs;
    ICDAR 2015's annotators drew boxes about 0.11 looser (docs/box_convention.md).
    """

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    synth: SynthConfig = field(default_factory=SynthConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    workers: int = 2
    min_word_size: float = 6.0
    dense_shrink: float = 0.3
    box_pad: float = 0.0

    def __post_init__(self) -> None:
        _require(bool(self.sources), "sources", "a list of at least one source", self.sources)
        _at_least("workers", self.workers, 0)
        _number_in("min_word_size", self.min_word_size, 0.0)
        _number_in("box_pad", self.box_pad, 0.0, 1.0)


@dataclass
class OptimConfig:
    """Optimiser: "sgd" (momentum, the paper's choice) or "adamw". grad_clip 0 = off.

    backbone_lr_mult: the learning rate of a pretrained backbone's parameters (an fcrn-dense
    model's ``backbone.*``) as a fraction of ``lr``; below 1 the ImageNet features move less
    towards the synthetic images (0 freezes them). Models without a backbone refuse values
    other than 1.
    """

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 10.0
    backbone_lr_mult: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adamw"):
            raise ValueError(f"unknown optimiser {self.name!r}; expected 'sgd' or 'adamw'")
        _number_in("lr", self.lr, 0.0, low_open=True)
        _number_in("momentum", self.momentum, 0.0, 1.0)
        _number_in("weight_decay", self.weight_decay, 0.0)
        _number_in("grad_clip", self.grad_clip, 0.0)
        _number_in("backbone_lr_mult", self.backbone_lr_mult, 0.0)
        for beta in self.betas:
            _number_in("betas", beta, 0.0, 1.0)


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: linear warmup then "cosine" (to ``min_lr_ratio * lr``),
    "step" (multiply by ``gamma`` at each milestone step) or "constant"."""

    kind: str = "cosine"
    warmup_steps: int = 500
    min_lr_ratio: float = 0.01
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "step", "constant"):
            raise ValueError(f"unknown schedule {self.kind!r}; expected cosine, step or constant")
        _at_least("warmup_steps", self.warmup_steps, 0)
        _number_in("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        _number_in("gamma", self.gamma, 0.0, low_open=True)


@dataclass
class ValConfig:
    """Validation every ``every`` steps (0 = only at the end).

    synth_count images rendered with ``synth_seed`` (never a training seed) from
    ``synth_backgrounds`` ("" = procedural default), resized to long side ``max_side``;
    each folder of ``icdar`` is scored at long side ``icdar_max_side``. Detections: decode
    with ``score_threshold``, drop those whose short side is under ``min_size`` pixels (of the
    resized image), then rotated NMS at ``nms_iou``; ic15 protocol. Setting these to the
    detection settings a model will ship with (e.g. ``max_side`` 768, ``score_threshold``
    0.85, ``min_size`` 12) makes ``best.pt`` the best checkpoint at those settings.

    ``score_thresholds`` (optional) tunes the threshold inside validation: each set is detected
    once at the lowest of them and scored at each (a higher threshold after NMS and the size
    filter equals that threshold before them), and the best F is reported as ``hmean`` with its
    ``threshold``. A model's confidence scale drifts during training, so this picks
    ``best.pt`` by the F the model would ship with after tuning, not at one fixed threshold.
    """

    every: int = 1000
    synth_count: int = 64
    synth_seed: int = 987_654_321
    synth_backgrounds: str = ""
    max_side: int = 512
    icdar: list[str] = field(default_factory=list)
    icdar_max_side: int = 1280
    score_threshold: float = 0.5
    nms_iou: float = 0.3
    min_size: float = 0.0
    score_thresholds: list[float] = field(default_factory=list)
    batch_size: int = 8

    def __post_init__(self) -> None:
        _at_least("every", self.every, 0)
        _at_least("synth_count", self.synth_count, 0)
        _at_least("max_side", self.max_side, 1)
        _at_least("icdar_max_side", self.icdar_max_side, 1)
        _number_in("nms_iou", self.nms_iou, 0.0, 1.0)
        _number_in("min_size", self.min_size, 0.0)
        for threshold in [self.score_threshold, *self.score_thresholds]:
            _number_in("score_threshold", threshold, -math.inf)
        _at_least("batch_size", self.batch_size, 1)


@dataclass
class TrainConfig:
    """A whole training run (steps count optimiser updates; batch_size is per rank and per
    micro-batch, so one update sees ``batch_size * accum_steps * world_size`` images).

    init: a model file (``model.pt`` of an earlier run) whose weights start a new run, for
    fine-tuning; its architecture must match ``model``. "" = random initialisation.
    backbone_init: "imagenet" starts an fcrn-dense backbone from ImageNet-trained
    EfficientNet-Lite0 weights (the optional ``pretrained`` extra); "" = random.  Ignored
    when ``init`` is set (those weights win).
    amp: float16 autocast + grad scaling, CUDA only. channels_last: NHWC memory format for
    the model and batches (faster depthwise convolutions on CPU; see
    benchmarks/train_speed.py).
    swa_start: stochastic weight averaging. From this step on, the weights the run evaluates
    (the EMA when ``ema_decay`` is set, else the raw ones) are added to a uniform average
    every ``swa_every`` steps and at the last step; from the first such step, validation,
    best.pt and the model file use that average. 0 = off. The average's BatchNorm statistics
    are the mean of the snapshots' (not recomputed on data).
    """

    seed: int = 0
    steps: int = 100_000
    init: str = ""
    backbone_init: str = ""
    batch_size: int = 16
    accum_steps: int = 1
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    ema_decay: float = 0.0
    swa_start: int = 0
    swa_every: int = 100
    checkpoint_every: int = 1000
    log_every: int = 20
    max_nonfinite: int = 20
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def __post_init__(self) -> None:
        # steps 0 is a valid config (e.g. to build a model from ``init``); fit() refuses it.
        _at_least("steps", self.steps, 0)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("accum_steps", self.accum_steps, 1)
        _number_in("ema_decay", self.ema_decay, 0.0, 1.0)
        _require(self.ema_decay < 1.0, "ema_decay", "below 1 (0 = no EMA)", self.ema_decay)
        _at_least("swa_start", self.swa_start, 0)
        _at_least("swa_every", self.swa_every, 1)
        _at_least("checkpoint_every", self.checkpoint_every, 1)
        _at_least("log_every", self.log_every, 1)
        _at_least("max_nonfinite", self.max_nonfinite, 1)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type ``tp`` (dataclasses, lists, tuples, unions)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return config_from_dict(tp, value, where)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        raise ValueError(f"{where}: {value!r} does not fit {tp}: {errors}")
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, where) for a, v in zip(args, value))
    if origin is dict or tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as the number it names.
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def config_from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys are an error naming the path."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as error:  # a value check in __post_init__: say where it is
        raise ValueError(f"{where}: {error}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A YAML/JSON-friendly dict (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    result: dict[str, Any] = plain(dataclasses.asdict(config))
    return result


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested dict, in place.

    Integer path parts index lists (``data.sources.0.path=...``).
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key.path=value")
        path, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        parts = path.strip().split(".")
        node: Any = values
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ValueError(f"override {item!r}: no list element {part!r}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if part not in node:
                    raise ValueError(f"override {item!r}: unknown key {part!r}")
                if last:
                    node[part] = value
                else:
                    node = node[part]
            else:
                raise ValueError(f"override {item!r}: {part!r} is below a plain value")
    return values


def load_config(
    path: str | os.PathLike[str] | None, overrides: list[str] | None = None
) -> TrainConfig:
    """Defaults, then the YAML file (a partial tree), then ``overrides``; validated."""
    values = config_to_dict(TrainConfig())
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: cannot read config: {error}") from error
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a mapping")
        _merge(values, loaded, str(path))
        # Round trip through the dataclasses so partial list items (e.g. ``{kind: synth}``)
        # get their defaults before overrides address their keys.
        values = config_to_dict(config_from_dict(TrainConfig, values, str(path)))
    apply_overrides(values, list(overrides or []))
    return config_from_dict(TrainConfig, values)


def _merge(base: dict[str, Any], update: dict[str, Any], where: str) -> None:
    for key, value in update.items():
        if key not in base:
            raise ValueError(f"{where}: unknown key {key!r}; known: {sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, f"{where}.{key}")
        else:
            base[key] = value


def save_config(config: TrainConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
