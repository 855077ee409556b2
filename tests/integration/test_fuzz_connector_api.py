"""Property-based testing of the sync-connector's admin API against its own OpenAPI document: every check.

A real ``python -m services.sync_connector serve`` process on a fresh database and topic, with a few
events recorded (their systems unreachable, so the records stay retrying) for ids to be found. Schemathesis
runs as a new user would (``schemathesis run``): all of its checks (server errors, status codes,
content types, headers, response schemas, invalid data rejected, valid data accepted, missing required
headers, unsupported methods with ``Allow``, ignored authentication...), positive and negative data,
with an admin token (it tries without one by itself). Zero failures expected. ``FUZZ_MAX_EXAMPLES``
(default 10 per operation) bounds the run in ``make test``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, encode_event
from libs.devstack.topology import SYSTEMS, Role
from libs.kit.kafka import KafkaSettings, client_options
from libs.kit.kafka_topics import ensure_topic
from libs.kit.tokens import Role as TokenRole
from tests.auth_support import bearer, token
from tests.connector_support import name_changed
from tests.polling import eventually
from tests.system_support import topology_for_tests

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
EVENTS = 3
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def connector_url(clone_database: Callable[[str], str], kafka_bootstrap: str, artifacts_dir: Path) -> Iterator[str]:
    topic = f"customer-profile.v1.fuzz-{uuid.uuid4().hex[:10]}"
    asyncio.run(ensure_topic(KafkaSettings(bootstrap_servers=kafka_bootstrap), topic))
    topology = topology_for_tests(
        clone_database("fuzz_connector"),
        kafka_bootstrap,
        topic,
        artifacts_dir / "fuzz-connector",
        processes={"connector": Role.CONNECTOR},
        external_systems_url="http://127.0.0.1:9",  # nothing listens: every record stays retrying
        log_level="INFO",  # it says where it listens at INFO
    )
    system = topology.start(timeout=90)
    try:
        url = system.url("connector")
        asyncio.run(_recorded_events(kafka_bootstrap, topic, url))
        yield url
    finally:
        system.stop()


async def _recorded_events(kafka_bootstrap: str, topic: str, connector_url: str) -> None:
    """A few events, produced as the relay does, until the connector lists a record of each at each system."""
    producer = AIOKafkaProducer(**client_options(KafkaSettings(bootstrap_servers=kafka_bootstrap)))
    await producer.start()
    try:
        for number in range(EVENTS):
            event = name_changed(f"F{number}", 1)
            attributes = CloudEventAttributes(
                str(uuid.uuid4()), EVENT_SOURCE, NAME_CHANGED_TYPE, event.changed_at, event.customer_id
            )
            headers = [(k, v.encode()) for k, v in kafka_headers(attributes, {}).items()]
            await producer.send_and_wait(topic, encode_event(event), key=event.customer_id.encode(), headers=headers)
    finally:
        await producer.stop()
    async with httpx.AsyncClient(base_url=connector_url, headers=bearer(TokenRole.VIEWER), timeout=5) as client:

        async def listed() -> bool:
            page = (await client.get("/v1/sync-records", params={"limit": "500"})).json()
            return len(page["items"]) == EVENTS * len(SYSTEMS)

        await eventually(listed, "the connector to record every event", timeout=60)


def test_every_check_passes_on_positive_and_negative_data(connector_url: str, artifacts_dir: Path) -> None:
    reports = artifacts_dir / "fuzz-connector"
    command = [
        *(sys.executable, "-m", "tests.schemathesis_cli", "--no-color", "run", f"{connector_url}/schema/openapi.json"),
        *("--checks", "all", "--mode", "all", "--max-examples", str(MAX_EXAMPLES)),
        *("--header", f"Authorization: Bearer {token(TokenRole.ADMIN, subject='fuzzer')}"),
        *("--request-timeout", "10", "--workers", "2", "--suppress-health-check", "all"),
        *("--report", "junit", "--report-dir", str(reports)),
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, cwd=Path(__file__).parents[2]
    )
    (reports / "schemathesis.txt").write_text(finished.stdout + finished.stderr, encoding="utf-8")
    assert finished.returncode == 0, finished.stdout[-12000:] + finished.stderr[-3000:]
