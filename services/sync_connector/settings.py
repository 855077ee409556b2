"""Connector settings, built once at start-up from ``CONNECTOR_*`` variables and passed down."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from contracts.topics import CUSTOMER_PROFILE_TOPIC
from libs.kit.db import DatabaseSettings
from libs.kit.kafka import KafkaSettings
from libs.kit.settings import load_settings

ENV_PREFIX = "CONNECTOR_"
DEFAULT_EXTERNAL_URL = "http://127.0.0.1:8010"


class SystemEndpoint(msgspec.Struct, frozen=True):
    base_url: str
    # Empty means "don't sign" (dev only); production sets every secret.
    secret: str


class ConnectorSettings(msgspec.Struct, frozen=True):
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    topic: str = CUSTOMER_PROFILE_TOPIC
    group_prefix: str = "sync-connector"
    http_host: str = "127.0.0.1"
    http_port: int = 8001
    crm_url: str = DEFAULT_EXTERNAL_URL
    cms_url: str = DEFAULT_EXTERNAL_URL
    css_url: str = DEFAULT_EXTERNAL_URL
    crm_secret: str = ""
    cms_secret: str = ""
    css_secret: str = ""
    max_retry_count: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    http_timeout_s: float = 5.0
    # How long shutdown or a rebalance waits for an in-flight message before abandoning it
    # (it is then redelivered; the idempotency key makes that harmless).
    shutdown_grace_s: float = 10.0
    log_level: str = "INFO"
    service_name: str = "sync-connector"

    def endpoint(self, system_code: str) -> SystemEndpoint:
        by_code = {
            "CRM": SystemEndpoint(self.crm_url, self.crm_secret),
            "CMS": SystemEndpoint(self.cms_url, self.cms_secret),
            "CSS": SystemEndpoint(self.css_url, self.css_secret),
        }
        return by_code[system_code]

    def group_id(self, system_code: str) -> str:
        return f"{self.group_prefix}.{system_code.lower()}"


def settings_from_env(environ: Mapping[str, str]) -> ConnectorSettings:
    """``CONNECTOR_DB_URL``, ``CONNECTOR_KAFKA_BOOTSTRAP_SERVERS``, ``CONNECTOR_CRM_URL``, ``CONNECTOR_HTTP_PORT``..."""
    top = load_settings(ConnectorSettings, environ, ENV_PREFIX)
    return msgspec.structs.replace(
        top,
        database=load_settings(DatabaseSettings, environ, f"{ENV_PREFIX}DB_"),
        kafka=load_settings(KafkaSettings, environ, f"{ENV_PREFIX}KAFKA_"),
    )
