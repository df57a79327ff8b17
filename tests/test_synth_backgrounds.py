"""Background loading: formats, bad files, dset.h5 input, corpus handling."""

from __future__ import annotations

import io
import itertools
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from synthloc.synth import (
    BackgroundError,
    SynthConfig,
    iter_dset_h5,
    list_backgrounds,
    load_background,
    render_scene,
)
from synthloc.synth.backgrounds import (
    DEPTH_SUFFIXES,
    SEG_SUFFIXES,
    DsetReader,
    index_maps,
    map_key,
)
from synthloc.synth.text_source import TextSource, strip_gutenberg


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), 128 + 0 * x], axis=2)


def test_list_backgrounds_is_sorted_recursive_and_filtered(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ["z.jpg", "a.PNG", "b/c.webp", "b/d.bmp", "notes.txt", "e.jpeg"]:
        (tmp_path / name).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in list_backgrounds(tmp_path)]
    assert names == ["a.PNG", "b/c.webp", "b/d.bmp", "e.jpeg", "z.jpg"]
    with pytest.raises(BackgroundError, match="not a folder"):
        list_backgrounds(tmp_path / "missing")


def test_resize_long_side_and_rgb(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.fromarray(_gradient(150, 300).astype(np.uint8)).save(path)
    bg = load_background(path, 200)
    assert bg.image.shape == (100, 200, 3) and bg.image.dtype == np.uint8
    assert bg.name == "wide"


def test_grayscale_rgba_palette_and_16bit(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((80, 100), 90, np.uint8), mode="L").save(gray)
    bg = load_background(gray, 100)
    assert bg.image.shape == (80, 100, 3) and np.all(bg.image == 90)

    rgba = tmp_path / "rgba.png"
    arr = np.zeros((80, 100, 4), np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = 255
    arr[:, :50, 3] = 0  # transparent half composites over mid grey
    Image.fromarray(arr, mode="RGBA").save(rgba)
    img = load_background(rgba, 100).image
    assert img.shape == (80, 100, 3)
    assert tuple(img[40, 80]) == (200, 0, 0) and tuple(img[40, 10]) == (128, 128, 128)

    pal = tmp_path / "pal.png"
    Image.fromarray(_gradient(80, 100).astype(np.uint8)).convert("P").save(pal)
    assert load_background(pal, 100).image.shape == (80, 100, 3)

    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.full((80, 100), 32768, np.uint16)).save(sixteen)
    with Image.open(sixteen) as im:
        assert im.mode.startswith("I")
    img = load_background(sixteen, 100).image
    assert img.shape == (80, 100, 3) and abs(int(img[0, 0, 0]) - 128) <= 1


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((80, 120, 3), np.uint8)
    arr[:, :60] = 255  # left half white in the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    bg = load_background(path, 120)
    assert bg.image.shape == (120, 80, 3)  # portrait after orientation
    assert bg.image[10, 40].mean() > 200 and bg.image[110, 40].mean() < 50  # white on top


@pytest.mark.parametrize("problem", ["corrupt", "truncated", "tiny", "missing", "empty"])
def test_bad_backgrounds_raise_naming_the_file(tmp_path: Path, problem: str) -> None:
    path = tmp_path / f"{problem}.png"
    if problem == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif problem == "truncated":
        buf = io.BytesIO()
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif problem == "tiny":
        Image.fromarray(np.zeros((40, 300, 3), np.uint8)).save(path)
    elif problem == "empty":
        path.write_bytes(b"")
    with pytest.raises(BackgroundError) as info:
        load_background(path, 256)
    assert str(path) in str(info.value)


def test_depth_and_seg_maps_are_resized_with_the_image(tmp_path: Path) -> None:
    img = tmp_path / "img.png"
    Image.fromarray(_gradient(100, 200).astype(np.uint8)).save(img)
    np.save(tmp_path / "depth.npy", np.full((50, 100), 3.0, np.float32))
    seg = np.zeros((100, 200), np.uint8)
    seg[:, 100:] = 7
    Image.fromarray(seg).save(tmp_path / "seg.png")
    bg = load_background(img, 400, tmp_path / "depth.npy", tmp_path / "seg.png")
    assert bg.depth is not None and bg.depth.shape == (200, 400) and np.allclose(bg.depth, 3.0)
    assert bg.seg is not None and bg.seg.shape == (200, 400)
    assert set(np.unique(bg.seg)) == {0, 7}


def test_list_backgrounds_leaves_out_map_folders(tmp_path: Path) -> None:
    for name in ["a.jpg", "depth/a.png", "seg/sub/a.png", "sub/b.png", "depthless/c.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    outside = tmp_path.parent / "elsewhere"
    names = [
        p.relative_to(tmp_path).as_posix()
        for p in list_backgrounds(tmp_path, exclude=[tmp_path / "depth", "seg", outside])
    ]
    # "seg" is relative to the working directory, not to the folder: it excludes nothing.
    assert names == ["a.jpg", "depthless/c.png", "seg/sub/a.png", "sub/b.png"]
    names = [
        p.relative_to(tmp_path).as_posix()
        for p in list_backgrounds(tmp_path, exclude=[tmp_path / "depth", tmp_path / "seg" / "."])
    ]
    assert names == ["a.jpg", "depthless/c.png", "sub/b.png"]


def test_index_maps_keys_by_relative_stem_with_suffix_priority(tmp_path: Path) -> None:
    assert map_key(tmp_path / "street" / "a.b.JPG", tmp_path) == "street/a.b"
    for name in ["x.png", "x.npy", "street/a.b.PNG", "y.h5", "notes.txt", "seg_only.tif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    depth = index_maps(tmp_path, DEPTH_SUFFIXES)
    assert {k: v.relative_to(tmp_path).as_posix() for k, v in depth.items()} == {
        "x": "x.npy",  # .npy comes before .png
        "street/a.b": "street/a.b.PNG",
        "y": "y.h5",
        "seg_only": "seg_only.tif",
    }
    assert "y" not in index_maps(tmp_path, SEG_SUFFIXES)
    with pytest.raises(BackgroundError, match="missing: not a folder"):
        index_maps(tmp_path / "missing", DEPTH_SUFFIXES)


def test_unusable_maps_are_reported_or_raised(tmp_path: Path) -> None:
    img = tmp_path / "img.png"
    Image.fromarray(_gradient(100, 200).astype(np.uint8)).save(img)
    bad_depth = tmp_path / "depth.npy"
    bad_depth.write_bytes(b"\x93NUMPY not really")
    seg = tmp_path / "seg.npy"
    np.save(seg, np.full((100, 200), 3, np.int64))
    errors: dict[str, str] = {}
    bg = load_background(img, 100, bad_depth, seg, map_errors=errors)
    assert bg.depth is None and bg.seg is not None and np.all(bg.seg == 3)
    assert list(errors) == ["depth"] and str(bad_depth) in errors["depth"]
    with pytest.raises(BackgroundError, match=r"depth\.npy: unreadable map"):
        load_background(img, 100, bad_depth, seg)
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 5), np.float32))
    with pytest.raises(BackgroundError, match=r"empty\.npy: empty map"):
        load_background(img, 100, depth_path=empty)
    errors.clear()
    # A bad photo raises even when map errors are collected: there is nothing to render into.
    with pytest.raises(BackgroundError, match="file not found"):
        load_background(tmp_path / "gone.png", 100, seg_path=seg, map_errors=errors)
    assert errors == {}


