"""Topics, driven by settings.

Topics are created with the settings' partitions, replication factor and ``min.insync.replicas``
(``ensure_topic``), and a process that must not run on weaker topics checks them first (``verify_topic``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import msgspec
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from libs.kit.kafka import KafkaConfigError, KafkaSettings, admin_session

MIN_INSYNC_REPLICAS = "min.insync.replicas"
# Right after a topic is created a broker's metadata may not list it (or its leaders) yet.
_NOT_YET_VISIBLE = (kafka_errors.UnknownTopicOrPartitionError, kafka_errors.LeaderNotAvailableError)
_DESCRIBE_RETRY_S = 0.1


class TopicConfigError(KafkaConfigError):
    """A topic is less durable than the settings ask (fewer replicas, lower ``min.insync.replicas``)."""


class TopicState(msgspec.Struct, frozen=True):
    name: str
    partitions: int
    # The fewest replicas any of its partitions has.
    replication_factor: int
    min_insync_replicas: int


async def ensure_topic(settings: KafkaSettings, topic: str) -> None:
    """Create the topic if it is missing (idempotent), with the settings' partitions, replication
    factor and ``min.insync.replicas``. An existing topic is left as it is: ``verify_topic`` checks it."""
    await ensure_topics(settings, [topic])


async def ensure_topics(settings: KafkaSettings, topics: Iterable[str]) -> None:
    async with admin_session(settings) as admin:
        await _create_missing(admin, settings, list(topics))


async def verify_topic(settings: KafkaSettings, topic: str) -> TopicState:
    """The topic as the broker has it; ``TopicConfigError`` when it is less durable than the settings."""
    (state,) = await verify_topics(settings, [topic])
    return state


async def verify_topics(settings: KafkaSettings, topics: Sequence[str]) -> list[TopicState]:
    async with admin_session(settings) as admin:
        states = await _describe(admin, topics, settings.request_timeout_ms / 1000)
    return _durable(settings, states)


async def prepare_topics(settings: KafkaSettings, topics: Sequence[str]) -> list[TopicState]:
    """``ensure_topics`` then ``verify_topics``, on one admin connection: what a process runs before it starts."""
    async with admin_session(settings) as admin:
        await _create_missing(admin, settings, topics)
        states = await _describe(admin, topics, settings.request_timeout_ms / 1000)
    return _durable(settings, states)


async def describe_topic(settings: KafkaSettings, topic: str) -> TopicState:
    """Partitions, replication factor and ``min.insync.replicas`` of an existing topic, unchecked."""
    async with admin_session(settings) as admin:
        (state,) = await _describe(admin, [topic], settings.request_timeout_ms / 1000)
    return state


def _durable(settings: KafkaSettings, states: list[TopicState]) -> list[TopicState]:
    """``states``, or ``TopicConfigError`` naming every topic less durable than the settings."""
    problems = [problem for state in states if (problem := _durability_problem(settings, state))]
    if problems:
        raise TopicConfigError("; ".join(problems))
    return states


def _durability_problem(settings: KafkaSettings, state: TopicState) -> str:
    problems: list[str] = []
    if state.replication_factor < settings.replication_factor:
        problems.append(
            f"replication factor {state.replication_factor} is below the setting replication_factor="
            f"{settings.replication_factor}"
        )
    if state.min_insync_replicas < settings.min_insync_replicas:
        problems.append(
            f"min.insync.replicas {state.min_insync_replicas} is below the setting min_insync_replicas="
            f"{settings.min_insync_replicas}"
        )
    if not problems:
        return ""
    return (
        f"topic {state.name!r}: {' and '.join(problems)} (raise them on the topic with kafka-topics.sh / "
        f"kafka-configs.sh, or lower the settings for a smaller cluster)"
    )


async def _create_missing(admin: AIOKafkaAdminClient, settings: KafkaSettings, topics: Sequence[str]) -> None:
    existing = set(await admin.list_topics())
    missing = [topic for topic in dict.fromkeys(topics) if topic not in existing]
    if not missing:
        return
    configs = {MIN_INSYNC_REPLICAS: str(settings.min_insync_replicas)}
    response = await admin.create_topics(
        [
            NewTopic(topic, settings.topic_partitions, settings.replication_factor, topic_configs=configs)
            for topic in missing
        ]
    )
    for topic, code, *rest in response.topic_errors:
        error = kafka_errors.for_code(code)
        if error in {kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError}:
            continue
        detail = rest[0] if rest and rest[0] else error.description
        msg = (
            f"creating topic {topic!r} ({settings.topic_partitions} partitions, replication factor "
            f"{settings.replication_factor}, min.insync.replicas {settings.min_insync_replicas}) failed: {detail}"
        )
        raise error(msg)


async def _describe(admin: AIOKafkaAdminClient, topics: Sequence[str], timeout_s: float) -> list[TopicState]:
    layout = await _partition_layout(admin, topics, timeout_s)
    min_isr = await _min_insync_replicas(admin, topics)
    return [
        TopicState(topic, partitions=len(layout[topic]), replication_factor=min(layout[topic]), min_insync_replicas=isr)
        for topic, isr in zip(topics, min_isr, strict=True)
    ]


async def _partition_layout(
    admin: AIOKafkaAdminClient, topics: Sequence[str], timeout_s: float
) -> dict[str, list[int]]:
    """Per topic, the replica count of each partition (waits briefly for a topic just created)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    layout: dict[str, list[int]] = {}
    while True:
        pending = [topic for topic in dict.fromkeys(topics) if topic not in layout]
        not_visible: list[str] = []
        for entry in await admin.describe_topics(pending):
            topic, error = entry["topic"], kafka_errors.for_code(entry["error_code"])
            if error is kafka_errors.NoError and entry["partitions"]:
                layout[topic] = [len(partition["replicas"]) for partition in entry["partitions"]]
            elif error in _NOT_YET_VISIBLE or error is kafka_errors.NoError:
                not_visible.append(topic)
            else:
                raise error(f"describing topic {topic!r}")
        if not not_visible:
            return layout
        if loop.time() > deadline:
            msg = f"topics {not_visible} do not exist (or have no partition leaders) after {timeout_s:.0f} s"
            raise kafka_errors.UnknownTopicOrPartitionError(msg)
        await asyncio.sleep(_DESCRIBE_RETRY_S)


async def _min_insync_replicas(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[int]:
    """Each topic's effective ``min.insync.replicas`` (its own, else the broker's default)."""
    unique = list(dict.fromkeys(topics))
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic, {MIN_INSYNC_REPLICAS: None}) for topic in unique]
    values: dict[str, int] = {}
    for response in await admin.describe_configs(resources):
        for code, message, _type, name, entries in response.resources:
            if (error := kafka_errors.for_code(code)) is not kafka_errors.NoError:
                raise error(f"describing the configuration of topic {name!r}: {message}")
            value = next((entry[1] for entry in entries if entry[0] == MIN_INSYNC_REPLICAS), None)
            if value is None:
                msg = f"the broker did not report {MIN_INSYNC_REPLICAS} of topic {name!r}"
                raise kafka_errors.KafkaError(msg)
            values[name] = int(value)
    return [values[topic] for topic in topics]
