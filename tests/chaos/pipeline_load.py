"""The chaos load: a few concurrent HTTP clients make mixed name changes through the real profile API.

Each client owns some customers: it creates them, then makes their changes in a random
interleaving, paced to last ``duration_s`` so the faults land in the middle of it. A change
is an approved application (submit, then the audit decision) or a renaming ``PATCH`` with
``If-Match``; some applications are rejected first (no event). Every call survives the
faults the way a careful client does: ``Idempotency-Key`` on POSTs, retries on connection
errors, 5xx and retryable problems, and a look at the state when an answer was lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

# A call that keeps failing this long fails the run: the service never came back.
CALL_DEADLINE_S = 120.0
RETRY_DELAY_S = (0.1, 2.0)
NO_ANSWER = -1  # status recorded for a transport error


class LoadError(AssertionError):
    """The profile service answered something a correct service never answers here."""


@dataclass
class LoadPlan:
    customers: int
    changes: int
    clients: int
    duration_s: float


@dataclass
class LoadStats:
    changes_committed: int = 0
    rejected_applications: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    finished_at: float | None = None


class ProfileClient:
    """One call at a time, retried until the service gives a definite answer."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, stats: LoadStats) -> None:
        self._http = http
        self._base = base_url
        self._stats = stats

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        done: frozenset[int] = frozenset({200, 201}),
        definite: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Repeat until the status is in ``done``, or a non-retryable one in ``definite``; 5xx and problems
        marked ``retryable`` (``DATABASE_ERROR``, ``IDEMPOTENCY_KEY_IN_USE``...) are retried."""
        deadline = time.monotonic() + CALL_DEADLINE_S
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(method, self._base + path, json=json, headers=headers)
            except httpx.TransportError as exc:
                reason = f"transport:{type(exc).__name__}"
            else:
                if response.status_code in done:
                    return response
                if not _retryable(response):
                    if response.status_code in definite:
                        return response
                    raise LoadError(f"{method} {path} -> {response.status_code} {response.text}")
                reason = f"http:{response.status_code}:{_code(response)}"
            self._stats.retries[reason] += 1
            if time.monotonic() > deadline:
                raise LoadError(f"{method} {path} still failing after {CALL_DEADLINE_S}s ({reason})")
            await asyncio.sleep(min(RETRY_DELAY_S[0] * 2 ** min(attempt, 5), RETRY_DELAY_S[1]))


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""


def _retryable(response: httpx.Response) -> bool:
    if response.status_code >= 500:
        return True
    try:
        return bool(response.json().get("retryable", False))
    except ValueError:
        return False


class CustomerScript:
    """Creates one customer and makes its changes; every change must commit exactly once."""

    def __init__(self, client: ProfileClient, customer_id: str, run_id: str, rng: random.Random) -> None:
        self._client = client
        self.customer_id = customer_id
        self._run = run_id
        self._rng = rng
        self.next_change = 0

    async def create(self) -> None:
        body = {
            "customerId": self.customer_id,
            "customerName": f"客户{self.customer_id}",
            "accountType": "residential",
            "contactPhone": "13800138000",
        }
        # 409 CUSTOMER_EXISTS: our own earlier attempt committed and its answer was lost.
        await self._client.call(
            "POST", "/v1/customers", json=body, headers=self._key("create"), definite=frozenset({409})
        )

    async def change(self, stats: LoadStats) -> None:
        n = self.next_change
        new_name = f"{self.customer_id}-名{n + 1}"
        if self._rng.random() < 0.3:
            await self._rename_by_edit(new_name)
        else:
            if self._rng.random() < 0.15:
                await self._apply(f"{new_name}-驳回", n, approve=False)
                stats.rejected_applications += 1
            await self._apply(new_name, n, approve=True)
        self.next_change += 1
        stats.changes_committed += 1

    async def _apply(self, new_name: str, n: int, *, approve: bool) -> None:
        step = f"{n}-{'approve' if approve else 'reject'}"
        submitted = await self._client.call(
            "POST",
            "/v1/name-change-applications",
            json={"customerId": self.customer_id, "newName": new_name, "reason": "更名"},
            headers=self._key(f"submit-{step}"),
        )
        application_id = submitted.json()["applicationId"]
        decision = "approved" if approve else "rejected"
        decided = await self._client.call(
            "POST",
            f"/v1/name-change-applications/{application_id}/decision",
            json={"decision": decision, "auditorId": "chaos-auditor", "comment": "chaos"},
            headers=self._key(f"decide-{step}"),
            definite=frozenset({409}),
        )
        if decided.status_code == 200:
            return
        # The decision was taken by an earlier attempt whose answer was lost; finish what it started.
        application = (await self._client.call("GET", f"/v1/name-change-applications/{application_id}")).json()
        expected = "completed" if approve else "rejected"
        if application["status"] == "update_failed":
            await self._client.call(
                "POST", "/v1/profile-updates", json={"applicationId": application_id}, headers=self._key(f"run-{step}")
            )
        elif application["status"] != expected:
            raise LoadError(f"{application_id}: {decided.text}; application is {application['status']}")

    async def _rename_by_edit(self, new_name: str) -> None:
        path = f"/v1/customers/{self.customer_id}"
        while True:
            current = await self._client.call("GET", path)
            if current.json()["customerName"] == new_name:
                return  # an earlier PATCH committed and its answer was lost
            edited = await self._client.call(
                "PATCH",
                path,
                json={"customerName": new_name, "changeReason": "更名"},
                headers={"If-Match": current.headers["ETag"]},
                definite=frozenset({412}),
            )
            if edited.status_code == 200:
                return

    def _key(self, step: str) -> dict[str, str]:
        return {"Idempotency-Key": f"chaos-{self._run}-{self.customer_id}-{step}"}


async def run_load(http: httpx.AsyncClient, base_url: str, plan: LoadPlan, run_id: str, seed: int) -> LoadStats:
    """Create every customer and make every change; raises ``LoadError`` when a change cannot be made."""
    stats = LoadStats()
    started = time.monotonic()
    client = ProfileClient(http, base_url, stats)

    async def one_client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        scripts = [
            CustomerScript(client, customer_id(run_id, n), run_id, rng)
            for n in range(index, plan.customers, plan.clients)
        ]
        for script in scripts:
            await script.create()
        steps = [script for script in scripts for _ in range(plan.changes)]
        rng.shuffle(steps)
        interval = plan.duration_s / max(len(steps), 1)
        for i, script in enumerate(steps):
            # Paced: the load spans the fault rounds; a client behind schedule (a fault held it) catches up.
            lag = started + i * interval - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
            await script.change(stats)

    await asyncio.gather(*(one_client(i) for i in range(plan.clients)))
    stats.finished_at = time.monotonic()
    return stats


def customer_id(run_id: str, n: int) -> str:
    return f"CH{run_id[:4]}-{n:04d}"


def customer_ids(plan: LoadPlan, run_id: str) -> list[str]:
    return [customer_id(run_id, n) for n in range(plan.customers)]
