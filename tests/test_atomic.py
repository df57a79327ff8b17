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
