"""``/ready`` follows the dependencies: unready while PostgreSQL or the broker is down, ready again after."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.devstack.embedded import EmbeddedKafka, EmbeddedPostgres
from libs.devstack.processes import ServiceProcess
from libs.devstack.topology import Overrides, Role, Topology
from migrations.runner import upgrade_all
from tests.polling import eventually
from tests.system_support import keys_for_tests


@dataclass(frozen=True)
class OwnServices:
    """A PostgreSQL and a broker this test may stop and start without disturbing the others."""

    postgres: EmbeddedPostgres
    broker: EmbeddedKafka
    logs: Path

    def processes(self, processes: dict[str, Role], overrides: Overrides | None = None) -> list[ServiceProcess]:
        """The processes on this PostgreSQL and broker, not started yet."""
        topology = Topology(
            database_url=self.postgres.url,
            bootstrap=self.broker.bootstrap,
            logs=self.logs,
            processes=processes,
            group_session_ms=3000,
            group_heartbeat_ms=300,
            keys=keys_for_tests(),
            overrides=overrides or {},
        )
        return [topology.build(name) for name in processes]


@pytest.fixture
def own_services(artifacts_dir: Path) -> Iterator[OwnServices]:
    with (
        EmbeddedPostgres(log_file=artifacts_dir / "readiness-postgres.log") as postgres,
        EmbeddedKafka(log_file=artifacts_dir / "readiness-kafka.log") as broker,
    ):
        upgrade_all(postgres.url)
        yield OwnServices(postgres, broker, artifacts_dir / "readiness")


async def readiness(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    return response.status_code, response.json()


async def until_status(url: str, status: int, timeout: float = 20) -> dict[str, Any]:
    _, body = await eventually(
        lambda: readiness(url), f"{url} to answer {status}", timeout, interval=0.1, until=lambda got: got[0] == status
    )
    return body


async def test_relay_and_profile_readiness_follow_their_dependencies(own_services: OwnServices) -> None:
    postgres, broker = own_services.postgres, own_services.broker
    relay, profile = own_services.processes(
        {"relay": Role.RELAY, "profile": Role.PROFILE}, {Role.RELAY: {"PROFILE_BACKLOG_REFRESH_S": "0.2"}}
    )
    relay.start(timeout=60)
    profile.start(timeout=60)
    relay_ready = f"{relay.url}/ready"
    profile_ready = f"{profile.url}/ready"
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
            assert (await client.get(f"{profile.url}/health")).status_code == 200
        postgres.start()
        await until_status(relay_ready, 200)
        await until_status(profile_ready, 200)

        async with httpx.AsyncClient(timeout=5) as client:
            metrics = (await client.get(f"{relay.url}/metrics")).text
        assert "outbox_pending_rows 0.0" in metrics
        assert "outbox_oldest_pending_age_seconds" in metrics
    finally:
        relay.stop()
        profile.stop()


async def test_connector_readiness_follows_database_broker_and_group(own_services: OwnServices) -> None:
    postgres, broker = own_services.postgres, own_services.broker
    (connector,) = own_services.processes({"connector": Role.CONNECTOR})
    connector.start(timeout=60)
    ready = f"{connector.url}/ready"
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
