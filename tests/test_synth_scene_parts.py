"""The parts added for incidental scene text: learned colours, signs, sky filter, lexicon,
signage fonts, camera, negatives and don't-care text, the paper preset, text-carrying
backgrounds."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthloc.data.sample import Sample
from synthloc.synth import Background, SceneRenderer, SynthConfig, list_backgrounds
from synthloc.synth.backgrounds import photos_with_text
from synthloc.synth.camera import degrade, motion_kernel
from synthloc.synth.colour import COLOUR_TABLE, ColourPairs, rgb_to_lab
from synthloc.synth.config import PAPER_SETTINGS
from synthloc.synth.fonts import signage_weight
from synthloc.synth.lexicon import sample_block, scene_words
from synthloc.synth.regions import looks_like_sky
from synthloc.synth.signs import quad_coverage
from synthloc.synth.sprites import SpriteBank

SIZE = 320
ROOT = Path(__file__).resolve().parents[1]


def _plain_background(seed: int = 0) -> Background:
    rng = np.random.default_rng(seed)
    img = np.empty((SIZE * 3 // 4, SIZE, 3), np.float32)
    img[:, : SIZE // 2] = (190, 180, 160)
    img[:, SIZE // 2 :] = (60, 80, 110)
    img += rng.normal(0, 1.5, img.shape)
    return Background(image=np.clip(img, 0, 255).astype(np.uint8), name="plain")


def _quad_mask(quads: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(hw, np.uint8)
    for q in quads:
        cv2.fillPoly(mask, [np.round((q - 0.5) * 16).astype(np.int32)], 1, shift=4)
    return mask > 0


def test_shipped_colour_table_is_small_and_valid() -> None:
    assert COLOUR_TABLE.stat().st_size < 200 * 1024
    pairs = ColourPairs()
    assert len(pairs.text_lab) > 1000
    contrast = np.linalg.norm(pairs.text_lab - pairs.background_lab, axis=1)
    # Real text contrasts with its background, but often not by much.
    assert 15 < float(np.median(contrast)) < 60


def test_learned_colour_matches_the_surface_and_keeps_contrast() -> None:
    pairs = ColourPairs()
    for surface in ([240, 240, 235], [20, 30, 40], [180, 40, 40]):
        a = pairs.pick(np.random.default_rng(1), np.array(surface, np.float32), 18.0)
        b = pairs.pick(np.random.default_rng(1), np.array(surface, np.float32), 18.0)
        assert np.array_equal(a, b)
        lab_s = rgb_to_lab(np.array(surface, np.float32)[None])[0]
        lab_t = rgb_to_lab(a[None])[0]
        assert np.linalg.norm(lab_t - lab_s) >= 18.0 - 3.0  # gamut clipping may cost a little
    # On white (L 97), real text is darker than the surface (dark print on light signs).
    lights = [
        float(rgb_to_lab(pairs.pick(np.random.default_rng(s), np.full(3, 245.0), 18)[None])[0, 0])
        for s in range(20)
    ]
    assert np.median(lights) < 80


def test_colour_table_builder_separates_text_from_background() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_colour_table", ROOT / "benchmarks" / "build_colour_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    crop = np.full((30, 90, 3), (230, 220, 60), np.uint8)  # yellow plate
    cv2.putText(crop, "SALE", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (20, 20, 120), 3)
    quad = np.array([[0, 0], [89, 0], [89, 29], [0, 29]], np.float64)
    pair = module.crop_pair(crop, quad, 3, seed=0)
    assert pair is not None
    text_lab, background_lab = pair
    expected_bg = rgb_to_lab(np.array([[230, 220, 60]], np.float32))[0]
    assert np.linalg.norm(background_lab - expected_bg) < 5
    assert text_lab[0] < background_lab[0] - 30  # dark text on the light plate


def test_lexicon_is_seeded_and_looks_like_signs() -> None:
    a = scene_words(np.random.default_rng(3), 400)
    assert a == scene_words(np.random.default_rng(3), 400)
    assert a != scene_words(np.random.default_rng(4), 400)
    letters = [w for w in a if any(c.isalpha() for c in w)]
    capitals = np.mean([w.upper() == w for w in letters])
    digits = np.mean([any(c.isdigit() for c in w) for w in a])
    assert 0.45 < capitals < 0.85 and 0.03 < digits < 0.25
    allowed = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    block = sample_block(np.random.default_rng(0), 3, 12, allowed, 4, 8, single_word=False)
    assert block.lines
    for line in block.lines:
        assert len(" ".join(line)) <= 12
        assert all(set(w) <= allowed and len(w) <= 8 for w in line)


def test_signage_fonts_are_favoured() -> None:
    assert signage_weight("/f/RobotoCondensed-Bold.ttf") > 4 * signage_weight(
        "/f/DejaVuSerif-Italic.ttf"
    )
    assert signage_weight("/f/DejaVuSans-Bold.ttf") > signage_weight("/f/DejaVuSans.ttf")
    assert signage_weight("/f/Lato-Hairline.ttf") < signage_weight("/f/Lato-Regular.ttf")


def test_camera_is_seeded_keeps_geometry_and_changes_pixels() -> None:
    image = np.full((96, 128, 3), 200, np.uint8)
    image[40:56, 50:78] = 30  # a dark block
    a = degrade(image, np.random.default_rng(7))
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, degrade(image, np.random.default_rng(7)))
    changed = [
        not np.array_equal(degrade(image, np.random.default_rng(s)), image) for s in range(8)
    ]
    assert all(changed)
    for s in range(8):
        dark = degrade(image, np.random.default_rng(s)).mean(axis=2) < 115
        ys, xs = np.nonzero(dark)
        # Blur and rescaling spread the block but never move it.
        assert abs(xs.mean() - 63.5) < 1.0 and abs(ys.mean() - 47.5) < 1.0
    k = motion_kernel(5.0, 0.0)
    assert abs(float(k.sum()) - 1.0) < 1e-5 and k.shape[0] == k.shape[1]


def test_sky_test_rejects_smooth_blue_top_regions_only() -> None:
    h, w = 96, 128
    small = np.full((h, w, 3), (90, 140, 210), np.uint8)  # clear blue sky colour
    grad = np.zeros((h, w), np.float32)
    top = np.zeros((h, w), np.uint8)
    top[: h // 3] = 1
    bottom = np.zeros((h, w), np.uint8)
    bottom[-h // 3 :] = 1
    assert looks_like_sky(small, top, grad)
    assert not looks_like_sky(small, bottom, grad)  # a blue wall low in the photo
    assert not looks_like_sky(small, top, grad + 0.1)  # textured: not sky
    brown = np.full((h, w, 3), (120, 80, 40), np.uint8)
    assert not looks_like_sky(brown, top, grad)


def test_sign_panels_are_painted_around_the_text() -> None:
    base = dict(size=SIZE, camera=False, max_illegible=0, p_no_text=0.0, sky_filter=False)
    with_signs = SceneRenderer(SynthConfig(**base, p_sign=1.0))  # type: ignore[arg-type]
    without = SceneRenderer(SynthConfig(**base, p_sign=0.0))  # type: ignore[arg-type]
    outside_with = outside_without = 0
    for seed in range(3):
        bg = _plain_background(seed)
        for renderer, is_sign in ((with_signs, True), (without, False)):
            s = renderer.render(bg, np.random.default_rng(seed))
            assert len(s.words) > 0
            changed = np.abs(s.image.astype(int) - bg.image.astype(int)).max(axis=2) > 12
            grown = cv2.dilate(
                _quad_mask(s.word_quads, changed.shape).astype(np.uint8), np.ones((7, 7), np.uint8)
            )
            outside = int((changed & (grown == 0)).sum())
            if is_sign:
                outside_with += outside
            else:
                outside_without += outside
    # Panels change pixels around the words; without them (and without shadows and borders
    # reaching far) little changes outside the words.
    assert outside_with > 5 * max(outside_without, 50)
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], np.float64)
    # 400 px of area; the supersampled fill counts its boundary samples too (81^2 / 16).
    assert abs(float(quad_coverage(square, (40, 40)).sum()) - 400) < 12


def test_backgrounds_without_a_surface_get_text_on_made_up_signs() -> None:
    # Coarse noise everywhere: no smooth surface survives the region analysis.
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (SIZE * 3 // 16, SIZE // 4, 3)).astype(np.uint8)
    image = cv2.resize(noise, (SIZE, SIZE * 3 // 4), interpolation=cv2.INTER_NEAREST)
    busy = Background(image=image, name="busy")
    base = dict(size=SIZE, camera=False, max_illegible=0, p_no_text=0.0)
    fallback = SceneRenderer(SynthConfig(**base))  # type: ignore[arg-type]
    assert fallback.analyse(busy).regions == []
    without = SceneRenderer(SynthConfig(**base, fallback_signs=False))  # type: ignore[arg-type]
    assert without.render(busy, np.random.default_rng(0)).words == []
    for seed in range(3):
        s = fallback.render(busy, np.random.default_rng(seed))
        assert len(s.words) > 0
        # The words sit on painted panels: flat colour right around them, not the noise.
        words = _quad_mask(s.word_quads, busy.image.shape[:2])
        ring = cv2.dilate(words.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        ring &= ~words
        changed = np.abs(s.image.astype(int) - busy.image.astype(int)).max(axis=2) > 12
        assert changed[ring].mean() > 0.6
    assert SynthConfig(paper=True).fallback_signs is False


def test_negatives_and_dont_care_text() -> None:
    empty = SceneRenderer(SynthConfig(size=SIZE, p_no_text=1.0))
    s = empty.render(_plain_background(), np.random.default_rng(0))
    assert s.words == [] and s.image.shape == _plain_background().image.shape
    cfg = SynthConfig(size=SIZE, max_illegible=8, camera=False)
    renderer = SceneRenderer(cfg)
    n_dont_care = 0
    for seed in range(4):
        s = renderer.render(_plain_background(seed), np.random.default_rng(seed))
        care = np.array([w != "###" for w in s.words], bool)
        assert np.array_equal(s.ignore, ~care)
        n_dont_care += int((~care).sum())
        # One char box per character, "###" counting three.
        assert len(s.char_quads) == sum(len(w) for w in s.words)
        if (~care).any() and care.any():
            _, _, heights = _heights(s.word_quads)
            assert np.median(heights[~care]) < np.median(heights[care])
    assert n_dont_care > 0


def _heights(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    left = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
    right = np.linalg.norm(quads[:, 2] - quads[:, 1], axis=1)
    return left, right, 0.5 * (left + right)


def test_paper_preset_turns_every_new_part_off() -> None:
    paper = SynthConfig(paper=True)
    for name, value in PAPER_SETTINGS.items():
        assert getattr(paper, name) == value
    again = SynthConfig(**dataclasses.asdict(paper))
    assert again == paper
    renderer = SceneRenderer(paper)
    for seed in range(3):
        s = renderer.render(_plain_background(seed), np.random.default_rng(seed))
        assert "###" not in s.words
    with pytest.raises(ValueError, match="sprite_dir"):
        SynthConfig(p_sprite=0.5)
    with pytest.raises(ValueError, match="max_illegible"):
        SynthConfig(max_illegible=-1)


def _ink_inside_quads(renderer: SceneRenderer, s: Sample) -> tuple[int, int]:
    """(glyph pixels inside the word quads grown by 1 px, all glyph pixels) of the scene
    ``renderer`` just drew (its ``ink_log``; coverage >= 0.25 counts as ink)."""
    hw = s.image.shape[:2]
    ink = np.zeros(hw, np.float32)
    assert renderer.ink_log is not None
    for x0, y0, cov in renderer.ink_log:
        region = ink[y0 : y0 + cov.shape[0], x0 : x0 + cov.shape[1]]
        np.maximum(region, cov[: region.shape[0], : region.shape[1]], out=region)
    union = cv2.dilate(_quad_mask(s.word_quads, hw).astype(np.uint8), np.ones((3, 3), np.uint8))
    text = ink >= 0.25
    return int((text & (union > 0)).sum()), int(text.sum())


def test_default_engine_ground_truth_is_tight_before_the_camera() -> None:
    """Every drawn glyph pixel (blur included) lies in its word quads, all parts on."""
    renderer = SceneRenderer(SynthConfig(size=SIZE, sky_filter=False))
    inside = total = 0
    for seed in range(4):
        renderer.ink_log = []
        s = renderer.render(_plain_background(seed), np.random.default_rng(seed))
        got, drawn = _ink_inside_quads(renderer, s)
        inside, total = inside + got, total + drawn
    assert total > 500
    assert inside / total >= 0.97, inside / total


def test_vertical_text_reads_up_or_down_with_tight_quads() -> None:
    """p_vertical 1: every legible word reads along the image's y axis, mostly bottom to top,
    and its glyphs stay inside its quad."""
    renderer = SceneRenderer(
        SynthConfig(size=SIZE, sky_filter=False, p_vertical=1.0, max_illegible=0, p_no_text=0)
    )
    directions = []
    inside = total = 0
    for seed in range(6):
        renderer.ink_log = []
        s = renderer.render(_plain_background(seed), np.random.default_rng(seed))
        for quad in s.word_quads:
            reading = (quad[1] - quad[0]) + (quad[2] - quad[3])  # top and bottom edges
            directions.append(reading / np.linalg.norm(reading))
        got, drawn = _ink_inside_quads(renderer, s)
        inside, total = inside + got, total + drawn
    d = np.array(directions)
    assert len(d) >= 6
    # Within the engine's rotation (20 degrees plus jitter) of vertical.
    assert np.all(np.abs(d[:, 1]) > np.cos(np.radians(40)))
    assert np.mean(d[:, 1] < 0) > 0.5  # bottom to top (image y grows downwards)
    assert total > 200 and inside / total >= 0.97
    with pytest.raises(ValueError, match="p_vertical"):
        SynthConfig(p_vertical=1.5)


def test_backgrounds_flagged_with_text_are_skipped(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "sub/c.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), np.zeros((70, 70, 3), np.uint8))
    (tmp_path / "manifest.tsv").write_text(
        "path\tsource\tocr_words(tesseract)\na.png\tx\t\nb.png\tx\tSALE:91\nsub/c.png\tx\tnot_scanned\n",
        encoding="utf-8",
    )
    assert photos_with_text(tmp_path) == {"b.png", "sub/c.png"}
    assert [p.name for p in list_backgrounds(tmp_path)] == ["a.png"]
    assert len(list_backgrounds(tmp_path, skip_text=False)) == 3
    # The engine skips them by default; its paper configuration keeps every photo, so that
    # SynthConfig(paper=True) draws the backgrounds the original engine drew for a seed.
    from synthloc.synth.sourcing import background_source

    default = background_source(tmp_path, skip_text=SynthConfig().skip_text_backgrounds)
    paper = background_source(tmp_path, skip_text=SynthConfig(paper=True).skip_text_backgrounds)
    assert default is not None and paper is not None
    assert len(default.names) == 1 and len(paper.names) == 3


def _word_crop_folder(folder: Path) -> None:
    folder.mkdir()
    gt, coords = ['\ufeffword_1.png, "OPEN"'], ["\ufeffword_1.png,2,2,78,2,78,26,2,26"]
    crop = np.full((28, 80, 3), (30, 30, 200), np.uint8)  # BGR: a red plate
    cv2.putText(crop, "OPEN", (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    cv2.imwrite(str(folder / "word_1.png"), crop)
    gt.append('word_2.png, "two words"')  # a space: not a single word, skipped
    coords.append("word_2.png,0,0,40,0,40,20,0,20")
    cv2.imwrite(str(folder / "word_2.png"), crop[:20, :40])
    (folder / "gt.txt").write_text("\r\n".join(gt) + "\r\n", encoding="utf-8")
    (folder / "coords.txt").write_text("\r\n".join(coords) + "\r\n", encoding="utf-8")


def _sprite_config(folder: Path, **overrides: object) -> SynthConfig:
    """Every instance a sprite from ``folder``, on plain backgrounds, nothing else."""
    options: dict[str, object] = {
        "size": SIZE,
        "p_sprite": 1.0,
        "sprite_dir": str(folder),
        "camera": False,
        "max_illegible": 0,
        "p_no_text": 0.0,
        "sky_filter": False,
    }
    return SynthConfig(**{**options, **overrides})  # type: ignore[arg-type]


def test_real_word_sprites_are_pasted_with_exact_quads(tmp_path: Path) -> None:
    folder = tmp_path / "words"
    _word_crop_folder(folder)
    bank = SpriteBank(folder)
    assert bank.words == ["OPEN"]
    sprite = bank.sprite(0)
    assert sprite is not None and sprite.shape == (24, 76, 3)
    renderer = SceneRenderer(_sprite_config(folder))
    pasted = 0
    for seed in range(3):
        bg = _plain_background(seed)
        s = renderer.render(bg, np.random.default_rng(seed))
        assert set(s.words) <= {"OPEN"}
        assert len(s.char_quads) == 4 * len(s.words)
        for quad in s.word_quads:
            own = _quad_mask(quad[None], bg.image.shape[:2])
            inner = cv2.erode(own.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            # Inside the quad the pixels are the sprite's (red plate, white letters).
            red = s.image[inner][:, 0].astype(int) - s.image[inner][:, 2].astype(int)
            white = s.image[inner].min(axis=1) > 150
            assert np.mean((red > 80) | white) > 0.9
            pasted += 1
    assert pasted >= 3
    with pytest.raises(ValueError, match=r"coords\.txt: not found"):
        SpriteBank(tmp_path)
    with pytest.raises(ValueError, match="sprite_dir"):
        SynthConfig(p_sprite=0.3)


def _sprite_heights(folder: Path, max_scale: float, seeds: range) -> list[float]:
    renderer = SceneRenderer(_sprite_config(folder, sprite_max_scale=max_scale))
    heights = []
    for seed in seeds:
        s = renderer.render(_plain_background(seed), np.random.default_rng(seed))
        for q in s.word_quads:  # corners TL, TR, BR, BL: mean of the two side lengths
            heights.append(float(np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2)
    return heights


def test_word_sprites_are_not_enlarged_past_sprite_max_scale(tmp_path: Path) -> None:
    folder = tmp_path / "words"
    _word_crop_folder(folder)  # one 24 px tall crop
    capped = _sprite_heights(folder, 1.0, range(8))
    loose = _sprite_heights(folder, 4.0, range(8))
    assert len(capped) >= 4 and len(loose) >= 4
    # Perspective stretches a side by at most about a quarter.
    assert max(capped) <= 24 * 1.3
    assert max(loose) > 24 * 1.5  # the font-size range alone would enlarge it
    with pytest.raises(ValueError, match="sprite_max_scale must be > 0"):
        SynthConfig(sprite_max_scale=0.0)


def test_seamless_sprites_keep_the_letters_and_lose_the_plate(tmp_path: Path) -> None:
    """sprite_seamless: Poisson cloning keeps the crop's letters but its plate takes the
    surface's colour, so no edge outlines the word's box (alpha pasting keeps the red plate)."""
    folder = tmp_path / "words"
    _word_crop_folder(folder)  # white OPEN on a red plate
    for seamless in (False, True):
        renderer = SceneRenderer(_sprite_config(folder, sprite_seamless=seamless))
        words = 0
        for seed in range(3):
            s = renderer.render(_plain_background(seed), np.random.default_rng(seed))
            for quad in s.word_quads:
                own = _quad_mask(quad[None], s.image.shape[:2]).astype(np.uint8)
                inner = cv2.erode(own, np.ones((3, 3), np.uint8)) > 0
                pixels = s.image[inner].astype(float)
                red = np.mean(pixels[:, 0] - pixels[:, 2] > 80)
                assert (red > 0.5) if not seamless else (red < 0.1), (seamless, red)
                assert pixels.mean(axis=1).std() > 20  # the letters still stand out
                words += 1
        assert words >= 3


def test_clone_warped_alpha_pastes_pictures_too_small_to_clone() -> None:
    """OpenCV's seamlessClone fails on masks a few pixels across (seen on a 2 px wide
    distractor patch); such pictures are alpha-pasted instead of failing the scene."""
    from synthloc.synth.blend import clone_warped
    from synthloc.synth.warp import translation

    image = np.full((40, 40, 3), 100, np.float32)
    clone_warped(image, np.full((14, 2, 3), 200, np.float32), translation(10, 10))
    changed = (image != 100).any(axis=2)
    assert 20 <= changed.sum() <= 14 * 2 + 4 * 2  # the 2 x 14 picture, edges softened
    assert changed[12:22, 10:12].all() and not changed[:, :8].any()


def test_synth_command_paper_preset_and_set_options() -> None:
    """`synthloc synth --paper` is the paper's engine; --set changes one option after it."""
    from synthloc.cli import build_parser
    from synthloc.commands.synth import engine_config

    parser = build_parser()

    def config(*flags: str) -> SynthConfig:
        return engine_config(parser.parse_args(["synth", "--count", "1", "--out", "x", *flags]))

    assert config() == SynthConfig()
    assert config("--paper") == SynthConfig(paper=True)
    no_camera = config("--paper", "--set", "camera=true", "--set", "p_sign=0.5")
    assert no_camera.camera is True and no_camera.p_sign == 0.5
    assert no_camera.p_lexicon == 0.0 and no_camera.line_shrink is False  # still the paper's
    assert config("--set", "learned_colours=false").learned_colours is False
    with pytest.raises(ValueError, match="unknown engine option 'colour'"):
        config("--set", "colour=1")
    with pytest.raises(ValueError, match="p_sign must be in"):
        config("--set", "p_sign=2")
    with pytest.raises(ValueError, match="not of the form"):
        config("--set", "camera")
