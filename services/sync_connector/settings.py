"""Connector settings, built once at start-up from ``CONNECTOR_*`` variables and passed down."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from contracts.topics import CUSTOMER_PROFILE_TOPIC
from libs.kit.db import DatabaseSettings
from libs.kit.kafka import KafkaSettings
from libs.kit.settings import SettingsReader, read_settings, require_at_least_one
from libs.kit.tokens import TokenSettings
from services.sync_connector.admin_notify.settings import AdminNotifySettings
from services.sync_connector.http_clients import (
    CLIENT_CODES,
    PROFILE_CLIENT,
    SMS_CLIENT,
    SYSTEM_CLIENTS,
    HttpClientOverride,
    HttpClientSettings,
)
from services.sync_connector.notify.settings import NotifySettings, ProfileApiSettings

ENV_PREFIX = "CONNECTOR_"
# The admin CLI's bearer token (services/sync_connector/cli.py): read there, not a setting.
ADMIN_TOKEN_ENV = "CONNECTOR_ADMIN_TOKEN"  # noqa: S105 - the name of the variable, not a secret
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
    # Admin notifications (CONNECTOR_ADMIN_NOTIFY_*): on when CONNECTOR_ADMIN_NOTIFY_TO lists an address.
    admin_notify: AdminNotifySettings = msgspec.field(default_factory=AdminNotifySettings)
    # CONNECTOR_AUTH_PUBLIC_KEYS: the profile service's token keys, to verify admin API callers.
    auth: TokenSettings = msgspec.field(default_factory=TokenSettings)

    # The topic consumed, and the consumer groups' names: "<group_prefix>.<system code lowercase>".
    topic: str = CUSTOMER_PROFILE_TOPIC
    group_prefix: str = "sync-connector"
    # Where the admin API, /health, /ready and /metrics listen (0.0.0.0 in a container).
    http_host: str = "127.0.0.1"
    http_port: int = 8001
    # Each external system's base URL, and the secret its requests are signed with (HMAC-SHA256; empty:
    # unsigned, dev only).
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
    # Retries go by time (docs/delivery.md): a record is retried until the system's delivery
    # deadline after the event was first seen (CONNECTOR_DELIVERY_DEADLINE_S, or per system
    # CONNECTOR_CRM_DELIVERY_DEADLINE_S...), with exponential backoff from backoff_base_s (seed 000 7.3's
    # initial delay) doubling up to backoff_max_s, jittered below that. The cap also bounds the wait
    # between two probes of a system that stays down. Only a passed deadline or a permanent refusal fails
    # a record; max_retry_count is an optional count cap on top (None: none).
    delivery_deadline_s: float = 24 * 3600.0
    crm_delivery_deadline_s: float | None = None
    cms_delivery_deadline_s: float | None = None
    css_delivery_deadline_s: float | None = None
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    max_retry_count: int | None = None
    # One HTTP client per system (its own pool): at most http_pool_size calls in flight, more wait in
    # line for a connection (never a failure); connect and read timeouts start once a connection is
    # held. http_timeout_s is the read timeout (request sent -> answer). CONNECTOR_HTTP_CLIENTS sets
    # a client's own, e.g. '{"CRM": {"pool_size": 8, "read_timeout_s": 10}}' (clients: CRM, CMS,
    # CSS, SMS and PROFILE for the notifications, whose read timeout defaults to notify timeout_s).
    http_timeout_s: float = 5.0
    http_pool_size: int = 32
    http_connect_timeout_s: float = 1.0
    http_clients: dict[str, HttpClientOverride] = msgspec.field(default_factory=dict)
    # A message the consumer can never process is dead-lettered alone (sync.unprocessable_messages and
    # the system's dead-letter topic) and its partition goes on: undecodable at once; failing the
    # handler with an error that is not transient (database or broker unavailable), after this many
    # tries of the message alone. After unprocessable_streak_limit such messages in a row on a
    # partition without one success, the fault is taken for systemic: the partition waits and retries.
    unprocessable_after_failures: int = 3
    unprocessable_streak_limit: int = 5
    # A delivery in flight holds its record (and its customer's lane at that system) for this
    # long; a crashed holder's delivery is resumed by any instance after it. Longer than a call.
    claim_lease_s: float = 30.0
    # The retry scheduler: how often it looks for due records, and calls in flight per system.
    retry_poll_interval_s: float = 1.0
    retry_concurrency: int = 10
    # Circuit breaker per system: open after this many consecutive transient failures, probe after the
    # cool-down; while the system stays down the cool-down doubles per failed probe, up to backoff_max_s.
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    # Dead letters go to "<dlq_topic_prefix><system code lowercase>"; empty = "<topic>.dlq.".
    dlq_topic_prefix: str = ""
    dlq_poll_interval_s: float = 2.0
    # At most this many records are reset by one "retry all failed of a system" call.
    admin_bulk_retry_limit: int = 10_000
    # Retention (``maintenance``): terminal records with their attempts and dead letters, finished
    # notifications and admin actions older than this many days are pruned, each statement at most
    # retention_batch_size rows, each batch its own transaction. Lane state is never pruned.
    retention_days: float = 30.0
    retention_batch_size: int = 1000
    # The operators' gauges (external_sync_status, age of the oldest undelivered change, records near
    # their deadline) are read from the database this often; "near" = within near_deadline_window_s
    # of the record's deadline (deliver_by; see delivery_deadline_s).
    status_refresh_interval_s: float = 15.0
    near_deadline_window_s: float = 3600.0
    # How long shutdown or a rebalance waits for an in-flight message before abandoning it
    # (it is then redelivered; the idempotency key makes that harmless).
    shutdown_grace_s: float = 10.0

    # Log lines at this level and above (DEBUG, INFO, WARNING, ERROR), as JSON on stderr.
    log_level: str = "INFO"
    # The service.name of spans and log lines.
    service_name: str = "sync-connector"

    def __post_init__(self) -> None:
        self._check_http_clients()
        limits = ("retry_concurrency", "breaker_failure_threshold", "admin_bulk_retry_limit", "delivery_wave_size")
        require_at_least_one(self, *limits)
        self._check_retention()
        deadlines = (self.delivery_deadline_s, *(self.deadline_s(code) for code in ("CRM", "CMS", "CSS")))
        if min(*deadlines, self.backoff_base_s, self.breaker_cooldown_s) <= 0:
            msg = "delivery deadlines, backoff_base_s and breaker_cooldown_s must be positive"
            raise ValueError(msg)
        if self.backoff_max_s < self.backoff_base_s:
            msg = "backoff_max_s must be at least backoff_base_s"
            raise ValueError(msg)
        if self.max_retry_count is not None and self.max_retry_count < 0:
            msg = "max_retry_count must be at least 0 (or unset: no count cap)"
            raise ValueError(msg)
        if unknown := set(self.systems) - {"CRM", "CMS", "CSS"}:
            msg = f"unknown systems {sorted(unknown)}: the systems are CRM, CMS and CSS"
            raise ValueError(msg)

    def _check_retention(self) -> None:
        # The admin audit keeps at least a day (its trigger refuses younger deletes); a notification record
        # must outlive the age past which a redelivered event is skipped_stale, or a replay would resend it.
        if self.retention_days < 1 or self.retention_days * 86400 <= self.notify.max_event_age_s:
            msg = "retention_days must be at least 1 and longer than notify max_event_age_s"
            raise ValueError(msg)
        if self.retention_batch_size < 1 or self.status_refresh_interval_s <= 0 or self.near_deadline_window_s < 0:
            msg = (
                "retention_batch_size must be at least 1, status_refresh_interval_s positive "
                "and near_deadline_window_s not negative"
            )
            raise ValueError(msg)

    def _check_http_clients(self) -> None:
        if unknown := set(self.http_clients) - set(CLIENT_CODES):
            msg = f"http_clients: unknown clients {sorted(unknown)}, the clients are {', '.join(CLIENT_CODES)}"
            raise ValueError(msg)
        calls = {code: self.http_client(code).call_timeout_s for code in CLIENT_CODES}  # each one validated
        if self.claim_lease_s <= max(calls[code] for code in SYSTEM_CLIENTS):
            msg = (
                "claim_lease_s must be longer than every system's connect + read timeout "
                "(a lease must outlive the call it covers)"
            )
            raise ValueError(msg)
        if self.admin_notify.claim_lease_s <= self.notify.timeout_s:
            msg = "admin_notify claim_lease_s must be longer than the SMTP timeout (notify timeout_s)"
            raise ValueError(msg)
        if self.notify.claim_lease_s <= calls[PROFILE_CLIENT] + calls[SMS_CLIENT]:
            msg = "notify claim_lease_s must be longer than the contact lookup's and the SMS call's timeouts"
            raise ValueError(msg)
        require_at_least_one(self, "unprocessable_after_failures", "unprocessable_streak_limit")

    def http_client(self, code: str) -> HttpClientSettings:
        """The pool and timeouts of one HTTP client (CRM, CMS, CSS, SMS, PROFILE): its own, else the defaults."""
        own = self.http_clients.get(code, HttpClientOverride())
        default_read_s = self.notify.timeout_s if code in (SMS_CLIENT, PROFILE_CLIENT) else self.http_timeout_s
        return HttpClientSettings(
            pool_size=self.http_pool_size if own.pool_size is None else own.pool_size,
            connect_timeout_s=self.http_connect_timeout_s if own.connect_timeout_s is None else own.connect_timeout_s,
            read_timeout_s=default_read_s if own.read_timeout_s is None else own.read_timeout_s,
        )

    def endpoint(self, system_code: str) -> SystemEndpoint:
        by_code = {
            "CRM": SystemEndpoint(self.crm_url, self.crm_secret),
            "CMS": SystemEndpoint(self.cms_url, self.cms_secret),
            "CSS": SystemEndpoint(self.css_url, self.css_secret),
        }
        return by_code[system_code]

    def deadline_s(self, system_code: str) -> float:
        """The system's delivery deadline: its own setting, else ``delivery_deadline_s``."""
        own = {
            "CRM": self.crm_delivery_deadline_s,
            "CMS": self.cms_delivery_deadline_s,
            "CSS": self.css_delivery_deadline_s,
        }.get(system_code)
        return self.delivery_deadline_s if own is None else own

    def group_id(self, system_code: str) -> str:
        return f"{self.group_prefix}.{system_code.lower()}"

    def dlq_topic(self, system_code: str) -> str:
        """``customer-profile.v1.dlq.crm`` for the default topic."""
        return f"{self.dlq_topic_prefix or self.topic + '.dlq.'}{system_code.lower()}"


