"""Reading and writing ICDAR Robust Reading ground truth and result files.

Formats handled (one word per line, UTF-8 with or without BOM, blank lines ignored; LF, CRLF and
CR alone all end a line, so a file saved with old Mac line endings is not read as one long line):

* ICDAR 2015 (8 values): ``x1,y1,x2,y2,x3,y3,x4,y4[,transcription]``, corners clockwise from
  top-left. Everything after the 8th comma is the transcription, so it may contain commas;
  ``###`` marks a don't-care word.
* ICDAR 2013 (4 values, "LTRB"): ``xmin, ymin, xmax, ymax[, "transcription"]``, spaces after the
  commas allowed. The box becomes the quad TL, TR, BR, BL.
* Result files (``res_<stem>.txt``): 8 values (or 4 LTRB values) and an optional confidence.

A transcription wrapped in double quotes is unquoted, with ``\\"`` and ``\\\\`` unescaped, as the
competition's parser does. A line whose first eight fields are all numbers is read as 8-value;
a line of 5 to 7 bare numbers is rejected as truncated (ICDAR 2013 quotes its transcriptions).

Checks: a coordinate must be finite and within +-``MAX_COORDINATE`` (``1e300`` would become inf
in float32 and still be scored); a malformed line or invalid UTF-8 is an ``IcdarFormatError``
naming ``<path>:<line>``. An 8-value quad that is not a simple polygon (edges that cross, or all
corners on one line) is read, because the official ICDAR 2015 script does not reject it either
(it only rejects counter-clockwise corner orders), but it draws an ``IcdarWarning`` naming
``<path>:<line>``: the ICDAR 2015 protocol scores such a quad as the area shapely's ``make_valid``
repairs it to (a bow-tie becomes its two triangles), which the competition's polygon library
may not do the same way.
"""

from __future__ import annotations

import codecs
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from synthloc.atomic import write_text_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DONT_CARE = "###"
# Largest coordinate magnitude accepted: float32 holds every integer up to 2**24 exactly, and no
# image is that large, so anything beyond is a corrupt value rather than a far-away word.
MAX_COORDINATE = float(2**24)

_LINE_END = re.compile(rb"\r\n|\r|\n")

_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_QUOTED = re.compile(r'^\s*"(.*)"\s*$', re.DOTALL)


class IcdarFormatError(ValueError):
    """A malformed ICDAR file; the message starts with ``<path>:<line number>:``."""


class IcdarWarning(UserWarning):
    """A readable line that is scored differently from what it looks like (``<path>:<line>:``)."""


@dataclass
class IcdarGT:
    """Ground truth of one image.

    quads: float32 [N, 4, 2], pixel coordinates in the order written in the file (ICDAR files are
        clockwise from top-left; points are not reordered).
    words: N transcriptions (``"###"`` = don't care).
    ignore: bool [N], True for don't-care words.
    """

    quads: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 2), np.float32))
    words: list[str] = field(default_factory=list)
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))

    def __post_init__(self) -> None:
        self.quads = np.asarray(self.quads, dtype=np.float32).reshape(-1, 4, 2)
        self.words = list(self.words)
        if len(self.words) != len(self.quads):
            raise ValueError(f"{len(self.words)} transcriptions for {len(self.quads)} quads")
        if len(self.ignore) != len(self.quads):
            self.ignore = np.array([w == DONT_CARE for w in self.words], dtype=bool)
        self.ignore = np.asarray(self.ignore, dtype=bool).reshape(-1)

    def __len__(self) -> int:
        return len(self.quads)


def _is_number(text: str) -> bool:
    return _NUMBER.match(text) is not None


def _unquote(text: str) -> str:
    quoted = _QUOTED.match(text)
    if quoted is None:
        return text
    return quoted.group(1).replace("\\\\", "\\").replace('\\"', '"')


