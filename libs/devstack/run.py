"""``make run``: the whole system on embedded defaults, supervised until Ctrl-C.

Starts PostgreSQL (data kept in ``.data/postgres`` across runs) and Apache Kafka
(KRaft, one node, data kept in ``.data/kafka``), applies migrations, starts the stub
external systems, the profile service, the relay and the sync-connector, loads demo
customers and prints how to try it. A child that dies, the databases included, is
restarted on the same data; Ctrl-C stops everything. The sync-connector's maintenance
(the retention prune, ``python -m services.sync_connector maintenance``) and the ledger's
(``python -m services.profile maintenance``: the daily backup point, the recycle-bin purge
after a backup point of its own, partitions, backup retention), CronJobs in Kubernetes, run
a minute after start and then daily, from the supervisor's loop.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from libs.devstack.dev_keys import DEMO_TOKEN_TTL, DevKeys
from libs.devstack.embedded import EmbeddedKafka, EmbeddedPostgres
from libs.devstack.kafka_dist import kafka_version
from libs.devstack.local_server import EmbeddedServiceError
from libs.devstack.periodic import PeriodicCommand
from libs.devstack.processes import ProcessStartError, ServiceProcess
from libs.devstack.settings import ENV_PREFIX, DevStackSettings, build_settings
from libs.devstack.topology import SYSTEMS, System, Topology
from libs.kit.settings import read_settings
from libs.kit.tokens import Role
from migrations.runner import upgrade_all

DEMO_CUSTOMERS = (
    {
        "customerId": "DEMO001",
        "customerName": "张三",
        "accountType": "residential",
        "contactPhone": "+86 138 0013 8000",
        "contactEmail": "zhangsan@example.com",
    },
    {
        "customerId": "DEMO002",
        "customerName": "Acme Power Ltd",
        "accountType": "commercial",
        "contactEmail": "billing@acme.example",
    },
    {"customerId": "DEMO003", "customerName": "华东钢铁厂", "accountType": "industrial"},
)


def _post_json(url: str, body: dict[str, object], token: str) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(  # noqa: S310 - loopback URL built from settings
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _topology(settings: DevStackSettings, postgres_url: str, bootstrap: str, logs: Path, keys: DevKeys) -> Topology:
    """The processes ``make run`` starts (``MAKE_RUN``) on the ports of its settings (0: chosen, see topology)."""
    return Topology(
        database_url=postgres_url,
        bootstrap=bootstrap,
        logs=logs,
        secrets={system: secrets.token_hex(32) for system in SYSTEMS},
        keys=keys.topology_keys(),
        ports={
            "stub-externals": settings.stubs_port,
            "profile-service": settings.profile_port,
            "outbox-relay": settings.relay_metrics_port,
            "sync-connector": settings.connector_port,
        },
        # Customer notifications: e-mail to the stubs' SMTP server, SMS to their gateway. Admin notifications
        # (seed 6.2 notifyAdmin) to the same SMTP server: GET /_mail on the stubs shows them; the console lists
        # them at /console/admin-notifications.
        notification_smtp_port=settings.smtp_port,
        admin_notification_to=("admins@customer-profile.example",),
        overrides={"profile-service": {"PROFILE_CONSOLE_TRACE_URL_TEMPLATE": settings.trace_url_template}},
    )


def _sync_maintenance(settings: DevStackSettings, db_url: str, logs: Path) -> PeriodicCommand:
    """The k8s ``sync-maintenance`` CronJob's command, on the supervisor's timer."""
    return PeriodicCommand(
        ServiceProcess(
            name="sync-maintenance",
            module="services.sync_connector",
            args=["maintenance"],
            env={"CONNECTOR_DB_URL": db_url},
            log_file=logs / "sync-maintenance.log",
        ),
        interval_s=settings.maintenance_interval_s,
        first_delay_s=settings.maintenance_first_delay_s,
        started_at=time.monotonic(),
    )


def _ledger_maintenance(settings: DevStackSettings, db_url: str, logs: Path, keys: DevKeys) -> PeriodicCommand:
    """The k8s ``ledger-maintenance`` CronJob's command (the daily backup point among its tasks), on the timer."""
    return PeriodicCommand(
        ServiceProcess(
            name="ledger-maintenance",
            module="services.profile",
            args=["maintenance"],
            env={"PROFILE_DB_URL": db_url, **keys.profile_env()},
            log_file=logs / "ledger-maintenance.log",
        ),
        interval_s=settings.maintenance_interval_s,
        first_delay_s=settings.maintenance_first_delay_s,
        started_at=time.monotonic(),
    )


def _load_demo_data(api: str, operator_token: str) -> None:
    for customer in DEMO_CUSTOMERS:
        status, body = _post_json(f"{api}/v1/customers", dict(customer), operator_token)
        if status not in (201, 409):
            msg = f"loading demo customer {customer['customerId']} failed: {status} {body}"
            raise RuntimeError(msg)


