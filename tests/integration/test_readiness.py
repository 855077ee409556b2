"""``/ready`` follows the dependencies: unready while PostgreSQL or the broker is down, ready again after."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.devstack.embedded import EmbeddedKafka, EmbeddedPostgres, free_port, remove_tree
from libs.devstack.processes import ServiceProcess
from libs.kit.db import sqlalchemy_url
from migrations.runner import upgrade_all
from tests.auth_support import auth_env
from tests.polling import eventually


@pytest.fixture
def own_services(artifacts_dir: Path) -> Iterator[tuple[EmbeddedPostgres, EmbeddedKafka]]:
    """A PostgreSQL and a broker this test may stop and start without disturbing the others."""
    data_dir = Path(tempfile.mkdtemp(prefix="ready-pg-"))
    postgres = EmbeddedPostgres(data_dir / "data", log_file=artifacts_dir / "readiness-postgres.log")
    broker = EmbeddedKafka(log_file=artifacts_dir / "readiness-kafka.log")
    postgres.start()
    broker.start()
    upgrade_all(postgres.url)
    try:
        yield postgres, broker
    finally:
        broker.stop()
        postgres.stop()
        remove_tree(data_dir)


async def readiness(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    return response.status_code, response.json()


async def until_status(url: str, status: int, timeout: float = 20) -> dict[str, Any]:
    _, body = await eventually(
        lambda: readiness(url), f"{url} to answer {status}", timeout, interval=0.1, until=lambda got: got[0] == status
    )
    return body


async def test_relay_and_profile_readiness_follow_their_dependencies(
    own_services: tuple[EmbeddedPostgres, EmbeddedKafka], artifacts_dir: Path
) -> None:
    postgres, broker = own_services
    relay_port, profile_port = free_port(), free_port()
    db_url = sqlalchemy_url(postgres.url)
    relay = ServiceProcess(
        "relay",
        "services.profile",
        ["relay"],
        env={
            "PROFILE_DB_URL": db_url,
            "PROFILE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "PROFILE_RELAY_METRICS_PORT": str(relay_port),
            "PROFILE_BACKLOG_REFRESH_S": "0.2",
        },
        health_url=f"http://127.0.0.1:{relay_port}/health",
        log_file=artifacts_dir / "readiness-relay.log",
    )
    profile = ServiceProcess(
        "profile",
        "services.profile",
        ["serve"],
        env={"PROFILE_DB_URL": db_url, "PROFILE_HTTP_PORT": str(profile_port), **auth_env()},
        health_url=f"http://127.0.0.1:{profile_port}/health",
        log_file=artifacts_dir / "readiness-profile.log",
    )
    relay.start(timeout=60)
    profile.start(timeout=60)
    relay_ready = f"http://127.0.0.1:{relay_port}/ready"
    profile_ready = f"http://127.0.0.1:{profile_port}/ready"
    try:
        await until_status(relay_ready, 200)
        await until_status(profile_ready, 200)

        broker.kill()
        body = await until_status(relay_ready, 503)
        # Nothing waits to be published: the relay has no reason to give its shards up.
        assert body["checks"] == {"database": True, "broker": False, "publishing": True}
        broker.start()
        await until_status(relay_ready, 200)

        postgres.kill()
        body = await until_status(relay_ready, 503)
        assert body["checks"] == {"database": False, "broker": True, "publishing": True}
        await until_status(profile_ready, 503)
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"http://127.0.0.1:{profile_port}/health")).status_code == 200
        postgres.start()
        await until_status(relay_ready, 200)
        await until_status(profile_ready, 200)

        async with httpx.AsyncClient(timeout=5) as client:
            metrics = (await client.get(f"http://127.0.0.1:{relay_port}/metrics")).text
        assert "outbox_pending_rows 0.0" in metrics
        assert "outbox_oldest_pending_age_seconds" in metrics
    finally:
        relay.stop()
        profile.stop()


async def test_connector_readiness_follows_database_broker_and_group(
    own_services: tuple[EmbeddedPostgres, EmbeddedKafka], artifacts_dir: Path
) -> None:
    postgres, broker = own_services
    port = free_port()
    connector = ServiceProcess(
        "connector",
        "services.sync_connector",
        ["serve"],
        env={
            "CONNECTOR_DB_URL": sqlalchemy_url(postgres.url),
            "CONNECTOR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "CONNECTOR_HTTP_PORT": str(port),
            "CONNECTOR_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "CONNECTOR_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
            "CONNECTOR_KAFKA_REBALANCE_TIMEOUT_MS": "3000",
        },
        health_url=f"http://127.0.0.1:{port}/health",
        log_file=artifacts_dir / "readiness-connector.log",
    )
    connector.start(timeout=60)
    ready = f"http://127.0.0.1:{port}/ready"
    try:
        body = await until_status(ready, 200, timeout=40)
        assert body["checks"] == {"database": True, "broker": True, "consumers": True}

        broker.kill()
        body = await until_status(ready, 503)
        assert body["checks"]["broker"] is False
        broker.start()
        await until_status(ready, 200, timeout=40)

        postgres.kill()
        body = await until_status(ready, 503)
        assert body["checks"]["database"] is False
        postgres.start()
        await until_status(ready, 200, timeout=40)
    finally:
        connector.stop()
