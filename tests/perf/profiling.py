"""py-spy profiles of the real service processes during a benchmark's measured window.

``BENCH_PROFILE=folder make bench`` samples each process of a scenario (``py-spy record``,
``--nonblocking``: the process is never paused, so the figures stay what they are without the
profiler's stops) and writes per process ``<scenario>-<name>.txt`` (collapsed stacks, one line per
stack and its sample count; ``speedscope`` or ``flamegraph.pl`` read them) and
``<scenario>-<name>.top.txt``: the functions with the largest share of samples, on their own
(self) and with what they call (inclusive). Without ``BENCH_PROFILE`` nothing is started.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

PY_SPY = shutil.which("py-spy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy")
RATE_HZ = 97  # not a divisor of the event loop's timers
TOP = 25
_LINE = re.compile(r":\d+\)$")


@contextmanager
def profiled(scenario: str, pids: Mapping[str, int | None]) -> Iterator[None]:
    """Sample ``pids`` (and their children: uvicorn's workers) while the block runs, when ``BENCH_PROFILE`` is set."""
    folder = os.environ.get("BENCH_PROFILE")
    if not folder:
        yield
        return
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    spies: dict[Path, subprocess.Popen[bytes]] = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        raw = out / f"{scenario}-{name}.txt"
        command = [PY_SPY, "record", "--nonblocking", "--subprocesses", "--format", "raw", "--rate", str(RATE_HZ)]
        spies[raw] = subprocess.Popen(
            [*command, "--pid", str(pid), "--output", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    try:
        yield
    finally:
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        for raw, spy in spies.items():
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            if raw.exists():
                summary = summarize(raw.read_text())
                raw.with_suffix(".top.txt").write_text(summary)
                print(f"profile {raw.stem}:\n{summary}", flush=True)


def summarize(collapsed: str, top: int = TOP) -> str:
    """The functions with the largest share of samples: self (the frame on top) and inclusive."""
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        self_samples[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples (~{total / RATE_HZ:.1f} s on CPU or in a system call)", "self:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in self_samples.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