def _how_to_try(settings: DevStackSettings, urls: dict[str, str], logs: Path, tokens: dict[Role, str]) -> str:
    api, connector, stubs = urls["profile-service"], urls["sync-connector"], urls["stub-externals"]
    exports = "\n".join(f"  export {_token_variable(role)}={token}" for role, token in tokens.items())
    return f"""
The system is up.
  profile service   {api}   (OpenAPI: {api}/schema/swagger)
  admin console     {api}/console/   (sign in: paste the ADMIN_TOKEN value printed below)
  customer journey  {api}/console/journey/DEMO001   (its trace links open {settings.trace_url_template})
  sync-connector    {connector}   (/health /ready /metrics /v1/sync-records)
  stub CRM/CMS/CSS  {stubs}   (GET /_received)
  mail              {stubs}/_mail   (SMTP server on 127.0.0.1:{settings.smtp_port})
  admin alerts      {api}/console/admin-notifications   (one mail per cause and window)
  customer SMS      {stubs}/_sms
  relay metrics     {urls["outbox-relay"]}/metrics
  logs              {logs}/

Every API call needs a bearer token. Demo tokens, one per role (valid {DEMO_TOKEN_TTL}; signing keys in
{settings.data_dir}/dev-keys.json; more with: python -m services.profile token issue --role ROLE --subject NAME):
{exports}

Try it (copy-paste, after the exports):
  APP=$(curl -s -X POST {api}/v1/name-change-applications -H "Authorization: Bearer $OPERATOR_TOKEN" \\
        -H 'Content-Type: application/json' -d '{{"customerId":"DEMO001","newName":"李四","reason":"过户"}}' \\
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["applicationId"])')
  curl -s -X POST {api}/v1/name-change-applications/$APP/decision -H "Authorization: Bearer $AUDIT_SYSTEM_TOKEN" \\
        -H 'Content-Type: application/json' -d '{{"decision":"approved","auditorId":"auditor-1","comment":"ok"}}'; echo
  curl -s {api}/v1/customers/DEMO001/name-history -H "Authorization: Bearer $VIEWER_TOKEN"; echo
  curl -s {stubs}/_received; echo
  curl -s {stubs}/_mail; echo      # the customer's e-mail (DEMO001 has e-mail and phone)
  curl -s {stubs}/_sms; echo       # and the SMS
  curl -s '{connector}/v1/sync-records?customerId=DEMO001' \\
        -H "Authorization: Bearer $VIEWER_TOKEN"; echo

Ctrl-C stops everything.
"""


def _restart_if_dead(name: str, process: subprocess.Popen[bytes] | None, start: Callable[[], None]) -> None:
    """A killed broker or database comes back on its own data; the services reconnect."""
    if process is None or process.poll() is None:
        return
    print(f"{name} exited ({process.returncode}); restarting on the same data", flush=True)
    try:
        start()
    except EmbeddedServiceError as exc:
        print(f"{name} did not come back: {exc}", flush=True)


def _say(line: str) -> None:
    print(line, flush=True)


def _token_variable(role: Role) -> str:
    return f"{role.value.upper().replace('-', '_')}_TOKEN"


def main() -> int:
    settings = read_settings(build_settings, os.environ, ENV_PREFIX)
    data_dir = Path(settings.data_dir).resolve()
    logs = data_dir / "logs"
    stopping = False

    def request_stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        print(f"\nstopping (signal {signum})...", flush=True)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    # The demo keeps what it acknowledged through a kill -9 of PostgreSQL too (tests trade that for speed).
    postgres = EmbeddedPostgres(
        data_dir / "postgres",
        port=settings.pg_port,
        log_file=logs / "postgres.log",
        settings={"synchronous_commit": "on"},
    )
    broker = EmbeddedKafka(data_dir=data_dir / "kafka", port=settings.kafka_port, log_file=logs / "kafka.log")
    system: System | None = None
    periodic: list[PeriodicCommand] = []
    try:
        print(f"starting PostgreSQL on 127.0.0.1:{settings.pg_port} (data: {postgres.data_dir})", flush=True)
        postgres.start()
        print(
            f"starting Apache Kafka {kafka_version()} (KRaft, one node) on {broker.bootstrap}"
            f" (data: {data_dir / 'kafka'})",
            flush=True,
        )
        broker.start()
        keys = DevKeys.load_or_create(data_dir / "dev-keys.json")
        tokens = keys.demo_tokens()
        print("applying migrations", flush=True)
        upgrade_all(postgres.url, attributes={"profile_crypto": keys.crypto_settings()})
        db_url = postgres.url.replace("postgresql://", "postgresql+asyncpg://", 1)
        system = _topology(settings, postgres.url, broker.bootstrap, logs, keys).start(60.0, say=_say)
        _load_demo_data(system.url("profile-service"), tokens[Role.OPERATOR])
        print(_how_to_try(settings, system.urls, logs, tokens), flush=True)
        periodic = [_sync_maintenance(settings, db_url, logs), _ledger_maintenance(settings, db_url, logs, keys)]
        while not stopping:
            _restart_if_dead("Apache Kafka", broker.process, broker.start)
            _restart_if_dead("PostgreSQL", postgres.process, postgres.start)
            for service in system.processes.values():
                if not service.running and not stopping:
                    print(
                        f"{service.name} exited ({service.process and service.process.returncode}); restarting",
                        flush=True,
                    )
                    try:
                        service.start(timeout=60)
                    except ProcessStartError as exc:
                        print(f"{service.name} did not come back: {exc}", flush=True)
            for command in periodic:
                if not stopping and (line := command.tick(time.monotonic())):
                    print(line, flush=True)
            time.sleep(0.5)
    finally:
        for command in periodic:
            command.stop()
        if system is not None:
            system.stop()
        broker.stop()
        postgres.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
