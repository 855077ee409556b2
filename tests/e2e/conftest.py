"""The whole system as real processes, for the end-to-end tests (``running_system``, from the topology), and
what a test adds around it: an SMTP server for the notifications (``smtp``), an OTLP receiver for the
spans (``otlp``); a module points the processes at them through ``extra_env``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from libs.devstack.processes import ServiceProcess
from services.stub_externals.mail import RunningSmtp, start_smtp_server
from tests import polling
from tests.auth_support import authorize
from tests.otlp_receiver import OtlpReceiver
from tests.system_support import keys_for_tests, topology_for_tests

SYSTEMS = {"CRM": "/api/customer/update", "CMS": "/api/profile/sync", "CSS": "/api/customer/profile"}
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """``tests.polling.eventually`` in this folder's argument order, until ``probe`` returns a value."""
    value = await polling.eventually(probe, what, timeout, interval=0.1, until=polling.answered)
    assert value is not None
    return value


def notifications_env(smtp: RunningSmtp) -> dict[str, str]:
    """For ``extra_env``: the connector's customer notifications on, their mail to ``smtp``, polled often."""
    return {
        "CONNECTOR_NOTIFY_ENABLED": "true",
        "CONNECTOR_NOTIFY_SMTP_PORT": str(smtp.port),
        "CONNECTOR_NOTIFY_POLL_INTERVAL_S": "0.2",
    }


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
    logs = artifacts_dir / "e2e" / request.node.name
    # Notifications stay off unless a test turns them on (CONNECTOR_NOTIFY_ENABLED in extra_env, with an
    # SMTP server of its own); the connector can look contacts up either way.
    topology = topology_for_tests(
        database_url, kafka_bootstrap, topic, logs, keys=keys_for_tests(notifications=True), overrides={"*": extra_env}
    )
    with topology.start() as system:
        yield RunningSystem(
            profile_url=system.url("profile"),
            connector_url=system.url("connector"),
            stubs_url=system.url("stubs"),
            relay_url=system.url("relay"),
            processes=system.processes,
            logs=logs,
        )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield authorize(client)


@pytest.fixture
async def smtp() -> AsyncIterator[RunningSmtp]:
    """A real SMTP server in this process that keeps what it accepted (``smtp.store``)."""
    server = await start_smtp_server()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    """An OTLP/HTTP receiver in this process that keeps the spans exported to it."""
    receiver = OtlpReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
