"""Checks of output locations that commands run before any work, so that a bad ``--out``
is one clear line (naming the path and the problem) instead of a traceback later."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def out_folder_problem(folder: Path) -> str | None:
    """Create ``folder`` if needed and prove it writable; a one-line problem, or None."""
    if folder.exists() and not folder.is_dir():
        return f"{folder}: exists and is not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".synthloc-probe-"):
            pass
    except OSError as exc:
        return f"{folder}: cannot write there ({exc.strerror or exc})"
    return None


def out_file_problem(path: Path) -> str | None:
    """Check that a file can be written at ``path`` (its folder is created if needed)."""
    if path.is_dir():
        return f"{path}: is a folder; give a file name, e.g. {path / 'model.onnx'}"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path}: exists and is not writable"
    return out_folder_problem(path.parent if str(path.parent) else Path("."))
