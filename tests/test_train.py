"""The training loop: overfitting proves targets, loss and decoding agree; exact resume;
non-finite losses stop the run; the CLI end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from synthloc.cli import main
from synthloc.detect import Detector
from synthloc.model import load_model, load_model_with_extra
from synthloc.train import (
    NonFiniteLossError,
    fit,
    load_checkpoint,
    lr_factor,
    model_from_checkpoint,
    validate,
)
from synthloc.train_config import ScheduleConfig, TrainConfig, load_config

LETTERS = list("ABCDEFGHKLMNPRSTUVWXYZ")


def set_test_threads() -> None:
    """2 torch threads (the CI machine's cores); SYNTHLOC_TEST_THREADS overrides it on a
    shared, oversubscribed machine where one thread per process is much faster."""
    torch.set_num_threads(int(os.environ.get("SYNTHLOC_TEST_THREADS", "2")))


def write_text_folder(folder: Path, count: int, seed: int, size: int) -> Path:
    """``count`` noisy ``size`` x ``size`` images with 1-3 printed words each, ICDAR layout.

    Words are drawn with cv2.putText in separate horizontal bands; their quads are the text
    extents (axis-aligned, clockwise from top-left).
    """
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "gt").mkdir(exist_ok=True)
    band = size // 4
    font_scale = size / 192
    for i in range(count):
        colour = rng.integers(40, 215, size=3)
        noise = rng.normal(0, 12, (size, size, 3))
        image = np.clip(colour + noise, 0, 255).astype(np.uint8)
        lines = []
        for row in rng.permutation(4)[: int(rng.integers(1, 4))]:
            text = "".join(rng.choice(LETTERS, size=int(rng.integers(3, 7))))
            scale = float(rng.uniform(0.9, 1.4)) * font_scale
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
            x0 = int(rng.integers(4, max(5, size - tw - 4)))
            y0 = int(row * band + (band - th) // 2 + th)
            ink = tuple(int(255 - c) for c in colour)
            cv2.putText(image, text, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 2, cv2.LINE_AA)
            x1, top, bottom = x0 + tw + 1, y0 - th - 1, y0 + 2
            lines.append(f"{x0 - 1},{top},{x1},{top},{x1},{bottom},{x0 - 1},{bottom},{text}")
        cv2.imwrite(str(folder / "images" / f"img_{i}.png"), image)
        (folder / "gt" / f"gt_img_{i}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


NO_PHOTOMETRIC = [
    "data.augment.brightness=0",
    "data.augment.contrast=0",
    "data.augment.saturation=0",
    "data.augment.hue_deg=0",
    "data.augment.grayscale_prob=0",
    "data.augment.blur_prob=0",
    "data.augment.noise_std=0",
]


def tiny_config(folder: Path, steps: int, extra: list[str]) -> TrainConfig:
    """A seconds-long run on an ICDAR folder of small images (no synthetic validation)."""
    return load_config(
        None,
        [
            f"steps={steps}",
            "batch_size=2",
            "data.workers=0",
            f"data.sources=[{{kind: icdar, path: '{folder}'}}]",
            "data.augment.size=64",
            "model.width=0.25",
            "val.synth_count=0",
            "val.every=0",
            "schedule.warmup_steps=3",
            "log_every=5",
            *extra,
        ],
    )


def test_overfit_sixteen_images_reaches_f90(tmp_path: Path) -> None:
    """fcrn-lite (width 0.5) memorises 16 images of printed words: ic15 F >= 0.9 on them."""
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
            "model.width=0.5",
            "loss.curriculum=false",
            "optim.name=adamw",
            "optim.lr=0.01",
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
    # The exported model file reproduces the same detector.
    assert result.model_path is not None
    reloaded = load_model(result.model_path)
    model = result.model
    assert model is not None
    # Validation applies val.min_size: 1 px keeps every word, 1000 px drops every detection.
    cpu = torch.device("cpu")
    kept = validate(model, replace(config, val=replace(config.val, min_size=1.0)), cpu)
    assert kept["data/hmean"] == result.last_validation["data/hmean"]
    dropped = validate(model, replace(config, val=replace(config.val, min_size=1000.0)), cpu)
    assert dropped["data/recall"] == 0.0 and dropped["data/hmean"] == 0.0
    # A threshold grid scores one detection pass at each threshold: each entry equals a plain
    # validation at that threshold, and the best F is reported with its threshold.
    grid_val = replace(config.val, score_thresholds=[0.9, 0.5, 2.0])
    grid = validate(model, replace(config, val=grid_val), cpu)
    at_09 = validate(model, replace(config, val=replace(config.val, score_threshold=0.9)), cpu)
    assert grid["data/hmean@0.9"] == at_09["data/hmean"]
    assert grid["data/hmean@0.5"] == result.last_validation["data/hmean"]
    assert grid["data/hmean@2"] == 0.0
    assert grid["data/hmean"] == max(grid["data/hmean@0.5"], grid["data/hmean@0.9"])
    best_at = 0.5 if grid["data/hmean@0.5"] >= grid["data/hmean@0.9"] else 0.9
    assert grid["data/threshold"] == best_at
    assert "data/threshold" not in result.last_validation
    for name, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[name])


def test_resume_reproduces_an_uninterrupted_run(tmp_path: Path) -> None:
    set_test_threads()
    folder = write_text_folder(tmp_path / "data", count=6, seed=1, size=96)
    extra = [
        "accum_steps=2",
        "ema_decay=0.9",
        "model.dropout=0.1",
        "loss.neg_sample_fraction=0.5",
        "optim.name=sgd",
        "optim.lr=0.02",
        "checkpoint_every=5",
    ]
    fit(tiny_config(folder, 20, extra), tmp_path / "straight", progress=False)
    first = fit(tiny_config(folder, 20, extra), tmp_path / "split", stop_at_step=10, progress=False)
    assert first.step == 10 and first.model_path is None
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 10
    # The resumed half reads the same stream through a worker process instead of in-process.
    resumed = tiny_config(folder, 20, [*extra, "data.workers=1"])
    second = fit(resumed, tmp_path / "split", resume=True, progress=False)
    assert second.step == 20
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 20
    assert a["ema"]["updates"] == b["ema"]["updates"] == 20
    for sa, sb in ((a["model"], b["model"]), (a["ema"]["module"], b["ema"]["module"])):
        for name, value in sa.items():
            torch.testing.assert_close(sb[name], value, rtol=1e-5, atol=1e-6)
    moments_a = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    moments_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    for x, y in zip(moments_a, moments_b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert a["neg_weight"] == b["neg_weight"] == pytest.approx(0.01 * 1.05 ** (20 / 100))
    # A different model config cannot resume this run.
    with pytest.raises(ValueError, match="model"):
        fit(tiny_config(folder, 30, [*extra, "model.width=0.5"]), tmp_path / "split", resume=True)


def test_nonfinite_losses_skip_steps_then_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the third forward pass on, the input is NaN: two good steps, then skipped ones."""
    import synthloc.model

    set_test_threads()
    folder = write_text_folder(tmp_path / "data", count=4, seed=2, size=64)
    real_preprocess = synthloc.model.preprocess
    calls = []

    def poisoned(images: torch.Tensor, *args: torch.memory_format) -> torch.Tensor:
        calls.append(1)
        out = real_preprocess(images, *args)
        return out * float("nan") if len(calls) > 2 else out

    monkeypatch.setattr(synthloc.model, "preprocess", poisoned)
    config = tiny_config(folder, 40, ["max_nonfinite=3", "checkpoint_every=1"])
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        fit(config, tmp_path / "run", progress=False)
    after_two = load_checkpoint(tmp_path / "run" / "last.pt")
    assert after_two["step"] == 4 and after_two["nonfinite_total"] == 2
    # Skipped steps changed nothing: weights and BatchNorm statistics are finite.
    assert all(
        torch.isfinite(v).all() for v in after_two["model"].values() if v.is_floating_point()
    )


def test_lr_schedules() -> None:
    cosine = ScheduleConfig(kind="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cosine, 110) == pytest.approx(0.1)
    assert lr_factor(9, cosine, 110) == pytest.approx(1.0)
    assert lr_factor(60, cosine, 110) == pytest.approx(0.55)
    assert lr_factor(110, cosine, 110) == pytest.approx(0.1)
    step = ScheduleConfig(kind="step", warmup_steps=0, milestones=[5, 8], gamma=0.5)
    assert [lr_factor(s, step, 10) for s in (0, 5, 8)] == [1.0, 0.5, 0.25]


def test_cli_trains_resumes_and_writes_the_run(tmp_path: Path) -> None:
    set_test_threads()
    folder = write_text_folder(tmp_path / "data", count=4, seed=3, size=96)
    out = tmp_path / "run"
    common = ["--no-progress", "--set", "model.width=0.25", "--set", "data.augment.size=64"]
    common += ["--set", "data.box_pad=0.1"]  # its model file records the box convention
    args = [
        "train", "--out", str(out), "--icdar", str(folder), "--val-icdar", str(folder),
        "--steps", "2", "--batch-size", "2", "--workers", "1", "--set", "val.synth_count=0",
        *common,
    ]  # fmt: skip
    assert main(args) == 0
    for name in ("config.yaml", "last.pt", "best.pt", "best_model.pt", "model.pt"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {row["kind"] for row in rows} == {"train", "val"}
    assert "data/hmean" in rows[-1] and (out / "metrics.csv").read_text().startswith("step,")
    assert main(["train", "--out", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 3
    # A session that stops early leaves a checkpoint, no final model, and resumes to the end.
    (out / "model.pt").unlink()
    resume = ["train", "--out", str(out), "--resume", "--steps", "5", "--no-progress"]
    assert main([*resume, "--stop-at-step", "4"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 4 and not (out / "model.pt").exists()
    assert main(resume) == 0 and load_checkpoint(out / "last.pt")["step"] == 5
    assert (out / "model.pt").is_file()
    assert Detector.load(out / "model.pt", backend="torch").trained_box_pad == pytest.approx(0.1)
    assert main(["train", "--out", str(tmp_path / "bad"), "--set", "optim.lr=fast"]) == 2
    # A data source that does not exist fails before the run folder is made.
    missing = ["train", "--out", str(tmp_path / "none"), "--icdar", str(tmp_path / "absent")]
    assert main([*missing, "--no-progress"]) == 1
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_after_a_checkpoint(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM or SIGINT to the whole process group (as `timeout` or Ctrl-C send it), loader
    worker included: the step in progress finishes, last.pt holds it, exit status 128 + N."""
    folder = write_text_folder(tmp_path / "data", count=4, seed=3, size=96)
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "synthloc", "train", "--out", str(out), "--icdar", str(folder),
        "--steps", "100000", "--batch-size", "2", "--workers", "1", "--threads", "1",
        "--no-progress", "--set", "model.width=0.25", "--set", "data.augment.size=64",
        "--set", "val.synth_count=0", "--set", "val.every=0", "--set", "log_every=1",
        "--set", "checkpoint_every=100000",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no training steps logged within 120 s"
        time.sleep(0.05)
    assert not (out / "last.pt").exists()  # no scheduled checkpoint before step 100000
    os.killpg(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert load_checkpoint(out / "last.pt")["step"] == max(logged) >= 3
    assert f"stopped by {sig.name}" in stdout and "--resume" in stdout
    assert "Traceback" not in stderr, stderr


def test_weight_average_is_the_mean_of_its_snapshots() -> None:
    from synthloc.train import WeightAverage

    model = torch.nn.BatchNorm1d(3)
    running_mean, batches = model.running_mean, model.num_batches_tracked
    assert running_mean is not None and batches is not None
    average = WeightAverage(model)
    snapshots = []
    for k in range(3):
        with torch.no_grad():
            model.weight.fill_(float(k))
            running_mean.uniform_(-1.0, 1.0)
            batches.fill_(10 * k)
        snapshots.append({n: v.clone() for n, v in model.state_dict().items()})
        average.add(model)
    assert average.count == 3
    state = average.module.state_dict()
    torch.testing.assert_close(state["weight"], torch.full((3,), 1.0))
    torch.testing.assert_close(
        state["running_mean"], sum(s["running_mean"] for s in snapshots) / 3, rtol=0, atol=1e-6
    )
    assert int(state["num_batches_tracked"]) == 20  # integer buffers: the last snapshot's


def test_swa_averages_the_ema_at_its_steps_and_survives_a_split_run(tmp_path: Path) -> None:
    set_test_threads()
    folder = write_text_folder(tmp_path / "data", count=6, seed=1, size=96)
    extra = ["ema_decay=0.9", "swa_start=10", "swa_every=5", "checkpoint_every=5"]
    straight = fit(tiny_config(folder, 20, extra), tmp_path / "straight", progress=False)
    # The split run stops at 12, between sample points, and at two sample points.
    emas = []
    for stop in (10, 12, 15, 20):
        fit(
            tiny_config(folder, 20, extra),
            tmp_path / "split",
            resume=stop > 10,
            stop_at_step=stop,
            progress=False,
        )
        if stop != 12:
            emas.append(model_from_checkpoint(tmp_path / "split" / "last.pt", "ema").state_dict())
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["swa"]["count"] == b["swa"]["count"] == 3  # steps 10, 15 and 20
    for name, value in a["swa"]["module"].items():
        torch.testing.assert_close(b["swa"]["module"][name], value, rtol=1e-5, atol=1e-6)
        if value.is_floating_point():
            expected = sum(ema[name] for ema in emas) / 3
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    # The model file and the returned model are the average, not the last EMA.
    assert straight.model_path is not None
    saved = load_model_with_extra(straight.model_path)[0].state_dict()
    swa = model_from_checkpoint(tmp_path / "straight" / "last.pt", "swa").state_dict()
    ema = model_from_checkpoint(tmp_path / "straight" / "last.pt", "ema").state_dict()
    assert all(torch.equal(saved[name], swa[name]) for name in swa)
    assert not all(
        torch.equal(swa[name], ema[name]) for name in swa if swa[name].is_floating_point()
    )


def test_swa_weights_need_a_snapshot(tmp_path: Path) -> None:
    set_test_threads()
    folder = write_text_folder(tmp_path / "data", count=4, seed=1, size=96)
    extra = ["ema_decay=0.9", "swa_start=50", "checkpoint_every=5"]
    fit(tiny_config(folder, 60, extra), tmp_path / "run", stop_at_step=5, progress=False)
    with pytest.raises(ValueError, match="no weight average yet"):
        model_from_checkpoint(tmp_path / "run" / "last.pt", "swa")
    with pytest.raises(ValueError, match="swa_every"):
        tiny_config(folder, 60, ["swa_every=0"])


def test_ema_decay_warms_up() -> None:
    """The EMA's decay starts near 0.1 and reaches the configured value; step 0 copies."""
    from synthloc.train import ModelEMA

    model = torch.nn.Linear(2, 1)
    ema = ModelEMA(model, 0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    initial = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    # decay 0.1 at the first update: 0.1 of the old weights, 0.9 of the new ones.
    torch.testing.assert_close(ema.module.weight, 0.1 * initial + 0.9)
    assert ema.current_decay() == pytest.approx(2 / 11)
    ema.updates = 100_000
    assert ema.current_decay() == pytest.approx(0.999)


def test_init_starts_a_run_from_a_model_file(tmp_path: Path) -> None:
    """init= loads an earlier run's weights (fine-tuning); a mismatched architecture is refused."""
    set_test_threads()
    folder = write_text_folder(tmp_path / "data", count=2, seed=3, size=96)
    first = fit(tiny_config(folder, 2, []), tmp_path / "first", progress=False)
    assert first.model_path is not None
    source = load_model(first.model_path).state_dict()
    # Without EMA the run's model file holds its raw weights, as the checkpoint does.
    from synthloc.train import model_from_checkpoint

    raw = model_from_checkpoint(tmp_path / "first" / "last.pt", "raw").state_dict()
    for name, value in source.items():
        assert torch.equal(raw[name], value), name
    with pytest.raises(ValueError, match="no EMA"):
        model_from_checkpoint(tmp_path / "first" / "last.pt", "ema")

    config = tiny_config(folder, 0, [f"init='{first.model_path}'"])
    from synthloc.train import DistContext, Trainer

    trainer = Trainer(config, tmp_path / "second", DistContext())
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value.cpu(), source[name]), name

    wrong = tiny_config(folder, 0, [f"init='{first.model_path}'", "model.width=0.5"])
    with pytest.raises(ValueError, match="differs"):
        Trainer(wrong, tmp_path / "third", DistContext())
