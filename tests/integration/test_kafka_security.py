"""TLS and SASL against a real Apache Kafka broker: our own CA and broker certificate, a SASL_SSL listener
(SCRAM-SHA-512, SCRAM-SHA-256, PLAIN) and a mutual-TLS listener; clients from our factories only.

The relay and the connector run over SASL_SSL with their own SCRAM users: an outbox row reaches every
external system. Wrong credentials and an untrusted broker certificate are refused with errors that say so.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from aiokafka.errors import KafkaError

from libs.kit.kafka import (
    BrokerAccessError,
    KafkaSettings,
    SaslMechanism,
    check_broker_access,
    make_consumer,
    make_producer,
)
from libs.kit.kafka_topics import ensure_topic, prepare_topics, verify_topic
from tests.connector_support import all_systems, connector_harness, running_connector
from tests.kafka_security_support import (
    CLIENT_KEY_PASSWORD,
    PLAIN_USERS,
    SCRAM_USERS,
    LocalCa,
    SecuredBroker,
    secured_broker,
)
from tests.kafka_support import kafka_for_tests
from tests.polling import eventually
from tests.relay_support import engine_for, name_changed, relay_settings, running_relay, write


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path_factory.mktemp("kafka-security"), artifacts_dir / "kafka-security.log") as broker:
        yield broker


def over_sasl_ssl(
    secured: SecuredBroker, user: str, password: str, mechanism: SaslMechanism = "SCRAM-SHA-512"
) -> KafkaSettings:
    return kafka_for_tests(
        secured.sasl_ssl_bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=str(secured.ca.path),
        sasl_mechanism=mechanism,
        sasl_username=user,
        sasl_password=password,
        topic_partitions=2,
        request_timeout_ms=10_000,
    )


def fresh_topic() -> str:
    return f"customer-profile.v1.secure-{uuid.uuid4().hex[:10]}"


async def produce_and_consume(kafka: KafkaSettings, topic: str, count: int) -> list[tuple[str, bytes]]:
    """``count`` keyed records through a factory producer, read back by a factory consumer (a group)."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        sent = [(f"C{n:03d}", f"event {n}".encode()) for n in range(count)]
        await asyncio.gather(*[await producer.send(topic, value, key=key.encode()) for key, value in sent])
    finally:
        await producer.stop()
    consumer = make_consumer(kafka, topic, f"security-test-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    received: list[tuple[str, bytes]] = []
    try:
        deadline = time.monotonic() + 20
        while len(received) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                received.extend((record.key.decode(), record.value) for record in records)
    finally:
        await consumer.stop()
    return sorted(received)


async def test_scram_sha_512_over_tls_creates_checks_produces_and_consumes(secured: SecuredBroker) -> None:
    kafka = over_sasl_ssl(secured, "relay", SCRAM_USERS["relay"])
    topic = fresh_topic()
    (state,) = await prepare_topics(kafka, [topic])
    assert (state.partitions, state.replication_factor, state.min_insync_replicas) == (2, 1, 1)
    received = await produce_and_consume(kafka, topic, count=20)
    assert received == sorted((f"C{n:03d}", f"event {n}".encode()) for n in range(20))


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [("SCRAM-SHA-256", "connector", SCRAM_USERS["connector"]), ("PLAIN", "plain-user", PLAIN_USERS["plain-user"])],
    ids=["SCRAM-SHA-256", "PLAIN"],
)
async def test_the_other_sasl_mechanisms_authenticate_too(
    secured: SecuredBroker, mechanism: SaslMechanism, user: str, password: str
) -> None:
    topic = fresh_topic()
    await ensure_topic(over_sasl_ssl(secured, "relay", SCRAM_USERS["relay"]), topic)
    assert (await verify_topic(over_sasl_ssl(secured, user, password, mechanism), topic)).name == topic


async def test_a_wrong_password_is_refused_with_an_error_that_says_so(secured: SecuredBroker) -> None:
    wrong = over_sasl_ssl(secured, "relay", "not-the-password")
    expected = (
        rf"Kafka broker {secured.sasl_ssl_bootstrap} refused SASL authentication of user 'relay' with "
        r"SCRAM-SHA-512 over SASL_SSL: .*invalid credentials"
    )
    with pytest.raises(BrokerAccessError, match=expected):
        await ensure_topic(wrong, fresh_topic())
    with pytest.raises(BrokerAccessError, match=expected):
        await check_broker_access(wrong)
    # A producer alone only learns that it could not connect; the services check access before they start.
    producer = make_producer(wrong)
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


async def test_a_broker_certificate_not_signed_by_the_configured_ca_is_refused(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    stranger = LocalCa.create(tmp_path / "other-ca", common_name="some other CA")
    kafka = msgspec.structs.replace(
        over_sasl_ssl(secured, "relay", SCRAM_USERS["relay"]), ssl_cafile=str(stranger.path)
    )
    with pytest.raises(
        BrokerAccessError, match=rf"certificate of Kafka broker .* failed verification against {stranger.path}"
    ):
        await ensure_topic(kafka, fresh_topic())


async def test_mutual_tls_with_a_client_certificate_whose_key_is_encrypted(secured: SecuredBroker) -> None:
    kafka = kafka_for_tests(
        secured.ssl_bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(secured.ca.path),
        ssl_certfile=str(secured.client.certificate),
        ssl_keyfile=str(secured.client.key),
        ssl_key_password=CLIENT_KEY_PASSWORD,
        topic_partitions=1,
    )
    topic = fresh_topic()
    await ensure_topic(kafka, topic)
    assert await produce_and_consume(kafka, topic, count=3) == [(f"C{n:03d}", f"event {n}".encode()) for n in range(3)]
    without_certificate = KafkaSettings(
        bootstrap_servers=secured.ssl_bootstrap, security_protocol="SSL", ssl_cafile=str(secured.ca.path)
    )
    with pytest.raises(KafkaError):  # the broker drops the connection after the handshake
        await verify_topic(without_certificate, topic)


async def test_the_relay_and_the_connector_run_the_pipeline_over_sasl_ssl(
    secured: SecuredBroker, database_url: str
) -> None:
    relay_kafka = over_sasl_ssl(secured, "relay", SCRAM_USERS["relay"])
    connector_kafka = over_sasl_ssl(secured, "connector", SCRAM_USERS["connector"], "SCRAM-SHA-256")
    topic = fresh_topic()
    await prepare_topics(relay_kafka, [topic])
    messages = [name_changed("SEC001", 1), name_changed("SEC002", 1), name_changed("SEC001", 2)]
    async with engine_for(database_url) as engine:
        await write(engine, messages)
    async with (
        connector_harness(database_url, connector_kafka, topic) as harness,
        running_connector(harness.settings()),
        running_relay(database_url, relay_kafka, relay_settings(topic)),
    ):
        for message in messages:
            delivered = harness.statuses_become(str(message.id), all_systems("success"))
            await eventually(delivered, f"{message.id} at every system", timeout=30)
    assert harness.applied_versions("CRM", "SEC001") == [1, 2]
    # The connector created its dead-letter topics at start-up, over SASL_SSL as its own user.
    for code in ("crm", "cms", "css"):
        assert (await verify_topic(connector_kafka, f"{topic}.dlq.{code}")).partitions == 2
