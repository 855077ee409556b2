"""aiokafka producer and consumer factories driven by settings."""

from __future__ import annotations

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


class KafkaSettings(msgspec.Struct, frozen=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    # Idempotent production keeps a partition's records in send order through retries.
    enable_idempotence: bool = True
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    rebalance_timeout_ms: int = 10_000
    request_timeout_ms: int = 15_000
    # The outbox relay submits complete record batches, which are sent at once: no linger for it.
    linger_ms: int = 5
    max_batch_size: int = 1_048_576
    # The producer rejects a larger message itself (per message, before it reaches a batch);
    # keep it at or below the broker's message.max.bytes.
    max_request_size: int = 1_048_576
    client_id: str = "customer-profile"
    # How long an idle fetch waits on the broker: Apache Kafka answers as soon as a record
    # arrives, so a longer wait costs no latency and saves a wake-up per idle partition.
    fetch_max_wait_ms: int = 500
    topic_partitions: int = 6


def make_producer(settings: KafkaSettings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """A producer; with ``transactional_id`` a transactional one (idempotent, fenced by a newer
    producer of the same id: its open transaction is aborted and its sends fail)."""
    return AIOKafkaProducer(
        transactional_id=transactional_id,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=settings.enable_idempotence or transactional_id is not None,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
        max_request_size=settings.max_request_size,
        request_timeout_ms=settings.request_timeout_ms,
    )


def make_consumer(settings: KafkaSettings, topic: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        rebalance_timeout_ms=settings.rebalance_timeout_ms,
        request_timeout_ms=max(settings.request_timeout_ms, settings.session_timeout_ms + 5_000),
    )


async def ensure_topic(settings: KafkaSettings, topic: str) -> None:
    """Create the topic if it is missing (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id=settings.client_id)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            return
        try:
            await admin.create_topics([NewTopic(topic, settings.topic_partitions, 1)])
        except TopicAlreadyExistsError:
            return
    finally:
        await admin.close()
