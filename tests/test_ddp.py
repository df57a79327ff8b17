"""torchrun with two CPU processes (gloo) trains a few steps; both ranks end identical."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from test_train import write_text_folder

WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    from synthloc.train import fit
    from synthloc.train_config import load_config

    torch.set_num_threads(1)  # two processes share the two cores
    folder, out = sys.argv[1], sys.argv[2]
    config = load_config(None, [
        "steps=4", "batch_size=2", "accum_steps=2", "data.workers=0",
        f"data.sources=[{{kind: icdar, path: '{folder}'}}]", "data.augment.size=64",
        "model.width=0.25", "model.dropout=0.1", "val.synth_count=0", "val.every=0",
        "schedule.warmup_steps=1", "optim.lr=0.05", "checkpoint_every=2", "log_every=1",
    ])
    result = fit(config, out, progress=False)
    rank = int(os.environ["RANK"])
    torch.save({"step": result.step, "model": result.model.state_dict()},
               os.path.join(out, f"rank{rank}.pt"))
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_torchrun_two_cpu_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    folder = write_text_folder(tmp_path / "data", count=8, seed=4, size=96)
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    out = tmp_path / "run"
    out.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--nnodes", "1", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(script), str(folder), str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    rank0 = torch.load(out / "rank0.pt", weights_only=False)
    rank1 = torch.load(out / "rank1.pt", weights_only=False)
    assert rank0["step"] == rank1["step"] == 4
    for name, value in rank0["model"].items():
        assert torch.equal(value, rank1["model"][name]), name
    # Only rank 0 writes the run; its checkpoint holds the same weights and the split layout.
    checkpoint = torch.load(out / "last.pt", weights_only=False)
    assert checkpoint["step"] == 4 and checkpoint["data_position"]["world_size"] == 2
    for name, value in checkpoint["model"].items():
        assert torch.equal(value, rank0["model"][name]), name
    assert (out / "model.pt").is_file() and not (out / "rank2.pt").exists()
