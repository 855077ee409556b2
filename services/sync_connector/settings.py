"""Connector settings, built once at start-up from ``CONNECTOR_*`` variables and passed down."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from contracts.topics import CUSTOMER_PROFILE_TOPIC
from libs.kit.db import DatabaseSettings
from libs.kit.kafka import KafkaSettings
from libs.kit.settings import load_settings
from libs.kit.tokens import TokenSettings
from services.sync_connector.notify.settings import NotifySettings, ProfileApiSettings

ENV_PREFIX = "CONNECTOR_"
DEFAULT_EXTERNAL_URL = "http://127.0.0.1:8010"


class SystemEndpoint(msgspec.Struct, frozen=True):
    base_url: str
    # Empty means "don't sign" (dev only); production sets every secret.
    secret: str


class ConnectorSettings(msgspec.Struct, frozen=True):
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    # Customer notifications (CONNECTOR_NOTIFY_*) and where they read contact data (CONNECTOR_PROFILE_*).
    notify: NotifySettings = msgspec.field(default_factory=NotifySettings)
    profile: ProfileApiSettings = msgspec.field(default_factory=ProfileApiSettings)
    # CONNECTOR_AUTH_PUBLIC_KEYS: the profile service's token keys, to verify admin API callers.
    auth: TokenSettings = msgspec.field(default_factory=TokenSettings)
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
    # The external systems this instance delivers to (CONNECTOR_SYSTEMS='["CRM"]'): by default all;
    # one deployment per system isolates them in separate processes too.
    systems: tuple[str, ...] = ("CRM", "CMS", "CSS")
    # The fast path takes a partition's buffered messages in waves of at most this many (one
    # customer once per wave): one transaction claims a wave, its calls run concurrently, one
    # transaction records the results.
    delivery_wave_size: int = 64
    max_retry_count: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    http_timeout_s: float = 5.0
    # A delivery in flight holds its record (and its customer's lane at that system) for this
    # long; a crashed holder's delivery is resumed by any instance after it. Longer than a call.
    claim_lease_s: float = 30.0
    # The retry scheduler: how often it looks for due records, and calls in flight per system.
    retry_poll_interval_s: float = 1.0
    retry_concurrency: int = 10
    # Circuit breaker per system: open after this many consecutive transient failures, probe after the cool-down.
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    # Dead letters go to "<dlq_topic_prefix><system code lowercase>"; empty = "<topic>.dlq.".
    dlq_topic_prefix: str = ""
    dlq_poll_interval_s: float = 2.0
    # At most this many records are reset by one "retry all failed of a system" call.
    admin_bulk_retry_limit: int = 10_000
    # How long shutdown or a rebalance waits for an in-flight message before abandoning it
    # (it is then redelivered; the idempotency key makes that harmless).
    shutdown_grace_s: float = 10.0
    log_level: str = "INFO"
    service_name: str = "sync-connector"

    def __post_init__(self) -> None:
        if self.claim_lease_s <= self.http_timeout_s:
            msg = "claim_lease_s must be longer than http_timeout_s (a lease must outlive the call it covers)"
            raise ValueError(msg)
        limits = (self.retry_concurrency, self.breaker_failure_threshold, self.admin_bulk_retry_limit)
        if min(*limits, self.delivery_wave_size) < 1:
            msg = (
                "retry_concurrency, breaker_failure_threshold, admin_bulk_retry_limit and delivery_wave_size "
                "must be at least 1"
            )
            raise ValueError(msg)
        if unknown := set(self.systems) - {"CRM", "CMS", "CSS"}:
            msg = f"unknown systems {sorted(unknown)}: the systems are CRM, CMS and CSS"
            raise ValueError(msg)

    def endpoint(self, system_code: str) -> SystemEndpoint:
        by_code = {
            "CRM": SystemEndpoint(self.crm_url, self.crm_secret),
            "CMS": SystemEndpoint(self.cms_url, self.cms_secret),
            "CSS": SystemEndpoint(self.css_url, self.css_secret),
        }
        return by_code[system_code]

    def group_id(self, system_code: str) -> str:
        return f"{self.group_prefix}.{system_code.lower()}"

    def dlq_topic(self, system_code: str) -> str:
        """``customer-profile.v1.dlq.crm`` for the default topic."""
        return f"{self.dlq_topic_prefix or self.topic + '.dlq.'}{system_code.lower()}"


def settings_from_env(environ: Mapping[str, str]) -> ConnectorSettings:
    """``CONNECTOR_DB_URL``, ``CONNECTOR_KAFKA_BOOTSTRAP_SERVERS``, ``CONNECTOR_CRM_URL``, ``CONNECTOR_HTTP_PORT``..."""
    top = load_settings(ConnectorSettings, environ, ENV_PREFIX)
    return msgspec.structs.replace(
        top,
        # No pre-ping by default: the connector retries every database fault anyway, and the ping
        # was one round trip in ten on the fast path.
        database=load_settings(
            DatabaseSettings, {f"{ENV_PREFIX}DB_POOL_PRE_PING": "false", **environ}, f"{ENV_PREFIX}DB_"
        ),
        kafka=load_settings(KafkaSettings, environ, f"{ENV_PREFIX}KAFKA_"),
        notify=load_settings(NotifySettings, environ, f"{ENV_PREFIX}NOTIFY_"),
        profile=load_settings(ProfileApiSettings, environ, f"{ENV_PREFIX}PROFILE_"),
        auth=load_settings(TokenSettings, environ, f"{ENV_PREFIX}AUTH_"),
    )
