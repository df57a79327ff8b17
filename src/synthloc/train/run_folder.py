"""The files of one run folder, and the rule that a new run never silently replaces an old one."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


class RunExistsError(FileExistsError):
    """A new run was asked for in a folder that already holds one."""


@dataclass(frozen=True)
class RunFolder:
    """A training run's folder (see :mod:`synthloc.train` for what each file holds)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def best_model(self) -> Path:
        return self.path / "best_model.pt"

    @property
    def final_model(self) -> Path:
        return self.path / "model.pt"

    @property
    def metrics(self) -> tuple[Path, Path]:
        return self.path / "metrics.jsonl", self.path / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    def run_files(self) -> list[Path]:
        """The files (and tb/ folder) of a run that exist in this folder."""
        candidates = [
            self.config,
            self.last,
            self.best,
            self.best_model,
            self.final_model,
            *self.metrics,
            self.tensorboard,
        ]
        return [path for path in candidates if path.exists()]

    def check_new_run(self, overwrite: bool) -> None:
        """RunExistsError when the folder holds a run and ``overwrite`` is not set."""
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{self.path}: not a folder (the run folder to create)")
        found = self.run_files()
        if found and not overwrite:
            names = ", ".join(path.name for path in found)
            raise RunExistsError(
                f"{self.path}: already holds a training run ({names}); continue it with "
                "--resume, choose a new --out folder, or replace it with --overwrite"
            )

    def clear(self) -> None:
        """Delete the run's files (for an explicit overwrite); other files are left alone."""
        for path in self.run_files():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
