"""Commands the ``make run`` supervisor runs on a timer (the local stand-in for a CronJob)."""

from __future__ import annotations

from dataclasses import dataclass, field

from libs.devstack.processes import ServiceProcess


@dataclass
class PeriodicCommand:
    """``process`` run first ``first_delay_s`` after ``started_at``, then every ``interval_s``; never two at once.

    The supervisor calls ``tick`` from its loop with a monotonic clock; a run that is still going when
    the next is due delays it. Each finished run is reported once (``tick`` returns a line to print).
    """

    process: ServiceProcess
    interval_s: float
    first_delay_s: float
    started_at: float
    next_run: float = field(init=False)
    runs: int = field(default=0, init=False)
    _reported: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.next_run = self.started_at + self.first_delay_s

    def tick(self, now: float) -> str | None:
        if self.process.running:
            return None
        line = None
        if not self._reported and self.process.process is not None:
            self._reported = True
            line = (
                f"{self.process.name} finished (exit {self.process.process.returncode}; log: {self.process.log_file})"
            )
        if now >= self.next_run:
            self.process.start()
            self.runs += 1
            self._reported = False
            self.next_run = now + self.interval_s
            line = f"{line}\n" if line else ""
            line += f"{self.process.name} started (run {self.runs}; next in {self.interval_s:.0f} s)"
        return line

    def stop(self) -> None:
        self.process.stop()
