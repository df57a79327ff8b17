"""The dataset runner: determinism across workers, resuming, formats, bad input, previews, CLI."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from synthloc.cli import main
from synthloc.data.icdar import read_icdar_gt
from synthloc.data.sample import Sample
from synthloc.data.shards import ShardDataset, iter_shard, read_manifest, shard_name
from synthloc.data.synthtext_h5 import read_synthtext_h5
from synthloc.synth import SynthConfig, jobs, runner
from synthloc.synth.runner import SynthError, render_sample, synthesize

SEED = 11
COUNT = 6
SHARD_SIZE = 2


def small_config() -> SynthConfig:
    return SynthConfig(size=256)


def run(out: Path, **kwargs: object) -> runner.SynthReport:
    options: dict[str, object] = {
        "count": COUNT,
        "seed": SEED,
        "config": small_config(),
        "shard_size": SHARD_SIZE,
        "progress": False,
        "image_format": "png",
    }
    options.update(kwargs)
    return synthesize(out, **options)  # type: ignore[arg-type]


def assert_same(a: Sample, b: Sample) -> None:
    assert a.name == b.name and a.words == b.words
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.word_quads, b.word_quads)
    np.testing.assert_array_equal(a.char_quads, b.char_quads)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete single-process run: COUNT samples in COUNT / SHARD_SIZE shards (PNG)."""
    out = tmp_path_factory.mktemp("baseline") / "ds"
    report = run(out, workers=1)
    assert report.rendered == COUNT and report.resumed == 0
    return out


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.tar"))}


def test_samples_match_direct_rendering(baseline: Path) -> None:
    manifest = read_manifest(baseline)
    assert manifest["complete"] and manifest["seed"] == SEED and manifest["count"] == COUNT
    assert [s["samples"] for s in manifest["shards"]] == [2, 2, 2]
    assert manifest["counts"]["written"] == COUNT
    dataset = ShardDataset(baseline)
    assert len(dataset) == COUNT
    total_words = 0
    for i in range(COUNT):
        direct = render_sample(SEED, i, small_config()).sample
        assert_same(direct, dataset[i])
        assert max(direct.image.shape[:2]) == 256
        total_words += len(direct.words)
    assert manifest["counts"]["words"] == total_words > 0
    assert not (baseline / "progress").exists()


