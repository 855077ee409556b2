"""Customer notifications in the sync-connector: real Kafka, PostgreSQL, SMTP server, SMS gateway and profile API.

Events are produced straight onto the topic (the relay is not under test here);
contact data comes from the real profile service over its internal endpoint,
with the notifier's token.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from libs.kit.kafka import KafkaSettings
from libs.kit.tokens import Role
from services.stub_externals.sms import SmsFault
from services.sync_connector.breaker import BreakerState
from services.sync_connector.notify.settings import NotifySettings, ProfileApiSettings
from tests.auth_support import bearer, connector_auth_env, token
from tests.connector_support import (
    claims_seen,
    fail_next_claims,
    metric,
    name_changed,
    running_connector,
)
from tests.notification_support import (
    EMAIL,
    PHONE,
    PHONE_DIGITS,
    MailingHarness,
    attempt_outcomes,
    create_customer,
    mailing_harness,
    notification_records,
    notification_statuses,
    notifier_token,
)
from tests.polling import eventually

SENT = {"email": "sent", "sms": "sent"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ADMIN = {**bearer(Role.ADMIN, subject="ops-alice"), "User-Agent": "notify-test/1.0"}


class NotifyHarness(MailingHarness):
    def settings(self, **notify: Any) -> Any:
        base = NotifySettings(
            enabled=True,
            max_attempts=5,
            backoff_s=0.2,
            timeout_s=2.0,
            claim_lease_s=6.0,
            poll_interval_s=0.1,
            breaker_failure_threshold=5,
            breaker_cooldown_s=0.3,
            smtp_port=self.smtp.port,
            sms_url=self.sync.stub.url,
        )
        return self.sync.settings(
            notify=msgspec.structs.replace(base, **notify),
            profile=ProfileApiSettings(url=self.profile_url, token=notifier_token()),
        )

    async def statuses_become(self, event_id: str, expected: dict[str, str], timeout: float = 20) -> None:
        async def check() -> bool:
            return await notification_statuses(self.db, event_id) == expected

        await eventually(check, f"notification statuses {expected}", timeout=timeout)


@pytest.fixture
async def harness(database_url: str, kafka_settings: KafkaSettings, topic: str) -> AsyncIterator[NotifyHarness]:
    async with mailing_harness(NotifyHarness, database_url, kafka_settings, topic) as harness:
        await create_customer(harness.profile_url, "N001", "张三", contactPhone=PHONE, contactEmail=EMAIL)
        yield harness


async def _call(harness: NotifyHarness, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with harness.sync.http.request(method, url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def test_one_email_and_one_sms_per_event_and_a_redelivery_sends_nothing(harness: NotifyHarness) -> None:
    await create_customer(harness.profile_url, "N002", "Acme Power", contactEmail="billing@acme.example")
    async with running_connector(harness.settings()) as runtime:
        event = name_changed("N001", 2, new_name="李四")
        event_id = await harness.sync.produce(event)
        no_phone = await harness.sync.produce(name_changed("N002", 2, new_name="Acme Grid"))
        unknown = await harness.sync.produce(name_changed("N404", 2))
        last_month = datetime.now(UTC) - timedelta(days=30)
        stale = await harness.sync.produce(msgspec.structs.replace(name_changed("N001", 3), changed_at=last_month))

        await harness.statuses_become(event_id, SENT)
        await harness.statuses_become(no_phone, {"email": "sent", "sms": "skipped_no_contact"})
        await harness.statuses_become(unknown, {"email": "skipped_no_contact", "sms": "skipped_no_contact"})
        await harness.statuses_become(stale, {"email": "skipped_stale", "sms": "skipped_stale"})

        mails = [m for m in harness.smtp.store.received() if m.envelope_to == [EMAIL]]
        assert len(mails) == 1
        (mail,) = mails
        assert mail.headers["Message-ID"] == f"<{event_id}.email@customer-profile.example>"
        assert mail.headers["Content-Language"] == "zh"
        assert event.application_id in mail.subject
        expected = ("尊敬的 张三", "原户名：张三", "新户名：李四", f"申请编号：{event.application_id}", "(UTC+08:00)")  # noqa: RUF001
        for text in expected:
            assert text in mail.body, text
        (sms,) = harness.sync.stub.sms.messages(PHONE_DIGITS)
        assert sms.idempotency_key == f"{event_id}:sms"
        assert "“张三”变更为“李四”" in sms.text
        assert event.application_id in sms.text
        records = await notification_records(harness.db, event_id)
        assert (records["email"]["attempts"], records["email"]["language"]) == (1, "zh")
        assert records["sms"]["message_id"] == sms.message_id

        # The same event again (a relay crash, a re-drive): its records exist, nothing is sent.
        await harness.sync.produce(event, event_id=event_id)

        async def redelivery_seen() -> bool:
            return metric(runtime, "notification_redeliveries_skipped_total") >= 1

        await eventually(redelivery_seen, "the redelivery to be recognised")
        await asyncio.sleep(0.5)  # any (wrong) second send would be under way by now: the scheduler polls at 0.1 s
        assert len([m for m in harness.smtp.store.received() if m.envelope_to == [EMAIL]]) == 1
        assert len(harness.sync.stub.sms.messages(PHONE_DIGITS)) == 1
        assert harness.sync.stub.sms.duplicate_calls == 0
        assert metric(runtime, "notification_status_total", channel="email", status="sent") == 2
        assert metric(runtime, "notification_contact_lookups_total", result="not_found") == 2
        assert metric(runtime, "consumer_assigned_partitions", system_code="NOTIFY") > 0


async def test_smtp_down_for_a_while_is_retried_then_delivered(harness: NotifyHarness) -> None:
    await harness.smtp.stop()
    async with running_connector(harness.settings(backoff_s=0.3)) as runtime:
        event_id = await harness.sync.produce(name_changed("N001", 2))
        await harness.statuses_become(event_id, {"email": "retrying", "sms": "sent"})

        async def two_failed_attempts() -> bool:
            attempts: int = (await notification_records(harness.db, event_id))["email"]["attempts"]
            return attempts >= 2

        await eventually(two_failed_attempts, "two failed e-mail attempts")
        await harness.smtp.start()
        await harness.statuses_become(event_id, SENT)

        email = (await notification_records(harness.db, event_id))["email"]
        outcomes = await attempt_outcomes(harness.db, email["id"])
        assert outcomes[-1] == "sent"
        assert set(outcomes[:-1]) == {"retryable"}
        assert 3 <= len(outcomes) <= 5, outcomes
        assert email["last_error"] is None
        assert len(harness.smtp.store.received()) == 1
        assert metric(runtime, "notification_attempts_total", channel="email", result="retryable") == len(outcomes) - 1


async def test_smtp_down_past_the_last_attempt_fails_and_an_admin_resend_delivers(harness: NotifyHarness) -> None:
    await harness.smtp.stop()
    # The breaker opens on the fifth failure: the re-send waits for its probe (0.3 s here).
    async with running_connector(harness.settings(max_attempts=3, backoff_s=0.1)) as runtime:
        event_id = await harness.sync.produce(name_changed("N001", 2))
        await harness.statuses_become(event_id, {"email": "failed", "sms": "sent"})
        email = (await notification_records(harness.db, event_id))["email"]
        assert email["attempts"] == 3
        assert email["last_error"].startswith("smtp: ")
        assert await attempt_outcomes(harness.db, email["id"]) == ["retryable"] * 3

        api = runtime.http_url
        resend = f"{api}/v1/notifications/{email['id']}/resend"
        status, problem = await _call(harness, "POST", resend, headers=bearer(Role.VIEWER))
        assert (status, problem["code"]) == (403, "FORBIDDEN")  # a re-send needs an admin
        await harness.smtp.start()
        status, reset = await _call(harness, "POST", f"{api}/v1/notifications/{email['id']}/resend", headers=ADMIN)
        assert status == 202
        assert (reset["status"], reset["maxAttempts"], reset["resendCount"]) == ("retrying", 6, 1)
        await harness.statuses_become(event_id, SENT)
        status, problem = await _call(harness, "POST", f"{api}/v1/notifications/{email['id']}/resend", headers=ADMIN)
        assert (status, problem["code"]) == (409, "INVALID_STATUS")  # sent: the customer has it

        (mail,) = harness.smtp.store.received()
        assert mail.envelope_to == [EMAIL]
        status, page = await _call(harness, "GET", f"{api}/v1/notifications", params={"customerId": "N001"})
        assert (status, sorted((item["channel"], item["status"]) for item in page["items"])) == (
            200,
            [("email", "sent"), ("sms", "sent")],
        )
        for bad in ({"channel": "fax"}, {"status": "odd"}, {"eventId": "x"}, {"limit": "501"}, {"cursor": "bm9wZQ"}):
            status, problem = await _call(harness, "GET", f"{api}/v1/notifications", params=bad)
            assert (status, problem["code"]) == (422, "VALIDATION"), bad
        status, problem = await _call(harness, "GET", f"{api}/v1/notifications/999999")
        assert (status, problem["code"]) == (404, "NOTIFICATION_NOT_FOUND")
        status, detail = await _call(harness, "GET", f"{api}/v1/notifications/{email['id']}")
        assert status == 200
        assert [a["outcome"] for a in detail["attemptLog"]] == ["retryable"] * 3 + ["sent"]
        assert detail["event"]["newName"] == "李四"
        audit = await harness.db.fetchrow("SELECT * FROM sync.admin_actions ORDER BY id DESC LIMIT 1")
        assert (audit["actor"], audit["action"], audit["record_id"], audit["system_code"], audit["channel"]) == (
            "ops-alice",
            "resend_notification",
            email["id"],
            "EMAIL",
            "http",
        )
        assert metric(runtime, "notification_admin_resends_total", channel="email", via="http") == 1


async def _run_cli(database_url: str, *args: str, role: Role = Role.ADMIN) -> tuple[int, Any, str]:
    """``python -m services.sync_connector notify ...`` as a real process: exit code, JSON stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sync_connector",
        "notify",
        *args,
        env={
            **os.environ,
            "CONNECTOR_DB_URL": database_url,
            **connector_auth_env(),
            "CONNECTOR_ADMIN_TOKEN": token(role, subject="bob"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, msgspec.json.decode(out) if out.strip() else None, err.decode()


async def test_a_rejected_sms_fails_at_once_and_a_cli_resend_delivers(harness: NotifyHarness) -> None:
    harness.sync.stub.sms.add_fault(SmsFault(status=400, count=1))
    async with running_connector(harness.settings()):
        event_id = await harness.sync.produce(name_changed("N001", 2))
        await harness.statuses_become(event_id, {"email": "sent", "sms": "failed"})
        sms = (await notification_records(harness.db, event_id))["sms"]
        assert (sms["attempts"], sms["last_error"][:8]) == (1, "HTTP 400")

        code, page, _ = await _run_cli(harness.sync.database_url, "list", "--channel", "sms", "--status", "failed")
        assert code == 0
        assert [item["id"] for item in page["items"]] == [sms["id"]]
        code, _, err = await _run_cli(harness.sync.database_url, "resend", "--id", str(sms["id"]), role=Role.VIEWER)
        assert (code, "FORBIDDEN" in err) == (1, True)  # reading is not re-sending
        code, reset, _ = await _run_cli(harness.sync.database_url, "resend", "--id", str(sms["id"]))
        assert (code, reset["status"]) == (0, "retrying")
        await harness.statuses_become(event_id, SENT)
        code, _, err = await _run_cli(harness.sync.database_url, "resend", "--id", str(sms["id"]))
        assert code == 1
        assert "INVALID_STATUS" in err
        assert len(harness.sync.stub.sms.messages(PHONE_DIGITS)) == 1
        audit = await harness.db.fetchrow("SELECT actor, channel, action FROM sync.admin_actions")
        assert tuple(audit) == ("bob", "cli", "resend_notification")


async def test_hostile_names_are_plain_text_and_inject_no_headers(harness: NotifyHarness) -> None:
    """Names come from customers: CRLF, template syntax and markup in them stay inert text (unit tests: the rest)."""
    async with running_connector(harness.settings()):
        event = msgspec.structs.replace(
            name_changed("N001", 2, new_name="Eve\r\nBcc: victim@example.org\r\nSubject: pwned<script>x</script>"),
            old_name="{{7*7}} ${new_name} $customer_name {0} %s",
            application_id="APP-1\r\nBcc: x@example.org",
        )
        event_id = await harness.sync.produce(event, traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")
        await harness.statuses_become(event_id, SENT)

        (mail,) = harness.smtp.store.received()
        assert mail.envelope_to == [EMAIL]
        assert "Bcc" not in mail.headers
        assert "pwned" not in mail.subject
        assert "APP-1 Bcc: x@example.org" in mail.subject  # the id, on the subject's one line
        assert "Eve Bcc: victim@example.org Subject: pwned<script>x</script>" in mail.body  # one line of text
        assert "{{7*7}} ${new_name} $customer_name {0} %s" in mail.body  # never read as template syntax
        assert mail.headers["Content-Type"].startswith("text/plain")
        (sms,) = harness.sync.stub.sms.messages(PHONE_DIGITS)
        assert "\r" not in sms.text
        assert "\n" not in sms.text
        assert sms.traceparent is not None
        assert sms.traceparent.split("-")[1] == TRACE_ID  # the send continues the change's trace


async def test_a_database_error_between_the_permit_and_the_commit_leaks_no_trial(harness: NotifyHarness) -> None:
    """Regression: the e-mail probe's claim fails in the database after the breaker handed out its one trial;
    the trial comes back at once (a lost one is only written off after cool-down + call timeout, 31 s here),
    the next probe goes, and once the SMTP server is back the message is sent without a restart."""
    await harness.smtp.stop()
    settings = harness.settings(breaker_failure_threshold=2, breaker_cooldown_s=1.0, max_attempts=50, backoff_s=0.1)
    async with running_connector(settings) as runtime:
        breaker = runtime.breakers["EMAIL"]

        def reopened() -> float:
            return metric(runtime, "circuit_breaker_transitions_total", system_code="EMAIL", to_state="open")

        event_id = await harness.sync.produce(name_changed("N001", 2))

        async def opened() -> bool:
            return reopened() >= 1

        await eventually(opened, "the e-mail breaker to open")
        await fail_next_claims(harness.db, "sync.notification_records", where="NEW.channel = 'email'")

        async def probed_after_the_fault() -> bool:
            return reopened() >= 2 and await claims_seen(harness.db) >= 2  # refused claim, then the probe's

        await eventually(probed_after_the_fault, "a probe after the failed claim", timeout=10)
        assert metric(runtime, "sync_retry_scheduler_errors_total", system_code="EMAIL") >= 1
        await harness.smtp.start()
        await harness.statuses_become(event_id, SENT)
        assert breaker.state is BreakerState.CLOSED
        assert len(harness.smtp.store.received()) == 1
