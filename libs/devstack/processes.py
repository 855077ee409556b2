"""Start, probe, kill and restart service processes (tests, chaos tests, ``make run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit


class ProcessStartError(RuntimeError):
    """A service process exited or never became healthy."""


@dataclass
class ServiceProcess:
    """One product process, started as ``python -m <module> <args>``.

    ``url`` is its base URL. A server may bind a port of its own choosing: its ``port_setting`` (in
    ``env``) is ``"0"`` and ``announces`` finds the URL in a line of its log (``log_file``). The start
    reads it back, sets ``url`` and ``health_url`` (``url`` + ``health_path``) and pins the port in
    ``env``, so that a restart comes back on the same URL.
    """

    name: str
    module: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    health_url: str | None = None
    log_file: Path | None = None
    url: str | None = None
    port_setting: str | None = None
    announces: Callable[[str], str | None] | None = None
    health_path: str = "/health"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def binds_its_own_port(self) -> bool:
        return self.announces is not None and self.port_setting is not None and self.env.get(self.port_setting) == "0"

    def start(self, timeout: float = 30.0) -> None:
        out: IO[bytes] | int = subprocess.DEVNULL
        log_offset = 0
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_file.open("ab")
            log_offset = out.tell()
        elif self.binds_its_own_port:
            msg = f"{self.name} binds its own port: its log, where it says which, needs a log_file"
            raise ValueError(msg)
        deadline = time.monotonic() + timeout
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.binds_its_own_port:
            self._read_back_url(log_offset, deadline)
        if self.health_url is not None:
            self.wait_healthy(max(deadline - time.monotonic(), 1.0))

    def _read_back_url(self, offset: int, deadline: float) -> None:
        """Wait for the line of the log (from ``offset``) that says where the server listens."""
        assert self.log_file is not None
        assert self.announces is not None
        assert self.port_setting is not None
        pending = b""
        with self.log_file.open("rb") as log:
            log.seek(offset)
            while time.monotonic() < deadline:
                self._fail_if_exited()
                *lines, pending = (pending + log.read()).split(b"\n")
                for line in lines:
                    if url := self.announces(line.decode(errors="replace")):
                        self.url = url.rstrip("/")
                        self.health_url = f"{self.url}{self.health_path}"
                        self.env = {**self.env, self.port_setting: str(urlsplit(self.url).port)}
                        return
                time.sleep(0.05)
        msg = f"{self.name} did not say where it listens within its start timeout (log: {self.log_file})"
        raise ProcessStartError(msg)

    def _fail_if_exited(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            msg = f"{self.name} exited with {self.process.returncode} (log: {self.log_file})"
            raise ProcessStartError(msg)

    def wait_healthy(self, timeout: float) -> None:
        assert self.health_url is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._fail_if_exited()
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
