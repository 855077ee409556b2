"""A long command's progress: drawn on a terminal, absent from a pipe or a file."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest

from libs.kit.progress import terminal_progress


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A real pseudo-terminal: the stream a command writes to, and the fd that reads what it shows."""
    reader, writer = os.openpty()
    stream = os.fdopen(writer, "w", encoding="utf-8")
    try:
        yield stream, reader
    finally:
        stream.close()
        os.close(reader)


def _shown(stream: io.TextIOWrapper, reader: int) -> str:
    """Everything the command wrote: one read of a pseudo-terminal may return only a first part."""
    stream.close()  # the writer's end closed: reads end with EIO once all is read
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_a_terminal_sees_the_count_and_the_share_done(terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, reader = terminal
    with terminal_progress("restoring customers", total=2_000, stream=stream) as progress:
        progress(1_000)
        progress(1_000)
    shown = _shown(stream, reader)
    assert "restoring customers: 1,000 of 2,000 (50%)" in shown
    last = shown.rstrip("\r\n").rsplit("\r", 1)[-1]  # the terminal turns the final newline into \r\n
    assert last.startswith("restoring customers: 2,000 of 2,000 (100%)")
    assert shown.endswith("\n"), "the finished line stays, the next output starts below it"


def test_without_a_total_it_counts(terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, reader = terminal
    with terminal_progress("pruned rows", stream=stream) as progress:
        progress(3)
    assert "pruned rows: 3" in _shown(stream, reader)


def test_a_pipe_or_a_file_gets_the_label_once_and_no_redraws() -> None:
    written = io.StringIO()
    with terminal_progress("restoring customers", total=10, stream=written) as progress:
        progress(5)
        progress(5)
    assert written.getvalue() == "restoring customers\n"
