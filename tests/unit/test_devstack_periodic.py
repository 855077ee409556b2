"""make run's timer: a command runs after its first delay, then once per interval, never twice at once."""

from __future__ import annotations

import time
from pathlib import Path

from libs.devstack.periodic import PeriodicCommand
from libs.devstack.processes import ServiceProcess


def wait_finished(command: PeriodicCommand) -> None:
    deadline = time.monotonic() + 30
    while command.process.running:
        assert time.monotonic() < deadline, "the command did not finish"
        time.sleep(0.02)


def test_runs_after_the_first_delay_then_once_per_interval_never_twice_at_once(tmp_path: Path) -> None:
    log = tmp_path / "sleeper.log"
    # A command that takes half a second and prints one line.
    sleeper = ServiceProcess(
        name="sleeper",
        module="timeit",
        args=["-n", "1", "-r", "1", "import time; time.sleep(0.5)"],
        log_file=log,
    )
    command = PeriodicCommand(sleeper, interval_s=100.0, first_delay_s=10.0, started_at=0.0)
    assert command.tick(5.0) is None
    assert command.runs == 0
    assert command.tick(10.0) == "sleeper started (run 1; next in 100 s)"
    assert command.tick(500.0) is None, "still running: the next run waits"
    wait_finished(command)
    assert command.tick(12.0) == f"sleeper finished (exit 0; log: {log})"
    assert command.tick(50.0) is None
    assert command.runs == 1
    assert command.tick(110.0) == "sleeper started (run 2; next in 100 s)"
    wait_finished(command)
    assert command.tick(300.0) == f"sleeper finished (exit 0; log: {log})\nsleeper started (run 3; next in 100 s)"
    command.stop()
    assert command.runs == 3
