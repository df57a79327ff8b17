"""The command line: six verbs, each with working --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthloc.cli import VERBS, build_parser, main

EXPECTED_VERBS = ["synth", "train", "detect", "eval", "export", "demo"]


def test_six_verbs_in_order() -> None:
    assert list(VERBS) == EXPECTED_VERBS


def test_top_level_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in EXPECTED_VERBS:
        assert f"    {verb}" in out


@pytest.mark.parametrize("verb", EXPECTED_VERBS)
def test_each_verb_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: synthloc {verb}" in out


def test_unknown_verb_is_an_error() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["frobnicate"])
    assert exc.value.code == 2


def test_console_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synthloc", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "detect" in result.stdout


def test_train_map_folders_need_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--out", str(tmp_path / "run"), "--synth-depth", str(tmp_path)])
    assert code == 2
    assert (
        "--synth-depth and --synth-seg pair maps with --synth-backgrounds"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()
