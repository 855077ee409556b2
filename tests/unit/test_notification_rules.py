"""Notification rules: the seed's fixed backoff, what a send's answer means, contact answers, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from libs.kit.settings import SettingsError
from services.sync_connector.notify.channels import _gateway_result, _smtp_reply
from services.sync_connector.notify.contacts import Contact, ContactLookupError, _contact_from
from services.sync_connector.notify.delivery import fixed_backoff
from services.sync_connector.notify.settings import Channel, NotifySettings, ProfileApiSettings
from services.sync_connector.outcome import Outcome, SyncStatus, next_step
from services.sync_connector.settings import settings_from_env


def test_seed_policy_is_five_attempts_two_seconds_apart() -> None:
    policy = fixed_backoff(max_attempts=5, backoff_s=2.0)

    assert [policy.delay_before_retry(n) for n in range(1, 5)] == [2.0, 2.0, 2.0, 2.0]
    # attempts 1..4 leave the record retrying, the 5th failure fails it (long before the day's deadline)
    assert policy.max_retries == 4
    now = datetime(2024, 5, 1, tzinfo=UTC)
    steps = [
        next_step(
            Outcome.RETRYABLE,
            now=now,
            deliver_by=now + timedelta(days=1),
            retries_done=done,
            max_retries=policy.max_retries,
            retry_in_s=policy.delay_before_retry(done + 1),
        )
        for done in range(5)
    ]
    assert [step.status for step in steps] == [*[SyncStatus.RETRYING] * 4, SyncStatus.FAILED]
    assert {step.delay_s for step in steps[:4]} == {2.0}
    assert fixed_backoff(max_attempts=None, backoff_s=2.0).max_retries is None  # no count cap: by deadline


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(421, Outcome.RETRYABLE), (450, Outcome.RETRYABLE), (452, Outcome.RETRYABLE), (550, Outcome.REJECTED),
     (553, Outcome.REJECTED), (554, Outcome.REJECTED)],
)  # fmt: skip
def test_smtp_4xx_is_later_5xx_is_never(code: int, outcome: Outcome) -> None:
    assert _smtp_reply(code, "mailbox busy").outcome is outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, Outcome.APPLIED), (202, Outcome.APPLIED), (408, Outcome.RETRYABLE), (429, Outcome.RETRYABLE),
     (500, Outcome.RETRYABLE), (503, Outcome.RETRYABLE), (400, Outcome.REJECTED), (401, Outcome.REJECTED),
     (422, Outcome.REJECTED)],
)  # fmt: skip
def test_sms_gateway_answers(status: int, outcome: Outcome) -> None:
    result = _gateway_result(status, b'{"messageId": "SMS-1"}')

    assert result.classification.outcome is outcome
    assert result.message_id == ("SMS-1" if outcome is Outcome.APPLIED else None)


def test_contact_answers() -> None:
    contact = Contact("C1", "张三", "+86 138", "z@example.com", "en")
    assert _contact_from(200, msgspec.json.encode(contact)) == contact
    assert _contact_from(404, b'{"code": "PROFILE_NOT_FOUND"}') is None
    for status, body, retryable in (
        (404, b'{"code": "ROUTE_NOT_FOUND"}', False),  # a wrong URL is not "no such customer"
        (401, b'{"code": "UNAUTHENTICATED"}', False),
        (403, b'{"code": "FORBIDDEN"}', False),
        (503, b'{"code": "DATABASE_ERROR"}', True),
        (429, b"", True),
        (200, b"<html>", True),
    ):
        with pytest.raises(ContactLookupError) as caught:
            _contact_from(status, body)
        assert caught.value.retryable is retryable, status


def test_settings_come_from_the_environment_and_hide_secrets() -> None:
    settings = settings_from_env(
        {
            "CONNECTOR_NOTIFY_ENABLED": "true",
            "CONNECTOR_NOTIFY_CHANNELS": '["sms"]',
            "CONNECTOR_NOTIFY_MAX_ATTEMPTS": "3",
            "CONNECTOR_NOTIFY_SMTP_PASSWORD": "hunter2",
            "CONNECTOR_PROFILE_URL": "http://profile:8000",
            "CONNECTOR_PROFILE_TOKEN": "secret-token",
        }
    )

    assert settings.notify.enabled
    assert settings.notify.channels == [Channel.SMS]
    assert settings.notify.max_attempts == 3
    assert settings.profile == ProfileApiSettings("http://profile:8000", "secret-token")
    assert settings.group_id("NOTIFY") == "sync-connector.notify"
    for text in (repr(settings.notify), repr(settings.profile)):
        assert "hunter2" not in text
        assert "secret-token" not in text


@pytest.mark.parametrize(
    "environ",
    [{"CONNECTOR_NOTIFY_TIMEZONE": "Mars/Olympus"}, {"CONNECTOR_NOTIFY_CHANNELS": '["fax"]'},
     {"CONNECTOR_NOTIFY_CLAIM_LEASE_S": "5", "CONNECTOR_NOTIFY_TIMEOUT_S": "5"},
     {"CONNECTOR_NOTIFY_MAX_ATTEMPTS": "0"}],
)  # fmt: skip
def test_bad_settings_stop_the_start(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        settings_from_env(environ)


def test_defaults_follow_the_seed() -> None:
    notify = NotifySettings()
    assert (notify.enabled, notify.max_attempts, notify.backoff_s) == (False, 5, 2.0)
    assert notify.default_language == "zh"