def test_two_workers_give_identical_bytes(baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "two"
    report = run(out, workers=2)
    assert report.rendered == COUNT
    assert shard_bytes(out) == shard_bytes(baseline)
    assert len(shard_bytes(out)) == 3


def test_deleted_shard_is_the_only_one_rewritten(baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    shutil.copytree(baseline, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    (out / shard_name(1)).unlink()
    report = run(out)
    assert (report.rendered, report.resumed) == (2, 4)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    assert after[shard_name(0)] == before[shard_name(0)]
    assert after[shard_name(2)] == before[shard_name(2)]
    assert shard_bytes(out) == shard_bytes(baseline)
    assert read_manifest(out) == read_manifest(baseline)


@pytest.mark.parametrize("fmt", ["shards", "synthtext-h5"])
def test_interrupted_run_resumes(
    fmt: str, baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ds"
    real = jobs.render_sample

    def dies_at_three(seed: int, index: int, *args: object, **kwargs: object) -> object:
        if index == 3:
            raise KeyboardInterrupt
        return real(seed, index, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "render_sample", dies_at_three)
    with pytest.raises(KeyboardInterrupt):
        run(out, fmt=fmt)
    # The manifest is written once, at the end; the resume log is progress/.
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in (out / "progress").iterdir()) == ["run.json", "shard-000000.json"]
    if fmt == "shards":
        assert sorted(p.name for p in out.glob("shard-*.tar")) == [shard_name(0)]
    else:
        assert sorted(p.name for p in (out / "parts").iterdir()) == ["part-000000.h5"]
        assert not (out / "SynthText.h5").exists()
    stale = out / ".shard-000001.tar.x1y2.tmp"  # what a kill during a shard write leaves
    stale.write_bytes(b"partial")
    monkeypatch.setattr(jobs, "render_sample", real)
    report = run(out, fmt=fmt)
    assert not stale.exists()
    # Shard 0 was complete; shard 1 had sample 2 rendered but not written, so it is redone.
    assert (report.rendered, report.resumed) == (4, 2)
    assert read_manifest(out)["complete"] is True
    if fmt == "shards":
        assert shard_bytes(out) == shard_bytes(baseline)
    else:
        expected = ShardDataset(baseline)
        samples = list(read_synthtext_h5(out / "SynthText.h5"))
        assert len(samples) == COUNT
        for i, sample in enumerate(samples):
            assert_same(expected[i], sample)
        assert not (out / "parts").exists() and not (out / "progress").exists()
        assert run(out, fmt=fmt).rendered == 0  # complete: nothing left to do


def test_engine_errors_are_counted_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import synthloc.synth

    def broken(*args: object, **kwargs: object) -> Sample:
        raise ValueError("engine bug")

    monkeypatch.setattr(synthloc.synth, "render_scene", broken)
    report = run(tmp_path / "ds", count=2)
    assert (report.written, report.render_errors, report.empty_images) == (2, 2, 2)
    manifest = read_manifest(tmp_path / "ds")
    assert "engine bug" in manifest["shards"][0]["errors"][0]
    assert "render errors 2" in report.summary()


def test_other_settings_are_refused(baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    shutil.copytree(baseline, out)
    with pytest.raises(SynthError, match=r"manifest\.json.*seed: existing 11, requested 12"):
        run(out, seed=12)
    with pytest.raises(SynthError, match="config fields differ: size"):
        run(out, config=SynthConfig(size=200))
    with pytest.raises(SynthError, match="count"):
        run(out, count=COUNT + 1)
    assert shard_bytes(out) == shard_bytes(baseline)  # nothing touched


def test_folders_written_before_a_config_field_existed_still_resume(
    baseline: Path, tmp_path: Path
) -> None:
    """An engine option added later (here p_vertical, as if the folder predated it) does not
    stop a resume while it is left at its default, which renders what the old version did;
    set to anything else, it is a different run."""
    import json

    out = tmp_path / "ds"
    shutil.copytree(baseline, out)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["p_vertical"]
    manifest_path.write_text(json.dumps(manifest))
    report = run(out)
    assert (report.rendered, report.resumed) == (0, COUNT)
    assert shard_bytes(out) == shard_bytes(baseline)
    with pytest.raises(SynthError, match=r"config fields differ: p_vertical\)"):
        run(out, config=SynthConfig(size=256, p_vertical=0.5))
    # sprite_max_scale's default caps sprites that were not capped before it existed: a
    # folder made with sprites on and without the field is a different run.
    from synthloc.synth.manifest import _config_fields_differing

    before = {"size": 256, "p_sprite": 0.2}
    now = {"size": 256, "p_sprite": 0.2, "sprite_max_scale": 1.0}
    assert _config_fields_differing(before, now) == ["sprite_max_scale"]
    assert _config_fields_differing({**before, "p_sprite": 0.0}, {**now, "p_sprite": 0.0}) == []


def test_formats_icdar_and_synthtext_h5(tmp_path: Path) -> None:
    direct = [render_sample(SEED, i, small_config()).sample for i in range(3)]
    run(tmp_path / "h5", count=3, fmt="synthtext-h5")
    assert sorted(p.name for p in (tmp_path / "h5").iterdir()) == ["SynthText.h5", "manifest.json"]
    from_h5 = list(read_synthtext_h5(tmp_path / "h5" / "SynthText.h5"))
    assert len(from_h5) == 3
    for a, b in zip(direct, from_h5):
        assert_same(a, b)

    run(tmp_path / "icdar", count=3, fmt="icdar")
    for sample in direct:
        image = cv2.imread(str(tmp_path / "icdar" / "images" / f"{sample.name}.png"))
        assert image is not None
        np.testing.assert_array_equal(image[:, :, ::-1], sample.image)
        gt = read_icdar_gt(tmp_path / "icdar" / "gt" / f"gt_{sample.name}.txt")
        assert gt.words == sample.words
        # ICDAR stores integer coordinates.
        np.testing.assert_allclose(gt.quads, sample.word_quads, atol=0.5 + 1e-4)


def make_backgrounds(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "good.png"), cv2.GaussianBlur(good, (0, 0), 3))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((10, 10, 3), np.uint8))


def test_bad_backgrounds_are_skipped_counted_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "bgs"
    make_backgrounds(folder)
    with caplog.at_level(logging.WARNING, logger="synthloc.synth.runner"):
        report = run(tmp_path / "ds", count=4, backgrounds=folder)
    assert report.written == 4
    assert report.failed_backgrounds > 0
    assert set(report.bad_backgrounds) <= {"corrupt.jpg", "tiny.png"}
    assert report.bad_backgrounds
    for name, message in report.bad_backgrounds.items():
        assert name in message
        assert name in caplog.text
    records = [r for s in sorted((tmp_path / "ds").glob("shard-*.tar")) for r in _records(s)]
    assert sum(len(r["failed_backgrounds"]) for r in records) == report.failed_backgrounds
    assert {r["background"] for r in records} <= {"good.png", "<default>"}
    assert all(not r["has_depth"] and not r["has_seg"] and r["failed_maps"] == [] for r in records)
    manifest = read_manifest(tmp_path / "ds")
    assert manifest["counts"]["failed_backgrounds"] == report.failed_backgrounds
    # Without map folders the manifest keeps the form of runs made before maps existed, so
    # those runs still resume.
    assert set(manifest["backgrounds"]) == {"folder", "files", "list_sha256"}
    assert manifest["backgrounds"]["files"] == 3


def _records(shard: Path) -> list[dict[str, Any]]:
    from synthloc.data.shards import read_shard_records

    return read_shard_records(shard)


def test_empty_or_missing_backgrounds_and_busy_out_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here", encoding="utf-8")
    with pytest.raises(SynthError, match=r"empty.*no background images"):
        run(tmp_path / "a", backgrounds=tmp_path / "empty")
    with pytest.raises(SynthError, match="missing"):
        run(tmp_path / "b", backgrounds=tmp_path / "missing")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x", encoding="utf-8")
    with pytest.raises(SynthError, match="not empty"):
        run(busy)


def test_previews_are_written(tmp_path: Path) -> None:
    run(tmp_path / "ds", count=2, preview=2, shard_size=1)
    samples = list(iter_shard(tmp_path / "ds" / shard_name(0))) + list(
        iter_shard(tmp_path / "ds" / shard_name(1))
    )
    for sample in samples:
        preview = cv2.imread(str(tmp_path / "ds" / "preview" / f"{sample.name}.png"))
        assert preview is not None and preview.shape == sample.image.shape
        if sample.words:
            changed = np.any(preview[:, :, ::-1] != sample.image, axis=2)
            assert changed.mean() > 0.001  # quads were drawn


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["synth", "--count", "2", "--out", str(out), "--seed", "5", "--size", "128"]
    assert main([*args, "--no-progress", "--format", "icdar"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("written 2 (2 rendered, 0 resumed), failed backgrounds 0")
    assert "images/s" in line
    assert len(list((out / "gt").glob("gt_5_*.txt"))) == 2
    (tmp_path / "none").mkdir()
    code = main([*args[:4], str(tmp_path / "x"), "--backgrounds", str(tmp_path / "none")])
    assert code == 2
    assert "no background images" in capsys.readouterr().err


def test_icdar_resume_keeps_images_without_words(tmp_path: Path) -> None:
    """An image without words has an empty GT file; resuming must not render it again."""
    config = SynthConfig(size=128, p_no_text=1.0)  # every image a negative
    first = run(tmp_path / "icdar", count=4, fmt="icdar", config=config, shard_size=2)
    gts = sorted((tmp_path / "icdar" / "gt").glob("gt_*.txt"))
    assert first.rendered == 4 and len(gts) == 4
    assert all(p.stat().st_size == 0 for p in gts)
    again = run(tmp_path / "icdar", count=4, fmt="icdar", config=config, shard_size=2)
    assert again.rendered == 0 and again.resumed == 4
    gts[0].unlink()  # a missing GT file is still re-rendered
    third = run(tmp_path / "icdar", count=4, fmt="icdar", config=config, shard_size=2)
    assert third.rendered == 2 and gts[0].is_file()
