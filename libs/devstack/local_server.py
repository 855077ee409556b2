"""What the embedded servers (``embedded.EmbeddedPostgres``, ``embedded.EmbeddedKafka``) share: a local
process started in a session of its own, with its data folder, killed and stopped alike."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self


class EmbeddedServiceError(RuntimeError):
    """An embedded service did not start or stop as expected."""


@dataclass
class LocalServer:
    """What both servers share: a process in a session of its own and a data folder; without one given,
    a temporary folder made at the first start (kept through kills and restarts) and removed at ``stop``.
    As a context manager: started on entry, stopped on exit."""

    data_dir: Path | None = None
    port: int = 0
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _temporary: Path | None = field(default=None, init=False)

    def start(self, timeout: float = 60.0) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _data_dir(self, prefix: str, inside: str = "") -> Path:
        if self.data_dir is None:
            self._temporary = Path(tempfile.mkdtemp(prefix=prefix))
            self.data_dir = self._temporary / inside
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def _signal(self, signal_number: int) -> bool:
        """Sends the signal to the server's process group; False when it is not running."""
        if self.process is None or self.process.poll() is not None:
            return False
        os.killpg(self.process.pid, signal_number)
        return True

    def kill(self) -> None:
        """SIGKILL the server (a crash); ``start`` again recovers its data."""
        if self.process is not None and self._signal(signal.SIGKILL):
            self.process.wait()

    def _stop(self, stop_signal: int, timeout: float) -> None:
        """Asks the server to shut down with ``stop_signal``; killed when it takes longer than ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
            self.data_dir = None
