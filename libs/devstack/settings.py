"""``make run``'s settings (``DEV_*``): where the local system keeps its data, and its ports.

A module of its own, importing no dev tool, so the settings reference (docs/settings.md) can list them.
"""

from __future__ import annotations

import msgspec

from libs.kit.settings import SettingsReader

ENV_PREFIX = "DEV_"


class DevStackSettings(msgspec.Struct, frozen=True):
    # PostgreSQL's and Kafka's data, the logs and the dev keys; a second `make run` reuses them.
    data_dir: str = ".data"
    # Loopback ports of the database, the broker and each process (0: a free one, printed at start).
    pg_port: int = 55432
    kafka_port: int = 59092
    profile_port: int = 8000
    connector_port: int = 8001
    stubs_port: int = 8010
    relay_metrics_port: int = 8002
    smtp_port: int = 8025  # the local SMTP server in the stubs process; the notification mails land there
    # The sync-connector's maintenance (retention prune): first run after this delay, then every interval.
    maintenance_first_delay_s: float = 60.0
    maintenance_interval_s: float = 86400.0
    # Where the console's journey page links each change's trace: a Jaeger UI on its default port (e.g.
    # `docker run -p 16686:16686 -p 4318:4318 jaegertracing/jaeger:2.18.0` with OTEL_EXPORTER_OTLP_ENDPOINT set).
    trace_url_template: str = "http://127.0.0.1:16686/trace/{trace_id}"


def build_settings(reader: SettingsReader) -> DevStackSettings:
    return reader.load(DevStackSettings)
