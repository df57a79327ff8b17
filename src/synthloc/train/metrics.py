"""The run's metrics: metrics.jsonl, a long-format metrics.csv and TensorBoard scalars."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any


class MetricsLog:
    """Append-only metrics: JSONL rows, a long-format CSV (step, kind, name, value) and
    TensorBoard scalars when ``torch.utils.tensorboard`` can be imported."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.jsonl = out_dir / "metrics.jsonl"
        self.csv = out_dir / "metrics.csv"
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tb"))
        except ImportError:
            self.writer = None

    def write(self, kind: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"kind": kind, "step": step, "time": time.time(), **values}
        with self.jsonl.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        new_file = not self.csv.exists()
        with self.csv.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(["step", "kind", "name", "value"])
            for name, value in values.items():
                writer.writerow([step, kind, name, value])
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
