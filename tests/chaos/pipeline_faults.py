"""The fault rounds the chaos suite injects while the load runs, and what the operator does about them.

One round; each fault runs on its own timeline (seconds from the round's start), so a slow restart
never shortens another fault:

* 0: CRM answers 500; CMS is slow (its first calls outlast the connector's HTTP timeout and land
  anyway, so the retry with the same Idempotency-Key is a duplicate the stub absorbs).
* 1 / 3.5: SIGKILL one relay, start it again (its shards move after the lease expires).
* 2.5 / 5: SIGKILL one connector, start it again (its partitions move, its claims expire).
* 4.5: CRM goes down (connections dropped without an answer) until 20.
* 6 / 9: the broker hangs (SIGSTOP, then SIGCONT): an outage without loss, every client times out.
* 11 / 14: the broker is killed and started again on the same port. Its storage is memory-only:
  the topic, its messages and the groups' offsets are gone. The operator follows the runbook
  for a broker that lost its data (``_broker_lost_recovery``).
* 16 / 18: PostgreSQL is killed (kill -9) and started again; every service must reconnect.
* 20: CRM and CMS are well again.

Rounds alternate which relay and which connector die.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from tests.chaos.pipeline_load import ProfileClient
from tests.chaos.pipeline_system import CONNECTOR_HTTP_TIMEOUT_S, ChaosSystem

SLOW_OVER_TIMEOUT_CALLS = 6
SLOW_LATENCY_MS = 300


@dataclass
class FaultLog:
    """What was injected when (seconds since the run started), and what the operator re-drove."""

    started: float
    events: list[tuple[float, str]] = field(default_factory=list)
    redriven: int = 0
    last_fault_cleared: float | None = None
    broker_lost_at: datetime | None = None  # wall clock, to compare with the database's timestamps

    def note(self, what: str) -> None:
        self.events.append((round(time.monotonic() - self.started, 1), what))

    def count(self, prefix: str) -> int:
        return sum(1 for _, what in self.events if what.startswith(prefix))


@dataclass
class FaultInjector:
    system: ChaosSystem
    http: httpx.AsyncClient
    profile: ProfileClient  # the operator's client
    log: FaultLog
    since: datetime

    async def run_rounds(self, rounds: int, first_at_s: float, gap_s: float) -> None:
        await self._until(first_at_s)
        for index in range(rounds):
            await self.round(index)
            if index + 1 < rounds:
                await asyncio.sleep(gap_s)  # a quiet spell: the pipeline makes progress between rounds

    async def round(self, index: int) -> None:
        """Each fault on its own timeline, so a slow restart never shortens another fault."""
        relay = self.system.relays[index % 2]
        connector = self.system.connectors[(index + 1) % 2]
        start = time.monotonic()
        label = f"round {index + 1}"

        async def timeline(*steps: tuple[float, str, Callable[[], Awaitable[None]]]) -> None:
            for offset, what, action in steps:
                delay = start + offset - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # the fault's planned duration, not a wait for an outcome
                await action()
                self.log.note(f"{label}: {what}")

        await asyncio.gather(
            timeline(
                (0.0, "CRM 500s, CMS slow", self._crm_errors_cms_slow),
                (4.5, "CRM down", self._crm_down),
                (20.0, "CRM and CMS well", self._clear_faults),
            ),
            timeline(
                (1.0, f"SIGKILL {relay.name}", lambda: self.system.kill(relay)),
                (3.5, f"{relay.name} restarted", lambda: self.system.restart(relay)),
            ),
            timeline(
                (2.5, f"SIGKILL {connector.name}", lambda: self.system.kill(connector)),
                (5.0, f"{connector.name} restarted", lambda: self.system.restart(connector)),
            ),
            timeline(
                (6.0, "broker paused (SIGSTOP)", self._pause_broker),
                (9.0, "broker resumed (SIGCONT)", self._resume_broker),
                (11.0, "broker kill -9 (its memory-only storage is lost)", self._lose_broker),
                (14.0, "broker restarted, operator's recovery done", self._broker_lost_recovery),
            ),
            timeline(
                (16.0, "PostgreSQL kill -9", self.system.kill_postgres),
                (18.0, "PostgreSQL restarted", self.system.start_postgres),
            ),
        )
        self.log.last_fault_cleared = time.monotonic()
        if dead := self.system.exited():
            raise AssertionError(f"processes exited on their own: {dead} (logs: {self.system.logs})")

    async def _until(self, offset_s: float) -> None:
        delay = self.log.started + offset_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _fault(self, body: dict[str, object]) -> None:
        response = await self.http.post(f"{self.system.urls['stubs']}/_faults", json=body)
        response.raise_for_status()

    async def _clear_faults(self) -> None:
        response = await self.http.delete(f"{self.system.urls['stubs']}/_faults")
        response.raise_for_status()

    async def _cms_slow(self) -> None:
        over_timeout_ms = int(CONNECTOR_HTTP_TIMEOUT_S * 1000) + 500
        await self._fault(
            {"system": "CMS", "mode": "latency", "latencyMs": over_timeout_ms, "count": SLOW_OVER_TIMEOUT_CALLS}
        )
        await self._fault({"system": "CMS", "mode": "latency", "latencyMs": SLOW_LATENCY_MS})

    async def _crm_errors_cms_slow(self) -> None:
        await self._fault({"system": "CRM", "mode": "status", "status": 500})
        await self._cms_slow()

    async def _crm_down(self) -> None:
        await self._clear_faults()
        await self._fault({"system": "CRM", "mode": "down"})
        await self._fault({"system": "CMS", "mode": "latency", "latencyMs": SLOW_LATENCY_MS})

    async def _pause_broker(self) -> None:
        self.system.pause_broker()

    async def _resume_broker(self) -> None:
        self.system.resume_broker()

    async def _lose_broker(self) -> None:
        if self.log.broker_lost_at is None:
            self.log.broker_lost_at = datetime.now(UTC)
        await self.system.kill_broker()

    async def _broker_lost_recovery(self) -> None:
        """The runbook for a broker that lost its data (docs/delivery.md), as an operator runs it.

        The connectors still hold positions in the lost topic and would commit them into the new
        one, where they point past events never read: they are stopped before the broker is back.
        The topic is created again, the connectors start on it from its beginning, and the published
        outbox rows are re-driven: what had not been consumed before the loss is delivered, what had
        been is skipped by the connector (or recorded ``superseded`` behind a newer event).
        """
        connectors = self.system.connectors
        await asyncio.gather(*(self.system.kill(c) for c in connectors))
        await self.system.start_broker()
        await self.system.create_topic()
        await asyncio.gather(*(self.system.restart(c) for c in connectors))
        response = await self.profile.call(
            "POST", "/v1/admin/outbox/redrive", json={"status": "published", "from": self.since.isoformat()}
        )
        self.log.redriven += int(response.json()["redriven"])
        # Kept for a failed run's diagnosis: which rows the operator sent again, and when.
        redrives = sorted(self.system.logs.glob("redrive-*.json"))
        (self.system.logs / f"redrive-{len(redrives) + 1}.json").write_text(response.text)
