"""The runner with depth / seg maps: folders paired by stem, and SynthText dset.h5 input."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from PIL import Image

from synthloc.cli import main
from synthloc.data.shards import read_manifest, read_shard_records
from synthloc.synth import SynthConfig, render_scene
from synthloc.synth.runner import (
    SynthError,
    SynthReport,
    background_source,
    sample_rng,
    synthesize,
)
from synthloc.train_config import SourceConfig

SEED = 3
SIZE = 160


def small_config() -> SynthConfig:
    return SynthConfig(size=SIZE, min_font_px=10, max_font_px=48)


def panels(height: int, width: int, seed: int) -> np.ndarray:
    """Two flat, slightly noisy panels (left light, right dark): room for text on each."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[:, : width // 2] = (190, 180, 160)
    image[:, width // 2 :] = (60, 80, 110)
    image += rng.normal(0, 1.5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def run(out: Path, backgrounds: Path, **kwargs: Any) -> SynthReport:
    options: dict[str, Any] = {
        "count": 4,
        "seed": SEED,
        "config": small_config(),
        "shard_size": 2,
        "progress": False,
        "image_format": "png",
    }
    options.update(kwargs)
    return synthesize(out, backgrounds=backgrounds, **options)


def records(out: Path) -> list[dict[str, Any]]:
    return [r for shard in sorted(out.glob("shard-*.tar")) for r in read_shard_records(shard)]


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))}


# --------------------------------------------------------------------------- dset.h5


