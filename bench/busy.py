"""Load generator: keep one CPU core busy, as another job on the machine would.

    python bench/busy.py [SECONDS]      # spins one core (pure Python, one thread) until killed

`bench/run.py --quick` starts it for its "2 threads, one core busy" rows and stops it after
them. Run it by hand next to any benchmark to see how a framework copes with a shared core.
"""

from __future__ import annotations

import sys
import time


def spin(seconds: float | None) -> None:
    end = None if seconds is None else time.monotonic() + seconds
    while end is None or time.monotonic() < end:
        for _ in range(100_000):
            pass


if __name__ == "__main__":
    spin(float(sys.argv[1]) if len(sys.argv) > 1 else None)
