"""Atomic writes: complete new file or untouched old one, never a leftover temp file."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloc.atomic import atomic_path, write_bytes_atomic, write_text_atomic


def test_writes_create_folders_and_keep_line_endings(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.txt"
    write_text_atomic(target, "x\r\ny\n")
    assert target.read_bytes() == b"x\r\ny\n"
    write_bytes_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.txt"]


def test_failure_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bin"]


def test_temporary_name_is_hidden_next_to_the_target_with_the_given_suffix(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    with atomic_path(target, suffix=".onnx") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.onnx.")
        assert tmp.suffix == ".onnx" and not target.exists()
        tmp.write_bytes(b"graph")
    assert target.read_bytes() == b"graph"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600
