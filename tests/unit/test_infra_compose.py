"""docker-compose.yml: valid per the Compose Specification, complete, and started in the right order.

No Docker engine runs here, so the file is checked as data: against the compose-spec JSON
Schema (shipped offline by check-jsonschema) and for what `docker compose up` relies on.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from graphlib import TopologicalSorter
from importlib import resources
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
APP_SERVICES = {"migrate-profile", "migrate-sync", "profile", "relay", "connector", "stubs"}
LONG_RUNNING_WITH_HEALTH = {
    *{"postgres", "kafka", "profile", "relay", "connector", "stubs"},
    *{"prometheus", "alertmanager", "mailpit", "grafana"},
}
ONE_SHOT = {"kafka-init", "migrate-profile", "migrate-sync"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: str, dotenv: Mapping[str, str]) -> str:
    """``${VAR:-default}`` as docker compose substitutes it from ``.env`` (set and non-empty, else the default)."""
    return _VARIABLE.sub(lambda m: dotenv.get(m["name"]) or (m["default"] or ""), value)


def environment(service: dict[str, Any], dotenv: Mapping[str, str] | None = None) -> dict[str, str]:
    """The service's environment after substitution (no ``.env`` by default: the dev-only defaults)."""
    return {key: interpolate(str(value), dotenv or {}) for key, value in service["environment"].items()}


