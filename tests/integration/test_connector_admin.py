"""Admin API and CLI of the sync-connector: list, status, retry one, retry all failed of a system; audited."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg
import msgspec
import pytest

from libs.kit.tokens import Role
from tests.auth_support import bearer, connector_auth_env, token
from tests.connector_support import SYSTEMS, ConnectorHarness, metric, name_changed, running_connector
from tests.polling import eventually

CRM_FAILED = {"CRM": "failed", "CMS": "success", "CSS": "success"}
ALL_SUCCESS = dict.fromkeys(SYSTEMS, "success")
ADMIN = {**bearer(Role.ADMIN, subject="ops-alice"), "User-Agent": "admin-test/1.0"}


async def _call(harness: ConnectorHarness, method: str, url: str, **kwargs: Any) -> tuple[int, str, Any]:
    async with harness.http.request(method, url, **kwargs) as response:
        return response.status, response.content_type, await response.json(content_type=None)


async def _crm_record_id(harness: ConnectorHarness, event_id: str) -> int:
    record_id: int = (await harness.records(event_id))["CRM"]["id"]
    return record_id


async def _run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    """``python -m services.sync_connector sync ...`` as a real process: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sync_connector",
        "sync",
        *args,
        env={
            **os.environ,
            "CONNECTOR_DB_URL": database_url,
            **connector_auth_env(),
            "CONNECTOR_ADMIN_TOKEN": token(Role.ADMIN, subject="ops-bob"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _check_listing(harness: ConnectorHarness, api: str, first: str, first_id: int, second_id: int) -> None:
    """Filters, newest first, pages joined by an opaque cursor, bad parameters are 422 problems."""
    failed = {"systemCode": "CRM", "status": "failed", "limit": "1"}
    status, _, page = await _call(harness, "GET", f"{api}/v1/sync-records", params=failed)
    assert status == 200
    assert [item["id"] for item in page["items"]] == [second_id]
    status, _, page = await _call(
        harness, "GET", f"{api}/v1/sync-records", params={**failed, "cursor": page["nextCursor"]}
    )
    assert ([item["id"] for item in page["items"]], page["nextCursor"]) == ([first_id], None)
    _, _, page = await _call(harness, "GET", f"{api}/v1/sync-records", params={"eventId": first})
    assert sorted(item["systemCode"] for item in page["items"]) == sorted(SYSTEMS)
    for bad in ({"limit": "501"}, {"cursor": "bm9wZQ"}, {"status": "odd"}, {"eventId": "x"}, {"systemCode": "X"}):
        status, content_type, problem = await _call(harness, "GET", f"{api}/v1/sync-records", params=bad)
        assert (status, content_type, problem["code"]) == (422, "application/problem+json", "VALIDATION"), bad


async def test_list_status_and_retry_over_http(harness: ConnectorHarness) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 400, "count": 2})
    async with running_connector(harness.settings()) as runtime:
        api = runtime.http_url
        first = await harness.produce(name_changed("C700", 1))
        second = await harness.produce(name_changed("C701", 1))
        for event_id in (first, second):
            await eventually(harness.statuses_become(event_id, CRM_FAILED), "CRM failed on 400")
        first_id, second_id = await _crm_record_id(harness, first), await _crm_record_id(harness, second)

        await _check_listing(harness, api, first, first_id, second_id)

        # getSyncStatus: the latest record per system.
        status, _, body = await _call(harness, "GET", f"{api}/v1/sync-status/C700")
        assert status == 200
        assert {s["systemCode"]: s["syncStatus"] for s in body["systems"]} == CRM_FAILED
        status, _, problem = await _call(harness, "GET", f"{api}/v1/sync-status/NOBODY")
        assert (status, problem["code"]) == (404, "SYNC_STATUS_NOT_FOUND")

        # retryFailedSync for one record: needs an admin; re-delivered with the same key; audited.
        retry_first = f"{api}/v1/sync-records/{first_id}/retry"
        status, _, problem = await _call(harness, "POST", retry_first, headers=bearer(Role.VIEWER))
        assert (status, problem["code"]) == (403, "FORBIDDEN")
        status, _, body = await _call(harness, "POST", retry_first, headers=ADMIN)
        assert (status, body["syncStatus"], body["redriveCount"]) == (202, "retrying", 1)
        await eventually(harness.statuses_become(first, ALL_SUCCESS), "the re-driven record delivered")
        assert await harness.attempts(first, "CRM") == [("rejected", 400), ("applied", 200)]
        assert [call.headers["Idempotency-Key"] for call in harness.stub.state.received("CRM")] == [first]
        status, _, problem = await _call(harness, "POST", retry_first, headers=ADMIN)
        assert (status, problem["code"], problem["type"].endswith("/invalid-status")) == (409, "INVALID_STATUS", True)
        status, _, problem = await _call(harness, "POST", f"{api}/v1/sync-records/999999/retry", headers=ADMIN)
        assert (status, problem["code"]) == (404, "SYNC_RECORD_NOT_FOUND")
        status, _, problem = await _call(harness, "POST", f"{api}/v1/sync-records/abc/retry", headers=ADMIN)
        assert status == 422

        # Retry all failed of a system.
        bulk = f"{api}/v1/sync-records/retry"
        for bad_body in ({"systemCode": "CRM", "status": "success"}, {"systemCode": "XYZ"}, {"nope": 1}):
            status, _, problem = await _call(harness, "POST", bulk, json=bad_body, headers=ADMIN)
            assert (status, problem["code"]) == (422, "VALIDATION"), bad_body
        status, _, body = await _call(
            harness, "POST", bulk, json={"systemCode": "CRM", "status": "failed"}, headers=ADMIN
        )
        assert (status, body["count"], body["recordIds"], body["limitReached"]) == (202, 1, [second_id], False)
        await eventually(harness.statuses_become(second, ALL_SUCCESS), "the bulk re-driven record delivered")
        assert metric(runtime, "sync_admin_retries_total", channel="http") == 2

    actions = await harness.db.fetch("SELECT * FROM sync.admin_actions ORDER BY id")
    assert [(a["action"], a["actor"], a["channel"], a["affected_count"]) for a in actions] == [
        ("retry_record", "ops-alice", "http", 1),
        ("retry_failed", "ops-alice", "http", 1),
    ]
    assert (actions[0]["record_id"], actions[0]["ip"], actions[0]["user_agent"]) == (
        first_id,
        "127.0.0.1",
        "admin-test/1.0",
    )
    assert msgspec.json.decode(actions[1]["filter"]) == {"systemCode": "CRM", "status": "failed"}
    assert msgspec.json.decode(actions[1]["details"]) == {"recordIds": [second_id]}
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await harness.db.execute("UPDATE sync.admin_actions SET actor = 'mallory'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await harness.db.execute("DELETE FROM sync.admin_actions")


async def test_cli_lists_and_retries(harness: ConnectorHarness) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 422, "count": 1})
    async with running_connector(harness.settings()):
        event_id = await harness.produce(name_changed("C710", 1))
        await eventually(harness.statuses_become(event_id, CRM_FAILED), "CRM failed on 422")
        record_id = await _crm_record_id(harness, event_id)

        url = harness.database_url
        code, out, err = await _run_cli(url, "list", "--system", "CRM", "--status", "failed")
        assert code == 0, err
        assert [item["id"] for item in msgspec.json.decode(out)["items"]] == [record_id]
        code, out, err = await _run_cli(url, "retry", "--id", str(record_id))
        assert code == 0, err
        assert msgspec.json.decode(out)["syncStatus"] == "retrying"
        await eventually(harness.statuses_become(event_id, ALL_SUCCESS), "the CLI re-driven record delivered")
        code, out, err = await _run_cli(url, "retry", "--id", str(record_id))
        assert (code, out) == (1, "")
        assert "INVALID_STATUS" in err

    actions = await harness.db.fetch(
        "SELECT action, actor, channel, affected_count FROM sync.admin_actions ORDER BY id"
    )
    assert [tuple(a) for a in actions] == [("retry_record", "ops-bob", "cli", 1)]
