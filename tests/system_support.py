"""The system as real processes for the tests: ``libs.devstack.topology`` with the tests' inputs.

``topology_for_tests(...)`` is the e2e, browser and pipeline tests' system on the test's database, broker and
topic: the stubs, the profile service, a relay and a connector (or the ``processes`` asked for), fresh
HMAC secrets, the tests' keys, consumer groups of their own that rebalance within seconds.
``profile_alone(...)`` is the profile service by itself (warnings only), not started; ``two_instances(...)``
two processes of one role, not started, for a test that kills and restarts them itself.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from libs.devstack.processes import ServiceProcess
from libs.devstack.topology import SYSTEMS, Keys, Role, Topology
from tests.auth_support import auth_env, connector_auth_env
from tests.notification_support import notifier_token

WHOLE_SYSTEM = {"stubs": Role.STUBS, "profile": Role.PROFILE, "relay": Role.RELAY, "connector": Role.CONNECTOR}


def keys_for_tests(*, notifications: bool = False) -> Keys:
    """The tests' token and sealing keys; ``notifications``: the connector may look contacts up."""
    return Keys(auth_env(), connector_auth_env(), notifier_token() if notifications else "")


def fresh_secrets() -> dict[str, str]:
    return {system: uuid.uuid4().hex for system in SYSTEMS}


def topology_for_tests(database_url: str, kafka_bootstrap: str, topic: str, logs: Path, **changes: Any) -> Topology:
    topology = Topology(
        database_url=database_url,
        bootstrap=kafka_bootstrap,
        logs=logs,
        processes=WHOLE_SYSTEM,
        topic=topic,
        group_prefix=f"sync-{uuid.uuid4().hex[:8]}",
        group_session_ms=6_000,
        group_heartbeat_ms=500,
        secrets=fresh_secrets(),
        keys=keys_for_tests(),
    )
    return dataclasses.replace(topology, **changes)


def profile_alone(database_url: str, logs: Path, **settings: str) -> ServiceProcess:
    """``python -m services.profile serve`` on the database with the tests' keys and ``PROFILE_*`` ``settings``."""
    topology = Topology(
        database_url=database_url,
        bootstrap="",
        logs=logs,
        processes={"profile": Role.PROFILE},
        keys=keys_for_tests(),
        log_level="WARNING",
        overrides={"profile": settings},
    )
    return topology.build("profile")


def two_instances(role: Role, prefix: str, settings: Mapping[str, str], **inputs: Any) -> list[ServiceProcess]:
    """``<prefix>-a`` and ``<prefix>-b``, both ``role`` with ``settings``, on the topology ``inputs``; they log at
    INFO for the test to read and are not started: the test starts, kills and restarts them itself."""
    topology = Topology(
        processes={f"{prefix}-a": role, f"{prefix}-b": role}, log_level="INFO", overrides={role: settings}, **inputs
    )
    return [topology.build(name) for name in topology.processes]
