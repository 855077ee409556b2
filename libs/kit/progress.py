"""Progress of a long command (restore, key rotation, retention): on stderr, and only on a terminal.

Commands print their result as JSON on stdout, never mixed with progress. A person at a terminal
also sees a line on stderr that counts what is done so far (of how many, when known), rewritten in
place; when stderr is a pipe or a file (a CronJob's log), it gets the label once, when the work
starts, and no redraws.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

# Called with how many more items are done (a batch's size).
Progress = Callable[[int], None]

# Redrawing more often than this only costs the terminal time.
_REDRAW_EVERY_S = 0.2


def no_progress(_: int) -> None:
    """For callers that show none (the HTTP API, tests, a command without a terminal)."""


class _Line:
    def __init__(self, label: str, total: int | None, stream: TextIO) -> None:
        self._label = label
        self._total = total
        self._stream = stream
        self._done = 0
        self._drawn_at = float("-inf")

    def advance(self, count: int) -> None:
        self._done += count
        if time.monotonic() - self._drawn_at >= _REDRAW_EVERY_S:
            self._draw()

    def finish(self) -> None:
        self._draw()
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self) -> None:
        text = f"{self._label}: {self._done:,}"
        if self._total:
            text += f" of {self._total:,} ({min(100, self._done * 100 // self._total)}%)"
        self._stream.write(f"\r{text}\x1b[K")  # back to the line's start, clear what the last draw left
        self._stream.flush()
        self._drawn_at = time.monotonic()


@contextmanager
def terminal_progress(label: str, total: int | None = None, stream: TextIO | None = None) -> Iterator[Progress]:
    """A ``Progress`` that draws ``label: done of total (n%)`` on ``stream`` (stderr) if it is a terminal."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        out.write(f"{label}\n")
        out.flush()
        yield no_progress
        return
    line = _Line(label, total, out)
    try:
        yield line.advance
    finally:
        line.finish()
