"""The outbox admin API on real PostgreSQL and Kafka: list, inspect, re-drive (audited), in order."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
from litestar.testing import AsyncTestClient

from libs.kit.kafka import KafkaSettings
from libs.kit.tokens import Role
from tests.auth_support import DEFAULT_SUBJECT, bearer
from tests.ledger_support import profile_client
from tests.relay_support import (
    collecting,
    engine_for,
    first_occurrence_versions,
    name_changed,
    outbox_rows,
    relay_settings,
    running_relay,
    status_counts,
    wait_until,
    write,
)

PROBLEM = "https://customer-profile.example/problems/"
ADMIN = {**bearer(Role.ADMIN, subject="sre-alice"), "user-agent": "ops-console/1.0"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert (body["code"], body["status"]) == (code, status)
    assert body["type"] == PROBLEM + code.lower().replace("_", "-")
    return body


async def redrive_audits(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        records: list[asyncpg.Record] = await conn.fetch(
            "SELECT actor_id, customer_id, operation, old_value::text AS old_value, new_value::text AS new_value, "
            "ip_address, user_agent FROM profile.audit_logs WHERE event_type = 'OUTBOX_REDRIVEN' ORDER BY id"
        )
    finally:
        await conn.close()
    return records


async def test_a_parked_row_is_listed_re_driven_after_the_fix_and_its_key_flows_in_order(
    database_url: str, kafka_settings: KafkaSettings, topic: str, client: AsyncTestClient[Any]
) -> None:
    small = KafkaSettings(bootstrap_servers=kafka_settings.bootstrap_servers, max_request_size=8_192)
    settings = relay_settings(topic, max_attempts=2, poll_interval_s=0.2)
    poison = name_changed("X", 1, reason="x" * 20_000)
    behind = [name_changed("X", 2), name_changed("X", 3)]
    y_rows = [name_changed("Y", 1), name_changed("Y", 2)]
    async with engine_for(database_url) as engine, collecting(kafka_settings, topic) as seen:
        # 1. A producer limit parks X's first row; X's later rows wait, Y flows.
        async with running_relay(database_url, small, settings):
            await write(engine, [poison, y_rows[0], *behind, y_rows[1]])
            await wait_until(lambda: {str(m.id) for m in y_rows} <= seen.ids(), timeout=15, message="Y did not flow")

            async def parked() -> bool:
                status: str = (await outbox_rows(database_url))[poison.id]["status"]
                return status == "failed"

            await wait_until(parked, timeout=15, message="the big row was not parked")

        listed = await client.get("/v1/admin/outbox", params={"status": "failed"})
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        assert [(i["id"], i["aggregateId"], i["status"]) for i in items] == [(str(poison.id), "X", "failed")]
        assert "MessageSizeTooLarge" in items[0]["lastError"]
        assert listed.json()["nextCursor"] is None
        detail = (await client.get(f"/v1/admin/outbox/{poison.id}")).json()
        assert detail["payload"]["profileVersion"] == 1
        assert detail["headers"]["ce_id"] == str(poison.id)
        waiting = (await client.get("/v1/admin/outbox", params={"customerId": "X", "status": "pending"})).json()
        assert [i["id"] for i in waiting["items"]] == [str(m.id) for m in behind]

        # 2. The cause is fixed (the producer's limit raised), then the admin re-drives the key.
        async with running_relay(database_url, kafka_settings, settings):
            response = await client.post(
                "/v1/admin/outbox/redrive", json={"status": "failed", "customerId": "X"}, headers=ADMIN
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"redriven": 1, "skipped": 0, "ids": [str(poison.id)]}
            x_ids = {str(poison.id), *(str(m.id) for m in behind)}
            await wait_until(lambda: x_ids <= seen.ids(), timeout=15, message="X was not unblocked")

            # 3. Re-driving a published row publishes it again, after the newer event of its key.
            again = await client.post("/v1/admin/outbox/redrive", json={"ids": [str(y_rows[0].id)]}, headers=ADMIN)
            assert again.json()["redriven"] == 1
            await wait_until(
                lambda: sum(m.event_id == str(y_rows[0].id) for m in seen.messages) == 2,
                timeout=15,
                message="the re-driven published row was not published again",
            )

            async def drained() -> bool:
                return await status_counts(database_url) == {"published": 5}

            await wait_until(drained, timeout=10, message="rows left pending")

    versions = first_occurrence_versions(seen.messages)
    assert versions == {"X": [1, 2, 3], "Y": [1, 2]}
    y_stream = [json.loads(m.value)["profileVersion"] for m in sorted(seen.messages, key=lambda r: r.offset)
                if m.key == "Y"]  # fmt: skip
    assert y_stream == [1, 2, 1], "the re-driven old event comes after the newer one (consumers see it superseded)"
    rows = await outbox_rows(database_url)
    assert rows[poison.id]["attempts"] == 1
    assert "MessageSizeTooLarge" in rows[poison.id]["last_error"], "the error stays for history"

    audits = await redrive_audits(database_url)
    assert len(audits) == 2
    by_filter, by_id = audits
    assert (by_filter["actor_id"], by_filter["customer_id"], by_filter["user_agent"]) == (
        "sre-alice",
        "X",
        "ops-console/1.0",
    )
    assert by_filter["ip_address"]
    assert json.loads(by_filter["new_value"]) == {
        "filter": {"status": "failed", "customerId": "X"},
        "count": 1,
        "redrivenIds": [str(poison.id)],
    }
    assert json.loads(by_filter["old_value"]) == {"byStatus": {"failed": 1}}
    assert json.loads(by_id["new_value"])["ids"] == [str(y_rows[0].id)]
    assert json.loads(by_id["old_value"]) == {"byStatus": {"published": 1}}


async def test_listing_pages_by_cursor_and_filters_by_customer_and_time(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    base = datetime(2024, 5, 1, tzinfo=UTC)
    messages = [
        msgspec.structs.replace(name_changed(f"P{n % 3}", n // 3 + 1), created_at=base + timedelta(hours=n))
        for n in range(12)
    ]
    async with engine_for(database_url) as engine:
        await write(engine, messages)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/admin/outbox", params=params)).json()
        seen.extend(item["id"] for item in body["items"])
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == [str(m.id) for m in messages]
    assert pages == 3

    p1 = (await client.get("/v1/admin/outbox", params={"customerId": "P1"})).json()["items"]
    assert [i["id"] for i in p1] == [str(m.id) for m in messages if m.aggregate_id == "P1"]
    window = {"from": (base + timedelta(hours=2)).isoformat(), "to": (base + timedelta(hours=5)).isoformat()}
    in_window = (await client.get("/v1/admin/outbox", params=window)).json()["items"]
    assert [i["id"] for i in in_window] == [str(m.id) for m in messages[2:5]]


async def test_errors_are_typed_problems_and_leave_no_audit(database_url: str, db: asyncpg.Connection) -> None:
    failed = [name_changed(f"F{n}", 1) for n in range(5)]
    async with engine_for(database_url) as engine:
        await write(engine, failed)
    await db.execute("UPDATE profile.outbox SET status = 'failed', last_error = 'boom'")

    async with profile_client(database_url, PROFILE_RELAY_REDRIVE_MAX_ROWS="3") as client:
        unknown = uuid.uuid4()
        assert_problem(await client.get(f"/v1/admin/outbox/{unknown}"), 404, "OUTBOX_ENTRY_NOT_FOUND")
        assert_problem(await client.get("/v1/admin/outbox/not-a-uuid"), 404, "OUTBOX_ENTRY_NOT_FOUND")
        redrive = "/v1/admin/outbox/redrive"
        body = assert_problem(
            await client.post(redrive, json={"ids": [str(failed[0].id), str(unknown)]}), 404, "OUTBOX_ENTRY_NOT_FOUND"
        )
        assert str(unknown) in body["detail"]
        for bad in (
            {},
            {"status": "pending"},
            {"ids": [str(failed[0].id)], "status": "failed"},
            {"status": "failed", "from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
        ):
            assert_problem(await client.post(redrive, json=bad), 422, "INVALID_OUTBOX_FILTER")
        assert_problem(await client.post(redrive, json={"status": "failed"}), 422, "REDRIVE_LIMIT_EXCEEDED")
        assert_problem(await client.post(redrive, json={"ids": "nope"}), 422, "VALIDATION")
        assert_problem(await client.get("/v1/admin/outbox", params={"status": "bogus"}), 422, "VALIDATION")
        assert_problem(await client.get("/v1/admin/outbox", params={"limit": "100000"}), 422, "INVALID_OUTBOX_FILTER")
        assert_problem(
            await client.get("/v1/admin/outbox", params={"from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}),
            422,
            "INVALID_OUTBOX_FILTER",
        )
        # Within the limit it works, and a pending id given again is skipped, not re-driven.
        ok = await client.post(redrive, json={"ids": [str(m.id) for m in failed[:3]]})
        assert ok.json()["redriven"] == 3
        again = await client.post(redrive, json={"ids": [str(failed[0].id), str(failed[3].id)]})
        assert again.json() == {"redriven": 1, "skipped": 1, "ids": [str(failed[3].id)]}

    assert await status_counts(database_url) == {"pending": 4, "failed": 1}
    audits = await redrive_audits(database_url)
    assert [json.loads(a["new_value"])["count"] for a in audits] == [3, 1]
    assert {a["actor_id"] for a in audits} == {DEFAULT_SUBJECT}
