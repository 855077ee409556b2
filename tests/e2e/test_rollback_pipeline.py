"""A rollback on the whole system: the name it restores reaches CRM, CMS and CSS like any rename.

Create a customer, rename it twice (versions 2 and 3, both delivered), then roll it back to
version 2: version 4 carries version 2's name, and every external system ends on that name at
version 4 (a higher version than any it holds, so none takes it for a stale change). Only the
name leaves: the systems receive no tax number, credit limit or other field of the record.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import SYSTEMS, RunningSystem, eventually
from tests.notification_support import create_customer

TAX = "91110108MA01ROLL01"


async def held(http: httpx.AsyncClient, stubs_url: str, customer_id: str) -> dict[str, dict[str, Any]]:
    """customerId's state at each system: {system: {profileVersion, customerName}} (missing: not there yet)."""
    states = {}
    for system in SYSTEMS:
        customers = (await http.get(f"{stubs_url}/_customers", params={"system": system})).json()
        if customer_id in customers:
            states[system] = customers[customer_id]
    return states


async def test_rollback_to_version_2_reaches_crm_cms_and_css(
    running_system: RunningSystem, http: httpx.AsyncClient
) -> None:
    api, stubs = running_system.profile_url, running_system.stubs_url
    await create_customer(
        api, "RB001", accountType="commercial", customerCode="RB-001", creditLimit="50000.00", taxNumber=TAX
    )
    for version, name in ((1, "李四"), (2, "王五")):
        renamed = await http.patch(
            f"{api}/v1/customers/RB001", json={"customerName": name}, headers={"If-Match": f'"{version}"'}
        )
        assert renamed.status_code == 200, renamed.text

    async def at(version: int, name: str) -> dict[str, dict[str, Any]] | None:
        states = await held(http, stubs, "RB001")
        done = len(states) == len(SYSTEMS) and all(
            s["profileVersion"] == version and s["customerName"] == name for s in states.values()
        )
        return states if done else None

    await eventually(lambda: at(3, "王五"), 60, "version 3 (王五) at CRM, CMS and CSS")

    rolled = await http.post(
        f"{api}/v1/customers/RB001/rollback", json={"toVersion": 2, "reason": "误改"}, headers={"If-Match": '"3"'}
    )
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["version"], rolled.json()["customer"]["customerName"]) == (4, "李四")

    await eventually(lambda: at(4, "李四"), 60, "the rolled-back name (李四, version 4) at CRM, CMS and CSS")

    calls: list[dict[str, Any]] = (await http.get(f"{stubs}/_received")).json()
    rollback_calls = [c for c in calls if c["body"].get("profileVersion") == 4]
    assert sorted(c["system"] for c in rollback_calls) == sorted(SYSTEMS)
    for call in rollback_calls:
        assert call["body"]["customerName"] == "李四"
        assert TAX not in str(call["body"])
        assert "creditLimit" not in call["body"]

    async def synced() -> bool | None:
        records = await http.get(f"{running_system.connector_url}/v1/sync-records", params={"customerId": "RB001"})
        items = records.json()["items"]
        return sum(r["syncStatus"] == "success" and r["profileVersion"] == 4 for r in items) == len(SYSTEMS) or None

    await eventually(synced, 30, "a success record of version 4 per system")
