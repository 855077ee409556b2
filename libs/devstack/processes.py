"""Start, probe, kill and restart service processes (tests, chaos tests, ``make run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class ProcessStartError(RuntimeError):
    """A service process exited or never became healthy."""


@dataclass
class ServiceProcess:
    """One product process, started as ``python -m <module> <args>``."""

    name: str
    module: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    health_url: str | None = None
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, timeout: float = 30.0) -> None:
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.health_url is not None:
            self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        assert self.health_url is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                msg = f"{self.name} exited with {self.process.returncode} (log: {self.log_file})"
                raise ProcessStartError(msg)
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as response:  # noqa: S310
                    if response.status == 200:  # noqa: PLR2004
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        msg = f"{self.name} not healthy at {self.health_url} within {timeout}s (log: {self.log_file})"
        raise ProcessStartError(msg)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.process is not None and self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or not self.running:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