def settings_from_env(environ: Mapping[str, str]) -> ConnectorSettings:
    """``CONNECTOR_DB_URL``, ``CONNECTOR_KAFKA_BOOTSTRAP_SERVERS``, ``CONNECTOR_CRM_URL``, ``CONNECTOR_HTTP_PORT``..."""
    return read_settings(build_settings, environ, ENV_PREFIX, also_read=(ADMIN_TOKEN_ENV,))


def build_settings(reader: SettingsReader) -> ConnectorSettings:
    """The connector's settings, section by section (the sections also make docs/settings.md)."""
    top = reader.load(ConnectorSettings)
    return msgspec.structs.replace(
        top,
        # No pre-ping by default: the connector retries every database fault anyway, and the ping
        # was one round trip in ten on the fast path.
        database=reader.load(DatabaseSettings, "DB_", defaults={f"{ENV_PREFIX}DB_POOL_PRE_PING": "false"}),
        kafka=reader.load(KafkaSettings, "KAFKA_"),
        notify=reader.load(NotifySettings, "NOTIFY_"),
        profile=reader.load(ProfileApiSettings, "PROFILE_"),
        admin_notify=reader.load(AdminNotifySettings, "ADMIN_NOTIFY_"),
        auth=reader.load(TokenSettings, "AUTH_"),
    )
