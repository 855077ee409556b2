"""After the faults: wait for the pipeline to drain, then check every invariant against what really happened.

The ground truth is the database: every committed name change has one outbox row whose id is the
event id. What the external systems did is what the stubs recorded: the calls they applied (2xx,
by Idempotency-Key), the duplicates they absorbed, and the name they now hold per customer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from libs.devstack.topology import SYSTEMS
from tests.chaos.pipeline_diagnostics import dump_diagnostics
from tests.chaos.pipeline_system import ChaosSystem

TERMINAL = ("success", "superseded", "failed")
_UNSETTLED = """
    SELECT s.code AS system_code, o.id::text AS event_id, o.aggregate_id AS customer_id, o.status AS outbox_status,
           r.sync_status, o.created_at, o.published_at, o.published_partition, o.published_offset
    FROM profile.outbox o
    CROSS JOIN unnest($1::text[]) AS s(code)
    LEFT JOIN sync.external_sync_records r ON r.event_id = o.id AND r.system_code = s.code
    WHERE o.status <> 'published' OR r.id IS NULL OR r.sync_status <> ALL($2::text[])
    ORDER BY o.seq
"""


@dataclass
class Facts:
    """Everything the checks look at, read once after the drain."""

    events: dict[str, dict[str, Any]]  # event id -> customerId, profileVersion, newName, outbox status
    customers: dict[str, tuple[str, int]]  # customer id -> (name, version)
    history: Counter[str]
    completed_applications: Counter[str]
    records: dict[tuple[str, str], list[tuple[str, datetime]]]  # (event id, system) -> (status, created at)
    dead_letters: int
    stats: dict[str, dict[str, int]]
    applied: dict[str, list[tuple[str, str, int]]]  # system -> (key, customer, version) in the order applied
    held: dict[str, dict[str, tuple[str, int]]]  # system -> customer -> (name, version)
    counts: Counter[str] = field(default_factory=Counter)


async def _unsettled(system: ChaosSystem) -> list[asyncpg.Record] | None:
    """What is not delivered yet; None while the database does not answer."""
    try:
        async with system.db() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(_UNSETTLED, list(SYSTEMS), list(TERMINAL))
            return rows
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None


async def wait_for_drain(system: ChaosSystem, timeout: float) -> float:
    """Poll until every committed event has a terminal record at every system; returns when that was."""
    deadline = time.monotonic() + timeout
    last: list[asyncpg.Record] | None = None
    while time.monotonic() < deadline:
        rows = await _unsettled(system)
        if rows is not None:
            if not rows:
                return time.monotonic()
            last = rows
        if dead := system.exited():
            pytest.fail(f"processes exited on their own while draining: {dead} (logs: {system.logs})")
        await asyncio.sleep(0.5)
    summary = Counter((r["system_code"], r["outbox_status"], r["sync_status"]) for r in last or [])
    sample = [dict(r) for r in (last or [])[:10]]
    await dump_diagnostics(system)
    pytest.fail(
        f"not drained after {timeout}s: {dict(summary)}; first: {sample} "
        f"(logs, outbox.json, sync_records.json, topic.json: {system.logs})"
    )


async def gather_facts(system: ChaosSystem, http: httpx.AsyncClient) -> Facts:
    async with system.db() as conn:
        outbox = await conn.fetch(
            "SELECT id::text AS id, aggregate_id, status, payload FROM profile.outbox ORDER BY seq"
        )
        customers = await conn.fetch("SELECT customer_id, customer_name, version FROM profile.customer_profiles")
        history = await conn.fetch(
            "SELECT customer_id, count(*) AS n FROM profile.name_change_history GROUP BY customer_id"
        )
        completed = await conn.fetch(
            "SELECT customer_id, count(*) AS n FROM profile.name_change_applications "
            "WHERE status = 'completed' GROUP BY customer_id"
        )
        records = await conn.fetch(
            "SELECT event_id::text AS event_id, system_code, sync_status, created_at FROM sync.external_sync_records"
        )
        dead_letters = await conn.fetchval("SELECT count(*) FROM sync.dead_letters")
    by_record: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
    for r in records:
        by_record[(r["event_id"], r["system_code"])].append((r["sync_status"], r["created_at"]))
    stubs = system.urls["stubs"]
    received = (await http.get(f"{stubs}/_received")).json()
    applied: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for call in received:
        if call["status"] == 200:
            key = {k.lower(): v for k, v in call["headers"].items()}["idempotency-key"]
            applied[call["system"]].append((key, call["body"]["customerId"], call["body"]["profileVersion"]))
    held = {}
    for code in SYSTEMS:
        holding = (await http.get(f"{stubs}/_customers", params={"system": code})).json()
        held[code] = {c: (s["customerName"], s["profileVersion"]) for c, s in holding.items()}
    return Facts(
        events={r["id"]: {**_payload(r["payload"]), "outboxStatus": r["status"]} for r in outbox},
        customers={r["customer_id"]: (r["customer_name"], r["version"]) for r in customers},
        history=Counter({r["customer_id"]: r["n"] for r in history}),
        completed_applications=Counter({r["customer_id"]: r["n"] for r in completed}),
        records=dict(by_record),
        dead_letters=int(dead_letters),
        stats=(await http.get(f"{stubs}/_stats")).json(),
        applied=dict(applied),
        held=held,
    )


def _payload(raw: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
    return payload


def check_invariants(facts: Facts, customer_ids: list[str], changes: int, broker_lost_at: datetime | None) -> None:
    """Assert the invariants of DESIGN.md on what happened; counts what the summary reports.

    ``superseded`` has one cause in this run: events re-driven after the broker lost its data, which reach
    a system after a newer event of their customer. So no record may be superseded before that.
    """
    events = facts.events
    by_customer = Counter(e["customerId"] for e in events.values())
    # 1. Atomicity: every change the load made committed once, with its history row, application and event.
    for customer in customer_ids:
        _name, version = facts.customers[customer]
        assert version == 1 + changes, (customer, version)
        assert facts.history[customer] == changes, (customer, facts.history[customer])
        assert facts.completed_applications[customer] == changes, customer
        assert by_customer[customer] == changes, (customer, by_customer[customer])
    # Nothing parked: no outbox row failed, no delivery failed or dead-lettered.
    assert Counter(e["outboxStatus"] for e in events.values()) == {"published": len(events)}
    assert facts.dead_letters == 0
    for code in SYSTEMS:
        applied_keys = [key for key, _, _ in facts.applied.get(code, [])]
        # 3. No double effect: no key applied twice; the stub's own count agrees.
        assert len(applied_keys) == len(set(applied_keys)), f"{code} applied a key twice"
        assert facts.stats[code]["appliedKeys"] == len(applied_keys), code
        successes: set[str] = set()
        superseded: set[str] = set()
        for event_id, event in events.items():
            records = facts.records.get((event_id, code), [])
            # 2. No loss: one terminal record per (event, system), never left open.
            assert len(records) == 1, (code, event_id, records)
            status, created_at = records[0]
            assert status in {"success", "superseded"}, (code, event_id, status)
            (successes if status == "success" else superseded).add(event_id)
            if status == "superseded":
                # 4. Only an event older than what the system holds is superseded, never applied over it.
                assert event["profileVersion"] < facts.held[code][event["customerId"]][1], (code, event_id)
                assert broker_lost_at is not None, (code, event_id, "superseded without a broker data loss")
                assert created_at >= broker_lost_at, (code, event_id, created_at, broker_lost_at)
        assert set(applied_keys) == successes, f"{code}: applied keys differ from success records"
        assert len(applied_keys) == len(successes)
        # 4. Per customer, each system applied increasing versions.
        versions: dict[str, list[int]] = defaultdict(list)
        for _, customer, version in facts.applied.get(code, []):
            versions[customer].append(version)
        for customer, seen in versions.items():
            assert seen == sorted(set(seen)), (code, customer, seen)
        # Each system ends holding the database's name and version of every customer.
        for customer in customer_ids:
            assert facts.held[code].get(customer) == facts.customers[customer], (code, customer)
        facts.counts["applied"] += len(successes)
        facts.counts["superseded"] += len(superseded)
        facts.counts["duplicates absorbed"] += facts.stats[code]["duplicateCalls"]
        facts.counts["faulted calls"] += facts.stats[code]["faultedCalls"]
