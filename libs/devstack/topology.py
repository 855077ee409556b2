"""The system's topology, described once: which processes run, with which settings.

``make run`` (``libs.devstack.run``) and the e2e, browser, chaos and perf harnesses start what a
``Topology`` describes: the stub external systems, the profile service, one or more outbox relays and
one or more sync-connectors, by name. Every process's environment is built here from a few inputs: the
database URL, the Kafka bootstrap address, the topic, the ports, the external systems' secrets, the
keys, and overrides (by process name, by role, or ``"*"`` for all; the last word).

Ports: one given in ``ports`` is used as it is (``make run``'s). Otherwise a server that says where it
listens binds port 0 itself and its URL is read back from its log: the sync-connector (its
``connector_started`` line) and the profile service (uvicorn's "running on" line), each at log level
INFO or below; the profile service with one worker, and only when the connector is not to be told its
URL (contact look-ups for customer notifications, the console link in admin notifications). The others
(the stubs, a relay's ops server, whose port 0 means "no server") get ``free_port()`` just before they
start. The profile service starts last, so that it is told the connector's read-back URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from libs.devstack.embedded import free_port
from libs.devstack.processes import ServiceProcess
from libs.kit.db import sqlalchemy_url

SYSTEMS = ("CRM", "CMS", "CSS")
LOOPBACK = "127.0.0.1"
_VERBOSE_LEVELS = {"DEBUG", "INFO"}
_UVICORN_RUNNING = re.compile(r"Uvicorn running on (http://[^\s\"]+)")


class Role(Enum):
    """What a process is; its name says which one (``relay-a``, ``sync-connector``...). Not a string, so
    that overrides by role and by a process of the same name (``"relay"``) are told apart."""

    STUBS = "stubs"
    PROFILE = "profile"
    RELAY = "relay"
    CONNECTOR = "connector"


# Settings that have the last word: by process name, by role, or "*" for every process.
Overrides = Mapping[str | Role, Mapping[str, str]]
# The order processes start in: the profile service last (it is told the connector's URL).
START_ORDER = (Role.STUBS, Role.RELAY, Role.CONNECTOR, Role.PROFILE)
# ``make run``'s processes, which are also the default.
MAKE_RUN = {
    "stub-externals": Role.STUBS,
    "profile-service": Role.PROFILE,
    "outbox-relay": Role.RELAY,
    "sync-connector": Role.CONNECTOR,
}
_PREFIX = {Role.STUBS: "STUBS_", Role.PROFILE: "PROFILE_", Role.RELAY: "PROFILE_", Role.CONNECTOR: "CONNECTOR_"}
_PORT_SETTING = {
    Role.STUBS: "STUBS_PORT",
    Role.PROFILE: "PROFILE_HTTP_PORT",
    Role.RELAY: "PROFILE_RELAY_METRICS_PORT",
    Role.CONNECTOR: "CONNECTOR_HTTP_PORT",
}
_ARGS = {
    Role.STUBS: ("services.stub_externals", "serve"),
    Role.PROFILE: ("services.profile", "serve"),
    Role.RELAY: ("services.profile", "relay"),
    Role.CONNECTOR: ("services.sync_connector", "serve"),
}


def _connector_url(line: str) -> str | None:
    """The sync-connector's ``connector_started`` JSON log line carries the URL its API listens on."""
    if '"connector_started"' not in line or (start := line.find("{")) < 0:
        return None
    try:
        # The first JSON object of the line: Litestar's log handler writes from a thread of its own,
        # and its text may land on the same line, after ours.
        entry, _ = json.JSONDecoder().raw_decode(line, start)
    except ValueError:
        return None
    url = entry.get("http_url") if isinstance(entry, dict) and entry.get("event") == "connector_started" else None
    return url if isinstance(url, str) else None


def _uvicorn_url(line: str) -> str | None:
    match = _UVICORN_RUNNING.search(line)
    return match.group(1) if match else None


_ANNOUNCES: dict[Role, Callable[[str], str | None]] = {Role.CONNECTOR: _connector_url, Role.PROFILE: _uvicorn_url}


@dataclass(frozen=True)
class Keys:
    """The services' keys, as their settings: nothing is compiled in."""

    profile_env: Mapping[str, str] = field(default_factory=dict)  # PROFILE_AUTH_* and PROFILE_CRYPTO_*
    connector_env: Mapping[str, str] = field(default_factory=dict)  # CONNECTOR_AUTH_PUBLIC_KEYS
    # The connector's token for the profile's contact look-ups (customer notifications); empty: not wired.
    notifier_token: str = ""


