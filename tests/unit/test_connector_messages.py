"""Decoding Kafka messages, the request body and its signature, and settings from the environment."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
import pytest

from contracts.events import NAME_CHANGED_TYPE, CustomerNameChanged, encode_event
from services.sync_connector.messages import UndecodableMessageError, decode_message
from services.sync_connector.settings import settings_from_env
from services.sync_connector.signing import sign_body
from services.sync_connector.sinks import encode_payload

EVENT = CustomerNameChanged(
    customer_id="C001",
    application_id="APP-1",
    old_name="张三",
    new_name="李四",
    profile_version=4,
    reason="marriage",
    changed_at=datetime(2024, 5, 1, 8, 30, tzinfo=UTC),
)


@dataclass
class Message:
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "customer-profile.v1"
    partition: int = 0
    offset: int = 7
    key: bytes | None = b"C001"


def _headers(event_id: str | None = None, event_type: str = NAME_CHANGED_TYPE) -> list[tuple[str, bytes]]:
    headers = {
        "ce_specversion": "1.0",
        "ce_id": event_id or str(uuid.uuid4()),
        "ce_source": "urn:test",
        "ce_type": event_type,
        "ce_time": "2024-05-01T08:30:00Z",
        "ce_subject": "C001",
        "content-type": "application/json",
    }
    return [(key, value.encode()) for key, value in headers.items()]


def test_signature_is_hex_hmac_sha256_of_the_exact_body() -> None:
    # A published HMAC-SHA256 test vector.
    signature = sign_body("key", b"The quick brown fox jumps over the lazy dog")
    assert signature == "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


def test_signature_changes_with_body_and_secret() -> None:
    body = encode_payload(str(uuid.uuid4()), EVENT)
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign_body("s3cret", body) == expected
    assert sign_body("other", body) != expected
    assert sign_body("s3cret", body + b" ") != expected


def test_payload_is_camel_case_with_the_new_name_as_customer_name() -> None:
    event_id = str(uuid.uuid4())
    assert msgspec.json.decode(encode_payload(event_id, EVENT)) == {
        "eventId": event_id,
        "customerId": "C001",
        "applicationId": "APP-1",
        "customerName": "李四",
        "oldName": "张三",
        "profileVersion": 4,
        "reason": "marriage",
        "changedAt": "2024-05-01T08:30:00Z",
    }


def test_a_cloudevent_decodes_to_its_id_and_event() -> None:
    event_id = str(uuid.uuid4())
    decoded = decode_message(Message(encode_event(EVENT), _headers(event_id)))
    assert decoded.event_id == event_id
    assert decoded.event == EVENT


def test_other_event_types_decode_without_an_event() -> None:
    decoded = decode_message(Message(b"{}", _headers(event_type="customer.profile.deleted.v1")))
    assert decoded.event is None
    assert decoded.event_type == "customer.profile.deleted.v1"


@pytest.mark.parametrize(
    "message",
    [
        Message(encode_event(EVENT), []),
        Message(encode_event(EVENT), [(k, v) for k, v in _headers() if k != "ce_id"]),
        Message(encode_event(EVENT), [(k, v) for k, v in _headers() if k != "ce_type"]),
        Message(encode_event(EVENT), _headers("not-a-uuid")),
        Message(encode_event(EVENT), [*_headers(), ("bad", b"\xff\xfe")]),
        Message(None, _headers()),
        Message(b"not json", _headers()),
        Message(b'{"customerId": "C001"}', _headers()),
        Message(encode_event(msgspec.structs.replace(EVENT, customer_id="C" * 51)), _headers()),
        Message(encode_event(msgspec.structs.replace(EVENT, profile_version=-1)), _headers()),
    ],
    ids=[
        "no-headers",
        "no-id",
        "no-type",
        "bad-id",
        "bad-utf8",
        "no-value",
        "bad-json",
        "missing-fields",
        "id-too-long",
        "negative-version",
    ],
)
def test_undecodable_messages_are_rejected(message: Message) -> None:
    with pytest.raises(UndecodableMessageError):
        decode_message(message)


def test_settings_come_from_connector_variables() -> None:
    settings = settings_from_env(
        {
            "CONNECTOR_DB_URL": "postgresql://u@db:5432/app",
            "CONNECTOR_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            "CONNECTOR_HTTP_PORT": "9001",
            "CONNECTOR_CRM_URL": "http://crm:80",
            "CONNECTOR_CRM_SECRET": "s",
            "CONNECTOR_MAX_RETRY_COUNT": "5",
            "CONNECTOR_BACKOFF_BASE_S": "0.5",
            "CONNECTOR_GROUP_PREFIX": "sc",
        }
    )
    assert settings.database.url == "postgresql://u@db:5432/app"
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.http_port == 9001
    assert settings.max_retry_count == 5
    assert settings.backoff_base_s == 0.5
    assert settings.endpoint("CRM").base_url == "http://crm:80"
    assert settings.endpoint("CRM").secret == "s"
    assert settings.endpoint("CMS").secret == ""
    assert settings.group_id("CSS") == "sc.css"
    assert settings.topic == "customer-profile.v1"
