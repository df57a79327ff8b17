"""A first SIGTERM or SIGINT asks the training loop to stop after a checkpoint."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignals:
    """Between ``install`` and ``restore``, the first SIGTERM or SIGINT only asks the training
    loop to stop: it ends after the current step and a checkpoint, like ``stop_at_step``. The
    previous handlers are then put back, so a second signal acts as usual (SIGINT raises
    KeyboardInterrupt). Handlers can only be set from the main thread; elsewhere this does
    nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signal.Signals(signum).name
        self.restore()

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
