"""The demo: synthesize on the embedded default, detect with the shipped model, evaluate, report.

Runs on a fresh machine with no data: backgrounds are the engine's procedural default, the
detector is the model shipped inside the package. The report is a PNG contact sheet (image,
ground truth in green, detections in red) and an HTML page with precision, recall and F.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from synthloc.atomic import write_bytes_atomic
from synthloc.data.icdar import IcdarGT, read_icdar_gt

if TYPE_CHECKING:
    from synthloc.detect import Detector


@dataclass
class DemoResult:
    """Where the demo wrote its report and what it measured."""

    report_html: Path
    contact_sheet: Path
    images: int
    precision: float | None
    recall: float | None
    hmean: float | None
    seconds: float
    notes: list[str] = field(default_factory=list)


def _draw_quads(image: np.ndarray, quads: np.ndarray, colour: tuple[int, int, int]) -> None:
    for quad in np.asarray(quads).reshape(-1, 4, 2):
        pts = np.round(quad).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], isClosed=True, color=colour, thickness=2, lineType=cv2.LINE_AA)


def _contact_sheet(tiles: list[np.ndarray], columns: int, tile_size: int) -> np.ndarray:
    rows = max(1, -(-len(tiles) // columns))
    sheet = np.full((rows * tile_size, columns * tile_size, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        h, w = tile.shape[:2]
        scale = tile_size / max(h, w)
        resized = cv2.resize(tile, (max(1, round(w * scale)), max(1, round(h * scale))))
        r, c = divmod(i, columns)
        y0, x0 = r * tile_size, c * tile_size
        sheet[y0 : y0 + resized.shape[0], x0 : x0 + resized.shape[1]] = resized
    return sheet


def run_demo(
    out: Path,
    count: int = 8,
    seed: int = 2016,
    size: int = 512,
    model: str | Path | None = None,
    progress: bool = True,
    detector: Detector | None = None,
) -> DemoResult:
    """Synthesize ``count`` images, detect, evaluate (ICDAR 2015 protocol) and write a report.

    ``model``: a model file or shipped model name; None uses the default shipped model; an
    already loaded ``detector`` is used instead when given. Returns the report paths and metrics.
    """
    from synthloc.detect import Detector, load_image
    from synthloc.evaluate import evaluate_ic15
    from synthloc.synth import SynthConfig
    from synthloc.synth.runner import synthesize

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    synthesize(
        data_dir,
        count=count,
        seed=seed,
        backgrounds=None,
        workers=1,
        fmt="icdar",
        # The paper configuration: the images both shipped models were trained on (the
        # engine's newer scene-text defaults are harder and look more like photos).
        config=SynthConfig(size=size, paper=True),
        progress=progress,
    )
    image_paths = sorted((data_dir / "images").iterdir())
    gts: dict[str, IcdarGT] = {
        p.stem: read_icdar_gt(data_dir / "gt" / f"gt_{p.stem}.txt") for p in image_paths
    }

    if detector is None:
        detector = Detector.load(model)
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    tiles = []
    for path in image_paths:
        image = load_image(path)
        detections = detector(image)
        quads = np.array([d.quad for d in detections], np.float32).reshape(-1, 4, 2)
        scores = np.array([d.score for d in detections], np.float32)
        predictions[path.stem] = (quads, scores)
        canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        _draw_quads(canvas, gts[path.stem].quads, (0, 200, 0))
        _draw_quads(canvas, quads, (0, 0, 255))
        tiles.append(canvas)

    result = evaluate_ic15(gts, predictions)
    sheet = _contact_sheet(tiles, columns=4, tile_size=384)
    sheet_path = out / "contact_sheet.png"
    ok, encoded = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError(f"{sheet_path}: could not encode the contact sheet")
    write_bytes_atomic(sheet_path, encoded.tobytes())

    seconds = time.perf_counter() - start
    metrics = {
        "images": len(image_paths),
        "precision": result.precision,
        "recall": result.recall,
        "hmean": result.hmean,
        "seconds": round(seconds, 2),
        "seed": seed,
    }
    write_bytes_atomic(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>synthloc demo</title></head>
<body style="font-family: sans-serif">
<h1>synthloc demo</h1>
<p>{len(image_paths)} images synthesized on the embedded default (seed {seed}), detected with
the shipped model, scored with the ICDAR 2015 protocol.</p>
<table border="1" cellpadding="4">
<tr><th>precision</th><th>recall</th><th>F (hmean)</th></tr>
<tr><td>{result.precision:.3f}</td><td>{result.recall:.3f}</td><td>{result.hmean:.3f}</td></tr>
</table>
<p>Green: ground truth. Red: detections.</p>
<img src="{html.escape(sheet_path.name)}" style="max-width: 100%">
</body></html>
"""
    report = out / "report.html"
    write_bytes_atomic(report, page.encode())
    return DemoResult(
        report_html=report,
        contact_sheet=sheet_path,
        images=len(image_paths),
        precision=result.precision,
        recall=result.recall,
        hmean=result.hmean,
        seconds=seconds,
    )
