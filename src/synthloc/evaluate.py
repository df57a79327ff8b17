"""ICDAR text-localisation protocols: ICDAR 2015 (IoU) and ICDAR 2013 (DetEval).

Both reproduce the Robust Reading Competition evaluation scripts with their default parameters,
including their conventions for empty images, so the numbers are the competition's numbers.

Inputs are keyed by sample name (file stem, e.g. ``img_1``):

* ``gt``: ``IcdarGT`` per sample (quads float [N, 4, 2]; ``"###"`` words are don't care).
* ``pred``: per sample either quads float [K, 4, 2] or a tuple ``(quads, scores)``; a sample
  missing from ``pred`` had no result file. Scores are accepted but do not change the matching
  (the competition's default is to match in file order).

Coordinates are rounded to integers first (``integer_coords=True``), because the competition
reads integer files; that makes in-memory evaluation equal to evaluating files written by
``write_icdar_results``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely

from synthloc.data.icdar import IcdarGT, natural_key, read_icdar_gt, read_icdar_results
from synthloc.geometry import as_quad_array, to_polygon

Protocol = Literal["ic15", "ic13"]
Prediction = np.ndarray | tuple[np.ndarray, np.ndarray | None]


@dataclass
class EvalResult:
    """Dataset-level scores (micro-averaged) and per-image details.

    per_image: one dict per GT sample in natural name order with ``name``, ``precision``,
    ``recall``, ``hmean``, counts (``num_gt``, ``num_gt_care``, ``num_det``, ``num_det_care``),
    the matched score sums (ic15: ``matched``; ic13: ``recall_sum``, ``precision_sum``) and
    ``pairs`` (matched GT/detection indices).
    """

    protocol: str
    precision: float
    recall: float
    hmean: float
    num_gt_care: int = 0
    num_det_care: int = 0
    recall_sum: float = 0.0
    precision_sum: float = 0.0
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The dataset-level figures as a plain dict (JSON-serialisable)."""
        return {
            "protocol": self.protocol,
            "precision": self.precision,
            "recall": self.recall,
            "hmean": self.hmean,
            "num_gt_care": self.num_gt_care,
            "num_det_care": self.num_det_care,
            "recall_sum": self.recall_sum,
            "precision_sum": self.precision_sum,
        }


def _hmean(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)


def _pred_quads(value: Prediction, name: str) -> np.ndarray:
    quads = value[0] if isinstance(value, tuple) else value
    return as_quad_array(quads, f"prediction for {name!r}")