def _ltrb_quad(values: Sequence[float], where: str) -> np.ndarray:
    _check_coordinates(values, where)
    xmin, ymin, xmax, ymax = values
    if xmax < xmin or ymax < ymin:
        raise IcdarFormatError(
            f"{where}: LTRB box has xmax < xmin or ymax < ymin ({xmin}, {ymin}, {xmax}, {ymax})"
        )
    return np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]], dtype=np.float64)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file with their 1-based numbers; BOM and line ends removed.

    LF, CRLF and a lone CR each end a line. The bytes are split before decoding (UTF-8 never
    has CR or LF bytes inside a character), so a decoding error names its line.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OSError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    out = []
    # Only CR and LF end a line: str.splitlines would also split on Unicode separators in words.
    for lineno, chunk in enumerate(_LINE_END.split(raw), start=1):
        try:
            line = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IcdarFormatError(
                f"{path}:{lineno}: not valid UTF-8 (byte 0x{chunk[exc.start]:02x} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from exc
        if line.strip():
            out.append((lineno, line))
    return out


def _check_coordinates(values: Sequence[float], where: str) -> None:
    for value in values:
        if not np.isfinite(value):
            raise IcdarFormatError(f"{where}: non-finite coordinate {value}")
        if abs(value) > MAX_COORDINATE:
            raise IcdarFormatError(
                f"{where}: coordinate {value:g} is out of range (|value| > {MAX_COORDINATE:.0f})"
            )


def _warn_invalid_quads(quads: list[np.ndarray], wheres: list[str]) -> None:
    """IcdarWarning for each 8-value quad that is not a simple polygon (see the module doc)."""
    if not quads:
        return
    polygons = shapely.polygons(np.array(quads, dtype=np.float64))
    for k in np.flatnonzero(~shapely.is_valid(polygons)):
        reason = shapely.is_valid_reason(polygons[k])
        warnings.warn(
            IcdarWarning(
                f"{wheres[k]}: quad is not a simple polygon ({reason}); the ic15 protocol "
                "scores the area it encloses after repair (shapely.make_valid)"
            ),
            stacklevel=3,
        )


def _parse_gt_line(line: str, where: str) -> tuple[np.ndarray, str, bool]:
    """(quad [4, 2], transcription, True for an 8-value line / False for LTRB)."""
    fields = line.split(",", 8)
    if len(fields) >= 8 and all(_is_number(f) for f in fields[:8]):
        coords = np.array([float(f) for f in fields[:8]], dtype=np.float64)
        _check_coordinates(coords.tolist(), where)
        word = _unquote(fields[8]) if len(fields) == 9 else ""
        return coords.reshape(4, 2), word, True
    ltrb = line.split(",", 4)
    all_numeric = all(_is_number(f) for f in line.split(","))
    # 5 to 7 bare numbers is a truncated 8-value line, not an LTRB box with a numeric word.
    if (
        len(ltrb) >= 4
        and all(_is_number(f) for f in ltrb[:4])
        and not (all_numeric and len(ltrb) == 5)
    ):
        quad = _ltrb_quad([float(f) for f in ltrb[:4]], where)
        word = _unquote(ltrb[4]) if len(ltrb) == 5 else ""
        return quad, word, False
    numeric = 0
    for f in fields[:8]:
        if not _is_number(f):
            break
        numeric += 1
    raise IcdarFormatError(
        f"{where}: expected 8 coordinates (x1,y1,...,x4,y4[,text]) or 4 (xmin,ymin,xmax,ymax"
        f"[,text]), found {numeric} leading numbers in {line[:80]!r}"
    )


def read_icdar_gt(path: str | os.PathLike[str]) -> IcdarGT:
    """Read one ICDAR 2013/2015 ground-truth file.

    Raises IcdarFormatError("<path>:<line>: <problem>") on a malformed line; warns
    (IcdarWarning) about a quad that is not a simple polygon.
    """
    path = Path(path)
    quads: list[np.ndarray] = []
    words: list[str] = []
    eight_value: list[tuple[np.ndarray, str]] = []
    for lineno, line in _read_lines(path):
        where = f"{path}:{lineno}"
        quad, word, is_quad = _parse_gt_line(line, where)
        quads.append(quad)
        words.append(word)
        if is_quad:
            eight_value.append((quad, where))
    _warn_invalid_quads([q for q, _ in eight_value], [w for _, w in eight_value])
    arr = np.array(quads, dtype=np.float32).reshape(-1, 4, 2)
    return IcdarGT(quads=arr, words=words)


def read_icdar_results(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a result (submission) file.

    Lines are ``x1,y1,...,x4,y4[,confidence]`` or ``xmin,ymin,xmax,ymax[,confidence]``.
    Returns quads float32 [K, 4, 2] and scores float32 [K], or None when no line has a confidence.
    Mixing lines with and without confidence is an error; a quad that is not a simple polygon
    draws an IcdarWarning.
    """
    path = Path(path)
    quads: list[np.ndarray] = []
    eight_value: list[tuple[np.ndarray, str]] = []
    scores: list[float] = []
    with_score: bool | None = None
    for lineno, line in _read_lines(path):
        where = f"{path}:{lineno}"
        fields = line.split(",")
        if fields and not fields[-1].strip() and len(fields) in (5, 9):
            fields = fields[:-1]  # a trailing comma
        if not all(_is_number(f) for f in fields):
            raise IcdarFormatError(f"{where}: non-numeric field in {line[:80]!r}")
        values = [float(f) for f in fields]
        if not all(np.isfinite(values)):
            raise IcdarFormatError(f"{where}: non-finite value")
        if len(values) in (8, 9):
            _check_coordinates(values[:8], where)
            quad = np.array(values[:8], dtype=np.float64).reshape(4, 2)
            eight_value.append((quad, where))
        elif len(values) in (4, 5):
            quad = _ltrb_quad(values[:4], where)
        else:
            raise IcdarFormatError(
                f"{where}: expected 8 coordinates (or 4 LTRB) and an optional confidence, "
                f"got {len(values)} values"
            )
        has_score = len(values) in (5, 9)
        if with_score is None:
            with_score = has_score
        elif with_score != has_score:
            raise IcdarFormatError(f"{where}: some lines have a confidence and others do not")
        quads.append(quad)
        if has_score:
            scores.append(values[-1])
    _warn_invalid_quads([q for q, _ in eight_value], [w for _, w in eight_value])
    arr = np.array(quads, dtype=np.float32).reshape(-1, 4, 2)
    return arr, (np.array(scores, dtype=np.float32) if with_score else None)


def _int_coords(quads: np.ndarray) -> np.ndarray:
    arr = np.asarray(quads, dtype=np.float64).reshape(-1, 8)
    if not np.all(np.isfinite(arr)):
        raise ValueError("quads contain non-finite coordinates")
    return np.rint(arr).astype(np.int64)


def write_icdar_gt(path: str | os.PathLike[str], quads: np.ndarray, words: Sequence[str]) -> None:
    """Write ground truth in ICDAR 2015 format (atomic; CRLF; coordinates rounded to ints).

    quads: [N, 4, 2] clockwise from top-left; words: N transcriptions without line breaks.
    """
    coords = _int_coords(quads)
    if len(words) != len(coords):
        raise ValueError(f"{len(words)} transcriptions for {len(coords)} quads")
    lines = []
    for row, word in zip(coords, words):
        if "\n" in word or "\r" in word:
            raise ValueError(f"transcription {word!r} contains a line break")
        lines.append(",".join(str(v) for v in row) + "," + word)
    write_text_atomic(path, "".join(line + "\r\n" for line in lines))


def write_icdar_results(
    path: str | os.PathLike[str], quads: np.ndarray, scores: np.ndarray | None = None
) -> None:
    """Write detections in the ICDAR 2015 submission format (atomic; CRLF).

    quads: [K, 4, 2] clockwise from top-left (rounded to ints); scores: optional [K], appended
    as a ninth value.
    """
    coords = _int_coords(quads)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(coords):
            raise ValueError(f"{len(scores)} scores for {len(coords)} quads")
    lines = []
    for k, row in enumerate(coords):
        line = ",".join(str(v) for v in row)
        if scores is not None:
            line += f",{scores[k]:.6f}"
        lines.append(line)
    write_text_atomic(path, "".join(line + "\r\n" for line in lines))


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that orders ``img_2`` before ``img_10``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def _gt_candidates(gt_dir: Path, image: Path) -> list[Path]:
    stem = image.stem
    return [gt_dir / f"gt_{stem}.txt", gt_dir / f"{stem}.txt", gt_dir / f"{image.name}.txt"]


def list_icdar_folder(folder: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """Pair images with their ground-truth files in an ICDAR-style folder.

    Accepts ``folder/images/*.jpg`` + ``folder/gt/gt_<stem>.txt`` (also ``imgs``/``gts``
    subfolders) or both kinds of file directly in ``folder``. ICDAR 2015 naming is
    ``img_1.jpg`` / ``gt_img_1.txt``, ICDAR 2013 ``100.jpg`` / ``gt_100.txt``; ``<stem>.txt``
    and ``<image name>.txt`` are accepted too. Images without ground truth are left out.
    Returns (image_path, gt_path) pairs in natural order of the image names.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    image_dir = next((root / d for d in ("images", "imgs", "img") if (root / d).is_dir()), root)
    gt_dir = next((root / d for d in ("gt", "gts", "annotations") if (root / d).is_dir()), root)
    pairs = []
    images = [
        p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    for image in sorted(images, key=lambda p: natural_key(p.name)):
        gt = next((c for c in _gt_candidates(gt_dir, image) if c.is_file()), None)
        if gt is not None:
            pairs.append((image, gt))
    return pairs
