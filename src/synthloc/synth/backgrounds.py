"""Background photos: discovery, robust loading, optional depth/segmentation, dset.h5 input.

A :class:`Background` is what the engine renders into: an RGB image whose long side equals the
configured size, plus optional per-pixel depth and segmentation labels aligned with it.

Pairing convention for a folder of photos: the depth (or segmentation) map of
``photos/<rel>/<stem>.<ext>`` is ``depth_dir/<rel>/<stem><suffix>`` with a suffix from
:data:`DEPTH_SUFFIXES` (or :data:`SEG_SUFFIXES`), i.e. the photo's path relative to its folder
without the extension (:func:`map_key`). A photo without such a file simply has no map.
:func:`index_maps` lists a map folder by that key.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MIN_BACKGROUND_SIDE = 64
# Map files paired with photos by stem; when several exist for one photo the earlier suffix wins.
DEPTH_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".h5", ".hdf5")
SEG_SUFFIXES = (".npy", ".png", ".tif", ".tiff")


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


# A backgrounds folder may list its photos in this file: tab-separated, a header row, the
# photo's relative path first and a column named "ocr_words..." holding any words OCR found.
TEXT_MANIFEST = "manifest.tsv"


def photos_with_text(folder: str | Path) -> set[str]:
    """Relative paths (posix) that ``folder``'s manifest.tsv flags as carrying real text.

    A non-empty OCR column flags a photo ("not_scanned" too: unknown is not text-free).
    Real, unannotated text in a background would be learned as background, so such photos
    are left out. No manifest (or no OCR column): an empty set.
    """
    path = Path(folder) / TEXT_MANIFEST
    if not path.is_file():
        return set()
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    if not rows:
        return set()
    columns = [k for k, name in enumerate(rows[0]) if name.strip().lower().startswith("ocr")]
    if not columns:
        return set()
    col = columns[0]
    return {r[0].strip() for r in rows[1:] if len(r) > col and r[col].strip()}


def list_backgrounds(
    folder: str | Path, exclude: Iterable[str | Path] = (), skip_text: bool = True
) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted; raises if the folder does not exist.

    exclude: folders whose files are left out, e.g. depth or segmentation maps (PNG too) kept
    inside the backgrounds folder. Folders outside ``folder`` change nothing.
    skip_text: leave out photos that the folder's manifest.tsv flags as carrying text
    (:func:`photos_with_text`).
    """
    root = Path(folder)
    if not root.is_dir():
        raise BackgroundError(f"{root}: not a folder")
    # Compared as parts relative to the resolved root, so "photos/depth" and an absolute path to
    # the same folder exclude the same files.
    resolved_root = root.resolve()
    skipped: list[tuple[str, ...]] = []
    for folder_out in exclude:
        try:
            skipped.append(Path(folder_out).resolve().relative_to(resolved_root).parts)
        except ValueError:
            continue
    files = []
    for p in root.rglob("*"):
        if not (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            continue
        parts = p.relative_to(root).parts
        if any(parts[: len(s)] == s for s in skipped):
            continue
        files.append(p)
    if skip_text:
        flagged = photos_with_text(root)
        files = [p for p in files if p.relative_to(root).as_posix() not in flagged]
    return sorted(files)


def map_key(photo: str | Path, root: str | Path) -> str:
    """The pairing key of ``photo``: its path relative to ``root``, without extension (posix).

    >>> map_key("photos/street/a.b.jpg", "photos")
    'street/a.b'
    """
    return Path(photo).relative_to(root).with_suffix("").as_posix()


def index_maps(folder: str | Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Map files under ``folder`` (recursive) by :func:`map_key` (suffixes matched ignoring case).

    When several files share a key (``a.npy`` and ``a.png``), the one whose suffix comes first in
    ``suffixes`` wins. Raises :class:`BackgroundError` if ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise BackgroundError(f"{root}: not a folder")
    rank = {suffix.lower(): k for k, suffix in enumerate(suffixes)}
    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        suffix = p.suffix.lower()
        if suffix not in rank or not p.is_file():
            continue
        key = map_key(p, root)
        current = found.get(key)
        if current is None or rank[suffix] < rank[current.suffix.lower()]:
            found[key] = p
    return found


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
    map_errors: dict[str, str] | None = None,
) -> Background:
    """Load one background photo (and optional depth / segmentation maps).

    Handles grayscale, RGBA/LA/palette (alpha composited over mid grey), 16-bit and float
    images, and EXIF orientation. Raises :class:`BackgroundError` ``"<path>: <problem>"`` for
    missing, corrupt, truncated or tiny (< 64 px side) files.

    Maps (.npy, .h5/.hdf5 first dataset, or an image file; 3-D maps use their first channel) are
    resized to the image: depth bilinearly to float32, seg by nearest neighbour to int32.
    map_errors: None raises for an unusable map as for the photo; a dict instead receives
    ``{"depth" | "seg": "<map path>: <problem>"}`` and the background comes without that map.
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
    background = Background(image=image, name=p.stem)
    for kind, map_path in (("depth", depth_path), ("seg", seg_path)):
        if map_path is None:
            continue
        try:
            loaded = _load_map(Path(map_path), hw, nearest=kind == "seg")
        except BackgroundError as exc:
            if map_errors is None:
                raise
            map_errors[kind] = str(exc)
            continue
        if kind == "depth":
            background.depth = loaded.astype(np.float32)
        else:
            background.seg = loaded.astype(np.int32)
    return background


def _load_map(path: Path, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    try:
        arr = _read_array(path)
        if arr.size == 0:
            raise BackgroundError(f"{path}: empty map (shape {arr.shape})")
        arr = arr.astype(np.int32 if nearest else np.float32)
        if nearest:
            # cv2 cannot resize int32 with INTER_NEAREST on all builds; go through float32
            # exactly.
            return _resize(arr.astype(np.float32), hw, nearest=True).astype(np.int32)
        return _resize(arr, hw)
    except BackgroundError:
        raise
    except (OSError, EOFError, ValueError, TypeError, SyntaxError, KeyError, cv2.error) as exc:
        raise BackgroundError(f"{path}: unreadable map ({exc})") from exc


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

    Images whose data (image, depth or seg) cannot be used are skipped with a warning naming
    the key.
    """
    with DsetReader(path) as reader:
        for key in reader.keys():
            try:
                yield reader.load(key, size)
            except BackgroundError as exc:
                warnings.warn(str(exc), stacklevel=2)


class DsetReader:
    """Random access to a SynthText ``dset.h5``: groups ``image/``, ``depth/``, ``seg/`` by name.

    The file is opened on first use, by the process that uses it, and closed by :meth:`close`
    (or leaving a ``with`` block). h5py handles cannot be pickled or shared between processes,
    so a reader pickles as its path alone and a worker process reopens the file itself.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_file": None}

    def __enter__(self) -> DsetReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _h5(self) -> Any:
        if self._file is None:
            import h5py

            try:
                handle = h5py.File(self.path, "r")
            except OSError as exc:
                raise BackgroundError(f"{self.path}: cannot open as HDF5 ({exc})") from exc
            if "image" not in handle:
                handle.close()
                raise BackgroundError(f"{self.path}: no 'image' group (not a SynthText dset.h5)")
            self._file = handle
        return self._file

    def keys(self) -> list[str]:
        """The image names, sorted (the order samples draw from)."""
        return sorted(self._h5()["image"].keys())

    def load(self, key: str, size: int, map_errors: dict[str, str] | None = None) -> Background:
        """Image ``key`` resized to long side ``size``, with its depth and seg maps if present.

        SynthText's depth is [2, W, H] (the second channel is used) and its maps may be stored
        transposed; both are handled. Raises :class:`BackgroundError`
        ``"<file>:<group>/<key>: <problem>"``. map_errors: as in :func:`load_background`.
        """
        f = self._h5()
        where = f"{self.path}:image/{key}"
        try:
            raw = np.asarray(f["image"][key][()])
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise BackgroundError(f"{where}: unreadable ({exc})") from exc
        if raw.ndim == 2:
            raw = np.repeat(raw[:, :, None], 3, axis=2)
        if raw.ndim != 3 or raw.shape[2] < 3 or min(raw.shape[:2]) < MIN_BACKGROUND_SIDE:
            raise BackgroundError(f"{where}: unusable image shape {raw.shape}")
        if raw.dtype != np.uint8:
            raw = np.clip(raw, 0, 255).astype(np.uint8)
        raw = np.ascontiguousarray(raw[:, :, :3])
        hw0 = raw.shape[:2]
        hw = _target_hw(hw0[0], hw0[1], size)
        background = Background(image=_resize(raw, hw), name=Path(key).stem)
        for kind in ("depth", "seg"):
            if kind not in f or key not in f[kind]:
                continue
            try:
                arr = _dset_map(np.asarray(f[kind][key][()]), hw0).astype(np.float32)
                if kind == "depth":
                    background.depth = _resize(arr, hw)
                else:
                    background.seg = _resize(arr, hw, nearest=True).astype(np.int32)
            except (BackgroundError, KeyError, OSError, ValueError, TypeError, cv2.error) as exc:
                message = f"{self.path}:{kind}/{key}: unusable map ({exc})"
                if map_errors is None:
                    raise BackgroundError(message) from exc
                map_errors[kind] = message
        return background
