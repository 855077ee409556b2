"""The broker SIGKILLed under a running connector and started again on its log: delivery goes on.

Apache Kafka keeps the topic, its records and the group's committed offsets through the crash. The
connector's consumers and commits fail while it is down (bounded waits, counted); once it is back they
reconnect by themselves, and what was produced before and after the crash reaches every system once.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from libs.devstack.embedded import EmbeddedKafka
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from tests.connector_support import ConnectorHarness, all_systems, connector_harness, name_changed, running_connector
from tests.polling import eventually


async def _produce_when_back(harness: ConnectorHarness, version: int) -> str:
    """The producer's first sends fail until it has reconnected to the restarted broker."""
    event_id = str(uuid.uuid4())

    async def sent() -> bool:
        try:
            await asyncio.wait_for(harness.produce(name_changed("BL001", version), event_id=event_id), 5)
        except (KafkaError, TimeoutError):
            return False
        return True

    await eventually(sent, "a message produced to the restarted broker", timeout=30)
    return event_id


@pytest.mark.chaos
async def test_the_connector_delivers_through_a_broker_crash_and_restart(
    database_url: str, artifacts_dir: Path
) -> None:
    broker = EmbeddedKafka(log_file=artifacts_dir / f"broker-loss-{uuid.uuid4().hex[:8]}.log")
    await asyncio.to_thread(broker.start)
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_partitions=2, request_timeout_ms=5_000)
        topic = "customer-profile.v1.broker-loss"
        await ensure_topic(kafka, topic)
        async with (
            connector_harness(database_url, kafka, topic) as harness,
            running_connector(harness.settings()),
        ):
            before = await harness.produce(name_changed("BL001", 1))
            await eventually(harness.statuses_become(before, all_systems("success")), "delivery", timeout=30)

            await asyncio.to_thread(broker.kill)
            await asyncio.to_thread(broker.start)  # same port, same log
            after = await _produce_when_back(harness, version=2)

            await eventually(
                harness.statuses_become(after, all_systems("success")),
                "delivery of an event produced after the broker came back",
                timeout=60,
            )
            await eventually(
                harness.statuses_become(before, all_systems("success")), "the earlier event stays delivered", timeout=5
            )
    finally:
        await asyncio.to_thread(broker.stop)
