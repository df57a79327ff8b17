"""Background photos: discovery, robust loading, optional depth/segmentation, dset.h5 input.

A :class:`Background` is what the engine renders into: an RGB image whose long side equals the
configured size, plus optional per-pixel depth and segmentation labels aligned with it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MIN_BACKGROUND_SIDE = 64


class BackgroundError(ValueError):
    """A background (or its depth/segmentation) cannot be used; the message names the file."""


@dataclass
class Background:
    """An image to render text into.

    image: uint8 [H, W, 3] RGB, resized so that max(H, W) == the configured size.
    depth: float32 [H, W] (larger = farther) or None.
    seg: int32 [H, W] region labels (0 may be used for "no region") or None.
    name: an identifier (file stem, or the dset.h5 key).
    """

    image: np.ndarray
    depth: np.ndarray | None = None
    seg: np.ndarray | None = None
    name: str = ""


def list_backgrounds(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted; raises if the folder does not exist."""
    root = Path(folder)
    if not root.is_dir():
        raise BackgroundError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _target_hw(height: int, width: int, size: int) -> tuple[int, int]:
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(image: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if image.shape[:2] == hw:
        return image
    if nearest:
        interp = cv2.INTER_NEAREST
    elif hw[0] < image.shape[0]:
        interp = cv2.INTER_AREA  # downscaling: area averaging avoids aliasing
    else:
        interp = cv2.INTER_LINEAR
    return cv2.resize(image, (hw[1], hw[0]), interpolation=interp)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 [H, W, 3] RGB (16-bit and float rescaled, alpha over grey)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit data is nominally 0..65535 (Pillow opens 16-bit PNGs as mode "I");
        # 32-bit/float data that stays within 0..255 is taken as 8-bit values.
        top = 65535.0 if img.mode.startswith("I;16") or float(np.max(arr)) > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        grey = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        img = Image.alpha_composite(grey, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _read_array(path: Path) -> np.ndarray:
    """A 2-D map from .npy, .h5/.hdf5 (first dataset) or an image file."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
            if not names:
                raise BackgroundError(f"{path}: no dataset inside")
            arr = np.asarray(f[names[0]][()])
    else:
        with Image.open(path) as img:
            arr = np.asarray(img)
    arr = np.squeeze(arr)
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise BackgroundError(f"{path}: expected a 2-D map, got shape {arr.shape}")
    return arr


def load_background(
    path: str | Path,
    size: int,
    depth_path: str | Path | None = None,
    seg_path: str | Path | None = None,
) -> Background:
    """Load one background photo (and optional depth / segmentation maps).

    Handles grayscale, RGBA/LA/palette (alpha composited over mid grey), 16-bit and float
    images, and EXIF orientation. Raises :class:`BackgroundError` ``"<path>: <problem>"`` for
    missing, corrupt, truncated or tiny (< 64 px side) files.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) on some malformed EXIF blocks; they are harmless here.
            warnings.simplefilter("ignore")
            with Image.open(p) as img:
                img.load()
                oriented = ImageOps.exif_transpose(img)
                rgb = _pil_to_rgb(oriented if oriented is not None else img)
    except FileNotFoundError as exc:
        raise BackgroundError(f"{p}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BackgroundError(f"{p}: unreadable or corrupt image ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise BackgroundError(f"{p}: image too large ({exc})") from exc
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_BACKGROUND_SIDE:
        raise BackgroundError(f"{p}: too small ({w}x{h} px, need >= {MIN_BACKGROUND_SIDE})")
    hw = _target_hw(h, w, size)
    image = _resize(rgb, hw)
    depth = seg = None
    if depth_path is not None:
        depth = _load_map(Path(depth_path), hw, nearest=False).astype(np.float32)
    if seg_path is not None:
        seg = _load_map(Path(seg_path), hw, nearest=True).astype(np.int32)
    return Background(image=image, depth=depth, seg=seg, name=p.stem)


def _load_map(path: Path, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    try:
        arr = _read_array(path)
    except BackgroundError:
        raise
    except (OSError, ValueError, SyntaxError, KeyError) as exc:
        raise BackgroundError(f"{path}: unreadable map ({exc})") from exc
    arr = arr.astype(np.int32 if nearest else np.float32)
    if nearest:
        # cv2 cannot resize int32 with INTER_NEAREST on all builds; go through float32 exactly.
        return _resize(arr.astype(np.float32), hw, nearest=True).astype(np.int32)
    return _resize(arr, hw)


def _dset_map(arr: np.ndarray, hw_original: tuple[int, int]) -> np.ndarray:
    """SynthText stores maps transposed ([C, W, H] or [W, H]); return [H, W]."""
    arr = np.asarray(arr)
    if arr.ndim == 3:
        t = arr.T  # -> [H, W, C]
        # SynthText's depth has two channels and uses the second one.
        arr = t[:, :, 1] if t.shape[2] > 1 else t[:, :, 0]
    elif arr.ndim == 2 and arr.shape != hw_original and arr.T.shape == hw_original:
        arr = arr.T
    if arr.ndim != 2:
        raise BackgroundError(f"unexpected map shape {arr.shape}")
    return arr


def iter_dset_h5(path: str | Path, size: int) -> Iterator[Background]:
    """Backgrounds from SynthText's input ``dset.h5`` (groups ``image/``, ``depth/``, ``seg/``).

    Images whose data cannot be used are skipped with a warning naming the key.
    """
    import h5py

    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise BackgroundError(f"{p}: cannot open as HDF5 ({exc})") from exc
    with f:
        if "image" not in f:
            raise BackgroundError(f"{p}: no 'image' group (not a SynthText dset.h5)")
        for key in sorted(f["image"].keys()):
            try:
                yield _dset_background(f, key, size)
            except BackgroundError as exc:
                warnings.warn(f"{p}:{key}: {exc}", stacklevel=2)


def _dset_background(f: object, key: str, size: int) -> Background:
    group = f  # h5py.File, typed loosely to keep h5py an optional import
    raw = np.asarray(group["image"][key][()])  # type: ignore[index]
    if raw.ndim == 2:
        raw = np.repeat(raw[:, :, None], 3, axis=2)
    if raw.ndim != 3 or raw.shape[2] < 3 or min(raw.shape[:2]) < MIN_BACKGROUND_SIDE:
        raise BackgroundError(f"unusable image shape {raw.shape}")
    if raw.dtype != np.uint8:
        raw = np.clip(raw, 0, 255).astype(np.uint8)
    raw = np.ascontiguousarray(raw[:, :, :3])
    hw0 = raw.shape[:2]
    hw = _target_hw(hw0[0], hw0[1], size)
    image = _resize(raw, hw)
    depth = seg = None
    if "depth" in group and key in group["depth"]:  # type: ignore[operator,index]
        d = _dset_map(group["depth"][key][()], hw0).astype(np.float32)  # type: ignore[index]
        depth = _resize(d, hw)
    if "seg" in group and key in group["seg"]:  # type: ignore[operator,index]
        s = _dset_map(group["seg"][key][()], hw0).astype(np.float32)  # type: ignore[index]
        seg = _resize(s, hw, nearest=True).astype(np.int32)
    return Background(image=image, depth=depth, seg=seg, name=Path(key).stem)