@dataclass(frozen=True)
class Topology:
    """Which processes run (name -> role) and the inputs their settings are built from."""

    database_url: str  # libpq or SQLAlchemy URL; the services get the SQLAlchemy (asyncpg) one
    bootstrap: str
    logs: Path  # each process logs to <logs>/<name>.log
    processes: Mapping[str, Role] = field(default_factory=lambda: dict(MAKE_RUN))
    topic: str = ""  # empty: the services' default topic
    topic_partitions: int = 0  # 0: the services' default
    group_prefix: str = ""  # the connector's consumer groups; empty: the default
    # The connector's group membership timeouts (session and rebalance, heartbeat); 0: the defaults.
    group_session_ms: int = 0
    group_heartbeat_ms: int = 0
    secrets: Mapping[str, str] = field(default_factory=dict)  # external system code -> HMAC secret
    keys: Keys = field(default_factory=Keys)
    ports: Mapping[str, int] = field(default_factory=dict)  # by process name; absent or 0: chosen (above)
    # Customer notifications on, their mail to the stubs' SMTP server on this port; None: off, no SMTP server.
    notification_smtp_port: int | None = None
    # Admin notifications (seed 6.2 notifyAdmin) to these addresses, linking the profile's console; empty: off.
    admin_notification_to: tuple[str, ...] = ()
    # Where CRM, CMS and CSS are when no stubs process is in the topology (a test's stubs in its own process).
    external_systems_url: str = ""
    log_level: str = ""  # every process's; empty: the services' default (INFO)
    # Relays and connectors count as started once ready (/ready: database, broker, groups), not only alive.
    wait_ready: bool = False
    overrides: Overrides = field(default_factory=dict)

    def start(
        self, timeout: float = 60.0, *, parallel: bool = False, say: Callable[[str], None] | None = None
    ) -> System:
        """Start every process (``parallel``: the profile service after all the others); stop them all if
        one does not come up. ``say`` hears "starting <name>" before each start."""
        system = System({})
        ports = {name: self._port(name, role) for name, role in self.processes.items()}
        try:
            for wave in self._waves(parallel=parallel):
                started = [self._process(name, ports, system) for name in wave]
                system.processes.update((process.name, process) for process in started)
                for process in started:
                    if say is not None:
                        say(f"starting {process.name}")
                if len(started) == 1:
                    started[0].start(timeout)
                else:
                    with ThreadPoolExecutor(len(started)) as pool:
                        for future in [pool.submit(process.start, timeout) for process in started]:
                            future.result()
        except BaseException:
            system.stop()
            raise
        return system

    def build(self, name: str) -> ServiceProcess:
        """One process, not started: for a test that starts, kills and restarts it when it wants to. It may
        need no other process's URL unless that one's port is in ``ports``."""
        ports = {other: self.ports.get(other, 0) for other in self.processes}
        ports[name] = self._port(name, self.processes[name])
        return self._process(name, ports, System({}))

    def named(self, role: Role) -> list[str]:
        return [name for name, of_role in self.processes.items() if of_role is role]

    def _waves(self, *, parallel: bool) -> Iterator[list[str]]:
        ordered = [name for role in START_ORDER for name in self.named(role)]
        if not parallel:
            yield from ([name] for name in ordered)
            return
        yield [name for name in ordered if self.processes[name] is not Role.PROFILE]
        if profiles := self.named(Role.PROFILE):
            yield profiles

    def _overrides(self, name: str, role: Role) -> dict[str, str]:
        return {**self.overrides.get("*", {}), **self.overrides.get(role, {}), **self.overrides.get(name, {})}

    def _announces(self, name: str, role: Role) -> bool:
        """Whether the server will say where it listens, and nobody needs its URL before it starts."""
        if role not in _ANNOUNCES:
            return False
        overrides = self._overrides(name, role)
        level = overrides.get(f"{_PREFIX[role]}LOG_LEVEL", self.log_level or "INFO").upper()
        if level not in _VERBOSE_LEVELS:
            return False
        if role is Role.PROFILE:
            workers = overrides.get("PROFILE_HTTP_WORKERS", "1")
            return workers == "1" and not (self._connector_needs_profile_url() and name == self._profile())
        return True

    def _port(self, name: str, role: Role) -> int:
        if port := self.ports.get(name):
            return port
        return 0 if self._announces(name, role) else free_port()

    def _profile(self) -> str | None:
        return next(iter(self.named(Role.PROFILE)), None)

    def _connector(self) -> str | None:
        return next(iter(self.named(Role.CONNECTOR)), None)

    def _connector_needs_profile_url(self) -> bool:
        """Contact look-ups for customer notifications, and the console link in admin notifications."""
        wired = bool(self.keys.notifier_token or self.admin_notification_to)
        return wired and self._profile() is not None and self._connector() is not None

    def _process(self, name: str, ports: Mapping[str, int], system: System) -> ServiceProcess:
        role = self.processes[name]
        port = ports[name]
        module, command = _ARGS[role]
        env = {**self._env(name, role, ports, system), _PORT_SETTING[role]: str(port), **self._overrides(name, role)}
        url = f"http://{LOOPBACK}:{port}" if port else None
        health = "/ready" if self.wait_ready and role in (Role.RELAY, Role.CONNECTOR) else "/health"
        return ServiceProcess(
            name,
            module,
            [command],
            env=env,
            health_url=f"{url}{health}" if url else None,
            log_file=self.logs / f"{name}.log",
            url=url,
            port_setting=_PORT_SETTING[role],
            announces=_ANNOUNCES.get(role),
            health_path=health,
        )

    def _url(self, name: str, ports: Mapping[str, int], system: System) -> str:
        """The URL of another process: read back if it has started, else the port chosen for it."""
        if (process := system.processes.get(name)) is not None and process.url is not None:
            return process.url
        if not ports[name]:
            msg = f"{name}'s URL is needed before it starts, so its port cannot be its own choice"
            raise ValueError(msg)
        return f"http://{LOOPBACK}:{ports[name]}"

    def _env(self, name: str, role: Role, ports: Mapping[str, int], system: System) -> dict[str, str]:
        env = {f"{_PREFIX[role]}LOG_LEVEL": self.log_level} if self.log_level else {}
        if role is Role.STUBS:
            return {**env, **self._stubs_env()}
        db_url = sqlalchemy_url(self.database_url)
        if role is Role.PROFILE:
            env |= {"PROFILE_DB_URL": db_url, **self.keys.profile_env}
            if (connector := self._connector()) is not None:
                # The admin console reads sync records, breakers and lag from the connector's API.
                env["PROFILE_CONNECTOR_URL"] = self._url(connector, ports, system)
            return env
        kafka = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if self.topic_partitions:
            kafka["KAFKA_TOPIC_PARTITIONS"] = str(self.topic_partitions)
        if role is Role.RELAY:
            env |= {"PROFILE_DB_URL": db_url, **{f"PROFILE_{k}": v for k, v in kafka.items()}}
            if self.topic:
                env["PROFILE_RELAY_TOPIC"] = self.topic
            if len(self.named(Role.RELAY)) > 1:
                env["PROFILE_RELAY_INSTANCE_ID"] = name
            return env
        return {**env, "CONNECTOR_DB_URL": db_url, **self._connector_env(kafka, ports, system)}

    def _stubs_env(self) -> dict[str, str]:
        env = {f"STUBS_{code}_SECRET": secret for code, secret in self.secrets.items()}
        if self.notification_smtp_port is None:
            return {**env, "STUBS_SMTP_ENABLED": "false"}
        return {**env, "STUBS_SMTP_PORT": str(self.notification_smtp_port)}

    def _connector_env(self, kafka: Mapping[str, str], ports: Mapping[str, int], system: System) -> dict[str, str]:
        env = {f"CONNECTOR_{k}": v for k, v in kafka.items()}
        if self.topic:
            env["CONNECTOR_TOPIC"] = self.topic
        if self.group_prefix:
            env["CONNECTOR_GROUP_PREFIX"] = self.group_prefix
        if self.group_session_ms:
            session = str(self.group_session_ms)
            env |= {"CONNECTOR_KAFKA_SESSION_TIMEOUT_MS": session, "CONNECTOR_KAFKA_REBALANCE_TIMEOUT_MS": session}
        if self.group_heartbeat_ms:
            env["CONNECTOR_KAFKA_HEARTBEAT_INTERVAL_MS"] = str(self.group_heartbeat_ms)
        env |= {f"CONNECTOR_{code}_SECRET": secret for code, secret in self.secrets.items()}
        env |= self.keys.connector_env
        if (stubs := next(iter(self.named(Role.STUBS)), None)) is not None:
            stubs_url = self._url(stubs, ports, system)
            env |= {f"CONNECTOR_{code}_URL": stubs_url for code in SYSTEMS}
            env["CONNECTOR_NOTIFY_SMS_URL"] = stubs_url  # customer SMS go to the stubs' gateway
        elif self.external_systems_url:
            env |= {f"CONNECTOR_{code}_URL": self.external_systems_url for code in SYSTEMS}
        profile = self._profile()
        profile_url = self._url(profile, ports, system) if profile and self._connector_needs_profile_url() else ""
        if profile_url and self.keys.notifier_token:
            # The notification sender reads contact data from the profile service as the notifier.
            env |= {"CONNECTOR_PROFILE_URL": profile_url, "CONNECTOR_PROFILE_TOKEN": self.keys.notifier_token}
        if self.notification_smtp_port is not None:
            env |= {"CONNECTOR_NOTIFY_ENABLED": "true", "CONNECTOR_NOTIFY_SMTP_PORT": str(self.notification_smtp_port)}
        if self.admin_notification_to:
            env["CONNECTOR_ADMIN_NOTIFY_TO"] = json.dumps(list(self.admin_notification_to))
            if profile_url:
                env["CONNECTOR_ADMIN_NOTIFY_CONSOLE_URL"] = profile_url
        return env


@dataclass
class System:
    """The started processes, by name, in start order."""

    processes: dict[str, ServiceProcess]

    def url(self, name: str) -> str:
        url = self.processes[name].url
        assert url is not None, f"{name} has no URL before it starts"
        return url

    @property
    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in self.processes}

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.stop()

    def __enter__(self) -> System:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
