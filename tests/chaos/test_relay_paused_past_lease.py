"""A relay SIGSTOPped past its lease with a batch in flight is fenced at the broker.

Relay A reaches the broker through a TCP proxy the test controls (a listener of its own, advertised
at the proxy's port). The proxy holds A's bytes, A hands a batch to its producer (in flight, never
acknowledged), and A is SIGSTOPped. Relay B takes A's shards once the lease expires, fences A's
transactional producer, and publishes the same customers' newer changes. Then the proxy lets A's
held requests through and A is SIGCONTed: a ``read_committed`` consumer must never see a customer's
version go backwards. (Without the fence, A's held batch would land after B's newer records.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import urllib.request
from pathlib import Path

import pytest

from libs.devstack.embedded import EmbeddedKafka, free_port
from libs.devstack.processes import ServiceProcess
from libs.devstack.topology import Role, Topology
from libs.kit.db import sqlalchemy_url
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from tests.relay_support import Collector, collecting, engine_for, name_changed, wait_until, write

CUSTOMERS = [f"P{n:02d}" for n in range(10)]
LEASE_TTL_S = 3.0


class HoldingProxy:
    """Forwards TCP to the broker; while held, bytes from the client wait in the proxy."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for task in (
            asyncio.create_task(self._pump(reader, upstream_writer, held=True)),
            asyncio.create_task(self._pump(upstream_reader, writer, held=False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, held: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if held:
                    await self._released.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()


def _relays(db_url: str, bootstrap: str, held_bootstrap: str, topic: str, logs: Path) -> list[ServiceProcess]:
    """relay-a (its broker connections through the holding proxy) and relay-b, not started yet."""
    topology = Topology(
        database_url=db_url,
        bootstrap=bootstrap,
        logs=logs,
        processes={"relay-a": Role.RELAY, "relay-b": Role.RELAY},
        topic=topic,
        overrides={
            Role.RELAY: {
                "PROFILE_RELAY_POLL_INTERVAL_S": "0.2",
                "PROFILE_RELAY_LEASE_TTL_S": str(LEASE_TTL_S),
                "PROFILE_RELAY_LEASE_RENEW_INTERVAL_S": "0.5",
                # A's batch must still be waiting when it is paused, not timed out by then.
                "PROFILE_RELAY_TRANSACTION_TIMEOUT_S": "60",
            },
            "relay-a": {"PROFILE_KAFKA_BOOTSTRAP_SERVERS": held_bootstrap},
        },
    )
    return [topology.build(name) for name in topology.processes]


def _metric(process: ServiceProcess, name: str) -> float:
    assert process.url is not None
    url = f"{process.url}/metrics"
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _versions(seen: Collector) -> dict[str, list[int]]:
    """Each customer's versions in the order a ``read_committed`` consumer read them."""
    versions: dict[str, list[int]] = {}
    for message in seen.messages:
        versions.setdefault(message.key, []).append(json.loads(message.value)["profileVersion"])
    return versions


@pytest.mark.chaos
async def test_a_relay_paused_past_its_lease_cannot_put_a_customer_back_in_time(
    database_url: str, artifacts_dir: Path
) -> None:
    direct_port, held_port = free_port(), free_port()
    proxy = HoldingProxy(held_port)
    await proxy.start()
    broker = EmbeddedKafka(
        port=direct_port,
        log_file=artifacts_dir / "relay-paused-kafka.log",
        listeners={"HELD": ("PLAINTEXT", held_port)},
        config={"advertised.listeners": f"PLAINTEXT://127.0.0.1:{direct_port},HELD://127.0.0.1:{proxy.port}"},
    )
    logs = artifacts_dir / "relay-paused"
    topic = "customer-profile.v1.paused"
    db_url = sqlalchemy_url(database_url)
    relay_a, relay_b = _relays(db_url, broker.bootstrap, f"127.0.0.1:{proxy.port}", topic, logs)
    paused = False
    try:
        await asyncio.to_thread(broker.start)
        await ensure_topic(KafkaSettings(bootstrap_servers=broker.bootstrap, topic_partitions=3), topic)
        await asyncio.to_thread(relay_a.start, 60.0)
        async with (
            engine_for(database_url) as engine,
            collecting(KafkaSettings(bootstrap_servers=broker.bootstrap), topic) as seen,
        ):
            await write(engine, [name_changed(c, 1) for c in CUSTOMERS])
            await wait_until(
                lambda: all(_versions(seen).get(c) == [1] for c in CUSTOMERS),
                timeout=30,
                message="A publishes version 1",
            )

            proxy.hold()
            await write(engine, [name_changed(c, 2) for c in CUSTOMERS])
            await wait_until(
                lambda: _metric(relay_a, "outbox_relay_in_flight_rows") > 0,
                timeout=15,
                message="A did not hand version 2 to its producer",
            )
            assert relay_a.process is not None
            relay_a.process.send_signal(signal.SIGSTOP)
            paused = True

            await asyncio.to_thread(relay_b.start, 60.0)
            await wait_until(
                lambda: _metric(relay_b, "outbox_relay_fenced_producers_total") >= 1,
                timeout=LEASE_TTL_S * 5,
                message="B did not take A's expired shards and fence its producer",
            )
            await write(engine, [name_changed(c, 3) for c in CUSTOMERS])
            await wait_until(
                lambda: all(3 in _versions(seen).get(c, []) for c in CUSTOMERS),
                timeout=30,
                message="B publishes version 3",
            )

            proxy.release()  # A's held requests reach the broker now, after B's records
            relay_a.process.send_signal(signal.SIGCONT)
            paused = False
            await wait_until(
                lambda: _metric(relay_a, "outbox_relay_leases_lost_total") >= 1,
                timeout=30,
                message="A did not learn that it lost its leases",
            )
            await write(engine, [name_changed("P-marker", 1)])
            await wait_until(lambda: "P-marker" in _versions(seen), timeout=30, message="the marker after A woke up")

            for customer in CUSTOMERS:
                versions = _versions(seen)[customer]
                assert versions == sorted(versions), (customer, versions, "a version went backwards")
                assert list(dict.fromkeys(versions)) == [1, 2, 3], (customer, versions)
    finally:
        if paused and relay_a.process is not None:
            relay_a.process.send_signal(signal.SIGCONT)
        proxy.release()
        await asyncio.to_thread(relay_a.stop)
        await asyncio.to_thread(relay_b.stop)
        await proxy.close()
        await asyncio.to_thread(broker.stop)
