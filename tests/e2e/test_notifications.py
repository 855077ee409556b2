"""Customer notifications end to end: an approval on real processes -> one e-mail and one SMS, never two.

The profile service, relay, sync-connector and stub systems run as processes;
the SMTP server is this test's own (aiosmtpd on a real socket). The public
topic is read back to prove it never carried the customer's contact data.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from services.stub_externals.mail import ReceivedMail, RunningSmtp
from tests.e2e.conftest import RunningSystem, eventually, notifications_env
from tests.e2e.test_pipeline import read_topic
from tests.notification_support import ADDRESS, EMAIL, PHONE, PHONE_DIGITS, create_customer

CUSTOMER = "E2EN01"


@pytest.fixture
def extra_env(smtp: RunningSmtp) -> dict[str, str]:
    return notifications_env(smtp)


async def _approve_a_name_change(http: httpx.AsyncClient, api: str) -> dict[str, Any]:
    await create_customer(api, CUSTOMER, contactPhone=PHONE, contactEmail=EMAIL, contactAddress=ADDRESS)
    submitted = await http.post(
        f"{api}/v1/name-change-applications", json={"customerId": CUSTOMER, "newName": "李四", "reason": "过户"}
    )
    assert submitted.status_code == 201, submitted.text
    decided = await http.post(
        f"{api}/v1/name-change-applications/{submitted.json()['applicationId']}/decision",
        json={"decision": "approved", "auditorId": "auditor-7", "comment": "材料齐全"},
    )
    assert decided.status_code == 200, decided.text
    result: dict[str, Any] = decided.json()
    return result


async def test_an_approval_notifies_the_customer_once_by_email_and_sms(
    running_system: RunningSystem, http: httpx.AsyncClient, smtp: RunningSmtp, kafka_bootstrap: str, topic: str
) -> None:
    result = await _approve_a_name_change(http, running_system.profile_url)
    application_id, event_id = result["applicationId"], result["eventId"]

    async def sms_received() -> list[dict[str, Any]] | None:
        messages: list[dict[str, Any]] = (await http.get(f"{running_system.stubs_url}/_sms")).json()
        return messages or None

    async def mail_received() -> list[ReceivedMail] | None:
        return smtp.store.received() or None

    (sms,) = await eventually(sms_received, 30, "the SMS at the gateway")
    (mail,) = await eventually(mail_received, 30, "the e-mail at the SMTP server")
    assert mail.envelope_to == [EMAIL]
    assert application_id in mail.subject
    # greeted by the name the profile holds now
    for text in ("尊敬的 李四", "原户名：张三", "新户名：李四", f"申请编号：{application_id}"):  # noqa: RUF001
        assert text in mail.body, text
    assert mail.headers["Message-ID"] == f"<{event_id}.email@customer-profile.example>"
    assert (sms["to"], sms["idempotencyKey"]) == (PHONE_DIGITS, f"{event_id}:sms")
    assert "“张三”变更为“李四”" in sms["text"]
    assert application_id in sms["text"]

    connector = running_system.connector_url

    async def both_settled() -> list[dict[str, Any]] | None:
        # A message leaves before the connector records it sent: read the records once neither is open.
        listing = await http.get(f"{connector}/v1/notifications", params={"customerId": CUSTOMER})
        items: list[dict[str, Any]] = listing.json()["items"]
        open_ones = [r for r in items if r["status"] in {"pending", "retrying"}]
        return items if len(items) == 2 and not open_ones else None

    records = await eventually(both_settled, 30, "both notification records settled")
    assert sorted((r["channel"], r["status"], r["eventId"]) for r in records) == [
        ("email", "sent", event_id),
        ("sms", "sent", event_id),
    ]

    # Redeliver the event: an admin re-drives the published outbox row, the relay publishes it again.
    api = running_system.profile_url
    (row,) = (await http.get(f"{api}/v1/admin/outbox", params={"customerId": CUSTOMER})).json()["items"]
    redriven = await http.post(f"{api}/v1/admin/outbox/redrive", json={"ids": [row["id"]]})
    assert redriven.status_code == 200, redriven.text

    async def redelivery_skipped() -> bool | None:
        metrics = (await http.get(f"{connector}/metrics")).text
        return True if "notification_redeliveries_skipped_total 1.0" in metrics else None

    await eventually(redelivery_skipped, 30, "the notifier to see the redelivered event")
    await asyncio.sleep(1.0)  # a (wrong) second send would have happened by now: the schedulers poll every 0.2 s
    assert len(smtp.store.received()) == 1
    assert len((await http.get(f"{running_system.stubs_url}/_sms")).json()) == 1

    # The public topic carried the event twice and the customer's contact data never.
    messages = await read_topic(kafka_bootstrap, topic, expected=2)
    assert len(messages) == 2
    for message in messages:
        wire = b"".join([message.key or b"", message.value or b"", *(value for _, value in message.headers)])
        text = wire.decode()
        for secret in (PHONE, PHONE_DIGITS, "13800138000", EMAIL, ADDRESS):
            assert secret not in text, secret
        assert "李四" in text  # names are what the topic is about
