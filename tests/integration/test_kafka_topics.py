"""Topics get the settings' partitions, replication factor and min.insync.replicas on the real broker,
and the relay and the connector refuse to start on a topic that is less durable than their settings."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import msgspec
import pytest
from aiokafka.errors import InvalidReplicationFactorError
from opentelemetry.sdk.trace import TracerProvider

from libs.kit.db import DatabaseSettings, sqlalchemy_url
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import TopicConfigError, describe_topic, ensure_topic, ensure_topics, verify_topic
from services.sync_connector.runtime import ConnectorRuntime
from services.sync_connector.settings import ConnectorSettings
from tests.auth_support import connector_token_settings

ROOT = Path(__file__).resolve().parents[2]
# What production asks for; the one-node test broker has one replica of everything.
THREE_REPLICAS = {"replication_factor": 3, "min_insync_replicas": 2}


def fresh_topic() -> str:
    return f"customer-profile.v1.test-{uuid.uuid4().hex[:10]}"


async def test_a_topic_is_created_with_the_settings_and_an_existing_one_is_left_alone(
    kafka_settings: KafkaSettings,
) -> None:
    name = fresh_topic()
    await ensure_topic(msgspec.structs.replace(kafka_settings, topic_partitions=2), name)
    state = await describe_topic(kafka_settings, name)
    assert (state.partitions, state.replication_factor, state.min_insync_replicas) == (2, 1, 1)

    await ensure_topic(msgspec.structs.replace(kafka_settings, topic_partitions=5), name)
    assert (await describe_topic(kafka_settings, name)).partitions == 2, "an existing topic keeps its layout"
    assert await verify_topic(kafka_settings, name) == state


async def test_verifying_a_one_replica_topic_against_three_replicas_says_what_is_wrong(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    production = msgspec.structs.replace(kafka_settings, **THREE_REPLICAS)
    with pytest.raises(TopicConfigError) as raised:
        await verify_topic(production, topic)
    message = str(raised.value)
    assert f"topic {topic!r}" in message
    assert "replication factor 1 is below the setting replication_factor=3" in message
    assert "min.insync.replicas 1 is below the setting min_insync_replicas=2" in message


async def test_creating_more_replicas_than_there_are_brokers_is_refused_by_the_broker(
    kafka_settings: KafkaSettings,
) -> None:
    # A retriable broker error, not a configuration error: a cluster still registering brokers gets there.
    name = fresh_topic()
    with pytest.raises(InvalidReplicationFactorError, match=rf"creating topic '{name}' .*replication factor 3"):
        await ensure_topic(msgspec.structs.replace(kafka_settings, **THREE_REPLICAS), name)


async def test_the_relay_process_refuses_to_start_on_a_topic_with_too_few_replicas(
    kafka_settings: KafkaSettings, topic: str, database_url: str
) -> None:
    env = {
        **os.environ,
        "PROFILE_DB_URL": sqlalchemy_url(database_url),
        "PROFILE_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "PROFILE_KAFKA_REPLICATION_FACTOR": "3",
        "PROFILE_KAFKA_MIN_INSYNC_REPLICAS": "2",
        "PROFILE_RELAY_TOPIC": topic,
        "OTEL_SDK_DISABLED": "true",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.profile",
        "relay",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    errors = stderr.decode()
    assert process.returncode == 1, errors
    assert "Error: the relay refuses to start" in errors
    assert f"topic '{topic}': replication factor 1 is below the setting replication_factor=3" in errors
    assert "relay_refused_to_start" in errors, "logged as well, for the log pipeline"
    assert "Traceback" not in errors


async def test_the_connector_refuses_to_start_on_dead_letter_topics_with_too_few_replicas(
    kafka_settings: KafkaSettings, topic: str, database_url: str
) -> None:
    await ensure_topics(kafka_settings, [f"{topic}.dlq.{code}" for code in ("crm", "cms", "css")])
    settings = ConnectorSettings(
        database=DatabaseSettings(url=sqlalchemy_url(database_url), pool_size=2),
        kafka=msgspec.structs.replace(kafka_settings, **THREE_REPLICAS),
        topic=topic,
        group_prefix=f"sync-connector-test-{uuid.uuid4().hex[:8]}",
        http_port=0,
        auth=connector_token_settings(),
    )
    runtime = ConnectorRuntime(settings, tracer_provider=TracerProvider())
    with pytest.raises(TopicConfigError, match=rf"topic '{topic}\.dlq\.crm': replication factor 1 is below"):
        await runtime.start()
    assert runtime.consumers == {}, "no consumer group was joined"
    assert runtime.http_url == "", "the API never listened"
