"""Admin notifications (seed 000 6.2 notifyAdmin): each cause mails the admins' list once per window, through
the real SMTP server, and a hundred occurrences of one outage are one mail.

Real Kafka, PostgreSQL, stub external systems, SMTP server and profile service: the causes are made the way
they happen (a refused update, an update that fails, a change CSS refuses, an undecodable message, CSS down
for a while), except the rows no API makes on request (a failed notification, a parked outbox row), which
are written as the connector's and the relay's own statements write them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from libs.kit.kafka import KafkaSettings
from libs.kit.tokens import Role
from services.stub_externals.mail import ReceivedMail
from services.sync_connector.admin_notify.settings import AdminNotifySettings
from services.sync_connector.notify.settings import NotifySettings, ProfileApiSettings
from services.sync_connector.runtime import ConnectorRuntime
from tests.auth_support import bearer
from tests.connector_support import name_changed, running_connector
from tests.console_support import served_console_client
from tests.notification_support import MailingHarness, create_customer, mailing_harness, notifier_token
from tests.polling import eventually

ADMINS = ["ops@example.com", "oncall@example.com"]


class AdminHarness(MailingHarness):
    def settings(self, **admin: Any) -> Any:
        base = AdminNotifySettings(
            to=ADMINS, window_s=60.0, gather_s=1.0, poll_interval_s=0.2, breaker_open_s=0.5, backoff_base_s=0.2
        )
        return self.sync.settings(
            notify=NotifySettings(enabled=False, smtp_port=self.smtp.port, timeout_s=2.0, claim_lease_s=6.0),
            profile=ProfileApiSettings(url=self.profile_url, token=notifier_token()),
            admin_notify=msgspec.structs.replace(base, **admin),
        )

    def mails(self, cause: str) -> list[ReceivedMail]:
        return [m for m in self.smtp.store.received() if m.headers.get("X-Admin-Cause") == cause]

    async def one_mail(self, cause: str, settle_s: float = 1.5) -> ReceivedMail:
        """Waits for the cause's mail, then a while longer: still exactly one."""

        async def arrived() -> bool:
            return bool(self.mails(cause))

        await eventually(arrived, f"an admin mail for {cause}", timeout=30)
        await asyncio.sleep(settle_s)
        mails = self.mails(cause)
        assert len(mails) == 1, [m.subject for m in mails]
        (mail,) = mails
        assert sorted(mail.envelope_to) == sorted(ADMINS)
        return mail

    async def windows(self, cause: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.db.fetch(
            "SELECT * FROM sync.admin_notifications WHERE cause_key = $1 ORDER BY window_start", cause
        )
        return rows

    async def counted(self, cause: str, occurrences: int) -> None:
        async def check() -> bool:
            rows = await self.windows(cause)
            return len(rows) == 1 and rows[0]["occurrences"] == occurrences

        await eventually(check, f"{occurrences} occurrences of {cause} in one window", timeout=30)


@pytest.fixture
async def harness(database_url: str, kafka_settings: KafkaSettings, topic: str) -> AsyncIterator[AdminHarness]:
    async with mailing_harness(AdminHarness, database_url, kafka_settings, topic) as harness:
        yield harness


async def _profile(harness: AdminHarness, method: str, path: str, role: Role, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=harness.profile_url, timeout=10, headers=bearer(role)) as client:
        return await client.request(method, path, **kwargs)


async def _application(harness: AdminHarness, customer_id: str) -> str:
    await create_customer(harness.profile_url, customer_id, "张三")
    body = {"customerId": customer_id, "newName": "李四", "reason": "marriage"}
    response = await _profile(harness, "POST", "/v1/name-change-applications", Role.OPERATOR, json=body)
    assert response.status_code == 201, response.text
    application_id: str = response.json()["applicationId"]
    return application_id


async def _decide(harness: AdminHarness, application_id: str, decision: str) -> httpx.Response:
    body = {"decision": decision, "auditorId": "auditor-1", "comment": "checked"}
    path = f"/v1/name-change-applications/{application_id}/decision"
    return await _profile(harness, "POST", path, Role.AUDIT_SYSTEM, json=body)


async def _update(harness: AdminHarness, application_id: str) -> httpx.Response:
    return await _profile(
        harness, "POST", "/v1/profile-updates", Role.AUDIT_SYSTEM, json={"applicationId": application_id}
    )


async def test_a_hundred_changes_css_refuses_are_one_mail(harness: AdminHarness) -> None:
    await harness.sync.inject_fault({"system": "CSS", "mode": "status", "status": 400})
    async with running_connector(harness.settings(gather_s=2.0)) as runtime:
        for n in range(100):
            await harness.sync.produce(name_changed(f"D{n:03d}", 1))

        async def all_dead() -> bool:
            count = await harness.db.fetchval("SELECT count(*) FROM sync.dead_letters WHERE system_code='CSS'")
            return bool(count == 100)

        await eventually(all_dead, "100 CSS dead letters", timeout=60)
        await harness.counted("dead-letter:CSS", 100)
        mail = await harness.one_mail("dead-letter:CSS")
        (window,) = await harness.windows("dead-letter:CSS")
        assert window["status"] == "sent"
        assert f": {window['occurrences_mailed']} since" in mail.subject
        assert "Changes dead-lettered at an external system (CSS)" in mail.subject
        assert "customer D0" in mail.body
        assert "docs/runbook.md#syncdeadletters" in mail.body
        assert mail.headers["Message-ID"] == f"<{window['notice_id']}.admin@customer-profile.example>"
        assert not harness.mails("dead-letter:CRM")  # CRM and CMS took every change
        # Visible through the connector's admin API (the console's source), newest first.
        async with harness.sync.http.get(f"{runtime.http_url}/v1/admin-notifications?cause=dead-letter:CSS") as r:
            page = await r.json()
        assert r.status == 200
        (item,) = page["items"]
        assert (item["causeKey"], item["occurrences"], item["status"]) == ("dead-letter:CSS", 100, "sent")
        assert len(item["examples"]) == 5
        assert runtime.admin_metrics.windows.labels("dead-letter:CSS")._value.get() == 1
        # And in the console, for a viewer: the list and the window's page.
        async with served_console_client(
            harness.sync.database_url, Role.VIEWER, subject="vera", PROFILE_CONNECTOR_URL=runtime.http_url
        ) as console:
            listing = await console.get("/console/admin-notifications?status=sent")
            assert listing.status_code == 200, listing.text
            row = listing.text.split(f'<tr data-notification="{item["id"]}"')[1].split("</tr>")[0]
            assert 'data-cause="dead-letter:CSS" data-status="sent"' in row
            assert '<td class="num">100</td>' in row
            page = await console.get(f"/console/admin-notifications/{item['id']}")
            assert page.status_code == 200, page.text
            assert '<code id="cause">dead-letter:CSS</code>' in page.text
            assert "The first 5 of 100" in page.text


async def test_invalid_status_is_one_mail_per_window(harness: AdminHarness) -> None:
    first = await _application(harness, "V001")
    second = await _application(harness, "V002")
    for application_id in (first, second):
        assert (await _decide(harness, application_id, "rejected")).status_code == 200
    async with running_connector(harness.settings(window_s=4.0, gather_s=0.5)):
        assert (await _update(harness, first)).status_code == 409
        mail = await harness.one_mail("invalid-status")
        assert "INVALID_STATUS" in mail.body
        assert first in mail.body
        # Within the window: counted, not mailed.
        assert (await _update(harness, second)).status_code == 409
        await harness.counted("invalid-status", 2)
        assert len(harness.mails("invalid-status")) == 1
        # After the window, the next occurrence opens a new one: a second mail.
        await asyncio.sleep(4.0)
        assert (await _update(harness, first)).status_code == 409

        async def second_mail() -> bool:
            return len(harness.mails("invalid-status")) == 2

        await eventually(second_mail, "the next window's mail", timeout=30)
    # Acknowledged signals leave the profile's queue.
    assert await harness.db.fetchval("SELECT count(*) FROM profile.admin_signals") == 0


async def test_an_unexpected_error_and_an_update_failure_are_one_mail_each(harness: AdminHarness) -> None:
    unexpected = await _application(harness, "U001")
    # A row this release cannot read (as the profile's own error test does): a ValueError inside the update.
    await harness.db.execute(
        "ALTER TABLE profile.customer_profiles DROP CONSTRAINT IF EXISTS customer_profiles_status_check"
    )
    await harness.db.execute("UPDATE profile.customer_profiles SET status='dormant' WHERE customer_id='U001'")
    # An update that fails with a known code: a database error injected into the history insert.
    failing = await _application(harness, "U002")
    again = await _application(harness, "U003")
    await harness.db.execute("""
        CREATE FUNCTION profile.fail_history() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.customer_id IN ('U002', 'U003') THEN
                RAISE EXCEPTION 'injected failure' USING ERRCODE = 'XX000';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER fail_history BEFORE INSERT ON profile.name_change_history
            FOR EACH ROW EXECUTE FUNCTION profile.fail_history();
    """)
    async with running_connector(harness.settings()):
        assert (await _decide(harness, unexpected, "approved")).status_code == 500
        failed = await _decide(harness, failing, "approved")
        assert failed.status_code >= 500
        code = failed.json()["code"]
        assert code != "UNEXPECTED_ERROR"
        unexpected_mail = await harness.one_mail("unexpected-error")
        assert unexpected in unexpected_mail.body
        assert "UNEXPECTED_ERROR" in unexpected_mail.body
        failed_mail = await harness.one_mail("update-failed")
        assert failing in failed_mail.body
        assert code in failed_mail.body
        # Another failing update is another occurrence of the same window: no second mail.
        assert (await _decide(harness, again, "approved")).status_code >= 500
        await harness.counted("update-failed", 2)
        assert len(harness.mails("update-failed")) == 1


async def test_failed_notifications_and_unprocessable_messages_are_one_mail_each(harness: AdminHarness) -> None:
    async with running_connector(harness.settings()):
        for n in range(3):  # as the notification channel's settle writes a record that failed
            await harness.db.execute(
                """INSERT INTO sync.notification_records
                       (event_id, channel, customer_id, application_id, status, event, max_attempts, attempts,
                        last_error, completed_at)
                   VALUES ($1, 'email', $2, 'APP-X', 'failed', '{}'::jsonb, 5, 5, 'SMTP 550: mailbox unavailable',
                           now())""",
                uuid.uuid4(),
                f"N{n}",
            )
        await harness.sync.produce(name_changed("X001", 1), value=b"\xffnot json")
        mail = await harness.one_mail("notification-failed:EMAIL")
        assert "Customer notifications failed (EMAIL): 3 since" in mail.subject
        assert "SMTP 550" in mail.body
        # One undecodable message is unprocessable for each consumer group: one mail per group.
        for code in ("CRM", "CMS", "CSS"):
            unprocessable = await harness.one_mail(f"unprocessable:{code}", settle_s=0)
            assert "undecodable" in unprocessable.body
        await asyncio.sleep(1.0)
        for code in ("CRM", "CMS", "CSS"):
            assert len(harness.mails(f"unprocessable:{code}")) == 1


async def test_parked_outbox_rows_are_one_mail_and_a_row_parked_again_counts_again(harness: AdminHarness) -> None:
    async def park(customer_id: str) -> uuid.UUID:
        row_id = uuid.uuid4()
        await harness.db.execute(
            """INSERT INTO profile.outbox (id, aggregate_type, aggregate_id, event_type, payload, headers, status,
                                           attempts, last_error, created_at)
               VALUES ($1, 'customer', $2, 'customer.profile.name-changed.v1', '{}'::jsonb, '{}'::jsonb, 'failed',
                       10, 'message too large', now())""",
            row_id,
            customer_id,
        )
        return row_id

    first = await park("P001")
    await park("P002")
    async with running_connector(harness.settings()):
        mail = await harness.one_mail("parked-outbox")
        assert "Outbox rows parked by the relay: 2 since" in mail.subject
        assert "message too large" in mail.body
        # Re-driven (pending again), then parked again: a new occurrence of the same window.
        await harness.db.execute("UPDATE profile.outbox SET status='pending', attempts=0 WHERE id=$1", first)
        await harness.counted("parked-outbox", 2)

        async def resolved() -> bool:
            return bool(
                await harness.db.fetchval("SELECT count(*) FROM sync.admin_occurrences WHERE resolved_at IS NOT NULL")
            )

        await eventually(resolved, "the re-driven row's occurrence resolved")
        await harness.db.execute("UPDATE profile.outbox SET status='failed', attempts=10 WHERE id=$1", first)
        await harness.counted("parked-outbox", 3)
        assert len(harness.mails("parked-outbox")) == 1


async def test_a_breaker_open_longer_than_the_setting_is_one_mail(harness: AdminHarness) -> None:
    await harness.sync.inject_fault({"system": "CSS", "mode": "status", "status": 503})
    settings = harness.settings(breaker_open_s=1.0)
    settings = msgspec.structs.replace(settings, breaker_failure_threshold=1, breaker_cooldown_s=0.3)
    async with running_connector(settings) as runtime:
        for n in range(3):
            await harness.sync.produce(name_changed(f"B{n}", 1))
        mail = await harness.one_mail("breaker-open:CSS", settle_s=2.0)
        assert "not closed since" in mail.body
        assert _breaker_open(runtime, "CSS")
        assert not harness.mails("breaker-open:CRM")


def _breaker_open(runtime: ConnectorRuntime, code: str) -> bool:
    return runtime.breakers[code].state.name != "CLOSED"
