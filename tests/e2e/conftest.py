"""The whole system as real processes, for the end-to-end tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from libs.devstack.embedded import free_port
from libs.devstack.processes import ServiceProcess
from libs.kit.db import sqlalchemy_url
from tests import polling
from tests.auth_support import auth_env, authorize, connector_auth_env
from tests.notification_support import notifier_token

SYSTEMS = {"CRM": "/api/customer/update", "CMS": "/api/profile/sync", "CSS": "/api/customer/profile"}
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """``tests.polling.eventually`` in this folder's argument order, until ``probe`` returns a value."""
    value = await polling.eventually(probe, what, timeout, interval=0.1, until=polling.answered)
    assert value is not None
    return value


@pytest.fixture
def extra_env() -> dict[str, str]:
    """Environment added to every process (a test module may override it)."""
    return {}


@dataclass
class RunningSystem:
    profile_url: str
    connector_url: str
    stubs_url: str
    relay_url: str
    processes: dict[str, ServiceProcess]
    logs: Path


@pytest.fixture
def running_system(
    database_url: str,
    kafka_bootstrap: str,
    topic: str,
    artifacts_dir: Path,
    request: pytest.FixtureRequest,
    extra_env: dict[str, str],
) -> Iterator[RunningSystem]:
    ports = {name: free_port() for name in ("profile", "connector", "stubs", "relay")}
    secrets = {system: uuid.uuid4().hex for system in SYSTEMS}
    db_url = sqlalchemy_url(database_url)
    stubs_url = f"http://127.0.0.1:{ports['stubs']}"
    logs = artifacts_dir / "e2e" / request.node.name
    kafka_env = {
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "KAFKA_REBALANCE_TIMEOUT_MS": "6000",
    }
    processes = {
        "stubs": ServiceProcess(
            "stub-externals",
            "services.stub_externals",
            ["serve"],
            env={
                "STUBS_PORT": str(ports["stubs"]),
                "STUBS_SMTP_ENABLED": "false",  # a notification test starts its own SMTP server
                **{f"STUBS_{s}_SECRET": v for s, v in secrets.items()},
            },
            health_url=f"{stubs_url}/health",
            log_file=logs / "stubs.log",
        ),
        "profile": ServiceProcess(
            "profile-service",
            "services.profile",
            ["serve"],
            env={"PROFILE_DB_URL": db_url, "PROFILE_HTTP_PORT": str(ports["profile"]), **auth_env()},
            health_url=f"http://127.0.0.1:{ports['profile']}/health",
            log_file=logs / "profile.log",
        ),
        "relay": ServiceProcess(
            "outbox-relay",
            "services.profile",
            ["relay"],
            env={
                "PROFILE_DB_URL": db_url,
                "PROFILE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "PROFILE_RELAY_TOPIC": topic,
                "PROFILE_RELAY_METRICS_PORT": str(ports["relay"]),
            },
            health_url=f"http://127.0.0.1:{ports['relay']}/health",
            log_file=logs / "relay.log",
        ),
        "connector": ServiceProcess(
            "sync-connector",
            "services.sync_connector",
            ["serve"],
            env={
                "CONNECTOR_DB_URL": db_url,
                "CONNECTOR_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "CONNECTOR_TOPIC": topic,
                "CONNECTOR_GROUP_PREFIX": f"sync-{uuid.uuid4().hex[:8]}",
                "CONNECTOR_HTTP_PORT": str(ports["connector"]),
                **{f"CONNECTOR_{k}": v for k, v in kafka_env.items()},
                **{f"CONNECTOR_{s}_URL": stubs_url for s in SYSTEMS},
                **{f"CONNECTOR_{s}_SECRET": v for s, v in secrets.items()},
                **connector_auth_env(),
                # Used once a test turns notifications on (CONNECTOR_NOTIFY_ENABLED in extra_env).
                "CONNECTOR_PROFILE_URL": f"http://127.0.0.1:{ports['profile']}",
                "CONNECTOR_PROFILE_TOKEN": notifier_token(),
                "CONNECTOR_NOTIFY_SMS_URL": stubs_url,
            },
            health_url=f"http://127.0.0.1:{ports['connector']}/health",
            log_file=logs / "connector.log",
        ),
    }
    for process in processes.values():
        process.env = {**process.env, **extra_env}
    try:
        for process in processes.values():
            process.start(timeout=60)
        yield RunningSystem(
            profile_url=f"http://127.0.0.1:{ports['profile']}",
            connector_url=f"http://127.0.0.1:{ports['connector']}",
            stubs_url=stubs_url,
            relay_url=f"http://127.0.0.1:{ports['relay']}",
            processes=processes,
            logs=logs,
        )
    finally:
        for process in reversed(processes.values()):
            process.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield authorize(client)
