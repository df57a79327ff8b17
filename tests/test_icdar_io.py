"""ICDAR ground-truth / result file reading and writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthloc.data.icdar import (
    IcdarFormatError,
    IcdarGT,
    IcdarWarning,
    list_icdar_folder,
    read_icdar_gt,
    read_icdar_results,
    write_icdar_gt,
    write_icdar_results,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_ic15_line_with_bom_crlf_and_commas_in_transcription(tmp_path: Path) -> None:
    text = (
        "377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
        "1,2,3,4,5,6,7,8,a,b,,c\r\n"
        "\r\n"
        '10,20,30,20,30,40,10,40,"say ""hi"", ok"\r\n'
        "0,0,9,0,9,9,0,9,###\r\n"
    )
    path = _write(tmp_path / "gt_img_1.txt", b"\xef\xbb\xbf" + text.encode())
    with pytest.warns(IcdarWarning, match=r"gt_img_1\.txt:2: quad is not a simple polygon"):
        gt = read_icdar_gt(path)  # 1,2,...,8 has all corners on one line
    assert gt.words == ["Genaxis Theatre", "a,b,,c", 'say ""hi"", ok', "###"]
    np.testing.assert_array_equal(gt.quads[0], [[377, 117], [463, 117], [465, 130], [378, 130]])
    np.testing.assert_array_equal(gt.quads[1], [[1, 2], [3, 4], [5, 6], [7, 8]])
    assert gt.quads.dtype == np.float32 and gt.quads.shape == (4, 4, 2)
    assert gt.ignore.tolist() == [False, False, False, True]


def test_quoted_transcription_is_unescaped(tmp_path: Path) -> None:
    line = r'0,0,4,0,4,4,0,4, "a\"b\\c"' + "\n"
    gt = read_icdar_gt(_write(tmp_path / "g.txt", line.encode()))
    assert gt.words == ['a"b\\c']


def test_point_order_is_kept_as_written(tmp_path: Path) -> None:
    # Counter-clockwise in the file: the reader must not reorder.
    gt = read_icdar_gt(_write(tmp_path / "g.txt", b"0,0,0,10,10,10,10,0,x\n"))
    np.testing.assert_array_equal(gt.quads[0], [[0, 0], [0, 10], [10, 10], [10, 0]])


def test_ic13_ltrb_lines(tmp_path: Path) -> None:
    text = '38, 43, 920, 215, "Tiredness"\r\n275, 264, 665, 450, "kills, really"\r\n1,2,3,4\r\n'
    gt = read_icdar_gt(_write(tmp_path / "gt_100.txt", text.encode("utf-8")))
    assert gt.words == ["Tiredness", "kills, really", ""]
    np.testing.assert_array_equal(gt.quads[0], [[38, 43], [920, 43], [920, 215], [38, 215]])
    np.testing.assert_array_equal(gt.quads[2], [[1, 2], [3, 2], [3, 4], [1, 4]])
    assert not gt.ignore.any()


def test_eight_values_without_transcription(tmp_path: Path) -> None:
    with pytest.warns(IcdarWarning, match=r"g\.txt:1:"):  # a zero-area quad
        gt = read_icdar_gt(_write(tmp_path / "g.txt", b"1,2,3,4,5,6,7,8\n"))
    assert gt.words == [""] and gt.quads.shape == (1, 4, 2)


def test_empty_file(tmp_path: Path) -> None:
    gt = read_icdar_gt(_write(tmp_path / "g.txt", b"\xef\xbb\xbf\r\n"))
    assert len(gt) == 0 and gt.quads.shape == (0, 4, 2) and gt.ignore.shape == (0,)


@pytest.mark.parametrize(
    "bad_line",
    [
        "1,2,3,4,5,6,7\r\n",  # truncated 8-value line
        "1,2,x,4,5,6,7,8,word\r\n",  # non-numeric coordinate
        "hello world\r\n",
        '30, 40, 10, 20, "reversed"\r\n',  # xmax < xmin
        "1,2,3\r\n",
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    path = _write(tmp_path / "gt_img_7.txt", ("0,0,1,0,1,1,0,1,ok\r\n\r\n" + bad_line).encode())
    with pytest.raises(IcdarFormatError) as err:
        read_icdar_gt(path)
    assert str(err.value).startswith(f"{path}:3:")


def test_invalid_utf8_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.txt", b"0,0,1,0,1,1,0,1,\xff\xfe\n")
    with pytest.raises(IcdarFormatError, match="UTF-8"):
        read_icdar_gt(path)


def test_invalid_utf8_names_the_line_not_a_byte_offset(tmp_path: Path) -> None:
    # BOM, two good lines (CRLF), then a Latin-1 word on line 3.
    data = (
        "\ufeff0,0,1,0,1,1,0,1,café\r\n0,0,1,0,1,1,0,1,ok\r\n".encode()
        + b"0,0,1,0,1,1,0,1,caf\xe9\r\n"
    )
    path = _write(tmp_path / "gt_img_3.txt", data)
    with pytest.raises(IcdarFormatError) as err:
        read_icdar_gt(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: not valid UTF-8")
    assert "0xe9" in message and "column 20" in message


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
def test_every_line_ending_ends_a_line(tmp_path: Path, ending: str) -> None:
    lines = ["0,0,9,0,9,9,0,9,one", "20,0,29,0,29,9,20,9,two", "40,0,49,0,49,9,40,9,three"]
    path = _write(tmp_path / "gt_img_1.txt", ending.join(lines).encode())
    gt = read_icdar_gt(path)
    assert gt.words == ["one", "two", "three"]
    assert gt.quads[:, 0, 0].tolist() == [0, 20, 40]
    res = _write(
        tmp_path / "res_img_1.txt", ending.join(f[: f.rindex(",")] for f in lines).encode()
    )
    assert len(read_icdar_results(res)[0]) == 3


def test_cr_only_file_reports_the_right_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "gt_img_2.txt", b"0,0,1,0,1,1,0,1,a\r\r0,0,1,0,1\r")
    with pytest.raises(IcdarFormatError) as err:
        read_icdar_gt(path)
    assert str(err.value).startswith(f"{path}:3:")


@pytest.mark.parametrize(
    "line",
    [
        "1e300,0,10,0,10,10,0,10,word",
        "0,0,10,0,10,10,0,-2e7,word",
        '1e300, 0, 10, 10, "word"',
        "0,0,1e400,0,10,10,0,10,word",
    ],
)
def test_absurd_or_infinite_gt_coordinate_is_an_error(tmp_path: Path, line: str) -> None:
    path = _write(tmp_path / "gt_img_4.txt", f"0,0,1,0,1,1,0,1,ok\n{line}\n".encode())
    with pytest.raises(IcdarFormatError) as err:
        read_icdar_gt(path)
    assert str(err.value).startswith(f"{path}:2:")
    assert "coordinate" in str(err.value)


@pytest.mark.parametrize(
    "line", ["1e300,0,10,0,10,10,0,10", "0,0,1e300,10", "0,0,9,0,9,9,0,3e7,0.5"]
)
def test_absurd_result_coordinate_is_an_error(tmp_path: Path, line: str) -> None:
    path = _write(tmp_path / "res_img_4.txt", f"{line}\n".encode())
    with pytest.raises(IcdarFormatError, match=r"res_img_4\.txt:1: coordinate .* out of range"):
        read_icdar_results(path)


def test_largest_accepted_coordinate_reads_exactly(tmp_path: Path) -> None:
    path = _write(tmp_path / "gt_img_5.txt", b"0,0,16777216,0,16777216,9,0,9,far\n")
    assert read_icdar_gt(path).quads[0, 1, 0] == 16777216.0


def test_self_intersecting_quad_warns_with_file_and_line(tmp_path: Path) -> None:
    # Corners 3 and 4 swapped: a bow-tie whose edges cross at (5, 5).
    text = "0,0,10,0,10,10,0,10,ok\n0,0,10,0,0,10,10,10,bowtie\n"
    path = _write(tmp_path / "gt_img_6.txt", text.encode())
    with pytest.warns(IcdarWarning) as record:
        gt = read_icdar_gt(path)
    assert len(gt) == 2 and len(record) == 1
    assert str(record[0].message).startswith(f"{path}:2: quad is not a simple polygon")
    res = _write(
        tmp_path / "res_img_6.txt", b"0,0,10,0,10,10,0,10\n0,0,10,10,10,0,0,10,0.9\n"[:-5] + b"\n"
    )
    with pytest.warns(IcdarWarning, match=rf"{res.name}:2: quad is not a simple polygon"):
        read_icdar_results(res)


def test_simple_quads_and_ltrb_boxes_do_not_warn(tmp_path: Path) -> None:
    import warnings

    text = '0,0,10,0,10,10,0,10,a\n5, 5, 5, 9, "thin"\n0,0,10,0,10,10,0,10,b\n'
    path = _write(tmp_path / "gt_img_8.txt", text.encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_icdar_gt(path)) == 3


def test_gt_round_trip_rounds_to_int(tmp_path: Path) -> None:
    quads = np.array(
        [[[10.4, 20.6], [30.5, 20], [30, 40], [10, 40]], [[0, 0], [5, 0], [5, 5], [0, 5]]],
        np.float32,
    )
    words = ["a, b", "###"]
    path = tmp_path / "sub" / "gt_x.txt"
    write_icdar_gt(path, quads, words)
    raw = path.read_bytes()
    assert raw.startswith(b"10,21,")  # 30.5 rounds half to even -> 30
    assert raw.endswith(b"\r\n") and b"30,20,30,40" in raw
    gt = read_icdar_gt(path)
    assert gt.words == words and gt.ignore.tolist() == [False, True]
    np.testing.assert_array_equal(gt.quads, np.rint(quads))
    assert [p.name for p in path.parent.iterdir()] == ["gt_x.txt"]  # no temp files left


def test_write_rejects_line_break_in_word(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="line break"):
        write_icdar_gt(tmp_path / "g.txt", np.zeros((1, 4, 2)), ["a\nb"])
    assert not (tmp_path / "g.txt").exists()


def test_results_round_trip_with_and_without_scores(tmp_path: Path) -> None:
    quads = np.array([[[1, 2], [9, 2], [9, 8], [1, 8]], [[3, 3], [7, 4], [6, 9], [2, 8]]], float)
    write_icdar_results(tmp_path / "res_a.txt", quads)
    assert (tmp_path / "res_a.txt").read_bytes() == b"1,2,9,2,9,8,1,8\r\n3,3,7,4,6,9,2,8\r\n"
    got, scores = read_icdar_results(tmp_path / "res_a.txt")
    assert scores is None
    np.testing.assert_array_equal(got, quads)

    write_icdar_results(tmp_path / "res_b.txt", quads, np.array([0.9, 0.25]))
    got, scores = read_icdar_results(tmp_path / "res_b.txt")
    np.testing.assert_array_equal(got, quads)
    assert scores is not None
    np.testing.assert_allclose(scores, [0.9, 0.25])

    write_icdar_results(tmp_path / "res_c.txt", np.zeros((0, 4, 2)))
    got, scores = read_icdar_results(tmp_path / "res_c.txt")
    assert got.shape == (0, 4, 2) and scores is None


def test_results_ltrb_and_errors(tmp_path: Path) -> None:
    got, scores = read_icdar_results(_write(tmp_path / "r.txt", b"1,2,5,6,0.5\r\n"))
    np.testing.assert_array_equal(got[0], [[1, 2], [5, 2], [5, 6], [1, 6]])
    assert scores is not None and scores.tolist() == [0.5]
    bad = _write(tmp_path / "res_bad.txt", b"1,2,3,4,5,6,7,8\n1,2,3,4,5,6,7,8,0.3\n")
    with pytest.raises(IcdarFormatError, match=r"res_bad\.txt:2:"):
        read_icdar_results(bad)
    bad = _write(tmp_path / "res_bad2.txt", b"1,2,3,4,5,6\n")
    with pytest.raises(IcdarFormatError, match=r"res_bad2\.txt:1:"):
        read_icdar_results(bad)


def test_list_folder_pairs_ic15_and_ic13_names(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "gt").mkdir()
    for stem in ("img_10", "img_2", "img_1", "img_3"):
        (tmp_path / "images" / f"{stem}.jpg").write_bytes(b"")
    for stem in ("img_10", "img_2", "img_1"):  # img_3 has no GT -> left out
        (tmp_path / "gt" / f"gt_{stem}.txt").write_bytes(b"")
    pairs = list_icdar_folder(tmp_path)
    assert [(i.name, g.name) for i, g in pairs] == [
        ("img_1.jpg", "gt_img_1.txt"),
        ("img_2.jpg", "gt_img_2.txt"),
        ("img_10.jpg", "gt_img_10.txt"),
    ]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "100.jpg").write_bytes(b"")
    (flat / "gt_100.txt").write_bytes(b"")
    (flat / "101.PNG").write_bytes(b"")
    (flat / "101.txt").write_bytes(b"")
    assert [(i.name, g.name) for i, g in list_icdar_folder(flat)] == [
        ("100.jpg", "gt_100.txt"),
        ("101.PNG", "101.txt"),
    ]
    with pytest.raises(FileNotFoundError):
        list_icdar_folder(tmp_path / "missing")


def test_icdar_gt_dataclass_derives_ignore() -> None:
    gt = IcdarGT(np.zeros((2, 4, 2)), ["###", "x"])
    assert gt.ignore.tolist() == [True, False]
    with pytest.raises(ValueError):
        IcdarGT(np.zeros((2, 4, 2)), ["x"])


def test_shared_icdar2015_folders_parse() -> None:
    if not SHARED.is_dir():
        pytest.skip("shared data not present")
    dev = list_icdar_folder(SHARED / "icdar2015_dev")
    train = list_icdar_folder(SHARED / "icdar2015_train10")
    assert len(dev) == 100 and len(train) == 10
    gt = read_icdar_gt(SHARED / "icdar2015_train10" / "gt" / "gt_img_1.txt")  # BOM-prefixed
    assert gt.words[0] == "Genaxis Theatre"
    np.testing.assert_array_equal(gt.quads[0], [[377, 117], [463, 117], [465, 130], [378, 130]])
    total = sum(len(read_icdar_gt(g)) for _, g in dev)
    assert total == 1020
