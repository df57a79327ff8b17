"""Results out: ``res_<stem>.txt`` (ICDAR 2015), ``<stem>.json`` and ``<stem>_vis.jpg``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from synthloc.atomic import write_bytes_atomic
from synthloc.data.icdar import write_icdar_results
from synthloc.detect.detector import Detection


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
) -> dict[str, Path]:
    """Write one image's results (each file atomically) and return their paths.

    ``res_<stem>.txt``: ICDAR 2015 submission format with the score as a ninth value;
    ``<stem>.json``: ``{"image", "width", "height", ..., "detections": [{"quad", "score"}]}``
    (``extra`` entries are added at the top level);
    ``<stem>_vis.jpg``: the annotated image, when ``image`` is given and ``visualise`` is set.
    """
    paths = output_paths(out_dir, stem)
    quads = np.array([d.quad for d in detections], dtype=np.float64).reshape(-1, 4, 2)
    scores = np.array([d.score for d in detections], dtype=np.float64)
    write_icdar_results(paths["txt"], quads, scores)
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