def test_the_file_is_valid_per_the_compose_specification(compose: dict[str, Any]) -> None:
    spec = json.loads(
        (resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text(encoding="utf-8")
    )
    problems = [f"{e.json_path}: {e.message}" for e in jsonschema.Draft202012Validator(spec).iter_errors(compose)]
    assert problems == []
    assert not jsonschema.Draft202012Validator(spec).is_valid({"services": {"x": {"depends_on": 3}}})


def test_every_part_of_the_stack_is_there(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {
        *APP_SERVICES,
        "postgres",
        "kafka",
        "kafka-init",
        "otel-collector",
        "jaeger",
        "prometheus",
        "alertmanager",
        "mailpit",
        "grafana",
        "ledger-maintenance",
    }


def test_kafka_is_apache_kafka_in_kraft_mode_on_one_node(compose: dict[str, Any]) -> None:
    kafka = services(compose)["kafka"]
    assert kafka["image"].startswith("apache/kafka:3.")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING_WITH_HEALTH:
        check = services(compose)[name].get("healthcheck", {})
        assert check.get("test"), name
        assert not check.get("disable"), name
    for name in ONE_SHOT:
        assert services(compose)[name]["restart"] == "no", name
    for name in APP_SERVICES - ONE_SHOT:
        assert services(compose)[name]["environment"]["HEALTH_URL"].startswith("http://127.0.0.1:"), name


def test_dependencies_wait_for_health_or_completion_and_have_no_cycle(compose: dict[str, Any]) -> None:
    graph = {name: set(depends_on(service)) for name, service in services(compose).items()}
    order = list(TopologicalSorter(graph).static_order())
    for name, service in services(compose).items():
        for target, condition in depends_on(service).items():
            if condition == "service_healthy":
                assert target in LONG_RUNNING_WITH_HEALTH, f"{name} waits for {target}, which has no health check"
            elif condition == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to finish, but it keeps running"
            else:
                assert condition == "service_started", (name, target, condition)
    assert order.index("migrate-profile") < order.index("profile")


def test_the_start_order_of_the_product(compose: dict[str, Any]) -> None:
    s = services(compose)
    assert depends_on(s["migrate-profile"]) == {"postgres": "service_healthy"}
    assert depends_on(s["migrate-sync"]) == {"postgres": "service_healthy"}
    assert depends_on(s["kafka-init"]) == {"kafka": "service_healthy"}
    assert depends_on(s["profile"])["migrate-profile"] == "service_completed_successfully"
    relay = depends_on(s["relay"])
    assert relay["migrate-profile"] == "service_completed_successfully"
    assert relay["kafka"] == "service_healthy"
    assert relay["kafka-init"] == "service_completed_successfully"
    connector = depends_on(s["connector"])
    assert connector["migrate-sync"] == "service_completed_successfully"
    assert connector["kafka-init"] == "service_completed_successfully"
    assert connector["stubs"] == "service_healthy"


def test_two_relays_produce_idempotently(compose: dict[str, Any]) -> None:
    relay = services(compose)["relay"]
    assert relay["deploy"]["replicas"] == 2
    assert "container_name" not in relay
    assert "ports" not in relay, "host ports would clash between the replicas"
    from services.profile.settings import settings_from_env

    settings = settings_from_env(environment(relay))
    assert settings.kafka.enable_idempotence is True
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.relay_metrics_port == 8002


def test_services_listen_beyond_loopback_and_reach_each_other_by_name(compose: dict[str, Any]) -> None:
    from services.profile.settings import settings_from_env as profile_settings
    from services.stub_externals.settings import settings_from_env as stub_settings
    from services.sync_connector.settings import settings_from_env as connector_settings

    s = services(compose)

    def env(name: str) -> dict[str, str]:
        return environment(s[name])

    profile = profile_settings(env("profile"))
    assert (profile.http.host, profile.http.port) == ("0.0.0.0", 8000)
    assert "@postgres:5432/" in profile.database.url
    connector = connector_settings(env("connector"))
    assert (connector.http_host, connector.http_port) == ("0.0.0.0", 8001)
    assert {connector.endpoint(code).base_url for code in ("CRM", "CMS", "CSS")} == {"http://stubs:8010"}
    assert all(connector.endpoint(code).secret for code in ("CRM", "CMS", "CSS"))
    stubs = stub_settings(env("stubs"))
    assert (stubs.host, stubs.port) == ("0.0.0.0", 8010)
    assert set(stubs.secrets()) == {"CRM", "CMS", "CSS"}


def test_prometheus_reaches_every_relay_and_its_health_is_its_readiness(compose: dict[str, Any]) -> None:
    from services.profile.settings import settings_from_env

    relay = services(compose)["relay"]
    settings = settings_from_env(environment(relay))
    assert (settings.relay_metrics_host, settings.relay_metrics_port) == ("0.0.0.0", 8002)
    # The health check asks /ready: unhealthy while the relay has given its shards up.
    assert environment(relay)["HEALTH_URL"] == f"http://127.0.0.1:{settings.relay_metrics_port}/ready"
    assert relay["healthcheck"]["test"][-1].endswith("urlopen(os.environ['HEALTH_URL'], timeout=2)")
    prometheus = yaml.safe_load((ROOT / "infra/observability/prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "outbox-relay"]
    assert job["metrics_path"] == "/metrics"
    (discovery,) = job["dns_sd_configs"]
    assert (discovery["names"], discovery["port"]) == (["relay"], settings.relay_metrics_port)


def test_no_secret_is_committed_only_dev_defaults(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for variable in ("POSTGRES_PASSWORD", "CRM_SECRET", "CMS_SECRET", "CSS_SECRET", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{variable}:-dev-only-" in text, f"{variable} comes from .env, with a dev-only default"
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    for service in services(compose).values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} would listen on every host interface"


def test_every_app_command_exists(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        python, flag, module, command = services(compose)[name]["command"]
        assert (python, flag) == ("python", "-m")
        cli = importlib.import_module(f"{module}.__main__").cli
        assert isinstance(cli, click.Group)
        assert command in cli.commands, f"{name}: `python -m {module} {command}` does not exist"


def test_observability_configs_are_wired(compose: dict[str, Any]) -> None:
    s = services(compose)
    mounts = {volume.split(":")[0] for service in s.values() for volume in service.get("volumes", [])}
    observability = ROOT / "infra" / "observability"
    for source in mounts:
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
    collector = yaml.safe_load((observability / "otel-collector.yaml").read_text(encoding="utf-8"))
    assert set(collector["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert collector["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    for name in APP_SERVICES - {"stubs"}:
        assert s[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318", name

    prometheus = yaml.safe_load((observability / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["profile-service"]["static_configs"][0]["targets"] == ["profile:8000"]
    assert jobs["sync-connector"]["static_configs"][0]["targets"] == ["connector:8001"]
    assert jobs["outbox-relay"]["dns_sd_configs"][0] == {
        "names": ["relay"],
        "type": "A",
        "port": 8002,
        "refresh_interval": "15s",
    }

    grafana = observability / "grafana"
    datasources = yaml.safe_load((grafana / "provisioning/datasources/datasources.yaml").read_text(encoding="utf-8"))
    uids = {source["uid"] for source in datasources["datasources"]}
    dashboard = json.loads((grafana / "dashboards/customer-profile-pipeline.json").read_text(encoding="utf-8"))
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert all(target["expr"] for target in panel["targets"])


def exposed_metric_names() -> set[str]:
    """Every sample name the services expose, from their metric classes on a fresh registry."""
    from prometheus_client import CollectorRegistry

    from libs.outbox.backlog import BacklogMetrics
    from libs.outbox.relay import RelayMetrics
    from services.profile.shared.metrics import ProfileMetrics
    from services.profile.shared.web.problems import ErrorMetrics
    from services.sync_connector.admin_notify.metrics import AdminNotifyMetrics
    from services.sync_connector.metrics import ConnectorMetrics
    from services.sync_connector.notify.metrics import NotificationMetrics
    from services.sync_connector.retention import RetentionMetrics
    from services.sync_connector.status_gauges import StatusGauges
    from services.sync_connector.unprocessable import UnprocessableMetrics

    registry = CollectorRegistry()
    for metrics in (
        RelayMetrics,
        BacklogMetrics,
        ErrorMetrics,
        ProfileMetrics,
        ConnectorMetrics,
        StatusGauges,
        RetentionMetrics,
        NotificationMetrics,
        UnprocessableMetrics,
        AdminNotifyMetrics,
    ):
        metrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    families = [(family.name, family.type) for family in registry.collect()]
    return {name + suffix for name, kind in families for suffix in suffixes.get(kind, ("",))}


def test_the_dashboard_and_the_alert_rules_only_query_metrics_the_services_expose() -> None:
    from tests.observability_support import promql_metric_names, queried_metrics

    exposed = exposed_metric_names()
    queried = queried_metrics()
    assert any(where.startswith("rule ") for where in queried), "the alert rules are read"
    assert any(where.startswith("panel ") for where in queried), "the dashboard is read"
    for where, names in queried.items():
        assert names <= exposed, f"{where}: {sorted(names - exposed)} not exposed by any service"
    # The parser sees through functions, grouping, matchers, ranges and offsets.
    expression = 'sum by (a) (rate(x_total{b="c d"}[5m])) or y unless on() z offset 15m > bool 0'
    assert promql_metric_names(expression) == {"x_total", "y", "z"}


def test_topics_are_created_as_the_services_settings_describe_them(compose: dict[str, Any]) -> None:
    from services.profile.settings import settings_from_env as profile_settings
    from services.sync_connector.settings import settings_from_env as connector_settings

    s = services(compose)
    relay = profile_settings(environment(s["relay"])).kafka
    connector = connector_settings(environment(s["connector"])).kafka
    # One broker here: one replica, min.insync.replicas 1 (the k8s production overlay asks for 3 and 2).
    for kafka in (relay, connector):
        assert (kafka.topic_partitions, kafka.replication_factor, kafka.min_insync_replicas) == (6, 1, 1)
    (script,) = s["kafka-init"]["command"]
    created = re.search(r"--partitions (\d+) --replication-factor (\d+) --config min\.insync\.replicas=(\d+)", script)
    assert created is not None, "kafka-init creates the topics with partitions, replicas and min.insync.replicas"
    assert tuple(int(group) for group in created.groups()) == (6, 1, 1)
    dead_letter_topics = {
        connector_settings(environment(s["connector"])).dlq_topic(code) for code in ("CRM", "CMS", "CSS")
    }
    assert dead_letter_topics | {"customer-profile.v1"} == set(script.split("for topic in ")[1].split(";")[0].split())


def test_kafka_security_is_plaintext_by_default_and_every_setting_can_come_from_dotenv(
    compose: dict[str, Any],
) -> None:
    from services.profile.settings import settings_from_env as profile_settings
    from services.sync_connector.settings import settings_from_env as connector_settings

    s = services(compose)
    assert profile_settings(environment(s["relay"])).kafka.security_protocol == "PLAINTEXT"
    assert connector_settings(environment(s["connector"])).kafka.security_protocol == "PLAINTEXT"
    dotenv = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1.example.com:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SSL_CAFILE": "/etc/kafka-tls/ca.pem",
        "PROFILE_KAFKA_SASL_USERNAME": "outbox-relay",
        "PROFILE_KAFKA_SASL_PASSWORD": "relay-password",
        "CONNECTOR_KAFKA_SASL_USERNAME": "sync-connector",
        "CONNECTOR_KAFKA_SASL_PASSWORD": "connector-password",
        "CONNECTOR_KAFKA_SSL_CERTFILE": "/etc/kafka-tls/connector.pem",
        "CONNECTOR_KAFKA_SSL_KEYFILE": "/etc/kafka-tls/connector.key",
        "CONNECTOR_KAFKA_SSL_KEY_PASSWORD": "key-password",
        "KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    relay = profile_settings(environment(s["relay"], dotenv)).kafka
    connector = connector_settings(environment(s["connector"], dotenv)).kafka
    assert (relay.bootstrap_servers, relay.security_protocol, relay.sasl_mechanism) == (
        "kafka-1.example.com:9093",
        "SASL_SSL",
        "SCRAM-SHA-256",
    )
    assert (relay.sasl_username, relay.sasl_password, relay.ssl_cafile) == (
        "outbox-relay",
        "relay-password",
        "/etc/kafka-tls/ca.pem",
    )
    assert (connector.sasl_username, connector.sasl_password) == ("sync-connector", "connector-password")
    assert (connector.ssl_certfile, connector.ssl_keyfile, connector.ssl_key_password) == (
        "/etc/kafka-tls/connector.pem",
        "/etc/kafka-tls/connector.key",
        "key-password",
    )
    assert relay.ssl_check_hostname is connector.ssl_check_hostname is False
    # The TLS files reach both Kafka clients, read-only; the folder exists and keeps keys out of git.
    for name in ("relay", "connector"):
        (mount,) = s[name]["volumes"]
        source, target, mode = interpolate(mount, {}).split(":")
        assert (target, mode) == ("/etc/kafka-tls", "ro"), name
        assert (ROOT / source).is_dir(), source
    assert (ROOT / "infra/kafka-client-tls/.gitignore").read_text(encoding="utf-8").splitlines()[1] == "*"
    # No password is written into the compose file: each is a variable with an empty default.
    for service in (s["relay"], s["connector"]):
        for key, value in service["environment"].items():
            if key.endswith("_PASSWORD") and "KAFKA" in key:
                assert re.fullmatch(r"\$\{[A-Z_]+:-\}", str(value)), key
    example = (ROOT / "infra/compose.env.example").read_text(encoding="utf-8")
    for variable in dotenv:
        assert variable in example, f"{variable} is documented in infra/compose.env.example"


def test_alerts_reach_the_admins_through_alertmanager_and_the_mail_catcher(compose: dict[str, Any]) -> None:
    s = services(compose)
    observability = ROOT / "infra" / "observability"
    prometheus = yaml.safe_load((observability / "prometheus.yml").read_text(encoding="utf-8"))
    # The rules are mounted where prometheus.yml looks for them, and there are some.
    mounts = dict(volume.split(":")[:2] for volume in s["prometheus"]["volumes"] if volume.startswith("./"))
    assert mounts["./infra/observability/alerts"] == "/etc/prometheus/alerts"
    (pattern,) = prometheus["rule_files"]
    folder, _, glob = pattern.rpartition("/")
    assert folder == "/etc/prometheus/alerts"
    assert list((observability / "alerts").glob(glob)), f"no rule file matches {glob}"
    # Prometheus sends them to the alertmanager service, which starts first.
    (manager,) = prometheus["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert depends_on(s["prometheus"])["alertmanager"] == "service_healthy"
    alertmanager = s["alertmanager"]
    assert alertmanager["image"].startswith("prom/alertmanager:v0.")
    (config_flag,) = [arg for arg in alertmanager["command"] if arg.startswith("--config.file=")]
    mounted = {target: source for source, target, *_ in (v.split(":") for v in alertmanager["volumes"])}
    assert mounted[config_flag.split("=", 1)[1]] == "./infra/observability/alertmanager.yml"
    # Alertmanager mails through the catcher: its SMTP port inside the network, its UI on the host.
    config = yaml.safe_load((observability / "alertmanager.yml").read_text(encoding="utf-8"))
    assert config["global"]["smtp_smarthost"] == "mailpit:1025"
    assert depends_on(alertmanager)["mailpit"] == "service_healthy"
    mailpit = s["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit:v1.")
    assert "MP_SMTP_BIND_ADDR" not in mailpit.get("environment", {}), "SMTP on its default port 1025"
    assert [interpolate(port, {}) for port in mailpit["ports"]] == ["127.0.0.1:8025:8025"]
    # Prometheus also watches Alertmanager itself.
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_notifications_are_on_and_reach_the_mail_catcher_the_sms_gateway_and_the_contacts(
    compose: dict[str, Any],
) -> None:
    from services.sync_connector.settings import settings_from_env as connector_settings

    s = services(compose)
    connector = s["connector"]
    settings = connector_settings(environment(connector, {"CONNECTOR_PROFILE_TOKEN": "a-notifier-token"}))
    notify = settings.notify
    assert notify.enabled is True
    assert (notify.smtp_host, notify.smtp_port, notify.smtp_security.value) == ("mailpit", 1025, "none")
    assert notify.sms_url == "http://stubs:8010"
    # Contact lookups go to the profile service by name, on its port, with a token from .env.
    assert settings.profile.url == "http://profile:8000"
    assert environment(s["profile"])["PROFILE_HTTP_PORT"] == "8000"
    assert settings.profile.token == "a-notifier-token"
    assert depends_on(connector)["profile"] == "service_healthy"
    assert depends_on(connector)["mailpit"] == "service_healthy"
    # No credential is committed: the token, the SMTP password and the gateway token default to nothing.
    for variable in ("CONNECTOR_PROFILE_TOKEN", "CONNECTOR_NOTIFY_SMTP_PASSWORD", "CONNECTOR_NOTIFY_SMS_TOKEN"):
        assert re.fullmatch(r"\$\{[A-Z_]+:-\}", str(connector["environment"][variable])), variable
        assert environment(connector)[variable] == "", variable
    # A real SMTP relay and SMS gateway come from .env, documented in the example.
    dotenv = {
        "CONNECTOR_PROFILE_TOKEN": "t",
        "NOTIFY_SMTP_HOST": "smtp.example.com",
        "NOTIFY_SMTP_PORT": "587",
        "NOTIFY_SMTP_SECURITY": "starttls",
        "NOTIFY_SMTP_USERNAME": "customer-profile",
        "NOTIFY_SMTP_PASSWORD": "smtp-password",
        "NOTIFY_SMS_URL": "https://sms.example.com",
        "NOTIFY_SMS_TOKEN": "sms-token",
    }
    real = connector_settings(environment(connector, dotenv)).notify
    assert (real.smtp_host, real.smtp_port, real.smtp_security.value) == ("smtp.example.com", 587, "starttls")
    assert (real.smtp_username, real.smtp_password) == ("customer-profile", "smtp-password")
    assert (real.sms_url, real.sms_token) == ("https://sms.example.com", "sms-token")
    example = (ROOT / "infra/compose.env.example").read_text(encoding="utf-8")
    for variable in dotenv:
        assert variable in example, f"{variable} is documented in infra/compose.env.example"
    assert "token issue --role notifier" in example, "how to issue the notifier token is documented"


def test_the_ledger_s_daily_maintenance_runs_and_admin_notifications_reach_the_mail_catcher(
    compose: dict[str, Any],
) -> None:
    from services.profile.backups.cli import maintenance
    from services.sync_connector.settings import settings_from_env as connector_settings

    s = services(compose)
    ledger = s["ledger-maintenance"]
    python, flag, module, command, every, seconds = ledger["command"]
    assert (python, flag, module, command, every, float(seconds)) == (
        "python", "-m", "services.profile", "maintenance", "--every", 86400.0,
    )  # fmt: skip
    assert "--every" in {option for param in maintenance.params for option in param.opts}
    assert ledger["environment"]["PROFILE_DB_URL"] == s["profile"]["environment"]["PROFILE_DB_URL"]
    assert depends_on(ledger)["migrate-profile"] == "service_completed_successfully"
    settings = connector_settings(environment(s["connector"]))
    assert settings.admin_notify.enabled
    assert settings.admin_notify.to == ["admins@customer-profile.example"]
    assert (settings.notify.smtp_host, settings.notify.smtp_port) == ("mailpit", 1025)
