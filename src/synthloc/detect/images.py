"""Images in: decoding files, checking arrays, listing folders, and the scale arithmetic.

Images are RGB ``uint8 [H, W, 3]``; files are decoded with OpenCV, which applies the EXIF
orientation (what image viewers show).  A scale is either a long side in pixels (values above
``MAX_SCALE_FACTOR``) or a factor of the original size (see ``synthloc.detect``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from synthloc.data.icdar import natural_key
from synthloc.detect.outputs import is_own_output

# Scale values up to this are factors of the original size, larger ones long sides in pixels.
MAX_SCALE_FACTOR = 8.0
# .jfif and .jpe are JPEG files under other names.
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
)

ImageInput = np.ndarray | str | os.PathLike[str]


class ImageReadError(ValueError):
    """An image file that is missing, unreadable or not a decodable image."""


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to RGB ``uint8 [H, W, 3]``.

    Grayscale, palette, 16-bit and alpha images are converted (alpha dropped, 16-bit scaled to
    8-bit); the EXIF orientation is applied.  Raises :class:`ImageReadError` naming the file.
    """
    file = Path(path)
    try:
        data = np.fromfile(file, dtype=np.uint8)  # np.fromfile: non-ASCII paths work
    except OSError as exc:
        raise ImageReadError(f"{file}: cannot read file ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise ImageReadError(f"{file}: empty file")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        # OpenCV refuses images over CV_IO_MAX_IMAGE_PIXELS (2^30 by default) this way.
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "decoder error"
        raise ImageReadError(f"{file}: cannot decode ({reason})") from exc
    except MemoryError as exc:
        raise ImageReadError(f"{file}: too large to decode in memory") from exc
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0 or bgr.shape[1] == 0:
        raise ImageReadError(f"{file}: not a decodable image (corrupt or unsupported format)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _as_image(image: ImageInput) -> np.ndarray:
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB uint8 image [H, W, 3], got {arr.dtype} {tuple(arr.shape)}"
            )
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"empty image of shape {tuple(arr.shape)}")
        return arr
    return load_image(image)


def validate_scales(scales: Iterable[float]) -> tuple[float, ...]:
    """Check a scale specification (see the module docstring) and return it as a tuple."""
    values = tuple(float(s) for s in scales)
    if not values:
        raise ValueError("at least one scale is needed")
    for s in values:
        if not math.isfinite(s) or s <= 0:
            raise ValueError(f"scale {s} must be a positive number")
    return values


def resized_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(h, w)`` of an image of ``height x width`` at one scale, aspect ratio kept.

    ``scale`` above ``MAX_SCALE_FACTOR`` is the target long side in pixels, otherwise a factor.
    Each side is rounded to the nearest pixel and is at least 1.
    """
    factor = scale / max(height, width) if scale > MAX_SCALE_FACTOR else scale
    return max(1, round(height * factor)), max(1, round(width * factor))


def network_input(images: Sequence[np.ndarray] | np.ndarray, stride: int = 1) -> np.ndarray:
    """Same-size RGB ``uint8 [H, W, 3]`` images (a list, or one ``[N, H, W, 3]`` array) ->
    the network's float32 input ``[N, 3, H', W']``: values divided by 255, zero (black)
    padding at the bottom and right up to multiples of ``stride``.

    The values equal ``synthloc.model.preprocess`` followed by ``F.pad`` exactly (the same
    float32 division), but the work stays in NumPy on the calling thread: torch's thread pool
    is not woken, whose idle workers would otherwise compete for the cores with the inference
    session's threads.
    """
    if len(images) == 0:
        raise ValueError("network_input needs at least one image")
    h, w = images[0].shape[:2]
    for im in images:
        if im.shape != (h, w, 3) or im.dtype != np.uint8:
            raise ValueError(
                f"network_input expects RGB uint8 images [H, W, 3] of one size ({h}x{w}), "
                f"got {im.dtype} {tuple(im.shape)}"
            )
    out = np.zeros((len(images), 3, h + (-h) % stride, w + (-w) % stride), np.float32)
    for k, im in enumerate(images):
        np.divide(im.transpose(2, 0, 1), np.float32(255.0), out=out[k, :, :h, :w])
    return out


def _resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    if (h, w) == image.shape[:2]:
        return image
    # Area averaging when shrinking avoids aliasing thin strokes; bilinear when enlarging.
    shrinking = h * w < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interpolation)


@dataclass
class FolderListing:
    """What :func:`scan_images` found in a folder.

    images: image files in natural name order; skipped: ``(path, reason)`` for every other
    entry that was not taken, except our own outputs, which are only counted
    (``own_outputs``) so that a folder used as both input and output is not re-read.
    """

    images: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    own_outputs: int = 0


def scan_images(folder: str | os.PathLike[str], *, recursive: bool = False) -> FolderListing:
    """List the image files (by extension) in ``folder`` and say what else was there.

    Without ``recursive`` only the folder's own files are taken and subfolders are reported
    as skipped; an ICDAR-style dataset root with no images of its own but an ``images/`` (or
    ``imgs/``) subfolder lists that subfolder instead.  With ``recursive`` every subfolder
    is walked (hidden ones excepted), in natural order of the relative path.  Hidden files,
    files with another or no extension, and results written by ``synthloc detect``
    (``*_vis.jpg`` and friends) are not taken.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    if not recursive:
        listing = _scan(root, root, recursive=False)
        if not listing.images:
            for sub in ("images", "imgs"):
                if (root / sub).is_dir():
                    return _scan(root / sub, root / sub, recursive=False)
        return listing
    return _scan(root, root, recursive=True)


def _scan(directory: Path, root: Path, *, recursive: bool) -> FolderListing:
    listing = FolderListing()
    entries = sorted(directory.iterdir(), key=lambda p: natural_key(p.name))
    for path in entries:
        if path.name.startswith("."):
            listing.skipped.append((path, "hidden"))
        elif path.is_dir():
            if recursive:
                inner = _scan(path, root, recursive=True)
                listing.images.extend(inner.images)
                listing.skipped.extend(inner.skipped)
                listing.own_outputs += inner.own_outputs
            else:
                listing.skipped.append((path, "subfolder"))
        elif not path.is_file():
            listing.skipped.append((path, "not a regular file"))
        elif is_own_output(path):
            listing.own_outputs += 1
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            listing.images.append(path)
        elif not path.suffix:
            listing.skipped.append((path, "no extension"))
        else:
            listing.skipped.append((path, "not an image extension"))
    if recursive and directory == root:
        listing.images.sort(key=lambda p: natural_key(str(p.relative_to(root))))
    return listing


def list_images(folder: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (see :func:`scan_images`), in natural name order."""
    return scan_images(folder, recursive=recursive).images