def make_dset(path: Path) -> list[str]:
    """A SynthText-layout dset.h5: 3 images 120x160, constant (planar) depth stored [2, W, H],
    seg [H, W] with one label per panel; ``c.jpg``'s depth is malformed (1-D)."""
    h, w = 120, 160
    seg = np.ones((h, w), np.float32)
    seg[:, w // 2 :] = 2
    depth = np.full((h, w), 5.0, np.float32)
    keys = ["a.jpg", "b.jpg", "c.jpg"]
    with h5py.File(path, "w") as f:
        for k, key in enumerate(keys):
            f.create_dataset(f"image/{key}", data=panels(h, w, k))
            f.create_dataset(f"seg/{key}", data=seg)
            if key == "c.jpg":
                f.create_dataset(f"depth/{key}", data=np.zeros(7, np.float32))
            else:
                f.create_dataset(f"depth/{key}", data=np.stack([depth, depth]).transpose(0, 2, 1))
    return keys


def test_dset_h5_input_is_deterministic_across_workers(tmp_path: Path) -> None:
    dset = tmp_path / "dset.h5"
    keys = make_dset(dset)
    one = run(tmp_path / "one", dset, workers=1)
    two = run(tmp_path / "two", dset, workers=2)
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert len(shard_bytes(tmp_path / "one")) == 2

    # Sample i draws its image name from the sorted keys with its own generator, like photos.
    drawn = [keys[int(sample_rng(SEED, i).integers(len(keys)))] for i in range(4)]
    assert set(drawn) == {"a.jpg", "c.jpg"}  # this seed exercises both a good and a bad depth
    got = records(tmp_path / "one")
    assert [r["background"] for r in got] == drawn
    for record in got:
        assert record["has_seg"] is True
        assert record["has_depth"] is (record["background"] != "c.jpg")
        assert record["failed_maps"] == (["depth:c.jpg"] if record["background"] == "c.jpg" else [])
    assert sum(len(r["words"]) for r in got) > 0

    bad = drawn.count("c.jpg")
    assert (one.with_depth, one.with_seg, one.failed_maps) == (4 - bad, 4, bad)
    assert list(one.bad_maps) == ["depth:c.jpg"]
    assert f"{dset}:depth/c.jpg" in one.bad_maps["depth:c.jpg"]
    assert one.failed_backgrounds == 0 and two.bad_maps == one.bad_maps
    manifest = read_manifest(tmp_path / "one")
    assert manifest["backgrounds"]["dset_h5"] == str(dset.resolve())
    assert manifest["backgrounds"]["files"] == 3
    assert manifest["counts"]["failed_maps"] == bad


def test_dset_h5_bad_inputs_are_errors(tmp_path: Path) -> None:
    not_h5 = tmp_path / "dset.h5"
    not_h5.write_bytes(b"not an hdf5 file")
    with pytest.raises(SynthError, match=r"dset\.h5: cannot open as HDF5"):
        background_source(not_h5)
    no_images = tmp_path / "other.h5"
    with h5py.File(no_images, "w") as f:
        f.create_dataset("data/x", data=np.zeros(3))
    with pytest.raises(SynthError, match=r"other\.h5: no 'image' group"):
        background_source(no_images)
    keys = make_dset(tmp_path / "good.h5")
    assert background_source(tmp_path / "good.h5").names == tuple(keys)  # type: ignore[union-attr]
    with pytest.raises(SynthError, match="carries its own depth and seg"):
        background_source(tmp_path / "good.h5", depth=tmp_path)


# --------------------------------------------------------------------------- paired folders


def make_photo_folder(root: Path) -> None:
    """photos/{flat.png, plain.jpg, sub/noisy.png} with maps kept inside the photo folder:
    maps/depth/sub/noisy.npy (random, non-planar) and maps/seg/flat.png (all label 0)."""
    (root / "sub").mkdir(parents=True)
    for k, name in enumerate(["flat.png", "plain.png", "sub/noisy.png"]):
        Image.fromarray(panels(120, 160, k)).save(root / name)
    (root / "maps" / "depth" / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(root / "maps" / "depth" / "sub" / "noisy.npy", rng.uniform(1, 50, (60, 80)))
    (root / "maps" / "seg").mkdir(parents=True)
    Image.fromarray(np.zeros((120, 160), np.uint8)).save(root / "maps" / "seg" / "flat.png")
    # A map of a photo that does not exist pairs with nothing.
    np.save(root / "maps" / "depth" / "missing.npy", np.ones((4, 4)))


def test_maps_are_paired_by_stem_and_used(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_photo_folder(photos)
    depth, seg = photos / "maps" / "depth", photos / "maps" / "seg"
    source = background_source(photos, depth, seg)
    assert source is not None
    # maps/seg/flat.png lies inside the photo folder but is not a photo.
    assert source.names == ("flat.png", "plain.png", "sub/noisy.png")
    assert source.depth == (None, None, (depth / "sub" / "noisy.npy").resolve())
    assert source.seg == ((seg / "flat.png").resolve(), None, None)

    # The maps reach the engine: a label map of 0s leaves no region, a non-planar depth no
    # plane, so no text (with the made-up sign panels for surface-less photos switched off);
    # the same photos without maps get text.
    config = SynthConfig(size=SIZE, min_font_px=10, max_font_px=48, fallback_signs=False)
    with source.open() as loader:
        for position in (0, 2):
            background, errors = loader.load(position, SIZE)
            assert not errors
            assert (background.seg is not None) == (position == 0)
            assert (background.depth is not None) == (position == 2)
            assert render_scene(background, config, np.random.default_rng(1)).words == []
            background.depth = background.seg = None
            assert render_scene(background, config, np.random.default_rng(1)).words

    out = tmp_path / "ds"
    report = run(out, photos, depth=depth, seg=seg, seed=2, config=config)
    got = records(out)
    assert {r["background"] for r in got} == set(source.names)  # this seed draws every photo
    for record in got:
        assert record["has_depth"] is (record["background"] == "sub/noisy.png")
        assert record["has_seg"] is (record["background"] == "flat.png")
        assert (record["words"] == []) is (record["background"] != "plain.png")
    assert report.with_depth == sum(r["has_depth"] for r in got) > 0
    assert report.with_seg == sum(r["has_seg"] for r in got) > 0
    assert report.failed_maps == 0 and "with depth" in report.summary()
    identity = read_manifest(out)["backgrounds"]
    assert identity["files"] == 3
    assert (identity["depth"]["files"], identity["seg"]["files"]) == (1, 1)

    # Same command resumes (nothing to do); other maps are another run.
    assert run(out, photos, depth=depth, seg=seg, seed=2, config=config).rendered == 0
    with pytest.raises(SynthError, match=r"backgrounds: existing 3 files .* with 1 depth maps"):
        run(out, photos, seg=seg, seed=2)


def test_corrupt_map_is_counted_named_and_photo_still_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(panels(120, 160, 0)).save(photos / "a.png")
    depth = tmp_path / "depth"
    depth.mkdir()
    (depth / "a.npy").write_bytes(b"\x93NUMPY garbage")
    with caplog.at_level(logging.WARNING, logger="synthloc.synth.runner"):
        report = run(tmp_path / "ds", photos, depth=depth, count=2, shard_size=2)
    assert (report.written, report.failed_maps, report.with_depth) == (2, 2, 0)
    assert report.failed_backgrounds == 0 and report.bad_backgrounds == {}
    message = report.bad_maps["depth:a.png"]
    assert str(depth / "a.npy") in message and "unreadable map" in message
    assert caplog.text.count(str(depth / "a.npy")) == 1  # warned once per file
    got = records(tmp_path / "ds")
    assert [r["failed_maps"] for r in got] == [["depth:a.png"]] * 2
    assert all(r["background"] == "a.png" and r["has_depth"] is False for r in got)
    assert sum(len(r["words"]) for r in got) > 0  # rendered without the depth
    assert "failed maps 2 (1 files)" in report.summary()
    assert read_manifest(tmp_path / "ds")["counts"]["bad_maps"] == report.bad_maps


def test_map_folder_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(panels(120, 160, 0)).save(photos / "a.png")
    with pytest.raises(SynthError, match="give a backgrounds folder"):
        background_source(None, depth=photos)
    with pytest.raises(SynthError, match=r"depth: .*missing: not a folder"):
        background_source(photos, depth=tmp_path / "missing")
    with pytest.raises(SynthError, match=r"seg: .* contains the backgrounds folder"):
        background_source(photos, seg=photos)
    with pytest.raises(SynthError, match="contains the backgrounds folder"):
        background_source(photos, depth=tmp_path)
    args = ["synth", "--backgrounds", str(photos), "--count", "1", "--out", str(tmp_path / "o")]
    assert main([*args, "--depth", str(tmp_path / "missing")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err


def test_cli_with_dset_h5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dset = tmp_path / "dset.h5"
    make_dset(dset)
    out = tmp_path / "cli"
    args = ["synth", "--backgrounds", str(dset), "--count", "2", "--out", str(out)]
    assert main([*args, "--size", "128", "--seed", "1", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("written 2 (2 rendered, 0 resumed), failed backgrounds 0")
    assert ", with seg 2" in line
    assert read_manifest(out)["backgrounds"]["files"] == 3


# --------------------------------------------------------------------------- training


def test_on_the_fly_training_stream_uses_dset_and_map_folders(tmp_path: Path) -> None:
    """``kind: synth`` sources read what ``synthloc synth`` reads, sample for sample."""
    from synthloc.data.datasets import OnTheFlySynthesis
    from synthloc.synth.runner import render_sample

    config = small_config()
    dset = tmp_path / "dset.h5"
    make_dset(dset)
    photos = tmp_path / "photos"
    make_photo_folder(photos)
    depth, seg = photos / "maps" / "depth", photos / "maps" / "seg"
    for backgrounds, maps in ((dset, {}), (photos, {"depth": depth, "seg": seg})):
        source = background_source(backgrounds, maps.get("depth"), maps.get("seg"))
        stream = OnTheFlySynthesis(
            backgrounds, config, seed=SEED, depth=maps.get("depth"), seg=maps.get("seg")
        )
        for index in range(4):
            got = stream[index]
            want = render_sample(SEED, index, config, source).sample
            assert got.image.tobytes() == want.image.tobytes()
            assert got.words == want.words and got.name == want.name
            np.testing.assert_array_equal(got.word_quads, want.word_quads)
    with pytest.raises(ValueError, match="depth and seg folders apply to a folder of photos"):
        OnTheFlySynthesis(dset, config, seed=1, depth=depth)
    with pytest.raises(ValueError, match="depth and seg maps apply to 'synth' sources"):
        SourceConfig(kind="shards", path="x", depth="d")