def test_dset_reader_opens_lazily_and_pickles_without_its_handle(tmp_path: Path) -> None:
    path = tmp_path / "dset.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("image/b.jpg", data=np.full((80, 100, 3), 90, np.uint8))
        f.create_dataset("image/a.jpg", data=np.full((80, 100), 30, np.uint8))
        f.create_dataset("seg/a.jpg", data=np.ones((80, 100), np.float32))
        f.create_dataset("depth/b.jpg", data=np.zeros(5, np.float32))  # not a map
    with DsetReader(path) as reader:
        assert reader.keys() == ["a.jpg", "b.jpg"]
        copy = pickle.loads(pickle.dumps(reader))  # an open handle would not pickle
        a = copy.load("a.jpg", 50)
        assert a.image.shape == (40, 50, 3) and np.all(a.image == 30) and a.depth is None
        assert a.seg is not None and a.seg.shape == (40, 50)
        errors: dict[str, str] = {}
        b = reader.load("b.jpg", 50, errors)
        assert b.depth is None and b.seg is None
        assert f"{path}:depth/b.jpg: unusable map" in errors["depth"]
        with pytest.raises(BackgroundError, match=r"dset\.h5:image/zz\.jpg: unreadable"):
            reader.load("zz.jpg", 50)
        copy.close()
    with pytest.warns(UserWarning, match=r"depth/b\.jpg"):
        assert [bg.name for bg in iter_dset_h5(path, 50)] == ["a"]


