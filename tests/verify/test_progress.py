"""The progress bar is drawn on a terminal only."""

from __future__ import annotations

import io

from tf2torch.verify.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal():
    stream = _Terminal()
    progress = Progress(4, "verifying", stream=stream)
    progress.advance("Keras")
    progress.advance("cumulative")
    assert "verifying [############............] 2/4 cumulative" in stream.getvalue()
    progress.close()
    assert stream.getvalue().endswith("\r\033[K")


def test_nothing_when_piped_or_quiet():
    piped, quiet = io.StringIO(), _Terminal()
    for progress in (Progress(3, "verifying", stream=piped), Progress(3, "verifying", stream=quiet, quiet=True)):
        progress.advance("Keras")
        progress.close()
    assert piped.getvalue() == "" and quiet.getvalue() == ""
