"""The fake external systems, over real HTTP: idempotency, versions, signatures, faults."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.stub_externals.app import RunningStub, start_stub_server

SECRET = "crm-secret"
CRM_PATH = "/api/customer/update"


@pytest.fixture
async def stub() -> AsyncIterator[RunningStub]:
    async with await start_stub_server(secrets={"CRM": SECRET}) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def _body(customer_id: str = "C1", version: int = 1) -> bytes:
    return json.dumps(
        {
            "eventId": str(uuid.uuid4()),
            "customerId": customer_id,
            "applicationId": "A1",
            "customerName": "New",
            "oldName": "Old",
            "profileVersion": version,
            "reason": "r",
            "changedAt": "2024-01-01T00:00:00Z",
        }
    ).encode()


async def _post(
    http: aiohttp.ClientSession,
    stub: RunningStub,
    path: str,
    body: bytes,
    key: str | None,
    *,
    secret: str | None = None,
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if secret is not None:
        headers["X-Signature"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    async with http.post(stub.url + path, data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_applies_versions_and_replays_repeated_keys(stub: RunningStub, http: aiohttp.ClientSession) -> None:
    assert await _post(http, stub, "/api/profile/sync", _body(version=2), "k1") == (
        200,
        {"applied": True, "version": 2},
    )
    # The same key replays the first answer, even with another body, and is not recorded again.
    assert await _post(http, stub, "/api/profile/sync", _body(version=9), "k1") == (
        200,
        {"applied": True, "version": 2},
    )
    assert await _post(http, stub, "/api/profile/sync", _body(version=2), "k2") == (409, {"currentVersion": 2})
    assert await _post(http, stub, "/api/profile/sync", _body(version=1), "k3") == (409, {"currentVersion": 2})
    assert (await _post(http, stub, "/api/profile/sync", _body(version=3), "k4"))[0] == 200
    # Versions are per system: CSS has seen nothing of C1 yet.
    assert (await _post(http, stub, "/api/customer/profile", _body(version=1), "k1"))[0] == 200

    async with http.get(stub.url + "/_received", params={"system": "CMS"}) as response:
        received = await response.json()
    assert [call["headers"]["Idempotency-Key"] for call in received] == ["k1", "k2", "k3", "k4"]
    assert [call["status"] for call in received] == [200, 409, 409, 200]
    assert received[0]["path"] == "/api/profile/sync"
    assert received[0]["body"]["profileVersion"] == 2
    async with http.get(stub.url + "/_received") as response:
        assert len(await response.json()) == 5


async def test_rejects_calls_without_key_or_valid_signature(stub: RunningStub, http: aiohttp.ClientSession) -> None:
    body = _body()
    assert (await _post(http, stub, "/api/profile/sync", body, None))[0] == 400
    assert (await _post(http, stub, "/api/profile/sync", b"{}", "k"))[0] == 400
    assert (await _post(http, stub, CRM_PATH, body, "k"))[0] == 401
    assert (await _post(http, stub, CRM_PATH, body, "k", secret="wrong"))[0] == 401
    assert (await _post(http, stub, CRM_PATH, body, "k", secret=SECRET))[0] == 200
    assert [call.system for call in stub.state.received()] == ["CRM"]


async def test_faults_status_down_latency_and_reset(stub: RunningStub, http: aiohttp.ClientSession) -> None:
    faults = [
        {"system": "CRM", "mode": "status", "status": 503, "count": 2},
        {"system": "CRM", "mode": "down", "count": 1},
        {"system": "CRM", "mode": "latency", "latencyMs": 300, "count": 1},
    ]
    for fault in faults:
        async with http.post(stub.url + "/_faults", json=fault) as response:
            assert response.status == 201
    body = _body()
    assert (await _post(http, stub, CRM_PATH, body, "k", secret=SECRET))[0] == 503
    assert (await _post(http, stub, CRM_PATH, body, "k", secret=SECRET))[0] == 503
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _post(http, stub, CRM_PATH, body, "k", secret=SECRET)
    started = time.monotonic()
    assert (await _post(http, stub, CRM_PATH, body, "k", secret=SECRET))[0] == 200
    assert time.monotonic() - started >= 0.3
    # Faults of one system leave the others alone.
    async with http.post(stub.url + "/_faults", json={"system": "CMS", "mode": "status", "status": 500}) as response:
        assert response.status == 201
    for _ in range(3):
        assert (await _post(http, stub, "/api/profile/sync", _body(), str(uuid.uuid4())))[0] == 500
    assert (await _post(http, stub, CRM_PATH, _body(version=2), "k2", secret=SECRET))[0] == 200
    async with http.delete(stub.url + "/_faults") as response:
        assert response.status == 204
    assert (await _post(http, stub, "/api/profile/sync", _body(), "k3"))[0] == 200

    async with http.post(stub.url + "/_faults", json={"system": "XYZ", "mode": "down"}) as response:
        assert response.status == 400
    async with http.post(stub.url + "/_reset") as response:
        assert response.status == 204
    assert stub.state.received() == []
    assert (await _post(http, stub, CRM_PATH, body, "k", secret=SECRET))[0] == 200  # the replay cache is gone too
    async with http.get(stub.url + "/health") as response:
        assert response.status == 200


async def test_stats_count_applied_keys_duplicates_conflicts_and_faults(
    stub: RunningStub, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        stub.url + "/_faults", json={"system": "CMS", "mode": "status", "status": 500, "customerId": "C9"}
    ) as response:
        assert response.status == 201
    assert (await _post(http, stub, "/api/profile/sync", _body("C9"), "k9"))[0] == 500  # only C9 is faulted
    assert (await _post(http, stub, "/api/profile/sync", _body("C1", 1), "k1"))[0] == 200
    assert (await _post(http, stub, "/api/profile/sync", _body("C1", 1), "k1"))[0] == 200  # duplicate, absorbed
    assert (await _post(http, stub, "/api/profile/sync", _body("C1", 2), "k2"))[0] == 200
    assert (await _post(http, stub, "/api/profile/sync", _body("C1", 1), "k3"))[0] == 409
    assert (await _post(http, stub, "/api/customer/profile", _body("C1", 1), "k1"))[0] == 200

    async with http.get(stub.url + "/_stats") as response:
        stats = await response.json()
    assert stats["CMS"] == {
        "appliedKeys": 2,
        "conflicts": 1,
        "duplicateCalls": 1,
        "faultedCalls": 1,
        "overlappingCalls": 0,
    }
    assert stats["CSS"] == {
        "appliedKeys": 1,
        "conflicts": 0,
        "duplicateCalls": 0,
        "faultedCalls": 0,
        "overlappingCalls": 0,
    }
    assert stats["CRM"]["appliedKeys"] == 0
    async with http.get(stub.url + "/_customers", params={"system": "CMS"}) as response:
        assert await response.json() == {"C1": {"profileVersion": 2, "customerName": "New"}}
    async with http.get(stub.url + "/_customers", params={"system": "ERP"}) as response:
        assert response.status == 400

    # Two calls with one key at the same time are counted: a correct client never makes them.
    async with http.post(stub.url + "/_faults", json={"system": "CRM", "mode": "latency", "latencyMs": 200}) as r:
        assert r.status == 201
    await asyncio.gather(*(_post(http, stub, CRM_PATH, _body("C2"), "same", secret=SECRET) for _ in range(2)))
    async with http.get(stub.url + "/_stats") as response:
        crm = (await response.json())["CRM"]
    assert (crm["overlappingCalls"], crm["appliedKeys"], crm["duplicateCalls"]) == (1, 1, 1)
