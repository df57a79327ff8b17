"""Synthesis on a real Dask LocalCluster (2 worker processes) and shards on fsspec URLs."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import distributed  # the optional 'cluster' extra (in the dev extra too)
import numpy as np
import pytest

from synthloc.data.datasets import ShardSource
from synthloc.data.shards import ShardDataset, read_manifest
from synthloc.synth import SynthConfig
from synthloc.synth.dask_executor import DaskExecutor
from synthloc.synth.runner import SynthError, SynthReport, synthesize

SEED = 3
COUNT = 8
SHARD_SIZE = 2


def run(out: str | Path, **kwargs: object) -> SynthReport:
    options: dict[str, object] = {
        "count": COUNT,
        "seed": SEED,
        "config": SynthConfig(size=128),
        "shard_size": SHARD_SIZE,
        "progress": False,
        "image_format": "png",
    }
    options.update(kwargs)
    return synthesize(out, **options)  # type: ignore[arg-type]


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.tar"))}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dask") / "ds"
    run(out, workers=1)
    return out


def test_dask_output_is_byte_identical_to_one_worker(
    cluster: Any, baseline: Path, tmp_path: Path
) -> None:
    report = run(tmp_path / "ds", dask=cluster.scheduler_address)
    assert (report.rendered, report.resumed, report.failures) == (COUNT, 0, [])
    assert shard_bytes(tmp_path / "ds") == shard_bytes(baseline)
    assert read_manifest(tmp_path / "ds") == read_manifest(baseline)


class _StopsAfter:
    """An executor that passes on ``n`` outcomes of another, then is interrupted."""

    def __init__(self, inner: DaskExecutor, n: int) -> None:
        self.inner, self.n = inner, n

    def run(self, function: Callable[[Any], Any], tasks: Sequence[Any], attempts: int) -> Any:
        for i, outcome in enumerate(self.inner.run(function, tasks, attempts)):
            yield outcome
            if i + 1 == self.n:
                raise KeyboardInterrupt

    def close(self) -> None:
        self.inner.close()


def test_dask_resumes_a_run_interrupted_midway(
    cluster: Any, baseline: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        run(out, executor=_StopsAfter(DaskExecutor(cluster.scheduler_address), 2))
    assert not (out / "manifest.json").exists()
    assert len(list((out / "progress").glob("shard-*.json"))) == 2
    report = run(out, dask=cluster.scheduler_address)
    assert (report.rendered, report.resumed) == (COUNT - 2 * SHARD_SIZE, 2 * SHARD_SIZE)
    assert shard_bytes(out) == shard_bytes(baseline)
    assert read_manifest(out)["complete"] is True and not (out / "progress").exists()


def test_file_url_round_trip_through_the_shard_reader(
    cluster: Any, baseline: Path, tmp_path: Path
) -> None:
    url = (tmp_path / "ds").as_uri()  # file:///...
    assert url.startswith("file://")
    run(url, dask=cluster.scheduler_address)
    assert shard_bytes(tmp_path / "ds") == shard_bytes(baseline)
    got, want = ShardDataset(url), ShardDataset(baseline)
    assert len(got) == len(want) == COUNT
    for i in range(COUNT):
        a, b = got[i], want[i]
        assert a.name == b.name and a.words == b.words
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.word_quads, b.word_quads)


def test_memory_url_round_trip_through_shard_source(baseline: Path) -> None:
    url = "memory://synthloc-test/ds"
    run(url, workers=1)  # memory:// lives in this process: in-process rendering
    import fsspec

    fs = fsspec.filesystem("memory")
    assert (
        fs.cat_file("/synthloc-test/ds/shard-000000.tar")
        == (baseline / "shard-000000.tar").read_bytes()
    )
    source, want = ShardSource(url), ShardDataset(baseline)
    assert len(source) == COUNT
    for i in (0, COUNT - 1):
        np.testing.assert_array_equal(source[i].image, want[i].image)
        assert source[i].words == want[i].words
    assert run(url, workers=1).resumed == COUNT  # resume works on the store too
    fs.rm("/synthloc-test", recursive=True)


def test_missing_dask_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(SynthError, match=r"pip install 'synthloc\[cluster\]'"):
        run(tmp_path / "ds", dask="local:2")
    with pytest.raises(SynthError, match="expected local:N"):
        monkeypatch.undo()
        run(tmp_path / "ds2", dask="local:zero")


def test_killed_dask_worker_loses_nothing(cluster: Any, baseline: Path, tmp_path: Path) -> None:
    """Runs last: the nanny restarts the killed worker, but the module cluster is shaken."""
    client = distributed.Client(cluster.scheduler_address)
    pids = client.run(os.getpid)  # {worker address: pid}
    out = tmp_path / "ds"
    result: dict[str, Any] = {}

    def synth() -> None:
        try:
            result["report"] = run(out, dask=cluster.scheduler_address)
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=synth)
    thread.start()
    deadline = time.monotonic() + 60
    busy: list[str] = []
    while time.monotonic() < deadline and not busy:
        busy = [address for address, keys in client.processing().items() if keys]
        time.sleep(0.05)
    assert busy, "no task started"
    time.sleep(0.3)  # inside its shard
    os.kill(pids[busy[0]], signal.SIGKILL)
    thread.join(timeout=180)
    restarted = client.run(os.getpid) if not thread.is_alive() else {}
    client.close()
    assert not thread.is_alive(), "synthesis hung after a worker was killed"
    assert "error" not in result, result.get("error")
    assert pids[busy[0]] not in restarted.values()  # that process really died
    report: SynthReport = result["report"]
    assert report.failures == [] and report.written == COUNT
    assert shard_bytes(out) == shard_bytes(baseline)
    assert read_manifest(out)["complete"] is True
