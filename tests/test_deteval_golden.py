"""ICDAR 2013 DetEval (``evaluate_ic13``) against the rules of the official Robust Reading script.

The rules, with the competition's default parameters (area recall 0.8, area precision 0.4,
centre-distance 1, one-to-many weight 0.8, many-to-one weight 1), re-derived from the algorithm:

* Boxes are the axis-aligned bounds, inclusive pixel ranges (area (x1 - x0 + 1)(y1 - y0 + 1)).
  r = intersection / GT area, p = intersection / detection area; a pair *covers* when
  r >= 0.8 and p >= 0.4.
* A detection is don't care (dropped) when its p against some ``###`` GT is > 0.4 (strictly).
* Stage 1, one-to-one, GT-major then detection order, both unmatched and care: the pair covers,
  its GT covers no other detection and its detection no other GT (counted over *all* GT and
  detections, matched, dropped and don't care included), the GT overlaps (r > 0) exactly one
  kept detection and the detection exactly one care GT, and 2 |c_g - c_d| / (diag_g + diag_d)
  < 1: recall 1, precision 1.
* Stage 2, one-to-many (a GT split over detections), per care GT in order: the unmatched kept
  detections with p >= 0.4, their r summed left to right and rounded to 4 decimals >= 0.8, and
  the GT overlapping >= 2 kept detections (matched ones included): recall 0.8, precision 0.8 per
  detection (1 / 1 when only one detection qualified).
* Stage 3, many-to-one (several GT in one detection), per kept unmatched detection: the
  unmatched care GT with r >= 0.8, their p summed and rounded >= 0.4, and the detection
  overlapping >= 2 care GT: recall 1 per GT, precision 1 (1 / 1 for a single GT).
* Each stage only uses GT and detections that no earlier match consumed.
* Dataset: sum of recall scores / care GT, sum of precision scores / kept detections.

``_reference_ic13`` below is a separate, loop-by-loop implementation of exactly these rules;
the golden cases are worked by hand, and the random scenes check that the two agree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthloc.data.icdar import IcdarGT, list_icdar_folder, read_icdar_gt
from synthloc.evaluate import evaluate_ic13

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 inclusive


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned quad, clockwise from top-left."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def scene(gt: list[tuple[Rect, str]], det: list[Rect]) -> tuple[IcdarGT, np.ndarray]:
    gt_quads = np.array([box(*r) for r, _ in gt]).reshape(-1, 4, 2)
    return IcdarGT(gt_quads, [w for _, w in gt]), np.array([box(*r) for r in det]).reshape(-1, 4, 2)


def score(gt: list[tuple[Rect, str]], det: list[Rect]) -> dict[str, Any]:
    g, d = scene(gt, det)
    return evaluate_ic13({"a": g}, {"a": d}).per_image[0]


# ------------------------------------------------------------------------ hand-worked rules


def test_area_precision_threshold_is_inclusive() -> None:
    # GT 10 x 10 = 100 at the left end of a 25 x 10 = 250 detection: r = 1, p = 0.4 exactly.
    row = score([((0, 0, 9, 9), "A")], [(0, 0, 24, 9)])
    assert row["pairs"] == [{"gt": 0, "det": 0, "type": "OO"}]
    # 26 x 10 = 260: p = 100 / 260 = 0.385 < 0.4, and one overlap allows no split or merge.
    row = score([((0, 0, 9, 9), "A")], [(0, 0, 25, 9)])
    assert (row["recall_sum"], row["precision_sum"], row["pairs"]) == (0.0, 0.0, [])


def test_split_sum_is_rounded_to_four_decimals() -> None:
    # GT 25000 x 1 px; two detections inside it cover 10000 + 9999 px: r sum 0.79996 -> 0.8.
    gt = [((0, 0, 24999, 0), "long")]
    row = score(gt, [(0, 0, 9999, 0), (10000, 0, 19998, 0)])
    assert row["pairs"] == [{"gt": 0, "det": [0, 1], "type": "OM"}]
    assert row["recall_sum"] == pytest.approx(0.8) and row["precision_sum"] == pytest.approx(1.6)
    # 10000 + 9998 px: 0.79992 rounds to 0.7999 < 0.8.
    row = score(gt, [(0, 0, 9999, 0), (10000, 0, 19997, 0)])
    assert (row["recall_sum"], row["pairs"]) == (0.0, [])


def test_duplicate_detections_become_a_split() -> None:
    # Two identical detections: the GT covers both, so no one-to-one; the split stage takes
    # both (r sum 2 >= 0.8, two overlaps): recall 0.8, precision 0.8 + 0.8.
    row = score([((0, 0, 9, 9), "A")], [(0, 0, 9, 9), (0, 0, 9, 9)])
    assert row["pairs"] == [{"gt": 0, "det": [0, 1], "type": "OM"}]
    assert row["recall_sum"] == pytest.approx(0.8) and row["precision_sum"] == pytest.approx(1.6)


def test_duplicate_gt_become_a_merge() -> None:
    # One detection covering two identical GT: no one-to-one (its column covers twice); the
    # merge stage takes both (p sum 2 >= 0.4, two overlaps): recall 1 + 1, precision 1.
    row = score([((0, 0, 9, 9), "A"), ((0, 0, 9, 9), "B")], [(0, 0, 9, 9)])
    assert row["pairs"] == [{"gt": [0, 1], "det": 0, "type": "MO"}]
    assert (row["recall_sum"], row["precision_sum"]) == (2.0, 1.0)


def test_detection_consumed_by_a_split_is_not_merged_again() -> None:
    # The img_281 pattern of issue #16 ("Ion" above "ORCHARD"). D0 covers A (r 1, p 0.5) and
    # B (r 1, p 0.5); D1 touches A (r 0.1). Stage 1: D0's column covers twice -> no pair.
    # Stage 2: A takes D0 alone (the one qualifying detection; A overlaps D0 and D1), scored
    # 1 / 1 and labelled OO. Stage 3 must skip D0: reusing it would add B (recall 1) and
    # count D0 a second time.
    gt = [((0, 0, 9, 9), "A"), ((0, 10, 9, 19), "B")]
    row = score(gt, [(0, 0, 9, 19), (9, 0, 30, 9)])
    assert row["pairs"] == [{"gt": 0, "det": [0], "type": "OO"}]
    assert (row["recall_sum"], row["precision_sum"]) == (1.0, 1.0)
    assert (row["recall"], row["precision"]) == (0.5, 0.5)


def test_gt_consumed_by_a_split_is_not_merged_again() -> None:
    # A (20 x 10) is split over D1 and D2 (r 0.5 + 0.5, p 1 each). D3 (60 x 10) holds A
    # (p 200 / 600) and B (p 100 / 600); with A consumed only B is left, p 0.167 < 0.4: no
    # merge. Reusing A would give a merge with recall 2.
    gt = [((0, 0, 19, 9), "A"), ((20, 0, 29, 9), "B")]
    row = score(gt, [(0, 0, 9, 9), (10, 0, 19, 9), (0, 0, 59, 9)])
    assert row["pairs"] == [{"gt": 0, "det": [0, 1], "type": "OM"}]
    assert row["recall_sum"] == pytest.approx(0.8) and row["precision_sum"] == pytest.approx(1.6)
    assert (row["num_gt_care"], row["num_det_care"]) == (2, 3)


def test_one_to_one_takes_gt_in_order_and_blocks_later_stages() -> None:
    # Two separate words, each with its own detection, plus a detection in between touching
    # nothing: two one-to-one pairs in GT order and one false positive.
    gt = [((40, 0, 49, 9), "second"), ((0, 0, 9, 9), "first")]
    row = score(gt, [(0, 0, 9, 9), (20, 0, 29, 9), (40, 0, 49, 9)])
    assert row["pairs"] == [
        {"gt": 0, "det": 2, "type": "OO"},
        {"gt": 1, "det": 0, "type": "OO"},
    ]
    assert (row["recall"], row["precision"]) == (1.0, pytest.approx(2 / 3))


def test_dropped_detection_still_blocks_one_to_one_coverage_count() -> None:
    # D0 covers "###" X (p 0.5 > 0.4 -> dropped) and also covers care GT A (r 1, p 0.5).
    # The one-to-one rule counts covering detections over all of them, so A's row covers twice
    # and A gets no one-to-one; A overlaps one kept detection (D1), too few for a split, and
    # D1 overlaps one care GT, too few for a merge: nothing matches.
    gt = [((10, 0, 19, 9), "###"), ((0, 0, 9, 9), "A")]
    row = score(gt, [(0, 0, 19, 9), (0, 0, 9, 9)])
    assert row["dropped_dets"] == [0]
    assert (row["recall_sum"], row["precision_sum"], row["pairs"]) == (0.0, 0.0, [])
    assert (row["num_gt_care"], row["num_det_care"]) == (1, 1)


def test_overlap_counts_ignore_dont_care_gt_and_dropped_detections() -> None:
    # D0 covers A and touches "###" X (p 10 / 110 = 0.09, kept). X is not a care GT, so D0
    # overlaps one care GT and the pair is one-to-one.
    gt = [((0, 0, 9, 9), "A"), ((10, 0, 30, 9), "###")]
    row = score(gt, [(0, 0, 10, 9)])
    assert row["pairs"] == [{"gt": 0, "det": 0, "type": "OO"}]
    # A dropped detection touching A does not count as A's second overlap either.
    gt = [((0, 0, 9, 9), "A"), ((9, 20, 19, 29), "###")]
    row = score(gt, [(0, 0, 9, 9), (9, 9, 19, 29)])  # D1: p vs X 121 / 231 = 0.52 -> dropped
    assert row["dropped_dets"] == [1]
    assert row["pairs"] == [{"gt": 0, "det": 0, "type": "OO"}]


def test_merge_needs_two_overlapping_care_gt() -> None:
    # D covers A (r 1, p 100 / 300) and B (r 1, p 100 / 300): p sum 0.667 >= 0.4 -> merge.
    gt = [((0, 0, 9, 9), "A"), ((20, 0, 29, 9), "B")]
    row = score(gt, [(0, 0, 29, 9)])
    assert row["pairs"] == [{"gt": [0, 1], "det": 0, "type": "MO"}]
    assert (row["recall_sum"], row["precision_sum"]) == (2.0, 1.0)
    # With B don't care, D (p vs B 0.333, kept) overlaps one care GT: no merge, and A alone
    # (p 0.333 < 0.4) does not cover D: nothing.
    row = score([((0, 0, 9, 9), "A"), ((20, 0, 29, 9), "###")], [(0, 0, 29, 9)])
    assert (row["recall_sum"], row["precision_sum"], row["num_det_care"]) == (0.0, 0.0, 1)


# ---------------------------------------------------------------- independent re-derivation


def _reference_ic13(
    gt: list[Rect], dont_care: list[bool], det: list[Rect]
) -> tuple[float, float, list[dict[str, Any]], list[int]]:
    """(recall sum, precision sum, pairs, dropped detections) of one image, from the rules."""

    def area(r: Rect) -> int:
        return (r[2] - r[0] + 1) * (r[3] - r[1] + 1)

    def overlap(a: Rect, b: Rect) -> int:
        w = min(a[2], b[2]) - max(a[0], b[0]) + 1
        h = min(a[3], b[3]) - max(a[1], b[1]) + 1
        return w * h if w >= 0 and h >= 0 else 0

    def centre(r: Rect) -> tuple[float, float]:
        return r[0] + (r[2] - r[0] + 1) / 2, r[1] + (r[3] - r[1] + 1) / 2

    def diagonal(r: Rect) -> float:
        return math.hypot(r[2] - r[0] + 1, r[3] - r[1] + 1)

    n_gt, n_det = len(gt), len(det)
    r = [[overlap(g, d) / area(g) for d in det] for g in gt]
    p = [[overlap(g, d) / area(d) for d in det] for g in gt]
    dropped = [any(dont_care[i] and p[i][j] > 0.4 for i in range(n_gt)) for j in range(n_det)]
    care = [not c for c in dont_care]

    def covers(i: int, j: int) -> bool:
        return r[i][j] >= 0.8 and p[i][j] >= 0.4

    def gt_overlaps(i: int) -> int:
        return sum(1 for j in range(n_det) if not dropped[j] and r[i][j] > 0)

    def det_overlaps(j: int) -> int:
        return sum(1 for i in range(n_gt) if care[i] and r[i][j] > 0)

    gt_used, det_used = [False] * n_gt, [False] * n_det
    recall_sum = precision_sum = 0.0
    pairs: list[dict[str, Any]] = []
    for i in range(n_gt):
        for j in range(n_det):
            if gt_used[i] or det_used[j] or not care[i] or dropped[j] or not covers(i, j):
                continue
            if sum(covers(i, k) for k in range(n_det)) != 1:
                continue
            if sum(covers(k, j) for k in range(n_gt)) != 1:
                continue
            if gt_overlaps(i) != 1 or det_overlaps(j) != 1:
                continue
            (gx, gy), (dx, dy) = centre(gt[i]), centre(det[j])
            if 2 * math.hypot(gx - dx, gy - dy) / (diagonal(gt[i]) + diagonal(det[j])) < 1:
                gt_used[i] = det_used[j] = True
                recall_sum += 1
                precision_sum += 1
                pairs.append({"gt": i, "det": j, "type": "OO"})
    for i in range(n_gt):
        if not care[i] or gt_used[i]:
            continue
        parts = [j for j in range(n_det) if not det_used[j] and not dropped[j] and p[i][j] >= 0.4]
        total = 0.0
        for j in parts:
            total += r[i][j]
        if not parts or round(total, 4) < 0.8 or gt_overlaps(i) < 2:
            continue
        gt_used[i] = True
        for j in parts:
            det_used[j] = True
        recall_sum += 1 if len(parts) == 1 else 0.8
        precision_sum += 1 if len(parts) == 1 else 0.8 * len(parts)
        pairs.append({"gt": i, "det": parts, "type": "OO" if len(parts) == 1 else "OM"})
    for j in range(n_det):
        if dropped[j] or det_used[j]:
            continue
        words = [i for i in range(n_gt) if care[i] and not gt_used[i] and r[i][j] >= 0.8]
        total = 0.0
        for i in words:
            total += p[i][j]
        if not words or round(total, 4) < 0.4 or det_overlaps(j) < 2:
            continue
        det_used[j] = True
        for i in words:
            gt_used[i] = True
        recall_sum += len(words)
        precision_sum += 1
        pairs.append({"gt": words, "det": j, "type": "OO" if len(words) == 1 else "MO"})
    return recall_sum, precision_sum, pairs, [j for j in range(n_det) if dropped[j]]


def _random_scene(rng: np.random.Generator) -> tuple[list[Rect], list[bool], list[Rect]]:
    """Words on a small canvas (so they touch and overlap), detections that are jittered
    copies, halves, unions of two words or random boxes."""

    def random_rect(size: int = 40) -> Rect:
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(0, 25, 2))
        return x0, y0, x0 + w, y0 + h

    gt = [random_rect() for _ in range(int(rng.integers(0, 7)))]
    dont_care = [bool(rng.random() < 0.15) for _ in gt]
    det: list[Rect] = []
    for _ in range(int(rng.integers(0, 8))):
        kind = rng.random()
        if gt and kind < 0.4:
            x0, y0, x1, y1 = gt[int(rng.integers(len(gt)))]
            j = [int(v) for v in rng.integers(-2, 3, 4)]
            det.append((x0 + j[0], y0 + j[1], max(x0 + j[0], x1 + j[2]), max(y0 + j[1], y1 + j[3])))
        elif gt and kind < 0.6:
            x0, y0, x1, y1 = gt[int(rng.integers(len(gt)))]
            cut = int(rng.integers(x0, x1 + 1))
            det.append((x0, y0, cut, y1) if rng.random() < 0.5 else (cut, y0, x1, y1))
        elif len(gt) >= 2 and kind < 0.75:
            a, b = (gt[int(k)] for k in rng.choice(len(gt), 2, replace=False))
            det.append((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
        else:
            det.append(random_rect())
    return gt, dont_care, det


def _agree(
    gt_rects: list[list[Rect]], dont_care: list[list[bool]], det_rects: list[list[Rect]]
) -> float:
    """Assert ours equals the reference on every image and in total; return the F."""
    names = [f"img_{k}" for k in range(len(gt_rects))]
    gt = {
        n: IcdarGT(
            np.array([box(*r) for r in g]).reshape(-1, 4, 2),
            ["###" if c else "w" for c in dc],
        )
        for n, g, dc in zip(names, gt_rects, dont_care)
    }
    pred = {n: np.array([box(*r) for r in d]).reshape(-1, 4, 2) for n, d in zip(names, det_rects)}
    ours = evaluate_ic13(gt, pred)
    by_name = {row["name"]: row for row in ours.per_image}
    recall_total = precision_total = 0.0
    for n, g, dc, d in zip(names, gt_rects, dont_care, det_rects):
        recall_sum, precision_sum, pairs, dropped = _reference_ic13(g, dc, d)
        row = by_name[n]
        assert row["pairs"] == pairs, (n, g, dc, d)
        assert row["dropped_dets"] == dropped, (n, g, dc, d)
        assert row["recall_sum"] == pytest.approx(recall_sum, abs=1e-9), (n, g, dc, d)
        assert row["precision_sum"] == pytest.approx(precision_sum, abs=1e-9), (n, g, dc, d)
        recall_total += recall_sum
        precision_total += precision_sum
    n_gt = sum(len(dc) - sum(dc) for dc in dont_care)
    n_det = sum(
        len(d) - len(_reference_ic13(g, dc, d)[3])
        for g, dc, d in zip(gt_rects, dont_care, det_rects)
    )
    assert (ours.num_gt_care, ours.num_det_care) == (n_gt, n_det)
    recall = recall_total / n_gt if n_gt else 0.0
    precision = precision_total / n_det if n_det else 0.0
    reference_f = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    assert ours.hmean == pytest.approx(reference_f, abs=1e-12)
    return ours.hmean


def test_agrees_with_reference_on_random_scenes() -> None:
    rng = np.random.default_rng(20160627)
    scenes = [_random_scene(rng) for _ in range(4000)]
    kinds: set[str] = set()
    gts, dcs, dets = zip(*scenes)
    _agree(list(gts), list(dcs), list(dets))
    # The scenes must exercise every stage, or agreement would prove little.
    for g, dc, d in scenes:
        kinds.update(pair["type"] for pair in _reference_ic13(g, dc, d)[2])
    assert kinds == {"OO", "OM", "MO"}
    assert sum(any(dc) for dc in dcs) > 500


def _dev_fixture(rng: np.random.Generator) -> tuple[list[list[Rect]], list[list[Rect]]]:
    """ICDAR 2015 dev in ICDAR 2013 form (bounds of the legible words) and a simulated
    detector: most words found with a few pixels of error, some missed, some split in two,
    some neighbours merged, plus false positives."""
    gt_rects: list[list[Rect]] = []
    det_rects: list[list[Rect]] = []
    for _, gt_path in list_icdar_folder(SHARED / "icdar2015_dev"):
        gt = read_icdar_gt(gt_path)
        rects = [
            (int(q[:, 0].min()), int(q[:, 1].min()), int(q[:, 0].max()), int(q[:, 1].max()))
            for q, ignore in zip(gt.quads, gt.ignore)
            if not ignore
        ]
        dets: list[Rect] = []
        for k, (x0, y0, x1, y1) in enumerate(rects):
            u = rng.random()
            j = [int(v) for v in rng.integers(-3, 4, 4)]
            if u < 0.15:
                continue
            if u < 0.25:
                cut = (x0 + x1) // 2
                dets += [(x0, y0 + j[1], cut, y1 + j[3]), (cut + 1, y0 + j[1], x1, y1 + j[3])]
            elif u < 0.35 and k + 1 < len(rects):
                a = rects[k + 1]
                dets.append((min(x0, a[0]), min(y0, a[1]), max(x1, a[2]), max(y1, a[3])))
            else:
                dets.append(
                    (x0 + j[0], y0 + j[1], max(x0 + j[0], x1 + j[2]), max(y0 + j[1], y1 + j[3]))
                )
        for _ in range(int(rng.integers(0, 3))):
            x0, y0 = (int(v) for v in rng.integers(0, 1200, 2))
            dets.append((x0, y0, x0 + int(rng.integers(10, 150)), y0 + int(rng.integers(5, 40))))
        gt_rects.append(rects)
        det_rects.append(dets)
    return gt_rects, det_rects


def test_agrees_with_reference_on_icdar2015_dev_in_ic13_form() -> None:
    if not (SHARED / "icdar2015_dev").is_dir():
        pytest.skip("shared data not present")
    gt_rects, det_rects = _dev_fixture(np.random.default_rng(16))
    assert len(gt_rects) == 100
    hmean = _agree(gt_rects, [[False] * len(g) for g in gt_rects], det_rects)
    assert 0.5 < hmean < 0.95  # a realistic fixture, neither trivial nor empty
