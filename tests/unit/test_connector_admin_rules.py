"""Admin input rules: opaque cursors, filter validation, the connector settings it depends on."""

from __future__ import annotations

import pytest

from contracts.connector_admin import SyncRecordFilter as RecordFilter
from libs.kit.errors import ValidationError
from libs.kit.settings import SettingsError
from services.sync_connector.admin import decode_cursor, encode_cursor, validate_filter
from services.sync_connector.settings import settings_from_env


@pytest.mark.parametrize("last_id", [1, 42, 9_223_372_036_854_775_807])
def test_a_cursor_round_trips(last_id: int) -> None:
    cursor = encode_cursor(last_id)
    assert "=" not in cursor
    assert decode_cursor(cursor) == last_id


@pytest.mark.parametrize("cursor", ["", "!!!", "bm9wZQ", encode_cursor(1) + "x", "cjphYmM"])
def test_a_foreign_cursor_is_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationError, match="cursor"):
        decode_cursor(cursor)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (RecordFilter(system_code="ERP"), "systemCode"),
        (RecordFilter(status="done"), "status"),
        (RecordFilter(event_id="not-a-uuid"), "eventId"),
    ],
)
def test_filters_are_validated(where: RecordFilter, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_filter(where)


def test_a_valid_filter_passes() -> None:
    where = RecordFilter("C1", "CRM", "failed", "2b1c6a4e-6f0e-4c55-9a43-3f1f9d7f2a10")
    assert validate_filter(where) is where


def test_dead_letter_topics_follow_the_source_topic() -> None:
    settings = settings_from_env({})
    assert settings.dlq_topic("CRM") == "customer-profile.v1.dlq.crm"
    custom = settings_from_env({"CONNECTOR_DLQ_TOPIC_PREFIX": "dlq.", "CONNECTOR_BREAKER_COOLDOWN_S": "2.5"})
    assert custom.dlq_topic("CSS") == "dlq.css"
    assert custom.breaker_cooldown_s == 2.5


@pytest.mark.parametrize(
    "environ",
    [
        {"CONNECTOR_CLAIM_LEASE_S": "5", "CONNECTOR_HTTP_TIMEOUT_S": "5"},
        {"CONNECTOR_RETRY_CONCURRENCY": "0"},
        {"CONNECTOR_BREAKER_FAILURE_THRESHOLD": "0"},
    ],
)
def test_inconsistent_settings_are_refused_at_start_up(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        settings_from_env(environ)
