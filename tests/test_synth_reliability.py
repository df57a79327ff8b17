"""Synthesis under faults and bad input: dead workers, damaged shards, unusable inputs, full disk,
Ctrl-C. Hang cases run in a subprocess with a bounded timeout."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthloc.cli import main
from synthloc.data.shards import ShardDataset, read_manifest, shard_name
from synthloc.synth import SynthConfig, runner
from synthloc.synth.executors import InProcessExecutor, ProcessExecutor
from synthloc.synth.runner import SynthError, synthesize

SRC = Path(__file__).resolve().parents[1] / "src"
SEED = 5


def run(out: Path, **kwargs: object) -> runner.SynthReport:
    options: dict[str, object] = {
        "count": 6,
        "seed": SEED,
        "config": SynthConfig(size=128),
        "shard_size": 2,
        "progress": False,
        "image_format": "png",
    }
    options.update(kwargs)
    return synthesize(out, **options)  # type: ignore[arg-type]


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.tar"))}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reliability") / "ds"
    run(out)
    return out


def cli(*args: str, timeout: float = 120, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "synthloc", "synth", *args]
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def _sigint_at_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_masks(pid: int) -> str:
    """The SigBlk / SigIgn / SigCgt lines of /proc/<pid>/status (SIGINT is the mask 0x2)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as error:
        return f"unreadable ({error})"
    return "; ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def worker_pids(parent: int) -> list[int]:
    """Spawned multiprocessing children of ``parent`` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


# --------------------------------------------------------------------------- dead workers


def _square_or_die(task: int) -> int:
    """A task that kills its own process (as the OOM killer would) for task 2."""
    if task == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return task * task


def _flaky(task: int) -> int:
    raise OSError(errno.EIO, f"task {task} always fails")


def test_process_executor_survives_a_dying_task_and_reports_it() -> None:
    executor = ProcessExecutor(2)
    start = time.monotonic()
    outcomes = {o.task: o for o in executor.run(_square_or_die, [0, 1, 2, 3, 4], attempts=2)}
    assert time.monotonic() - start < 120
    assert {t: o.result for t, o in outcomes.items() if o.ok} == {0: 0, 1: 1, 3: 9, 4: 16}
    failed = outcomes[2]
    assert failed.attempts == 2 and failed.result is None
    assert failed.error is not None and "died (signal 9)" in failed.error
    assert executor.pids() == []  # all workers stopped


def test_in_process_executor_retries_then_reports() -> None:
    (outcome,) = InProcessExecutor().run(_flaky, [7], attempts=3)
    assert outcome.attempts == 3 and outcome.error is not None
    assert "OSError" in outcome.error and "task 7 always fails" in outcome.error


def test_killed_worker_shard_is_retried_and_nothing_is_lost(baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["--count", "6", "--seed", str(SEED), "--size", "128", "--shard-size", "2"]
    process = cli(*args, "--image-format", "png", "--workers", "2", "--out", str(out))
    # Once the first shard is recorded, both workers are inside a shard (3 shards, 2 workers).
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not list(out.glob("progress/shard-*.json")):
        time.sleep(0.02)
    victims = worker_pids(process.pid)
    assert process.poll() is None and len(victims) == 2, "run ended before the kill"
    os.kill(victims[0], signal.SIGKILL)
    try:
        _, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("synth hung after a worker was killed")
    assert process.returncode == 0, stderr
    assert shard_bytes(out) == shard_bytes(baseline)
    manifest = read_manifest(out)
    assert manifest["complete"] is True and manifest["failures"] == []


def test_shard_failing_every_try_is_named_in_manifest_and_exit_status(
    baseline: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = runner.make_shard

    def broken_shard_one(job: object, task: runner.ShardTask) -> object:
        if task.index == 1:
            raise MemoryError("render of shard 1 ran out of memory")
        return real(job, task)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "make_shard", broken_shard_one)
    out = tmp_path / "ds"
    args = ["synth", "--count", "6", "--seed", str(SEED), "--size", "128", "--shard-size", "2"]
    args += ["--image-format", "png", "--out", str(out), "--no-progress", "--retries", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("synthloc synth: error: 1 shard(s) failed after 2 attempts")
    assert "shard-000001.tar" in err[-1] and "Traceback" not in "\n".join(err)
    manifest = read_manifest(out)
    assert manifest["complete"] is False
    (failure,) = manifest["failures"]
    assert failure["index"] == 1 and failure["file"] == shard_name(1)
    assert failure["attempts"] == 2 and "out of memory" in failure["error"]
    assert [s["index"] for s in manifest["shards"]] == [0, 2]
    assert len(ShardDataset(out)) == 4  # the complete part is readable as it is
    monkeypatch.setattr(runner, "make_shard", real)
    assert main(args) == 0  # the rerun makes only the missing shard
    assert shard_bytes(out) == shard_bytes(baseline)
    assert read_manifest(out)["failures"] == []


# --------------------------------------------------------------------------- resume checks


def test_resume_rerenders_truncated_and_garbage_shards(baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    run(out)
    truncated, garbage = out / shard_name(0), out / shard_name(2)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    garbage.write_bytes(os.urandom(garbage.stat().st_size))  # same size, other bytes
    report = run(out)
    assert (report.rendered, report.resumed) == (4, 2)
    assert shard_bytes(out) == shard_bytes(baseline)
    assert all(s["sha256"] and s["bytes"] for s in read_manifest(out)["shards"])


def test_resume_after_interruption_checks_recorded_shards(baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    run(out)
    # As an interrupted run leaves it: no manifest, the progress log, a damaged shard.
    manifest = read_manifest(out)
    (out / "manifest.json").unlink()
    (out / "progress").mkdir()
    (out / "progress" / "run.json").write_text(
        json.dumps(
            {
                k: manifest[k]
                for k in (
                    "seed",
                    "count",
                    "format",
                    "image_format",
                    "shard_size",
                    "config",
                    "backgrounds",
                )
            }
        )
    )
    for entry in manifest["shards"]:
        path = out / "progress" / f"shard-{entry['index']:06d}.json"
        path.write_text(json.dumps(entry))
    (out / shard_name(1)).write_bytes(b"")
    report = run(out)
    assert (report.rendered, report.resumed) == (2, 4)
    assert shard_bytes(out) == shard_bytes(baseline)


# --------------------------------------------------------------------------- bad input


def _noise_png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(path)


def test_all_backgrounds_unreadable_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthloc.data.datasets import OnTheFlySynthesis

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"not a png")
    (photos / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(
        SynthError, match=r"none of the 2 backgrounds can be read \(first: .*a\.png"
    ):
        run(tmp_path / "ds", backgrounds=photos)
    with pytest.raises(ValueError, match="none of the 2 backgrounds can be read"):
        OnTheFlySynthesis(photos, SynthConfig(size=128), seed=0)
    args = ["synth", "--backgrounds", str(photos), "--count", "2", "--out", str(tmp_path / "o")]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none of the 2 backgrounds can be read" in err[0]
    assert not (tmp_path / "o").exists()
    _noise_png(photos / "c.png", 0)  # one usable photo is enough
    assert run(tmp_path / "ds", backgrounds=photos, count=2).written == 2


def test_background_name_that_is_not_utf8(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _noise_png(photos / "tmp.png", 1)
    os.rename(photos / "tmp.png", os.fsencode(photos) + b"/\xffb.png")
    report = run(tmp_path / "ds", backgrounds=photos, count=2)
    assert report.written == 2 and report.fallback_backgrounds == 0
    records = [ShardDataset(tmp_path / "ds").record(i) for i in range(2)]
    assert {r["background"] for r in records} == {"\\xffb.png"}


@pytest.mark.parametrize("kind", ["blank file", "empty folder", "folder of blank files", "binary"])
def test_unusable_corpus_is_refused_before_rendering(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    if kind == "blank file":
        corpus.write_text("  \n\n \t\n", encoding="utf-8")
    elif kind == "binary":
        corpus.write_bytes(bytes(range(256)) * 64)
    else:
        corpus.mkdir()
        if kind == "folder of blank files":
            (corpus / "a.txt").write_text("\n", encoding="utf-8")
    out = tmp_path / "o"
    args = ["synth", "--corpus", str(corpus), "--count", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("synthloc synth: error: corpus: ")
    assert str(corpus) in err[0] and not out.exists()


def test_out_file_and_huge_size_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["synth", "--count", "1", "--out", str(a_file), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"synthloc synth: error: {a_file}: exists and is not a folder; choose another --out"
    ]
    out = str(tmp_path / "o")
    assert main(["synth", "--count", "1", "--out", out, "--size", "100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["synthloc synth: error: --size 100000 is out of range (64 .. 4096)"]
    with pytest.raises(SynthError, match="size 100000 is out of range"):
        run(tmp_path / "o", config=SynthConfig(size=100000))


# --------------------------------------------------------------------------- writes


def test_full_disk_leaves_no_temporary_and_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = Path.write_bytes

    def disk_full_for_shards(self: Path, data: bytes) -> int:  # type: ignore[override]
        if self.name.startswith(".shard-"):
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full_for_shards)
    out = tmp_path / "ds"
    args = ["synth", "--count", "2", "--size", "128", "--out", str(out), "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"synthloc synth: error: {out / shard_name(0)}: No space left on device"]
    assert sorted(p.name for p in out.rglob("*") if p.name.endswith(".tmp")) == []
    assert not (out / shard_name(0)).exists()


def test_shards_get_the_umask_mode(baseline: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    for path in [*baseline.glob("shard-*.tar"), baseline / "manifest.json"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


@pytest.mark.parametrize("executor", [["--workers", "2"], ["--dask", "local:2"]])
def test_ctrl_c_is_one_line_and_exit_130(executor: list[str], tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["--count", "400", "--size", "128", "--shard-size", "2", *executor]
    # A terminal's foreground job has SIGINT at its default; a test run as a background job
    # (`make test &`, nohup ... &) inherits it ignored, and synth would rightly ignore Ctrl-C.
    process = cli(
        *args,
        "--out",
        str(out),
        "--no-progress",
        start_new_session=True,
        preexec_fn=_sigint_at_default,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not list(out.glob("progress/shard-*.json")):
        time.sleep(0.05)
    assert process.poll() is None, "finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C: the whole group
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Which signals it ignored, blocked and caught then (a SIGINT ignored or blocked while
        # workers start would be lost), before it is killed.
        masks = _signal_masks(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        here = signal.getsignal(signal.SIGINT)
        pytest.fail(f"synth did not stop on Ctrl-C; its signal masks: {masks}; SIGINT here: {here}")
    assert process.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines() == [
        "synthloc synth: interrupted; run the same command again to resume"
    ]
    assert worker_pids(process.pid) == []
