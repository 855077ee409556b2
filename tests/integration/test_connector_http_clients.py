"""One HTTP client per system: waiting for a connection is not failing, and a slow system delays no other.

The three stub systems share one host and port, as systems behind one gateway do. Each system's
client has its own pool; a backlog larger than a slow system's pool waits in line for a
connection, and its timeouts start only once a connection is held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from services.sync_connector.breaker import BreakerState
from services.sync_connector.http_clients import HttpClientOverride
from services.sync_connector.runtime import ConnectorRuntime
from tests.connector_support import SYSTEMS, ConnectorHarness, metric, name_changed, running_connector
from tests.polling import eventually


class GaugeWatch:
    """The highest value a client's gauges reached while it watched."""

    def __init__(self, runtime: ConnectorRuntime, client: str) -> None:
        self.most_waiting = 0.0
        self.most_in_flight = 0.0
        self._runtime = runtime
        self._client = client
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            self.most_waiting = max(
                self.most_waiting, metric(self._runtime, "http_client_waiting", client=self._client)
            )
            self.most_in_flight = max(
                self.most_in_flight, metric(self._runtime, "http_client_in_flight", client=self._client)
            )
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._task.cancel()


async def _produce_backlog(harness: ConnectorHarness, count: int, prefix: str) -> list[str]:
    return [await harness.produce(name_changed(f"{prefix}{n:03d}", 1)) for n in range(count)]


def _all_at(harness: ConnectorHarness, event_ids: list[str], system: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await harness.db.fetch(
            "SELECT count(*) AS n FROM sync.external_sync_records "
            "WHERE event_id::text = ANY($1) AND system_code = $2 AND sync_status = 'success'",
            event_ids,
            system,
        )
        delivered: int = rows[0]["n"]
        return delivered == len(event_ids)

    return check


async def test_a_backlog_larger_than_a_slow_systems_pool_waits_in_line_without_failing(
    harness: ConnectorHarness,
) -> None:
    # CRM answers in 500 ms and may hold 4 connections; the read timeout (2 s) is four times a call
    # (a loaded CI machine adds to each), but the backlog of 32 takes 4 s to drain: under a timeout
    # that counted the wait for a connection, the later calls would time out.
    await harness.inject_fault({"system": "CRM", "mode": "latency", "latencyMs": 500})
    event_ids = await _produce_backlog(harness, 32, "SLOW")
    settings = harness.settings(
        http_timeout_s=2.0,
        http_clients={"CRM": HttpClientOverride(pool_size=4)},
        claim_lease_s=20.0,
    )
    async with running_connector(settings) as runtime:
        watch = GaugeWatch(runtime, "CRM")
        try:
            await eventually(_all_at(harness, event_ids, "CRM"), "the CRM backlog delivered", timeout=40)
        finally:
            watch.stop()
        assert metric(runtime, "sync_attempts_total", system_code="CRM", result="retryable") == 0
        assert metric(runtime, "sync_attempts_total", system_code="CRM", result="applied") == len(event_ids)
        assert metric(runtime, "circuit_breaker_state", system_code="CRM") == BreakerState.CLOSED
        assert metric(runtime, "circuit_breaker_transitions_total", system_code="CRM", to_state="open") == 0
    for event_id in event_ids:
        assert await harness.attempts(event_id, "CRM") == [("applied", 200)]
    # Calls queued for a connection, and no more than the pool were ever in flight.
    assert watch.most_waiting > 0
    assert 0 < watch.most_in_flight <= 4
    assert harness.calls_to("CRM") == len(event_ids)


async def test_a_slow_system_does_not_delay_another_behind_the_same_host(harness: ConnectorHarness) -> None:
    # CRM takes 4 s a call with 40 calls waiting; CMS and CSS live on the same host and port.
    await harness.inject_fault({"system": "CRM", "mode": "latency", "latencyMs": 4000})
    event_ids = await _produce_backlog(harness, 40, "HOST")
    settings = harness.settings(http_clients={"CRM": HttpClientOverride(pool_size=10)}, claim_lease_s=30.0)
    async with running_connector(settings) as runtime:
        started = time.monotonic()
        for system in ("CMS", "CSS"):
            await eventually(_all_at(harness, event_ids, system), f"{system} delivered", timeout=20)
        others_done_s = time.monotonic() - started
        crm_done_meanwhile = sum(1 for call in harness.stub.state.received("CRM") if call.status == 200)
        # CMS and CSS were all delivered before CRM answered its first call.
        assert crm_done_meanwhile == 0, (crm_done_meanwhile, others_done_s)
        await eventually(_all_at(harness, event_ids, "CRM"), "CRM delivered", timeout=40)
        for system in SYSTEMS:
            assert metric(runtime, "sync_attempts_total", system_code=system, result="retryable") == 0, system
            assert metric(runtime, "circuit_breaker_state", system_code=system) == BreakerState.CLOSED
