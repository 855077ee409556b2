"""One trace from the audit call to every external system; logs and metrics that tell the same story."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import SYSTEMS, RunningSystem, eventually
from tests.notification_support import create_customer
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan


@pytest.fixture
def extra_env(otlp: OtlpReceiver) -> dict[str, str]:
    # The standard variables: every process exports its spans to the receiver.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}


async def approve_name_change(
    http: httpx.AsyncClient, api: str, customer_id: str, new_name: str
) -> tuple[dict[str, Any], str]:
    submitted = await http.post(
        f"{api}/v1/name-change-applications", json={"customerId": customer_id, "newName": new_name, "reason": "r"}
    )
    assert submitted.status_code == 201, submitted.text
    approved = await http.post(
        f"{api}/v1/name-change-applications/{submitted.json()['applicationId']}/decision",
        json={"decision": "approved", "auditorId": "auditor-7"},
    )
    assert approved.status_code == 200, approved.text
    result: dict[str, Any] = approved.json()
    return result, approved.headers["x-trace-id"]


async def successes(http: httpx.AsyncClient, system: RunningSystem, customer_id: str) -> int:
    response = await http.get(f"{system.connector_url}/v1/sync-records", params={"customerId": customer_id})
    return sum(r["syncStatus"] == "success" for r in response.json()["items"])


def metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted(filter(None, (match.group(2) or "").split(","))))
        if found == wanted:
            return float(match.group(3))
    pytest.fail(f"metric {name}{labels or ''} not found")


async def test_one_trace_from_the_audit_call_to_every_external_system(
    running_system: RunningSystem, http: httpx.AsyncClient, otlp: OtlpReceiver, database_url: str, topic: str
) -> None:
    api = running_system.profile_url
    await create_customer(api, "OBS001", accountType="industrial")
    result, response_trace_id = await approve_name_change(http, api, "OBS001", "李四")
    await eventually(lambda: _at_least(successes(http, running_system, "OBS001"), len(SYSTEMS)), 30, "three successes")
    db = await asyncpg.connect(database_url)
    try:
        headers = json.loads(
            await db.fetchval("SELECT headers FROM profile.outbox WHERE id=$1::uuid", result["eventId"])
        )
    finally:
        await db.close()
    trace_id = headers["traceparent"].split("-")[1]
    assert response_trace_id == trace_id, "the approval response names the trace its event carries"

    def complete_trace() -> list[ReceivedSpan] | None:
        spans = otlp.in_trace(trace_id)
        kinds = [s.kind for s in spans if s.service == "sync-connector"]
        done = kinds.count("CLIENT") >= len(SYSTEMS) and kinds.count("CONSUMER") >= len(SYSTEMS)
        return spans if done else None

    async def probe() -> list[ReceivedSpan] | None:
        return complete_trace()

    spans = await eventually(probe, 20, "the connector's consumer and client spans to be exported")
    by_service: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_service.setdefault(span.service, []).append(span)
    assert set(by_service) >= {"profile-service", "outbox-relay", "sync-connector"}

    server = [s for s in by_service["profile-service"] if s.kind == "SERVER"]
    assert any("/decision" in s.name or "decision" in str(s.attributes.get("http.route", "")) for s in server)
    db_spans = [s for s in by_service["profile-service"] if s.attributes.get("db.system") == "postgresql"]
    assert db_spans, "database spans of the update transaction"

    (producer,) = [s for s in by_service["outbox-relay"] if s.kind == "PRODUCER"]
    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.name"] == topic
    assert producer.attributes["messaging.kafka.message.key"] == "OBS001"

    consumers = [s for s in by_service["sync-connector"] if s.kind == "CONSUMER"]
    assert len(consumers) == len(SYSTEMS)
    for consumer in consumers:
        assert consumer.attributes["messaging.system"] == "kafka"
        assert consumer.attributes["messaging.destination.name"] == topic
        assert (
            "messaging.kafka.offset" in consumer.attributes or "messaging.kafka.message.offset" in consumer.attributes
        )

    clients = [s for s in by_service["sync-connector"] if s.kind == "CLIENT"]
    paths = {str(s.attributes.get("url.full", "")).split("127.0.0.1")[-1].split(":", 1)[-1] for s in clients}
    assert {p[p.index("/") :] for p in paths} == set(SYSTEMS.values())
    assert all(s.attributes.get("http.request.method") == "POST" for s in clients)
    assert all(s.attributes.get("http.response.status_code") == 200 for s in clients)

    # The logs of both services name the same trace.
    profile_log = (running_system.logs / "profile.log").read_text()
    connector_log = (running_system.logs / "connector.log").read_text()
    assert any('"UPDATE_SUCCESS"' in line and trace_id in line for line in profile_log.splitlines()), (
        "UPDATE_SUCCESS logged with the request's trace id"
    )
    assert sum(trace_id in line and "sync_succeeded" in line for line in connector_log.splitlines()) == len(SYSTEMS)


async def _at_least(count: Any, wanted: int) -> int | None:
    value = await count
    return value if value >= wanted else None


async def test_metrics_after_three_changes(running_system: RunningSystem, http: httpx.AsyncClient) -> None:
    api = running_system.profile_url
    for index in range(3):
        customer_id = f"MET{index}"
        await create_customer(api, customer_id, "王五")
        await approve_name_change(http, api, customer_id, "赵六")
    for index in range(3):
        await eventually(
            lambda i=index: _at_least(successes(http, running_system, f"MET{i}"), len(SYSTEMS)),  # type: ignore[misc]
            30,
            f"MET{index} applied everywhere",
        )

    profile_metrics = (await http.get(f"{api}/metrics")).text
    assert metric(profile_metrics, "profile_update_success_total", {"customer_type": "residential"}) == 3
    assert metric(profile_metrics, "profile_update_duration_seconds_count") == 3

    connector_metrics = (await http.get(f"{running_system.connector_url}/metrics")).text
    for system in SYSTEMS:
        assert (
            metric(connector_metrics, "external_sync_transitions_total", {"system_code": system, "status": "success"})
            == 3
        )

    async def backlog_drained() -> float | None:
        text = (await http.get(f"{running_system.relay_url}/metrics")).text
        return (
            1.0
            if metric(text, "outbox_pending_rows") == 0 and metric(text, "outbox_relay_published_total") == 3
            else None
        )

    await eventually(backlog_drained, 10, "the relay's backlog gauge back at 0")

    async def no_lag() -> float | None:
        text = (await http.get(f"{running_system.connector_url}/metrics")).text
        lags = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("consumer_lag{")]
        return 0.0 if lags and sum(lags) == 0 else None

    await eventually(no_lag, 10, "every system's consumer lag back at 0")
