"""Training progress that stays readable in a log file: a tqdm bar per epoch on a terminal, one line per epoch
otherwise (``epoch 3/20  loss 1.2345  lr 1.99e-03  412 items/s  9.7 s``)."""
from __future__ import annotations

import sys
import time
from typing import IO, Any


class Progress:
    """``start_epoch(e)``, ``step(loss)`` per optimisation step, ``end_epoch(e, loss, lr)``. ``enabled=False``
    prints nothing; ``tty`` defaults to whether ``stream`` is a terminal."""

    def __init__(self, epochs: int, steps: int, *, desc: str, batch: int, enabled: bool = True,
                 stream: IO[str] | None = None, tty: bool | None = None):
        self.epochs, self.steps, self.desc, self.batch, self.enabled = epochs, steps, desc, batch, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self._bar: Any = None
        self._start = 0.0

    def start_epoch(self, epoch: int) -> None:
        self._start = time.perf_counter()
        if self.enabled and self.tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.steps, desc=f"{self.desc} epoch {epoch + 1}/{self.epochs}", leave=False,
                             unit="step", file=self.stream)

    def step(self, loss: float) -> None:
        if self._bar is not None:
            self._bar.update()
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def end_epoch(self, epoch: int, loss: float, lr: float) -> float:
        """Close the epoch; returns its seconds."""
        seconds = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled:
            rate = self.steps * self.batch / max(seconds, 1e-9)
            print(f"{self.desc} epoch {epoch + 1}/{self.epochs}  loss {loss:.4f}  lr {lr:.3g}  "
                  f"{rate:.1f} items/s  {seconds:.1f} s", file=self.stream, flush=True)
        return seconds

    def note(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)
