"""ICDAR 2015 (IoU) and ICDAR 2013 (DetEval) protocols: hand-worked golden cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthloc.cli import main
from synthloc.data.icdar import (
    IcdarGT,
    list_icdar_folder,
    read_icdar_gt,
    write_icdar_gt,
    write_icdar_results,
)
from synthloc.evaluate import Prediction, evaluate_folders, evaluate_ic13, evaluate_ic15
from synthloc.geometry import polygon_iou

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned quad, clockwise from top-left."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def quads(*boxes: np.ndarray) -> np.ndarray:
    return np.stack(boxes) if boxes else np.zeros((0, 4, 2))


def gt_of(*items: tuple[np.ndarray, str]) -> IcdarGT:
    return IcdarGT(quads(*[q for q, _ in items]), [w for _, w in items])


# ------------------------------------------------------------------------------ ICDAR 2015


def test_ic15_one_to_one_and_strict_iou_threshold() -> None:
    gt = {
        "a": gt_of((box(0, 0, 10, 10), "A"), (box(20, 0, 30, 10), "B"), (box(40, 0, 50, 10), "C"))
    }
    det = quads(
        box(0, 0, 10, 8),  # IoU 80/100 = 0.8 with A -> match
        box(25, 0, 35, 10),  # IoU 50/150 with B -> no
        box(40, 0, 50, 5),  # IoU exactly 0.5 with C -> no (strictly greater required)
    )
    res = evaluate_ic15(gt, {"a": det})
    assert res.per_image[0]["pairs"] == [(0, 0)]
    assert res.recall == pytest.approx(1 / 3) and res.precision == pytest.approx(1 / 3)
    assert res.hmean == pytest.approx(1 / 3)


def test_ic15_greedy_takes_first_detection_not_best() -> None:
    # GT 0 overlaps det 0 (IoU 0.9) and det 1 (IoU 1.0): the official order takes det 0.
    gt = {"a": gt_of((box(0, 0, 10, 10), "A"), (box(0, 0, 10, 8), "B"))}
    det = quads(box(0, 0, 10, 9), box(0, 0, 10, 10))
    res = evaluate_ic15(gt, {"a": det})
    # GT 1 vs det 1: IoU 80/100 = 0.8 -> matched with the remaining detection.
    assert res.per_image[0]["pairs"] == [(0, 0), (1, 1)]
    assert res.precision == 1.0 and res.recall == 1.0


def test_ic15_rotated_quads_use_polygon_iou() -> None:
    diamond = np.array([[10, 0], [20, 10], [10, 20], [0, 10]], dtype=np.float64)  # area 200
    inscribed = box(5, 5, 15, 15)  # area 100, inside the diamond: IoU exactly 0.5
    assert polygon_iou(diamond, inscribed) == pytest.approx(0.5)
    res = evaluate_ic15({"a": gt_of((diamond, "x"))}, {"a": quads(inscribed)})
    assert res.per_image[0]["matched"] == 0
    bigger = np.array([[10, 1], [19, 10], [10, 19], [1, 10]], dtype=np.float64)  # IoU 162/200
    res = evaluate_ic15({"a": gt_of((diamond, "x"))}, {"a": quads(bigger)})
    assert res.per_image[0]["matched"] == 1


def test_ic15_dont_care_drops_detections() -> None:
    gt = {"a": gt_of((box(0, 0, 10, 10), "###"), (box(20, 0, 30, 10), "B"))}
    det = quads(
        box(0, 0, 10, 10),  # all inside don't care -> dropped
        box(5, 0, 15, 10),  # 50% inside -> kept (must be MORE than half)
        box(4, 0, 14, 10),  # 60% inside -> dropped
        box(20, 0, 30, 10),  # matches B
    )
    res = evaluate_ic15(gt, {"a": det})
    row = res.per_image[0]
    assert row["dropped_dets"] == [0, 2]
    assert (row["num_gt_care"], row["num_det_care"], row["matched"]) == (1, 2, 1)
    assert res.recall == 1.0 and res.precision == 0.5
    assert res.hmean == pytest.approx(2 / 3)


def test_ic15_dont_care_gt_is_never_matched() -> None:
    # A detection on a don't-care word that is only 40% inside it: kept, and it cannot match.
    gt = {"a": gt_of((box(0, 0, 10, 10), "###"))}
    res = evaluate_ic15(gt, {"a": quads(box(6, 0, 16, 10))})
    row = res.per_image[0]
    assert row["num_det_care"] == 1 and row["matched"] == 0
    assert (row["recall"], row["precision"]) == (1.0, 0.0)  # no care GT, one kept det


def test_ic15_empty_cases_follow_official_conventions() -> None:
    g = gt_of((box(0, 0, 10, 10), "A"))
    empty = gt_of()
    # empty prediction
    res = evaluate_ic15({"a": g}, {"a": np.zeros((0, 4, 2))})
    assert (res.per_image[0]["recall"], res.per_image[0]["precision"]) == (0.0, 0.0)
    assert (res.precision, res.recall, res.hmean) == (0.0, 0.0, 0.0)
    # missing prediction = no detections
    assert evaluate_ic15({"a": g}, {}).per_image[0]["recall"] == 0.0
    # empty GT with detections: per image recall 1, precision 0
    res = evaluate_ic15({"a": empty}, {"a": quads(box(0, 0, 5, 5))})
    assert (res.per_image[0]["recall"], res.per_image[0]["precision"]) == (1.0, 0.0)
    assert (res.precision, res.recall) == (0.0, 0.0)  # dataset: no GT -> recall 0
    # both empty: per image 1/1, dataset 0/0 (no denominators)
    res = evaluate_ic15({"a": empty}, {"a": np.zeros((0, 4, 2))})
    assert (res.per_image[0]["recall"], res.per_image[0]["precision"]) == (1.0, 1.0)
    assert (res.precision, res.recall, res.hmean) == (0.0, 0.0, 0.0)


def test_ic15_dataset_is_micro_averaged() -> None:
    gt = {
        "img_1": gt_of((box(0, 0, 10, 10), "A"), (box(20, 0, 30, 10), "B")),
        "img_2": gt_of(),
        "img_10": gt_of((box(0, 0, 10, 10), "C")),
    }
    pred: dict[str, Prediction] = {
        "img_1": quads(box(0, 0, 10, 10)),
        "img_2": quads(box(0, 0, 5, 5), box(50, 50, 60, 60)),
        "img_10": (quads(box(0, 0, 10, 10)), np.array([0.9])),
    }
    res = evaluate_ic15(gt, pred)
    # matched 2 of 3 care GT; 2 of 4 detections
    assert res.recall == pytest.approx(2 / 3) and res.precision == pytest.approx(0.5)
    assert [r["name"] for r in res.per_image] == ["img_1", "img_2", "img_10"]
    # a mean of per-image figures would differ: per-image precision is 1, 0, 1
    assert [r["precision"] for r in res.per_image] == [1.0, 0.0, 1.0]


def test_ic15_rejects_predictions_without_gt() -> None:
    with pytest.raises(ValueError, match="without ground truth"):
        evaluate_ic15({"a": gt_of()}, {"b": np.zeros((0, 4, 2))})


def _naive_ic15(gt: IcdarGT, det: np.ndarray) -> tuple[int, int, int]:
    """Literal double loop over the stated rules, for cross-checking the vectorised code."""
    from synthloc.geometry import intersection_area, polygon_area

    dropped = []
    for d in range(len(det)):
        area = float(polygon_area(det[d]))
        for ignored in np.flatnonzero(gt.ignore):
            if area > 0 and intersection_area(gt.quads[ignored], det[d]) / area > 0.5:
                dropped.append(d)
                break
    gt_used, det_used, matched = set(), set(), 0
    for g in range(len(gt.quads)):
        for d in range(len(det)):
            if g in gt_used or d in det_used or gt.ignore[g] or d in dropped:
                continue
            if polygon_iou(gt.quads[g], det[d]) > 0.5:
                gt_used.add(g)
                det_used.add(d)
                matched += 1
    return matched, int((~gt.ignore).sum()), len(det) - len(dropped)


def test_ic15_matches_naive_loops_on_random_scenes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n_gt, n_det = int(rng.integers(0, 7)), int(rng.integers(0, 9))
        centres = rng.integers(10, 60, (n_gt, 2))
        gq = np.stack(
            [box(cx - 8, cy - 5, cx + 8, cy + 5) for cx, cy in centres]
            if n_gt
            else [np.zeros((4, 2))]
        )[:n_gt]
        words = ["###" if rng.random() < 0.3 else "w" for _ in range(n_gt)]
        g = IcdarGT(gq, words)
        jitter = rng.integers(-4, 5, (n_det, 4, 2)).astype(np.float64)
        base = (
            gq[rng.integers(0, max(n_gt, 1), n_det)]
            if n_gt
            else np.tile(box(0, 0, 9, 9), (n_det, 1, 1))
        )
        det = base + jitter
        res = evaluate_ic15({"s": g}, {"s": det})
        row = res.per_image[0]
        assert (row["matched"], row["num_gt_care"], row["num_det_care"]) == _naive_ic15(g, det)


def test_ic15_rounds_float_coordinates_like_written_files(tmp_path: Path) -> None:
    gt = {"img_1": gt_of((box(0, 0, 10, 10), "A"))}
    det = quads(box(0.4, 0.4, 10.4, 5.6))  # rounds to (0,0)-(10,6): IoU 0.6
    in_memory = evaluate_ic15(gt, {"img_1": det})
    write_icdar_gt(tmp_path / "gt" / "gt_img_1.txt", gt["img_1"].quads, gt["img_1"].words)
    write_icdar_results(tmp_path / "res" / "res_img_1.txt", det)
    from_files = evaluate_folders(tmp_path / "gt", tmp_path / "res", "ic15")
    assert in_memory.per_image[0]["matched"] == from_files.per_image[0]["matched"] == 1
    # Unrounded, IoU = 49.92 / 102.08 = 0.489: no match.
    assert evaluate_ic15(gt, {"img_1": det}, integer_coords=False).per_image[0]["matched"] == 0


# ------------------------------------------------------------------------------ ICDAR 2013
# Rectangles are inclusive pixel ranges: box(0, 0, 9, 9) has area 10 * 10 = 100.


def test_ic13_one_to_one() -> None:
    gt = {"a": gt_of((box(0, 0, 9, 9), "A"))}
    res = evaluate_ic13(gt, {"a": quads(box(0, 0, 9, 7))})  # r = 0.8, p = 1
    assert res.per_image[0]["pairs"] == [{"gt": 0, "det": 0, "type": "OO"}]
    assert (res.recall, res.precision, res.hmean) == (1.0, 1.0, 1.0)
    res = evaluate_ic13(gt, {"a": quads(box(0, 0, 9, 6))})  # r = 0.7 < 0.8: nothing
    assert (res.recall, res.precision) == (0.0, 0.0)


def test_ic13_quads_are_reduced_to_their_bounds() -> None:
    diamond = np.array([[10, 0], [20, 10], [10, 20], [0, 10]], dtype=np.float64)
    res = evaluate_ic13({"a": gt_of((box(0, 0, 20, 20), "A"))}, {"a": quads(diamond)})
    assert (res.recall, res.precision) == (1.0, 1.0)


def test_ic13_centre_distance_condition() -> None:
    # GT at one end of a 2.5x longer detection: r = 1, p = 0.4 -> covers.
    # Centres (5, 5) and (12.5, 5); normalised distance 2 * 7.5 / (sqrt(200) + sqrt(725)).
    gt = {"a": gt_of((box(0, 0, 9, 9), "A"))}
    pred = {"a": quads(box(0, 0, 24, 9))}
    norm = 2 * 7.5 / (np.sqrt(200) + np.sqrt(725))
    assert norm == pytest.approx(0.365248, abs=1e-6)
    assert evaluate_ic13(gt, pred).recall == 1.0
    assert evaluate_ic13(gt, pred, center_diff=0.37).recall == 1.0
    # Below the distance: no one-to-one, and one overlap is too few for a split or a merge.
    res = evaluate_ic13(gt, pred, center_diff=0.36)
    assert (res.recall, res.precision, res.per_image[0]["pairs"]) == (0.0, 0.0, [])


def test_ic13_split_one_gt_over_several_detections() -> None:
    gt = {"a": gt_of((box(0, 0, 19, 9), "A"))}  # area 200
    res = evaluate_ic13(gt, {"a": quads(box(0, 0, 9, 9), box(10, 0, 19, 9))})
    assert res.per_image[0]["pairs"] == [{"gt": 0, "det": [0, 1], "type": "OM"}]
    # recall 0.8 for the GT, precision 0.8 per detection
    assert res.recall == pytest.approx(0.8) and res.precision == pytest.approx(0.8)
    gt3 = {"a": gt_of((box(0, 0, 29, 9), "A"))}
    res = evaluate_ic13(gt3, {"a": quads(box(0, 0, 9, 9), box(10, 0, 19, 9), box(20, 0, 29, 9))})
    assert res.recall == pytest.approx(0.8) and res.precision == pytest.approx(2.4 / 3)
    # Two halves covering only 70% of the GT: not enough area recall.
    res = evaluate_ic13(gt3, {"a": quads(box(0, 0, 9, 9), box(10, 0, 20, 9))})
    assert (res.recall, res.precision) == (0.0, 0.0)


def test_ic13_merge_several_gt_in_one_detection() -> None:
    gt = {"a": gt_of((box(0, 0, 9, 9), "A"), (box(12, 0, 21, 9), "B"))}
    res = evaluate_ic13(gt, {"a": quads(box(0, 0, 21, 9))})  # r = 1 each, p = 100/220 each
    assert res.per_image[0]["pairs"] == [{"gt": [0, 1], "det": 0, "type": "MO"}]
    # recall 1 per GT, precision 1 for the detection
    assert (res.recall, res.precision) == (1.0, 1.0)
    assert (res.recall_sum, res.precision_sum) == (2.0, 1.0)


def test_ic13_single_match_with_extra_overlap_scores_one() -> None:
    # A second detection touching the GT (r = 0.1) blocks the one-to-one stage; the split
    # stage then finds a single qualifying detection, which scores 1 / 1.
    gt = {"a": gt_of((box(0, 0, 9, 9), "A"))}
    res = evaluate_ic13(gt, {"a": quads(box(0, 0, 9, 9), box(9, 0, 18, 9))})
    assert res.per_image[0]["pairs"] == [{"gt": 0, "det": [0], "type": "OO"}]
    assert (res.recall, res.precision) == (1.0, 0.5)


def test_ic13_dont_care() -> None:
    gt = {"a": gt_of((box(0, 0, 9, 9), "###"), (box(30, 0, 39, 9), "B"))}
    det = quads(
        box(0, 0, 9, 9),  # p = 1 against don't care -> dropped
        box(5, 0, 14, 9),  # 50 / 100 = 0.5 > 0.4 -> dropped
        box(6, 0, 15, 9),  # 40 / 100 = 0.4, not > 0.4 -> kept, unmatched
        box(30, 0, 39, 9),  # one-to-one with B
    )
    res = evaluate_ic13(gt, {"a": det})
    row = res.per_image[0]
    assert row["dropped_dets"] == [0, 1]
    assert (row["num_gt_care"], row["num_det_care"]) == (1, 2)
    assert (res.recall, res.precision) == (1.0, 0.5)


def test_ic13_empty_cases_follow_official_conventions() -> None:
    g = gt_of((box(0, 0, 9, 9), "A"))
    empty = gt_of()
    res = evaluate_ic13({"a": g}, {"a": np.zeros((0, 4, 2))})
    assert (res.per_image[0]["recall"], res.per_image[0]["precision"]) == (0.0, 0.0)
    assert (res.precision, res.recall, res.hmean) == (0.0, 0.0, 0.0)
    res = evaluate_ic13({"a": empty}, {"a": quads(box(0, 0, 5, 5))})
    assert (res.per_image[0]["recall"], res.per_image[0]["precision"]) == (1.0, 0.0)
    assert (res.precision, res.recall) == (0.0, 0.0)
    res = evaluate_ic13({"a": empty}, {"a": np.zeros((0, 4, 2))})
    assert (res.per_image[0]["recall"], res.per_image[0]["precision"]) == (1.0, 1.0)
    assert (res.precision, res.recall, res.hmean) == (0.0, 0.0, 0.0)
    # No result entry at all: per image 0 / 0 (and the GT still counts in the dataset).
    res = evaluate_ic13({"a": empty, "b": g}, {"b": quads(box(0, 0, 9, 9))})
    assert (res.per_image[0]["recall"], res.per_image[0]["precision"]) == (0.0, 0.0)
    assert (res.recall, res.precision) == (1.0, 1.0)


def test_ic13_micro_average_over_images() -> None:
    gt = {
        "1": gt_of((box(0, 0, 19, 9), "A")),
        "2": gt_of((box(0, 0, 9, 9), "B"), (box(40, 40, 49, 49), "C")),
    }
    pred = {
        "1": quads(box(0, 0, 9, 9), box(10, 0, 19, 9)),  # split: R 0.8, P 1.6
        "2": quads(box(0, 0, 9, 9), box(100, 100, 110, 110)),  # OO for B, one false positive
    }
    res = evaluate_ic13(gt, pred)
    assert res.recall == pytest.approx((0.8 + 1.0) / 3)
    assert res.precision == pytest.approx((1.6 + 1.0) / 4)


# ---------------------------------------------------------------------------------- folders


def test_evaluate_folders_with_ltrb_gt_and_missing_results(tmp_path: Path) -> None:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    (gt_dir / "gt_100.txt").write_text('0, 0, 9, 9, "A"\n20, 0, 29, 9, "B"\n')
    (gt_dir / "gt_101.txt").write_text('0, 0, 9, 9, "C"\n')
    write_icdar_results(pred_dir / "res_100.txt", quads(box(0, 0, 9, 9), box(20, 0, 29, 9)))
    res = evaluate_folders(gt_dir, pred_dir, "ic13")  # res_101.txt missing: no detections
    assert res.recall == pytest.approx(2 / 3) and res.precision == 1.0
    res15 = evaluate_folders(gt_dir, pred_dir, "ic15")
    assert res15.recall == pytest.approx(2 / 3) and res15.precision == 1.0
    write_icdar_results(pred_dir / "res_999.txt", quads(box(0, 0, 9, 9)))
    with pytest.raises(ValueError, match=r"res_999\.txt"):
        evaluate_folders(gt_dir, pred_dir, "ic15")


def test_eval_command_prints_and_writes_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    write_icdar_gt(
        gt_dir / "gt_img_1.txt", quads(box(0, 0, 10, 10), box(20, 0, 30, 10)), ["a", "b"]
    )
    write_icdar_results(pred_dir / "res_img_1.txt", quads(box(0, 0, 10, 10)))
    csv_path, json_path = tmp_path / "per_image.csv", tmp_path / "out" / "r.json"
    code = main(
        ["eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--protocol", "ic15",
         "--per-image", str(csv_path), "--json", str(json_path)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "precision 1.0000" in out and "recall 0.5000" in out and "F 0.6667" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("name,precision,recall,hmean") and lines[1].startswith(
        "img_1,1.0,0.5"
    )
    payload = json.loads(json_path.read_text())
    assert payload["hmean"] == pytest.approx(2 / 3) and payload["per_image"][0]["matched"] == 1
    assert main(["eval", "--gt", str(tmp_path / "nope"), "--pred", str(pred_dir)]) == 2
    assert "nope" in capsys.readouterr().err


def test_shared_icdar2015_dev_gt_as_prediction_is_perfect(tmp_path: Path) -> None:
    folder = SHARED / "icdar2015_dev"
    if not folder.is_dir():
        pytest.skip("shared data not present")
    for image, gt_path in list_icdar_folder(folder):
        write_icdar_results(tmp_path / f"res_{image.stem}.txt", read_icdar_gt(gt_path).quads)
    res = evaluate_folders(folder / "gt", tmp_path, "ic15")
    assert (res.precision, res.recall, res.hmean) == (1.0, 1.0, 1.0)
    assert res.num_gt_care == 386 and len(res.per_image) == 100


# ------------------------------------------------------------------------- eval command: bad input


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    write_icdar_gt(
        gt_dir / "gt_img_1.txt", quads(box(0, 0, 10, 10), box(20, 0, 30, 10)), ["a", "b"]
    )
    write_icdar_results(pred_dir / "res_img_1.txt", quads(box(0, 0, 10, 10)))
    return gt_dir, pred_dir


def test_pred_folder_without_result_files_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir, _ = _folders(tmp_path)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "img_1.txt").write_text("0,0,10,0,10,10,0,10\n")  # not named res_<name>.txt
    with pytest.raises(FileNotFoundError, match=r"wrong: no res_<name>\.txt result files"):
        evaluate_folders(gt_dir, wrong, "ic15")
    code = main(["eval", "--gt", str(gt_dir), "--pred", str(wrong)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and str(wrong) in err and "(1 other files)" in err
    # Opting in scores it as no detections anywhere, as the official script scores an empty zip.
    res = evaluate_folders(gt_dir, wrong, "ic13", allow_empty=True)
    assert (res.precision, res.recall, res.num_gt_care, res.num_det_care) == (0.0, 0.0, 2, 0)
    assert main(["eval", "--gt", str(gt_dir), "--pred", str(wrong), "--allow-empty"]) == 0
    assert "F 0.0000" in capsys.readouterr().out


def test_cr_only_result_file_counts_every_detection(tmp_path: Path) -> None:
    gt_dir, pred_dir = _folders(tmp_path)
    (pred_dir / "res_img_1.txt").write_bytes(b"0,0,10,0,10,10,0,10\r20,0,30,0,30,10,20,10\r")
    res = evaluate_folders(gt_dir, pred_dir, "ic15")
    assert (res.precision, res.recall, res.num_det_care) == (1.0, 1.0, 2)


@pytest.mark.parametrize("target", ["dir", "under_file"])
def test_unwritable_json_is_one_line_and_scores_are_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    gt_dir, pred_dir = _folders(tmp_path)
    if target == "dir":
        out = tmp_path / "taken"
        out.mkdir()
    else:
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "r.json"
    csv_path = tmp_path / "per_image.csv"
    args = ["eval", "--gt", str(gt_dir), "--pred", str(pred_dir)]
    code = main([*args, "--json", str(out), "--per-image", str(csv_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "precision 1.0000  recall 0.5000  F 0.6667" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"synthloc eval: {out}: cannot write")
    assert csv_path.read_text().startswith("name,precision")  # the other report is written
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_eval_names_a_self_intersecting_quad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir, pred_dir = _folders(tmp_path)
    # The second detection is a bow-tie (corners 3 and 4 swapped) over GT "b".
    (pred_dir / "res_img_1.txt").write_text("0,0,10,0,10,10,0,10\n20,0,30,0,20,10,30,10\n")
    assert main(["eval", "--gt", str(gt_dir), "--pred", str(pred_dir)]) == 0
    captured = capsys.readouterr()
    where = pred_dir / "res_img_1.txt"
    assert f"synthloc eval: warning: {where}:2: quad is not a simple polygon" in captured.err
    assert "recall 0.5000" in captured.out  # the repaired bow-tie (two triangles) has IoU 0.5


def test_eval_reports_absurd_coordinate_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir, pred_dir = _folders(tmp_path)
    (gt_dir / "gt_img_1.txt").write_text("0,0,10,0,10,10,0,10,a\n1e300,0,30,0,30,10,20,10,b\n")
    assert main(["eval", "--gt", str(gt_dir), "--pred", str(pred_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"synthloc eval: {gt_dir / 'gt_img_1.txt'}:2: coordinate 1e+300 is out of range "
        "(|value| > 16777216)"
    )
