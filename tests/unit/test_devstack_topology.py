"""The topology: each process's settings from a few inputs, who binds its own port, and the read-back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from libs.devstack.processes import ServiceProcess
from libs.devstack.topology import MAKE_RUN, Keys, Role, System, Topology

KEYS = Keys({"PROFILE_AUTH_SIGNING_KEY": "private"}, {"CONNECTOR_AUTH_PUBLIC_KEYS": "{}"}, "notifier-token")
SECRETS = {"CRM": "s1", "CMS": "s2", "CSS": "s3"}


def topology_for(logs: Path, **choices: Any) -> Topology:
    """A topology on a database and broker it never reaches (nothing is started), with ``choices``."""
    return Topology(database_url="postgresql://db/x", bootstrap="b:1", logs=logs, **choices)


def _envs(topology: Topology, ports: dict[str, int]) -> dict[str, dict[str, str]]:
    return {name: dict(topology._process(name, ports, System({})).env) for name in topology.processes}


def test_make_run_processes_get_what_make_run_always_gave_them(tmp_path: Path) -> None:
    ports = {"stub-externals": 8010, "profile-service": 8000, "outbox-relay": 8002, "sync-connector": 8001}
    topology = Topology(
        database_url="postgresql://postgres@127.0.0.1:55432/postgres",
        bootstrap="127.0.0.1:59092",
        logs=tmp_path,
        secrets=SECRETS,
        keys=KEYS,
        ports=ports,
        notification_smtp_port=8025,
        admin_notification_to=("admins@example.com",),
        overrides={"profile-service": {"PROFILE_CONSOLE_TRACE_URL_TEMPLATE": "http://trace/{trace_id}"}},
    )
    assert topology.processes == MAKE_RUN
    envs = _envs(topology, ports)
    db = "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres"
    assert envs["stub-externals"] == {
        "STUBS_PORT": "8010",
        "STUBS_SMTP_PORT": "8025",
        "STUBS_CRM_SECRET": "s1",
        "STUBS_CMS_SECRET": "s2",
        "STUBS_CSS_SECRET": "s3",
    }
    assert envs["profile-service"] == {
        "PROFILE_DB_URL": db,
        "PROFILE_HTTP_PORT": "8000",
        "PROFILE_CONNECTOR_URL": "http://127.0.0.1:8001",
        "PROFILE_CONSOLE_TRACE_URL_TEMPLATE": "http://trace/{trace_id}",
        "PROFILE_AUTH_SIGNING_KEY": "private",
    }
    assert envs["outbox-relay"] == {
        "PROFILE_DB_URL": db,
        "PROFILE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:59092",
        "PROFILE_RELAY_METRICS_PORT": "8002",
    }
    stubs = "http://127.0.0.1:8010"
    assert envs["sync-connector"] == {
        "CONNECTOR_DB_URL": db,
        "CONNECTOR_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:59092",
        "CONNECTOR_HTTP_PORT": "8001",
        **{f"CONNECTOR_{code}_URL": stubs for code in SECRETS},
        **{f"CONNECTOR_{code}_SECRET": secret for code, secret in SECRETS.items()},
        "CONNECTOR_AUTH_PUBLIC_KEYS": "{}",
        "CONNECTOR_PROFILE_URL": "http://127.0.0.1:8000",
        "CONNECTOR_PROFILE_TOKEN": "notifier-token",
        "CONNECTOR_NOTIFY_ENABLED": "true",
        "CONNECTOR_NOTIFY_SMTP_PORT": "8025",
        "CONNECTOR_NOTIFY_SMS_URL": stubs,
        "CONNECTOR_ADMIN_NOTIFY_TO": '["admins@example.com"]',
        "CONNECTOR_ADMIN_NOTIFY_CONSOLE_URL": "http://127.0.0.1:8000",
    }


def test_several_relays_and_connectors_with_overrides_by_role_and_by_name(tmp_path: Path) -> None:
    topology = Topology(
        database_url="postgresql+asyncpg://db/chaos",
        bootstrap="b:1",
        logs=tmp_path,
        processes={"relay-a": Role.RELAY, "relay-b": Role.RELAY, "connector-a": Role.CONNECTOR},
        topic="t",
        topic_partitions=4,
        group_prefix="g",
        group_session_ms=2000,
        group_heartbeat_ms=250,
        log_level="WARNING",
        overrides={"*": {"OTEL": "x"}, Role.RELAY: {"PROFILE_RELAY_BATCH_SIZE": "50"}, "relay-b": {"OTEL": "y"}},
    )
    envs = _envs(topology, {"relay-a": 1, "relay-b": 2, "connector-a": 3})
    assert envs["relay-a"]["PROFILE_RELAY_INSTANCE_ID"] == "relay-a"
    assert envs["relay-b"]["PROFILE_RELAY_INSTANCE_ID"] == "relay-b"
    assert (envs["relay-a"]["OTEL"], envs["relay-b"]["OTEL"], envs["connector-a"]["OTEL"]) == ("x", "y", "x")
    assert envs["relay-a"]["PROFILE_RELAY_BATCH_SIZE"] == "50"
    assert "PROFILE_RELAY_BATCH_SIZE" not in envs["connector-a"]
    assert envs["relay-a"]["PROFILE_KAFKA_TOPIC_PARTITIONS"] == "4"
    assert envs["relay-a"]["PROFILE_RELAY_TOPIC"] == "t"
    assert envs["relay-a"]["PROFILE_LOG_LEVEL"] == "WARNING"
    connector = envs["connector-a"]
    assert {k: v for k, v in connector.items() if k.startswith("CONNECTOR_KAFKA_")} == {
        "CONNECTOR_KAFKA_BOOTSTRAP_SERVERS": "b:1",
        "CONNECTOR_KAFKA_TOPIC_PARTITIONS": "4",
        "CONNECTOR_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "CONNECTOR_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
        "CONNECTOR_KAFKA_HEARTBEAT_INTERVAL_MS": "250",
    }
    assert (connector["CONNECTOR_TOPIC"], connector["CONNECTOR_GROUP_PREFIX"]) == ("t", "g")
    assert "CONNECTOR_CRM_URL" not in connector, "no stubs in this topology"


def test_servers_that_say_where_they_listen_bind_port_zero_unless_their_url_is_needed_first(tmp_path: Path) -> None:
    base = topology_for(tmp_path)
    ports = {name: base._port(name, role) for name, role in base.processes.items()}
    assert (ports["sync-connector"], ports["profile-service"]) == (0, 0)
    assert ports["stub-externals"] > 0, "the stubs do not say where they listen"
    assert ports["outbox-relay"] > 0, "a relay's port 0 means no ops server"

    notifying = topology_for(tmp_path, keys=KEYS)
    assert notifying._port("profile-service", Role.PROFILE) > 0, "the connector is told the profile's URL"
    assert notifying._port("sync-connector", Role.CONNECTOR) == 0

    quiet = topology_for(tmp_path, log_level="WARNING")
    assert quiet._port("sync-connector", Role.CONNECTOR) > 0, "at WARNING the start line is not written"
    workers = topology_for(
        tmp_path,
        overrides={Role.PROFILE: {"PROFILE_HTTP_WORKERS": "2"}},
    )
    assert workers._port("profile-service", Role.PROFILE) > 0
    fixed = topology_for(tmp_path, ports={"sync-connector": 8001})
    assert fixed._port("sync-connector", Role.CONNECTOR) == 8001


def test_a_server_on_port_zero_is_read_back_from_its_log_and_its_port_pinned_for_a_restart(tmp_path: Path) -> None:
    served = re.compile(r"\((http://127\.0\.0\.1:\d+)/\)")
    server = ServiceProcess(
        "http-server",
        "http.server",
        ["--bind", "127.0.0.1", "--directory", str(tmp_path), "0"],  # its port is an argument; PORT stands in
        env={"PORT": "0", "PYTHONUNBUFFERED": "1"},
        log_file=tmp_path / "server.log",
        port_setting="PORT",
        announces=lambda line: m.group(1) if (m := served.search(line)) else None,
        health_path="/",
    )
    try:
        server.start(timeout=20)
        assert server.url is not None
        port = int(server.url.rsplit(":", 1)[1])
        assert port > 0
        assert server.health_url == f"{server.url}/"
        assert server.env["PORT"] == str(port)
        assert not server.binds_its_own_port, "pinned: a restart comes back on the same URL"
    finally:
        server.stop()


def test_overrides_by_role_and_by_a_process_of_the_same_name_both_apply(tmp_path: Path) -> None:
    topology = topology_for(
        tmp_path,
        processes={"relay": Role.RELAY},
        overrides={Role.RELAY: {"A": "role", "B": "role"}, "relay": {"B": "name"}},
    )
    env = _envs(topology, {"relay": 1})["relay"]
    assert (env["A"], env["B"]) == ("role", "name")


def test_one_process_built_alone_with_external_systems_elsewhere(tmp_path: Path) -> None:
    topology = topology_for(
        tmp_path,
        processes={"connector-a": Role.CONNECTOR},
        external_systems_url="http://127.0.0.1:9999",
    )
    connector = topology.build("connector-a")
    assert not connector.process, "built, not started"
    assert connector.binds_its_own_port
    assert connector.url is None, "known once it has started"
    assert {connector.env[f"CONNECTOR_{code}_URL"] for code in SECRETS} == {"http://127.0.0.1:9999"}
    assert connector.log_file == tmp_path / "connector-a.log"


def test_the_connectors_address_is_read_from_its_start_line_even_with_text_after_it() -> None:
    from libs.devstack.topology import _connector_url

    started = '{"event": "connector_started", "http_url": "http://127.0.0.1:4100"}'
    assert _connector_url(started) == "http://127.0.0.1:4100"
    # Litestar's log handler writes from its own thread: its line may land after ours, unbroken.
    assert _connector_url(started + "INFO - uvicorn.error - Started server process [7]") == "http://127.0.0.1:4100"
    assert _connector_url('{"event": "consumer_started"}') is None
    assert _connector_url("connector_started, not JSON") is None
