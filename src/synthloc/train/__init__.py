"""Training: ``fit`` (the entry point), ``validate``, checkpoints that resume a run exactly.

A run directory holds::

    config.yaml       the resolved TrainConfig
    last.pt           latest checkpoint (model, optimizer, scheduler, scaler, EMA, step,
                      curriculum weight, RNG states, config); written atomically
    best.pt           the checkpoint with the best validation F so far
    best_model.pt     its weights as a model file (synthloc.model.save_model)
    model.pt          final weights as a model file (EMA weights when EMA is on)
    metrics.jsonl     one JSON object per log/validation row; metrics.csv the same, long format
    tb/               TensorBoard events (only when tensorboard is installed)

A new run refuses a folder that already holds one (resume it, or pass ``overwrite``).

Determinism: the data stream is addressed by index (see :mod:`synthloc.data.loader`), and the
stream position is a function of the global step, so resuming needs no data-loader state.  The
model is initialised and trained inside ``torch.random.fork_rng`` seeded from the config, so the
caller's global torch RNG is untouched; the RNG states are saved in each checkpoint.

``step`` counts optimiser updates (including skipped non-finite ones, so the data position stays
``step * accum_steps * batch_size`` per rank).  The negative-weight curriculum uses this global
step and therefore survives resume.

The modules, one concern each:

    run_folder.py   the run folder's files; refusing to overwrite a run
    checkpoint.py   save / load / resume checks; models from checkpoints and init files
    schedule.py     optimiser parameter groups, learning-rate factor
    ema.py          the moving average of the weights
    distributed.py  torchrun context and the collective helpers
    signals.py      SIGTERM / SIGINT end a run after a checkpoint
    metrics.py      metrics.jsonl / metrics.csv / TensorBoard
    validation.py   detect + ic15 scoring on synthetic and ICDAR sets
    data.py         the sample stream and the DataLoader of a config
    base.py         TrainerBase: the model-independent loop and state
    loop.py         Trainer (the FCRN step) and fit
"""

from synthloc.train.base import LoopSettings, NonFiniteLossError, TrainerBase, TrainResult
from synthloc.train.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointWriteError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from synthloc.train.data import LoaderBatches, build_loader, build_stream
from synthloc.train.distributed import DistContext, init_distributed, resolve_device
from synthloc.train.ema import ModelEMA, WeightAverage
from synthloc.train.loop import Trainer, check_inputs, fit
from synthloc.train.metrics import MetricsLog
from synthloc.train.run_folder import RunExistsError, RunFolder
from synthloc.train.schedule import build_optimizer, lr_factor
from synthloc.train.signals import StopSignals
from synthloc.train.validation import predict_quads, validate

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointWriteError",
    "DistContext",
    "LoaderBatches",
    "LoopSettings",
    "MetricsLog",
    "ModelEMA",
    "NonFiniteLossError",
    "RunExistsError",
    "RunFolder",
    "StopSignals",
    "TrainResult",
    "Trainer",
    "TrainerBase",
    "WeightAverage",
    "build_loader",
    "build_optimizer",
    "build_stream",
    "check_inputs",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "lr_factor",
    "model_from_checkpoint",
    "predict_quads",
    "resolve_device",
    "save_checkpoint",
    "validate",
]
