"""Results out: ``res_<stem>.txt`` (ICDAR 2015), ``<stem>.json`` and ``<stem>_vis.jpg``.

``res_<stem>.txt`` follows the official ICDAR 2015 (Robust Reading, challenge 4) submission
format with the script's default parameters: one word per line, exactly eight integers
``x1,y1,x2,y2,x3,y3,x4,y4``, corners clockwise on screen (image y axis pointing down).
The official script rejects a whole submission when one line has a ninth value or its
corners are not clockwise, so scores are only appended on request (``res_scores``, the
script's ``CONFIDENCES`` mode), and a quad that rounding to integers turns degenerate
(not clockwise; it covers under about a pixel) is left out of that file.  The JSON keeps
every detection with float corners and its score, and records the settings that made it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from synthloc.atomic import write_bytes_atomic
from synthloc.data.icdar import write_icdar_results

if TYPE_CHECKING:
    from synthloc.detect.detector import Detection

VIS_SUFFIX = "_vis.jpg"


def submission_quads(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer corners for ``res_*.txt`` and which quads the official script accepts.

    quads: ``[K, 4, 2]`` float.  Returns ``int64 [K, 4, 2]`` (rounded to the nearest pixel)
    and a bool mask ``[K]``: True where the rounded corners are in clockwise order, by the
    script's rule (the sum over edges of ``(x2 - x1) * (y2 + y1)`` is not positive).
    """
    rounded = np.rint(np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)).astype(np.int64)
    x, y = rounded[..., 0], rounded[..., 1]
    edge_sum = ((np.roll(x, -1, axis=1) - x) * (np.roll(y, -1, axis=1) + y)).sum(axis=1)
    return rounded, edge_sum <= 0


def draw_detections(image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of RGB ``image`` with each detection's quad and score drawn."""
    canvas = np.ascontiguousarray(image.copy())
    thickness = max(1, round(max(image.shape[:2]) / 500))
    font_scale = max(0.4, max(image.shape[:2]) / 2000)
    for det in detections:
        pts = np.rint(det.quad).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], True, (0, 255, 0), thickness, cv2.LINE_AA)
        # Mark the first corner (top-left) so the point order is visible.
        cv2.circle(canvas, tuple(int(v) for v in pts[0, 0]), thickness + 1, (255, 0, 0), -1)
        x, y = int(pts[:, 0, 0].min()), int(pts[:, 0, 1].min())
        cv2.putText(
            canvas,
            f"{det.score:.2f}",
            (x, max(y - 3, 10)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 0),
            thickness,
            cv2.LINE_AA,
        )
    return canvas


def output_paths(out_dir: str | os.PathLike[str], stem: str) -> dict[str, Path]:
    """The files ``write_outputs`` produces for an image named ``stem``."""
    out = Path(out_dir)
    return {
        "txt": out / f"res_{stem}.txt",
        "json": out / f"{stem}.json",
        "vis": out / f"{stem}_vis.jpg",
    }


def write_outputs(
    out_dir: str | os.PathLike[str],
    stem: str,
    detections: Sequence[Detection],
    *,
    image: np.ndarray | None = None,
    visualise: bool = True,
    source: str = "",
    extra: dict[str, Any] | None = None,
    res_scores: bool = False,
) -> dict[str, Path]:
    """Write one image's results (each file atomically) and return their paths.

    ``res_<stem>.txt``: ICDAR 2015 submission format (see the module docstring), eight
    integers per line, with the score as a ninth value only when ``res_scores`` is set;
    ``<stem>.json``: ``{"image", "width", "height", ..., "detections": [{"quad", "score"}]}``
    (``extra`` entries are added at the top level);
    ``<stem>_vis.jpg``: the annotated image, when ``image`` is given and ``visualise`` is set.
    """
    paths = output_paths(out_dir, stem)
    quads = np.array([d.quad for d in detections], dtype=np.float64).reshape(-1, 4, 2)
    scores = np.array([d.score for d in detections], dtype=np.float64)
    rounded, accepted = submission_quads(quads)
    write_icdar_results(
        paths["txt"],
        rounded[accepted].astype(np.float64),
        scores[accepted] if res_scores else None,
    )
    record: dict[str, Any] = {"image": source or stem}
    if image is not None:
        record["height"], record["width"] = int(image.shape[0]), int(image.shape[1])
    record.update(extra or {})
    record["detections"] = [d.to_dict() for d in detections]
    write_bytes_atomic(paths["json"], (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    written = {"txt": paths["txt"], "json": paths["json"]}
    if image is not None and visualise:
        vis = cv2.cvtColor(draw_detections(image, detections), cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", vis, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise OSError(f"{paths['vis']}: JPEG encoding failed")
        write_bytes_atomic(paths["vis"], encoded.tobytes())
        written["vis"] = paths["vis"]
    return written


def settings_match(json_path: str | os.PathLike[str], settings: dict[str, Any]) -> bool:
    """Whether a result JSON written by :func:`write_outputs` records exactly ``settings``
    (the ``extra`` entries it was written with); False when the file is missing, unreadable,
    not a synthloc result, or made with other settings."""
    try:
        record = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(record, dict) or "detections" not in record:
        return False
    # JSON turns tuples into lists: compare in JSON form.
    wanted = json.loads(json.dumps(settings))
    return all(key in record and record[key] == value for key, value in wanted.items())


def is_own_output(path: Path) -> bool:
    """Whether ``path`` is a file that :func:`write_outputs` wrote (so a folder that is both
    input and output is not re-read): ``<stem>_vis.jpg``, ``res_<stem>.txt`` or
    ``<stem>.json`` next to a result JSON of the same stem."""
    name = path.name
    if name.endswith(VIS_SUFFIX):
        stem = name[: -len(VIS_SUFFIX)]
    elif name.startswith("res_") and name.endswith(".txt"):
        stem = name[len("res_") : -len(".txt")]
    elif name.endswith(".json"):
        stem = name[: -len(".json")]
    else:
        return False
    return _is_result_json(path.with_name(f"{stem}.json"))


def _is_result_json(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size > 50_000_000:
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and "detections" in record and "image" in record
