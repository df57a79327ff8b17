"""The command line: eight verbs, each with working --help."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from synthloc.cli import VERBS, build_parser, main

EXPECTED_VERBS = [
    "synth",
    "train",
    "verifier-data",
    "train-verifier",
    "detect",
    "eval",
    "export",
    "demo",
]


def test_verbs_in_pipeline_order() -> None:
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


ROOT = Path(__file__).resolve().parents[1]
# Absolute paths of some machine: the committed files must name paths relative to the repo.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|root|Users|tmp|mnt|data)/")


def test_committed_configs_and_docs_name_no_machine_paths() -> None:
    files = [
        *sorted((ROOT / "configs").glob("*.yaml")),
        *sorted((ROOT / "training" / "default_model").glob("*.yaml")),
        ROOT / "MODEL_CARD.md",
        ROOT / "benchmarks" / "results.json",
    ]
    assert len(files) >= 5
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if MACHINE_PATH.search(line)
    ]
    assert found == []


def test_default_model_config_paths_are_relative_to_the_repo_root() -> None:
    import yaml

    config = yaml.safe_load((ROOT / "configs" / "default_model.yaml").read_text())
    text = repr(config)
    assert "data/shards_s1" in text and "../shared/data/backgrounds" in text
