"""Every version of a customer kept, listed, compared and rolled back to, on the real database.

Each change (create, edit, rename, approved name change, delete, restore, rollback, backup
restore) stores the whole record at its new version; a rollback moves forward to a new
version equal to an earlier one, in one transaction with its log entry, and a name it
changes takes the path of every rename (history, application, outbox event).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from libs.kit.tokens import Role
from services.profile.backups.maintenance import MaintenanceTask
from services.profile.customers.versions import RollbackResult
from services.profile.domain.errors import PreconditionFailed
from services.profile.domain.ledger import ProfileChanges
from services.profile.shared.ledger_settings import LedgerSettings
from services.profile.shared.results import Actor
from tests.auth_support import bearer
from tests.ledger_support import (
    RECORD,
    Client,
    assert_problem,
    create_customer,
    patch_customer,
    profile_services,
    run_maintenance,
)
from tests.polling import eventually

TAX = "91110108MA01ABCDE1"
VIEWER = bearer(Role.VIEWER, subject="vera")
OPERATOR = bearer(Role.OPERATOR, subject="otto")


def content(customer: dict[str, Any]) -> dict[str, Any]:
    return {field: customer[field] for field in RECORD}


async def version(client: Client, customer_id: str, number: int, **headers: str) -> dict[str, Any]:
    response = await client.get(f"/v1/customers/{customer_id}/versions/{number}", headers=headers or None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def rollback(client: Client, customer_id: str, to: int, if_match: int | None, **body: Any) -> Any:
    headers = {} if if_match is None else {"If-Match": f'"{if_match}"'}
    return await client.post(f"/v1/customers/{customer_id}/rollback", json={"toVersion": to, **body}, headers=headers)


async def test_every_change_keeps_the_whole_record_at_its_new_version(client: Client, db: asyncpg.Connection) -> None:
    states: dict[int, dict[str, Any]] = {}
    states[1] = await create_customer(client, "C1", taxNumber=TAX, company="甲公司", creditLimit="100.00")
    states[2] = (await patch_customer(client, "C1", {"creditLimit": "200.00", "region": "华北"}, 1)).json()
    states[3] = (await patch_customer(client, "C1", {"customerName": "李四"}, 2)).json()
    submitted = await client.post(
        "/v1/name-change-applications", json={"customerId": "C1", "newName": "王五", "reason": "过户"}
    )
    application = submitted.json()["applicationId"]
    decided = await client.post(
        f"/v1/name-change-applications/{application}/decision", json={"decision": "approved", "auditorId": "aud-1"}
    )
    assert decided.status_code == 200, decided.text
    states[4] = (await client.get("/v1/customers/C1")).json()
    assert (await client.delete("/v1/customers/C1")).status_code == 200
    restored = await client.post("/v1/customers/C1/restore")
    states[6] = restored.json()
    rolled = await rollback(client, "C1", 2, 6)
    assert rolled.status_code == 200, rolled.text
    states[7] = rolled.json()["customer"]

    listing = (await client.get("/v1/customers/C1/versions")).json()
    kinds = [(v["version"], v["changeKind"], v["updatedBy"]) for v in listing["items"]]
    assert kinds == [
        (7, "rollback", "test-admin"),
        (6, "undelete", "test-admin"),
        (5, "delete", "test-admin"),
        (4, "name_change", "system"),  # the update after an approval is the system's, as in the name history
        (3, "edit", "test-admin"),
        (2, "edit", "test-admin"),
        (1, "create", "test-admin"),
    ]
    assert listing["nextCursor"] is None
    for number, state in states.items():
        kept = await version(client, "C1", number)
        assert content(kept) == content(state), number
        assert kept["deletedAt"] is None
    assert (await version(client, "C1", 5))["deletedAt"] is not None
    assert [v["changedFields"] for v in listing["items"]][-3:] == [
        ["customerName"],
        ["region", "creditLimit"],
        None,  # the first kept version
    ]
    assert content(states[7]) == content(states[2])
    # Versions are sealed like the live row: no plaintext tax number in the table.
    assert TAX not in str([dict(r) for r in await db.fetch("SELECT * FROM profile.customer_versions")])


async def test_versions_page_newest_first_and_unknown_ones_are_404(client: Client) -> None:
    await create_customer(client, "C1")
    for v in range(1, 6):
        assert (await patch_customer(client, "C1", {"remark": f"第{v}次"}, v)).status_code == 200
    first = (await client.get("/v1/customers/C1/versions", params={"limit": 4})).json()
    assert [v["version"] for v in first["items"]] == [6, 5, 4, 3]
    assert first["items"][-1]["changedFields"] == ["remark"]
    second = (await client.get("/v1/customers/C1/versions", params={"limit": 4, "cursor": first["nextCursor"]})).json()
    assert ([v["version"] for v in second["items"]], second["nextCursor"]) == ([2, 1], None)
    assert_problem(await client.get("/v1/customers/C2/versions/1"), 404, "PROFILE_NOT_FOUND")
    assert_problem(await client.get("/v1/customers/C2/versions"), 404, "PROFILE_NOT_FOUND")
    assert_problem(await client.get("/v1/customers/C1/versions/7"), 404, "VERSION_NOT_FOUND")
    assert_problem(
        await client.get("/v1/customers/C1/versions/1/difference", params={"to": 99}), 404, "VERSION_NOT_FOUND"
    )
    assert_problem(await client.get("/v1/customers/C1/versions/0"), 422, "VALIDATION")
    # A customer in the recycle bin keeps its versions, and a rollback can bring it back.
    assert (await client.delete("/v1/customers/C1")).status_code == 200
    assert (await client.get("/v1/customers/C1/versions")).json()["items"][0]["changeKind"] == "delete"


async def test_the_difference_field_by_field_hides_personal_values_from_a_viewer(client: Client) -> None:
    await create_customer(client, "C1", taxNumber=TAX, creditLimit="100.00")
    changes = {"customerName": "李四", "taxNumber": None, "contactPhone": "13900000000", "creditLimit": "0"}
    assert (await patch_customer(client, "C1", changes, 1)).status_code == 200
    assert (await client.delete("/v1/customers/C1")).status_code == 200

    operator = (await client.get("/v1/customers/C1/versions/1/difference", headers=OPERATOR)).json()
    assert (operator["fromVersion"], operator["toVersion"]) == (1, 3)
    by_field = {d["field"]: d for d in operator["differences"]}
    assert list(by_field) == ["customerName", "contactPhone", "creditLimit", "taxNumber", "deleted"]
    assert by_field["taxNumber"] == {"field": "taxNumber", "personal": True, "redacted": False, "old": TAX, "new": None}
    assert by_field["creditLimit"] == {
        "field": "creditLimit",
        "personal": False,
        "redacted": False,
        "old": "100.00",
        "new": "0.00",
    }
    assert by_field["deleted"]["old"] is False
    assert by_field["deleted"]["new"] is True

    viewer = await client.get("/v1/customers/C1/versions/1/difference", params={"to": 2}, headers=VIEWER)
    assert viewer.status_code == 200, viewer.text
    hidden = {d["field"]: d for d in viewer.json()["differences"]}
    assert hidden["taxNumber"] == {"field": "taxNumber", "personal": True, "redacted": True, "old": None, "new": None}
    assert hidden["contactPhone"]["redacted"] is True
    assert hidden["customerName"]["new"] == "李四"
    assert TAX not in viewer.text
    assert "13900000000" not in viewer.text
    seen = await version(client, "C1", 1, **VIEWER)
    assert seen["redactedFields"] == ["contactPhone", "contactEmail", "contactAddress", "taxNumber"]
    assert (seen["taxNumber"], seen["contactPhone"], seen["customerName"]) == (None, None, "张三")
    assert (await version(client, "C1", 1, **OPERATOR))["taxNumber"] == TAX
    # The live record is a viewer's to read, as before.
    assert (await client.get("/v1/customers/C1/versions", headers=VIEWER)).status_code == 200


async def test_rollback_to_version_2_renames_through_the_rename_path(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1", taxNumber=TAX, company="甲", customerCode="K-1")
    await patch_customer(client, "C1", {"customerName": "李四", "company": "乙"}, 1)  # version 2
    await patch_customer(client, "C1", {"customerName": "王五", "taxNumber": None, "customerCode": "K-2"}, 2)  # 3
    v2 = await version(client, "C1", 2)
    before = await db.fetchval("SELECT count(*) FROM profile.outbox WHERE aggregate_id = 'C1'")

    dry = await rollback(client, "C1", 2, 3, dryRun=True)
    assert dry.status_code == 200, dry.text
    assert (dry.json()["changed"], dry.json()["version"], dry.json()["customer"]) == (True, 3, None)
    assert [d["field"] for d in dry.json()["differences"]] == ["customerName", "customerCode", "taxNumber"]
    assert (await client.get("/v1/customers/C1")).json()["version"] == 3  # a dry run writes nothing

    response = await client.post(
        "/v1/customers/C1/rollback",
        json={"toVersion": 2, "reason": "错误的修改"},
        headers={"If-Match": '"3"', **OPERATOR},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == '"4"'
    assert (body["fromVersion"], body["toVersion"], body["version"], body["changed"]) == (3, 2, 4, True)
    after = body["customer"]
    assert content(after) == content(v2)
    assert (after["version"], after["updatedBy"], after["createdBy"]) == (4, "otto", "test-admin")

    # The name change went the way of every rename: history, completed application, outbox event.
    history = (await client.get("/v1/customers/C1/name-history")).json()[0]
    assert (history["oldName"], history["newName"], history["profileVersion"], history["changeReason"]) == (
        "王五",
        "李四",
        4,
        "错误的修改",
    )
    applications = (await client.get("/v1/name-change-applications", params={"customerId": "C1"})).json()["items"]
    newest = applications[0]
    assert (newest["origin"], newest["status"], newest["applicationId"]) == (
        "version_rollback",
        "completed",
        body["applicationId"],
    )
    event = await db.fetchrow(
        "SELECT payload FROM profile.outbox WHERE aggregate_id = 'C1' ORDER BY created_at DESC, seq DESC LIMIT 1"
    )
    assert await db.fetchval("SELECT count(*) FROM profile.outbox WHERE aggregate_id = 'C1'") == before + 1
    assert event is not None
    assert '"newName": "李四"' in event["payload"]
    assert '"profileVersion": 4' in event["payload"]
    assert TAX not in event["payload"]  # only the name leaves
    entry = await db.fetchrow(
        "SELECT actor_id, new_value::text AS new, application_id FROM profile.audit_logs "
        "WHERE customer_id = 'C1' AND event_type = 'CUSTOMER_ROLLED_BACK'"
    )
    assert entry is not None
    assert (entry["actor_id"], entry["application_id"]) == ("otto", body["applicationId"])
    assert '"toVersion": 2' in entry["new"]
    assert TAX not in entry["new"]
    assert (await version(client, "C1", 4))["changeKind"] == "rollback"


async def test_a_rollback_that_keeps_the_name_sends_nothing_and_one_that_changes_nothing_writes_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_customer(client, "C1", region="华北")
    await patch_customer(client, "C1", {"region": "华南"}, 1)
    response = await rollback(client, "C1", 1, 2)
    assert response.json()["applicationId"] is None
    assert await db.fetchval("SELECT count(*) FROM profile.outbox WHERE aggregate_id = 'C1'") == 0
    again = await rollback(client, "C1", 1, 3)
    assert (again.json()["changed"], again.json()["version"], again.json()["differences"]) == (False, 3, [])
    assert (await client.get("/v1/customers/C1")).json()["version"] == 3


async def test_rollback_refusals(client: Client) -> None:
    await create_customer(client, "C1", customerCode="K-1")
    await patch_customer(client, "C1", {"customerCode": "K-2"}, 1)
    await create_customer(client, "C2", customerCode="K-1")
    assert_problem(await rollback(client, "C1", 1, None), 428, "PRECONDITION_REQUIRED")
    assert_problem(await rollback(client, "C1", 1, 1), 412, "PRECONDITION_FAILED")
    assert_problem(await rollback(client, "C1", 9, 2), 404, "VERSION_NOT_FOUND")
    assert_problem(await rollback(client, "NOPE", 1, 1), 404, "PROFILE_NOT_FOUND")
    # Version 1's code is another customer's now: 409, in a dry run too.
    assert_problem(await rollback(client, "C1", 1, 2), 409, "CUSTOMER_CODE_EXISTS")
    assert_problem(await rollback(client, "C1", 1, 2, dryRun=True), 409, "CUSTOMER_CODE_EXISTS")
    assert_problem(await rollback(client, "C1", 0, 2), 422, "VALIDATION")
    viewer = await client.post(
        "/v1/customers/C1/rollback", json={"toVersion": 1}, headers={"If-Match": '"2"', **VIEWER}
    )
    assert_problem(viewer, 403, "FORBIDDEN")
    assert (await client.get("/v1/customers/C1")).json()["version"] == 2


async def test_a_concurrent_edit_during_a_rollback_gets_412(
    client: Client, db: asyncpg.Connection, database_url: str
) -> None:
    """The rollback and an edit, both made against version 3, run at once; whichever locks second gets 412.

    The use cases run on the test's own event loop (the in-process HTTP client handles one
    request at a time), on the real database, while a transaction of the test holds the row.
    """
    await create_customer(client, "C1")
    await patch_customer(client, "C1", {"remark": "v2"}, 1)
    await patch_customer(client, "C1", {"remark": "v3"}, 2)
    async with profile_services(database_url) as services:
        versions, customers = services.versions, services.customers
        holder = db.transaction()
        await holder.start()
        await db.execute("SELECT 1 FROM profile.customer_profiles WHERE customer_id = 'C1' FOR UPDATE")
        rolled = asyncio.ensure_future(versions.rollback("C1", 1, 3, Actor("otto")))
        await _sessions_waiting_for_a_lock(db, 1)
        edited = asyncio.ensure_future(customers.update("C1", ProfileChanges(remark="concurrent"), 3, Actor("eve")))
        await _sessions_waiting_for_a_lock(db, 2)
        assert not rolled.done()
        assert not edited.done()
        await holder.rollback()
        outcomes = await asyncio.gather(rolled, edited, return_exceptions=True)
    result, refused = outcomes
    assert isinstance(result, RollbackResult), result
    assert result.customer.version == 4
    assert isinstance(refused, PreconditionFailed), refused
    current = (await client.get("/v1/customers/C1")).json()
    assert (current["version"], current["remark"], current["updatedBy"]) == (4, None, "otto")
    # Over HTTP: an edit committed first makes the rollback's If-Match stale.
    await patch_customer(client, "C1", {"remark": "v5"}, 4)
    assert_problem(await rollback(client, "C1", 3, 4), 412, "PRECONDITION_FAILED")


async def test_rollback_takes_the_recycle_bin_state(client: Client) -> None:
    await create_customer(client, "C1")
    assert (await client.delete("/v1/customers/C1")).status_code == 200  # version 2, in the bin
    out = await rollback(client, "C1", 1, 2)
    assert out.status_code == 200, out.text
    assert (await client.get("/v1/customers/C1")).json()["version"] == 3
    back_in = await rollback(client, "C1", 2, 3)
    assert back_in.json()["customer"]["version"] == 4
    assert (await client.get("/v1/customers/C1")).status_code == 404
    bin_items = (await client.get("/v1/recycle-bin")).json()["items"]
    assert [c["customerId"] for c in bin_items] == ["C1"]


async def test_retention_caps_versions_but_keeps_the_current_and_backed_up_ones(
    client: Client, db: asyncpg.Connection, database_url: str
) -> None:
    await create_customer(client, "C1")
    await create_customer(client, "C2")
    for v in range(1, 4):
        await patch_customer(client, "C1", {"remark": f"r{v}"}, v)  # C1 at 4
    assert (await client.post("/v1/backups", json={})).status_code == 201  # holds C1 v4, C2 v1
    for v in range(4, 8):
        await patch_customer(client, "C1", {"remark": f"r{v}"}, v)  # C1 at 8

    report = await run_maintenance(database_url, MaintenanceTask.VERSIONS)  # default: keep every version
    assert report.versions_pruned == 0
    keep_two = LedgerSettings(versions_keep_per_customer=2, versions_prune_batch_size=1)
    report = await run_maintenance(database_url, MaintenanceTask.VERSIONS, settings=keep_two)
    assert report.failed_tasks == []
    kept = await db.fetch("SELECT customer_id, version FROM profile.customer_versions ORDER BY 1, 2")
    assert [(r["customer_id"], r["version"]) for r in kept] == [("C1", 4), ("C1", 7), ("C1", 8), ("C2", 1)]
    assert report.versions_pruned == 5
    assert_problem(await rollback(client, "C1", 2, 8), 404, "VERSION_NOT_FOUND")
    assert (await rollback(client, "C1", 4, 8)).status_code == 200  # the backed-up one is still there


async def test_purging_a_customer_takes_its_versions(client: Client, db: asyncpg.Connection, database_url: str) -> None:
    await create_customer(client, "C1")
    await create_customer(client, "C2")
    assert (await client.delete("/v1/customers/C1")).status_code == 200
    await db.execute(
        "UPDATE profile.customer_profiles SET deleted_at = $1 WHERE customer_id = 'C1'",
        datetime.now(UTC) - timedelta(days=40),
    )
    report = await run_maintenance(database_url, MaintenanceTask.PURGE)
    assert report.customers_purged == 1
    assert await db.fetchval("SELECT count(*) FROM profile.customer_versions WHERE customer_id = 'C1'") == 0
    assert await db.fetchval("SELECT count(*) FROM profile.customer_versions WHERE customer_id = 'C2'") == 1
    assert_problem(await client.get("/v1/customers/C1/versions"), 404, "PROFILE_NOT_FOUND")


async def test_versions_are_immutable_but_for_re_sealing(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1", taxNumber=TAX)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("UPDATE profile.customer_versions SET customer_name = 'forged' WHERE customer_id = 'C1'")
    await db.execute(
        "UPDATE profile.customer_versions SET tax_number_encrypted = tax_number_encrypted WHERE customer_id = 'C1'"
    )


async def _sessions_waiting_for_a_lock(db: asyncpg.Connection, count: int) -> None:
    """Polls until ``count`` sessions of this database wait for a lock (the row ``db`` holds)."""

    async def waiting() -> bool:
        # Inside ``db``'s transaction the statistics views are a snapshot: clear it on every look.
        await db.execute("SELECT pg_stat_clear_snapshot()")
        n: int = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return n >= count

    await eventually(waiting, f"{count} session(s) waiting for the customer's row lock", timeout=10)
