"""Images in: decoding files, checking arrays, listing folders, and the scale arithmetic.

Images are RGB ``uint8 [H, W, 3]``; files are decoded with OpenCV, which applies the EXIF
orientation (what image viewers show).  A scale is either a long side in pixels (values above
``MAX_SCALE_FACTOR``) or a factor of the original size (see ``synthloc.detect``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from synthloc.data.icdar import natural_key

# Scale values up to this are factors of the original size, larger ones long sides in pixels.
MAX_SCALE_FACTOR = 8.0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")

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
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
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


def _resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    if (h, w) == image.shape[:2]:
        return image
    # Area averaging when shrinking avoids aliasing thin strokes; bilinear when enlarging.
    shrinking = h * w < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interpolation)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by extension) directly in ``folder``, in natural name order.

    An ICDAR-style dataset root with no images of its own but an ``images/`` (or ``imgs/``)
    subfolder lists that subfolder instead.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")

    def images_in(directory: Path) -> list[Path]:
        files = [
            p
            for p in directory.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        ]
        return sorted(files, key=lambda p: natural_key(p.name))

    found = images_in(root)
    if not found:
        for sub in ("images", "imgs"):
            if (root / sub).is_dir():
                return images_in(root / sub)
    return found
