"""Kafka settings: topic durability and connection security from the environment, validated, and
handed to every client the factories build."""

from __future__ import annotations

import ssl
from pathlib import Path

import msgspec
import pytest

from libs.kit.kafka import (
    KafkaConfigError,
    KafkaSettings,
    client_options,
    make_admin,
    make_consumer,
    make_producer,
    ssl_context,
)
from libs.kit.settings import SettingsError
from services.profile.settings import settings_from_env as profile_settings
from services.sync_connector.settings import settings_from_env as connector_settings
from tests.kafka_security_support import LocalCa


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return LocalCa.create(tmp_path_factory.mktemp("tls"))


def test_defaults_suit_the_one_node_embedded_broker() -> None:
    kafka = KafkaSettings()
    assert (kafka.topic_partitions, kafka.replication_factor, kafka.min_insync_replicas) == (6, 1, 1)
    assert kafka.security_protocol == "PLAINTEXT"
    assert client_options(kafka) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "customer-profile",
        "security_protocol": "PLAINTEXT",
    }


def test_topic_and_security_settings_come_from_each_services_environment() -> None:
    profile = profile_settings(
        {
            "PROFILE_KAFKA_REPLICATION_FACTOR": "3",
            "PROFILE_KAFKA_MIN_INSYNC_REPLICAS": "2",
            "PROFILE_KAFKA_TOPIC_PARTITIONS": "12",
            "PROFILE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PROFILE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "PROFILE_KAFKA_SASL_USERNAME": "outbox-relay",
            "PROFILE_KAFKA_SASL_PASSWORD": "s3cret",
            "PROFILE_KAFKA_SSL_CAFILE": "/etc/kafka-tls/ca.crt",
            "PROFILE_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    ).kafka
    assert (profile.topic_partitions, profile.replication_factor, profile.min_insync_replicas) == (12, 3, 2)
    assert (profile.security_protocol, profile.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (profile.sasl_username, profile.sasl_password) == ("outbox-relay", "s3cret")
    assert (profile.ssl_cafile, profile.ssl_check_hostname) == ("/etc/kafka-tls/ca.crt", False)
    connector = connector_settings(
        {
            "CONNECTOR_KAFKA_SECURITY_PROTOCOL": "SSL",
            "CONNECTOR_KAFKA_SSL_CERTFILE": "/tls/client.pem",
            "CONNECTOR_KAFKA_SSL_KEYFILE": "/tls/client.key",
            "CONNECTOR_KAFKA_SSL_KEY_PASSWORD": "key-secret",
        }
    ).kafka
    assert connector.uses_tls
    assert not connector.uses_sasl
    assert (connector.ssl_certfile, connector.ssl_keyfile) == ("/tls/client.pem", "/tls/client.key")


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_PASSWORD": "x"}, "SASL_SSL needs sasl_username and sasl_password"),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_USERNAME": "u"}, "needs sasl_username and sasl_password"),
        ({"SASL_USERNAME": "u", "SASL_PASSWORD": "p"}, "security_protocol PLAINTEXT does not use SASL"),
        ({"SECURITY_PROTOCOL": "SSL", "SASL_PASSWORD": "p"}, "sasl_password set, but security_protocol SSL"),
        (
            {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_USERNAME": "u", "SASL_PASSWORD": "p", "SSL_CAFILE": "/ca"},
            "ssl_cafile set, but security_protocol SASL_PLAINTEXT does not use TLS",
        ),
        ({"SECURITY_PROTOCOL": "SSL", "SSL_KEYFILE": "/k"}, "set ssl_certfile too"),
        ({"SECURITY_PROTOCOL": "SSL", "SSL_KEY_PASSWORD": "p"}, "set ssl_certfile too"),
        ({"SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism"),
        ({"REPLICATION_FACTOR": "2", "MIN_INSYNC_REPLICAS": "3"}, r"min_insync_replicas \(3\) must not exceed"),
        ({"REPLICATION_FACTOR": "0"}, "replication_factor must be at least 1"),
        ({"MIN_INSYNC_REPLICAS": "0"}, "min_insync_replicas must be at least 1"),
        ({"TOPIC_PARTITIONS": "0"}, "topic_partitions must be at least 1"),
    ],
)
def test_a_bad_combination_is_a_clear_error_naming_the_settings(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError, match="PROFILE_KAFKA_") as raised:
        profile_settings({f"PROFILE_KAFKA_{key}": value for key, value in environ.items()})
    assert raised.match(complaint)
    with pytest.raises(SettingsError, match="CONNECTOR_KAFKA_"):
        connector_settings({f"CONNECTOR_KAFKA_{key}": value for key, value in environ.items()})


def test_passwords_are_never_printed() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_username="relay",
        sasl_password="hunter2-sasl",
        ssl_certfile="/c.pem",
        ssl_key_password="hunter2-key",
    )
    shown = repr(kafka) + str(kafka)
    assert "hunter2" not in shown
    assert "sasl_password=***" in shown
    assert "sasl_username='relay'" in shown
    assert "sasl_password=''" in repr(KafkaSettings())


def test_sasl_over_tls_options_carry_the_ca_and_the_credentials(ca: LocalCa) -> None:
    kafka = KafkaSettings(
        bootstrap_servers="kafka-1:9093,kafka-2:9093",
        security_protocol="SASL_SSL",
        ssl_cafile=str(ca.path),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="relay",
        sasl_password="p",
    )
    options = client_options(kafka)
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert [cert["subject"] for cert in context.get_ca_certs()] == [((("commonName", "customer-profile test CA"),),)]
    assert options == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
        "client_id": "customer-profile",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "relay",
        "sasl_plain_password": "p",
    }
    unchecked = msgspec.structs.replace(kafka, ssl_check_hostname=False)
    assert ssl_context(unchecked).check_hostname is False
    assert ssl_context(unchecked).verify_mode is ssl.CERT_REQUIRED, "the CA still vouches for the broker"


def test_a_client_certificate_with_an_encrypted_key_loads_with_its_password(ca: LocalCa) -> None:
    files, _, _ = ca.issue("unit-client", client=True, key_password="right")
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=str(ca.path),
        ssl_certfile=str(files.certificate),
        ssl_keyfile=str(files.key),
        ssl_key_password="right",
    )
    assert isinstance(ssl_context(kafka), ssl.SSLContext)
    with pytest.raises(KafkaConfigError, match="cannot load the Kafka TLS files"):
        ssl_context(msgspec.structs.replace(kafka, ssl_key_password="wrong"))


def test_missing_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=str(missing))
    with pytest.raises(KafkaConfigError, match=r"cannot load the Kafka TLS files \{'ssl_cafile': '.*nowhere/ca.pem'\}"):
        client_options(kafka)


async def test_every_factory_builds_its_client_with_the_security_settings(ca: LocalCa) -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        ssl_cafile=str(ca.path),
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="connector",
        sasl_password="p",
        client_id="unit",
    )
    producer = make_producer(kafka)
    consumer = make_consumer(kafka, "some-topic", "some-group")
    admin = make_admin(kafka)
    try:
        for client in (producer.client, consumer._client, admin._client):
            assert client._security_protocol == "SASL_SSL"
            assert isinstance(client._ssl_context, ssl.SSLContext)
            assert (client._sasl_mechanism, client._sasl_plain_username) == ("SCRAM-SHA-256", "connector")
            assert client._client_id == "unit"
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()
