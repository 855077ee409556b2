"""`make run`'s supervisor: the broker SIGKILLed during a burst of 1,000 renames comes back on its log.

The whole system is started as a user starts it (``python -m libs.devstack.run``, its own data folder
and ports). Halfway through the burst the Apache Kafka process is killed with SIGKILL. Nobody re-drives
anything: every event must reach CRM, CMS and CSS, and each customer's events must appear in the topic
in commit order (first occurrences) for a ``read_committed`` consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer

from libs.devstack.embedded import free_port
from tests.e2e.conftest import eventually

CUSTOMERS = 50
RENAMES_PER_CUSTOMER = 20
SYSTEMS = ("CRM", "CMS", "CSS")
TOPIC = "customer-profile.v1"


@dataclass
class DevStack:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)

    def read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def printed(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def tokens(self) -> dict[str, str]:
        found = (re.match(r"\s*export (\w+)_TOKEN=(\S+)", line) for line in self.lines)
        return {m.group(1): m.group(2) for m in found if m}

    def broker(self) -> psutil.Process:
        children = psutil.Process(self.process.pid).children(recursive=True)
        return next(p for p in children if "kafka.Kafka" in p.cmdline())


@pytest.fixture
def dev_stack(tmp_path: Path, artifacts_dir: Path) -> Iterator[DevStack]:
    ports = {name: free_port() for name in ("pg", "kafka", "profile", "connector", "stubs", "relay_metrics", "smtp")}
    env = {
        **os.environ,
        "DEV_DATA_DIR": str(tmp_path / "data"),
        **{f"DEV_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "libs.devstack.run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stack = DevStack(process, ports)
    threading.Thread(target=stack.read_output, daemon=True).start()
    try:
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        (artifacts_dir / "make-run-broker-kill.out").write_text("\n".join(stack.lines), encoding="utf-8")


async def _until_printed(stack: DevStack, text: str, timeout: float) -> None:
    async def printed() -> bool | None:
        if stack.process.poll() is not None:
            pytest.fail(f"make run exited ({stack.process.returncode}):\n" + "\n".join(stack.lines[-40:]))
        return True if stack.printed(text) else None

    await eventually(printed, timeout, f"make run to print {text!r}")


async def _rename_burst(api: httpx.AsyncClient, tokens: dict[str, str], customer: str, started: list[int]) -> None:
    operator = {"Authorization": f"Bearer {tokens['OPERATOR']}"}
    auditor = {"Authorization": f"Bearer {tokens['AUDIT_SYSTEM']}"}
    created = await api.post(
        "/v1/customers",
        json={"customerId": customer, "customerName": f"{customer}-0", "accountType": "residential"},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    for n in range(1, RENAMES_PER_CUSTOMER + 1):
        applied = await api.post(
            "/v1/name-change-applications",
            json={"customerId": customer, "newName": f"{customer}-{n}", "reason": "burst"},
            headers=operator,
        )
        assert applied.status_code == 201, applied.text
        decided = await api.post(
            f"/v1/name-change-applications/{applied.json()['applicationId']}/decision",
            json={"decision": "approved", "auditorId": "auditor-1", "comment": "ok"},
            headers=auditor,
        )
        assert decided.status_code == 200, decided.text
        started[0] += 1


async def _settled(pg_port: int) -> dict[str, int]:
    """Per system: how many of the burst's events the connector settled (applied, or superseded by a newer one)."""
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/postgres")
    try:
        records = await conn.fetch(
            "SELECT system_code, count(*) AS n FROM sync.external_sync_records "
            "WHERE customer_id LIKE 'MRK%' AND sync_status IN ('success', 'superseded') GROUP BY system_code"
        )
    finally:
        await conn.close()
    return {r["system_code"]: r["n"] for r in records}


async def _final_state(stubs: httpx.AsyncClient, system: str) -> dict[str, int]:
    customers = (await stubs.get("/_customers", params={"system": system})).json()
    return {c: state["profileVersion"] for c, state in customers.items() if c.startswith("MRK")}


async def _topic_versions(bootstrap: str) -> dict[str, list[int]]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    versions: dict[str, list[int]] = {}
    try:
        idle = 0
        while idle < 3:
            batches = await consumer.getmany(timeout_ms=1_000)
            idle = 0 if batches else idle + 1
            for records in batches.values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    if key.startswith("MRK"):
                        versions.setdefault(key, []).append(json.loads(record.value)["profileVersion"])
    finally:
        await consumer.stop()
    return versions


@pytest.mark.chaos
async def test_a_broker_killed_during_a_burst_comes_back_and_every_event_is_delivered_in_order(
    dev_stack: DevStack,
) -> None:
    await _until_printed(dev_stack, "Ctrl-C stops everything.", timeout=300)
    assert dev_stack.printed("starting Apache Kafka"), "make run must say which broker it started"
    tokens = dev_stack.tokens()
    customers = [f"MRK{n:03d}" for n in range(CUSTOMERS)]
    approved = [0]
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{dev_stack.ports['profile']}", timeout=30) as api,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{dev_stack.ports['stubs']}", timeout=30) as stubs,
    ):
        burst = asyncio.gather(*(_rename_burst(api, tokens, c, approved) for c in customers))
        burst_task = asyncio.ensure_future(burst)
        total = CUSTOMERS * RENAMES_PER_CUSTOMER

        async def a_third_approved() -> bool | None:
            return True if approved[0] >= total // 3 or burst_task.done() else None

        await eventually(a_third_approved, 120, "a third of the burst")
        dev_stack.broker().send_signal(signal.SIGKILL)
        await burst_task
        assert approved[0] == total
        await _until_printed(dev_stack, "Apache Kafka exited", timeout=30)

        async def all_settled() -> dict[str, int] | None:
            settled = await _settled(dev_stack.ports["pg"])
            return settled if all(settled.get(system, 0) >= total for system in SYSTEMS) else None

        settled = await eventually(all_settled, 300, "every event settled at CRM, CMS and CSS")
        assert settled == dict.fromkeys(SYSTEMS, total)
        for system in SYSTEMS:
            final = await _final_state(stubs, system)
            assert final == dict.fromkeys(customers, RENAMES_PER_CUSTOMER + 1), system

    versions = await _topic_versions(f"127.0.0.1:{dev_stack.ports['kafka']}")
    assert sorted(versions) == customers
    for customer, seen in versions.items():
        first_occurrences = list(dict.fromkeys(seen))
        assert first_occurrences == list(range(2, RENAMES_PER_CUSTOMER + 2)), (customer, seen)