def test_dset_h5_layout(tmp_path: Path) -> None:
    path = tmp_path / "dset.h5"
    h, w = 150, 200
    rng = np.random.default_rng(0)
    image = np.full((h, w, 3), 170, np.uint8) + rng.integers(0, 3, (h, w, 3), dtype=np.uint8)
    depth = np.full((h, w), 4.0, np.float32)
    seg = np.ones((h, w), np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("image/scene.jpg", data=image)
        # SynthText stores depth as [2, W, H] (transposed, two channels) and seg as [W, H]...
        f.create_dataset("depth/scene.jpg", data=np.stack([depth, depth]).transpose(0, 2, 1))
        f.create_dataset("seg/scene.jpg", data=seg.T)
        f.create_dataset("image/small.jpg", data=np.zeros((20, 20, 3), np.uint8))  # skipped
    with pytest.warns(UserWarning, match="small.jpg"):
        bgs = list(iter_dset_h5(path, 100))
    assert len(bgs) == 1
    bg = bgs[0]
    assert bg.name == "scene" and bg.image.shape == (75, 100, 3)
    assert bg.depth is not None and bg.depth.shape == (75, 100)
    assert bg.seg is not None and bg.seg.shape == (75, 100)
    s = render_scene(bg, SynthConfig(size=100, min_font_px=10), np.random.default_rng(0))
    assert s.image.shape == bg.image.shape


def test_gutenberg_header_and_footer_are_stripped(tmp_path: Path) -> None:
    text = (
        "The Project Gutenberg eBook licence blah\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\n"
        "Real words here\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\n"
        "more licence text"
    )
    assert strip_gutenberg(text).split() == ["Real", "words", "here"]
    corpus = tmp_path / "c.txt"
    corpus.write_text(text)
    source = TextSource(corpus)
    block = source.sample(np.random.default_rng(0), 1, 40, frozenset("Realwordsh"))
    assert block.words and set(block.words) <= {"Real", "words", "here"}
    with pytest.raises(ValueError, match=r"missing\.txt"):
        TextSource(tmp_path / "missing.txt")


def test_word_list_corpus_is_sampled_word_by_word(tmp_path: Path) -> None:
    corpus = tmp_path / "words"
    corpus.write_text("\n".join(f"w{i:04d}" for i in range(2000)))
    source = TextSource(corpus)
    assert source.word_list
    block = source.sample(np.random.default_rng(0), 1, 60, frozenset("w0123456789 "), 5)
    numbers = [int(w[1:]) for w in block.words]
    assert len(numbers) >= 2
    # Consecutive reading would give neighbours in alphabetical order.
    assert any(abs(a - b) > 5 for a, b in itertools.pairwise(numbers))


def test_words_with_unrenderable_characters_are_skipped_not_altered(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("Le café était “très” bon — don’t panic naïve résumé ok. " * 30)
    source = TextSource(corpus)
    allowed = frozenset("abcdefghijklmnopqrstuvwxyzLe.' ")
    seen: set[str] = set()
    for seed in range(20):
        seen.update(source.sample(np.random.default_rng(seed), 3, 40, allowed, 5).words)
    assert seen <= {"Le", "bon", "don't", "panic", "ok."}
    assert "don't" in seen  # typographic apostrophe normalised to ASCII


def test_corpus_folder_reads_every_text_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha " * 50)
    (tmp_path / "b.txt").write_text(
        "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + "beta " * 50
    )
    (tmp_path / "skip.md").write_text("gamma " * 50)
    source = TextSource(tmp_path)
    seen: set[str] = set()
    for seed in range(30):
        seen.update(
            source.sample(np.random.default_rng(seed), 1, 30, frozenset("alphbetgm "), 3).words
        )
    assert seen == {"alpha", "beta"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.txt files"):
        TextSource(tmp_path / "empty")
