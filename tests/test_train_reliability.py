"""Training reliability: no run is silently overwritten, inputs and values are checked before
a run folder is made, a failed checkpoint write ends the run promptly with the previous
checkpoint intact, and stopping leaves no noise from the loader workers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_train import write_text_folder

from synthloc.cli import main
from synthloc.train import load_checkpoint
from synthloc.train_config import load_config

SMALL = [
    "--no-progress", "--batch-size", "2", "--set", "model.width=0.25",
    "--set", "data.augment.size=64", "--set", "val.synth_count=0", "--set", "val.every=0",
]  # fmt: skip
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    path = os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def test_a_new_run_refuses_a_folder_that_holds_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_text_folder(tmp_path / "data", count=2, seed=5, size=96)
    out = tmp_path / "run"
    train = ["train", "--out", str(out), "--icdar", str(folder), "--workers", "0", *SMALL]
    assert main([*train, "--steps", "2"]) == 0
    before = {name: (out / name).read_bytes() for name in ("last.pt", "model.pt", "config.yaml")}
    metrics = (out / "metrics.jsonl").read_text()
    capsys.readouterr()

    assert main([*train, "--steps", "3", "--seed", "7"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a training run" in err, err
    assert "--resume" in err and "--overwrite" in err
    for name, data in before.items():
        assert (out / name).read_bytes() == data, name
    assert (out / "metrics.jsonl").read_text() == metrics

    assert main([*train, "--steps", "3", "--resume", "--overwrite"]) == 2
    # --overwrite starts afresh: the old metrics are gone, not appended to.
    assert main([*train, "--steps", "3", "--seed", "7", "--overwrite"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["kind"] == "train"] == [3]
    assert load_checkpoint(out / "last.pt")["config"]["seed"] == 7


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--val-icdar", "MISSING_VAL"], "MISSING_VAL"),
        (["--set", "init=MISSING_INIT.pt"], "MISSING_INIT.pt"),
        (["--set", "data.synth.corpus=MISSING_CORPUS"], "MISSING_CORPUS"),
    ],
)
def test_every_input_is_checked_before_the_run_folder_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    folder = write_text_folder(tmp_path / "data", count=2, seed=5, size=96)
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--icdar", str(folder), "--steps", "2", *SMALL]
    moved = [str(tmp_path / f) if f.startswith("MISSING") else f for f in flags]
    moved = [f.replace("=MISSING", f"={tmp_path}/MISSING") for f in moved]
    assert main([*args, *moved]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--steps", "-1"], "steps"),
        (["--steps", "0"], "steps"),
        (["--lr", "nan"], "lr"),
        (["--workers", "-1"], "workers"),
        (["--batch-size", "0"], "batch_size"),
        (["--set", "ema_decay=1.0"], "ema_decay"),
        (["--set", "data.box_pad=-0.1"], "box_pad"),
        (["--set", "data.box_pad=1.5"], "box_pad"),
    ],
)
def test_out_of_range_values_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad configuration" in err and named in err, err
    assert not out.exists()


def test_a_yaml_config_is_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: .nan\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.yaml\.optim: lr must be a finite number"):
        load_config(path)


FAULT_WRAPPER = textwrap.dedent(
    """
    import resource, signal, sys, threading, time
    from pathlib import Path

    def limit_writes_after_first_checkpoint(out):
        # From then on no file may grow past half a checkpoint: the next checkpoint write
        # fails as on a full disk (EFBIG instead of ENOSPC), the metrics rows still fit.
        while not (out / "last.pt").is_file():
            time.sleep(0.01)
        half = (out / "last.pt").stat().st_size // 2
        resource.setrlimit(resource.RLIMIT_FSIZE, (half, resource.RLIM_INFINITY))

    if __name__ == "__main__":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # report EFBIG instead of dying
        out = Path(sys.argv[sys.argv.index("--out") + 1])
        threading.Thread(
            target=limit_writes_after_first_checkpoint, args=(out,), daemon=True
        ).start()
        from synthloc.cli import main
        sys.exit(main(sys.argv[1:]))
    """
)


def test_a_failed_checkpoint_write_ends_the_run_promptly(tmp_path: Path) -> None:
    """With a loader worker running, a checkpoint that cannot be written: exit status 1
    within the time limit, one line naming last.pt, the previous checkpoint intact."""
    folder = write_text_folder(tmp_path / "data", count=4, seed=3, size=96)
    out = tmp_path / "run"
    wrapper = tmp_path / "fault.py"
    wrapper.write_text(FAULT_WRAPPER, encoding="utf-8")
    command = [
        sys.executable, str(wrapper), "train", "--out", str(out), "--icdar", str(folder),
        "--steps", "100000", "--workers", "1", "--threads", "1", "--set", "checkpoint_every=3",
        *SMALL,
    ]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=_env())
    assert done.returncode == 1, done.stderr[-3000:]
    assert time.monotonic() - start < 170
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "last.pt: cannot write the checkpoint" in lines[0], lines
    assert "previous checkpoint is intact" in lines[0]
    assert load_checkpoint(out / "last.pt")["step"] == 3
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


STOP_WORKERS = textwrap.dedent(
    """
    import sys, time
    import torch
    from synthloc.train import DistContext, LoaderBatches, build_loader, build_stream
    from synthloc.train_config import load_config

    if __name__ == "__main__":
        torch.set_num_threads(1)
        config = load_config(None, [
            "batch_size=8", "data.workers=2", "data.augment.size=512",
            "data.sources=[{kind: synth}]",
        ])
        batches = LoaderBatches(
            build_loader(config, build_stream(config), DistContext(), 0, pin=False)
        )
        next(batches)
        time.sleep(3)  # the workers fill their prefetch queue
        workers = list(batches._iterator._workers)
        batches.close()
        print("exit codes", [w.exitcode for w in workers])
    """
)


def test_stopping_mid_stream_leaves_the_workers_quiet(tmp_path: Path) -> None:
    """An endless loader of synthesised 512-pixel batches stopped with prefetched batches in
    flight (what a SIGINT'd run does): no worker aborts with "terminate called without an
    active exception" (it did, for both workers, before they left at the atexit stage)."""
    script = tmp_path / "stop.py"
    script.write_text(STOP_WORKERS, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "terminate called" not in done.stderr, done.stderr[-3000:]
    assert "exit codes [0, 0]" in done.stdout, (done.stdout, done.stderr[-3000:])


def test_an_unreadable_background_is_named_once_then_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from synthloc.data.datasets import OnTheFlySynthesis
    from synthloc.synth.config import SynthConfig

    backgrounds = tmp_path / "bg"
    backgrounds.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (backgrounds / name).write_bytes(b"not an image")
    # One readable photo: with none at all the source refuses to start (a clear error).
    cv2.imwrite(str(backgrounds / "c.png"), np.full((96, 96, 3), 128, np.uint8))
    source = OnTheFlySynthesis(backgrounds, SynthConfig(size=128), seed=1)
    with caplog.at_level(logging.WARNING, logger="synthloc.data.datasets"):
        for index in range(12):
            assert max(source[index].image.shape[:2]) == 128
    warned = [r.getMessage() for r in caplog.records if "skipping background" in r.getMessage()]
    named = [m.split()[2].rstrip(":") for m in warned]
    # Each unreadable file is named once however often it is drawn, and every skip counted.
    assert len(named) == len(set(named)) and set(named) <= {"a.jpg", "b.jpg"} and named, warned
    assert sum(source.skipped_backgrounds.values()) >= len(named)
