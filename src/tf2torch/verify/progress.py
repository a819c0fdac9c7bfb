"""A one-line progress bar on stderr for long verification steps (stdlib only).

Drawn only on a terminal: when stderr is a file or a pipe (CI logs), or with --quiet,
nothing is written.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24


class Progress:
    def __init__(self, total: int, title: str, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.total, self.title, self.done = total, title, 0
        self.started = time.perf_counter()
        self._draw("starting")

    def advance(self, label: str) -> None:
        self.done = min(self.done + 1, self.total)
        self._draw(label)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")  # clear the line: the report follows
            self.stream.flush()

    def _draw(self, label: str) -> None:
        if not self.enabled:
            return
        filled = _WIDTH * self.done // max(self.total, 1)
        elapsed = time.perf_counter() - self.started
        self.stream.write(f"\r\033[K{self.title} [{'#' * filled}{'.' * (_WIDTH - filled)}] "
                          f"{self.done}/{self.total} {label} ({elapsed:.0f} s)")
        self.stream.flush()
