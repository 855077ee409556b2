"""Compose's tracing and metrics stack: current images (Jaeger v2, Prometheus 3, a current collector), wired.

No Docker engine runs here: the two collector-format configs (the OpenTelemetry collector's and Jaeger
v2's, which is built on the collector) are checked as data against their documented layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "infra" / "observability"
# The collector release that named the OTLP gRPC exporter otlp_grpc (otlp became a deprecated alias).
COLLECTOR_OTLP_GRPC_SINCE = (0, 144)


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _config(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((OBSERVABILITY / name).read_text(encoding="utf-8"))
    return document


def _mounted_config(service: dict[str, Any]) -> dict[str, Any]:
    """The file the service's ``--config=`` names, read from the repository folder mounted there."""
    (flag,) = [word for word in service["command"] if word.startswith("--config=")]
    target = flag.split("=", 1)[1]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
    return _config(Path(mounts[target]).name)


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _assert_components_defined(config: dict[str, Any]) -> None:
    """Every component a pipeline or the service names is configured (the collector refuses to start otherwise)."""
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"], extension
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {kind} {component}"


def test_jaeger_is_v2_configured_by_its_file(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:2.")
    assert "environment" not in jaeger, "Jaeger v2 reads no COLLECTOR_* variables: only its config file"
    config = _mounted_config(jaeger)
    _assert_components_defined(config)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    storage = config["extensions"]["jaeger_storage"]["backends"]
    query = config["extensions"]["jaeger_query"]
    assert query["storage"]["traces"] in storage
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == query["storage"]["traces"]
    (published,) = jaeger["ports"]
    assert published.endswith(f":{_port(query['http']['endpoint'])}")
    assert published.endswith(":16686")


def test_the_collector_is_current_and_sends_traces_to_jaeger_over_otlp_grpc(
    services: dict[str, dict[str, Any]],
) -> None:
    collector = services["otel-collector"]
    image, _, tag = collector["image"].partition(":")
    assert image == "otel/opentelemetry-collector-contrib"
    assert tuple(int(part) for part in tag.split(".")[:2]) >= COLLECTOR_OTLP_GRPC_SINCE
    config = _mounted_config(collector)
    _assert_components_defined(config)
    (to_jaeger,) = [name for name in config["service"]["pipelines"]["traces"]["exporters"] if name.endswith("/jaeger")]
    assert to_jaeger.split("/")[0] == "otlp_grpc"
    host, port = config["exporters"][to_jaeger]["endpoint"].split(":")
    assert host == "jaeger"
    assert int(port) == _port(_mounted_config(services["jaeger"])["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])


def test_prometheus_is_3(services: dict[str, dict[str, Any]]) -> None:
    assert services["prometheus"]["image"].startswith("prom/prometheus:v3.")
