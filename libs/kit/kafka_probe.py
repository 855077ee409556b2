"""Is the broker there for a topic? One metadata request, no producer (and so no transactional id to fence)."""

from __future__ import annotations

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import LeaderNotAvailableError, UnknownTopicOrPartitionError

from libs.kit.kafka import KafkaSettings, client_options


async def check_topic_writable(settings: KafkaSettings, topic: str) -> None:
    """Return when a broker answers a metadata request in which every partition of ``topic`` has a
    leader (a producer could write to it); raise otherwise. Opens and closes its own connections
    (with the settings' TLS and SASL); the caller bounds it with a timeout."""
    client = AIOKafkaClient(**client_options(settings), request_timeout_ms=settings.request_timeout_ms)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
    finally:
        await client.close()
    partitions: set[int] | None = metadata.partitions_for_topic(topic)
    if not partitions:
        msg = f"topic {topic!r} is not in the broker's metadata"
        raise UnknownTopicOrPartitionError(msg)
    available: set[int] = metadata.available_partitions_for_topic(topic) or set()
    if leaderless := sorted(partitions - available):
        msg = f"partitions {leaderless} of topic {topic!r} have no leader"
        raise LeaderNotAvailableError(msg)