def _prepare(
    gt: Mapping[str, IcdarGT], pred: Mapping[str, Prediction], integer_coords: bool
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(name, gt quads, gt don't-care mask, det quads or None when absent) per GT sample."""
    unknown = sorted(set(pred) - set(gt), key=natural_key)
    if unknown:
        raise ValueError(f"predictions for samples without ground truth: {unknown[:5]}")
    out = []
    for name in sorted(gt, key=natural_key):
        g = gt[name]
        gq = np.asarray(g.quads, dtype=np.float64).reshape(-1, 4, 2)
        dq = _pred_quads(pred[name], name) if name in pred else None
        if integer_coords:
            # The competition parses integers; detections written to files are rounded.
            gq = np.rint(gq)
            dq = None if dq is None else np.rint(dq)
        out.append((name, gq, np.asarray(g.ignore, dtype=bool).reshape(-1), dq))
    return out


# --------------------------------------------------------------------------------- ICDAR 2015


def _polygons(quads: np.ndarray) -> np.ndarray:
    return np.array([to_polygon(q) for q in quads], dtype=object)


def evaluate_ic15(
    gt: Mapping[str, IcdarGT],
    pred: Mapping[str, Prediction],
    iou_threshold: float = 0.5,
    dont_care_threshold: float = 0.5,
    integer_coords: bool = True,
) -> EvalResult:
    """ICDAR 2015 incidental-text protocol (quads, IoU).

    Per image: a detection is dropped when intersection(det, some don't-care GT) / area(det)
    exceeds ``dont_care_threshold``; then GT and detections are matched one-to-one greedily,
    GT in file order and for each GT the first unmatched detection (file order) with
    IoU > ``iou_threshold``; don't-care GT and dropped detections never match.
    recall = matches / care GT, precision = matches / kept detections. Dataset figures sum the
    counts over images. Per-image conventions: no care GT -> recall 1 and precision 1 if no
    kept detection else 0; care GT but no kept detection -> precision 0.
    """
    per_image: list[dict[str, Any]] = []
    total_matched = total_gt_care = total_det_care = 0
    for name, gq, dont_care, dq in _prepare(gt, pred, integer_coords):
        det = dq if dq is not None else np.zeros((0, 4, 2))
        gt_polys, det_polys = _polygons(gq), _polygons(det)
        det_areas = shapely.area(det_polys) if len(det) else np.zeros(0)
        dropped = np.zeros(len(det), dtype=bool)
        if dont_care.any() and len(det):
            inter = shapely.area(
                shapely.intersection(gt_polys[dont_care][:, None], det_polys[None, :])
            )  # [num dont care, K]
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(det_areas[None, :] > 0, inter / det_areas[None, :], 0.0)
            dropped = np.asarray((frac > dont_care_threshold).any(axis=0), dtype=bool)
        pairs: list[tuple[int, int]] = []
        if len(gq) and len(det):
            inter = shapely.area(shapely.intersection(gt_polys[:, None], det_polys[None, :]))
            gt_areas = shapely.area(gt_polys)[:, None]
            union = gt_areas + det_areas[None, :] - inter
            with np.errstate(divide="ignore", invalid="ignore"):
                iou = np.where(union > 0, inter / union, 0.0)
            available = ~dropped
            for g in np.flatnonzero(~dont_care):
                candidates = np.flatnonzero(available & (iou[g] > iou_threshold))
                if len(candidates):
                    d = int(candidates[0])
                    available[d] = False
                    pairs.append((int(g), d))
        num_gt_care = int((~dont_care).sum())
        num_det_care = int(len(det) - dropped.sum())
        matched = len(pairs)
        if num_gt_care == 0:
            recall = 1.0
            precision = 0.0 if num_det_care > 0 else 1.0
        else:
            recall = matched / num_gt_care
            precision = 0.0 if num_det_care == 0 else matched / num_det_care
        per_image.append(
            {
                "name": name,
                "precision": precision,
                "recall": recall,
                "hmean": _hmean(precision, recall),
                "num_gt": len(gq),
                "num_gt_care": num_gt_care,
                "num_det": len(det),
                "num_det_care": num_det_care,
                "matched": matched,
                "pairs": pairs,
                "dropped_dets": np.flatnonzero(dropped).tolist(),
            }
        )
        total_matched += matched
        total_gt_care += num_gt_care
        total_det_care += num_det_care
    recall = 0.0 if total_gt_care == 0 else total_matched / total_gt_care
    precision = 0.0 if total_det_care == 0 else total_matched / total_det_care
    return EvalResult(
        protocol="ic15",
        precision=precision,
        recall=recall,
        hmean=_hmean(precision, recall),
        num_gt_care=total_gt_care,
        num_det_care=total_det_care,
        recall_sum=float(total_matched),
        precision_sum=float(total_matched),
        per_image=per_image,
    )


# --------------------------------------------------------------------------------- ICDAR 2013


def _rect_areas(rects: np.ndarray) -> np.ndarray:
    # DetEval rectangles are inclusive pixel ranges: width = xmax - xmin + 1.
    return (rects[:, 2] - rects[:, 0] + 1) * (rects[:, 3] - rects[:, 1] + 1)


def _rect_intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] inclusive-pixel intersection areas of rectangles (x0, y0, x1, y1)."""
    dx = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    dy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    return np.where((dx >= 0) & (dy >= 0), dx * dy, 0.0)


def _bounds(quads: np.ndarray) -> np.ndarray:
    if len(quads) == 0:
        return np.zeros((0, 4))
    return np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)


def _ordered_sum(values: np.ndarray) -> float:
    """Left-to-right float sum: numpy's pairwise sum can differ in the last bit, and the
    split/merge thresholds are compared after rounding that sum."""
    total = 0.0
    for v in values.tolist():
        total += v
    return total


def _center_distance_ok(g: np.ndarray, d: np.ndarray, threshold: float) -> bool:
    """Centre distance normalised by the mean of the two diagonals is below ``threshold``."""

    def centre(r: np.ndarray) -> tuple[float, float]:
        return r[0] + (r[2] - r[0] + 1) / 2.0, r[1] + (r[3] - r[1] + 1) / 2.0

    def diag(r: np.ndarray) -> float:
        return math.hypot(r[2] - r[0] + 1, r[3] - r[1] + 1)

    (gx, gy), (dx, dy) = centre(g), centre(d)
    norm_dist = 2.0 * math.hypot(gx - dx, gy - dy) / (diag(g) + diag(d))
    return norm_dist < threshold


def evaluate_ic13(
    gt: Mapping[str, IcdarGT],
    pred: Mapping[str, Prediction],
    area_recall: float = 0.8,
    area_precision: float = 0.4,
    center_diff: float = 1.0,
    split_weight: float = 0.8,
    merge_weight: float = 1.0,
    integer_coords: bool = True,
) -> EvalResult:
    """ICDAR 2013 DetEval (Wolf & Jolion) on the axis-aligned bounds of the quads.

    With r = intersection / GT area and p = intersection / detection area (inclusive pixel
    areas) a pair "covers" when r >= ``area_recall`` and p >= ``area_precision``.

    0. A detection is don't care (dropped) when its p against some ``###`` GT exceeds
       ``area_precision``; don't-care GT and dropped detections are never matched.
    1. One-to-one (scores 1/1): GT row and detection column each have exactly one covering
       pair (counted over all GT and detections), both overlap nothing else (r > 0 with
       exactly one non-don't-care partner each) and the normalised centre distance
       2 * |c_g - c_d| / (diag_g + diag_d) < ``center_diff``.
    2. One-to-many, a GT split over detections: the unmatched detections with p >=
       ``area_precision`` sum to r >= ``area_recall`` (sum rounded to 4 decimals) and the GT
       overlaps at least two non-dropped detections: recall += ``split_weight`` and precision
       += ``split_weight`` per detection (1 and 1 if only one detection qualified).
    3. Many-to-one, several GT in one detection: the unmatched care GT with r >= ``area_recall``
       sum to p >= ``area_precision`` and the detection overlaps at least two care GT:
       recall += ``merge_weight`` per GT and precision += ``merge_weight`` (1/1 for one GT).

    Stages run in this order and each uses only GT and detections that no earlier match
    consumed (a detection taken by a split, even a single one scored and labelled "OO", is
    never merged again). tests/test_deteval_golden.py checks every rule by hand and against an
    independent re-derivation on thousands of random scenes.

    Dataset figures: sum of recall scores / care GT, sum of precision scores / kept detections.
    Per-image: no GT -> recall 1, precision 1 if no detection else 0 (only when a result was
    given); an image without a result entry scores 0/0 per image (dataset sums unaffected).
    """
    per_image: list[dict[str, Any]] = []
    sum_recall = sum_precision = 0.0
    total_gt_care = total_det_care = 0
    for name, gq, dont_care, dq in _prepare(gt, pred, integer_coords):
        g_rects = _bounds(gq)
        d_rects = _bounds(dq) if dq is not None else np.zeros((0, 4))
        n_gt, n_det = len(g_rects), len(d_rects)
        recall_acc = precision_acc = 0.0
        recall = precision = 0.0
        pairs: list[dict[str, Any]] = []
        det_dont_care = np.zeros(n_det, dtype=bool)
        if dq is not None:
            d_areas = _rect_areas(d_rects)
            if dont_care.any() and n_det:
                inter = _rect_intersections(g_rects[dont_care], d_rects)
                with np.errstate(divide="ignore", invalid="ignore"):
                    frac = np.where(d_areas[None, :] != 0, inter / d_areas[None, :], 0.0)
                det_dont_care = np.asarray((frac > area_precision).any(axis=0), dtype=bool)
            if n_gt == 0:
                recall = 1.0
                precision = 0.0 if n_det > 0 else 1.0
            if n_det > 0:
                g_areas = _rect_areas(g_rects)
                inter = _rect_intersections(g_rects, d_rects)
                with np.errstate(divide="ignore", invalid="ignore"):
                    r_mat = np.where(g_areas[:, None] != 0, inter / g_areas[:, None], 0.0)
                    p_mat = np.where(d_areas[None, :] != 0, inter / d_areas[None, :], 0.0)
                covers = (r_mat >= area_recall) & (p_mat >= area_precision)
                row_covers, col_covers = covers.sum(axis=1), covers.sum(axis=0)
                overlaps = r_mat > 0
                # Overlap counts ignore dropped detections (per GT) and don't-care GT (per det).
                gt_overlaps = (overlaps & ~det_dont_care[None, :]).sum(axis=1)
                det_overlaps = (overlaps & ~dont_care[:, None]).sum(axis=0)
                gt_done = np.zeros(n_gt, dtype=bool)
                det_done = np.zeros(n_det, dtype=bool)

                for g in range(n_gt):
                    if dont_care[g] or row_covers[g] != 1:
                        continue
                    for d in range(n_det):
                        if gt_done[g] or det_done[d] or det_dont_care[d]:
                            continue
                        if not covers[g, d] or col_covers[d] != 1:
                            continue
                        if gt_overlaps[g] != 1 or det_overlaps[d] != 1:
                            continue
                        if _center_distance_ok(g_rects[g], d_rects[d], center_diff):
                            gt_done[g] = det_done[d] = True
                            recall_acc += 1.0
                            precision_acc += 1.0
                            pairs.append({"gt": g, "det": d, "type": "OO"})

                for g in range(n_gt):
                    if dont_care[g] or gt_done[g]:
                        continue
                    cand = np.flatnonzero(~det_done & ~det_dont_care & (p_mat[g] >= area_precision))
                    if len(cand) == 0 or round(_ordered_sum(r_mat[g, cand]), 4) < area_recall:
                        continue
                    if gt_overlaps[g] < 2:
                        continue
                    gt_done[g] = True
                    det_done[cand] = True
                    if len(cand) == 1:
                        recall_acc += 1.0
                        precision_acc += 1.0
                    else:
                        recall_acc += split_weight
                        precision_acc += split_weight * len(cand)
                    kind = "OO" if len(cand) == 1 else "OM"
                    pairs.append({"gt": g, "det": cand.tolist(), "type": kind})

                for d in range(n_det):
                    if det_dont_care[d] or det_done[d]:
                        continue
                    cand = np.flatnonzero(~gt_done & ~dont_care & (r_mat[:, d] >= area_recall))
                    if len(cand) == 0 or round(_ordered_sum(p_mat[cand, d]), 4) < area_precision:
                        continue
                    if det_overlaps[d] < 2:
                        continue
                    det_done[d] = True
                    gt_done[cand] = True
                    if len(cand) == 1:
                        recall_acc += 1.0
                        precision_acc += 1.0
                    else:
                        recall_acc += merge_weight * len(cand)
                        precision_acc += merge_weight
                    kind = "OO" if len(cand) == 1 else "MO"
                    pairs.append({"gt": cand.tolist(), "det": d, "type": kind})

                n_gt_care = int((~dont_care).sum())
                n_det_kept = int(n_det - det_dont_care.sum())
                if n_gt_care == 0:
                    recall = 1.0
                    precision = 0.0 if n_det > 0 else 1.0
                else:
                    recall = recall_acc / n_gt_care
                    precision = 0.0 if n_det_kept == 0 else precision_acc / n_det_kept
        num_gt_care = int((~dont_care).sum())
        num_det_care = int(n_det - det_dont_care.sum())
        per_image.append(
            {
                "name": name,
                "precision": precision,
                "recall": recall,
                "hmean": _hmean(precision, recall),
                "num_gt": n_gt,
                "num_gt_care": num_gt_care,
                "num_det": n_det,
                "num_det_care": num_det_care,
                "recall_sum": recall_acc,
                "precision_sum": precision_acc,
                "pairs": pairs,
                "dropped_dets": np.flatnonzero(det_dont_care).tolist(),
            }
        )
        sum_recall += recall_acc
        sum_precision += precision_acc
        total_gt_care += num_gt_care
        total_det_care += num_det_care
    recall = 0.0 if total_gt_care == 0 else sum_recall / total_gt_care
    precision = 0.0 if total_det_care == 0 else sum_precision / total_det_care
    return EvalResult(
        protocol="ic13",
        precision=precision,
        recall=recall,
        hmean=_hmean(precision, recall),
        num_gt_care=total_gt_care,
        num_det_care=total_det_care,
        recall_sum=sum_recall,
        precision_sum=sum_precision,
        per_image=per_image,
    )


# ------------------------------------------------------------------------------------ folders


def _strip_prefix(stem: str, prefix: str) -> str:
    return stem[len(prefix) :] if stem.startswith(prefix) else stem


def load_gt_folder(gt_dir: str | os.PathLike[str]) -> dict[str, IcdarGT]:
    """All ``gt_<stem>.txt`` files of a folder (or of its ``gt/`` subfolder) keyed by stem."""
    root = Path(gt_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: ground-truth folder not found")
    if not any(root.glob("gt_*.txt")) and (root / "gt").is_dir():
        root = root / "gt"
    files = sorted(root.glob("gt_*.txt"), key=lambda p: natural_key(p.name))
    if not files:
        raise FileNotFoundError(f"{root}: no gt_<name>.txt files")
    return {_strip_prefix(p.stem, "gt_"): read_icdar_gt(p) for p in files}


def load_pred_folder(
    pred_dir: str | os.PathLike[str],
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """All ``res_<stem>.txt`` files of a folder keyed by stem, as (quads, scores or None)."""
    root = Path(pred_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: prediction folder not found")
    files = sorted(root.glob("res_*.txt"), key=lambda p: natural_key(p.name))
    return {_strip_prefix(p.stem, "res_"): read_icdar_results(p) for p in files}


def evaluate_folders(
    gt_dir: str | os.PathLike[str],
    pred_dir: str | os.PathLike[str],
    protocol: Protocol = "ic15",
    allow_empty: bool = False,
) -> EvalResult:
    """Score ``res_<stem>.txt`` files against ``gt_<stem>.txt`` files.

    A missing result file means no detections for that image; a result file without a GT file
    is an error (as in the competition). A prediction folder without any ``res_*.txt`` is an
    error (FileNotFoundError) unless ``allow_empty``: it is almost always the wrong folder or
    a naming mismatch, and would silently score 0. (``synthloc detect`` writes a result file
    for every image, an empty one when nothing was found.) With ``allow_empty`` it scores as
    no detections anywhere, which is what the competition's script gives an empty archive.
    """
    gt = load_gt_folder(gt_dir)
    pred = load_pred_folder(pred_dir)
    if not pred and not allow_empty:
        root = Path(pred_dir)
        others = sum(1 for p in root.iterdir() if p.is_file())
        raise FileNotFoundError(
            f"{root}: no res_<name>.txt result files ({others} other files); check --pred, "
            "or pass --allow-empty to score it as no detections"
        )
    unknown = sorted(set(pred) - set(gt), key=natural_key)
    if unknown:
        raise ValueError(
            f"{pred_dir}: result files without ground truth in {gt_dir}: "
            + ", ".join(f"res_{s}.txt" for s in unknown[:5])
        )
    return evaluate(gt, pred, protocol)


def evaluate(
    gt: Mapping[str, IcdarGT], pred: Mapping[str, Prediction], protocol: Protocol = "ic15"
) -> EvalResult:
    """Dispatch to ``evaluate_ic15`` or ``evaluate_ic13`` with the competition defaults."""
    if protocol == "ic15":
        return evaluate_ic15(gt, pred)
    if protocol == "ic13":
        return evaluate_ic13(gt, pred)
    raise ValueError(f"unknown protocol {protocol!r} (expected 'ic15' or 'ic13')")


def per_image_rows(result: EvalResult) -> list[dict[str, Any]]:
    """Per-image rows without the pair lists, for CSV output."""
    keys: Sequence[str] = [
        "name",
        "precision",
        "recall",
        "hmean",
        "num_gt",
        "num_gt_care",
        "num_det",
        "num_det_care",
    ]
    extra = ["matched"] if result.protocol == "ic15" else ["recall_sum", "precision_sum"]
    return [{k: row[k] for k in [*keys, *extra]} for row in result.per_image]
