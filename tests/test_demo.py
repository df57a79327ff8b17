"""The demo end to end: synthesize -> detect -> evaluate -> report, on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from synthloc.cli import main
from synthloc.model import ModelConfig, build_model, save_model


@pytest.fixture()
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="fcrn-lite", width=0.5))
    path = tmp_path / "tiny.pt"
    save_model(path, model.eval(), extra={"detect": {"scales": [512.0]}})
    return path


def test_demo_writes_report(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            "--count",
            "3",
            "--size",
            "256",
            "--model",
            str(tiny_model),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"report: {(out / 'report.html').resolve()}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 3
    for key in ("precision", "recall", "hmean"):
        assert 0.0 <= metrics[key] <= 1.0
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 384 and sheet.shape[1] == 4 * 384
    page = (out / "report.html").read_text()
    assert "contact_sheet.png" in page and "precision" in page
    # Ground truth exists for every synthesized image and the data set is deterministic.
    assert len(list((out / "data" / "gt").glob("gt_*.txt"))) == 3


def test_demo_rejects_zero_count(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path), "--count", "0"]) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "10"], "--size 10"),
        (["--size", "100000"], "--size 100000"),
        (["--model", "NOT_A_MODEL"], "NOT_A_MODEL"),
    ],
)
def test_demo_bad_options_are_one_line_errors(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing synthesized


def test_demo_out_that_is_a_file_is_a_one_line_error(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file, a_file / "below"):
        code = main(["demo", "--out", str(out), "--model", str(tiny_model), "--no-progress"])
        assert code == 2
        err = capsys.readouterr().err
        assert str(a_file) in err and len(err.strip().splitlines()) == 1, err
