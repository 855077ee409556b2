"""A broker that lost its data can refuse offset commits for good; the connector must go on delivering.

tansu keeps everything in memory: killed and started again, it has no topic and no group offsets. A
client asking for the topic makes it create it again, and from then on it answers every offset commit
for that topic with UnknownTopicOrPartition, which aiokafka retries without end. A connector that
waits for its commit stops consuming; ours bounds the wait, counts the failure and carries on (its
records dedupe the messages a later restart reads again).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from libs.devstack.embedded import EmbeddedKafka
from libs.kit.kafka import KafkaSettings, ensure_topic
from tests.connector_support import (
    ConnectorHarness,
    all_systems,
    connector_harness,
    eventually,
    metric,
    name_changed,
    running_connector,
)


async def _produce_when_back(harness: ConnectorHarness, version: int) -> str:
    """The producer's first sends fail until it has reconnected; its metadata request re-creates the topic."""
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
async def test_the_connector_keeps_delivering_while_the_broker_refuses_its_commits(
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
            running_connector(harness.settings()) as runtime,
        ):
            before = await harness.produce(name_changed("BL001", 1))
            await eventually(harness.statuses_become(before, all_systems("success")), "delivery", timeout=30)

            await asyncio.to_thread(broker.kill)
            await asyncio.to_thread(broker.start)  # same port, empty
            after = await _produce_when_back(harness, version=2)

            await eventually(
                harness.statuses_become(after, all_systems("success")),
                "delivery of an event produced after the broker lost its data",
                timeout=60,
            )
            assert metric(runtime, "consumer_errors_total", system_code="CRM", kind="commit") > 0, (
                "the broker was expected to refuse the commits (if tansu stops doing so, this test proves less)"
            )
    finally:
        await asyncio.to_thread(broker.stop)
