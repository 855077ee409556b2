"""The whole pipeline as real processes on a PostgreSQL and a broker of its own, so both can be killed.

Two relays and two connectors (``python -m`` processes), the profile service and the stub
CRM/CMS/CSS (``libs.devstack.topology``), on an ``EmbeddedPostgres`` and an ``EmbeddedKafka`` that
only this system uses: the chaos suite kills and restarts every one of them on the same ports.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from libs.devstack.embedded import EmbeddedKafka, EmbeddedPostgres
from libs.devstack.processes import ProcessStartError, ServiceProcess
from libs.devstack.topology import Role, Topology
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from migrations.runner import upgrade_all
from tests.system_support import topology_for_tests

DATABASE = "chaos"
TOPIC = "customer-profile.v1"
# The broker auto-creates a topic a client asks for with its default count; the suite creates it first.
TOPIC_PARTITIONS = 4
RELAY_LEASE_TTL_S = 3.0
CONNECTOR_HTTP_TIMEOUT_S = 1.0
CONNECTOR_BREAKER_COOLDOWN_S = 1.0
# Larger than what the injected outages can spend (the breaker defers without spending retries, and its
# probes take turns among the waiting records): a record that still runs out is a finding.
CONNECTOR_MAX_RETRY_COUNT = 20
PROCESSES = {
    "stubs": Role.STUBS,
    "profile": Role.PROFILE,
    "relay-a": Role.RELAY,
    "relay-b": Role.RELAY,
    "connector-a": Role.CONNECTOR,
    "connector-b": Role.CONNECTOR,
}


@dataclass
class ChaosSystem:
    """Everything the chaos suite starts; ``processes`` by name (``relay-a``, ``connector-b``...)."""

    postgres: EmbeddedPostgres
    kafka: EmbeddedKafka
    processes: dict[str, ServiceProcess]
    urls: dict[str, str]
    logs: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    # SIGKILLs sent per process: a restart that a later kill cut short is not a start failure.
    kills: dict[str, int] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        """libpq URL of the chaos database."""
        return _database_url(self.postgres)

    @property
    def relays(self) -> list[ServiceProcess]:
        return [p for name, p in self.processes.items() if name.startswith("relay-")]

    @property
    def connectors(self) -> list[ServiceProcess]:
        return [p for name, p in self.processes.items() if name.startswith("connector-")]

    def exited(self) -> list[str]:
        """Processes that died on their own (a killed one is restarted by the fault schedule)."""
        return [name for name, p in self.processes.items() if p.process is not None and not p.running]

    async def kill(self, process: ServiceProcess) -> None:
        self.kills[process.name] = self.kills.get(process.name, 0) + 1
        await asyncio.to_thread(process.kill)

    async def restart(self, process: ServiceProcess) -> None:
        """Start a killed process again. On a slow machine another fault's timeline can SIGKILL it while it
        starts (the broker-loss runbook stops every connector): that timeline starts it again itself."""
        kills_before = self.kills.get(process.name, 0)
        try:
            await asyncio.to_thread(process.start, 60.0)
        except ProcessStartError:
            if self.kills.get(process.name, 0) == kills_before:
                raise

    async def kill_broker(self) -> None:
        await asyncio.to_thread(self.kafka.kill)

    async def start_broker(self) -> None:
        await asyncio.to_thread(self.kafka.start)

    def pause_broker(self) -> None:
        """SIGSTOP: the broker hangs with its connections open and keeps its data (an outage without loss)."""
        self.kafka.pause()

    def resume_broker(self) -> None:
        self.kafka.resume()

    async def create_topic(self) -> None:
        await ensure_topic(
            KafkaSettings(bootstrap_servers=self.kafka.bootstrap, topic_partitions=TOPIC_PARTITIONS), TOPIC
        )

    async def kill_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.kill)

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.start)

    @asynccontextmanager
    async def db(self) -> AsyncIterator[asyncpg.Connection]:
        conn: asyncpg.Connection = await asyncpg.connect(self.database_url, timeout=5)
        try:
            yield conn
        finally:
            with suppress(Exception):
                await conn.close(timeout=2)


def _database_url(postgres: EmbeddedPostgres) -> str:
    return f"postgresql://postgres@127.0.0.1:{postgres.port}/{DATABASE}"


def _topology(db_url: str, bootstrap: str, logs: Path, run_id: str) -> Topology:
    return topology_for_tests(
        db_url,
        bootstrap,
        TOPIC,
        logs,
        processes=PROCESSES,
        topic_partitions=TOPIC_PARTITIONS,
        group_prefix=f"sync-chaos-{run_id}",
        # A killed member is evicted when its session times out: short, so chaos rounds are quick.
        group_session_ms=2000,
        group_heartbeat_ms=250,
        overrides={
            # A request that died with the database holds its Idempotency-Key only briefly.
            Role.PROFILE: {"PROFILE_LEDGER_IDEMPOTENCY_LEASE_S": "5"},
            Role.RELAY: {
                # A dead broker is noticed within seconds, not the default 15 s.
                "PROFILE_KAFKA_REQUEST_TIMEOUT_MS": "5000",
                "PROFILE_RELAY_BATCH_SIZE": "50",
                "PROFILE_RELAY_POLL_INTERVAL_S": "0.2",
                "PROFILE_RELAY_RECONNECT_DELAY_S": "0.5",
                "PROFILE_RELAY_LEASE_TTL_S": str(RELAY_LEASE_TTL_S),
                "PROFILE_RELAY_LEASE_RENEW_INTERVAL_S": "0.5",
                "PROFILE_BACKLOG_REFRESH_S": "1",
            },
            Role.CONNECTOR: {
                "CONNECTOR_KAFKA_REQUEST_TIMEOUT_MS": "5000",
                "CONNECTOR_HTTP_TIMEOUT_S": str(CONNECTOR_HTTP_TIMEOUT_S),
                "CONNECTOR_CLAIM_LEASE_S": "3.0",
                "CONNECTOR_RETRY_POLL_INTERVAL_S": "0.2",
                "CONNECTOR_BACKOFF_BASE_S": "0.05",
                "CONNECTOR_BACKOFF_MAX_S": "0.5",
                "CONNECTOR_MAX_RETRY_COUNT": str(CONNECTOR_MAX_RETRY_COUNT),
                "CONNECTOR_BREAKER_COOLDOWN_S": str(CONNECTOR_BREAKER_COOLDOWN_S),
                "CONNECTOR_DLQ_POLL_INTERVAL_S": "0.5",
                "CONNECTOR_SHUTDOWN_GRACE_S": "3",
            },
        },
    )


async def _migrate(postgres: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(postgres.url)
    try:
        assert await admin.fetchval("SHOW synchronous_commit") == "on"
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    await asyncio.to_thread(upgrade_all, _database_url(postgres))


@asynccontextmanager
async def chaos_system(artifacts_dir: Path) -> AsyncIterator[ChaosSystem]:
    """Start PostgreSQL, the broker and every process; stop them all at the end, whatever happened."""
    run_id = uuid.uuid4().hex[:8]
    logs = artifacts_dir / "chaos" / run_id
    # Every acknowledged commit must survive the kill -9 (see EmbeddedPostgres.settings). Each server keeps the
    # port and the temporary data folder it got at its first start across restarts.
    postgres = EmbeddedPostgres(log_file=logs / "postgres.log", settings={"synchronous_commit": "on"})
    kafka = EmbeddedKafka(log_file=logs / "kafka.log")
    processes: dict[str, ServiceProcess] = {}
    try:
        await asyncio.gather(asyncio.to_thread(postgres.start), asyncio.to_thread(kafka.start))
        await _migrate(postgres)
        await ensure_topic(KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_partitions=TOPIC_PARTITIONS), TOPIC)
        topology = _topology(_database_url(postgres), kafka.bootstrap, logs, run_id)
        system = await asyncio.to_thread(topology.start, 60.0, parallel=True)
        processes = system.processes
        yield ChaosSystem(postgres, kafka, processes, system.urls, logs, run_id)
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes.values()), return_exceptions=True)
        await asyncio.to_thread(kafka.stop)
        await asyncio.to_thread(postgres.stop)
