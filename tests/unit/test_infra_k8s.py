"""infra/k8s: the base and every overlay build with kustomize and validate against the Kubernetes schemas.

Offline: kustomize is `kustomize build` or the one built into `kubectl kustomize`; the
schemas come from the kubernetes-validate wheel (strict: unknown fields are errors).
"""

from __future__ import annotations

import copy
import functools
import importlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
TARGETS = ("base", "overlays/dev", "overlays/prod")
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
WORKLOADS = ("profile-service", "outbox-relay", "sync-connector")
Resource = dict[str, Any]


def kustomize_command() -> list[str] | None:
    if path := shutil.which("kustomize"):
        return [path, "build"]
    if path := shutil.which("kubectl"):
        return [path, "kustomize"]
    return None


@functools.cache
def render(target: str) -> tuple[Resource, ...]:
    command = kustomize_command()
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs kustomize or kubectl on PATH to build infra/k8s")
        pytest.skip("neither kustomize nor kubectl is installed")
    result = subprocess.run([*command, str(K8S / target)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(resources: tuple[Resource, ...], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_specs(resources: tuple[Resource, ...]) -> dict[str, Resource]:
    """Pod specs by workload name, for Deployments, Jobs and CronJobs."""
    specs = {name: d["spec"]["template"]["spec"] for name, d in of_kind(resources, "Deployment").items()}
    specs |= {name: j["spec"]["template"]["spec"] for name, j in of_kind(resources, "Job").items()}
    specs |= {
        name: c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for name, c in of_kind(resources, "CronJob").items()
    }
    return specs


def pod_labels(resources: tuple[Resource, ...]) -> dict[str, dict[str, str]]:
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in of_kind(resources, "Deployment").items()}
    labels |= {name: j["spec"]["template"]["metadata"]["labels"] for name, j in of_kind(resources, "Job").items()}
    labels |= {
        name: c["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        for name, c in of_kind(resources, "CronJob").items()
    }
    return labels


def selects(selector: Resource, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and In/NotIn/Exists/DoesNotExist)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def egress_ports(resources: tuple[Resource, ...], workload: str) -> set[int]:
    labels = pod_labels(resources)[workload]
    ports: set[int] = set()
    for policy in of_kind(resources, "NetworkPolicy").values():
        if selects(policy["spec"]["podSelector"], labels):
            for rule in policy["spec"].get("egress", []):
                ports |= {port["port"] for port in rule.get("ports", [])}
    return ports


def containers(spec: Resource) -> list[Resource]:
    found: list[Resource] = [*spec.get("initContainers", []), *spec["containers"]]
    return found


# Secrets created outside git (documented in the prod overlay); the dev overlay generates the first two.
EXTERNAL_SECRETS = {
    "profile-secrets",
    "connector-secrets",
    "outbox-relay-kafka",
    "sync-connector-kafka",
    "kafka-cluster-ca",
    "sync-connector-notify",
}


def container_environment(resources: tuple[Resource, ...], container: Resource) -> dict[str, str]:
    """The variables a container gets from its config maps and its ``env`` (a Secret key stands as
    ``<secret NAME/KEY>``; whole Secrets from ``envFrom`` are not in the build and are left out)."""
    config_maps = of_kind(resources, "ConfigMap")
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environ.update(config_maps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            environ[variable["name"]] = variable["value"]
        elif reference := variable.get("valueFrom", {}).get("secretKeyRef"):
            environ[variable["name"]] = f"<secret {reference['name']}/{reference['key']}>"
    return environ


def kafka_clients(resources: tuple[Resource, ...]) -> dict[str, Any]:
    """The Kafka settings of the relay and the connector, as their pods would load them."""
    from services.profile.settings import settings_from_env as profile_settings
    from services.sync_connector.settings import settings_from_env as connector_settings

    specs = pod_specs(resources)
    relay = container_environment(resources, specs["outbox-relay"]["containers"][0])
    connector = container_environment(resources, specs["sync-connector"]["containers"][0])
    return {"outbox-relay": profile_settings(relay).kafka, "sync-connector": connector_settings(connector).kafka}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builds_and_validates_against_the_kubernetes_schemas(target: str, version: str) -> None:
    resources = render(target)
    assert resources
    for resource in resources:
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_is_not_vacuous() -> None:
    deployment = copy.deepcopy(of_kind(render("base"), "Deployment")["profile-service"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_http_workloads_probe_health_and_readiness_as_seed_10_2_says(target: str) -> None:
    deployments = of_kind(render(target), "Deployment")
    for name in WORKLOADS:
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        liveness, readiness = container["livenessProbe"], container["readinessProbe"]
        assert liveness["httpGet"]["path"] == "/health"
        assert (liveness["initialDelaySeconds"], liveness["periodSeconds"]) == (30, 10)
        assert readiness["httpGet"]["path"] == "/ready"
        assert (readiness["initialDelaySeconds"], readiness["periodSeconds"]) == (5, 5)
        ports = {port["name"] for port in container["ports"]}
        assert {liveness["httpGet"]["port"], readiness["httpGet"]["port"]} <= ports, name


@pytest.mark.parametrize("target", TARGETS)
def test_the_relay_serves_probes_and_metrics_where_the_kubelet_and_prometheus_reach_them(target: str) -> None:
    from services.profile.settings import settings_from_env

    resources = render(target)
    deployment = of_kind(resources, "Deployment")["outbox-relay"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    settings = settings_from_env(container_environment(resources, container))
    # Bound beyond loopback, on the port the container declares and the probes use.
    assert (settings.relay_metrics_host, settings.relay_metrics_port) == ("0.0.0.0", 8002)
    (port,) = [port for port in container["ports"] if port["name"] == "metrics"]
    assert port["containerPort"] == settings.relay_metrics_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(settings.relay_metrics_port),
        "prometheus.io/path": "/metrics",
    }
    # The headless Service lists unready pods too: a relay that gave its shards up is still scraped.
    service = of_kind(resources, "Service")["outbox-relay-metrics"]["spec"]
    assert service["clusterIP"] == "None"
    assert service["publishNotReadyAddresses"] is True
    assert selects({"matchLabels": service["selector"]}, pod_labels(resources)["outbox-relay"])
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(settings.relay_metrics_port, "metrics")]
    # And the network lets the monitoring namespace in on that port.
    scrape = of_kind(resources, "NetworkPolicy")["allow-metrics-scrape"]["spec"]
    assert selects(scrape["podSelector"], pod_labels(resources)["outbox-relay"])
    (rule,) = scrape["ingress"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in rule["from"]
    assert settings.relay_metrics_port in {p["port"] for p in rule["ports"]}


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_resources_and_runs_hardened_as_non_root(target: str) -> None:
    for name, spec in pod_specs(render(target)).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in containers(spec):
            assert {"requests", "limits"} <= set(container["resources"]), (name, container["name"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_prod_runs_the_seed_sizing_and_replicas() -> None:
    deployments = of_kind(render("overlays/prod"), "Deployment")
    replicas = {name: deployments[name]["spec"]["replicas"] for name in WORKLOADS}
    assert replicas == {"profile-service": 3, "outbox-relay": 2, "sync-connector": 3}
    resources = deployments["profile-service"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"memory": "256Mi", "cpu": "100m"}, "limits": {"memory": "512Mi", "cpu": "500m"}}


@pytest.mark.parametrize("target", TARGETS)
def test_budgets_and_autoscalers_cover_the_workloads(target: str) -> None:
    resources = render(target)
    labels = pod_labels(resources)
    budgets = of_kind(resources, "PodDisruptionBudget").values()
    for name in WORKLOADS:
        assert [b for b in budgets if selects(b["spec"]["selector"], labels[name])], f"{name} has no budget"
    autoscalers = of_kind(resources, "HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in autoscalers.values()} == {
        "profile-service",
        "sync-connector",
    }
    for hpa in autoscalers.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in of_kind(resources, "Deployment")
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert autoscalers["sync-connector"]["spec"]["maxReplicas"] <= 6, "no more consumers than partitions"


@pytest.mark.parametrize("target", TARGETS)
def test_commands_exist_migrations_run_first_and_backups_daily(target: str) -> None:
    resources = render(target)
    for name, spec in pod_specs(resources).items():
        for container in containers(spec):
            python, flag, module, command = container["args"]
            assert (python, flag) == ("python", "-m")
            cli = importlib.import_module(f"{module}.__main__").cli
            assert isinstance(cli, click.Group)
            assert command in cli.commands, f"{name}: python -m {module} {command} does not exist"
    job = of_kind(resources, "Job")["schema-migrations"]["spec"]["template"]["spec"]
    assert [c["args"][2:] for c in containers(job)] == [
        ["services.profile", "migrate"],
        ["services.sync_connector", "migrate"],
    ]
    backup = of_kind(resources, "CronJob")["ledger-maintenance"]["spec"]
    assert backup["schedule"] == "0 2 * * *"
    assert backup["concurrencyPolicy"] == "Forbid"
    (container,) = backup["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][2:] == ["services.profile", "maintenance"]
    # The sync schema's retention prune, daily, with the connector's settings (database, retention).
    retention = of_kind(resources, "CronJob")["sync-maintenance"]["spec"]
    assert retention["schedule"] == "30 2 * * *"
    assert retention["concurrencyPolicy"] == "Forbid"
    (container,) = retention["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][2:] == ["services.sync_connector", "maintenance"]
    # The connector pods' config map and secret (hash suffixes and all), not their Kafka credentials.
    connector = pod_specs(resources)["sync-connector"]["containers"][0]
    assert container["envFrom"] == connector["envFrom"][:2]
    names = [reference["name"] for source in container["envFrom"] for reference in source.values()]
    assert [name.startswith(("connector-config", "connector-secrets")) for name in names] == [True, True]


@pytest.mark.parametrize("target", TARGETS)
def test_settings_come_from_config_maps_and_secrets_that_exist_or_are_documented(target: str) -> None:
    resources = render(target)
    config_maps, secrets = set(of_kind(resources, "ConfigMap")), set(of_kind(resources, "Secret"))
    external_secrets = EXTERNAL_SECRETS  # created outside git in prod (see the overlay)
    for name, spec in pod_specs(resources).items():
        for container in containers(spec):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                else:
                    assert source["secretRef"]["name"] in secrets | external_secrets, name
            for variable in container.get("env", []):
                if reference := variable.get("valueFrom", {}).get("secretKeyRef"):
                    assert reference["name"] in secrets | external_secrets, (name, variable["name"])
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets | external_secrets, (name, volume["name"])
    if target == "overlays/dev":
        assert {s.rsplit("-", 1)[0] for s in secrets} >= {"profile-secrets", "connector-secrets"}, (
            "dev generates its own"
        )
        instructions = (K8S / "overlays/dev/kustomization.yaml").read_text(encoding="utf-8")
        assert "create secret generic sync-connector-notify " in instructions, "how to create it is documented"
    if target == "overlays/prod":
        assert not secrets, "no secret is committed for prod"
        instructions = (K8S / "overlays/prod/kustomization.yaml").read_text(encoding="utf-8")
        for secret in EXTERNAL_SECRETS:
            assert f"create secret generic {secret} " in instructions, f"how to create {secret} is documented"


@pytest.mark.parametrize(
    ("target", "replicas"), [("base", (3, 2)), ("overlays/dev", (1, 1)), ("overlays/prod", (3, 2))]
)
def test_topics_need_the_replicas_each_target_runs_on(target: str, replicas: tuple[int, int]) -> None:
    # (replication factor, min.insync.replicas): the relay and the connector create topics with them
    # and refuse to start on weaker ones. Production: an acknowledged record is on two of three brokers.
    for name, kafka in kafka_clients(render(target)).items():
        assert (kafka.replication_factor, kafka.min_insync_replicas) == replicas, name
        assert kafka.topic_partitions == 6, name


@pytest.mark.parametrize("target", ["base", "overlays/dev"])
def test_outside_production_kafka_is_plaintext(target: str) -> None:
    for name, kafka in kafka_clients(render(target)).items():
        assert kafka.security_protocol == "PLAINTEXT", name


def test_in_production_each_kafka_client_is_its_own_sasl_user_over_tls_and_no_other_pod_gets_kafka_secrets() -> None:
    resources = render("overlays/prod")
    clients = kafka_clients(resources)
    assert {name: kafka.sasl_username for name, kafka in clients.items()} == {
        "outbox-relay": "outbox-relay",
        "sync-connector": "sync-connector",
    }
    specs = pod_specs(resources)
    for name, kafka in clients.items():
        assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.ssl_check_hostname) == (
            "SASL_SSL",
            "SCRAM-SHA-512",
            True,
        )
        assert kafka.sasl_password == f"<secret {name}-kafka/password>", "the password comes from a Secret"
        # The CA file is on a read-only volume from the kafka-cluster-ca Secret.
        spec = specs[name]
        mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
        folder, _, file_name = kafka.ssl_cafile.rpartition("/")
        assert mounts[folder]["readOnly"] is True
        volume = next(v for v in spec["volumes"] if v["name"] == mounts[folder]["name"])
        assert volume["secret"]["secretName"] == "kafka-cluster-ca"
        assert {"key": "ca.crt", "path": file_name} in volume["secret"]["items"]
    for name, spec in specs.items():
        if name in clients:
            continue
        for container in containers(spec):
            environ = container_environment(resources, container)
            assert not [key for key in environ if "KAFKA_SASL" in key or "KAFKA_SECURITY" in key], name
            assert "kafka-ca" not in {volume["name"] for volume in spec.get("volumes", [])}, name


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies_allow_only_what_each_workload_needs(target: str) -> None:
    resources = render(target)
    policies = of_kind(resources, "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    base = {53, 4317, 4318}  # DNS and the OpenTelemetry collector
    external = 8010 if target == "overlays/dev" else 443  # the dev overlay talks to the in-cluster stubs
    assert egress_ports(resources, "profile-service") == base | {5432, 8001}  # 8001: the console -> connector API
    assert egress_ports(resources, "outbox-relay") == base | {5432, 9092}
    # The connector also sends notifications (SMTP relay, SMS gateway) and reads contact data (profile, 8000).
    smtp, sms = (8025, 8010) if target == "overlays/dev" else (587, 443)
    assert egress_ports(resources, "sync-connector") == base | {5432, 9092, external, smtp, sms, 8000}
    assert egress_ports(resources, "schema-migrations") == base | {5432}
    assert egress_ports(resources, "ledger-maintenance") == base | {5432}
    assert egress_ports(resources, "sync-maintenance") == base | {5432}
    api_ingress = policies["allow-profile-api-ingress"]["spec"]
    assert selects(api_ingress["podSelector"], pod_labels(resources)["profile-service"])
    assert not selects(api_ingress["podSelector"], pod_labels(resources)["outbox-relay"])
    sources = [peer["namespaceSelector"]["matchLabels"] for peer in api_ingress["ingress"][0]["from"]]
    assert sources == [
        {"kubernetes.io/metadata.name": "audit-system"},
        {"kubernetes.io/metadata.name": "ingress-nginx"},
    ]


@pytest.mark.parametrize("target", ["overlays/prod"])
def test_the_documented_rollout_holds_back_only_the_deployments(target: str) -> None:
    # README: `kubectl apply -k ... -l 'app.kubernetes.io/component notin (api,relay,connector)'`
    # applies the migration Job and everything it needs, but no Deployment; then the rest.
    held_back = {
        f"{r['kind']}/{r['metadata']['name']}"
        for r in render(target)
        if r["metadata"].get("labels", {}).get("app.kubernetes.io/component") in {"api", "relay", "connector"}
    }
    assert held_back == {f"Deployment/{name}" for name in WORKLOADS}


def peers_allowed(resources: tuple[Resource, ...], workload: str, direction: str, port: int) -> list[Resource]:
    """The peers (``to`` for egress, ``from`` for ingress) the policies selecting ``workload`` open on ``port``."""
    labels = pod_labels(resources)[workload]
    key = "to" if direction == "egress" else "from"
    peers: list[Resource] = []
    for policy in of_kind(resources, "NetworkPolicy").values():
        if selects(policy["spec"]["podSelector"], labels):
            for rule in policy["spec"].get(direction, []):
                if port in {p["port"] for p in rule.get("ports", [])}:
                    peers.extend(rule.get(key, []))
    return peers


@pytest.mark.parametrize("target", TARGETS)
def test_notifications_are_on_their_secrets_referenced_and_their_traffic_allowed(target: str) -> None:
    from urllib.parse import urlsplit

    from services.sync_connector.settings import settings_from_env

    resources = render(target)
    labels = pod_labels(resources)
    container = pod_specs(resources)["sync-connector"]["containers"][0]
    settings = settings_from_env(container_environment(resources, container))
    notify = settings.notify
    assert notify.enabled is True
    # Credentials only by reference to a Secret that is not in git (test above: documented per overlay).
    assert settings.profile.token == "<secret sync-connector-notify/profile-token>"
    assert notify.smtp_password == "<secret sync-connector-notify/smtp-password>"
    assert notify.sms_token == "<secret sync-connector-notify/sms-token>"
    assert "sync-connector-notify" not in {name.rsplit("-", 1)[0] for name in of_kind(resources, "Secret")}
    optional = {
        v["name"]: v["valueFrom"]["secretKeyRef"].get("optional", False)
        for v in container["env"]
        if v.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "sync-connector-notify"
    }
    assert optional == {
        "CONNECTOR_PROFILE_TOKEN": False,  # no contact lookup without it
        "CONNECTOR_NOTIFY_SMTP_USERNAME": True,
        "CONNECTOR_NOTIFY_SMTP_PASSWORD": True,
        "CONNECTOR_NOTIFY_SMS_TOKEN": True,
    }

    # The contact lookup: the profile service's Service, out of the connector and into the API pods.
    lookup = urlsplit(settings.profile.url)
    service = of_kind(resources, "Service")[lookup.hostname or ""]["spec"]
    assert selects({"matchLabels": service["selector"]}, labels["profile-service"])
    (service_port,) = [p for p in service["ports"] if p["port"] == (lookup.port or 80)]
    profile_container = of_kind(resources, "Deployment")["profile-service"]["spec"]["template"]["spec"]["containers"][0]
    (pod_port,) = [p["containerPort"] for p in profile_container["ports"] if p["name"] == service_port["targetPort"]]
    out = peers_allowed(resources, "sync-connector", "egress", pod_port)
    assert any("podSelector" in peer and selects(peer["podSelector"], labels["profile-service"]) for peer in out)
    into = peers_allowed(resources, "profile-service", "ingress", pod_port)
    assert any("podSelector" in peer and selects(peer["podSelector"], labels["sync-connector"]) for peer in into)

    # The SMTP relay and the SMS gateway, on the ports the settings use.
    sms = urlsplit(notify.sms_url)
    sms_port = sms.port or {"https": 443, "http": 80}[sms.scheme]
    smtp_peers = peers_allowed(resources, "sync-connector", "egress", notify.smtp_port)
    sms_peers = peers_allowed(resources, "sync-connector", "egress", sms_port)
    assert smtp_peers, "no egress to the SMTP relay"
    assert sms_peers, "no egress to the SMS gateway"
    if target == "overlays/dev":
        # Both are the stubs, whose SMTP server listens beyond loopback on the port the connector uses.
        assert (notify.smtp_host, notify.smtp_port, notify.smtp_security.value) == ("stub-externals", 8025, "none")
        assert sms.hostname == "stub-externals"
        stubs = of_kind(resources, "Deployment")["stub-externals"]["spec"]["template"]
        for peer in (*smtp_peers, *sms_peers):
            assert selects(peer["podSelector"], stubs["metadata"]["labels"])
        environ = {v["name"]: v["value"] for v in stubs["spec"]["containers"][0]["env"]}
        assert (environ["STUBS_SMTP_HOST"], environ["STUBS_SMTP_PORT"]) == ("0.0.0.0", str(notify.smtp_port))
        stub_ports = {p["port"] for p in of_kind(resources, "Service")["stub-externals"]["spec"]["ports"]}
        assert {notify.smtp_port, sms_port} <= stub_ports
        ingress = of_kind(resources, "NetworkPolicy")["allow-stub-externals-ingress"]["spec"]["ingress"][0]
        assert {notify.smtp_port, sms_port} <= {p["port"] for p in ingress["ports"]}
    else:
        assert (notify.smtp_port, notify.smtp_security.value, sms.scheme) == (587, "starttls", "https")
        for peer in (*smtp_peers, *sms_peers):
            assert "ipBlock" in peer, "the relay and the gateway are outside the cluster, reached by address"
    if target == "overlays/prod":
        cidrs = {peer["ipBlock"]["cidr"] for peer in (*smtp_peers, *sms_peers)}
        assert not any(cidr.startswith(("192.0.2.", "198.51.100.", "203.0.113.")) for cidr in cidrs), (
            "production sets its own addresses, not the base's TEST-NET placeholders"
        )
